/**
 * The protocol-agnostic pool core: keyed sets of live connections, stream slots, limits, a
 * bounded queue of waiters (priority classes, FIFO within each, no starvation), single-flight
 * dials, a short wait before overflowing full shared connections, expiry. It stores `Poolable`s
 * that are either shareable (HTTP/2, HTTP/3) or unique (HTTP/1.1) and never looks inside them:
 * what a caller wants is a `Demand` the layer above defines, and dialing is its `Dialer`.
 */
import { type Clock, type Timer, systemClock } from '../core/clock.js';
import { durationOption } from '../core/durations.js';
import { countOption } from '../core/options.js';
import { MuxpoolError } from '../errors.js';
import type { Demand, Dialer } from './demand.js';
import { PoolEntry } from './entry.js';
import type { PoolKey } from './key.js';
import type { ConnectionObserver, Poolable } from './poolable.js';
import { type RequestPriority, Waiter, WaiterQueue, abortError, priorityClass, priorityError } from './waiter.js';

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
   * When every shared connection of an origin is full, a caller waits this long for a stream to
   * free before another connection is opened (within `maxPerHost`). 0 opens one at once.
   * Default 50: streams usually free within a few ms, and a new connection costs a handshake,
   * often more than 50 ms away, plus memory on both ends. Unique connections are not affected.
   */
  overflowWaitMs?: number;
  clock?: Clock;
}

/** Where a learned stream limit outlives the pool's buckets (and, persisted, the process). */
export interface CapacityMemory {
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

export interface CleanupTask {
  stop(): void;
}

/** What happens to connections, for whoever listens (the undici Dispatcher events). */
export interface PoolEvents<C extends Poolable> {
  connected(key: PoolKey, connection: C): void;
  disconnected(key: PoolKey, connection: C, err: MuxpoolError | undefined): void;
  dialFailed(key: PoolKey, err: MuxpoolError): void;
}

/** What the core holds right now, for `stats()`. */
export interface CoreSnapshot<C extends Poolable> {
  entries: Array<PoolEntry<C>>;
  pendingDials: number;
  waiters: number;
  /** Connections dialed (or adopted) and closed (or handed over) over the pool's life. */
  dialed: number;
  closed: number;
}

interface Dial<C extends Poolable, D extends Demand<C>> {
  readonly demand: D;
  /** How many waiters this dial is expected to serve: its future stream slots. */
  readonly capacity: number;
  readonly controller: AbortController;
  /** A dial made for one caller alone (a retry that wants a fresh connection). */
  readonly reservedFor: Waiter<C> | undefined;
}

/** Everything the pool holds for one key. */
class Bucket<C extends Poolable, D extends Demand<C>> {
  readonly key: PoolKey;
  /** Every live connection of the key (idle, busy, draining, lent). */
  readonly entries = new Set<PoolEntry<C>>();
  /** Shareable connections, in the order they were opened (fill the oldest first). */
  readonly shared: Array<PoolEntry<C>> = [];
  /** Idle unique connections, most recently returned last. */
  readonly idle: Array<PoolEntry<C>> = [];
  readonly waiters = new WaiterQueue<C>();
  readonly dials = new Set<Dial<C, D>>();
  /** Due when the oldest waiter held back by `overflowWaitMs` may have a connection dialed. */
  overflowTimer: Timer | undefined;
  overflowDueAt = Infinity;
  /** Streams the last shared connection of this key allowed: what a new one likely will. */
  streamLimit: number | undefined;

  constructor(key: PoolKey) {
    this.key = key;
  }

  get isEmpty(): boolean {
    return this.entries.size === 0 && this.waiters.length === 0 && this.dials.size === 0;
  }

