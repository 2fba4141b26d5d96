/**
 * `muxpool bench URL [options]`: a load generator on muxpool's own pool. Closed loop by default
 * (C requests in flight, each lane sends its next request when the last one ended), open loop
 * with --rate (see bench-load.ts for the schedule and what happens when the target falls
 * behind), optionally split over worker threads whose histograms are added at the end.
 *
 * Output: a progress line on stderr (rewritten in place with \r at most 10 times a second on a
 * terminal; plain lines at most once a second otherwise, none with --json), then a summary or
 * the JSON report on stdout. Exit 0 when at least one response arrived, 1 when every request
 * failed, 2 on a usage error.
 */
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { MuxpoolError } from '../errors.js';
import { takeRequestOption } from './args.js';
import { HttpVersion } from '../protocol/version.js';
import { type LoadPlan, type LoadResult, LoadEngine, checkPlan, deserializeResult, mergeResults } from './bench-load.js';
import { renderHtmlReport } from './bench-html.js';
import { type ProtocolName, buildReport, formatSummary } from './bench-report.js';
import type { MainMessage, WorkerMessage } from './bench-worker.js';

export const BENCH_USAGE = `usage: muxpool bench URL [options]
  -c, --connections N    requests in flight (default 16): N HTTP/1.1 connections,
                         or N streams on one HTTP/2 or HTTP/3 connection
  -n, --requests COUNT   send exactly COUNT requests
  -d, --duration SECS    run for SECS seconds (default 10); not with -n
  --protocol h1|h2|h3    HTTP/1.1, HTTP/2, or HTTP/3 without fallback (default: ALPN)
  --rate R               open loop: R requests/s on a fixed schedule, latency from the
                         scheduled time; at most N in flight, the rest wait and count as late
  --workers W            split the load over W worker threads, each with its own pool
  -b, --body TEXT        send TEXT as the body of every request (POST unless -X says otherwise)
  --body-file FILE       send the bytes of FILE as the body of every request
  -X, --request METHOD   -H, --header 'name: value' (repeat for more fields)
  --cacert FILE          -k, --insecure
  --json                 print the result as JSON (fields: see the README)
  --report FILE.html     also write a self-contained HTML report with charts`;

const DEFAULT_CONNECTIONS = 16;
const DEFAULT_DURATION_MS = 10_000;
const MAX_CONNECTIONS = 10_000;
const MAX_REQUESTS = 1_000_000_000;
const MAX_DURATION_S = 86_400;
const MAX_RATE = 10_000_000;
const MAX_WORKERS = 64;
/** Progress refresh: in place on a terminal, plain lines otherwise. */
const TTY_REFRESH_MS = 100;
const LINE_REFRESH_MS = 1_000;
/** Worker threads must load and build their pools within this. */
const WORKER_READY_LIMIT_MS = 30_000;

class BenchUsageError extends Error {}

export interface BenchArgs {
  url: string;
  connections: number;
  requests: number | undefined;
  durationMs: number | undefined;
  protocol: ProtocolName | undefined;
  ratePerSec: number | undefined;
  workers: number | undefined;
  method: string | undefined;
  headers: Array<[string, string]>;
  body: string | undefined;
  bodyFile: string | undefined;
  cacert: string | undefined;
  insecure: boolean;
  json: boolean;
  report: string | undefined;
  help: boolean;
}

const VERSIONS: Record<ProtocolName, HttpVersion> = {
  h1: HttpVersion.Http1_1,
  h2: HttpVersion.Http2,
  h3: HttpVersion.Http3Only,
};

