/**
 * The soak: one pool, all three protocols, against the embedded server in another process, with
 * aborts, short deadlines, dropped bodies, GOAWAYs and server restarts mixed in. Every request's
 * outcome is decided before it is sent (a status and a body checked by length and SHA-256, or an
 * error code), so the report can count what settled as asked, what settled otherwise (by
 * protocol, kind and code) and what never settled (lost). Heap and RSS are sampled after a
 * forced GC (run node with --expose-gc), and handles are counted at the end, from creation.
 *
 * Used by `bench/soak.ts` (`npm run soak`) and by the short soak in `npm test`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ConnectionPool, HttpVersion, MuxpoolError, type Resolver, type Response } from '../../src/index.js';
import { type GeneratedCertificates, generateCertificates } from '../../src/server/certs.js';
import { forceGc, formatCounts, type HandleTracker, trackHandles } from './handle-tracker.js';
import { mulberry32 } from './prng.js';

export interface SoakOptions {
  /** Stop issuing after this many requests… */
  requests: number;
  /** …or after this many seconds, whichever comes first. */
  seconds: number;
  /** Requests in flight at once. Default 32. */
  concurrency?: number;
  /** Seed of the request mix. Default 1. */
  seed?: number;
  /** GOAWAY on every HTTP/2 and HTTP/3 connection this often, under load (0: never). Default 30 s. */
  goawayEveryMs?: number;
  /** Restart the server this often, alternately in place and by killing its process (0: never). Default 120 s. */
  restartEveryMs?: number;
  /** Heap and RSS sample interval. Default 10 s. */
  sampleEveryMs?: number;
  /** Samples before this much time are warm-up and not counted in growth. Default 20 % of `seconds`. */
  warmupMs?: number;
  /** Kinds of request left out of the mix (to tell which one provokes a failure). */
  exclude?: readonly string[];
  /** Protocols in the mix (default all three). */
  protocols?: readonly Protocol[];
  /** Restart by SIGKILL every other time (default true); false restarts in place only. */
  restartByKill?: boolean;
  /** The deadline of requests that should succeed (a hang shows as REQUEST_TIMEOUT). Default 30 s. */
  requestTimeoutMs?: number;
  /** Track handles from creation with async_hooks (costs some speed). Default true. */
  trackHandles?: boolean;
  /** Progress lines go here. */
  log?: (line: string) => void;
}

export type Protocol = 'h1' | 'h2' | 'h3';

export interface MemorySample {
  atMs: number;
  requests: number;
  heapUsedMB: number;
  rssMB: number;
  externalMB: number;
}

export interface SoakReport {
  seed: number;
  durationMs: number;
  issued: number;
  settledAsAsked: number;
  /** Settled, but not as decided in advance: `protocol kind: what happened` → count. */
  unexpected: Record<string, number>;
  unexpectedTotal: number;
  /** Never settled: requests still pending after the grace period, by protocol and kind. */
  lost: Record<string, number>;
  lostTotal: number;
  /** Requests by protocol and kind. */
  byKind: Record<string, number>;
  events: { goaways: number; restartsInPlace: number; restartsByKill: number; goawaysSeenByPool: number };
  memory: MemorySample[];
  /** Heap growth from the end of warm-up to the end (medians of three samples each side). */
  heapGrowthMB: number | undefined;
  rssGrowthMB: number | undefined;
  /** The pool's stats just before close. */
  poolDialed: number;
  poolClosed: number;
  closeMs: number;
  closeHung: boolean;
  /** Ref'd handles left after close (process.getActiveResourcesInfo(), minus those before). */
  activeHandlesLeft: Record<string, number>;
  /** Handles created during the soak and never destroyed (async_hooks), when tracked. */
  trackedHandlesLeft: Record<string, number> | undefined;
  /** Examples of unexpected outcomes, the first few of each key. */
  examples: Record<string, string[]>;
}

// -------------------------------------------------------------------------------------------
// The request mix

