/**
 * `npm run interop`: the interop matrix, printed and written to docs/interop.md (between its
 * markers) and docs/interop.json. `--ci` runs the short profile; `--case NAME`, `--server NAME`
 * and `--section h3|h2|reverse` (repeatable) narrow the run, which then writes nothing unless
 * `--merge` puts its cells into the committed results (and the published table); `--no-write`
 * only prints.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type MatrixResult, mergeResults, renderMarkdown, renderText, runHeader, runMatrix } from './matrix.js';
import { PROFILES } from './targets.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ci: { type: 'boolean', default: false },
      case: { type: 'string', multiple: true },
      server: { type: 'string', multiple: true },
      section: { type: 'string', multiple: true },
      'no-write': { type: 'boolean', default: false },
      merge: { type: 'boolean', default: false },
      json: { type: 'string' },
    },
  });

  const profile = values.ci ? PROFILES.ci : PROFILES.full;
  const sections = values.section as ('h3' | 'h2' | 'reverse')[] | undefined;
  const result = await runMatrix({
    profile,
    ...(values.case !== undefined ? { cases: values.case } : {}),
    ...(values.server !== undefined ? { servers: values.server } : {}),
    ...(sections !== undefined ? { sections } : {}),
    log: (line) => console.error(line),
  });
  console.log(renderText(result));
  console.log(`${profile.name} profile, ${(result.durationMs / 1000).toFixed(0)} s`);

  const BEGIN = '<!-- interop-matrix:begin -->';
  const END = '<!-- interop-matrix:end -->';
  const partial = values.case !== undefined || values.server !== undefined || sections !== undefined;
  if (!values['no-write'] && (!partial || values.merge)) {
    const jsonPath = values.json ?? new URL(`../../../docs/interop${profile.name === 'ci' ? '-ci' : ''}.json`, import.meta.url);
    // A narrowed run with --merge replaces only its own cells in the committed result.
    const written: MatrixResult = partial ? mergeResults(JSON.parse(await readFile(jsonPath, 'utf8')) as MatrixResult, result) : result;
    // The CI profile writes its JSON (the baseline `npm test` compares against) and leaves the
    // published table alone.
    const docPath = new URL('../../../docs/interop.md', import.meta.url);
    const doc = profile.name === 'full' ? await readFile(docPath, 'utf8') : '';
    const start = doc.indexOf(BEGIN);
    const end = doc.indexOf(END);
    if (start >= 0 && end > start) {
      await writeFile(docPath, `${doc.slice(0, start + BEGIN.length)}\n${runHeader(written)}\n\n${renderMarkdown(written)}\n${doc.slice(end)}`);
    }
    await writeFile(jsonPath, `${JSON.stringify(written, null, 2)}\n`);
    console.log(`written${partial ? ' (merged)' : ''}: ${profile.name === 'full' ? 'docs/interop.md, docs/interop.json' : 'docs/interop-ci.json'}`);
  }
  const failed = result.sections.flatMap((s) => s.rows.flatMap((r) => Object.values(r.cells).filter((c) => c.status === 'fail')));
  process.exitCode = failed.length > 0 ? 1 : 0;
}

// `npm test` runs every file under build/test as a test file: this one only runs when asked.
if (process.env['NODE_TEST_CONTEXT'] === undefined) await main();
