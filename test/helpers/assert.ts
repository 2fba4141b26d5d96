import assert from 'node:assert/strict';
import { MuxpoolError } from '../../src/errors.js';

/** Awaits `promise` and checks it rejects with a MuxpoolError of `code`; returns the error. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<MuxpoolError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof MuxpoolError, `expected a MuxpoolError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}
