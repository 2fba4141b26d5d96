/**
 * The one interface every transport implements (HTTP/1.1 over TCP/TLS, HTTP/2 over node:http2,
 * HTTP/3 over QUIC). The pool and the client are written against it once; nothing above this
 * file knows which protocol carries a request.
 */
import type { Duplex } from 'node:stream';
import type { MuxpoolError } from '../errors.js';
import type { ConnectionProtocol } from './version.js';

/**
 * Connection states, in the only order they can be visited:
 *   open → draining → closed, or open → closed.
 * `draining`: no new streams (GOAWAY, `Connection: close`, invalidated); open ones finish.
 */
export type ConnectionState = 'open' | 'draining' | 'closed';

/** Response header fields: lower-case names; repeated fields as arrays (set-cookie). */
export type IncomingHeaders = Record<string, string | string[]>;

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
}

/** A request body as the transport receives it: bytes, or chunks that arrive over time. */
export type RequestBody = Uint8Array | AsyncIterable<Uint8Array> | null;

/**
 * The receiving side of a request stream. The transport calls, in order: `onResponse` once,
 * `onData` any number of times, `onTrailers` at most once, then exactly one of `onComplete` or
 * `onError` (and nothing after it). `onError` may also come before `onResponse`.
 */
export interface StreamHandler {
  onResponse(status: number, headers: IncomingHeaders, statusText: string): void;
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

/** How a connection tells its owner (the pool) about changes it did not cause. */
export interface ConnectionObserver {
  /** The connection is gone (peer closed, error, destroyed). Called once. */
  onClose(connection: Connection, err: MuxpoolError | undefined): void;
  /** `maxStreams` or `state` changed (SETTINGS, MAX_STREAMS, GOAWAY, `Connection: close`). */
  onCapacityChange(connection: Connection): void;
}

export interface Connection {
  /** Stable id, unique in the process: what `res.connectionId` reports. */
  readonly id: string;
  readonly protocol: ConnectionProtocol;
  /** true: many streams at once (HTTP/2, HTTP/3); false: one at a time (HTTP/1.1). */
  readonly shareable: boolean;
  readonly state: ConnectionState;
  /** Streams the peer allows at once right now (1 for HTTP/1.1; may change over time). */
  readonly maxStreams: number;
  /** Clock time after which the peer may close this connection while idle (keep-alive hint). */
  readonly expiresAt: number | undefined;
  /** Requests carried so far: 0 before the first, so `reused` is `requestCount > 0`. */
  readonly requestCount: number;
  /** The remote address, for stats and diagnostics. */
  readonly remoteAddress: string | undefined;
  /** The TLS or QUIC handshake resumed an earlier session (undefined where unknown). */
  readonly resumed?: boolean | undefined;

  /** The pool sets itself as the observer once, right after the dial. */
  setObserver(observer: ConnectionObserver): void;

  /**
   * Cheap check before an idle connection is handed out: false when the peer closed it, it
   * ended, or bytes arrived that no request asked for.
   */
  isUsable(): boolean;

  /** Opens a request stream. The caller holds a stream slot from the pool. */
  openStream(head: RequestHead, body: RequestBody, handler: StreamHandler): RequestStream;

  /** No new streams; close once open ones finish. */
  drain(): void;
  /** Close now; open streams fail with `err` (or a connection-closed error). */
  destroy(err?: MuxpoolError): void;

  /**
   * HTTP/1.1 only: hand the raw socket to a user of `getH1()`, and take it back in `putH1()`.
   * While detached the connection does not read from or watch the socket.
   */
  detachSocket?(): Duplex;
  reattachSocket?(): void;
}
