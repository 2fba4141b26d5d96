/**
 * The HTTP message types every protocol driver and the client share: what a request stream
 * sends, and how its response is handed back.
 */
import type { MuxpoolError } from '../errors.js';

/**
 * Response header fields: lower-case names; repeated fields as arrays (set-cookie). Every
 * protocol builds them with `emptyHeaders()`: a record without a prototype, so a field named
 * `constructor`, `__proto__` or `toString` reads back as the peer sent it.
 */
export type IncomingHeaders = Record<string, string | string[]>;

/** A header record that inherits nothing from `Object.prototype`. */
export function emptyHeaders(): IncomingHeaders {
  return Object.create(null) as IncomingHeaders;
}

/** What a request stream sends, already validated by the client layer. */
export interface RequestHead {
  /** An HTTP token, e.g. `GET`. */
  readonly method: string;
  /** origin-form target: `/path?query`. */
  readonly path: string;
  /** `host[:port]` for the Host header or `:authority`. */
  readonly authority: string;
  readonly scheme: 'http' | 'https';
  /** Flat `[name, value, name, value, …]`; names lower-case; values checked for CR/LF/NUL. */
  readonly headers: readonly string[];
  /**
   * Body length when known (0 means an empty body is sent explicitly); `undefined` when the body
   * is streamed with unknown length; `null` when the request has no body at all.
   */
  readonly contentLength: number | null | undefined;
  /**
   * Set on a head that is sent many times unchanged (the load generator's): each protocol keeps
   * its encoding of the head here, made on first use, instead of encoding it for every request.
   * @internal
   */
  readonly encodings?: HeadEncodings | undefined;
}

/**
 * Per-protocol encodings of one `RequestHead`, filled in by the drivers. Only for a head nobody
 * changes after its first request. Each entry is exactly what the driver would build from the head
 * alone; anything that depends on the connection (HPACK's dynamic table, the peer's limits) is
 * still decided per request. Internal: the load generator's (`muxpool bench`).
 * @internal
 */
export class HeadEncodings {
  /** HTTP/1.1: the request line and fields, as written to the socket. */
  h1: Buffer | undefined;
  /** HTTP/2: the field list (pseudo-header fields first) and its total size for the peer's limit (RFC 9113 §6.5.2). */
  h2Fields: readonly string[] | undefined;
  h2Key: string | undefined;
  h2Size = 0;
  /** HTTP/3: the HEADERS frame (QPACK static-only, so it depends on nothing else), and what it was built for. */
  h3Frame: Uint8Array | undefined;
  h3Tag: string | undefined;
}

/**
 * A response's header fields as they came on the wire, for callers that want them raw (undici's
 * `onHeaders` takes `[name, value, …]` Buffers): made only when asked, from bytes the transport
 * already has, instead of encoding the parsed strings again.
 */
export interface RawFieldSource {
  /** `[name, value, …]`: names as the peer spelled them, values without surrounding whitespace, repeats kept apart. Fresh Buffers on every call. */
  rawFields(): Buffer[];
}

/** A request body as the transport receives it: bytes, or chunks that arrive over time. */
export type RequestBody = Uint8Array | AsyncIterable<Uint8Array> | null;

/**
 * The receiving side of a request stream. The transport calls, in order: `onResponse` once,
 * `onData` any number of times, `onTrailers` at most once, then exactly one of `onComplete` or
 * `onError` (and nothing after it). `onError` may also come before `onResponse`.
 */
export interface StreamHandler {
  /** `raw`, where the transport has the head's bytes (HTTP/1.1): the same fields, raw. */
  onResponse(status: number, headers: IncomingHeaders, statusText: string, raw?: RawFieldSource): void;
  /** Returns false to ask for a pause: the transport stops reading until `stream.resume()`. */
  onData(chunk: Uint8Array): boolean;
  onTrailers(trailers: IncomingHeaders): void;
  onComplete(): void;
  onError(err: MuxpoolError): void;
}

/** The sending side's controls over an open stream. */
export interface RequestStream {
  /** Undo a pause requested by `onData` returning false. */
  resume(): void;
  /**
   * Ends the stream early (user abort, timeout, unread body dropped). HTTP/2 and HTTP/3 reset the
   * stream (CANCEL); HTTP/1.1 must close the connection, since the response cannot be skipped.
   * The handler gets `onError(reason)` unless it already completed.
   */
  cancel(reason: MuxpoolError): void;
}
