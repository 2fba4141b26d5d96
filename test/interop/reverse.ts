/**
 * The other direction: independent clients against our servers. ngtcp2's `gtlsclient` against
 * our HTTP/3 server (the one the embedded server runs, serving the matrix's files), and nghttp2's
 * `h2load` and `nghttp` against the embedded server over HTTP/2. gtlsclient exits 0 even when it
 * fails (see docs/interop.md): every rule reads its downloads and our server's record instead.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EmbeddedServer, startEmbeddedServer } from '../../src/server/embedded.js';
import { requirePeer } from '../helpers/peers.js';
import { CheckFailed, Unsupported, check } from './client.js';
import type { CaseResult } from './cases.js';
import { type Cell, type MatrixOptions, type MatrixSection, runCell } from './matrix.js';
import { type Fixture, type H3Target, MiB, sha256, startH3Target } from './targets.js';

const OUTPUT_LIMIT = 32 * MiB;

interface Run {
  code: number | null;
  out: string;
  stdout: Buffer;
}

/** Runs a client to its end (bounded by `timeoutMs`), keeping stdout bytes and all text output. */
function runClient(binary: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let size = 0;
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (size < OUTPUT_LIMIT) stdout.push(chunk);
      size += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (err.length < OUTPUT_LIMIT) err += chunk.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const bytes = Buffer.concat(stdout);
      resolve({ code, out: `${bytes.toString('utf8')}\n${err}`, stdout: bytes });
    });
  });
}

type ReverseClient = 'gtlsclient' | 'h2load' | 'nghttp';
const CLIENTS: readonly ReverseClient[] = ['gtlsclient', 'h2load', 'nghttp'];
const ROWS: Array<{ name: string; summary: string }> = [
  { name: 'handshake', summary: 'one small response' },
  { name: 'transfer', summary: 'several MiB, checked byte for byte' },
  { name: 'multiplexing', summary: 'many requests on one connection, beyond the stream limit we grant (100)' },
  { name: 'resumption', summary: 'a second connection resumes the first session (our server says so)' },
  { name: 'zerortt', summary: 'requests sent as 0-RTT and accepted (our server says so)' },
  { name: 'keyupdate', summary: 'the client updates keys mid-transfer (quiche answers it)' },
];

interface ReverseContext {
  fixture: Fixture;
  h3: H3Target;
  embedded: EmbeddedServer;
  dir: string;
  timeoutMs: number;
}

const GTLSCLIENT = '/usr/bin/gtlsclient';

async function gtls(ctx: ReverseContext, paths: string[], extra: string[] = []): Promise<{ run: Run; download: string }> {
  const download = await mkdtemp(join(ctx.dir, 'dl-'));
  const port = String(ctx.h3.port);
  const args = [
    '--no-quic-dump',
    '--no-http-dump',
    '--exit-on-all-streams-close',
    `--download=${download}`,
    ...extra,
    ctx.h3.host,
    port,
    ...paths.map((p) => `https://localhost:${port}/${p}`),
  ];
  const run = await runClient(GTLSCLIENT, args, ctx.timeoutMs);
  return { run, download };
}

async function checkDownloads(ctx: ReverseContext, download: string, names: string[]): Promise<void> {
  for (const name of names) {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(download, name));
    } catch {
      throw new CheckFailed(`${name} was not downloaded`);
    }
    check(sha256(bytes) === ctx.fixture.hashes.get(name), `${name}: the SHA-256 of the download differs`);
  }
}

