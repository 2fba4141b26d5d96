/** `muxpool bench`, run as a child process against the embedded server on loopback. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type EmbeddedServer, startEmbeddedServer } from '../../src/server/embedded.js';
import { CLI_MAIN, type RunOutcome, runCli, runProgram } from '../helpers/cli.js';
import { startRawServer } from '../helpers/servers.js';

const SCRIPT = '/usr/bin/script';

const bench = (args: string[]): Promise<RunOutcome> => runCli(['bench', ...args]);

/** The parts of the --json report these tests read. */
interface Report {
  url: string;
  protocol: string | null;
  requestedProtocol: string;
  connections: number;
  connectionsOpened: number;
  workers: number;
  mode: string;
  rate: number | null;
  requests: number;
  errors: number;
  late: number;
  unsent: number;
  durationMs: number;
  reqPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  statusCodes: Record<string, number>;
  errorCodes: Record<string, number>;
}

function parseReport(outcome: RunOutcome): Report {
  assert.equal(outcome.code, 0, outcome.stderr);
  // --json with stderr not a terminal: no progress lines, nothing but the report.
  assert.equal(outcome.stderr, '');
  return JSON.parse(outcome.stdout) as Report;
}

let server: EmbeddedServer;
let dir: string;
let caPath: string;
let url: string;

