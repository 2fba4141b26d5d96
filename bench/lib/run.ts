/**
 * Shared benchmark machinery: a closed-loop runner with an HDR latency histogram, the server
 * launcher, h2load, and the table printer. Every loop is bounded by a deadline.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';

export interface Result {
  client: string;
  concurrency: number;
  requests: number;
  errors: number;
  reqPerSec: number;
  p50Ms: number | undefined;
  p99Ms: number | undefined;
  meanMs: number | undefined;
  /** CPU time (user + system) of this process per request while measuring; undefined for h2load. */
  cpuUsPerReq?: number | undefined;
  /** req/s of every round when the benchmark ran several (`reqPerSec` is then their median). */
  rounds?: number[] | undefined;
}

export const HAS_TASKSET = existsSync('/usr/bin/taskset');

/** One request, resolved when its body was read to the end. */
export type RequestFn = () => Promise<void>;

/**
 * C workers, each sending one request at a time for `durationMs` after `warmupMs`.
 * Latency in microseconds goes to an HDR histogram (3 significant digits).
 */
export async function closedLoop(
  client: string,
  concurrency: number,
  fn: RequestFn,
  durationMs: number,
  warmupMs: number,
): Promise<Result> {
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let measuring = false;
  let requests = 0;
  let errors = 0;
  const warmEnd = performance.now() + warmupMs;
  const end = warmEnd + durationMs;
  let measuredStart = warmEnd;
  let cpuStart = process.cpuUsage();
  const worker = async (): Promise<void> => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= end) return;
      try {
        await fn();
        if (t0 >= warmEnd) {
          if (!measuring) {
            measuring = true;
            measuredStart = t0;
            cpuStart = process.cpuUsage();
          }
          requests++;
          histogram.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
        }
      } catch {
        errors++;
        if (errors > 1000) return;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - measuredStart) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const result: Result = {
    client,
    concurrency,
    requests,
    errors,
    reqPerSec: requests / elapsed,
    p50Ms: histogram.getValueAtPercentile(50) / 1000,
    p99Ms: histogram.getValueAtPercentile(99) / 1000,
    meanMs: histogram.mean / 1000,
    cpuUsPerReq: requests === 0 ? undefined : (cpu.user + cpu.system) / requests,
  };
  histogram.destroy();
  return result;
}

export interface ServerProcess {
  port: number;
  stop(): Promise<void>;
}

/**
 * Forks a server script with `args` (pinned to core 0 when taskset exists) and waits for its
 * port.
 */
export async function startServerProcess(script: string, args: readonly string[] = []): Promise<ServerProcess> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const child: ChildProcess = HAS_TASKSET
    ? fork(path, args, { execPath: '/usr/bin/taskset', execArgv: ['-c', '0', process.execPath] })
    : fork(path, args);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bench server did not start in 10 s')), 10_000);
    child.once('message', (msg: { port: number }) => {
      clearTimeout(timer);
      resolve(msg.port);
    });
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
  });
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.send('stop');
      }),
  };
}

function parseDurationMs(text: string): number | undefined {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (m === null) return undefined;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : v * 1000;
}

/**
 * Runs h2load on core 1 (when taskset exists) and reads its throughput and mean latency.
 * `connections` defaults to `concurrency` (one request at a time per connection, as HTTP/1.1);
 * for HTTP/2 pass 1 and put `-m C` in `args`. `threads` is h2load's `-t` (at most `connections`).
 */
export async function runH2load(
  args: string[],
  client: string,
  concurrency: number,
  durationMs: number,
  warmupMs: number,
  connections = concurrency,
  threads = 1,
): Promise<Result> {
  const h2loadArgs = [...args, '-c', String(connections), '-t', String(threads), '-D', `${durationMs}ms`, `--warm-up-time=${warmupMs}ms`];
  const [cmd, cmdArgs] = HAS_TASKSET ? ['/usr/bin/taskset', ['-c', '1', 'h2load', ...h2loadArgs]] : ['h2load', h2loadArgs];
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(cmd, cmdArgs as string[], { timeout: durationMs + warmupMs + 30_000 }, (err, out) => (err ? reject(err) : resolve(out)));
  });
  const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(stdout);
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(stdout);
  const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(stdout);
  return {
    client,
    concurrency,
    requests: Number(done?.[2] ?? 0),
    errors: Number(done?.[3] ?? 0) + Number(done?.[4] ?? 0),
    reqPerSec: Number(rps?.[1] ?? 0),
    p50Ms: undefined,
    p99Ms: undefined,
    meanMs: time === null ? undefined : parseDurationMs(time[3] as string),
  };
}

const fmt = (v: number | undefined, digits = 2): string => (v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits));

/** A markdown table per concurrency, with each client's ratio to the two references. */
export function table(results: Result[], references: string[]): string {
  const out: string[] = [];
  const levels = [...new Set(results.map((r) => r.concurrency))];
  for (const c of levels) {
    const rows = results.filter((r) => r.concurrency === c);
    const refs = references.map((name) => rows.find((r) => r.client === name));
    out.push(`\n### concurrency ${c}\n`);
    out.push(`| client | req/s | p50 ms | p99 ms | mean ms | CPU µs/req | errors | ${references.map((r) => `× ${r}`).join(' | ')} |`);
    out.push(`|---|---|---|---|---|---|---|${references.map(() => '---').join('|')}|`);
    for (const r of rows) {
      const ratios = refs.map((ref) => (ref === undefined || ref.reqPerSec === 0 ? '—' : `${(r.reqPerSec / ref.reqPerSec).toFixed(2)}×`));
      const spread =
        r.rounds !== undefined && r.rounds.length > 1 ? ` (${Math.min(...r.rounds).toFixed(0)}–${Math.max(...r.rounds).toFixed(0)})` : '';
      out.push(
        `| ${r.client} | ${r.reqPerSec.toFixed(0)}${spread} | ${fmt(r.p50Ms, 3)} | ${fmt(r.p99Ms, 3)} | ${fmt(r.meanMs, 3)} | ${fmt(r.cpuUsPerReq, 0)} | ${r.errors} | ${ratios.join(' | ')} |`,
      );
    }
  }
  return out.join('\n');
}

