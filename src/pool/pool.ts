/**
 * The protocol-agnostic pool core: keyed sets of live connections, stream slots, limits, a
 * bounded queue of waiters (priority classes, FIFO within each, no starvation), single-flight
 * dials, a short wait before overflowing full shared connections, expiry. It stores
 * `Connection`s that are either shareable (HTTP/2, HTTP/3) or unique (HTTP/1.1) and never looks
 * inside them; dialing is a `Connector` handed in by the layer above.
 */
import type { Duplex } from 'node:stream';
import { type Clock, type Timer, systemClock } from '../core/clock.js';
import { MuxpoolError } from '../errors.js';
import type { Connection } from '../protocol/connection.js';
import type { ConnectionObserver } from './poolable.js';
import { PoolEntry } from './entry.js';
import type { PoolKey } from './key.js';
import { type ConnectionProtocol, HttpVersion } from '../protocol/version.js';
import { type RequestPriority, Waiter, WaiterQueue, abortError, priorityClass, priorityError } from './waiter.js';

/** Dials connections for the pool. `protocols` lists what the caller accepts, best first. */
export interface Connector {
  dial(key: PoolKey, protocols: readonly ConnectionProtocol[], signal: AbortSignal): Promise<Connection>;
  /** Wraps a socket returned by `putH1()` that the pool did not dial itself. */
  adopt(key: PoolKey, socket: Duplex): Connection;
}

export interface PoolCoreOptions {
  /** Idle connections are closed after this long unused. Default 30 000. */
  maxIdleMs?: number;
  /** Connections per key, idle and busy, dialing included. 0: nothing is kept. Default 6. */
  maxPerHost?: number;
  /** Streams per HTTP/2 or HTTP/3 connection, capped further by the peer. Default 100. */
  maxStreams?: number;
  /** How long a caller may wait for a slot when every cap is reached. Default 30 000. */
  acquireTimeoutMs?: number;
  /** Callers that may wait at once, per key; beyond it, fail fast. Default 10 000. */
  maxWaiters?: number;
  /** Close idle connections on a timer of their own (in addition to `cleanup()`). Default true. */
  autoCleanup?: boolean;
  /**
   * When every HTTP/2 or HTTP/3 connection of an origin is full, a caller waits this long for a
   * stream to free before another connection is opened (within `maxPerHost`). 0 opens one at
   * once. Default 50: streams usually free within a few ms, and a new connection costs a TCP and
   * TLS (or QUIC) handshake, often more than 50 ms away, plus memory on both ends. HTTP/1.1 is
   * not affected: its connections are never shared.
   */
  overflowWaitMs?: number;
  clock?: Clock;
  /**
   * Where facts about an origin outlive its connections (and, with a persistent store, the
   * process): what ALPN chose, and the peer's stream limit. The pool stays protocol-agnostic:
   * it only stores and reads back what it learned.
   */
  knowledge?: OriginKnowledge;
}

/** What the pool remembers about an origin beyond its connections. */
export interface OriginKnowledge {
  tcpProtocol(keyId: string): ConnectionProtocol | undefined;
  rememberTcpProtocol(keyId: string, protocol: ConnectionProtocol): void;
  streamLimit(keyId: string): number | undefined;
  rememberStreamLimit(keyId: string, limit: number): void;
}

export interface AcquireOptions {
  signal?: AbortSignal | undefined;
  /** Overrides the pool's `acquireTimeoutMs` for this call. */
  acquireTimeoutMs?: number | undefined;
  /** Which waiters get a slot first when callers must wait (see `WaiterQueue`). Default `'normal'`. */
  priority?: RequestPriority | undefined;
}

/** A live connection as `stats()` reports it. */
export interface ConnectionSnapshot {
  id: string;
  origin: string;
  protocol: ConnectionProtocol;
  state: 'idle' | 'active' | 'draining' | 'detached';
  activeStreams: number;
  maxStreams: number;
  requests: number;
  ageMs: number;
  idleMs: number;
  remoteAddress: string | undefined;
  /** The handshake resumed an earlier session (TLS ticket or QUIC resumption), where known. */
  resumed: boolean | undefined;
}

export interface PoolStats {
  totalConnections: number;
  activeStreams: number;
  http1Connections: number;
  http1IdleConnections: number;
  http2Connections: number;
  http3Connections: number;
  pendingDials: number;
  waiters: number;
  /** Connections dialed and closed over the pool's life. */
  dialed: number;
  closed: number;
  connections: ConnectionSnapshot[];
}

export interface CleanupTask {
  stop(): void;
}

interface Dial {
  readonly protocols: readonly ConnectionProtocol[];
  /** How many waiters this dial is expected to serve: its future stream slots. */
  readonly capacity: number;
  readonly controller: AbortController;
  /** A dial made for one caller alone (a retry that wants a fresh connection). */
  readonly reservedFor: Waiter | undefined;
}

/** Everything the pool holds for one key. */
class Bucket {
  readonly key: PoolKey;
  /** Every live connection of the key (idle, busy, draining, detached). */
  readonly entries = new Set<PoolEntry>();
  /** Shareable connections, in the order they were opened (fill the oldest first). */
  readonly shared: PoolEntry[] = [];
  /** Idle HTTP/1.1 connections, most recently returned last. */
  readonly idle: PoolEntry[] = [];
  readonly waiters = new WaiterQueue();
  readonly dials = new Set<Dial>();
  /** Due when the oldest waiter held back by `overflowWaitMs` may have a connection dialed. */
  overflowTimer: Timer | undefined;
  overflowDueAt = Infinity;
  /** What ALPN chose the last time this origin was dialed over TCP. */
  tcpProtocol: ConnectionProtocol | undefined;
  /** Streams the last multiplexed connection of this origin allowed: what a new one likely will. */
  streamLimit: number | undefined;

