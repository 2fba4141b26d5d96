/**
 * bench:h2-bulk — bulk HTTP/2 downloads: one 256 MiB response, and 16 parallel 16 MiB responses
 * on one connection, by muxpool `request()`, a raw `node:http2` session and h2load, from one
 * local `node:http2` server over TLS that answers `/bulk/N` from a buffer allocated at start
 * (`lib/h2-bulk-server.ts`). MiB/s is body bytes over the time from the first request to the
 * last body byte, on a connection opened (and used once) beforehand; h2load's time is its own
 * "finished in" (it includes its TLS handshake, a millisecond or two). Every client only counts
 * the bytes (no concatenation): muxpool through `res.body`, the raw session through its
 * stream's 'data' events. Each client runs with its defaults (windows included). Usage:
 *   npm run bench:h2-bulk -- [--rounds N] [--clients h2load,node,muxpool] [--cases one,parallel]
 * The clients take turns (a different one first in each round); the table shows each client's
 * median round, the range of all rounds, and CPU time of this process per MiB (h2load: none).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http2 from 'node:http2';
import { ConnectionPool } from '../src/index.js';
import { benchCertificates, countBody, rawH2Count } from './lib/h2-bench.js';
import { HAS_TASKSET, saveResults, startServerProcess } from './lib/run.js';

const MiB = 1024 * 1024;

interface BulkCase {
  name: string;
  /** Responses fetched at once on the one connection. */
  streams: number;
  bytesEach: number;
}

const CASES: Record<string, BulkCase> = {
  one: { name: '1 × 256 MiB', streams: 1, bytesEach: 256 * MiB },
  parallel: { name: '16 × 16 MiB in parallel', streams: 16, bytesEach: 16 * MiB },
};

interface BulkResult {
  client: string;
  case: string;
  mibPerSec: number;
  /** CPU time of this process (user + system) per MiB; undefined for h2load. */
  cpuMsPerMiB: number | undefined;
  /** MiB/s of every round (`mibPerSec` is their median). */
  rounds: number[];
}

function argValue(flag: string): string | undefined {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

const rounds = Math.max(1, Math.floor(Number(argValue('--rounds') ?? 3)));
const clients = (argValue('--clients') ?? 'h2load,node,muxpool').split(',');
const caseNames = (argValue('--cases') ?? 'one,parallel').split(',');
for (const name of caseNames) if (CASES[name] === undefined) throw new Error(`unknown case ${name} (one, parallel)`);

const files = await benchCertificates('h2-bulk');
const { certs } = files;
const server = await startServerProcess('./h2-bulk-server.js', [files.keyPath, files.certPath]).catch(async (err: unknown) => {
  await files.remove();
  throw err;
});
const origin = `https://127.0.0.1:${server.port}`;

interface Run {
  seconds: number;
  cpuMs: number | undefined;
  bytes: number;
}

/** `n` bytes expected per response; rejects when one comes short, so a broken client cannot look fast. */
function checkBytes(client: string, got: number, expected: number): void {
  if (got !== expected) throw new Error(`${client} received ${got} bytes instead of ${expected}`);
}

async function timed(fn: () => Promise<number>): Promise<Run> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const bytes = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { seconds, cpuMs: (cpu.user + cpu.system) / 1000, bytes };
}

async function runH2loadBulk(c: BulkCase): Promise<Run> {
  const args = ['-n', String(c.streams), '-c', '1', '-m', String(c.streams), `${origin}/bulk/${c.bytesEach}`];
  const [cmd, cmdArgs] = HAS_TASKSET ? ['/usr/bin/taskset', ['-c', '1', 'h2load', ...args]] : ['h2load', args];
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(cmd, cmdArgs as string[], { timeout: 120_000 }, (err, out) => (err ? reject(err) : resolve(out)));
  });
  const finished = /finished in ([\d.]+)(us|ms|s),/.exec(stdout);
  const done = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded/.exec(stdout);
  if (finished === null || Number(done?.[1]) !== c.streams) throw new Error(`h2load did not finish every request:\n${stdout}`);
  const value = Number(finished[1]);
  const seconds = finished[2] === 'us' ? value / 1e6 : finished[2] === 'ms' ? value / 1000 : value;
  return { seconds, cpuMs: undefined, bytes: c.streams * c.bytesEach };
}

