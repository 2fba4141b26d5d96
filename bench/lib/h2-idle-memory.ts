/**
 * Memory per idle HTTP/2 connection: N connections to one local server, each having served one
 * request and then left idle, through muxpool (our engine) or through raw `node:http2`
 * sessions, each client in a fresh process of its own (run with --expose-gc), so that neither
 * reuses pages the other freed. Usage (bench:h2 runs it once per client):
 *   node --expose-gc h2-idle-memory.js muxpool|node ORIGIN CA_PATH N
 * Prints one JSON line: per-connection JS heap, external (ArrayBuffers included) and RSS deltas.
 *
 * A pool keeps one idle HTTP/2 connection per origin (extra ones close once another has room),
 * so muxpool's N connections live in N pools; the same N pools, unused, are measured first and
 * subtracted, so the figure is what a connection costs, not what an empty pool costs.
 * The raw sessions' native nghttp2 state is outside the JS heap and only part of it is reported
 * as external memory: the RSS column shows the rest (approximate: the allocator keeps freed pages).
 */
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion } from '../../src/index.js';

export interface IdleMemoryFigures {
  client: string;
  connections: number;
  heapUsedBytes: number;
  externalBytes: number;
  /** heapUsed + external: the figure the goal compares. */
  totalBytes: number;
  rssBytes: number;
}

const [client, origin, caPath, countText] = process.argv.slice(2);
if ((client !== 'muxpool' && client !== 'node') || origin === undefined || caPath === undefined) {
  throw new Error('usage: h2-idle-memory.js muxpool|node ORIGIN CA_PATH [N]');
}
const ca = readFileSync(caPath, 'utf8');
const n = Math.max(1, Math.min(2000, Number(countText ?? 200)));
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('h2-idle-memory.js needs node --expose-gc');

async function settleAndMeasure(): Promise<NodeJS.MemoryUsage> {
  // Bounded: a few full collections with a pause for finalizers and freed native handles.
  for (let i = 0; i < 4; i++) {
    gc?.();
    await sleep(25);
  }
  return process.memoryUsage();
}

function delta(client: string, before: NodeJS.MemoryUsage, after: NodeJS.MemoryUsage, connections: number): IdleMemoryFigures {
  const heap = (after.heapUsed - before.heapUsed) / connections;
  const external = (after.external - before.external) / connections;
  return { client, connections, heapUsedBytes: heap, externalBytes: external, totalBytes: heap + external, rssBytes: (after.rss - before.rss) / connections };
}

async function rawSessions(): Promise<IdleMemoryFigures> {
  const open = async (): Promise<http2.ClientHttp2Session> => {
    const session = http2.connect(origin as string, { ca });
    session.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const stream = session.request({ ':method': 'GET', ':path': '/' }, { endStream: true });
      stream.on('data', () => {});
      stream.once('end', () => resolve());
      stream.once('error', reject);
    });
    return session;
  };
  await new Promise<void>((resolve) => {
    void open().then((session) => session.close(() => resolve()));
  });
  const before = await settleAndMeasure();
  const sessions = await Promise.all(Array.from({ length: n }, () => open()));
  await sleep(200);
  const after = await settleAndMeasure();
  await Promise.all(sessions.map((session) => new Promise<void>((resolve) => session.close(() => resolve()))));
  return delta('node:http2', before, after, sessions.length);
}

async function muxpoolConnections(): Promise<IdleMemoryFigures> {
  const url = `${origin as string}/`;
  const use = async (pool: ConnectionPool): Promise<void> => {
    const res = await pool.request(url, { version: HttpVersion.Http2 });
    await res.arrayBuffer();
  };
  const warm = new ConnectionPool({ tls: { ca } });
  await use(warm);
  await warm.close();
  const pools = Array.from({ length: n }, () => new ConnectionPool({ tls: { ca } }));
  // The empty pools are the baseline: what remains is the connections.
  const before = await settleAndMeasure();
  await Promise.all(pools.map(use));
  await sleep(200);
  const after = await settleAndMeasure();
  let connections = 0;
  for (const pool of pools) connections += (await pool.stats()).http2Connections;
  await Promise.all(pools.map((pool) => pool.close()));
  return delta('muxpool', before, after, Math.max(1, connections));
}

const figures = client === 'node' ? await rawSessions() : await muxpoolConnections();
process.stdout.write(`${JSON.stringify(figures)}\n`);
