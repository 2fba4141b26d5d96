/**
 * bench:h3 — muxpool over HTTP/3 against muxpool over HTTP/2 and a raw node:http2 session, all
 * on ONE Caddy instance (tls internal, a small fixed body), at several concurrencies, in one
 * run. Every client runs its C streams on one connection (Caddy grants 100 streams per QUIC
 * connection, so at C > 100 the rest wait in the pool's queue). Also measured: the dial time
 * (resolve + handshake) of a fresh and of a resumed connection, HTTP/3 and HTTP/2, and the
 * memory each idle QUIC connection costs (approximate). Usage:
 *   npm run bench:h3 -- [--duration S] [--warmup S] [--concurrency 1,16,128] [--rounds N]
 *                       [--clients h3,h2,node] [--samples 30] [--idle 50]
 * The script runs node with --expose-gc (for the memory figure).
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, type HttpPoolEntry, type PoolKey } from '../src/index.js';
import type { H3Connection } from '../src/protocol/h3/connection.js';
import { startCaddy } from '../test/helpers/caddy.js';
import { rawH2Get } from './lib/h2-bench.js';
import { type Comparison, HAS_TASKSET, type Result, closedLoop, parseArgs, runRounds, saveResults, table } from './lib/run.js';

const argv = process.argv.slice(2);
const args = parseArgs(argv);
const numberFlag = (flag: string, fallback: number): number => {
  const i = argv.indexOf(flag);
  const value = i >= 0 ? Number(argv[i + 1]) : NaN;
  return Number.isInteger(value) && value > 0 ? value : fallback;
};
const HANDSHAKE_SAMPLES = numberFlag('--samples', 30);
const IDLE_CONNECTIONS = numberFlag('--idle', 50);
const clients = args.clients ?? ['h3', 'h2', 'node'];
const NAMES: Record<string, string> = { h3: 'muxpool h3', h2: 'muxpool h2', node: 'node:http2' };

const caddy = await startCaddy({ body: 'hello world\n', ...(HAS_TASKSET ? { cpus: '0' } : {}) });
const url = `${caddy.url}/`;
const results: Result[] = [];
const notes: string[] = [];

/** One client at concurrency `c`, on a connection (or pool) of its own, closed afterwards. */
async function runClient(client: string, c: number): Promise<Result> {
  switch (client) {
    case 'h3':
    case 'h2': {
      // One connection: a C-stream burst must not spread over several.
      const pool = new ConnectionPool({ tls: { ca: caddy.caCert }, maxPerHost: 1, maxStreams: Math.max(100, c) });
      const version = client === 'h3' ? HttpVersion.Http3Only : HttpVersion.Http2;
      const options = { version };
      const result = await closedLoop(`muxpool ${client}`, c, async () => {
        const res = await pool.request(url, options);
        await res.text();
      }, args.durationMs, args.warmupMs);
      const stats = await pool.stats();
      if (stats.dialed !== 1) process.stderr.write(`muxpool ${client} dialed ${stats.dialed} connections at c=${c}\n`);
      await pool.close();
      return result;
    }
    case 'node': {
      const session = http2.connect(caddy.url, { ca: caddy.caCert });
      session.on('error', () => {});
      await once(session, 'connect');
      const result = await closedLoop('node:http2', c, () => rawH2Get(session), args.durationMs, args.warmupMs);
      await new Promise<void>((resolve) => session.close(() => resolve()));
      return result;
    }
    default:
      throw new Error(`unknown client ${client} (known: ${Object.keys(NAMES).join(', ')})`);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

/** Waits, bounded, for the server's session ticket on an HTTP/3 connection. */
async function ticketArrived(connection: H3Connection): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (connection.quic.session !== undefined) return true;
    await sleep(5);
  }
  return false;
}

interface DialFigures {
  label: string;
  p50Ms: number;
  /** Samples whose connection reports a resumed handshake; undefined where it reports nothing. */
  resumedCount: number | undefined;
  samples: number;
}