  /** Connections counted against `maxPerHost`: live ones and dials under way. */
  get count(): number {
    return this.entries.size + this.dials.size;
  }
}

const NONE_EXHAUSTED: readonly never[] = [];

export class PoolCore<C extends Poolable, D extends Demand<C>> {
  readonly maxIdleMs: number;
  readonly maxPerHost: number;
  readonly maxStreams: number;
  readonly acquireTimeoutMs: number;
  readonly maxWaiters: number;
  readonly overflowWaitMs: number;
  readonly clock: Clock;
  private readonly dialer: Dialer<C, D>;
  private readonly memory: CapacityMemory | undefined;
  private readonly events: PoolEvents<C> | undefined;
  private readonly autoCleanup: boolean;
  private readonly buckets = new Map<string, Bucket<C, D>>();
  private idleTimer: Timer | undefined;
  private idleTimerDueAt = Infinity;
  private closing = false;
  private closedWaiters: Array<() => void> = [];
  private dialedCount = 0;
  private closedCount = 0;

  constructor(dialer: Dialer<C, D>, options: PoolCoreOptions = {}, memory?: CapacityMemory, events?: PoolEvents<C>) {
    this.dialer = dialer;
    this.memory = memory;
    this.events = events;
    this.maxIdleMs = durationOption('maxIdleMs', options.maxIdleMs, 30_000, { min: 0, allowInfinity: true });
    this.maxPerHost = countOption('maxPerHost', options.maxPerHost, 6, 0, true);
    this.maxStreams = countOption('maxStreams', options.maxStreams, 100, 1, true);
    this.acquireTimeoutMs = durationOption('acquireTimeoutMs', options.acquireTimeoutMs, 30_000, { min: 1, allowInfinity: true });
    this.maxWaiters = countOption('maxWaiters', options.maxWaiters, 10_000, 0, true);
    this.overflowWaitMs = durationOption('overflowWaitMs', options.overflowWaitMs, 50, { min: 0, allowInfinity: true });
    this.autoCleanup = options.autoCleanup !== false;
    this.clock = options.clock ?? systemClock;
  }

  get closed(): boolean {
    return this.closing;
  }

  /** The key of a live bucket, by id (for events that name a key id only). */
  keyById(id: string): PoolKey | undefined {
    return this.buckets.get(id)?.key;
  }

  // ---------------------------------------------------------------------------------------
  // Slots

  /**
   * A slot right now, or undefined. Never dials, never waits. Refuses while callers wait, so
   * nobody gets ahead of the queue (and of its higher-priority waiters).
   */
  tryAcquire(key: PoolKey, demand: D): PoolEntry<C> | undefined {
    if (this.closing) return undefined;
    const bucket = this.buckets.get(key.id);
    if (bucket === undefined || bucket.waiters.length > 0) return undefined;
    return this.findAvailable(bucket, demand);
  }