async function gtlsCase(name: string, ctx: ReverseContext): Promise<CaseResult> {
  const served = ctx.h3.served ?? [];
  const session = ['--session-file', join(ctx.dir, `${name}.session`), '--tp-file', join(ctx.dir, `${name}.tp`)];
  switch (name) {
    case 'handshake': {
      const { run, download } = await gtls(ctx, ['hello.txt']);
      check(run.out.includes('QUIC handshake has completed'), 'gtlsclient did not complete the handshake');
      check(run.out.includes('Negotiated ALPN is h3'), 'no ALPN h3');
      await checkDownloads(ctx, download, ['hello.txt']);
      return { detail: 'handshake completed, ALPN h3, body hash checked' };
    }
    case 'transfer': {
      const names = ctx.fixture.profile.transferSizes.map((_, i) => `transfer-${i}.bin`);
      const { download } = await gtls(ctx, names);
      await checkDownloads(ctx, download, names);
      return { detail: `${names.length} files, hashes checked` };
    }
    case 'multiplexing': {
      const names = Array.from({ length: ctx.fixture.profile.streams }, (_, i) => `m-${i}.bin`);
      const before = served.length;
      const { download } = await gtls(ctx, names);
      await checkDownloads(ctx, download, names);
      check(served.length - before === names.length, `our server served ${served.length - before} of ${names.length}`);
      return { detail: `${names.length} streams on one connection, hashes checked` };
    }
    case 'resumption': {
      await gtls(ctx, ['hello.txt'], session);
      const before = served.length;
      const { download } = await gtls(ctx, ['transfer-0.bin'], [...session, '--disable-early-data']);
      await checkDownloads(ctx, download, ['transfer-0.bin']);
      const second = served.slice(before);
      check(second.length === 1 && second[0]?.resumed === true, 'our server did not resume the second connection');
      return { detail: 'our server resumed the second connection' };
    }
    case 'zerortt': {
      await gtls(ctx, ['hello.txt'], session);
      const before = served.length;
      const { run, download } = await gtls(ctx, ['m-0.bin', 'm-1.bin'], session);
      await checkDownloads(ctx, download, ['m-0.bin', 'm-1.bin']);
      check(/frm tx \d+ 0RTT STREAM/.test(run.out), 'gtlsclient sent no 0-RTT stream data');
      const early = served.slice(before).filter((s) => s.earlyData).length;
      check(early > 0, 'our server took no request as early data');
      return { detail: `our server took ${early} request(s) as 0-RTT` };
    }
    case 'keyupdate': {
      const name = `transfer-${ctx.fixture.profile.transferSizes.length - 1}.bin`;
      const { run, download } = await gtls(ctx, [name], ['--key-update=1ms']);
      await checkDownloads(ctx, download, [name]);
      check(run.out.includes('Initiate key update'), 'gtlsclient did not initiate a key update');
      check(run.out.includes('key update confirmed'), 'the key update was not confirmed');
      return { detail: 'gtlsclient initiated a key update, confirmed, hash checked' };
    }
  }
  throw new Unsupported('no such case');
}

const H2LOAD = '/usr/bin/h2load';
const NGHTTP = '/usr/bin/nghttp';

function h2loadCounts(out: string): { done: number; succeeded: number; protocol: string | undefined; dataBytes: number | undefined } {
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded/.exec(out);
  const traffic = /traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data/.exec(out);
  return {
    done: Number(requests?.[3] ?? -1),
    succeeded: Number(requests?.[4] ?? -1),
    protocol: /Application protocol: (\S+)/.exec(out)?.[1],
    dataBytes: traffic === null ? undefined : Number(traffic[3]),
  };
}

async function h2loadCase(name: string, ctx: ReverseContext): Promise<CaseResult> {
  const base = ctx.embedded.httpsUrl.replace('localhost', '127.0.0.1');
  const load = async (count: number, path: string, streams: number): Promise<ReturnType<typeof h2loadCounts>> => {
    const run = await runClient(H2LOAD, ['-n', String(count), '-c', '1', '-m', String(streams), `${base}${path}`], ctx.timeoutMs);
    const counts = h2loadCounts(run.out);
    check(counts.protocol === 'h2', `h2load spoke ${String(counts.protocol)}`);
    check(counts.succeeded === count, `${counts.succeeded} of ${count} requests succeeded`);
    return counts;
  };
  switch (name) {
    case 'handshake':
      await load(1, '/', 1);
      return { detail: 'ALPN h2, 1 of 1 succeeded' };
    case 'transfer': {
      const size = 3 * MiB;
      const counts = await load(3, `/bytes/${size}`, 3);
      check(counts.dataBytes === 3 * size, `${String(counts.dataBytes)} data bytes, expected ${3 * size}`);
      return { detail: `3 × 3 MiB at once, ${counts.dataBytes} data bytes` };
    }
    case 'multiplexing': {
      const count = ctx.fixture.profile.streams;
      const counts = await load(count, '/bytes/32', 100);
      check(counts.dataBytes === 32 * count, `${String(counts.dataBytes)} data bytes`);
      return { detail: `${count} requests on one connection, 100 at a time` };
    }
    case 'resumption':
      throw new Unsupported('h2load keeps no TLS session between its connections');
    case 'zerortt':
      throw new Unsupported('TLS over TCP: h2load sends no early data');
    default:
      throw new Unsupported('no TLS key update over TCP in this client');
  }
}

