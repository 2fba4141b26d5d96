/**
 * Typed errors with stable codes.
 *
 * Every error muxpool raises is a `MuxpoolError` whose `code` is one of `ERROR_CODES`. Users
 * switch on `code`; the message is for people and may change. The README lists every code
 * (a unit test keeps that list and this table in step).
 */

/** Every stable error code, with the one-line meaning the README documents. */
export const ERROR_CODES = {
  MUXPOOL_ERR_INVALID_ARGUMENT: 'an option or argument has an invalid type or value',
  MUXPOOL_ERR_INVALID_URL: 'the URL cannot be parsed or has no host',
  MUXPOOL_ERR_UNSUPPORTED_SCHEME: 'the URL scheme is neither http: nor https:',
  MUXPOOL_ERR_INVALID_METHOD: 'the request method is not an HTTP token',
  MUXPOOL_ERR_INVALID_HEADER: 'a request header name or value is invalid (CR, LF, NUL, non-token name, forbidden header)',
  MUXPOOL_ERR_INVALID_BODY: 'the request body has an unsupported type, or its length disagrees with Content-Length',
  MUXPOOL_ERR_INVALID_CA: 'a CA certificate given in tls.ca, NODE_EXTRA_CA_CERTS or --cacert is not valid PEM',
  MUXPOOL_ERR_POOL_CLOSED: 'the pool was closed or destroyed; it takes no new work',
  MUXPOOL_ERR_QUEUE_FULL: 'every connection slot is taken and the waiter queue holds maxWaiters callers already',
  MUXPOOL_ERR_ACQUIRE_TIMEOUT: 'no connection slot became free within acquireTimeoutMs',
  MUXPOOL_ERR_ABORTED: "the caller's AbortSignal fired",
  MUXPOOL_ERR_REQUEST_TIMEOUT: 'the request did not complete within timeoutMs',
  MUXPOOL_ERR_READ_TIMEOUT: 'the stream made no progress for readTimeoutMs: the peer sent nothing and took none of the request body',
  MUXPOOL_ERR_DNS: 'the host name could not be resolved',
  MUXPOOL_ERR_CONNECT_REFUSED: 'the peer refused the connection (nothing listens on that port)',
  MUXPOOL_ERR_CONNECT_TIMEOUT: 'the connection (TCP and TLS handshake) did not complete within connectTimeoutMs',
  MUXPOOL_ERR_CONNECT: 'the connection could not be established (unreachable network or host, other socket error)',
  MUXPOOL_ERR_TLS_CERT: 'the server certificate is not trusted (unknown issuer, self-signed, expired)',
  MUXPOOL_ERR_TLS_HOSTNAME: 'the server certificate does not cover the host name',
  MUXPOOL_ERR_TLS: 'the TLS handshake failed for another reason (protocol or alert)',
  MUXPOOL_ERR_TLS_PIN: 'no certificate of the server matches tls.pins (--pinnedpubkey): the connection was closed before any request was sent',
  MUXPOOL_ERR_TLS_CLIENT_CERT: 'the server refused our client certificate, or required one and none was configured (a TLS alert from the server)',
  MUXPOOL_ERR_CONNECTION_RESET: 'the peer reset the connection',
  MUXPOOL_ERR_CONNECTION_CLOSED: 'the peer closed the connection before the response was complete',
  MUXPOOL_ERR_H1_PARSE: 'the HTTP/1.1 response is malformed (status line, header line, chunk framing, Content-Length with Transfer-Encoding, an unsupported transfer coding)',
  MUXPOOL_ERR_H1_CONTENT_LENGTH: 'the HTTP/1.1 response has an invalid or conflicting Content-Length',
  MUXPOOL_ERR_HEADERS_TOO_LARGE: 'the response header section exceeds maxHeaderBytes or maxHeaderCount',
  MUXPOOL_ERR_BODY_TRUNCATED: 'the response body ended before its declared length or final chunk',
  MUXPOOL_ERR_BODY_USED: 'the response body was already consumed',
  MUXPOOL_ERR_INVALID_JSON: 'res.json() was called on a body that is not valid JSON',
  MUXPOOL_ERR_STREAM_REFUSED: 'the server refused the stream before processing it (HTTP/2 REFUSED_STREAM, HTTP/3 H3_REQUEST_REJECTED)',
  MUXPOOL_ERR_STREAM_RESET: 'the server reset the stream with an error code (HTTP/2 RST_STREAM, HTTP/3 RESET_STREAM)',
  MUXPOOL_ERR_GOAWAY: 'the server sent GOAWAY: the connection takes no new streams and closed before this request completed',
  MUXPOOL_ERR_PING_TIMEOUT: 'the connection did not answer a PING within pingTimeoutMs and was closed as dead',
  MUXPOOL_ERR_H2_PROTOCOL: 'the HTTP/2 session failed: a protocol, flow-control or framing error from either side',
  MUXPOOL_ERR_H3_PROTOCOL: 'the HTTP/3 peer broke the protocol (bad frame, bad stream, bad SETTINGS)',
  MUXPOOL_ERR_QPACK: 'a QPACK header block could not be decoded or exceeds the limits',
  MUXPOOL_ERR_QUIC: 'the QUIC connection failed: a transport error from either side, or the peer closed it during the handshake',
  MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT: 'the QUIC handshake did not complete within handshakeTimeoutMs (or the idle timeout, if shorter)',
  MUXPOOL_ERR_QUIC_IDLE_TIMEOUT: 'the QUIC connection closed after no packet arrived within the idle timeout',
  MUXPOOL_ERR_QUIC_STREAM_LIMIT: 'the peer allows no more QUIC streams until it raises its limit (MAX_STREAMS)',
  MUXPOOL_ERR_QUIC_STREAM_CLOSED: 'the QUIC stream cannot be written: it is finished, reset, or the peer asked to stop sending',
  MUXPOOL_ERR_REDIRECT: "a redirect could not be followed: redirect: 'error', a Location that is not an http(s) URL, or a body that cannot be sent again",
  MUXPOOL_ERR_TOO_MANY_REDIRECTS: 'the request was redirected more than maxRedirects times, or in a loop',
  MUXPOOL_ERR_DECODE: 'the response body could not be decoded (corrupt gzip, deflate, br or zstd content-encoding)',
  MUXPOOL_ERR_NOT_SUPPORTED: 'the request needs something muxpool does not do (an HTTP upgrade, CONNECT through dispatch)',
  MUXPOOL_ERR_PROTOCOL_UNAVAILABLE: 'the requested HTTP version cannot be used with this origin or is not supported',
  MUXPOOL_ERR_PROXY_CONNECT: 'the proxy could not be reached (refused, not resolvable, timed out, or TLS to an https proxy failed); `cause` says why',
  MUXPOOL_ERR_PROXY_TUNNEL: 'the HTTP proxy refused the CONNECT tunnel (its status is in `status` and the message) or answered with a malformed or incomplete response',
  MUXPOOL_ERR_PROXY_AUTH: 'the proxy needs credentials or refused the ones given (HTTP 407, SOCKS5 authentication failed or required)',
  MUXPOOL_ERR_SOCKS: 'the SOCKS5 proxy could not connect to the target (its RFC 1928 reply code in `replyCode`) or broke the protocol',
  MUXPOOL_ERR_INTERNAL: 'an internal invariant broke (a bug in muxpool: please report it)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Who caused a protocol error: this side, or the peer. */
export type ErrorOrigin = 'local' | 'remote';

export interface MuxpoolErrorOptions {
  cause?: unknown;
  /**
   * Retry facts. `false`: the server cannot have processed the request (it never saw it, or
   * said so), so replaying it is safe. `true`: it may have. Undefined when no request was
   * involved.
   */
  maybeProcessed?: boolean;
  /** How many times the request was attempted before this error (1 = no retry). */
  attempts?: number;
  /** For protocol errors: the wire error code (HTTP/2 or HTTP/3) and who raised it. */
  wireCode?: number;
  origin?: ErrorOrigin;
  /** Other failures that came with this one (the QUIC attempt's, when TCP failed too). */
  related?: readonly unknown[];
  /** The HTTP status a proxy answered CONNECT with (`MUXPOOL_ERR_PROXY_TUNNEL`, `MUXPOOL_ERR_PROXY_AUTH`). */
  status?: number;
  /** The reply code of a SOCKS5 proxy (RFC 1928 §6), for `MUXPOOL_ERR_SOCKS`. */
  replyCode?: number;
}

/**
 * The brand every `MuxpoolError` carries. `Symbol.for` gives the same symbol to every copy of
 * muxpool loaded in a process (two versions in `node_modules`, or one module loaded under two
 * URLs), so an error raised by one copy is recognised by another, where `instanceof` against a
 * different class object would say no.
 */
const BRAND: unique symbol = Symbol.for('muxpool.error') as never;

export class MuxpoolError extends Error {
  override readonly name = 'MuxpoolError';
  readonly code: ErrorCode;
  maybeProcessed: boolean | undefined;
  attempts: number | undefined;
  readonly wireCode: number | undefined;
  readonly origin: ErrorOrigin | undefined;
  /** Other failures that came with this one, e.g. every attempt of a QUIC/TCP race that failed. */
  readonly related: readonly unknown[] | undefined;
  /** The HTTP status a proxy answered CONNECT with (`MUXPOOL_ERR_PROXY_TUNNEL`, `MUXPOOL_ERR_PROXY_AUTH`). */
  readonly status: number | undefined;
  /** The reply code of a SOCKS5 proxy (RFC 1928 §6), for `MUXPOOL_ERR_SOCKS`. */
  readonly replyCode: number | undefined;

  constructor(code: ErrorCode, message: string, options: MuxpoolErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.maybeProcessed = options.maybeProcessed;
    this.attempts = options.attempts;
    this.wireCode = options.wireCode;
    this.origin = options.origin;
    this.related = options.related;
    this.status = options.status;
    this.replyCode = options.replyCode;
  }

  /** A copy of this error with `others` attached as `related` (its own cause kept). */
  withRelated(others: readonly unknown[]): MuxpoolError {
    return new MuxpoolError(this.code, this.message, {
      cause: this.cause,
      maybeProcessed: this.maybeProcessed,
      attempts: this.attempts,
      wireCode: this.wireCode,
      origin: this.origin,
      related: [...(this.related ?? []), ...others],
      ...(this.status !== undefined ? { status: this.status } : {}),
      ...(this.replyCode !== undefined ? { replyCode: this.replyCode } : {}),
    });
  }

  /**
   * `err instanceof MuxpoolError` is true for an error of any copy of muxpool (it checks the
   * brand). A subclass keeps the ordinary prototype check, so it does not claim every brand.
   */
  static override [Symbol.hasInstance](value: unknown): value is MuxpoolError {
    if (this !== MuxpoolError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return hasBrand(value);
  }

  /**
   * A fresh error for one request, with the same code, message and retry facts and this one as
   * its `cause`. A failure shared by many requests (a session that died, waiters failed at once)
   * is never handed out itself: each request sets its own `attempts` on its own copy.
   */
  forRequest(): MuxpoolError {
    return errorForRequest(this);
  }
}

// On the prototype, not on each instance: invisible in logs and `JSON.stringify`, and free.
Object.defineProperty(MuxpoolError.prototype, BRAND, { value: true, enumerable: false, writable: false, configurable: false });

function hasBrand(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}

/**
 * True for a `MuxpoolError` from this or any other copy of muxpool in the process (checked by
 * brand, not by class), optionally with the given `code`.
 */
export function isMuxpoolError(err: unknown, code?: ErrorCode): err is MuxpoolError {
  return hasBrand(err) && typeof (err as { code?: unknown }).code === 'string' && (code === undefined || (err as MuxpoolError).code === code);
}

/**
 * What lies beneath `err`: its cause, past the copies of itself (`errorForRequest` wraps a shared
 * failure in one of the same code per request). The socket's or resolver's error under a
 * `PROXY_CONNECT`, say. Bounded: at most four copies are skipped.
 */
export function causeBeneath(err: MuxpoolError): unknown {
  let cause: unknown = err.cause;
  for (let depth = 0; depth < 4 && isMuxpoolError(cause, err.code); depth++) cause = cause.cause;
  return cause;
}

/**
 * The error one request reports for `shared`, a failure that may reach many requests: a new
 * `MuxpoolError` (of this copy) with the same code, message, `maybeProcessed`, `wireCode` and
 * `origin`, and `cause: shared`; `attempts` is left for the request to set. Anything that is
 * not a `MuxpoolError` is returned as it is.
 */
export function errorForRequest<T>(shared: T): T | MuxpoolError {
  if (!isMuxpoolError(shared)) return shared;
  const options: MuxpoolErrorOptions = { cause: shared };
  if (shared.maybeProcessed !== undefined) options.maybeProcessed = shared.maybeProcessed;
  if (shared.wireCode !== undefined) options.wireCode = shared.wireCode;
  if (shared.origin !== undefined) options.origin = shared.origin;
  if (shared.related !== undefined) options.related = shared.related;
  if (shared.status !== undefined) options.status = shared.status;
  if (shared.replyCode !== undefined) options.replyCode = shared.replyCode;
  return new MuxpoolError(shared.code, shared.message, options);
}

/** Raised when code reaches a state it must never reach: a bug, never the peer's fault. */
export function internalError(message: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_INTERNAL', message);
}
