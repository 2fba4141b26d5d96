/**
 * fetch's client CPU per request, A/B: Node's global fetch with its default dispatcher against
 * fetch with a muxpool `ConnectionPool` from one or more builds (e.g. this tree's and a copy of
 * the build before a change), in alternating bursts of a fixed number of requests in one process.
 * CPU time (user + system, `process.cpuUsage`) per request, not wall time: on a shared machine
 * it moves much less with what else runs. The server is a node:http(s) process pinned to core 0
 * (run this on core 1). Usage:
 *   node build/bench/fetch-cpu.js [--scheme https|http] [--concurrency 1] [--requests 2000]
 *     [--bursts 6] [--pools build/src/index.js,/tmp/old-build/src/index.js | none] [--no-node]
 * `--raw`: no fetch at all, each dispatcher's `dispatch()` driven directly with a handler shaped
 * like Node fetch's (the same options, the header Buffers turned into strings, the body pushed
 * into a Readable): the dispatcher's own share of fetch's cost, with the WHATWG layer left out.
 * Prints per-burst figures to stderr and the medians; bounded by bursts × clients and a deadline.
 */
// First: Node's own default dispatcher is made before undici 7 is imported (see node-fetch.ts).
import { nodeDefaultDispatcher } from './lib/node-fetch.js';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { benchCertificates } from './lib/h2-bench.js';
import { startServerProcess } from './lib/run.js';

const argv = process.argv.slice(2);
const get = (flag: string): string | undefined => {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
};
const scheme = get('--scheme') ?? 'https';
const c = Number(get('--concurrency') ?? 1);
const perBurst = Number(get('--requests') ?? 2000);
const bursts = Number(get('--bursts') ?? 6);
const poolModules = (get('--pools') ?? new URL('../src/index.js', import.meta.url).pathname)
  .split(',')
  .filter((path) => path !== '' && path !== 'none');
const withNode = !argv.includes('--no-node');
const raw = argv.includes('--raw');

interface PoolLike {
  close(): Promise<void>;
}
type PoolCtor = new (options: object) => PoolLike;

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
process.removeAllListeners('warning');

interface Dispatcher {
  dispatch(options: object, handler: object): boolean;
}

interface Client {
  name: string;
  init: RequestInit & { dispatcher?: unknown };
  samples: number[];
  /** System time (µs/req) of each burst: the syscalls' share. */
  system: number[];
  /** Wall time per request of each burst (at c = 1: the latency). */
  wall: number[];
  close(): Promise<void>;
}
const clients: Client[] = [];
if (withNode) clients.push({ name: 'fetch (Node default)', init: (raw ? { dispatcher: nodeDefaultDispatcher } : {}) as Client['init'], samples: [], system: [], wall: [], close: async () => {} });
// Every build is loaded before the server starts: a wrong path fails without leaving it behind.
const ctors: PoolCtor[] = [];
for (const path of poolModules) ctors.push(((await import(pathToFileURL(resolve(path)).href)) as { ConnectionPool: PoolCtor }).ConnectionPool);

const files = await benchCertificates('fetch-cpu');
const server = await startServerProcess('./h1-server.js', scheme === 'https' ? [files.keyPath, files.certPath] : []);
const url = `${scheme}://127.0.0.1:${server.port}/`;
const deadline = performance.now() + 110_000;
for (const [i, path] of poolModules.entries()) {
  const pool = new (ctors[i] as PoolCtor)({ maxPerHost: c, tls: { rejectUnauthorized: false } });
  clients.push({ name: `fetch + muxpool #${i} (${path})`, init: { dispatcher: pool } as RequestInit, samples: [], system: [], wall: [], close: () => pool.close() });
}

/** The options Node's fetch passes to `dispatch()` for a plain GET. */
const FETCH_HEADERS = { accept: '*/*', 'accept-language': '*', 'sec-fetch-mode': 'cors', 'user-agent': 'node', 'accept-encoding': 'gzip, deflate' };

/** One request through `dispatcher.dispatch()` with a handler doing what fetch's does with what it gets. */
function rawRequest(dispatcher: Dispatcher): Promise<void> {
  const origin = url.slice(0, -1);
  return new Promise((resolve, reject) => {
    let body: Readable | undefined;
    const chunks: Buffer[] = [];
    dispatcher.dispatch(
      { path: '/', origin, method: 'GET', body: null, headers: { ...FETCH_HEADERS }, maxRedirections: 0, upgrade: undefined },
      {
        onConnect(): void {},
        onResponseStarted(): void {},
        onHeaders(_status: number, rawHeaders: Buffer[], resume: () => void): boolean {
          const fields: string[] = [];
          for (let i = 0; i < rawHeaders.length; i++) fields.push((rawHeaders[i] as Buffer).toString('latin1'));
          body = new Readable({ read: resume });
          body.on('data', (chunk: Buffer) => chunks.push(chunk));
          return true;
        },
        onData(chunk: Buffer): boolean {
          return (body as Readable).push(chunk);
        },
        onComplete(): void {
          (body as Readable).push(null);
          (body as Readable).once('end', () => resolve());
        },
        onError(err: Error): void {
          reject(err);
        },
      },
    );
  });
}

async function burst(client: Client, n: number): Promise<{ total: number; system: number; wall: number }> {
  const dispatcher = client.init.dispatcher as Dispatcher;
  let left = n;
  const start = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      if (raw) while (left-- > 0) await rawRequest(dispatcher);
      else while (left-- > 0) await (await fetch(url, client.init)).text();
    }),
  );
  const used = process.cpuUsage(start);
  const wall = ((performance.now() - t0) * 1000) / n;
  if (performance.now() > deadline) throw new Error('fetch-cpu: longer than 110 s; use fewer requests or bursts');
  return { total: (used.user + used.system) / n, system: used.system / n, wall };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

try {
  // Warm-up: connections open, code optimized.
  for (const client of clients) await burst(client, Math.min(perBurst, 1000));
  for (let b = 0; b < bursts; b++) {
    for (let j = 0; j < clients.length; j++) {
      const client = clients[(b + j) % clients.length] as Client;
      const { total, system, wall } = await burst(client, perBurst);
      client.samples.push(total);
      client.system.push(system);
      client.wall.push(wall);
      process.stderr.write(`burst ${b + 1}/${bursts} ${client.name}: ${total.toFixed(1)} µs CPU/req (${system.toFixed(1)} system), ${wall.toFixed(1)} µs wall/req\n`);
    }
  }
  console.log(`${raw ? 'dispatch() only, ' : ''}${scheme} c=${c}, ${bursts} bursts of ${perBurst} requests, CPU µs/req (median, min; system median; wall µs/req median; median per-round CPU ratio):`);
  // Each burst against the same round's burst of the first client: the machine's load drifts
  // between rounds, far less within one.
  const first = clients[0] as Client;
  for (const client of clients) {
    const paired = client.samples.map((v, i) => v / (first.samples[i] as number));
    console.log(`  ${client.name}: ${median(client.samples).toFixed(1)}, ${Math.min(...client.samples).toFixed(1)}; ${median(client.system).toFixed(1)}; ${median(client.wall).toFixed(1)}; per-round ratio to the first ${median(paired).toFixed(3)}`);
  }
} finally {
  for (const client of clients) await client.close();
  await server.stop();
  await files.remove();
}
