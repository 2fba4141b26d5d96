// The rule the CI interop matrix enforces: a cell that passed in the baseline must still pass.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Cell, type MatrixResult, regressions } from '../interop/matrix.js';

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