async function runClient(client: string, c: BulkCase): Promise<Run> {
  const path = `/bulk/${c.bytesEach}`;
  const expected = c.streams * c.bytesEach;
  switch (client) {
    case 'h2load':
      return runH2loadBulk(c);
    case 'node': {
      const session = http2.connect(origin, { ca: certs.caCert });
      session.on('error', () => {});
      await once(session, 'connect');
      await rawH2Count(session, '/bulk/1');
      const run = await timed(async () => {
        const counts = await Promise.all(Array.from({ length: c.streams }, () => rawH2Count(session, path)));
        return counts.reduce((sum, n) => sum + n, 0);
      });
      await new Promise<void>((resolve) => session.close(() => resolve()));
      checkBytes('node:http2', run.bytes, expected);
      return run;
    }
    case 'muxpool': {
      const pool = new ConnectionPool({ tls: { ca: certs.caCert } });
      await (await pool.request(`${origin}/bulk/1`)).arrayBuffer();
      const run = await timed(async () => {
        const counts = await Promise.all(
          Array.from({ length: c.streams }, async () => {
            const res = await pool.request(`${origin}${path}`);
            return countBody(res.body);
          }),
        );
        return counts.reduce((sum, n) => sum + n, 0);
      });
      const stats = await pool.stats();
      if (stats.dialed !== 1) process.stderr.write(`muxpool dialed ${stats.dialed} connections for ${c.name}\n`);
      await pool.close();
      checkBytes('muxpool', run.bytes, expected);
      return run;
    }
    default:
      throw new Error(`unknown client ${client}`);
  }
}

const label: Record<string, string> = { h2load: 'h2load', node: 'node:http2', muxpool: 'muxpool' };
const results: BulkResult[] = [];
try {
  for (const caseName of caseNames) {
    const c = CASES[caseName] as BulkCase;
    const byClient = new Map<string, Run[]>(clients.map((client) => [client, []]));
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < clients.length; i++) {
        const client = clients[(i + round) % clients.length] as string;
        const run = await runClient(client, c);
        byClient.get(client)?.push(run);
        process.stderr.write(
          `${c.name} round ${round + 1}/${rounds} ${label[client] ?? client}: ${(run.bytes / MiB / run.seconds).toFixed(0)} MiB/s` +
            `${run.cpuMs === undefined ? '' : `, ${(run.cpuMs / (run.bytes / MiB)).toFixed(2)} ms CPU/MiB`}\n`,
        );
      }
    }
    for (const client of clients) {
      const runs = byClient.get(client) ?? [];
      const rates = runs.map((run) => run.bytes / MiB / run.seconds);
      const order = rates.map((rate, i) => [rate, i] as const).sort((a, b) => a[0] - b[0]);
      const median = runs[(order[Math.floor((order.length - 1) / 2)] as readonly [number, number])[1]] as Run;
      results.push({
        client: label[client] ?? client,
        case: c.name,
        mibPerSec: median.bytes / MiB / median.seconds,
        cpuMsPerMiB: median.cpuMs === undefined ? undefined : median.cpuMs / (median.bytes / MiB),
        rounds: rates,
      });
    }
  }
} finally {
  await server.stop();
  await files.remove();
}

function bulkTable(rows: BulkResult[]): string {
  const out: string[] = [];
  for (const caseName of caseNames) {
    const name = (CASES[caseName] as BulkCase).name;
    const inCase = rows.filter((r) => r.case === name);
    const ref = (client: string): number | undefined => inCase.find((r) => r.client === client)?.mibPerSec;
    const node = ref('node:http2');
    const h2load = ref('h2load');
    out.push(`\n### ${name}\n`);
    out.push('| client | MiB/s | CPU ms/MiB | × node:http2 | × h2load |');
    out.push('|---|---|---|---|---|');
    for (const r of inCase) {
      const spread = r.rounds.length > 1 ? ` (${Math.min(...r.rounds).toFixed(0)}–${Math.max(...r.rounds).toFixed(0)})` : '';
      const ratio = (base: number | undefined): string => (base === undefined || base === 0 ? '—' : `${(r.mibPerSec / base).toFixed(2)}×`);
      out.push(
        `| ${r.client} | ${r.mibPerSec.toFixed(0)}${spread} | ${r.cpuMsPerMiB === undefined ? '—' : r.cpuMsPerMiB.toFixed(2)} | ${ratio(node)} | ${ratio(h2load)} |`,
      );
    }
  }
  return out.join('\n');
}

const setup = [
  process.version,
  'TLS',
  'one connection per client',
  `${rounds} round${rounds === 1 ? '' : 's'}${rounds > 1 ? ' (median, range)' : ''}`,
  HAS_TASKSET ? 'server on core 0, clients on core 1' : 'no taskset',
].join(', ');
const markdown = `## bench:h2-bulk (${setup})\n${bulkTable(results)}`;
console.log(markdown);
// `results` stays empty for the suite's req/s summary: these are MiB/s, kept under `bulk`.
console.log(`\nresults: ${await saveResults('h2-bulk', [], markdown, { bulk: results })}`);
