// The rule the CI interop matrix enforces: a cell that passed in the baseline must still pass.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Cell, type MatrixResult, mergeResults, regressions, runHeader } from '../interop/matrix.js';

function matrix(cells: Record<string, Cell['status']>): MatrixResult {
  return {
    profile: 'ci',
    date: '',
    durationMs: 0,
    node: '',
    sections: [
      {
        title: 'h3',
        servers: Object.keys(cells),
        rows: [{ name: 'retry', summary: '', cells: Object.fromEntries(Object.entries(cells).map(([s, status]) => [s, { status, ms: 1, detail: status }])) }],
      },
    ],
  };
}

test('a cell that passed and now fails or turns unsupported is a regression; others are not', () => {
  const baseline = matrix({ caddy: 'pass', ngtcp2: 'pass', muxpool: 'unsupported', h2o: 'fail' });
  assert.deepEqual(regressions(baseline, matrix({ caddy: 'pass', ngtcp2: 'pass', muxpool: 'unsupported', h2o: 'fail' })), []);
  assert.deepEqual(regressions(baseline, matrix({ caddy: 'pass', ngtcp2: 'pass', muxpool: 'pass', h2o: 'pass' })), []);
  const found = regressions(baseline, matrix({ caddy: 'fail', ngtcp2: 'unsupported', muxpool: 'fail', h2o: 'fail' }));
  assert.equal(found.length, 2);
  assert.match(found[0] ?? '', /retry \/ caddy passed, now fail/);
  assert.match(found[1] ?? '', /retry \/ ngtcp2 passed, now unsupported/);
});

test('a narrowed run merged into a result replaces its own cells only, adds rows it lacks, and is recorded', () => {
  const base = matrix({ caddy: 'pass', ngtcp2: 'unsupported', muxpool: 'unsupported' });
  const partial: MatrixResult = {
    ...matrix({ ngtcp2: 'pass', muxpool: 'fail' }),
    date: '2026-12-06T21:00:00.000Z',
    node: 'v20',
  };
  const section = partial.sections[0];
  assert.ok(section !== undefined);
  section.rows.push({ name: 'clientcert', summary: 'new', cells: { muxpool: { status: 'pass', ms: 2, detail: 'ok' } } });
  const merged = mergeResults(base, partial);
  const rows = merged.sections[0]?.rows ?? [];
  assert.deepEqual(rows.map((r) => r.name), ['retry', 'clientcert']);
  assert.deepEqual(Object.fromEntries(Object.entries(rows[0]?.cells ?? {}).map(([s, c]) => [s, c.status])), { caddy: 'pass', ngtcp2: 'pass', muxpool: 'fail' });
  assert.equal(rows[1]?.cells['muxpool']?.status, 'pass');
  assert.deepEqual(merged.reruns, [{ date: partial.date, node: 'v20', cells: ['retry / ngtcp2', 'retry / muxpool', 'clientcert / muxpool'] }]);
  // The base is left as it was, and the header names the re-run cells.
  assert.equal(base.sections[0]?.rows.length, 1);
  assert.match(runHeader(merged), /Re-run on 2026-12-06 21:00 UTC \(Node v20\): retry \/ ngtcp2, retry \/ muxpool, clientcert \/ muxpool\.$/);
  assert.throws(() => mergeResults(base, { ...partial, profile: 'full' }), /cannot merge a full run into a ci result/);
});
