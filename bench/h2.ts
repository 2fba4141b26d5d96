/**
 * bench:h2 — muxpool request() against a raw node:http2 session, undici Client and Agent with
 * allowH2, and h2load, on one local node:http2 server over TLS, at several concurrencies, in one
 * run. Every client multiplexes C streams on exactly one HTTP/2 session. Usage:
 *   npm run bench:h2 -- [--duration S] [--warmup S] [--concurrency 1,16,128] [--rounds N]
 *                       [--clients h2load,node,undici,undici-agent,muxpool] [--server node|h2o]
 * With several rounds the clients take turns (a different one first in each round) and the
 * table shows each client's median round with the range of all rounds. Then the memory per idle
 * connection (muxpool and raw node:http2 sessions, `--idle N` connections, default 200; 0 skips
 * it), each client in a process of its own run with --expose-gc (`lib/h2-idle-memory.ts`).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { Agent, Client } from 'undici';
import { ConnectionPool } from '../src/index.js';
import { startH2o } from '../test/helpers/h2o.js';
import { benchCertificates, rawH2Get } from './lib/h2-bench.js';
import type { IdleMemoryFigures } from './lib/h2-idle-memory.js';
import {
  HAS_TASKSET,
  type Result,
  closedLoop,
  parseArgs,
  runH2load,
  runRounds,
  saveResults,
  startServerProcess,
  table,
} from './lib/run.js';

const args = parseArgs(process.argv.slice(2));
const clients = args.clients ?? ['h2load', 'node', 'undici', 'undici-agent', 'muxpool'];
const serverIndex = process.argv.indexOf('--server');
const serverKind = serverIndex >= 0 ? process.argv[serverIndex + 1] : 'node';
if (serverKind !== 'node' && serverKind !== 'h2o') throw new Error(`--server node|h2o, not ${String(serverKind)}`);
const files = await benchCertificates('h2');
const server = await startServerProcess('./h2-server.js', [files.keyPath, files.certPath]).catch(async (err: unknown) => {
  await files.remove();
  throw err;
});
// `--server h2o`: the clients' requests go to h2o (one thread on core 0, serving the same 12-byte
// body as index.html) instead, a server that answers faster than any client here asks, so the
// clients are the limit; the node:http2 server still serves the idle-memory probe.
const h2o =
  serverKind === 'h2o'
    ? await startH2o({ files: { 'index.html': Buffer.from('hello world\n') }, threads: 1, ...(HAS_TASKSET ? { cpus: '0' } : {}) }).catch(async (err: unknown) => {
        await server.stop();
        await files.remove();
        throw err;
      })
    : undefined;
const nodeOrigin = `https://127.0.0.1:${server.port}`;
const origin = h2o?.tlsUrl ?? nodeOrigin;
const ca = h2o?.caCert ?? files.certs.caCert;
const url = `${origin}/`;
const results: Result[] = [];
const idleIndex = process.argv.indexOf('--idle');
const idleConnections = idleIndex >= 0 ? Math.max(0, Math.floor(Number(process.argv[idleIndex + 1]))) : 200;

/** One client's idle connections, measured in a fresh process (see lib/h2-idle-memory.ts). */
function idleMemory(client: 'muxpool' | 'node'): Promise<IdleMemoryFigures> {
  const script = fileURLToPath(new URL('./lib/h2-idle-memory.js', import.meta.url));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', script, client, nodeOrigin, files.caPath, String(idleConnections)], { timeout: 120_000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(JSON.parse(stdout) as IdleMemoryFigures);
    });
  });
}
const memory: IdleMemoryFigures[] = [];