function integer(flag: string, text: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw new BenchUsageError(`${flag} needs a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function positive(flag: string, text: string, max: number): number {
  const value = /^(\d+\.?\d*|\.\d+)$/.test(text) ? Number(text) : NaN;
  if (!(value > 0 && value <= max)) {
    throw new BenchUsageError(`${flag} needs a number above 0 and at most ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const args: BenchArgs = {
    url: '',
    connections: DEFAULT_CONNECTIONS,
    requests: undefined,
    durationMs: undefined,
    protocol: undefined,
    ratePerSec: undefined,
    workers: undefined,
    method: undefined,
    headers: [],
    body: undefined,
    bodyFile: undefined,
    cacert: undefined,
    insecure: false,
    json: false,
    report: undefined,
    help: false,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new BenchUsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (takeRequestOption(arg, () => value(i++, arg), args, (message) => new BenchUsageError(message))) continue;
    switch (arg) {
      case '-c':
      case '--connections':
        args.connections = integer(arg, value(i++, arg), 1, MAX_CONNECTIONS);
        break;
      case '-n':
      case '--requests':
        args.requests = integer(arg, value(i++, arg), 1, MAX_REQUESTS);
        break;
      case '-d':
      case '--duration':
        args.durationMs = Math.round(positive(arg, value(i++, arg), MAX_DURATION_S) * 1000);
        break;
      case '--protocol': {
        const name = value(i++, arg);
        if (name !== 'h1' && name !== 'h2' && name !== 'h3') {
          throw new BenchUsageError(`--protocol must be h1, h2 or h3, got ${JSON.stringify(name)}`);
        }
        args.protocol = name;
        break;
      }
      case '--rate':
        args.ratePerSec = positive(arg, value(i++, arg), MAX_RATE);
        break;
      case '--workers':
        args.workers = integer(arg, value(i++, arg), 1, MAX_WORKERS);
        break;
      case '--json':
        args.json = true;
        break;
      case '-b':
      case '--body':
        args.body = value(i++, arg);
        break;
      case '--body-file':
        args.bodyFile = value(i++, arg);
        break;
      case '--report': {
        const file = value(i++, arg);
        if (!/\.html?$/i.test(file)) throw new BenchUsageError(`--report writes HTML: the file name must end in .html, got ${JSON.stringify(file)}`);
        args.report = file;
        break;
      }
      case '-h':
      case '--help':
        args.help = true;
        break;
      default:
        if (arg.startsWith('-')) throw new BenchUsageError(`unknown option ${arg}`);
        if (args.url !== '') throw new BenchUsageError(`only one URL, got ${args.url} and ${arg}`);
        args.url = arg;
    }
  }
  if (args.help) return args;
  if (args.url === '') throw new BenchUsageError('a URL is needed');
  if (args.requests !== undefined && args.durationMs !== undefined) throw new BenchUsageError('-n and -d exclude each other');
  if (args.body !== undefined && args.bodyFile !== undefined) throw new BenchUsageError('--body and --body-file exclude each other');
  if (args.requests === undefined && args.durationMs === undefined) args.durationMs = DEFAULT_DURATION_MS;
  if (args.workers !== undefined && args.workers > args.connections) {
    throw new BenchUsageError(`--workers ${args.workers} needs -c of at least ${args.workers} (each worker runs at least one connection)`);
  }
  return args;
}

/** Splits `total` in proportion to `weights`, as whole numbers that add up to `total` exactly. */
function split(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const shares = weights.map((w) => Math.floor((total * w) / sum));
  let left = total - shares.reduce((a, b) => a + b, 0);
  // Bounded: fewer than weights.length units are left over.
  for (let i = 0; left > 0; i = (i + 1) % shares.length, left--) shares[i] = (shares[i] as number) + 1;
  return shares;
}

/** One plan per worker thread: connections, request count and rate split so the parts add up. */
export function splitPlan(plan: LoadPlan, workers: number): LoadPlan[] {
  const connections = split(plan.concurrency, new Array<number>(workers).fill(1));
  // An open loop always has a request count (rate × duration), so every worker's schedule is
  // as long as the whole one.
  const requests =
    plan.requests ?? (plan.ratePerSec !== undefined ? Math.round((plan.ratePerSec * (plan.durationMs ?? 0)) / 1000) : undefined);
  const requestShares = requests === undefined ? undefined : split(requests, connections);
  return connections.map((concurrency, i) => ({
    ...plan,
    concurrency,
    requests: requestShares?.[i],
    durationMs: requestShares === undefined ? plan.durationMs : undefined,
    ratePerSec: plan.ratePerSec === undefined ? undefined : (plan.ratePerSec * concurrency) / plan.concurrency,
  }));
}

interface Counters {
  completed: number;
  errors: number;
}

/** A running load: in this thread or in workers. */
interface LoadRun {
  counters(): Counters;
  stop(): void;
  /** The whole run's result, and each worker thread's own (none without workers). */
  readonly done: Promise<{ result: LoadResult; parts: LoadResult[] }>;
}

function runInProcess(plan: LoadPlan): LoadRun {
  const engine = new LoadEngine(plan);
  return {
    counters: () => ({ completed: engine.completed, errors: engine.errors }),
    stop: () => engine.stop(),
    done: engine.run().then((result) => ({ result, parts: [] })),
  };
}

async function runInWorkers(plan: LoadPlan, workers: number): Promise<LoadRun> {
  const plans = splitPlan(plan, workers);
  const threads = plans.map((share) => new Worker(new URL('./bench-worker.js', import.meta.url), { workerData: share }));
  const progress: Counters[] = plans.map(() => ({ completed: 0, errors: 0 }));
  const send = (message: MainMessage): void => {
    for (const thread of threads) thread.postMessage(message);
  };
  let readyCount = 0;
  let onAllReady: (() => void) | undefined;
  const failures: Array<(err: Error) => void> = [];
  const fail = (err: Error): void => {
    for (const reject of failures) reject(err);
  };
  const results = threads.map(
    (thread, i) =>
      new Promise<LoadResult>((resolve, reject) => {
        failures.push(reject);
        let settled = false;
        thread.on('message', (message: WorkerMessage) => {
          switch (message.type) {
            case 'ready':
              if (++readyCount === threads.length) onAllReady?.();
              break;
            case 'progress':
              progress[i] = { completed: message.completed, errors: message.errors };
              break;
            case 'result':
              settled = true;
              resolve(deserializeResult(message.result));
              break;
            case 'failed':
              settled = true;
              reject(new Error(`worker ${i + 1}: ${message.message}`));
              break;
          }
        });
        thread.once('error', (err) => {
          settled = true;
          reject(err);
        });
        thread.once('exit', (code) => {
          if (!settled) reject(new Error(`worker ${i + 1} exited with code ${code} before reporting`));
        });
      }),
  );
  // A failure before the start ends every thread.
  const all = Promise.all(results);
  all.catch(() => {});
  try {
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        onAllReady = resolve;
        setTimeout(() => reject(new Error(`worker threads not ready within ${WORKER_READY_LIMIT_MS} ms`)), WORKER_READY_LIMIT_MS).unref();
      }),
      all.then(() => {}),
    ]);
  } catch (err) {
    fail(err as Error);
    await Promise.all(threads.map((thread) => thread.terminate()));
    throw err;
  }
  send({ type: 'start' });
  const done = all.then(
    async (parts) => {
      await Promise.all(threads.map((thread) => thread.terminate()));
      return { result: mergeResults(parts), parts };
    },
    async (err: unknown) => {
      await Promise.all(threads.map((thread) => thread.terminate()));
      throw err;
    },
  );
  return {
    counters: () => {
      const sum: Counters = { completed: 0, errors: 0 };
      for (const p of progress) {
        sum.completed += p.completed;
        sum.errors += p.errors;
      }
      return sum;
    },
    stop: () => send({ type: 'stop' }),
    done,
  };
}