type Kind =
  | 'hello' // GET /: the greeting, byte for byte (it names the protocol)
  | 'small' // GET /bytes/N, N ≤ 4 KiB
  | 'medium' // GET /bytes/N, 64–256 KiB
  | 'echo' // POST /echo with random bytes: the same bytes back
  | 'status' // GET /status/204: no body
  | 'abort-before' // the signal is aborted before the request starts
  | 'abort-wait' // aborted 2 ms into a response that comes after 200 ms
  | 'abort-body' // aborted after the first chunk of a 1 MiB body
  | 'deadline' // timeoutMs: 1 on a response 1 s away
  | 'deadline-big' // timeoutMs: 1 on an 8 MiB body
  | 'drop' // 200, the body never read and the response dropped
  | 'dump'; // 200, the body discarded with dump()

const MIX: Array<[Kind, number]> = [
  ['hello', 20],
  ['small', 36],
  ['medium', 6],
  ['echo', 18],
  ['status', 4],
  ['abort-before', 1],
  ['abort-wait', 2],
  ['abort-body', 2],
  ['deadline', 2],
  ['deadline-big', 1],
  ['drop', 4],
  ['dump', 4],
];
export const KINDS: readonly string[] = MIX.map(([kind]) => kind);

const SMALL_SIZES = [0, 1, 100, 1_000, 4_096];
const MEDIUM_SIZES = [65_536, 100_000, 262_144];
const MAX_ECHO = 32_768;


type Expected =
  | { kind: 'response'; status: number; length: number; sha256: string; read: 'full' | 'drop' | 'dump' }
  | { kind: 'error'; code: string; where: 'request' | 'body' };

interface Plan {
  protocol: Protocol;
  kind: Kind;
  path: string;
  method: 'GET' | 'POST';
  body: Buffer | undefined;
  timeoutMs: number;
  abort: 'before' | 'wait' | 'body' | undefined;
  expected: Expected;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The embedded server answers /bytes/N with N bytes of 'x'. */
const xHashes = new Map<number, string>();
function xHash(n: number): string {
  let hash = xHashes.get(n);
  if (hash === undefined) {
    hash = sha256(Buffer.alloc(n, 120));
    xHashes.set(n, hash);
  }
  return hash;
}

const GREETING: Record<Protocol, Buffer> = {
  h1: Buffer.from("hello from muxpool's embedded server over HTTP/1.1\n"),
  h2: Buffer.from("hello from muxpool's embedded server over HTTP/2.0\n"),
  h3: Buffer.from("hello from muxpool's embedded server over HTTP/3\n"),
};

/** Normal requests have a deadline: a hang shows as REQUEST_TIMEOUT, not as a stuck soak. */
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

class Planner {
  private readonly random: () => number;
  private readonly noise: Buffer;
  private readonly mix: Array<[Kind, number]>;
  private readonly mixTotal: number;

  constructor(
    seed: number,
    exclude: readonly string[],
    private readonly requestTimeoutMs: number,
    private readonly protocols: readonly Protocol[],
  ) {
    this.random = mulberry32(seed);
    this.mix = MIX.filter(([kind]) => !exclude.includes(kind));
    this.mixTotal = this.mix.reduce((sum, [, weight]) => sum + weight, 0);
    // Echo bodies are windows into one random buffer: no per-request allocation.
    this.noise = Buffer.alloc(1 << 20);
    for (let i = 0; i < this.noise.length; i += 4) this.noise.writeUInt32LE(Math.floor(this.random() * 4_294_967_296), i);
  }

