import type { Clock, Timer } from '../core/clock.js';
import { MuxpoolError } from '../errors.js';
import type { Demand } from './demand.js';
import type { PoolEntry } from './entry.js';
import type { Poolable } from './poolable.js';

/** How urgently a caller wants a slot when it has to wait for one. Default `'normal'`. */
export type RequestPriority = 'high' | 'normal' | 'low';

/** The classes, highest first: a waiter's `priority` is an index into this list. */
const PRIORITY_CLASSES: readonly RequestPriority[] = ['high', 'normal', 'low'];
const NORMAL_CLASS = 1;

/**
 * A class that has waiters is passed over by grants to higher classes at most this many times in
 * a row; the grant after that goes to its oldest waiter. Low enough that `'normal'` and `'low'`
 * callers under a steady stream of `'high'` ones still get a slot after every 8 of those, high
 * enough that priorities matter.
 */
export const MAX_PASSED_OVER = 8;

/** The class index of a priority (0 is served first; `undefined` is `'normal'`); -1 if invalid. */
export function priorityClass(priority: unknown): number {
  if (priority === undefined) return NORMAL_CLASS;
  return typeof priority === 'string' ? PRIORITY_CLASSES.indexOf(priority as RequestPriority) : -1;
}

/** Why `priority` is not one of the classes (callers may pass anything from plain JS); undefined if valid. */
export function priorityError(priority: unknown): MuxpoolError | undefined {
  if (priorityClass(priority) >= 0) return undefined;
  const shown = typeof priority === 'string' ? JSON.stringify(priority) : typeof priority;
  return new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `priority must be 'high', 'normal' or 'low', got ${shown}`);
}

/**
 * A caller waiting for a stream slot. Settled exactly once: with an entry, with `undefined`
 * (the origin can never serve its demand), or with an error.
 */