  constructor(key: PoolKey) {
    this.key = key;
  }

  get isEmpty(): boolean {
    return this.entries.size === 0 && this.waiters.length === 0 && this.dials.size === 0;
  }
}

const MAX_REMEMBERED_ORIGINS = 4096;
const NONE_EXHAUSTED: ReadonlyArray<readonly ConnectionProtocol[]> = [];
const H1_ONLY: readonly ConnectionProtocol[] = ['http/1.1'];
const H2_ONLY: readonly ConnectionProtocol[] = ['h2'];
const H3_THEN_TCP: readonly ConnectionProtocol[] = ['h3', 'h2'];
const H3_ONLY: readonly ConnectionProtocol[] = ['h3'];

function positiveIntegerOption(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(Number.isInteger(value) || value === Infinity) || value < (allowZero ? 0 : 1)) {
    throw new MuxpoolError(
      'MUXPOOL_ERR_INVALID_ARGUMENT',
      `${name} must be an integer ≥ ${allowZero ? 0 : 1}, got ${String(value)}`,
    );
  }
  return value;
}

export class PoolCore {
  readonly maxIdleMs: number;
  readonly maxPerHost: number;
  readonly maxStreams: number;
  readonly acquireTimeoutMs: number;
  readonly maxWaiters: number;
  readonly overflowWaitMs: number;
  readonly clock: Clock;
  protected readonly connector: Connector;
  private readonly autoCleanup: boolean;
  private readonly buckets = new Map<string, Bucket>();
  /** Origins' learned ALPN outlives their buckets (a key whose connections all closed). */
  private readonly learnedTcpProtocol = new Map<string, ConnectionProtocol>();
  private readonly knowledge: OriginKnowledge | undefined;
  /** Sockets out with getH1() callers, to recognise them in putH1(). */
  private readonly detachedSockets = new WeakMap<Duplex, PoolEntry>();
  private idleTimer: Timer | undefined;
  private idleTimerDueAt = Infinity;
  private closing = false;
  private closedWaiters: Array<() => void> = [];
  private dialedCount = 0;
  private closedCount = 0;

  constructor(connector: Connector, options: PoolCoreOptions = {}) {
    this.connector = connector;
    this.maxIdleMs = positiveIntegerOption('maxIdleMs', options.maxIdleMs, 30_000, true);
    this.maxPerHost = positiveIntegerOption('maxPerHost', options.maxPerHost, 6, true);
    this.maxStreams = positiveIntegerOption('maxStreams', options.maxStreams, 100);
    this.acquireTimeoutMs = positiveIntegerOption('acquireTimeoutMs', options.acquireTimeoutMs, 30_000);
    this.maxWaiters = positiveIntegerOption('maxWaiters', options.maxWaiters, 10_000, true);
    this.overflowWaitMs = positiveIntegerOption('overflowWaitMs', options.overflowWaitMs, 50, true);
    this.autoCleanup = options.autoCleanup !== false;
    this.clock = options.clock ?? systemClock;
    this.knowledge = options.knowledge;
  }

  get closed(): boolean {
    return this.closing;
  }

  // ---------------------------------------------------------------------------------------
  // The seed API

  /** An idle HTTP/1.1 socket for `key`, most recently returned first; undefined if none. */
  async getH1(key: PoolKey): Promise<Duplex | undefined> {
    this.assertOpen();
    const bucket = this.buckets.get(key.id);
    if (bucket === undefined) return undefined;
    const entry = this.takeIdleUnique(bucket);
    if (entry === undefined) return undefined;
    return this.detach(entry);
  }

