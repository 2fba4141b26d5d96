/**
 * The `muxpool` command's exit status: curl's codes, judged by the error codes and the cause
 * chain, never by message wording.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exitCodeFor } from '../../src/cli/exit-codes.js';
import { MuxpoolError, errorForRequest } from '../../src/errors.js';

test("a proxy that cannot be reached exits 5 when its name did not resolve and 7 otherwise, whatever the messages say", () => {
  const dns = new MuxpoolError('MUXPOOL_ERR_DNS', 'ENOTFOUND proxy.example', { maybeProcessed: false });
  const refused = new MuxpoolError('MUXPOOL_ERR_CONNECT_REFUSED', 'cannot resolve… (a misleading message)', { maybeProcessed: false });
  const viaDns = new MuxpoolError('MUXPOOL_ERR_PROXY_CONNECT', 'the proxy proxy.example:3128 is out of reach', { cause: dns, maybeProcessed: false });
  const viaRefused = new MuxpoolError('MUXPOOL_ERR_PROXY_CONNECT', 'cannot resolve anything here: the port refused', { cause: refused, maybeProcessed: false });
  assert.equal(exitCodeFor(viaDns), 5);
  assert.equal(exitCodeFor(viaRefused), 7);
  // What a request throws is its own copy of the shared failure: the cause beneath still counts.
  assert.equal(exitCodeFor(errorForRequest(viaDns)), 5);
  assert.equal(exitCodeFor(errorForRequest(errorForRequest(viaRefused))), 7);
  assert.equal(exitCodeFor(new Error('not ours')), 1);
  assert.equal(exitCodeFor(dns), 6);
});
