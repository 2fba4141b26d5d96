import type { Clock } from '../core/clock.js';
import type { Connection } from '../protocol/connection.js';
import type { PoolKey } from './key.js';
import { HttpVersion } from '../protocol/version.js';

/**
 * One live connection as the pool sees it: the seed's `PoolEntry`, plus the connection itself.
 * The pool is the only writer of the bookkeeping fields.
 */
export class PoolEntry {
  readonly key: PoolKey;
  readonly connection: Connection;
  readonly version: HttpVersion;
  readonly establishedAt: number;
  lastUsed: number;
  activeStreams = 0;
  /** False once invalidated: no new streams; the pool closes it when its streams are done. */
  isValid = true;
  /** HTTP/1.1 only: the socket is out with a `getH1()` caller. */
  detached = false;
  private readonly configuredMaxStreams: number;
  private readonly clock: Clock;

  constructor(key: PoolKey, connection: Connection, configuredMaxStreams: number, clock: Clock) {
    this.key = key;
    this.connection = connection;
    this.version =
      connection.protocol === 'h2' ? HttpVersion.Http2 : connection.protocol === 'h3' ? HttpVersion.Http3 : HttpVersion.Http1_1;
    this.clock = clock;
    this.establishedAt = clock.now();
    this.lastUsed = this.establishedAt;
    this.configuredMaxStreams = configuredMaxStreams;
  }

  /** The smaller of the configured limit and what the peer allows right now. */
  get maxStreams(): number {
    if (!this.connection.shareable) return 1;
    return Math.min(this.configuredMaxStreams, this.connection.maxStreams);
  }

  /** True while new streams may go to this connection. */
  get acceptsStreams(): boolean {
    return this.isValid && this.connection.state === 'open';
  }

  /** The seed's rule: HTTP/2 or HTTP/3, valid, and a free stream slot. */
  canMultiplex(): boolean {
    return this.connection.shareable && this.acceptsStreams && this.activeStreams < this.maxStreams;
  }

  /** Idle longer than `maxIdleMs`, or past the peer's keep-alive deadline. */
  isExpired(maxIdleMs: number, now: number = this.clock.now()): boolean {
    if (this.activeStreams > 0 || this.detached) return false;
    if (now - this.lastUsed >= maxIdleMs) return true;
    const peerDeadline = this.connection.expiresAt;
    return peerDeadline !== undefined && now >= peerDeadline;
  }

  /** When this idle entry stops being reusable (clock time). */
  expiryTime(maxIdleMs: number): number {
    const own = this.lastUsed + maxIdleMs;
    const peerDeadline = this.connection.expiresAt;
    return peerDeadline !== undefined && peerDeadline < own ? peerDeadline : own;
  }
}