export class Waiter<C extends Poolable> {
  readonly demand: Demand<C>;
  /** getOrCreate semantics: resolve `undefined` when the origin can never serve the demand. */
  readonly allowUnavailable: boolean;
  /** Index into the priority classes: 0 (`'high'`) is served first. */
  readonly priority: number;
  /** Clock time the caller started waiting. */
  readonly enqueuedAt: number;
  readonly promise: Promise<PoolEntry<C> | undefined>;
  settled = false;
  private resolveFn!: (entry: PoolEntry<C> | undefined) => void;
  private rejectFn!: (err: MuxpoolError) => void;
  private timer: Timer | undefined;
  private signal: AbortSignal | undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    demand: Demand<C>,
    allowUnavailable: boolean,
    clock: Clock,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    priority: number,
    /**
     * Called when the waiter gives up by itself (deadline, abort), so the queue forgets it;
     * may return why no slot was found, for the deadline's error message.
     */
    onGiveUp: (waiter: Waiter<C>) => string | undefined | void,
  ) {
    this.demand = demand;
    this.allowUnavailable = allowUnavailable;
    this.priority = priority;
    this.enqueuedAt = clock.now();
    this.promise = new Promise<PoolEntry<C> | undefined>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    if (Number.isFinite(timeoutMs)) {
      this.timer = clock.setTimer(() => {
        if (this.settled) return;
        const why = onGiveUp(this);
        this.reject(
          new MuxpoolError('MUXPOOL_ERR_ACQUIRE_TIMEOUT', `no connection slot became free within ${timeoutMs} ms${why ? `: ${why}` : ''}`, {
            maybeProcessed: false,
          }),
        );
      }, timeoutMs);
    }
    if (signal !== undefined) {
      this.signal = signal;
      this.onAbort = () => {
        if (this.settled) return;
        onGiveUp(this);
        this.reject(abortError(signal));
      };
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  resolve(entry: PoolEntry<C> | undefined): void {
    if (this.settled) return;
    this.cleanup();
    this.resolveFn(entry);
  }

  reject(err: MuxpoolError): void {
    if (this.settled) return;
    this.cleanup();
    this.rejectFn(err);
  }

  private cleanup(): void {
    this.settled = true;
    this.timer?.cancel();
    this.timer = undefined;
    if (this.signal !== undefined && this.onAbort !== undefined) this.signal.removeEventListener('abort', this.onAbort);
    this.signal = undefined;
  }
}

/** What `WaiterQueue.byDemand` says of the waiters of one demand. */
export interface DemandGroup {
  count: number;
  queuedBy: number;
  firstAfter: number;
}

/**
 * The callers waiting for one key, in the order they are served:
 *
 * - the highest class first (`'high'`, then `'normal'`, then `'low'`), first come first served
 *   within a class;
 * - no starvation: each grant to a class counts as a pass-over for every lower class that has
 *   waiters; a class passed over `MAX_PASSED_OVER` times since its own last grant (or since it
 *   last had no waiters) is served next, before the higher classes (the highest such class
 *   first). So a waiter of any class gets a slot within a bounded number of grants, however many
 *   higher ones keep arriving.
 *
 * Waiters whose demand is `exhausted` (no slot for it right now) are skipped, so one that
 * cannot be served does not hold up others that can.
 */
export class WaiterQueue<C extends Poolable> {
  /** One FIFO per class, highest class first. */
  private readonly classes: Waiter<C>[][] = PRIORITY_CLASSES.map(() => []);
  /** Grants to higher classes since each class was last served or last empty. */
  private readonly passedOver: number[] = PRIORITY_CLASSES.map(() => 0);
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(waiter: Waiter<C>): void {
    (this.classes[waiter.priority] as Waiter<C>[]).push(waiter);
    this.count++;
  }

  /** The waiter to serve next, skipping those whose demand is in `exhausted`. */
  next(exhausted: ReadonlyArray<Demand<C>>): Waiter<C> | undefined {
    const classes = this.classes;
    for (let c = 1; c < classes.length; c++) {
      if ((this.passedOver[c] as number) < MAX_PASSED_OVER) continue;
      const starved = firstServable(classes[c] as Waiter<C>[], exhausted);
      if (starved !== undefined) return starved;
    }
    for (const list of classes) {
      const waiter = firstServable(list, exhausted);
      if (waiter !== undefined) return waiter;
    }
    return undefined;
  }

  /** Removes a waiter that got a slot, and counts the grant against the classes below it. */
  granted(waiter: Waiter<C>): void {
    if (!this.remove(waiter)) return;
    const classes = this.classes;
    this.passedOver[waiter.priority] = 0;
    for (let c = waiter.priority + 1; c < classes.length; c++) {
      if ((classes[c] as Waiter<C>[]).length > 0) this.passedOver[c] = (this.passedOver[c] as number) + 1;
    }
  }

  /** Removes a waiter that leaves without a slot (deadline, abort, unavailable); false if absent. */
  remove(waiter: Waiter<C>): boolean {
    const list = this.classes[waiter.priority] as Waiter<C>[];
    const index = list.indexOf(waiter);
    if (index < 0) return false;
    list.splice(index, 1);
    this.count--;
    if (list.length === 0) this.passedOver[waiter.priority] = 0;
    return true;
  }

  /** The waiter at `index` in class order (starvation aside); for choosing what to dial. */
  at(index: number): Waiter<C> | undefined {
    let rest = index;
    for (const list of this.classes) {
      if (rest < list.length) return list[rest];
      rest -= list.length;
    }
    return undefined;
  }

  /** Removes and returns the first `n` waiters in class order. */
  takeFirst(n: number): Waiter<C>[] {
    const taken: Waiter<C>[] = [];
    for (let c = 0; c < this.classes.length && taken.length < n; c++) {
      const list = this.classes[c] as Waiter<C>[];
      const removed = list.splice(0, n - taken.length);
      for (const waiter of removed) taken.push(waiter);
      if (list.length === 0) this.passedOver[c] = 0;
    }
    this.count -= taken.length;
    return taken;
  }

  /** Removes and returns the first `n` waiters with `demand`, in class order. */
  takeFirstWith(demand: Demand<C>, n: number): Waiter<C>[] {
    const taken: Waiter<C>[] = [];
    for (let c = 0; c < this.classes.length && taken.length < n; c++) {
      const list = this.classes[c] as Waiter<C>[];
      for (let i = 0; i < list.length && taken.length < n; ) {
        if ((list[i] as Waiter<C>).demand === demand) taken.push(list.splice(i, 1)[0] as Waiter<C>);
        else i++;
      }
      if (list.length === 0) this.passedOver[c] = 0;
    }
    this.count -= taken.length;
    return taken;
  }

  /**
   * The waiters per demand, in queue order of each demand's first waiter: how many, how many
   * were queued by clock time `cutoff`, and the earliest queue time after it (Infinity if none).
   */
  byDemand(cutoff: number): Map<Demand<C>, DemandGroup> {
    const groups = new Map<Demand<C>, DemandGroup>();
    for (const list of this.classes) {
      for (const waiter of list) {
        let group = groups.get(waiter.demand);
        if (group === undefined) {
          group = { count: 0, queuedBy: 0, firstAfter: Infinity };
          groups.set(waiter.demand, group);
        }
        group.count++;
        if (waiter.enqueuedAt <= cutoff) group.queuedBy++;
        else if (waiter.enqueuedAt < group.firstAfter) group.firstAfter = waiter.enqueuedAt;
      }
    }
    return groups;
  }

  /** Removes and returns every waiter. */
  clear(): Waiter<C>[] {
    return this.takeFirst(this.count);
  }
}

function firstServable<C extends Poolable>(list: readonly Waiter<C>[], exhausted: ReadonlyArray<Demand<C>>): Waiter<C> | undefined {
  if (exhausted.length === 0) return list[0];
  for (const waiter of list) if (!exhausted.includes(waiter.demand)) return waiter;
  return undefined;
}

/** The error for an aborted signal; keeps the signal's reason as the cause. */
export function abortError(signal: AbortSignal): MuxpoolError {
  // Our own cancellations (request timeout, pool closing) abort with the error to report.
  if (signal.reason instanceof MuxpoolError) return signal.reason;
  return new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the operation was aborted', {
    cause: signal.reason,
    maybeProcessed: false,
  });
}