before(async () => {
  server = await startEmbeddedServer();
  dir = await mkdtemp(join(tmpdir(), 'muxpool-bench-'));
  caPath = join(dir, 'ca.pem');
  await writeFile(caPath, server.caCert);
  url = `${server.httpsUrl}/`;
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

for (const protocol of ['h1', 'h2', 'h3'] as const) {
  test(`-n 200 -c 8 --protocol ${protocol} --json: exactly 200 requests, no errors, over ${protocol}`, async (t) => {
    if (protocol === 'h3' && !server.http3) {
      t.skip(`HTTP/3 unavailable: ${server.http3Error ?? ''}`);
      return;
    }
    const report = parseReport(await bench([url, '--cacert', caPath, '-n', '200', '-c', '8', '--protocol', protocol, '--json']));
    assert.equal(report.requests, 200);
    assert.equal(report.errors, 0);
    assert.equal(report.protocol, protocol);
    assert.equal(report.requestedProtocol, protocol);
    assert.equal(report.connections, 8);
    // HTTP/1.1: a connection per lane (at most 8); HTTP/2 and HTTP/3: every stream on one.
    if (protocol === 'h1') assert.ok(report.connectionsOpened >= 1 && report.connectionsOpened <= 8, `${report.connectionsOpened}`);
    else assert.equal(report.connectionsOpened, 1);
    assert.equal(report.mode, 'closed-loop');
    assert.deepEqual(report.statusCodes, { '200': 200 });
    assert.deepEqual(report.errorCodes, {});
    const l = report.latencyMs;
    assert.ok(l.p50 > 0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max, JSON.stringify(l));
    assert.ok(report.reqPerSec > 0 && report.durationMs > 0);
  });
}

test('--rate 100 -d 1: open loop, as many requests as the schedule holds (rate × duration)', async () => {
  const report = parseReport(await bench([url, '--cacert', caPath, '--rate', '100', '-d', '1', '--json']));
  assert.equal(report.mode, 'open-loop');
  assert.equal(report.rate, 100);
  // A closed loop of 16 lanes would send as many as the server answers in 1 s; the open loop
  // sends what the schedule holds, whatever the server's speed.
  assert.ok(report.requests >= 60 && report.requests <= 140, `requests: ${report.requests}`);
  assert.equal(report.errors, 0);
  assert.equal(report.unsent, 0);
});

test('--rate: latency counts from the scheduled time, so queueing behind slow responses shows (no coordinated omission)', async () => {
  // 20 requests due within 380 ms, 2 slots, every response takes 200 ms: the last ones go out
  // about 1.8 s after their due time. A closed loop would report about 200 ms for all of them.
  const report = parseReport(
    await bench([`${server.httpsUrl}/delay/200`, '--cacert', caPath, '--rate', '50', '-n', '20', '-c', '2', '--protocol', 'h2', '--json']),
  );
  assert.equal(report.requests, 20);
  assert.equal(report.errors, 0);
  assert.ok(report.late >= 10, `late: ${report.late}`);
  // Lower bounds only: ten rounds of 200 ms cannot take less than 2 s.
  assert.ok(report.latencyMs.max >= 1_000, `max: ${report.latencyMs.max}`);
  assert.ok(report.latencyMs.p50 >= 200, `p50: ${report.latencyMs.p50}`);
});

test('--workers 2 -n 200: the threads share the load and their results add up', async () => {
  const report = parseReport(await bench([url, '--cacert', caPath, '--workers', '2', '-n', '200', '-c', '8', '--json']));
  assert.equal(report.workers, 2);
  assert.equal(report.requests, 200);
  assert.equal(report.errors, 0);
  assert.deepEqual(report.statusCodes, { '200': 200 });
});

test('human summary: percentiles, a histogram, status codes; plain progress lines when stderr is not a terminal', async () => {
  const { code, stdout, stderr } = await bench([url, '--cacert', caPath, '-d', '2', '-c', '4', '--protocol', 'h2']);
  assert.equal(code, 0, stderr);
  for (const label of ['p50', 'p90', 'p99', 'p99\\.9', 'max', 'mean']) {
    assert.match(stdout, new RegExp(`^  ${label} +\\d+\\.\\d{3}$`, 'm'));
  }
  assert.match(stdout, /^histogram \(ms\)$/m);
  assert.match(stdout, /^ +\d+\.\d{3} – +\d+\.\d{3} +\d+ #+$/m);
  assert.match(stdout, /^status codes\n {2}200 {2}\d+$/m);
  assert.match(stdout, /h2 \(asked: h2\), concurrency 4 over 1 connection, closed-loop, 1 thread/);
  assert.match(stderr, /^\d+ done {2}\d+ req\/s {2}0 errors/m);
  assert.doesNotMatch(stderr, /\r/);
});

test('-k, -X and -H: statuses are counted per code and are not errors', async () => {
  const report = parseReport(await bench([`${server.httpsUrl}/status/418`, '-k', '-X', 'DELETE', '-H', 'x-bench: 1', '-n', '5', '-c', '2', '--json']));
  assert.equal(report.requests, 5);
  assert.equal(report.errors, 0);
  assert.deepEqual(report.statusCodes, { '418': 5 });
});

test('-b, --body-file, -X and repeated -H: every request carries the body, method and fields asked for', async () => {
  const seen: Array<{ method: string; one: string | undefined; two: string | undefined; body: string }> = [];
  const recorder = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', one: req.headers['x-one'] as string | undefined, two: req.headers['x-two'] as string | undefined, body: Buffer.concat(chunks).toString() });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
  const target = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/`;
  try {
    // A body without -X is a POST, as curl sends it.
    const posted = parseReport(await bench([target, '-b', '{"a":1}', '-H', 'x-one: 1', '-H', 'x-two: two', '-n', '20', '-c', '4', '--json']));
    assert.equal(posted.requests, 20);
    assert.equal(posted.errors, 0);
    assert.deepEqual(new Set(seen.map((r) => JSON.stringify(r))), new Set([JSON.stringify({ method: 'POST', one: '1', two: 'two', body: '{"a":1}' })]));
    assert.equal(seen.length, 20);
    seen.length = 0;
    const file = join(dir, 'body.bin');
    await writeFile(file, 'from a file\n');
    const put = parseReport(await bench([target, '--body-file', file, '-X', 'PUT', '-n', '10', '-c', '2', '--json']));
    assert.equal(put.requests, 10);
    assert.equal(put.errors, 0);
    assert.deepEqual(new Set(seen.map((r) => `${r.method} ${r.body}`)), new Set(['PUT from a file\n']));
  } finally {
    recorder.closeAllConnections();
    await new Promise<void>((resolve) => recorder.close(() => resolve()));
  }
});

test('errors are counted by code, and a run where every request fails exits 1', async () => {
  const closed = await startRawServer(() => {});
  await closed.close();
  const { code, stdout } = await bench([`http://127.0.0.1:${closed.port}/`, '-n', '3', '-c', '1', '--json']);
  assert.equal(code, 1);
  const report = JSON.parse(stdout) as Report;
  assert.equal(report.requests, 3);
  assert.equal(report.errors, 3);
  assert.deepEqual(report.errorCodes, { MUXPOOL_ERR_CONNECT_REFUSED: 3 });
  assert.equal(report.protocol, null);
  assert.equal(report.latencyMs.p50, null);
});

test('usage errors exit 2 with a one-line message', async () => {
  const cases = [
    ['--bogus', url],
    ['-c'],
    ['-c', '0', url],
    ['-n', '1.5', url],
    ['-n', '10', '-d', '1', url],
    ['--protocol', 'h4', url],
    ['--workers', '4', '-c', '2', url],
    ['-b', 'x', '--body-file', 'y', url],
    ['--report', 'out.txt', url],
    [],
  ];
  // One after the other: a burst of CLI processes on a busy machine proves nothing more.
  for (const args of cases) {
    const outcome = await bench(args);
    const context = `${JSON.stringify(args)}: ${JSON.stringify(outcome)}`;
    assert.equal(outcome.code, 2, context);
    assert.equal(outcome.stdout, '', context);
    assert.match(outcome.stderr, /^muxpool bench: [^\n]+\n$/, context);
  }
});

const noScript = !existsSync(SCRIPT) && 'util-linux script is not installed';

test('on a terminal the progress line is rewritten in place with \\r', { skip: noScript }, async () => {
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, CLI_MAIN, 'bench', url, '--cacert', caPath, '-d', '2', '-c', '4'].map(quote).join(' ');
  const { code, stdout } = await runProgram(SCRIPT, ['-qfec', command, '/dev/null']);
  assert.equal(code, 0, stdout);
  // A carriage return that starts a line instead of ending one (the pty turns \n into \r\n).
  const updates = stdout.match(/\r(?!\n)\d+ done {2}\d+ req\/s {2}\d+ errors/g) ?? [];
  assert.ok(updates.length >= 2, `progress updates: ${updates.length}\n${JSON.stringify(stdout.slice(0, 500))}`);
  assert.match(stdout, /p99\.9/);
});

test('a server that stalls 20 % of the time: the open-loop p99 shows the stalls, the closed-loop p99 hides them', async (t) => {
  // The issue's server stalls 1 s every 5 s; this one keeps that ratio at a fifth of the scale
  // (300 ms every 1.5 s, over 4 s runs, so each run meets at least two stalls) to stay short. A
  // request that arrives in the last 300 ms of each 1.5 s period is answered when it ends.
  const PERIOD_MS = 1_500;
  const STALL_MS = 300;
  const t0 = performance.now();
  const timers = new Set<NodeJS.Timeout>();
  const stalling = http.createServer((req, res) => {
    req.resume();
    const phase = (performance.now() - t0) % PERIOD_MS;
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
    };
    if (phase < PERIOD_MS - STALL_MS) {
      answer();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      answer();
    }, PERIOD_MS - phase);
    timers.add(timer);
  });
  await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
  const target = `http://127.0.0.1:${(stalling.address() as AddressInfo).port}/`;
  try {
    // Closed loop: 2 lanes; during a stall each lane waits in its one request, so only two
    // requests a stall are slow, out of thousands: p99 stays far below the stall.
    const closed = parseReport(await bench([target, '-c', '2', '-d', '4', '--json']));
    // Open loop: 200 req/s whatever happens, on the same 2 connections: the requests due during
    // a stall (a fifth of the schedule) wait for a free connection, go out late once it ends, and
    // count from their due time. Counted from their send instead, only the two caught inside
    // the stall would be slow, and p99 would hide the stalls as the closed loop's does.
    const open = parseReport(await bench([target, '--rate', '200', '-c', '2', '-d', '4', '--json']));
    t.diagnostic(`closed loop: ${closed.requests} requests, p99 ${closed.latencyMs.p99} ms, max ${closed.latencyMs.max} ms`);
    t.diagnostic(`open loop: ${open.requests} requests, p90 ${open.latencyMs.p90} ms, p99 ${open.latencyMs.p99} ms, late ${open.late}`);
    assert.equal(closed.mode, 'closed-loop');
    assert.equal(open.mode, 'open-loop');
    assert.equal(closed.errors + open.errors, 0);
    // Both runs met the stalls: their slowest response waited for most of one.
    assert.ok(closed.latencyMs.max >= STALL_MS * 0.5, `closed-loop max ${closed.latencyMs.max}`);
    assert.ok(open.latencyMs.max >= STALL_MS * 0.5, `open-loop max ${open.latencyMs.max}`);
    // The closed loop's stalled requests are a tiny share: p99 reads as if nothing happened.
    assert.ok(closed.requests >= 1_000, `closed-loop requests ${closed.requests}`);
    assert.ok(closed.latencyMs.p99 < STALL_MS / 4, `closed-loop p99 ${closed.latencyMs.p99} should hide the stalls`);
    // A fifth of the open loop's requests were due during a stall: p99 is most of a stall.
    assert.ok(open.latencyMs.p99 >= STALL_MS / 2, `open-loop p99 ${open.latencyMs.p99} should show the stalls`);
    assert.ok(open.latencyMs.p90 >= STALL_MS / 10, `open-loop p90 ${open.latencyMs.p90}`);
    // Each stall left most of its 60 due requests waiting for a connection.
    assert.ok(open.late >= 60, `late: ${open.late}`);
  } finally {
    for (const timer of timers) clearTimeout(timer);
    stalling.closeAllConnections();
    await new Promise<void>((resolve) => stalling.close(() => resolve()));
  }
});