async function nghttpCase(name: string, ctx: ReverseContext): Promise<CaseResult> {
  const base = ctx.embedded.httpsUrl.replace('localhost', '127.0.0.1');
  const get = (paths: string[]): Promise<Run> => runClient(NGHTTP, paths.map((p) => `${base}${p}`), ctx.timeoutMs);
  switch (name) {
    case 'handshake': {
      const run = await get(['/']);
      check(run.stdout.toString('utf8').includes('over HTTP/2'), `unexpected body: ${run.stdout.toString('utf8').slice(0, 80)}`);
      return { detail: 'the body names HTTP/2' };
    }
    case 'transfer': {
      const size = 4 * MiB;
      const run = await get([`/bytes/${size}`]);
      const want = createHash('sha256').update(Buffer.alloc(size, 120)).digest('hex');
      check(sha256(run.stdout) === want, `${run.stdout.length} bytes, hash differs`);
      return { detail: '4 MiB, hash checked' };
    }
    case 'multiplexing': {
      const count = Math.min(ctx.fixture.profile.streams, 1000);
      // nghttp fetches a URI given twice only once: every request asks for a different size.
      const run = await get(Array.from({ length: count }, (_, i) => `/bytes/${32 + i}`));
      const want = Array.from({ length: count }, (_, i) => 32 + i).reduce((a, b) => a + b, 0);
      check(run.stdout.length === want && run.stdout.every((b) => b === 120), `${run.stdout.length} body bytes, expected ${want}`);
      return { detail: `${count} requests on one connection` };
    }
    case 'resumption':
      throw new Unsupported('nghttp keeps no TLS session between runs');
    case 'zerortt':
      throw new Unsupported('TLS over TCP: nghttp sends no early data');
    default:
      throw new Unsupported('no TLS key update over TCP in this client');
  }
}

export async function runReverse(options: MatrixOptions, fixture: Fixture, timeoutMs: number): Promise<MatrixSection> {
  const clients = CLIENTS.filter((c) => options.servers === undefined || options.servers.includes(c));
  const rows = ROWS.filter((r) => options.cases === undefined || options.cases.includes(r.name)).map((r) => ({ ...r, cells: {} as Record<string, Cell> }));
  if (clients.length > 0) {
    requirePeer('gtlsclient');
    requirePeer('h2load');
  }
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-reverse-'));
  const h3 = await startH3Target('muxpool', fixture, {});
  const embedded = await startEmbeddedServer();
  const ctx: ReverseContext = { fixture, h3, embedded, dir, timeoutMs };
  try {
    for (const client of clients) {
      for (const row of rows) {
        const run = client === 'gtlsclient' ? gtlsCase : client === 'h2load' ? h2loadCase : nghttpCase;
        const cell = await runCell(() => run(row.name, ctx), timeoutMs, `${client} ${row.name}`);
        row.cells[client] = cell;
        options.log?.(`rev ${client.padEnd(10)} ${row.name.padEnd(14)} ${cell.status.padEnd(11)} ${(cell.ms / 1000).toFixed(1)} s  ${cell.detail}`);
      }
    }
  } finally {
    await Promise.all([h3.stop(), embedded.close()]);
    await rm(dir, { recursive: true, force: true });
  }
  return { title: 'Independent clients against our servers (HTTP/3: src/server/h3.ts; HTTP/2: the embedded server)', servers: clients, rows };
}
