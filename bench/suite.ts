/**
 * `npm run bench` — the whole suite: bench:h1, bench:h2, bench:h3, bench:fetch, bench:cli and bench:proxy in turn, each as
 * `npm run bench:NAME -- ARGS` (so each keeps its own core pinning), then one summary of them:
 * bench/results/suite-<date>.json with every part's results, and bench/results/suite-<date>.md
 * with a table of muxpool's req/s ratios against the peers (printed too) and each part's tables.
 * Usage:
 *   npm run bench -- [--parts h1,h2,h3,fetch,cli,proxy] [options passed to every part, e.g. --duration 2 --warmup 1]
 * A part that fails does not stop the others; the suite then names it and exits 1.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { type Comparison, RESULTS_DIR, SUITE_DIR_ENV, type SavedResults, fileStamp } from './lib/run.js';

const PARTS = ['h1', 'h2', 'h3', 'fetch', 'cli', 'proxy'] as const;

/** One line of the summary: a muxpool row against one peer at one concurrency. */
interface RatioRow {
  part: string;
  concurrency: number;
  subject: string;
  subjectReqPerSec: number;
  peer: string;
  peerReqPerSec: number;
  /** subject / peer req/s; null when the peer did nothing. */
  ratio: number | null;
  goal: number | null;
}

/** `--parts a,b` is the suite's own option; every other argument goes to each part. */
function splitArgs(argv: readonly string[]): { parts: string[]; forwarded: string[] } {
  const forwarded: string[] = [];
  let parts: string[] = [...PARTS];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--parts') {
      parts = (argv[++i] ?? '').split(',').filter((name) => name !== '');
      const unknown = parts.filter((name) => !(PARTS as readonly string[]).includes(name));
      if (unknown.length > 0 || parts.length === 0) throw new Error(`--parts takes some of ${PARTS.join(',')}, got ${argv[i] ?? 'nothing'}`);
    } else {
      forwarded.push(arg);
    }
  }
  return { parts, forwarded };
}

/** Runs `npm run bench:NAME -- ARGS` with the suite directory in the environment; resolves with its exit code. */
function runPart(name: string, forwarded: readonly string[], suiteDir: string): Promise<number> {
  // Under npm, npm_execpath is npm's own script: the same npm runs the parts.
  const npmCli = process.env['npm_execpath'];
  const [command, prefix] = npmCli !== undefined && npmCli.endsWith('.js') ? [process.execPath, [npmCli]] : ['npm', []];
  const child = spawn(command, [...prefix, 'run', `bench:${name}`, '--', ...forwarded], {
    stdio: 'inherit',
    env: { ...process.env, [SUITE_DIR_ENV]: suiteDir },
  });
  return new Promise((resolve) => {
    child.once('error', (err) => {
      process.stderr.write(`bench:${name}: ${err.message}\n`);
      resolve(1);
    });
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
}

/** The part's own comparisons, or every `muxpool…` row against every other row. */
function comparisonsOf(part: SavedResults): Comparison[] {
  if (part.comparisons !== undefined) return part.comparisons;
  const clients = [...new Set(part.results.map((r) => r.client))];
  const subjects = clients.filter((client) => client.startsWith('muxpool'));
  const peers = clients.filter((client) => !client.startsWith('muxpool'));
  return subjects.flatMap((subject) => peers.map((peer) => ({ subject, peer })));
}

function ratioRows(part: SavedResults): RatioRow[] {
  const rows: RatioRow[] = [];
  const levels = [...new Set(part.results.map((r) => r.concurrency))];
  for (const concurrency of levels) {
    for (const { subject, peer, goal } of comparisonsOf(part)) {
      const s = part.results.find((r) => r.client === subject && r.concurrency === concurrency);
      const p = part.results.find((r) => r.client === peer && r.concurrency === concurrency);
      if (s === undefined || p === undefined) continue;
      rows.push({
        part: part.name,
        concurrency,
        subject,
        subjectReqPerSec: s.reqPerSec,
        peer,
        peerReqPerSec: p.reqPerSec,
        ratio: p.reqPerSec > 0 ? s.reqPerSec / p.reqPerSec : null,
        goal: goal ?? null,
      });
    }
  }
  return rows;
}

function ratioTable(rows: readonly RatioRow[]): string {
  const out = ['| bench | C | muxpool | req/s | peer | req/s | ratio | goal |', '|---|---|---|---|---|---|---|---|'];
  for (const row of rows) {
    const ratio = row.ratio === null ? '—' : `${row.ratio.toFixed(2)}×`;
    const goal = row.goal === null ? '' : `≥ ${row.goal.toFixed(1)}× ${row.ratio !== null && row.ratio >= row.goal ? 'met' : 'missed'}`;
    out.push(
      `| ${row.part} | ${row.concurrency} | ${row.subject} | ${row.subjectReqPerSec.toFixed(0)} | ${row.peer} | ${row.peerReqPerSec.toFixed(0)} | ${ratio} | ${goal} |`,
    );
  }
  return out.join('\n');
}

let parsed: { parts: string[]; forwarded: string[] };
try {
  parsed = splitArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`npm run bench: ${(err as Error).message}\n`);
  process.exit(2);
}
const { parts, forwarded } = parsed;
const started = new Date();
const suiteDir = await mkdtemp(join(os.tmpdir(), 'muxpool-bench-suite-'));
const saved: Record<string, SavedResults> = {};
const failed: string[] = [];
try {
  for (const name of parts) {
    process.stderr.write(`\n== bench:${name} ${forwarded.join(' ')}\n`);
    const code = await runPart(name, forwarded, suiteDir);
    const text = await readFile(join(suiteDir, `${name}.json`), 'utf8').catch(() => undefined);
    // A part that saved results and then failed (bench:cli with one tool down) still counts.
    if (text !== undefined) saved[name] = JSON.parse(text) as SavedResults;
    if (code !== 0 || text === undefined) failed.push(`${name} (exit ${code}${text === undefined ? ', no results' : ''})`);
  }
} finally {
  await rm(suiteDir, { recursive: true, force: true });
}

const ratios = Object.values(saved).flatMap(ratioRows);
const cpus = os.cpus();
const heading = `# muxpool benchmark suite (${started.toISOString()}, ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}${forwarded.length > 0 ? `, ${forwarded.join(' ')}` : ''})`;
const summary = [
  heading,
  '',
  'req/s of each muxpool row over its peer at the same concurrency C (above 1.00× muxpool is faster).',
  '',
  ratioTable(ratios),
  ...(failed.length > 0 ? ['', `failed: ${failed.join(', ')}`] : []),
].join('\n');
const details = Object.values(saved).map((part) => part.markdown);
const stamp = fileStamp(started);
await mkdir(RESULTS_DIR, { recursive: true });
const jsonPath = join(RESULTS_DIR, `suite-${stamp}.json`);
const markdownPath = join(RESULTS_DIR, `suite-${stamp}.md`);
await writeFile(
  jsonPath,
  `${JSON.stringify({ date: started.toISOString(), node: process.version, cpus: cpus.length, args: forwarded, parts: saved, failed, ratios, markdown: summary }, null, 2)}\n`,
);
await writeFile(markdownPath, `${[summary, ...details].join('\n\n')}\n`);
console.log(`\n${summary}\n\nsuite: ${jsonPath}\n       ${markdownPath}`);
process.exitCode = failed.length > 0 ? 1 : 0;
