/**
 * The interop matrix in CI: the short profile, one test file per column group (the suite's
 * 60 s deadline applies to a whole file), failing when a cell that passed in the committed baseline
 * (docs/interop-ci.json, written by `npm run interop -- --ci`) no longer passes. A cell the
 * baseline lists as unsupported is not run into a failure either way; a new case must pass.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { leakCheck } from '../helpers/leaks.js';
import { type MatrixOptions, type MatrixResult, regressions, runMatrix } from './matrix.js';
import { PROFILES } from './targets.js';

const baseline = JSON.parse(await readFile(new URL('../../../docs/interop-ci.json', import.meta.url), 'utf8')) as MatrixResult;

export async function runGroup(options: Omit<MatrixOptions, 'profile'>): Promise<void> {
  // Every pool, proxy and server of the group is closed by the time the matrix returns: nothing
  // it opened (sockets, timers; refused handshakes included) may be left behind.
  const leaks = leakCheck();
  const result = await runMatrix({ profile: PROFILES.ci, caseTimeoutMs: 20_000, ...options });
  const found = regressions(baseline, result);
  // Cells the baseline does not have (a new case or server) must pass outright.
  for (const section of result.sections) {
    const old = baseline.sections.find((s) => s.title === section.title);
    for (const row of section.rows) {
      for (const [server, cell] of Object.entries(row.cells)) {
        const known = old?.rows.find((r) => r.name === row.name)?.cells[server];
        if (known === undefined && cell.status === 'fail') found.push(`${section.title}: new cell ${row.name} / ${server} fails: ${cell.detail}`);
      }
    }
  }
  assert.deepEqual(found, [], `interop regressions:\n${found.join('\n')}`);
  const ran = result.sections.reduce((n, s) => n + s.rows.reduce((m, r) => m + Object.values(r.cells).filter((c) => c.status === 'pass').length, 0), 0);
  assert.ok(ran > 0, 'no cell passed: the matrix did not run');
  await leaks.check();
}

