import type { MuxpoolError } from '../errors.js';
import type { PoolKey } from './key.js';
import type { Poolable } from './poolable.js';

/**
 * What a caller asks the pool for, and what the pool hands its dialer when nothing open can
 * serve it. The layer above decides what each answer means (protocols, routes, deadlines); the
 * core only asks these questions. Callers that ask with the same demand object are alike: one
 * that found no slot tells the core that the others will not find one either.
 */
export interface Demand<C extends Poolable> {
  /** Whether `connection` can serve this caller. */
  accepts(connection: C): boolean;
  /** Among shared connections it accepts, whether this one is of the best kind (the search stops there). */
  prefers(connection: C): boolean;
  /** Whether a connection dialed for this demand will likely be shareable (it sizes how many waiters one dial covers). */
  dialsShared(key: PoolKey): boolean;
  /** Why `key`'s origin can never serve this demand (learned from earlier dials), if it cannot. */
  unavailable(key: PoolKey): MuxpoolError | undefined;
  /** A background dial for `other` is already under way for what this demand wants first: no second one. */
  sameGoal(other: Demand<C>): boolean;
}

/** Opens connections for the pool core. */
export interface Dialer<C extends Poolable, D extends Demand<C>> {
  dial(key: PoolKey, demand: D, signal: AbortSignal): Promise<C>;
}
