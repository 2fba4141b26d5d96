/**
 * The one interface every transport implements (HTTP/1.1 over TCP/TLS, HTTP/2, HTTP/3 over
 * QUIC): a `Poolable` the pool core can store, on which request streams open. The client is
 * written against it once; nothing above this file knows which protocol carries a request.
 */
import type { Duplex } from 'node:stream';
import type { Poolable } from '../pool/poolable.js';
import type { RequestBody, RequestHead, RequestStream, StreamHandler } from './message.js';
import type { ConnectionProtocol } from './version.js';

export interface Connection extends Poolable {
  readonly protocol: ConnectionProtocol;
  /** Requests carried so far: 0 before the first, so `reused` is `requestCount > 0`. */
  readonly requestCount: number;
  /** The remote address, for stats and diagnostics. */
  readonly remoteAddress: string | undefined;
  /** The TLS or QUIC handshake resumed an earlier session (undefined where unknown). */
  readonly resumed?: boolean | undefined;

  /** Opens a request stream. The caller holds a stream slot from the pool. */
  openStream(head: RequestHead, body: RequestBody, handler: StreamHandler): RequestStream;

  /**
   * HTTP/1.1 only: hand the raw socket to a user of `getH1()`, and take it back in `putH1()`.
   * While detached the connection does not read from or watch the socket.
   */
  detachSocket?(): Duplex;
  reattachSocket?(): void;
}
