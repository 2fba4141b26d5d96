/**
 * The fuzz targets (test/fuzz/targets.ts), a short fixed-seed run of each: a few thousand cases
 * per decoder, a few seconds in all. `npm run fuzz` runs them for a million cases each.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TARGETS, runTarget } from '../fuzz/targets.js';

/** Fixed, so a failure here reproduces; change it only on purpose. */
const SEED = 16_018;

for (const target of TARGETS) {
  test(`fuzz ${target.name}: ${target.shortRuns} cases, seed ${SEED}`, () => {
    const result = runTarget(target, { numRuns: target.shortRuns, seed: SEED });
    assert.equal(result.failure, undefined, result.failure);
    assert.equal(result.runs, target.shortRuns);
  });
}

test('every pure decoder has a fuzz target', () => {
  assert.deepEqual(
    TARGETS.map((target) => target.name),
    ['h1-response', 'h3-request-stream', 'h3-control-stream', 'qpack', 'qpack-streams', 'huffman', 'varint', 'alt-svc', 'origin-store', 'h2-frames', 'hpack'],
  );
});
