/**
 * Time, injected. Pool expiry, keep-alive deadlines, waiter deadlines and cleanup read a
 * `Clock`, so tests replace it with `ManualClock` and make time pass without sleeping.
 */

import { setTimerSafe } from './durations.js';

export interface Timer {
  /** Stops the timer; calling it again, or after it fired, does nothing. */
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds; only differences between two readings mean anything. */
  now(): number;
  /**
   * Calls `fn` once after `ms` (`Infinity`: never). Timers never keep the process alive: a pool
   * with nothing to do must not stop a program from exiting.
   */
  setTimer(fn: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  // Unref'd; Infinity arms nothing and delays beyond 2^31 - 1 ms are kept, not fired after 1 ms.
  setTimer: (fn, ms) => setTimerSafe(fn, ms),
};

interface ManualTimerEntry {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A clock that moves only when told to; timers fire in `advance()`, in deadline order. */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: ManualTimerEntry[] = [];

  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const entry: ManualTimerEntry = { at: this.current + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(entry);
    return {
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** Timers not yet fired nor cancelled. */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    const target = this.current + ms;
    // Bounded: each turn removes one timer; timers added by callbacks join the same sweep.
    for (let guard = 0; guard < 100_000; guard++) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      let next: ManualTimerEntry | undefined;
      for (const t of this.timers) {
        if (t.at <= target && (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      }
      if (next === undefined) break;
      this.current = Math.max(this.current, next.at);
      next.cancelled = true;
      next.fn();
    }
    this.current = target;
  }
}
