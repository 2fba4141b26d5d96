import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CODES, MuxpoolError, errorForRequest, isMuxpoolError } from '../../src/errors.js';
import type * as Errors from '../../src/errors.js';

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

/** The same module under another URL: a second copy of the package, as two versions in node_modules would be. */
async function secondCopy(): Promise<typeof Errors> {
  const url = new URL('../../src/errors.js', import.meta.url);
  url.search = '?second-copy';
  return (await import(url.href)) as typeof Errors;
}

test('isMuxpoolError and instanceof recognise an error raised by another copy of muxpool (Symbol.for brand)', async () => {
  const other = await secondCopy();
  assert.notEqual(other.MuxpoolError, MuxpoolError, 'a distinct class object, as a second copy has');
  const foreign = new other.MuxpoolError('MUXPOOL_ERR_GOAWAY', 'from the other copy');
  assert.ok(isMuxpoolError(foreign));
  assert.ok(isMuxpoolError(foreign, 'MUXPOOL_ERR_GOAWAY'));
  assert.equal(isMuxpoolError(foreign, 'MUXPOOL_ERR_DNS'), false);
  assert.ok(foreign instanceof MuxpoolError);
  assert.ok(other.isMuxpoolError(new MuxpoolError('MUXPOOL_ERR_DNS', 'ours'), 'MUXPOOL_ERR_DNS'));
  assert.equal((foreign as unknown as Record<symbol, unknown>)[Symbol.for('muxpool.error')], true);
  // Look-alikes without the brand are not taken for ours.
  assert.ok(!isMuxpoolError({ code: 'MUXPOOL_ERR_DNS', message: 'fake' }));
  assert.ok(!isMuxpoolError(null));
  assert.ok(!isMuxpoolError('MUXPOOL_ERR_DNS'));
  assert.ok(!(new Error('plain') instanceof MuxpoolError));
  // The brand stays out of what is logged or serialised.
  assert.deepEqual(Object.keys(foreign).includes('Symbol(muxpool.error)'), false);
  assert.equal(Object.getOwnPropertySymbols(foreign).length, 0);
});

test('a subclass of MuxpoolError keeps the ordinary instanceof check', () => {
  class Special extends MuxpoolError {}
  assert.ok(new Special('MUXPOOL_ERR_DNS', 'x') instanceof Special);
  assert.ok(new Special('MUXPOOL_ERR_DNS', 'x') instanceof MuxpoolError);
  assert.ok(!(new MuxpoolError('MUXPOOL_ERR_DNS', 'x') instanceof Special));
});

test('forRequest / errorForRequest: a fresh error per request, the shared one as cause, never mutated', async () => {
  const root = new Error('socket hang up');
  const shared = new MuxpoolError('MUXPOOL_ERR_STREAM_RESET', 'reset by peer', { cause: root, maybeProcessed: false, wireCode: 8, origin: 'remote', attempts: 1 });
  const a = shared.forRequest();
  const b = errorForRequest(shared);
  assert.ok(b instanceof MuxpoolError);
  for (const fresh of [a, b]) {
    assert.notEqual(fresh, shared);
    assert.equal(fresh.code, 'MUXPOOL_ERR_STREAM_RESET');
    assert.equal(fresh.message, 'reset by peer');
    assert.equal(fresh.maybeProcessed, false);
    assert.equal(fresh.wireCode, 8);
    assert.equal(fresh.origin, 'remote');
    assert.equal(fresh.cause, shared);
    assert.equal(fresh.attempts, undefined, 'attempts is the request\'s own to set');
  }
  a.attempts = 2;
  b.attempts = 3;
  assert.equal(shared.attempts, 1, 'the shared error is not touched');
  assert.equal(a.attempts, 2);
  // Undefined facts stay undefined; a foreign copy's error becomes one of ours.
  const bare = errorForRequest(new MuxpoolError('MUXPOOL_ERR_POOL_CLOSED', 'closed'));
  assert.equal(bare.maybeProcessed, undefined);
  assert.equal(bare.wireCode, undefined);
  const other = await secondCopy();
  const foreign = new other.MuxpoolError('MUXPOOL_ERR_GOAWAY', 'away', { maybeProcessed: true });
  const mine = errorForRequest(foreign);
  assert.equal(Object.getPrototypeOf(mine), MuxpoolError.prototype);
  assert.equal(mine.maybeProcessed, true);
  assert.equal(mine.cause, foreign);
  // Anything else passes through as it is.
  const plain = new TypeError('x');
  assert.equal(errorForRequest(plain), plain);
});
