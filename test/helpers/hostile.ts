/**
 * Shared pieces of the hostile-peer suites (test/integration/hostile-*.test.ts): run one request
 * to its end (head and body) and judge how it ended: a typed error at once, and not the read
 * timeout standing in for an error the client could have seen.
 */
import assert from 'node:assert/strict';
import { ConnectionPool, MuxpoolError, type RequestOptions, type Resolver, type Response } from '../../src/index.js';

/** Short on purpose: an error that should be immediate must come well before it. */
export const HOSTILE_READ_TIMEOUT_MS = 4_000;
/**
 * "At once": half the read timeout. Generous, since it covers the dial (a first QUIC handshake
 * loads the native binding) on a machine that may be busy, yet an error that waited for the
 * read timeout cannot pass.
 */
export const AT_ONCE_MS = 2_000;

/** `localhost` pinned to IPv4 loopback, where the hostile servers listen. */
export const loopback: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];

export function hostilePool(options: ConstructorParameters<typeof ConnectionPool>[0] = {}): ConnectionPool {
  return new ConnectionPool({ resolver: loopback, readTimeoutMs: HOSTILE_READ_TIMEOUT_MS, connectTimeoutMs: 5_000, ...options });
}

export type Outcome =
  | { kind: 'response'; res: Response; body: Buffer; elapsedMs: number }
  | { kind: 'error'; error: MuxpoolError; stage: 'request' | 'body'; elapsedMs: number };

/** Sends the request and reads the whole body; never throws for a MuxpoolError, tells where it came. */
export async function exchange(pool: ConnectionPool, url: string, options: RequestOptions = {}): Promise<Outcome> {
  const started = performance.now();
  let res: Response;
  try {
    res = await pool.request(url, { timeoutMs: 20_000, ...options });
  } catch (err) {
    assert.ok(err instanceof MuxpoolError, `expected a MuxpoolError, got ${String(err)}`);
    return { kind: 'error', error: err, stage: 'request', elapsedMs: performance.now() - started };
  }
  try {
    const body = await res.bytes();
    return { kind: 'response', res, body, elapsedMs: performance.now() - started };
  } catch (err) {
    assert.ok(err instanceof MuxpoolError, `expected a MuxpoolError from the body, got ${String(err)}`);
    return { kind: 'error', error: err, stage: 'body', elapsedMs: performance.now() - started };
  }
}

/**
 * The outcome is a MuxpoolError with one of `codes`, within AT_ONCE_MS; names the stage when
 * given. Returns the error.
 */
export function assertTypedAtOnce(outcome: Outcome, codes: readonly string[], stage?: 'request' | 'body'): MuxpoolError {
  if (outcome.kind === 'response') {
    assert.fail(`expected ${codes.join(' or ')}, got ${outcome.res.status} with ${outcome.body.length} body bytes ${JSON.stringify(outcome.body.subarray(0, 60).toString('latin1'))}`);
  }
  const { error } = outcome;
  assert.notEqual(error.code, 'MUXPOOL_ERR_READ_TIMEOUT', `the error waited for the read timeout: ${error.message}`);
  assert.ok(codes.includes(error.code), `expected ${codes.join(' or ')}, got ${error.code}: ${error.message}`);
  assert.ok(outcome.elapsedMs < AT_ONCE_MS, `${error.code} came after ${Math.round(outcome.elapsedMs)} ms, not at once`);
  if (stage !== undefined) assert.equal(outcome.stage, stage, `the error came from the ${outcome.stage}, expected from the ${stage}`);
  return error;
}

/** The outcome is a response with `status` and exactly `body`. */
export function assertResponse(outcome: Outcome, status: number, body: string | Buffer): Response {
  if (outcome.kind === 'error') assert.fail(`expected ${status}, got ${outcome.error.code} (${outcome.stage}): ${outcome.error.message}`);
  assert.equal(outcome.res.status, status);
  assert.deepEqual(outcome.body, Buffer.from(body));
  return outcome.res;
}