  /**
   * An HTTP/1.1 socket for `key`: an idle one, or a new one dialed within `maxPerHost`; waits
   * (FIFO, bounded) when the cap is reached. Give it back with `putH1()`.
   */
  async acquireH1(key: PoolKey, options: AcquireOptions = {}): Promise<Duplex> {
    const entry = await this.acquire(key, H1_ONLY, false, options);
    if (entry === undefined) throw new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'HTTP/1.1 acquire settled without a connection');
    return this.detach(entry);
  }

  /** Returns an HTTP/1.1 socket; it is closed instead when the pool keeps nothing for it. */
  async putH1(key: PoolKey, socket: Duplex): Promise<void> {
    const entry = this.detachedSockets.get(socket);
    if (entry !== undefined && entry.key.id === key.id) {
      this.detachedSockets.delete(socket);
      entry.detached = false;
      entry.connection.reattachSocket?.();
      this.release(entry);
      return;
    }
    if (entry !== undefined) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `putH1: this socket belongs to ${entry.key.id}, not ${key.id}`);
    }
    const bucket = this.buckets.get(key.id);
    const count = bucket === undefined ? 0 : bucket.entries.size + bucket.dials.size;
    if (this.closing || this.maxPerHost === 0 || count >= this.maxPerHost || socket.destroyed || !socket.readable) {
      socket.destroy();
      return;
    }
    const connection = this.connector.adopt(key, socket);
    const target = this.bucketFor(key);
    const adopted = this.addEntry(target, connection);
    this.pushIdle(target, adopted);
    this.dispatch(target);
  }

  /**
   * A stream slot on an HTTP/2 or HTTP/3 connection for `key`: on an open connection with room,
   * or on one the pool dials (one dial for many callers). `undefined` for `Http1_1`, and when
   * the origin turns out to speak only HTTP/1.1 (use `acquireH1` then). Waits when every cap is
   * reached; rejects at the deadline or on abort.
   */
  async getOrCreate(key: PoolKey, version: HttpVersion, options: AcquireOptions = {}): Promise<PoolEntry | undefined> {
    switch (version) {
      case HttpVersion.Http1_1:
        return undefined;
      case HttpVersion.Http2:
      case HttpVersion.Auto:
        return this.acquire(key, H2_ONLY, true, options);
      case HttpVersion.Http3:
        return this.acquire(key, H3_THEN_TCP, true, options);
      case HttpVersion.Http3Only:
        return this.acquire(key, H3_ONLY, false, options);
      default:
        throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `unknown HTTP version ${String(version)}`);
    }
  }

  /** Gives a stream slot back: by entry, or by key (the most recently used busy entry). */
  async release(entryOrKey: PoolEntry | PoolKey): Promise<void> {
    const entry = entryOrKey instanceof PoolEntry ? entryOrKey : this.busyEntryOf(entryOrKey);
    if (entry === undefined) return;
    this.releaseEntry(entry);
  }

  /** No new streams go to this connection (or to every connection of a key); open ones finish. */
  async invalidate(entryOrKey: PoolEntry | PoolKey): Promise<void> {
    if (entryOrKey instanceof PoolEntry) {
      this.invalidateEntry(entryOrKey);
      return;
    }
    const bucket = this.buckets.get(entryOrKey.id);
    if (bucket === undefined) return;
    for (const entry of [...bucket.entries]) this.invalidateEntry(entry);
  }

  /**
   * Closes expired (idle longer than maxIdleMs or past the peer's keep-alive deadline), dead and
   * invalid idle connections. Returns milliseconds until the next one expires, if any is idle.
   */
  async cleanup(): Promise<number | undefined> {
    return this.sweep();
  }

  /** Runs `cleanup()` every `intervalMs` until `stop()`; never keeps the process alive. */
  spawnCleanupTask(intervalMs: number): CleanupTask {
    positiveIntegerOption('intervalMs', intervalMs, 1);
    let timer: Timer | undefined;
    let stopped = false;
    const tick = (): void => {
      if (stopped) return;
      this.sweep();
      timer = this.clock.setTimer(tick, intervalMs);
    };
    timer = this.clock.setTimer(tick, intervalMs);
    return {
      stop: () => {
        stopped = true;
        timer?.cancel();
      },
    };
  }

  async stats(): Promise<PoolStats> {
    return this.statsNow();
  }

  /** Stops new work, fails waiters, closes idle connections; busy ones close when released. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      this.stopIdleTimer();
      const err = new MuxpoolError('MUXPOOL_ERR_POOL_CLOSED', 'the pool is closing', { maybeProcessed: false });
      for (const bucket of [...this.buckets.values()]) {
        this.failWaiters(bucket, err);
        for (const dial of bucket.dials) dial.controller.abort(err);
        for (const entry of [...bucket.entries]) {
          if (entry.activeStreams === 0 && !entry.detached) this.closeEntry(entry);
          else entry.connection.drain();
        }
      }
    }
    await this.whenEmpty();
  }

  /** Ends everything now: waiters fail, dials abort, connections are destroyed with `err`. */
  async destroy(err?: Error): Promise<void> {
    this.closing = true;
    this.stopIdleTimer();
    const reason =
      err instanceof MuxpoolError
        ? err
        : new MuxpoolError('MUXPOOL_ERR_POOL_CLOSED', 'the pool was destroyed', { cause: err, maybeProcessed: true });
    for (const bucket of [...this.buckets.values()]) {
      this.failWaiters(bucket, reason);
      for (const dial of bucket.dials) dial.controller.abort(reason);
      for (const entry of [...bucket.entries]) this.closeEntry(entry, reason);
    }
    await this.whenEmpty();
  }

  // ---------------------------------------------------------------------------------------
  // Internal API for the client layer (synchronous fast path, no promise when a slot is free)

  /**
   * Opens a connection speaking `protocols[0]` for `key` with no caller waiting for it (an
   * upgrade, e.g. to HTTP/3 after Alt-Svc), unless one is open, being dialed, or the key is at
   * `maxPerHost`. The connection joins the pool idle; a failure only tells the connector.
   */
  /** The key of a live bucket, by id (for events that name a key id only). */
  protected keyById(id: string): PoolKey | undefined {
    return this.buckets.get(id)?.key;
  }

  prepare(key: PoolKey, protocols: readonly ConnectionProtocol[]): void {
    const wanted = protocols[0];
    if (this.closing || wanted === undefined) return;
    const bucket = this.bucketFor(key);
    if (bucket.entries.size + bucket.dials.size >= this.maxPerHost) return;
    for (const entry of bucket.entries) if (entry.connection.protocol === wanted && entry.acceptsStreams) return;
    for (const dial of bucket.dials) if (dial.protocols[0] === wanted) return;
    this.startDial(bucket, protocols, 0);
  }

  /**
   * Takes a connection the connector opened on its own (the loser of a protocol race that
   * completed anyway) into the pool, idle; destroyed instead when the pool is closing or full.
   */
  adoptConnection(key: PoolKey, connection: Connection): void {
    const bucket = this.closing ? undefined : this.bucketFor(key);
    if (bucket === undefined || bucket.entries.size + bucket.dials.size >= this.maxPerHost) {
      connection.destroy();
      return;
    }
    this.dialedCount++;
    const entry = this.addEntry(bucket, connection);
    if (connection.shareable) {
      bucket.streamLimit = entry.maxStreams;
      this.armIdleTimer(entry);
    } else {
      this.pushIdle(bucket, entry);
    }
    this.dispatch(bucket);
  }

  /**
   * A slot right now, or undefined. Never dials, never waits. Refuses while callers wait, so
   * nobody gets ahead of the queue (and of its higher-priority waiters).
   */
  tryAcquire(key: PoolKey, protocols: readonly ConnectionProtocol[]): PoolEntry | undefined {
    if (this.closing) return undefined;
    const bucket = this.buckets.get(key.id);
    if (bucket === undefined || bucket.waiters.length > 0) return undefined;
    return this.findAvailable(bucket, protocols);
  }

  /**
   * A slot: now, on a dialed connection, or after waiting. With `allowUnavailable`, resolves
   * `undefined` when the origin speaks none of `protocols`; otherwise that is an error.
   */
  acquire(
    key: PoolKey,
    protocols: readonly ConnectionProtocol[],
    allowUnavailable: boolean,
    options: AcquireOptions = {},
  ): Promise<PoolEntry | undefined> {
    const refused = this.refuseNewWork(options);
    if (refused !== undefined) return Promise.reject(refused);
    const signal = options.signal;
    const bucket = this.bucketFor(key);
    if (bucket.waiters.length === 0) {
      const entry = this.findAvailable(bucket, protocols);
      if (entry !== undefined) return Promise.resolve(entry);
      if (this.cannotSpeak(bucket, protocols)) return this.unavailable(bucket, protocols, allowUnavailable);
    }
    if (bucket.waiters.length >= this.maxWaiters) {
      return Promise.reject(
        new MuxpoolError('MUXPOOL_ERR_QUEUE_FULL', `${bucket.waiters.length} callers already wait for ${key.origin}`, {
          maybeProcessed: false,
        }),
      );
    }
    const timeoutMs = options.acquireTimeoutMs ?? this.acquireTimeoutMs;
    const priority = priorityClass(options.priority);
    const waiter = new Waiter(protocols, allowUnavailable, this.clock, timeoutMs, signal, priority, (w) =>
      this.forgetWaiter(bucket, w),
    );
    bucket.waiters.push(waiter);
    this.dispatch(bucket);
    return waiter.promise;
  }

  /**
   * A slot on a connection dialed for this caller alone: the retry after a reused connection
   * failed must not land on another stale one. Stays within `maxPerHost` (an idle connection is
   * closed to make room); at the cap with nothing idle, this is an ordinary `acquire`.
   */
  acquireFresh(
    key: PoolKey,
    protocols: readonly ConnectionProtocol[],
    options: AcquireOptions = {},
  ): Promise<PoolEntry | undefined> {
    const refused = this.refuseNewWork(options);
    if (refused !== undefined) return Promise.reject(refused);
    const signal = options.signal;
    const bucket = this.bucketFor(key);
    const atCap = this.maxPerHost !== 0 && bucket.entries.size + bucket.dials.size >= this.maxPerHost;
    if (atCap && !this.evictIdleFor(bucket, undefined)) return this.acquire(key, protocols, false, options);
    const dialRef: { dial?: Dial } = {};
    // Never queued: its dial is its own, so its priority does not matter.
    const timeoutMs = options.acquireTimeoutMs ?? this.acquireTimeoutMs;
    const waiter = new Waiter(protocols, false, this.clock, timeoutMs, signal, priorityClass(options.priority), () =>
      dialRef.dial?.controller.abort(),
    );
    dialRef.dial = this.startDial(bucket, protocols, 0, waiter);
    return waiter.promise;
  }

  /** Synchronous release for the client's hot path. */
  releaseEntry(entry: PoolEntry): void {
    if (entry.activeStreams <= 0) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `release of ${entry.connection.id} without an active stream`);
    }
    entry.activeStreams--;
    entry.lastUsed = this.clock.now();
    const bucket = this.buckets.get(entry.key.id);
    if (bucket === undefined || !bucket.entries.has(entry)) return; // already closed and removed
    const connection = entry.connection;
    if (!connection.shareable) {
      if (this.closing || this.maxPerHost === 0 || !entry.acceptsStreams || !connection.isUsable()) {
        this.closeEntry(entry);
      } else {
        this.pushIdle(bucket, entry);
      }
    } else if (entry.activeStreams === 0) {
      if (this.closing || !entry.acceptsStreams || this.isSurplus(bucket, entry)) this.closeEntry(entry);
      else this.armIdleTimer(entry);
    }
    if (bucket.waiters.length > 0) this.dispatch(bucket);
  }

  /** Counts a connection the pool knows of; used by `stats()` and tests. */
  statsNow(): PoolStats {
    const now = this.clock.now();
    const stats: PoolStats = {
      totalConnections: 0,
      activeStreams: 0,
      http1Connections: 0,
      http1IdleConnections: 0,
      http2Connections: 0,
      http3Connections: 0,
      pendingDials: 0,
      waiters: 0,
      dialed: this.dialedCount,
      closed: this.closedCount,
      connections: [],
    };
    // A coalesced HTTP/2 connection serves several origins: one snapshot per origin, counted once.
    const counted = new Set<string>();
    for (const bucket of this.buckets.values()) {
      stats.pendingDials += bucket.dials.size;
      stats.waiters += bucket.waiters.length;
      for (const entry of bucket.entries) {
        const c = entry.connection;
        stats.activeStreams += entry.activeStreams;
        const first = !counted.has(c.id);
        counted.add(c.id);
        if (first) stats.totalConnections++;
        if (c.protocol === 'h2') {
          if (first) stats.http2Connections++;
        } else if (c.protocol === 'h3') {
          if (first) stats.http3Connections++;
        } else {
          stats.http1Connections++;
          if (entry.activeStreams === 0 && !entry.detached) stats.http1IdleConnections++;
        }
        stats.connections.push({
          id: c.id,
          origin: entry.key.origin,
          protocol: c.protocol,
          state: entry.detached
            ? 'detached'
            : !entry.acceptsStreams
              ? 'draining'
              : entry.activeStreams > 0
                ? 'active'
                : 'idle',
          activeStreams: entry.activeStreams,
          maxStreams: entry.maxStreams,
          requests: c.requestCount,
          ageMs: Math.round(now - entry.establishedAt),
          idleMs: entry.activeStreams > 0 ? 0 : Math.round(now - entry.lastUsed),
          remoteAddress: c.remoteAddress,
          resumed: c.resumed,
        });
      }
    }
    return stats;
  }

  // ---------------------------------------------------------------------------------------
  // Slots

  private bucketFor(key: PoolKey): Bucket {
    let bucket = this.buckets.get(key.id);
    if (bucket === undefined) {
      bucket = new Bucket(key);
      bucket.tcpProtocol = this.learnedTcpProtocol.get(key.id) ?? this.knowledge?.tcpProtocol(key.id);
      // A limit learned earlier sizes the first dial's capacity (no dial storm towards a peer
      // that allows few streams); the connection's own SETTINGS replace it once it is up.
      bucket.streamLimit = this.knowledge?.streamLimit(key.id);
      this.buckets.set(key.id, bucket);
    }
    return bucket;
  }

  /**
   * Takes a slot on a connection that speaks one of `protocols`, or returns undefined. Shared
   * connections speaking the first (best) protocol are preferred, then any that fits.
   */
  private findAvailable(bucket: Bucket, protocols: readonly ConnectionProtocol[]): PoolEntry | undefined {
    if (bucket.shared.length > 0) {
      let fallback: PoolEntry | undefined;
      const best = protocols[0];
      for (const entry of bucket.shared) {
        if (!entry.canMultiplex() || !protocols.includes(entry.connection.protocol)) continue;
        if (entry.connection.protocol === best || protocols.length === 1) {
          fallback = entry;
          break;
        }
        fallback ??= entry;
      }
      if (fallback !== undefined) {
        fallback.activeStreams++;
        fallback.lastUsed = this.clock.now();
        return fallback;
      }
    }
    if (bucket.idle.length > 0 && protocols.includes('http/1.1')) {
      const entry = this.takeIdleUnique(bucket);
      if (entry !== undefined) return entry;
    }
    return undefined;
  }

  /** Pops the most recently returned idle HTTP/1.1 connection that is still good; closes bad ones. */
  private takeIdleUnique(bucket: Bucket): PoolEntry | undefined {
    const now = this.clock.now();
    // Bounded by the idle list's length: each turn removes one entry.
    while (bucket.idle.length > 0) {
      const entry = bucket.idle.pop() as PoolEntry;
      if (entry.acceptsStreams && !entry.isExpired(this.maxIdleMs, now) && entry.connection.isUsable()) {
        entry.activeStreams = 1;
        entry.lastUsed = now;
        return entry;
      }
      this.closeEntry(entry);
    }
    return undefined;
  }

  private pushIdle(bucket: Bucket, entry: PoolEntry): void {
    bucket.idle.push(entry);
    this.armIdleTimer(entry);
  }

  private busyEntryOf(key: PoolKey): PoolEntry | undefined {
    const bucket = this.buckets.get(key.id);
    if (bucket === undefined) return undefined;
    let best: PoolEntry | undefined;
    for (const entry of bucket.entries) {
      if (entry.activeStreams > 0 && !entry.detached && (best === undefined || entry.lastUsed > best.lastUsed)) best = entry;
    }
    return best;
  }

  private detach(entry: PoolEntry): Duplex {
    const connection = entry.connection;
    if (connection.detachSocket === undefined) {
      throw new MuxpoolError('MUXPOOL_ERR_INTERNAL', `connection ${connection.id} (${connection.protocol}) has no socket to hand out`);
    }
    entry.detached = true;
    const socket = connection.detachSocket();
    this.detachedSockets.set(socket, entry);
    return socket;
  }

  // ---------------------------------------------------------------------------------------
  // Waiters and dials

  /**
   * Serves waiters from free slots in the queue's order (priority classes, FIFO within each, no
   * starvation), settles the ones this origin cannot serve, dials for the rest.
   */
  private dispatch(bucket: Bucket): void {
    const waiters = bucket.waiters;
    // Waiters with the same protocol list as one that found nothing will find nothing either.
    let exhausted: Array<readonly ConnectionProtocol[]> | undefined;
    // Bounded: each turn removes a waiter or adds a protocol list to `exhausted`, after which
    // `next()` skips every waiter with that list.
    for (let waiter = waiters.next(NONE_EXHAUSTED); waiter !== undefined; waiter = waiters.next(exhausted ?? NONE_EXHAUSTED)) {
      const entry = this.findAvailable(bucket, waiter.protocols);
      if (entry !== undefined) {
        waiters.granted(waiter);
        waiter.resolve(entry);
      } else if (this.cannotSpeak(bucket, waiter.protocols)) {
        waiters.remove(waiter);
        this.settleUnavailable(bucket, waiter);
      } else {
        (exhausted ??= []).push(waiter.protocols);
      }
    }
    this.maybeDial(bucket);
    if (waiters.length === 0) this.stopOverflowTimer(bucket);
    if (bucket.isEmpty) this.dropBucket(bucket);
  }

  /**
   * Starts dials for waiters that no pending dial will serve, within `maxPerHost`. While a shared
   * connection they could use is open (and full), only waiters queued `overflowWaitMs` ago count:
   * a stream freeing in the meantime serves them with no new connection.
   */
  private maybeDial(bucket: Bucket): void {
    if (this.closing) return;
    const waiters = bucket.waiters;
    let covered = 0;
    for (const dial of bucket.dials) covered += dial.capacity;
    // A connection whose peer allows no stream right now (SETTINGS_MAX_CONCURRENT_STREAMS 0)
    // will serve waiters once it raises the limit; dialing more would get the same answer.
    for (const entry of bucket.shared) {
      if (entry.acceptsStreams && entry.activeStreams === 0 && entry.connection.maxStreams === 0) covered += this.maxStreams;
    }
    if (covered >= waiters.length) return;
    let wanted = waiters.length;
    if (this.overflowWaitMs > 0 && this.hasOpenShared(bucket, (waiters.at(covered) as Waiter).protocols)) {
      const cutoff = this.clock.now() - this.overflowWaitMs;
      wanted = waiters.countQueuedBy(cutoff);
      const nextDueAt = waiters.firstQueuedAfter(cutoff) + this.overflowWaitMs;
      // overflowWaitMs: Infinity never overflows: no timer then.
      if (wanted < waiters.length && Number.isFinite(nextDueAt)) this.armOverflowTimer(bucket, nextDueAt);
    }
    // Bounded: each turn starts a dial, and dials are capped by maxPerHost or by the waiters.
    while (covered < wanted) {
      const waiter = waiters.at(covered) as Waiter;
      if (this.maxPerHost !== 0 && bucket.entries.size + bucket.dials.size >= this.maxPerHost) {
        if (!this.evictIdleFor(bucket, waiter.protocols)) return;
      }
      const capacity = this.expectedCapacity(bucket, waiter.protocols);
      this.startDial(bucket, waiter.protocols, capacity);
      covered += capacity;
    }
  }

  /** At the cap, an idle connection nobody waiting can use makes room for one they can. */
  private evictIdleFor(bucket: Bucket, protocols: readonly ConnectionProtocol[] | undefined): boolean {
    for (const entry of bucket.entries) {
      if (entry.activeStreams === 0 && !entry.detached && (protocols === undefined || !protocols.includes(entry.connection.protocol))) {
        this.closeEntry(entry);
        return true;
      }
    }
    return false;
  }

  private expectedCapacity(bucket: Bucket, protocols: readonly ConnectionProtocol[]): number {
    const multiplexed = protocols.includes('h3') || (protocols.includes('h2') && bucket.tcpProtocol !== 'http/1.1');
    if (!multiplexed) return 1;
    // At least 1: a dial must always cover someone, or this loop would never end.
    return Math.max(1, Math.min(this.maxStreams, bucket.streamLimit ?? this.maxStreams));
  }

  private startDial(
    bucket: Bucket,
    protocols: readonly ConnectionProtocol[],
    capacity: number,
    reservedFor?: Waiter,
  ): Dial {
    const dial: Dial = { protocols, capacity, controller: new AbortController(), reservedFor };
    bucket.dials.add(dial);
    this.dialedCount++;
    this.connector.dial(bucket.key, protocols, dial.controller.signal).then(
      (connection) => this.onDialed(bucket, dial, connection),
      (err: unknown) => this.onDialFailed(bucket, dial, err),
    );
    return dial;
  }

  private onDialed(bucket: Bucket, dial: Dial, connection: Connection): void {
    bucket.dials.delete(dial);
    if (this.closing || this.buckets.get(bucket.key.id) !== bucket) {
      this.closedCount++;
      connection.destroy();
      this.notifyIfEmpty();
      return;
    }
    // ALPN's answer is knowledge only when the handshake offered both TCP protocols; what a
    // cleartext or HTTP/1.1-only dial spoke says nothing about what else the origin speaks.
    if (connection.protocol !== 'h3' && bucket.key.isHttps && dial.protocols.includes('h2')) {
      bucket.tcpProtocol = connection.protocol;
      this.rememberTcpProtocol(bucket.key.id, connection.protocol);
    }
    const entry = this.addEntry(bucket, connection);
    if (connection.shareable) {
      if (bucket.streamLimit !== entry.maxStreams) this.knowledge?.rememberStreamLimit(bucket.key.id, entry.maxStreams);
      bucket.streamLimit = entry.maxStreams;
    }
    const reserved = dial.reservedFor;
    if (reserved !== undefined && !reserved.settled && entry.acceptsStreams && reserved.protocols.includes(connection.protocol)) {
      entry.activeStreams++;
      entry.lastUsed = this.clock.now();
      reserved.resolve(entry);
    } else {
      reserved?.reject(this.unavailableError(bucket, reserved.protocols));
      if (!connection.shareable) this.pushIdle(bucket, entry);
      else this.armIdleTimer(entry);
    }
    this.dispatch(bucket);
    // Dialed for a burst that freed streams elsewhere meanwhile: nobody needs it.
    if (connection.shareable && entry.activeStreams === 0 && bucket.entries.has(entry) && this.isSurplus(bucket, entry)) {
      this.closeEntry(entry);
    }
  }

  private onDialFailed(bucket: Bucket, dial: Dial, cause: unknown): void {
    this.closedCount++;
    bucket.dials.delete(dial);
    const err =
      cause instanceof MuxpoolError
        ? cause
        : new MuxpoolError('MUXPOOL_ERR_CONNECT', `dial to ${bucket.key.origin} failed`, { cause, maybeProcessed: false });
    dial.reservedFor?.reject(err);
    // The callers this dial was for learn why; the others keep waiting for their own dials.
    const failed = bucket.waiters.takeFirst(dial.capacity);
    for (const waiter of failed) waiter.reject(err);
    if (!this.closing) this.dispatch(bucket);
    else if (bucket.isEmpty) this.dropBucket(bucket);
    this.notifyIfEmpty();
  }

  private cannotSpeak(bucket: Bucket, protocols: readonly ConnectionProtocol[]): boolean {
    // Only one answer is final: offered h2 and http/1.1, the origin chose http/1.1, so it has
    // no h2. Choosing h2 says nothing against http/1.1. HTTP/3 reachability is the connector's.
    return bucket.tcpProtocol === 'http/1.1' && !protocols.includes('h3') && !protocols.includes('http/1.1');
  }

  private unavailableError(bucket: Bucket, protocols: readonly ConnectionProtocol[]): MuxpoolError {
    return new MuxpoolError(
      'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE',
      `${bucket.key.origin} speaks ${bucket.tcpProtocol ?? 'an unknown protocol'}, not ${protocols.join(' or ')}`,
      { maybeProcessed: false },
    );
  }

  private unavailable(
    bucket: Bucket,
    protocols: readonly ConnectionProtocol[],
    allowUnavailable: boolean,
  ): Promise<PoolEntry | undefined> {
    if (bucket.isEmpty) this.dropBucket(bucket);
    return allowUnavailable ? Promise.resolve(undefined) : Promise.reject(this.unavailableError(bucket, protocols));
  }

  private settleUnavailable(bucket: Bucket, waiter: Waiter): void {
    if (waiter.allowUnavailable) waiter.resolve(undefined);
    else waiter.reject(this.unavailableError(bucket, waiter.protocols));
  }

  /** Returns why the waiter found no slot, for its error message. */
  private forgetWaiter(bucket: Bucket, waiter: Waiter): string | undefined {
    bucket.waiters.remove(waiter);
    if (bucket.waiters.length === 0) this.stopOverflowTimer(bucket);
    const why = this.describeFull(bucket);
    if (bucket.isEmpty) this.dropBucket(bucket);
    return why;
  }

  private describeFull(bucket: Bucket): string | undefined {
    const open = bucket.shared.filter((e) => e.acceptsStreams);
    if (open.length > 0 && open.every((e) => e.connection.maxStreams === 0)) {
      return `${bucket.key.origin} allows 0 concurrent streams (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS or QUIC stream credit of 0)`;
    }
    if (bucket.entries.size === 0) return undefined;
    return `${bucket.entries.size} connection(s) to ${bucket.key.origin} open, all busy (maxPerHost ${this.maxPerHost})`;
  }

  private failWaiters(bucket: Bucket, err: MuxpoolError): void {
    this.stopOverflowTimer(bucket);
    const waiters = bucket.waiters.clear();
    for (const waiter of waiters) waiter.reject(err);
  }

  /** An open shared connection speaking one of `protocols`: what overflow waiters wait for. */
  private hasOpenShared(bucket: Bucket, protocols: readonly ConnectionProtocol[]): boolean {
    for (const entry of bucket.shared) {
      if (entry.acceptsStreams && entry.connection.maxStreams > 0 && protocols.includes(entry.connection.protocol)) return true;
    }
    return false;
  }

  private armOverflowTimer(bucket: Bucket, dueAt: number): void {
    if (bucket.overflowTimer !== undefined && bucket.overflowDueAt <= dueAt) return;
    bucket.overflowTimer?.cancel();
    bucket.overflowDueAt = dueAt;
    // At least 1 ms: a timer that fires a hair early finds nobody due and is simply armed again.
    bucket.overflowTimer = this.clock.setTimer(() => {
      bucket.overflowTimer = undefined;
      bucket.overflowDueAt = Infinity;
      if (!this.closing && this.buckets.get(bucket.key.id) === bucket) this.dispatch(bucket);
    }, Math.max(1, Math.ceil(dueAt - this.clock.now())));
  }

  private stopOverflowTimer(bucket: Bucket): void {
    bucket.overflowTimer?.cancel();
    bucket.overflowTimer = undefined;
    bucket.overflowDueAt = Infinity;
  }

  // ---------------------------------------------------------------------------------------
  // Connections

  private addEntry(bucket: Bucket, connection: Connection): PoolEntry {
    const entry = new PoolEntry(bucket.key, connection, this.maxStreams, this.clock);
    bucket.entries.add(entry);
    if (connection.shareable) bucket.shared.push(entry);
    const observer: ConnectionObserver = {
      onClose: () => this.onConnectionClosed(entry),
      onCapacityChange: () => this.onCapacityChange(entry),
    };
    connection.setObserver(observer);
    // A connection that died between its dial and now never calls the observer: drop it here.
    if (connection.state === 'closed') this.onConnectionClosed(entry);
    return entry;
  }

  private removeEntry(entry: PoolEntry): Bucket | undefined {
    const bucket = this.buckets.get(entry.key.id);
    if (bucket === undefined || !bucket.entries.delete(entry)) return undefined;
    this.closedCount++;
    if (entry.connection.shareable) {
      const i = bucket.shared.indexOf(entry);
      if (i >= 0) bucket.shared.splice(i, 1);
    } else {
      const i = bucket.idle.lastIndexOf(entry);
      if (i >= 0) bucket.idle.splice(i, 1);
    }
    return bucket;
  }

  /** Removes and closes a connection the pool no longer keeps. */
  private closeEntry(entry: PoolEntry, err?: MuxpoolError): void {
    const bucket = this.removeEntry(entry);
    entry.isValid = false;
    entry.connection.destroy(err);
    if (bucket !== undefined && bucket.isEmpty) this.dropBucket(bucket);
    this.notifyIfEmpty();
  }

  private invalidateEntry(entry: PoolEntry): void {
    entry.isValid = false;
    if (entry.activeStreams === 0 && !entry.detached) {
      this.closeEntry(entry);
    } else {
      entry.connection.drain();
    }
    const bucket = this.buckets.get(entry.key.id);
    if (bucket !== undefined && bucket.waiters.length > 0) this.dispatch(bucket);
  }

  private onConnectionClosed(entry: PoolEntry): void {
    entry.isValid = false;
    const bucket = this.removeEntry(entry);
    if (bucket !== undefined) {
      if (bucket.waiters.length > 0) this.dispatch(bucket);
      else if (bucket.isEmpty) this.dropBucket(bucket);
    }
    this.notifyIfEmpty();
  }

  private onCapacityChange(entry: PoolEntry): void {
    if (entry.connection.state !== 'open') entry.isValid = false;
    if (!entry.isValid && entry.activeStreams === 0 && !entry.detached) {
      this.closeEntry(entry);
      return;
    }
    const bucket = this.buckets.get(entry.key.id);
    if (bucket !== undefined && bucket.waiters.length > 0) this.dispatch(bucket);
  }

  /** Bounded: a process that talks to many origins must not grow this map forever. */
  private rememberTcpProtocol(keyId: string, protocol: ConnectionProtocol): void {
    if (this.learnedTcpProtocol.get(keyId) !== protocol) this.knowledge?.rememberTcpProtocol(keyId, protocol);
    this.learnedTcpProtocol.delete(keyId);
    this.learnedTcpProtocol.set(keyId, protocol);
    if (this.learnedTcpProtocol.size > MAX_REMEMBERED_ORIGINS) {
      const oldest = this.learnedTcpProtocol.keys().next().value;
      if (oldest !== undefined) this.learnedTcpProtocol.delete(oldest);
    }
  }

  private dropBucket(bucket: Bucket): void {
    this.stopOverflowTimer(bucket);
    if (this.buckets.get(bucket.key.id) === bucket) this.buckets.delete(bucket.key.id);
  }

  /**
   * Extra shared connections go first when load falls: one with no stream left is surplus while
   * nobody waits and another open connection of the origin, same protocol, has a free slot (so
   * at least one always stays). The rest close after `maxIdleMs` as usual.
   */
  private isSurplus(bucket: Bucket, entry: PoolEntry): boolean {
    if (bucket.waiters.length > 0) return false;
    const protocol = entry.connection.protocol;
    for (const other of bucket.shared) {
      if (other !== entry && other.connection.protocol === protocol && other.canMultiplex()) return true;
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------
  // Expiry

  /** Closes what is expired or dead; returns ms until the next idle connection expires. */
  private sweep(): number | undefined {
    const now = this.clock.now();
    let nextDue = Infinity;
    for (const bucket of [...this.buckets.values()]) {
      for (const entry of [...bucket.entries]) {
        if (entry.activeStreams > 0 || entry.detached) continue;
        if (!entry.isValid || entry.connection.state !== 'open' || entry.isExpired(this.maxIdleMs, now) || !entry.connection.isUsable()) {
          this.closeEntry(entry);
        } else {
          nextDue = Math.min(nextDue, entry.expiryTime(this.maxIdleMs));
        }
      }
    }
    return nextDue === Infinity ? undefined : Math.max(0, nextDue - now);
  }

  /** One timer for the whole pool, due when the earliest idle connection expires. */
  private armIdleTimer(entry: PoolEntry): void {
    if (!this.autoCleanup || this.closing) return;
    const due = entry.expiryTime(this.maxIdleMs);
    if (this.idleTimer !== undefined && this.idleTimerDueAt <= due) return;
    this.idleTimer?.cancel();
    this.idleTimerDueAt = due;
    this.idleTimer = this.clock.setTimer(() => this.onIdleTimer(), Math.max(0, due - this.clock.now()) + 1);
  }

  private onIdleTimer(): void {
    this.idleTimer = undefined;
    this.idleTimerDueAt = Infinity;
    if (this.closing) return;
    const nextInMs = this.sweep();
    if (nextInMs !== undefined) {
      this.idleTimerDueAt = this.clock.now() + nextInMs;
      this.idleTimer = this.clock.setTimer(() => this.onIdleTimer(), nextInMs + 1);
    }
  }

  private stopIdleTimer(): void {
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    this.idleTimerDueAt = Infinity;
  }

  // ---------------------------------------------------------------------------------------
  // Closing

  /** Why a new acquire cannot start: the pool is closed, the caller already gave up, bad options. */
  private refuseNewWork(options: AcquireOptions): MuxpoolError | undefined {
    if (this.closing) return new MuxpoolError('MUXPOOL_ERR_POOL_CLOSED', 'the pool is closed', { maybeProcessed: false });
    if (options.signal?.aborted === true) return abortError(options.signal);
    return priorityError(options.priority);
  }

  private assertOpen(): void {
    if (this.closing) throw new MuxpoolError('MUXPOOL_ERR_POOL_CLOSED', 'the pool is closed', { maybeProcessed: false });
  }

  private whenEmpty(): Promise<void> {
    if (this.buckets.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  private notifyIfEmpty(): void {
    if (!this.closing || this.closedWaiters.length === 0) return;
    for (const bucket of this.buckets.values()) if (!bucket.isEmpty) return;
    this.buckets.clear();
    const waiting = this.closedWaiters.splice(0);
    for (const resolve of waiting) resolve();
  }
}