  /**
   * A slot: now, on a dialed connection, or after waiting. With `allowUnavailable`, resolves
   * `undefined` when the origin can never serve `demand`; otherwise that is an error.
   */
  acquire(key: PoolKey, demand: D, allowUnavailable: boolean, options: AcquireOptions = {}): Promise<PoolEntry<C> | undefined> {
    const refused = this.refuseNewWork(options);
    if (refused !== undefined) return Promise.reject(refused);
    const bucket = this.bucketFor(key);
    if (bucket.waiters.length === 0) {
      const entry = this.findAvailable(bucket, demand);
      if (entry !== undefined) return Promise.resolve(entry);
      const unavailable = demand.unavailable(key);
      if (unavailable !== undefined) {
        if (bucket.isEmpty) this.dropBucket(bucket);
        return allowUnavailable ? Promise.resolve(undefined) : Promise.reject(unavailable);
      }
    }
    if (bucket.waiters.length >= this.maxWaiters) {
      return Promise.reject(
        new MuxpoolError('MUXPOOL_ERR_QUEUE_FULL', `${bucket.waiters.length} callers already wait for ${key.origin}`, {
          maybeProcessed: false,
        }),
      );
    }
    const timeoutMs = options.acquireTimeoutMs ?? this.acquireTimeoutMs;
    const waiter = new Waiter<C>(demand, allowUnavailable, this.clock, timeoutMs, options.signal, priorityClass(options.priority), (w) =>
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
  acquireFresh(key: PoolKey, demand: D, options: AcquireOptions = {}): Promise<PoolEntry<C> | undefined> {
    const refused = this.refuseNewWork(options);
    if (refused !== undefined) return Promise.reject(refused);
    const bucket = this.bucketFor(key);
    const atCap = this.maxPerHost !== 0 && bucket.count >= this.maxPerHost;
    if (atCap && !this.evictIdleFor(bucket, undefined)) return this.acquire(key, demand, false, options);
    const dialRef: { dial?: Dial<C, D> } = {};
    // Never queued: its dial is its own, so its priority does not matter.
    const timeoutMs = options.acquireTimeoutMs ?? this.acquireTimeoutMs;
    const waiter = new Waiter<C>(demand, false, this.clock, timeoutMs, options.signal, priorityClass(options.priority), () =>
      dialRef.dial?.controller.abort(),
    );
    dialRef.dial = this.startDial(bucket, demand, 0, waiter);
    return waiter.promise;
  }

  /** Gives a stream slot back. Synchronous: the client's hot path. */
  release(entry: PoolEntry<C>): void {
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
      if (this.closing || this.maxPerHost === 0 || !entry.acceptsStreams || this.isSurplus(bucket, entry)) this.closeEntry(entry);
      else this.armIdleTimer(entry);
    }
    if (bucket.waiters.length > 0) this.dispatch(bucket);
  }

  /** The busy entry of `key` used last (the seed's `release(key)`), if any. */
  busyEntryOf(key: PoolKey): PoolEntry<C> | undefined {
    const bucket = this.buckets.get(key.id);
    if (bucket === undefined) return undefined;
    let best: PoolEntry<C> | undefined;
    for (const entry of bucket.entries) {
      if (entry.activeStreams > 0 && !entry.lent && (best === undefined || entry.lastUsed > best.lastUsed)) best = entry;
    }
    return best;
  }

  // ---------------------------------------------------------------------------------------
  // Lending unique connections whole (the seed's getH1/putH1)

  /** Takes the most recently returned idle unique connection of `key` and lends it out. */
  lendIdle(key: PoolKey): PoolEntry<C> | undefined {
    this.assertOpen();
    const bucket = this.buckets.get(key.id);
    if (bucket === undefined) return undefined;
    const entry = this.takeIdleUnique(bucket);
    if (entry !== undefined) entry.lent = true;
    return entry;
  }

  /**
   * Marks an entry that holds a slot as lent out whole. Lent while the pool closes (the caller
   * awaited its slot as close() began): handed over at once, like every lent entry at close.
   */
  lend(entry: PoolEntry<C>): void {
    entry.lent = true;
    if (this.closing) {
      this.handOver(entry);
      this.notifyIfEmpty();
    }
  }

  /**
   * A lent entry comes back: its slot is released. False when the pool no longer keeps it (it
   * was closed meanwhile): the caller closes what it holds.
   */
  takeBack(entry: PoolEntry<C>): boolean {
    entry.lent = false;
    const bucket = this.buckets.get(entry.key.id);
    if (this.closing || bucket === undefined || !bucket.entries.has(entry)) return false;
    this.release(entry);
    return true;
  }

  /**
   * Takes a connection opened outside a dial (a socket a caller returns, a race loser that came
   * up anyway) into the pool, idle. Counted as dialed. Destroyed instead, and false returned,
   * when the pool is closing or `key` is at `maxPerHost`.
   */
  adopt(key: PoolKey, connection: C): boolean {
    const bucket = this.closing ? undefined : this.bucketFor(key);
    if (bucket === undefined || this.maxPerHost === 0 || bucket.count >= this.maxPerHost || connection.state !== 'open') {
      if (bucket?.isEmpty === true) this.dropBucket(bucket);
      connection.destroy();
      return false;
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
    return true;
  }

  /**
   * Opens a connection for `demand` with no caller waiting for it (an upgrade, e.g. to HTTP/3
   * after Alt-Svc), unless one it prefers is open, a dial with the same goal is under way, or
   * the key is at `maxPerHost`. The connection joins the pool idle; a failure only tells the dialer.
   */
  dialInBackground(key: PoolKey, demand: D): void {
    if (this.closing || this.maxPerHost === 0) return;
    const bucket = this.bucketFor(key);
    if (bucket.count >= this.maxPerHost) return;
    for (const entry of bucket.entries) if (entry.acceptsStreams && demand.prefers(entry.connection)) return;
    for (const dial of bucket.dials) if (demand.sameGoal(dial.demand)) return;
    this.startDial(bucket, demand, 0);
  }

  // ---------------------------------------------------------------------------------------
  // The seed's maintenance calls

  /** No new streams go to this connection (or to every connection of a key); open ones finish. */
  invalidate(target: PoolEntry<C> | PoolKey): void {
    if (target instanceof PoolEntry) {
      this.invalidateEntry(target);
      return;
    }
    const bucket = this.buckets.get(target.id);
    if (bucket === undefined) return;
    for (const entry of [...bucket.entries]) this.invalidateEntry(entry);
  }

  /**
   * Closes expired (idle longer than maxIdleMs or past the peer's keep-alive deadline), dead and
   * invalid idle connections. Returns milliseconds until the next one expires, if any is idle.
   */
  cleanup(): number | undefined {
    const now = this.clock.now();
    let nextDue = Infinity;
    for (const bucket of [...this.buckets.values()]) {
      for (const entry of [...bucket.entries]) {
        if (entry.activeStreams > 0 || entry.lent) continue;
        if (!entry.isValid || entry.connection.state !== 'open' || entry.isExpired(this.maxIdleMs, now) || !entry.connection.isUsable()) {
          this.closeEntry(entry);
        } else {
          nextDue = Math.min(nextDue, entry.expiryTime(this.maxIdleMs));
        }
      }
    }
    return nextDue === Infinity ? undefined : Math.max(0, nextDue - now);
  }

  /** Runs `cleanup()` every `intervalMs` until `stop()`; never keeps the process alive. */
  spawnCleanupTask(intervalMs: number): CleanupTask {
    durationOption('intervalMs', intervalMs, 1, { min: 1 });
    let timer: Timer | undefined;
    let stopped = false;
    const tick = (): void => {
      if (stopped) return;
      this.cleanup();
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

  snapshot(): CoreSnapshot<C> {
    const snapshot: CoreSnapshot<C> = { entries: [], pendingDials: 0, waiters: 0, dialed: this.dialedCount, closed: this.closedCount };
    for (const bucket of this.buckets.values()) {
      snapshot.pendingDials += bucket.dials.size;
      snapshot.waiters += bucket.waiters.length;
      for (const entry of bucket.entries) snapshot.entries.push(entry);
    }
    return snapshot;
  }

  /**
   * Stops new work, fails waiters, closes idle connections; busy ones close when released.
   * Connections lent out whole belong to their borrower until they come back: the pool forgets
   * them (a lent socket given back after this is closed at once) instead of waiting for them.
   */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      this.stopIdleTimer();
      const err = new MuxpoolError('MUXPOOL_ERR_POOL_CLOSED', 'the pool is closing', { maybeProcessed: false });
      for (const bucket of [...this.buckets.values()]) {
        this.failWaiters(bucket, err);
        for (const dial of bucket.dials) dial.controller.abort(err);
        for (const entry of [...bucket.entries]) {
          if (entry.lent) this.handOver(entry);
          else if (entry.activeStreams === 0) this.closeEntry(entry);
          else entry.connection.drain();
        }
      }
      this.notifyIfEmpty();
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
      for (const entry of [...bucket.entries]) {
        if (entry.lent) this.handOver(entry);
        else this.closeEntry(entry, reason);
      }
    }
    this.notifyIfEmpty();
    await this.whenEmpty();
  }

  // ---------------------------------------------------------------------------------------
  // Finding slots

  private bucketFor(key: PoolKey): Bucket<C, D> {
    let bucket = this.buckets.get(key.id);
    if (bucket === undefined) {
      bucket = new Bucket(key);
      // A limit learned earlier sizes the first dial's capacity (no dial storm towards a peer
      // that allows few streams); the connection's own limit replaces it once it is up.
      bucket.streamLimit = this.memory?.streamLimit(key.id);
      this.buckets.set(key.id, bucket);
    }
    return bucket;
  }

  /**
   * Takes a slot on a connection `demand` accepts, or returns undefined. Shared connections of
   * the kind it prefers come first, then any shared one it accepts, then an idle unique one.
   */
  private findAvailable(bucket: Bucket<C, D>, demand: D): PoolEntry<C> | undefined {
    if (bucket.shared.length > 0) {
      let fallback: PoolEntry<C> | undefined;
      for (const entry of bucket.shared) {
        if (!entry.canMultiplex() || !demand.accepts(entry.connection)) continue;
        if (demand.prefers(entry.connection)) {
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
    const newest = bucket.idle.at(-1);
    if (newest !== undefined && demand.accepts(newest.connection)) return this.takeIdleUnique(bucket);
    return undefined;
  }

  /** Pops the most recently returned idle unique connection that is still good; closes bad ones. */
  private takeIdleUnique(bucket: Bucket<C, D>): PoolEntry<C> | undefined {
    const now = this.clock.now();
    // Bounded by the idle list's length: each turn removes one entry.
    while (bucket.idle.length > 0) {
      const entry = bucket.idle.pop() as PoolEntry<C>;
      if (entry.acceptsStreams && !entry.isExpired(this.maxIdleMs, now) && entry.connection.isUsable()) {
        entry.activeStreams = 1;
        entry.lastUsed = now;
        return entry;
      }
      this.closeEntry(entry);
    }
    return undefined;
  }

  private pushIdle(bucket: Bucket<C, D>, entry: PoolEntry<C>): void {
    bucket.idle.push(entry);
    this.armIdleTimer(entry);
  }

  // ---------------------------------------------------------------------------------------
  // Waiters and dials

  /**
   * Serves waiters from free slots in the queue's order (priority classes, FIFO within each, no
   * starvation), settles the ones this origin cannot serve, dials for the rest.
   */
  private dispatch(bucket: Bucket<C, D>): void {
    const waiters = bucket.waiters;
    // Waiters with the same demand as one that found nothing will find nothing either.
    let exhausted: Array<Demand<C>> | undefined;
    // Bounded: each turn removes a waiter or adds a demand to `exhausted`, after which `next()`
    // skips every waiter with that demand.
    for (let waiter = waiters.next(NONE_EXHAUSTED); waiter !== undefined; waiter = waiters.next(exhausted ?? NONE_EXHAUSTED)) {
      const entry = this.findAvailable(bucket, waiter.demand as D);
      if (entry !== undefined) {
        waiters.granted(waiter);
        waiter.resolve(entry);
        continue;
      }
      const unavailable = waiter.demand.unavailable(bucket.key);
      if (unavailable !== undefined) {
        waiters.remove(waiter);
        if (waiter.allowUnavailable) waiter.resolve(undefined);
        else waiter.reject(unavailable);
      } else {
        (exhausted ??= []).push(waiter.demand);
      }
    }
    this.maybeDial(bucket);
    if (waiters.length === 0) this.stopOverflowTimer(bucket);
    if (bucket.isEmpty) this.dropBucket(bucket);
  }

  /**
   * Starts dials for waiters that no pending dial will serve, within `maxPerHost`. A dial covers
   * only waiters of its own demand (an HTTP/3-only dial serves no HTTP/1.1 caller). While a
   * shared connection a demand's waiters could use is open (and full), only those queued
   * `overflowWaitMs` ago count: a stream freeing in the meantime serves them with no new connection.
   */
  private maybeDial(bucket: Bucket<C, D>): void {
    if (this.closing || bucket.waiters.length === 0) return;
    const overflow = this.overflowWaitMs > 0;
    const cutoff = overflow ? this.clock.now() - this.overflowWaitMs : Infinity;
    for (const [demand, group] of bucket.waiters.byDemand(cutoff)) {
      let covered = 0;
      for (const dial of bucket.dials) if (dial.demand === demand) covered += dial.capacity;
      // A connection whose peer allows no stream right now (SETTINGS_MAX_CONCURRENT_STREAMS 0)
      // will serve waiters once it raises the limit; dialing more would get the same answer.
      for (const entry of bucket.shared) {
        if (entry.acceptsStreams && entry.activeStreams === 0 && entry.connection.maxStreams === 0 && demand.accepts(entry.connection)) {
          covered += this.maxStreams;
        }
      }
      if (covered >= group.count) continue;
      let wanted = group.count;
      if (overflow && this.hasOpenShared(bucket, demand)) {
        wanted = group.queuedBy;
        // overflowWaitMs: Infinity never overflows: no timer then.
        const nextDueAt = group.firstAfter + this.overflowWaitMs;
        if (wanted < group.count && Number.isFinite(nextDueAt)) this.armOverflowTimer(bucket, nextDueAt);
      }
      // Bounded: each turn starts a dial, and dials are capped by maxPerHost or by the waiters.
      while (covered < wanted) {
        if (this.maxPerHost !== 0 && bucket.count >= this.maxPerHost) {
          if (!this.evictIdleFor(bucket, demand)) return;
        }
        const capacity = this.expectedCapacity(bucket, demand as D);
        this.startDial(bucket, demand as D, capacity);
        covered += capacity;
      }
    }
  }

  /** At the cap, an idle connection `demand` cannot use (any, without one) makes room for one it can. */
  private evictIdleFor(bucket: Bucket<C, D>, demand: Demand<C> | undefined): boolean {
    for (const entry of bucket.entries) {
      if (entry.activeStreams === 0 && !entry.lent && (demand === undefined || !demand.accepts(entry.connection))) {
        this.closeEntry(entry);
        return true;
      }
    }
    return false;
  }

  private expectedCapacity(bucket: Bucket<C, D>, demand: D): number {
    if (!demand.dialsShared(bucket.key)) return 1;
    // At least 1: a dial must always cover someone, or the dial loop would never end.
    return Math.max(1, Math.min(this.maxStreams, bucket.streamLimit ?? this.maxStreams));
  }

  private startDial(bucket: Bucket<C, D>, demand: D, capacity: number, reservedFor?: Waiter<C>): Dial<C, D> {
    const dial: Dial<C, D> = { demand, capacity, controller: new AbortController(), reservedFor };
    bucket.dials.add(dial);
    this.dialedCount++;
    this.dialer.dial(bucket.key, demand, dial.controller.signal).then(
      (connection) => this.onDialed(bucket, dial, connection),
      (err: unknown) => this.onDialFailed(bucket, dial, err),
    );
    return dial;
  }

  private onDialed(bucket: Bucket<C, D>, dial: Dial<C, D>, connection: C): void {
    bucket.dials.delete(dial);
    if (this.closing || this.buckets.get(bucket.key.id) !== bucket) {
      this.closedCount++;
      connection.destroy();
      this.notifyIfEmpty();
      return;
    }
    const entry = this.addEntry(bucket, connection);
    if (connection.shareable) {
      if (bucket.streamLimit !== entry.maxStreams) this.memory?.rememberStreamLimit(bucket.key.id, entry.maxStreams);
      bucket.streamLimit = entry.maxStreams;
    }
    const reserved = dial.reservedFor;
    if (reserved !== undefined && !reserved.settled && entry.acceptsStreams && reserved.demand.accepts(connection)) {
      entry.activeStreams++;
      entry.lastUsed = this.clock.now();
      reserved.resolve(entry);
    } else {
      reserved?.reject(this.cannotServe(bucket, reserved.demand));
      if (!connection.shareable) this.pushIdle(bucket, entry);
      else this.armIdleTimer(entry);
    }
    this.dispatch(bucket);
    // Dialed for a burst that freed streams elsewhere meanwhile: nobody needs it.
    if (connection.shareable && entry.activeStreams === 0 && bucket.entries.has(entry) && this.isSurplus(bucket, entry)) {
      this.closeEntry(entry);
    }
  }

  private onDialFailed(bucket: Bucket<C, D>, dial: Dial<C, D>, cause: unknown): void {
    this.closedCount++;
    bucket.dials.delete(dial);
    const err =
      cause instanceof MuxpoolError
        ? cause
        : new MuxpoolError('MUXPOOL_ERR_CONNECT', `dial to ${bucket.key.origin} failed`, { cause, maybeProcessed: false });
    // Not a connection error when the pool itself called the dial off (closing, a caller gone).
    if (!dial.controller.signal.aborted) this.events?.dialFailed(bucket.key, err);
    dial.reservedFor?.reject(err.forRequest());
    // The callers this dial was for learn why, each from an error of its own; the others keep
    // waiting for their own dials.
    const failed = bucket.waiters.takeFirstWith(dial.demand, dial.capacity);
    for (const waiter of failed) waiter.reject(err.forRequest());
    if (!this.closing) this.dispatch(bucket);
    else if (bucket.isEmpty) this.dropBucket(bucket);
    this.notifyIfEmpty();
  }

  /** Why a connection dialed for a caller alone cannot serve it. */
  private cannotServe(bucket: Bucket<C, D>, demand: Demand<C>): MuxpoolError {
    return (
      demand.unavailable(bucket.key) ??
      new MuxpoolError('MUXPOOL_ERR_PROTOCOL_UNAVAILABLE', `the connection dialed to ${bucket.key.origin} cannot serve this request`, {
        maybeProcessed: false,
      })
    );
  }

  /** Returns why the waiter found no slot, for its error message. */
  private forgetWaiter(bucket: Bucket<C, D>, waiter: Waiter<C>): string | undefined {
    bucket.waiters.remove(waiter);
    if (bucket.waiters.length === 0) this.stopOverflowTimer(bucket);
    const why = this.describeFull(bucket);
    if (bucket.isEmpty) this.dropBucket(bucket);
    return why;
  }

  private describeFull(bucket: Bucket<C, D>): string | undefined {
    const open = bucket.shared.filter((e) => e.acceptsStreams);
    if (open.length > 0 && open.every((e) => e.connection.maxStreams === 0)) {
      return `${bucket.key.origin} allows 0 concurrent streams (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS or QUIC stream credit of 0)`;
    }
    if (bucket.entries.size === 0) return undefined;
    return `${bucket.entries.size} connection(s) to ${bucket.key.origin} open, all busy (maxPerHost ${this.maxPerHost})`;
  }

  /**
   * Each waiter gets an error of its own (callers may annotate what they receive), saying its
   * request was not processed: a waiter never sent anything.
   */
  private failWaiters(bucket: Bucket<C, D>, err: MuxpoolError): void {
    this.stopOverflowTimer(bucket);
    const waiters = bucket.waiters.clear();
    for (const waiter of waiters) {
      const own = err.forRequest();
      own.maybeProcessed = false;
      waiter.reject(own);
    }
  }

  /** An open shared connection `demand` accepts: what overflow waiters wait for. */
  private hasOpenShared(bucket: Bucket<C, D>, demand: Demand<C>): boolean {
    for (const entry of bucket.shared) {
      if (entry.acceptsStreams && entry.connection.maxStreams > 0 && demand.accepts(entry.connection)) return true;
    }
    return false;
  }

  private armOverflowTimer(bucket: Bucket<C, D>, dueAt: number): void {
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

  private stopOverflowTimer(bucket: Bucket<C, D>): void {
    bucket.overflowTimer?.cancel();
    bucket.overflowTimer = undefined;
    bucket.overflowDueAt = Infinity;
  }

  // ---------------------------------------------------------------------------------------
  // Connections

  private addEntry(bucket: Bucket<C, D>, connection: C): PoolEntry<C> {
    const entry = new PoolEntry<C>(bucket.key, connection, this.maxStreams, this.clock);
    bucket.entries.add(entry);
    if (connection.shareable) bucket.shared.push(entry);
    this.events?.connected(bucket.key, connection);
    const observer: ConnectionObserver = {
      onClose: (_connection, err) => this.onConnectionClosed(entry, err),
      onCapacityChange: () => this.onCapacityChange(entry),
    };
    connection.setObserver(observer);
    // A connection that died between its dial and now never calls the observer: drop it here.
    if (connection.state === 'closed') this.onConnectionClosed(entry);
    return entry;
  }

  private removeEntry(entry: PoolEntry<C>): Bucket<C, D> | undefined {
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
  private closeEntry(entry: PoolEntry<C>, err?: MuxpoolError): void {
    const bucket = this.removeEntry(entry);
    entry.isValid = false;
    if (bucket !== undefined) this.events?.disconnected(entry.key, entry.connection, err);
    entry.connection.destroy(err);
    if (bucket !== undefined && bucket.isEmpty) this.dropBucket(bucket);
    this.notifyIfEmpty();
  }

  /** A lent connection leaves the pool's care without being closed: its borrower owns it now. */
  private handOver(entry: PoolEntry<C>): void {
    const bucket = this.removeEntry(entry);
    entry.isValid = false;
    if (bucket !== undefined && bucket.isEmpty) this.dropBucket(bucket);
  }

  private invalidateEntry(entry: PoolEntry<C>): void {
    entry.isValid = false;
    if (entry.activeStreams === 0 && !entry.lent) {
      this.closeEntry(entry);
    } else {
      entry.connection.drain();
    }
    const bucket = this.buckets.get(entry.key.id);
    if (bucket !== undefined && bucket.waiters.length > 0) this.dispatch(bucket);
  }

  private onConnectionClosed(entry: PoolEntry<C>, err?: MuxpoolError): void {
    entry.isValid = false;
    const bucket = this.removeEntry(entry);
    if (bucket !== undefined) this.events?.disconnected(entry.key, entry.connection, err);
    if (bucket !== undefined) {
      if (bucket.waiters.length > 0) this.dispatch(bucket);
      else if (bucket.isEmpty) this.dropBucket(bucket);
    }
    this.notifyIfEmpty();
  }

  private onCapacityChange(entry: PoolEntry<C>): void {
    if (entry.connection.state !== 'open') entry.isValid = false;
    if (!entry.isValid && entry.activeStreams === 0 && !entry.lent) {
      this.closeEntry(entry);
      return;
    }
    const bucket = this.buckets.get(entry.key.id);
    if (bucket !== undefined && bucket.waiters.length > 0) this.dispatch(bucket);
  }

  private dropBucket(bucket: Bucket<C, D>): void {
    this.stopOverflowTimer(bucket);
    if (this.buckets.get(bucket.key.id) === bucket) this.buckets.delete(bucket.key.id);
  }

  /**
   * Extra shared connections go first when load falls: one with no stream left is surplus while
   * nobody waits and another open connection of the key, same protocol, has a free slot (so
   * at least one always stays). The rest close after `maxIdleMs` as usual.
   */
  private isSurplus(bucket: Bucket<C, D>, entry: PoolEntry<C>): boolean {
    if (bucket.waiters.length > 0) return false;
    const protocol = entry.connection.protocol;
    for (const other of bucket.shared) {
      if (other !== entry && other.connection.protocol === protocol && other.canMultiplex()) return true;
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------
  // Expiry

  /** One timer for the whole pool, due when the earliest idle connection expires. */
  private armIdleTimer(entry: PoolEntry<C>): void {
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
    const nextInMs = this.cleanup();
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
    if (options.acquireTimeoutMs !== undefined) {
      try {
        durationOption('acquireTimeoutMs', options.acquireTimeoutMs, this.acquireTimeoutMs, { min: 1, allowInfinity: true });
      } catch (err) {
        return err as MuxpoolError;
      }
    }
    return priorityError(options.priority);
  }

  private assertOpen(): void {
    if (this.closing) throw new MuxpoolError('MUXPOOL_ERR_POOL_CLOSED', 'the pool is closed', { maybeProcessed: false });
  }

  private whenEmpty(): Promise<void> {
    const promise = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    this.notifyIfEmpty();
    return promise;
  }

  /** Closing, with nothing left in any bucket: the pool is empty, and close() may resolve. */
  private notifyIfEmpty(): void {
    if (!this.closing || this.closedWaiters.length === 0) return;
    for (const bucket of this.buckets.values()) if (!bucket.isEmpty) return;
    this.buckets.clear();
    const waiting = this.closedWaiters.splice(0);
    for (const resolve of waiting) resolve();
  }
}