/** One pool that dials `version`, keeping session tickets (`resume`) or none. */
class DialSampler {
  readonly pool: ConnectionPool;
  readonly times: number[] = [];
  resumedCount: number | undefined;
  private readonly key: PoolKey;

  constructor(
    readonly version: HttpVersion,
    readonly resume: boolean,
  ) {
    this.pool = new ConnectionPool({ tls: { ca: caddy.caCert }, maxPerHost: 1, ...(resume ? {} : { tlsSessionCacheSize: 0 }) });
    this.key = this.pool.keyFor(url);
  }

  /** Dials (the key's earlier connection is invalidated first), then lets the new one settle. */
  async sample(record: boolean): Promise<void> {
    await this.pool.invalidate(this.key);
    // The closed connection's last packets go out before the clock starts.
    await sleep(10);
    const t0 = performance.now();
    const entry: HttpPoolEntry | undefined = await this.pool.getOrCreate(this.key, this.version);
    const elapsedMs = performance.now() - t0;
    if (entry === undefined) throw new Error(`no ${this.version} connection`);
    await this.pool.release(entry);
    if (record) {
      this.times.push(elapsedMs);
      const resumed = entry.connection.resumed;
      if (resumed !== undefined) this.resumedCount = (this.resumedCount ?? 0) + (resumed ? 1 : 0);
    }
    // The next dial resumes this connection's session (a TLS 1.3 ticket is for one use). Both
    // samplers wait for it, so post-handshake packets never overlap the other one's dial.
    if (entry.connection.protocol === 'h3') await ticketArrived(entry.connection as H3Connection);
    else await sleep(20);
  }

  figures(): DialFigures {
    return {
      label: `${this.version === HttpVersion.Http3Only ? 'HTTP/3 (QUIC)' : 'HTTP/2 (TCP + TLS)'} ${this.resume ? 'resumed' : 'fresh'}`,
      p50Ms: median(this.times),
      resumedCount: this.resumedCount,
      samples: this.times.length,
    };
  }
}

/**
 * Dial times of new connections on a pool that keeps no session (full handshakes) and on one
 * that resumes, sampled in turns so a change of load on the machine hits both alike.
 */
async function dialTimes(version: HttpVersion): Promise<DialFigures[]> {
  const samplers = [new DialSampler(version, false), new DialSampler(version, true)];
  try {
    // The first connection warms the config and the module, and leaves the first ticket.
    for (const sampler of samplers) await sampler.sample(false);
    for (let i = 0; i < HANDSHAKE_SAMPLES; i++) {
      for (const sampler of samplers) await sampler.sample(true);
    }
  } finally {
    for (const sampler of samplers) await sampler.pool.close();
  }
  return samplers.map((sampler) => sampler.figures());
}

function resumedText(figures: DialFigures): string {
  return figures.resumedCount === undefined ? 'not reported' : `${figures.resumedCount}/${figures.samples}`;
}

interface MemoryFigures {
  protocol: string;
  connections: number;
  rssBytes: number;
  externalBytes: number;
  heapUsedBytes: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

async function settleAndMeasure(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(20);
  }
  return process.memoryUsage();
}

/**
 * N idle connections, one per pool (a pool closes idle extra connections of an origin as soon as
 * another has room, so one pool would not keep N); memory delta per connection.
 */