  private pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.random() * list.length)] as T;
  }

  next(): Plan {
    const protocol = this.pick(this.protocols);
    let roll = this.random() * this.mixTotal;
    let kind: Kind = 'hello';
    for (const [candidate, weight] of this.mix) {
      roll -= weight;
      if (roll < 0) {
        kind = candidate;
        break;
      }
    }
    const ok = (length: number, hash: string, read: 'full' | 'drop' | 'dump' = 'full', status = 200): Expected => ({
      kind: 'response',
      status,
      length,
      sha256: hash,
      read,
    });
    const base = { protocol, kind, method: 'GET' as const, body: undefined, timeoutMs: this.requestTimeoutMs, abort: undefined };
    switch (kind) {
      case 'hello':
        return { ...base, path: '/', expected: ok(GREETING[protocol].length, sha256(GREETING[protocol])) };
      case 'small':
      case 'medium': {
        const n = this.pick(kind === 'small' ? SMALL_SIZES : MEDIUM_SIZES);
        return { ...base, path: `/bytes/${n}`, expected: ok(n, xHash(n)) };
      }
      case 'echo': {
        const length = 1 + Math.floor(this.random() * MAX_ECHO);
        const offset = Math.floor(this.random() * (this.noise.length - length));
        const body = this.noise.subarray(offset, offset + length);
        return { ...base, method: 'POST', path: '/echo', body, expected: ok(length, sha256(body)) };
      }
      case 'status':
        return { ...base, path: '/status/204', expected: ok(0, xHash(0), 'full', 204) };
      case 'abort-before':
        return { ...base, path: '/', abort: 'before', expected: { kind: 'error', code: 'MUXPOOL_ERR_ABORTED', where: 'request' } };
      case 'abort-wait':
        return { ...base, path: '/delay/200', abort: 'wait', expected: { kind: 'error', code: 'MUXPOOL_ERR_ABORTED', where: 'request' } };
      case 'abort-body':
        return { ...base, path: '/bytes/1048576', abort: 'body', expected: { kind: 'error', code: 'MUXPOOL_ERR_ABORTED', where: 'body' } };
      case 'deadline':
        return { ...base, path: '/delay/1000', timeoutMs: 1, expected: { kind: 'error', code: 'MUXPOOL_ERR_REQUEST_TIMEOUT', where: 'request' } };
      case 'deadline-big':
        // The body cannot arrive in 1 ms; whether the deadline strikes before or after the
        // head, the code is the same (the `where` is not judged for deadlines).
        return { ...base, path: '/bytes/8388608', timeoutMs: 1, expected: { kind: 'error', code: 'MUXPOOL_ERR_REQUEST_TIMEOUT', where: 'body' } };
      case 'drop':
        return { ...base, path: '/bytes/16384', expected: ok(16_384, xHash(16_384), 'drop') };
      case 'dump':
        return { ...base, path: '/bytes/16384', expected: ok(16_384, xHash(16_384), 'dump') };
    }
  }
}

const VERSION: Record<Protocol, (typeof HttpVersion)[keyof typeof HttpVersion]> = {
  h1: HttpVersion.Http1_1,
  h2: HttpVersion.Http2,
  h3: HttpVersion.Http3Only,
};

const PROTOCOL_NAME: Record<string, Protocol> = { 'http/1.1': 'h1', h2: 'h2', h3: 'h3' };

/** What happened, in the shape `Expected` has: `undefined` means "as asked". */
function describeError(err: unknown): string {
  if (err instanceof MuxpoolError) {
    const wire = err.wireCode !== undefined ? ` wire 0x${err.wireCode.toString(16)}${err.origin !== undefined ? ` (${err.origin})` : ''}` : '';
    return `${err.code}${wire}${err.attempts !== undefined && err.attempts > 1 ? ` after ${err.attempts} attempts` : ''}`;
  }
  if (err instanceof Error) return `non-muxpool ${err.name}: ${err.message.slice(0, 80)}`;
  return `non-error ${String(err).slice(0, 80)}`;
}

