import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CODES, MuxpoolError, isMuxpoolError } from '../../src/errors.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

/** The README's error table: rows of the form `| \`MUXPOOL_ERR_X\` | meaning |`. */
function documentedCodes(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const match of readme.matchAll(/^\|\s*`(MUXPOOL_ERR_[A-Z0-9_]+)`\s*\|\s*(.+?)\s*\|\s*$/gm)) {
    rows.set(match[1] as string, match[2] as string);
  }
  return rows;
}

test('every error code in the source is documented in the README, and nothing else is', () => {
  const documented = documentedCodes();
  assert.deepEqual([...documented.keys()].sort(), Object.keys(ERROR_CODES).sort());
});

test('the README describes each code with the same words as the source', () => {
  const documented = documentedCodes();
  for (const [code, meaning] of Object.entries(ERROR_CODES)) {
    assert.equal(documented.get(code), meaning, `README row for ${code}`);
  }
});

test('MuxpoolError carries code, cause and retry facts', () => {
  const cause = new Error('boom');
  const err = new MuxpoolError('MUXPOOL_ERR_CONNECT_REFUSED', 'refused', { cause, maybeProcessed: false, attempts: 2 });
  assert.ok(err instanceof Error);
  assert.equal(err.name, 'MuxpoolError');
  assert.equal(err.code, 'MUXPOOL_ERR_CONNECT_REFUSED');
  assert.equal(err.cause, cause);
  assert.equal(err.maybeProcessed, false);
  assert.equal(err.attempts, 2);
  assert.ok(isMuxpoolError(err, 'MUXPOOL_ERR_CONNECT_REFUSED'));
  assert.ok(!isMuxpoolError(err, 'MUXPOOL_ERR_DNS'));
  assert.ok(!isMuxpoolError(new Error('x')));
});
