/**
 * `npm run fuzz`: runs every fuzz target (test/fuzz/targets.ts) for many cases, one target at a
 * time, each in a worker thread watched for hangs.
 *
 *   npm run fuzz                                   1,000,000 cases per target, random seed
 *   npm run fuzz -- --runs 50000 --seed 42         fewer cases, a fixed seed
 *   npm run fuzz -- --target h1-response,qpack     only some targets
 *   FUZZ_RUNS=… FUZZ_SEED=… FUZZ_TARGETS=… FUZZ_HANG_MS=…   the same through the environment
 *
 * A failure prints fast-check's report (the shrunk counterexample, seed and path to replay it);
 * a worker silent for FUZZ_HANG_MS (default 120 s) is a hang, reported with its seed and the
 * cases done. The exit code is 1 if any target failed.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { TARGETS, runTarget } from './targets.js';

interface Job {
  target: string;
  runs: number;
  seed: number;
}

type WorkerMessage = { kind: 'progress'; cases: number } | { kind: 'done'; runs: number; failure: string | undefined };

/** Heartbeats are frequent so that a busy (or niced) machine is not taken for a hang. */
const PROGRESS_EVERY_CASES = 500;

function option(flag: string, env: string): string | undefined {
  const index = process.argv.indexOf(flag);
  if (index >= 0) return process.argv[index + 1];
  return process.env[env];
}

function positiveInteger(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${what} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return value;
}

function runJobInWorker(job: Job, hangMs: number): Promise<{ runs: number; failure: string | undefined; seconds: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    let cases = 0;
    let settled = false;
    let watchdog = setTimeout(onHang, hangMs);
    function finish(runs: number, failure: string | undefined): void {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      resolve({ runs, failure, seconds: (performance.now() - started) / 1000 });
    }
    function onHang(): void {
      void worker.terminate();
      finish(cases, `no progress for ${hangMs} ms after about ${cases} cases (seed ${job.seed}): a hang; rerun with this seed to find the case`);
    }
    worker.on('message', (message: WorkerMessage) => {
      clearTimeout(watchdog);
      watchdog = setTimeout(onHang, hangMs);
      if (message.kind === 'progress') {
        cases = message.cases;
        if (cases % 100_000 === 0) process.stderr.write(`  ${job.target}: ${cases} cases, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
      } else {
        void worker.terminate();
        finish(message.runs, message.failure);
      }
    });
    worker.on('error', (err) => finish(cases, `the worker crashed: ${err.stack ?? err.message}`));
    worker.on('exit', (code) => finish(cases, code === 0 ? undefined : `the worker exited with code ${code}`));
  });
}

async function main(): Promise<void> {
  const runs = positiveInteger(option('--runs', 'FUZZ_RUNS'), 1_000_000, 'the number of runs');
  const seed = positiveInteger(option('--seed', 'FUZZ_SEED'), Math.floor(Math.random() * 2 ** 31), 'the seed');
  const hangMs = positiveInteger(option('--hang-ms', 'FUZZ_HANG_MS'), 120_000, 'the hang limit');
  const wanted = option('--target', 'FUZZ_TARGETS')?.split(',').filter((name) => name !== '');
  const targets = wanted === undefined ? TARGETS : TARGETS.filter((target) => wanted.includes(target.name));
  if (wanted !== undefined && targets.length !== wanted.length) {
    throw new Error(`unknown target in ${wanted.join(',')}; known: ${TARGETS.map((target) => target.name).join(', ')}`);
  }
  console.log(`fuzz: ${targets.length} targets, ${runs} cases each, seed ${seed}`);
  let failed = 0;
  for (const target of targets) {
    console.log(`- ${target.name}: ${target.covers}`);
    const result = await runJobInWorker({ target: target.name, runs, seed }, hangMs);
    const rate = result.seconds > 0 ? Math.round(result.runs / result.seconds) : 0;
    console.log(`  ${result.failure === undefined ? 'ok' : 'FAILED'}: ${result.runs} cases in ${result.seconds.toFixed(1)} s (${rate}/s)`);
    if (result.failure !== undefined) {
      failed++;
      console.log(result.failure);
    }
  }
  console.log(failed === 0 ? 'fuzz: no failures' : `fuzz: ${failed} target(s) failed (seed ${seed})`);
  process.exitCode = failed === 0 ? 0 : 1;
}

function workerMain(job: Job): void {
  const target = TARGETS.find((candidate) => candidate.name === job.target);
  if (target === undefined) throw new Error(`no target ${job.target}`);
  let cases = 0;
  const result = runTarget(target, {
    numRuns: job.runs,
    seed: job.seed,
    onCase: () => {
      if (++cases % PROGRESS_EVERY_CASES === 0) parentPort?.postMessage({ kind: 'progress', cases } satisfies WorkerMessage);
    },
  });
  parentPort?.postMessage({ kind: 'done', runs: result.runs, failure: result.failure } satisfies WorkerMessage);
}

// `node --test build/test/` loads every file under build/test: only a direct run fuzzes.
if (!isMainThread) workerMain(workerData as Job);
else if (process.env['NODE_TEST_CONTEXT'] === undefined) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
