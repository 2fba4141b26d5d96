import assert from 'node:assert/strict';
import { MuxpoolError } from '../../src/errors.js';

/** Awaits `promise` and checks it rejects with a MuxpoolError of one of `codes`; returns the error. */
export async function rejectsWith(promise: Promise<unknown>, ...codes: string[]): Promise<MuxpoolError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof MuxpoolError, `expected a MuxpoolError, got ${String(err)}`);
    if (codes.length === 1) assert.equal(err.code, codes[0], err.message);
    else assert.ok(codes.includes(err.code), `expected one of ${codes.join(', ')}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected ${codes.join(' or ')}, but it resolved`);
}