/**
 * The progress line on stderr: in place on a terminal (at most 10 updates a second), plain
 * lines at most once a second otherwise, nothing when off.
 */
class ProgressDisplay {
  private readonly inPlace: boolean;
  private readonly total: number | undefined;
  private readonly run: LoadRun;
  private readonly startedAt = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private lastCompleted = 0;
  private lastAt = this.startedAt;
  private shown = false;

  constructor(run: LoadRun, inPlace: boolean, total: number | undefined) {
    this.run = run;
    this.inPlace = inPlace;
    this.total = total;
  }

  start(): void {
    this.timer = setInterval(() => this.update(), this.inPlace ? TTY_REFRESH_MS : LINE_REFRESH_MS);
    this.timer.unref();
  }

  private update(): void {
    const now = performance.now();
    const { completed, errors } = this.run.counters();
    const rate = now > this.lastAt ? ((completed - this.lastCompleted) * 1000) / (now - this.lastAt) : 0;
    this.lastCompleted = completed;
    this.lastAt = now;
    const done = this.total === undefined ? `${completed}` : `${completed}/${this.total}`;
    const line = `${done} done  ${rate.toFixed(0)} req/s  ${errors} errors  ${((now - this.startedAt) / 1000).toFixed(1)} s`;
    // \x1b[K clears what a longer earlier line left behind.
    process.stderr.write(this.inPlace ? `\r${line}\x1b[K` : `${line}\n`);
    this.shown = true;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.inPlace && this.shown) process.stderr.write('\r\x1b[K');
  }
}