async function idleMemory(version: HttpVersion): Promise<MemoryFigures> {
  const n = IDLE_CONNECTIONS;
  const open = async (): Promise<ConnectionPool> => {
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const entry = await pool.getOrCreate(pool.keyFor(url), version);
    if (entry !== undefined) await pool.release(entry);
    return pool;
  };
  // Warm the config and the native module outside the measurement.
  await (await open()).close();
  await sleep(50);
  const before = await settleAndMeasure();
  const pools = await Promise.all(Array.from({ length: n }, () => open()));
  try {
    // Post-handshake packets (tickets, MAX_STREAMS) settle before the reading.
    await sleep(200);
    const after = await settleAndMeasure();
    let connections = 0;
    for (const pool of pools) {
      const stats = await pool.stats();
      connections += version === HttpVersion.Http3Only ? stats.http3Connections : stats.http2Connections;
    }
    const count = Math.max(1, connections);
    return {
      protocol: version === HttpVersion.Http3Only ? 'HTTP/3' : 'HTTP/2',
      connections: count,
      rssBytes: (after.rss - before.rss) / count,
      externalBytes: (after.external - before.external) / count,
      heapUsedBytes: (after.heapUsed - before.heapUsed) / count,
    };
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
  }
}

const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
const dials: DialFigures[] = [];
const memory: MemoryFigures[] = [];
try {
  // Memory first, while little has been allocated and freed: a heap full of freed blocks makes
  // the RSS delta smaller than what the connections really take.
  for (const version of [HttpVersion.Http3Only, HttpVersion.Http2]) {
    const figures = await idleMemory(version);
    memory.push(figures);
    process.stderr.write(`idle ${figures.protocol}: ${kib(figures.rssBytes)} RSS, ${kib(figures.externalBytes)} external per connection\n`);
  }
  for (const version of [HttpVersion.Http3Only, HttpVersion.Http2]) {
    for (const figures of await dialTimes(version)) {
      dials.push(figures);
      process.stderr.write(`${figures.label}: p50 ${figures.p50Ms.toFixed(2)} ms (${resumedText(figures)} resumed)\n`);
    }
  }

  results.push(...(await runRounds(clients, args.concurrency, args.rounds, runClient)));
  if (args.concurrency.some((c) => c > 100)) notes.push('Caddy grants 100 streams per QUIC connection: above that, HTTP/3 requests queue in the pool.');
} finally {
  await caddy.stop();
}

const setup = [
  process.version,
  'Caddy 2.6 tls internal, one connection per client',
  `${args.durationMs / 1000} s per cell`,
  `${args.rounds} round${args.rounds === 1 ? '' : 's'}${args.rounds > 1 ? ' (median, range)' : ''}`,
  HAS_TASKSET ? 'Caddy on core 0, clients on core 1' : 'no taskset',
].join(', ');
const references = ['muxpool h2', 'node:http2'].filter((name) => clients.some((client) => NAMES[client] === name));
const markdown = [
  `## bench:h3 (${setup})`,
  table(results, references),
  '',
  `### dial time (resolve + handshake, ${HANDSHAKE_SAMPLES} samples each, new connection on one pool)`,
  '',
  '| connection | p50 ms | resumed |',
  '|---|---|---|',
  ...dials.map((d) => `| ${d.label} | ${d.p50Ms.toFixed(2)} | ${resumedText(d)} |`),
  '',
  `### memory per idle connection (approximate: process delta over ${IDLE_CONNECTIONS} connections${gc === undefined ? ', no --expose-gc' : ', after gc'})`,
  '',
  '| protocol | connections | RSS | external | JS heap |',
  '|---|---|---|---|---|',
  ...memory.map((m) => `| ${m.protocol} | ${m.connections} | ${kib(m.rssBytes)} | ${kib(m.externalBytes)} | ${kib(m.heapUsedBytes)} |`),
  ...notes.map((note) => `\n${note}`),
].join('\n');
console.log(markdown);
// The suite's summary: HTTP/3 against HTTP/2 on the same pool matters most here.
const comparisons: Comparison[] = [
  { subject: 'muxpool h3', peer: 'muxpool h2' },
  { subject: 'muxpool h3', peer: 'node:http2' },
  { subject: 'muxpool h2', peer: 'node:http2' },
];
console.log(`\nresults: ${await saveResults('h3', results, markdown, { dials, memory, comparisons })}`);