async function runOne(pool: ConnectionPool, origin: string, plan: Plan): Promise<string | undefined> {
  const controller = plan.abort !== undefined ? new AbortController() : undefined;
  if (plan.abort === 'before') controller?.abort();
  const waitTimer = plan.abort === 'wait' ? setTimeout(() => controller?.abort(), 2) : undefined;
  let res: Response;
  try {
    res = await pool.request(origin + plan.path, {
      method: plan.method,
      version: VERSION[plan.protocol],
      timeoutMs: plan.timeoutMs,
      ...(plan.body !== undefined ? { body: plan.body } : {}),
      ...(controller !== undefined ? { signal: controller.signal } : {}),
    });
  } catch (err) {
    clearTimeout(waitTimer);
    const code = describeError(err);
    if (plan.expected.kind === 'error' && err instanceof MuxpoolError && plan.expected.code === err.code) return undefined;
    return `request failed: ${code}`;
  }
  clearTimeout(waitTimer);
  const got = PROTOCOL_NAME[res.protocol];
  if (got !== plan.protocol) {
    void res.dump().catch(() => undefined);
    return `wrong protocol ${res.protocol}`;
  }
  const expected = plan.expected;
  if (expected.kind === 'response' && res.status !== expected.status) {
    void res.dump().catch(() => undefined);
    return `status ${res.status}`;
  }
  if (expected.kind === 'response' && expected.read === 'drop') return undefined;
  if (expected.kind === 'response' && expected.read === 'dump') {
    try {
      await res.dump();
      return undefined;
    } catch (err) {
      return `dump failed: ${describeError(err)}`;
    }
  }
  // Read the body in chunks, hashing as it comes.
  const hash = createHash('sha256');
  let length = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      length += chunk.byteLength;
      if (plan.abort === 'body' && controller !== undefined && !controller.signal.aborted) controller.abort();
    }
  } catch (err) {
    const code = describeError(err);
    if (expected.kind === 'error' && err instanceof MuxpoolError && expected.code === err.code) return undefined;
    return `body failed: ${code}`;
  }
  if (expected.kind === 'error') return `succeeded (${res.status}, ${length} bytes)`;
  if (length !== expected.length) return `body length ${length} (expected ${expected.length})`;
  if (hash.digest('hex') !== expected.sha256) return 'body bytes differ';
  return undefined;
}

// -------------------------------------------------------------------------------------------
// The server process

interface ServerProcess {
  child: ChildProcess;
  port: number;
  http3: boolean;
}

const SERVER_SCRIPT = fileURLToPath(new URL('./soak-server.js', import.meta.url));

interface ServerMessage {
  event: 'ready' | 'done' | 'error';
  port?: number;
  http3?: boolean;
  http3Error?: string;
  message?: string;
}

function nextMessage(child: ChildProcess, event: ServerMessage['event']): Promise<ServerMessage> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: ServerMessage): void => {
      if (message.event === 'error') {
        cleanup();
        reject(new Error(`soak server: ${message.message ?? 'error'}`));
      } else if (message.event === event) {
        cleanup();
        resolve(message);
      }
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`soak server exited (${String(code)}) while waiting for ${event}`));
    };
    const cleanup = (): void => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

async function spawnServer(port: number, certificates: GeneratedCertificates): Promise<ServerProcess> {
  const child = fork(SERVER_SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  const ready = nextMessage(child, 'ready');
  child.send({ cmd: 'start', port, certificates });
  const message = await ready;
  if (message.http3 !== true) throw new Error(`soak server has no HTTP/3: ${message.http3Error ?? 'unknown'}`);
  return { child, port: message.port ?? port, http3: true };
}

async function restartInPlace(server: ServerProcess): Promise<void> {
  const ready = nextMessage(server.child, 'ready');
  server.child.send({ cmd: 'restart' });
  const message = await ready;
  if (message.http3 !== true) throw new Error(`soak server lost HTTP/3 on restart: ${message.http3Error ?? 'unknown'}`);
}

async function stopServer(server: ServerProcess, kill: boolean): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  // 'close', not 'exit': the IPC pipe closes after the process exits.
  const exited = once(server.child, 'close');
  if (kill) server.child.kill('SIGKILL');
  else server.child.send({ cmd: 'exit' });
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

// -------------------------------------------------------------------------------------------
// The run

/** `localhost` is the certificate's name; pin it to IPv4 loopback, where the server listens. */
const loopback: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];