/** One client at concurrency `c`, on a session (or pool) of its own, closed afterwards. */
async function runClient(client: string, c: number): Promise<Result> {
  switch (client) {
    case 'h2load':
      return runH2load(['-m', String(c), url], 'h2load', c, args.durationMs, args.warmupMs, 1);
    case 'node': {
      const session = http2.connect(origin, { ca });
      session.on('error', () => {});
      await once(session, 'connect');
      const result = await closedLoop('node:http2', c, () => rawH2Get(session), args.durationMs, args.warmupMs);
      await new Promise<void>((resolve) => session.close(() => resolve()));
      return result;
    }
    case 'undici': {
      // undici runs one request at a time unless pipelining allows more, HTTP/2 included.
      const undiciClient = new Client(origin, { allowH2: true, pipelining: c, connect: { ca } });
      const result = await closedLoop('undici Client', c, async () => {
        const { body } = await undiciClient.request({ path: '/', method: 'GET' });
        await body.text();
      }, args.durationMs, args.warmupMs);
      await undiciClient.close();
      return result;
    }
    case 'undici-agent': {
      // `connections: 1`: without it, a cold burst opens one session per request, as a Client
      // counts as busy while it connects with requests queued.
      const agent = new Agent({ allowH2: true, pipelining: c, connections: 1, connect: { ca } });
      const result = await closedLoop('undici Agent', c, async () => {
        const { body } = await agent.request({ origin, path: '/', method: 'GET' });
        await body.text();
      }, args.durationMs, args.warmupMs);
      // With one connection the Agent keeps a Client, whose stats say `connected: true`.
      const stats = agent.stats[origin]?.connected;
      const connected = typeof stats === 'boolean' ? Number(stats) : stats;
      if (connected !== 1) process.stderr.write(`undici Agent held ${String(connected)} connections at c=${c}\n`);
      await agent.close();
      return result;
    }
    case 'muxpool': {
      // One session carrying all C streams, like every other client here.
      const pool = new ConnectionPool({ tls: { ca }, maxStreams: Math.max(100, c) });
      const result = await closedLoop('muxpool', c, async () => {
        const res = await pool.request(url);
        await res.text();
      }, args.durationMs, args.warmupMs);
      const stats = await pool.stats();
      if (stats.dialed !== 1) process.stderr.write(`muxpool dialed ${stats.dialed} connections at c=${c}\n`);
      await pool.close();
      return result;
    }
    default:
      throw new Error(`unknown client ${client}`);
  }
}

try {
  results.push(...(await runRounds(clients, args.concurrency, args.rounds, runClient)));
  if (idleConnections > 0) {
    for (const client of ['node', 'muxpool'] as const) {
      const figures = await idleMemory(client);
      memory.push(figures);
      process.stderr.write(`idle ${figures.client}: ${(figures.totalBytes / 1024).toFixed(1)} KiB heap+external, ${(figures.rssBytes / 1024).toFixed(1)} KiB RSS per connection\n`);
    }
  }
} finally {
  await h2o?.stop();
  await server.stop();
  await files.remove();
}

const setup = [
  process.version,
  serverKind === 'h2o' ? 'TLS, h2o server (1 thread)' : 'TLS, node:http2 server',
  'one session per client',
  `${args.durationMs / 1000} s per cell`,
  `${args.rounds} round${args.rounds === 1 ? '' : 's'}${args.rounds > 1 ? ' (median, range)' : ''}`,
  HAS_TASKSET ? 'server on core 0, clients on core 1' : 'no taskset',
].join(', ');
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
const memoryTable =
  memory.length === 0
    ? ''
    : [
        `\n### memory per idle connection (${memory[0]?.connections ?? 0} connections to the same server, after gc; each client in a fresh process)\n`,
        '| client | JS heap | external | heap + external | RSS (all native memory too) |',
        '|---|---|---|---|---|',
        ...memory.map((m) => `| ${m.client} | ${kib(m.heapUsedBytes)} | ${kib(m.externalBytes)} | ${kib(m.totalBytes)} | ${kib(m.rssBytes)} |`),
        '',
        "node:http2 keeps its session (nghttp2) in native memory that it does not report as external: only the RSS column counts it. muxpool's figure is its pools with one connection each, less the same pools empty.",
      ].join('\n');
const markdown = `## bench:h2 (${setup})\n${table(results, ['node:http2', 'undici Client'])}${memoryTable}`;
console.log(markdown);
console.log(`\nresults: ${await saveResults('h2', results, markdown, { memory })}`);
