import type { Clock } from '../core/clock.js';
import type { PoolKey } from './key.js';
import type { Poolable } from './poolable.js';

/**
 * One live connection as the pool sees it: the seed's `PoolEntry`, plus the connection itself.
 * The pool core is the only writer of the bookkeeping fields.
 */
export class PoolEntry<C extends Poolable = Poolable> {
  readonly key: PoolKey;
  readonly connection: C;
  readonly establishedAt: number;
  lastUsed: number;
  activeStreams = 0;
  /** False once invalidated: no new streams; the pool closes it when its streams are done. */
  isValid = true;
  /** Lent whole to a caller (an HTTP/1.1 socket out with a `getH1()` user) until it comes back. */
  lent = false;
  private readonly configuredMaxStreams: number;
  private readonly clock: Clock;

  constructor(key: PoolKey, connection: C, configuredMaxStreams: number, clock: Clock) {
    this.key = key;
    this.connection = connection;
    this.clock = clock;
    this.establishedAt = clock.now();
    this.lastUsed = this.establishedAt;
    this.configuredMaxStreams = configuredMaxStreams;
  }

  /** @internal The core's clock now: the client's request timings share it. */
  now(): number {
    return this.clock.now();
  }

  /** The seed's `version`: what the connection speaks, as it reports it (`'http/1.1'`, `'h2'`, `'h3'`). */
  get version(): C['protocol'] {
    return this.connection.protocol;
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

  /** The seed's rule: shareable (HTTP/2, HTTP/3), valid, and a free stream slot. */
  canMultiplex(): boolean {
    return this.connection.shareable && this.acceptsStreams && this.activeStreams < this.maxStreams;
  }

  /** Idle longer than `maxIdleMs`, or past the peer's keep-alive deadline. */
  isExpired(maxIdleMs: number, now: number = this.clock.now()): boolean {
    if (this.activeStreams > 0 || this.lent) return false;
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