function memorySample(startedAt: number, requests: number): MemorySample {
  forceGc();
  const usage = process.memoryUsage();
  const mb = (bytes: number): number => Math.round((bytes / 1_048_576) * 100) / 100;
  return { atMs: Math.round(performance.now() - startedAt), requests, heapUsedMB: mb(usage.heapUsed), rssMB: mb(usage.rss), externalMB: mb(usage.external) };
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function growth(samples: MemorySample[], warmupMs: number, field: 'heapUsedMB' | 'rssMB'): number | undefined {
  const after = samples.filter((sample) => sample.atMs >= warmupMs);
  if (after.length < 4) return undefined;
  const first = median(after.slice(0, 3).map((sample) => sample[field]));
  const last = median(after.slice(-3).map((sample) => sample[field]));
  if (first === undefined || last === undefined) return undefined;
  return Math.round((last - first) * 100) / 100;
}

function countActive(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

function subtract(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const left: Record<string, number> = {};
  for (const [name, n] of Object.entries(after)) if (n > (before[name] ?? 0)) left[name] = n - (before[name] ?? 0);
  return left;
}

const add = (record: Record<string, number>, key: string, n = 1): void => {
  record[key] = (record[key] ?? 0) + n;
};

const CLOSE_LIMIT_MS = 15_000;

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const seed = options.seed ?? 1;
  const concurrency = options.concurrency ?? 32;
  const goawayEveryMs = options.goawayEveryMs ?? 30_000;
  const restartEveryMs = options.restartEveryMs ?? 120_000;
  const sampleEveryMs = options.sampleEveryMs ?? 10_000;
  const warmupMs = options.warmupMs ?? options.seconds * 200;
  const log = options.log ?? (() => undefined);

  // Touch the standard streams first: they are created lazily, on first use, and would count.
  void process.stdout;
  void process.stderr;
  const activeBefore = countActive();
  const certificates = await generateCertificates({ caName: 'muxpool soak CA' });
  let server = await spawnServer(0, certificates);
  const origin = `https://localhost:${server.port}`;
  // The tracker starts after the server child is up: its IPC pipe is the test's, not the pool's.
  const tracker: HandleTracker | undefined =
    options.trackHandles === false ? undefined : trackHandles((type, resource) => type === 'PIPEWRAP' || resource === server.child);
  const pool = new ConnectionPool({ tls: { ca: certificates.caCert }, resolver: loopback, maxPerHost: 8, readTimeoutMs: 10_000, connectTimeoutMs: 10_000 });
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const planner = new Planner(seed, options.exclude ?? [], requestTimeoutMs, options.protocols ?? ['h1', 'h2', 'h3']);
  // How long a request may stay unsettled after the soak stops issuing before it counts as lost.
  const lostAfterMs = requestTimeoutMs + 10_000;

  const report: SoakReport = {
    seed,
    durationMs: 0,
    issued: 0,
    settledAsAsked: 0,
    unexpected: {},
    unexpectedTotal: 0,
    lost: {},
    lostTotal: 0,
    byKind: {},
    events: { goaways: 0, restartsInPlace: 0, restartsByKill: 0, goawaysSeenByPool: 0 },
    memory: [],
    heapGrowthMB: undefined,
    rssGrowthMB: undefined,
    poolDialed: 0,
    poolClosed: 0,
    closeMs: 0,
    closeHung: false,
    activeHandlesLeft: {},
    trackedHandlesLeft: undefined,
    examples: {},
  };

  // What the pool saw of the server's GOAWAYs (one event per connection that received one).
  const onGoaway = (): void => {
    report.events.goawaysSeenByPool++;
  };
  subscribe('muxpool:goaway', onGoaway);
  const startedAt = performance.now();
  const elapsed = (): number => performance.now() - startedAt;
  const pending = new Map<number, Plan>();
  let nextId = 0;
  let nextGoaway = goawayEveryMs > 0 ? goawayEveryMs : Infinity;
  let nextRestart = restartEveryMs > 0 ? restartEveryMs : Infinity;
  let nextSample = 0;
  let restarts = 0;
  let stopping = false;
  // Events that must not overlap traffic (restarts) stop the workers at a barrier first.
  let barrier: Promise<void> | undefined;

  const settle = (id: number, plan: Plan, outcome: string | undefined): void => {
    pending.delete(id);
    if (outcome === undefined) {
      report.settledAsAsked++;
      return;
    }
    const key = `${plan.protocol} ${plan.kind}: ${outcome}`;
    add(report.unexpected, key);
    report.unexpectedTotal++;
    const list = (report.examples[key] ??= []);
    if (list.length < 3) list.push(`request #${id} ${plan.method} ${plan.path} at ${Math.round(elapsed())} ms`);
  };

  /** A restart: no request in flight while the server goes away (each outcome stays decidable). */
  const restart = async (): Promise<void> => {
    while (pending.size > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    restarts++;
    if (restarts % 2 === 1 || options.restartByKill === false) {
      log(`restart in place at ${Math.round(elapsed())} ms`);
      await restartInPlace(server);
      report.events.restartsInPlace++;
    } else {
      log(`restart by SIGKILL at ${Math.round(elapsed())} ms`);
      await stopServer(server, true);
      server = await spawnServer(server.port, certificates);
      report.events.restartsByKill++;
    }
  };

  const maybeEvents = async (): Promise<void> => {
    const now = elapsed();
    if (now >= nextSample) {
      nextSample = now + sampleEveryMs;
      const sample = memorySample(startedAt, report.issued);
      report.memory.push(sample);
      log(
        `${Math.round(sample.atMs / 1000)} s: ${report.issued} issued, ${report.settledAsAsked} as asked, ${report.unexpectedTotal} unexpected; heap ${sample.heapUsedMB} MB, rss ${sample.rssMB} MB`,
      );
    }
    if (now >= nextGoaway) {
      nextGoaway = now + goawayEveryMs;
      report.events.goaways++;
      server.child.send({ cmd: 'goaway' });
    }
    if (now >= nextRestart && barrier === undefined) {
      nextRestart = now + restartEveryMs;
      barrier = restart().finally(() => {
        barrier = undefined;
      });
    }
    if (barrier !== undefined) await barrier;
  };

  const worker = async (): Promise<void> => {
    while (!stopping) {
      await maybeEvents();
      if (report.issued >= options.requests || elapsed() >= options.seconds * 1000) {
        stopping = true;
        break;
      }
      const plan = planner.next();
      const id = nextId++;
      report.issued++;
      add(report.byKind, `${plan.protocol} ${plan.kind}`);
      pending.set(id, plan);
      let outcome: string | undefined;
      try {
        outcome = await runOne(pool, origin, plan);
      } catch (err) {
        outcome = `threw ${describeError(err)}`;
      }
      settle(id, plan, outcome);
    }
  };

  const workers = Array.from({ length: concurrency }, () => worker());
  // A worker stuck on a lost request must not hold the report: wait for all, bounded.
  const allDone = Promise.all(workers);
  let lostTimer: NodeJS.Timeout | undefined;
  const lostDeadline = new Promise<void>((resolve) => {
    const check = (): void => {
      if (stopping) lostTimer = setTimeout(resolve, lostAfterMs);
      else lostTimer = setTimeout(check, 200);
    };
    check();
  });
  await Promise.race([allDone, lostDeadline]);
  clearTimeout(lostTimer);
  report.durationMs = Math.round(elapsed());
  for (const plan of pending.values()) {
    add(report.lost, `${plan.protocol} ${plan.kind}`);
    report.lostTotal++;
  }
  report.memory.push(memorySample(startedAt, report.issued));

  unsubscribe('muxpool:goaway', onGoaway);
  const stats = await pool.stats();
  report.poolDialed = stats.dialed;
  report.poolClosed = stats.closed;
  const closeStarted = performance.now();
  let closeTimer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    pool.close().then(() => true),
    new Promise<boolean>((resolve) => {
      closeTimer = setTimeout(() => resolve(false), CLOSE_LIMIT_MS);
    }),
  ]);
  clearTimeout(closeTimer);
  report.closeMs = Math.round(performance.now() - closeStarted);
  if (!closed) {
    report.closeHung = true;
    await pool.destroy();
  }
  await stopServer(server, false);
  report.heapGrowthMB = growth(report.memory, warmupMs, 'heapUsedMB');
  report.rssGrowthMB = growth(report.memory, warmupMs, 'rssMB');
  if (tracker !== undefined) {
    report.trackedHandlesLeft = await tracker.settle(3_000);
    tracker.stop();
  }
  // Give ref'd handles the same chance to go.
  for (let i = 0; i < 100 && Object.keys(subtract(countActive(), activeBefore)).length > 0; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  report.activeHandlesLeft = subtract(countActive(), activeBefore);
  return report;
}

/** The report as text, for people. */
export function formatReport(report: SoakReport): string {
  const lines = [
    `soak (seed ${report.seed}): ${report.issued} requests in ${(report.durationMs / 1000).toFixed(1)} s (${Math.round(report.issued / (report.durationMs / 1000))}/s)`,
    `settled as asked: ${report.settledAsAsked}; unexpected: ${report.unexpectedTotal}; lost: ${report.lostTotal}`,
    `events: ${report.events.goaways} GOAWAY rounds (the pool saw ${report.events.goawaysSeenByPool} GOAWAY frames), ${report.events.restartsInPlace} restarts in place, ${report.events.restartsByKill} by SIGKILL`,
    `heap growth after warm-up: ${report.heapGrowthMB ?? 'n/a'} MB; RSS growth: ${report.rssGrowthMB ?? 'n/a'} MB (each sample after a full GC)`,
    `pool: ${report.poolDialed} connections dialed, ${report.poolClosed} closed before close(); close() took ${report.closeMs} ms${report.closeHung ? ' and HUNG (destroyed)' : ''}`,
    `handles left: ref'd ${formatCounts(report.activeHandlesLeft)}; tracked from creation ${report.trackedHandlesLeft === undefined ? 'not tracked' : formatCounts(report.trackedHandlesLeft)}`,
  ];
  const perProtocol = (record: Record<string, number>, protocol: string): number =>
    Object.entries(record).reduce((sum, [key, n]) => (key.startsWith(`${protocol} `) ? sum + n : sum), 0);
  lines.push(
    'by protocol (issued / unexpected / lost): ' +
      (['h1', 'h2', 'h3'] as const).map((p) => `${p} ${perProtocol(report.byKind, p)} / ${perProtocol(report.unexpected, p)} / ${perProtocol(report.lost, p)}`).join(', '),
  );
  if (report.unexpectedTotal > 0) {
    lines.push('unexpected outcomes:');
    for (const [key, n] of Object.entries(report.unexpected).sort((a, b) => b[1] - a[1])) {
      lines.push(`  ${n} × ${key}   e.g. ${(report.examples[key] ?? []).join('; ')}`);
    }
  }
  if (report.lostTotal > 0) {
    lines.push('lost (never settled):');
    for (const [key, n] of Object.entries(report.lost)) lines.push(`  ${n} × ${key}`);
  }
  lines.push('memory samples (s: heap MB / rss MB):');
  lines.push('  ' + report.memory.map((sample) => `${Math.round(sample.atMs / 1000)}: ${sample.heapUsedMB}/${sample.rssMB}`).join(', '));
  return lines.join('\n');
}
