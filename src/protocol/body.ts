/**
 * Request bodies as every transport sends them: the checks on a streamed body live here once, so
 * HTTP/1.1, HTTP/2 and HTTP/3 agree on what a bad body is.
 */
import { MuxpoolError } from '../errors.js';

/**
 * The non-empty chunks of `body`, checked as they pass: each must be bytes, and the total must
 * match `declaredLength` when one was announced (a longer body fails at the chunk that overruns
 * it, a shorter one at its end). A consumer that stops early never sees the end check.
 */
export async function* checkedBody(body: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, declaredLength: number | undefined): AsyncGenerator<Uint8Array> {
  let sent = 0;
  for await (const chunk of body) {
    if (!(chunk instanceof Uint8Array)) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_BODY', 'request body chunks must be strings, Buffers or Uint8Arrays');
    }
    if (chunk.byteLength === 0) continue;
    sent += chunk.byteLength;
    if (declaredLength !== undefined && sent > declaredLength) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_BODY', `request body is longer than its content-length ${declaredLength}`);
    }
    yield chunk;
  }
  if (declaredLength !== undefined && sent !== declaredLength) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_BODY', `request body has ${sent} bytes but content-length says ${declaredLength}`);
  }
}

/**
 * What a failed body becomes: our own errors as they are, anything the user's stream threw as
 * INVALID_BODY. Part of the request may be on the wire, so the server may have acted on it.
 */
export function bodyFailure(err: unknown): MuxpoolError {
  const error = err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_INVALID_BODY', 'reading the request body failed', { cause: err });
  error.maybeProcessed ??= true;
  return error;
}