/**
 * One result per client from several rounds: the round with the median req/s (the lower middle
 * one for an even count), with every round's req/s and the errors of all rounds.
 */
export function medianResult(rounds: Result[]): Result {
  const sorted = [...rounds].sort((a, b) => a.reqPerSec - b.reqPerSec);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  if (median === undefined) throw new Error('medianResult needs at least one round');
  return {
    ...median,
    errors: rounds.reduce((sum, r) => sum + r.errors, 0),
    rounds: rounds.map((r) => r.reqPerSec),
  };
}

/**
 * One result per client from several rounds: the round with the highest req/s (on a shared
 * machine the least disturbed one), with every round's req/s and the errors of all rounds.
 */
export function bestResult(rounds: Result[]): Result {
  const best = rounds.reduce<Result | undefined>((top, r) => (top === undefined || r.reqPerSec > top.reqPerSec ? r : top), undefined);
  if (best === undefined) throw new Error('bestResult needs at least one round');
  return {
    ...best,
    errors: rounds.reduce((sum, r) => sum + r.errors, 0),
    rounds: rounds.map((r) => r.reqPerSec),
  };
}

/**
 * One ratio the suite summary shows: `subject`'s req/s over `peer`'s at the same concurrency,
 * with the ratio it should reach where a goal was set. A benchmark that saves none is summed up
 * as every `muxpool…` row against every other row.
 */
export interface Comparison {
  subject: string;
  peer: string;
  goal?: number | undefined;
}

/** What `saveResults` writes: one benchmark's run, as JSON (also the suite's parts). */
export interface SavedResults {
  name: string;
  date: string;
  node: string;
  results: Result[];
  markdown: string;
  comparisons?: Comparison[] | undefined;
  [extra: string]: unknown;
}

/**
 * The environment variable `npm run bench` (bench/suite.ts) sets to a directory: each benchmark
 * then also writes its results there as `<name>.json`, for the suite to merge.
 */
export const SUITE_DIR_ENV = 'MUXPOOL_BENCH_SUITE';

/** Where results land: bench/results/ in the repository (the build runs from build/bench/lib/). */
export const RESULTS_DIR = fileURLToPath(new URL('../../../bench/results/', import.meta.url));

/** A timestamp usable in a file name: the ISO date with ':' and '.' as '-'. */
export function fileStamp(date: Date): string {
  return date.toISOString().replace(/[:.]/g, '-');
}

/**
 * Writes the results and table, plus `extra` figures a benchmark measures besides req/s (and
 * the `comparisons` its suite summary shows), as JSON to bench/results/<name>-<date>.json, and
 * to the suite's directory when MUXPOOL_BENCH_SUITE names one. Returns the first path.
 */
export async function saveResults(
  name: string,
  results: Result[],
  markdown: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const now = new Date();
  const path = `${RESULTS_DIR}${name}-${fileStamp(now)}.json`;
  const saved: SavedResults = { name, date: now.toISOString(), node: process.version, results, markdown, ...extra };
  const text = `${JSON.stringify(saved, null, 2)}\n`;
  await writeFile(path, text);
  const suiteDir = process.env[SUITE_DIR_ENV];
  if (suiteDir !== undefined && suiteDir !== '') await writeFile(join(suiteDir, `${name}.json`), text);
  return path;
}

export interface BenchArgs {
  durationMs: number;
  warmupMs: number;
  concurrency: number[];
  clients: string[] | undefined;
  /** How many times every client runs at every concurrency, where a benchmark supports it (bench:h1 runs once). */
  rounds: number;
}

export function parseArgs(argv: string[]): BenchArgs {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    durationMs: Number(get('--duration') ?? 3) * 1000,
    warmupMs: Number(get('--warmup') ?? 0.5) * 1000,
    concurrency: (get('--concurrency') ?? '1,16,128').split(',').map(Number),
    clients: get('--clients')?.split(','),
    rounds: Math.max(1, Math.floor(Number(get('--rounds') ?? 1))),
  };
}

/**
 * Every client at every concurrency, `rounds` times: each round starts with another client, so
 * none always runs first or last. Returns each client's median round, per concurrency.
 */
export async function runRounds(
  clients: readonly string[],
  concurrency: readonly number[],
  rounds: number,
  runClient: (client: string, c: number) => Promise<Result>,
): Promise<Result[]> {
  const results: Result[] = [];
  for (const c of concurrency) {
    const byClient = new Map<string, Result[]>(clients.map((client) => [client, []]));
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < clients.length; i++) {
        const client = clients[(i + round) % clients.length] as string;
        const result = await runClient(client, c);
        byClient.get(client)?.push(result);
        process.stderr.write(
          `c=${c} round ${round + 1}/${rounds} ${result.client}: ${result.reqPerSec.toFixed(0)} req/s, ${(result.cpuUsPerReq ?? 0).toFixed(0)} µs CPU/req\n`,
        );
      }
    }
    for (const client of clients) results.push(medianResult(byClient.get(client) ?? []));
  }
  return results;
}
