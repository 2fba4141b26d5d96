/**
 * What the pool core stores: anything with an identity, a capacity and a way to close. The
 * core never looks further inside; HTTP connections (`protocol/connection.ts`) are one kind of
 * poolable, and the core's unit tests pool fakes.
 */
import type { MuxpoolError } from '../errors.js';

/**
 * States, in the only order they can be visited: open → draining → closed, or open → closed.
 * `draining`: no new streams (GOAWAY, `Connection: close`, invalidated); open ones finish.
 */
export type ConnectionState = 'open' | 'draining' | 'closed';

/** How a pooled thing tells its owner (the pool) about changes it did not cause. */
export interface ConnectionObserver {
  /** It is gone (peer closed, error, destroyed). Called once. */
  onClose(connection: Poolable, err: MuxpoolError | undefined): void;
  /** `maxStreams` or `state` changed (SETTINGS, MAX_STREAMS, GOAWAY, `Connection: close`). */
  onCapacityChange(connection: Poolable): void;
}

export interface Poolable {
  /** Stable id, unique in the process. */
  readonly id: string;
  /** A label the pool reports as it is (entries, stats) and never interprets. */
  readonly protocol: string;
  /** true: many users at once (HTTP/2, HTTP/3); false: one at a time (HTTP/1.1). */
  readonly shareable: boolean;
  readonly state: ConnectionState;
  /** Users allowed at once right now (ignored for unique connections; may change over time). */
  readonly maxStreams: number;
  /** Clock time after which the peer may close this connection while idle (keep-alive hint). */
  readonly expiresAt: number | undefined;
  /** The pool sets itself as the observer once, right after the dial. */
  setObserver(observer: ConnectionObserver): void;
  /** Cheap check before an idle connection is handed out: false when it can no longer serve. */
  isUsable(): boolean;
  /** No new users; close once the current ones finish. */
  drain(): void;
  /** Close now; current users fail with `err` (or a connection-closed error). */
  destroy(err?: MuxpoolError): void;
}