export async function runBench(argv: readonly string[]): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(argv);
  } catch (err) {
    if (!(err instanceof BenchUsageError)) throw err;
    process.stderr.write(`muxpool bench: ${err.message} (see muxpool bench --help)\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${BENCH_USAGE}\n`);
    return 0;
  }
  let url: URL;
  try {
    url = new URL(args.url);
  } catch (cause) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', `not a valid URL: ${JSON.stringify(args.url.slice(0, 200))}`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MuxpoolError('MUXPOOL_ERR_UNSUPPORTED_SCHEME', `unsupported URL scheme ${url.protocol} (use http: or https:)`);
  }
  if (args.protocol === 'h3' && url.protocol !== 'https:') {
    process.stderr.write('muxpool bench: --protocol h3 needs an https: URL (see muxpool bench --help)\n');
    return 2;
  }
  const ca = args.cacert === undefined ? undefined : await readFile(args.cacert, 'utf8');
  const body = args.bodyFile !== undefined ? new Uint8Array(await readFile(args.bodyFile)) : args.body !== undefined ? Buffer.from(args.body, 'utf8') : undefined;
  const plan: LoadPlan = {
    url: url.href,
    // As curl: a body without -X is a POST.
    method: args.method ?? (body !== undefined ? 'POST' : 'GET'),
    headers: args.headers,
    body,
    version: args.protocol === undefined ? HttpVersion.Auto : VERSIONS[args.protocol],
    concurrency: args.connections,
    requests: args.requests,
    durationMs: args.durationMs,
    ratePerSec: args.ratePerSec,
    ca,
    insecure: args.insecure,
  };
  // Bad input (a method, a header field) fails here, before any thread or connection.
  checkPlan(plan);
  const run = args.workers === undefined ? runInProcess(plan) : await runInWorkers(plan, args.workers);
  const total =
    args.requests ?? (args.ratePerSec !== undefined ? Math.round((args.ratePerSec * (args.durationMs ?? 0)) / 1000) : undefined);
  const display = process.stderr.isTTY || !args.json ? new ProgressDisplay(run, process.stderr.isTTY, total) : undefined;
  display?.start();
  // Ctrl-C once: stop sending and report what was done; twice: leave at once.
  let interrupted = false;
  const onInterrupt = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    run.stop();
  };
  process.on('SIGINT', onInterrupt);
  let outcome: { result: LoadResult; parts: LoadResult[] };
  try {
    outcome = await run.done;
  } finally {
    process.off('SIGINT', onInterrupt);
    display?.stop();
  }
  const { result, parts } = outcome;
  const report = buildReport(
    {
      url: plan.url,
      method: plan.method,
      requestedProtocol: args.protocol ?? 'auto',
      connections: args.connections,
      workers: args.workers ?? 1,
      rate: args.ratePerSec,
    },
    result,
    parts,
  );
  if (args.report !== undefined) {
    await writeFile(args.report, await renderHtmlReport(report, result, { command: commandLine(argv), environment: environment() }));
  }
  process.stdout.write(args.json ? `${JSON.stringify(report)}\n` : formatSummary(report, result.histogram));
  if (args.report !== undefined && !args.json) process.stdout.write(`\nreport: ${args.report}\n`);
  return result.requests > 0 && result.errors === result.requests ? 1 : 0;
}

/** The command as typed, quoted where a shell would need it (for the report). */
function commandLine(argv: readonly string[]): string {
  const quote = (arg: string): string => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`);
  return ['muxpool', 'bench', ...argv].map(quote).join(' ');
}

/** muxpool's version, from the package.json above this file (dist/cli/ or build/src/cli/). */
function version(): string {
  // Bounded: a few directories up.
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'muxpool' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not there: the next one up.
    }
  }
  return 'unknown';
}

/** Where the run happened, for the report: enough to tell two machines and two runs apart. */
function environment(): Record<string, string> {
  const cpus = os.cpus();
  return {
    muxpool: version(),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown'}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    loadAverage: os.loadavg().map((l) => l.toFixed(2)).join(' '),
    host: os.hostname(),
    date: new Date().toISOString(),
  };
}
