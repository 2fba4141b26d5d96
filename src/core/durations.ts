/**
 * Durations given by callers, and timers that keep them.
 *
 * Node stores a timer's delay in a signed 32-bit field: `setTimeout(fn, 2 ** 31)` (or more)
 * prints a `TimeoutOverflowWarning` and fires after 1 ms, so a deadline of "25 days" would
 * strike at once. The rule here, the same for every duration option:
 *
 * - `undefined` takes the option's default;
 * - `Infinity` means "no limit" where the option allows it (`allowInfinity`): no timer is armed;
 * - a finite number from `min` up to `MAX_TIMER_MS` (2^31 - 1 ms, about 24.8 days) is kept;
 * - anything else is refused with `MUXPOOL_ERR_INVALID_ARGUMENT`: a finite number beyond
 *   `MAX_TIMER_MS` (the message points at `Infinity`), NaN, a number below `min` (negative
 *   included), and anything that is not a number.
 *
 * Refusing, rather than reading a huge number as "no limit", keeps one meaning per value: a
 * finite number is always a deadline that fires when it says.
 */
import { MuxpoolError } from '../errors.js';
import type { Timer } from './clock.js';

/** The longest delay one Node timer keeps (2^31 - 1 ms); anything longer fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface DurationRules {
  /** The smallest value accepted (default 0). */
  min?: number;
  /** `Infinity` is accepted and means "no limit" (default false). */
  allowInfinity?: boolean;
}

/**
 * Validates the duration option `name` (milliseconds): `value`, or `fallback` when `value` is
 * undefined (the fallback is trusted, and may be `Infinity`). Returns a number in
 * `[min, MAX_TIMER_MS]`, or `Infinity` when `allowInfinity` is set and the caller gave it.
 */
export function durationOption(name: string, value: unknown, fallback: number, rules: DurationRules = {}): number {
  if (value === undefined) return fallback;
  const min = rules.min ?? 0;
  const allowInfinity = rules.allowInfinity === true;
  const range = `a number of milliseconds from ${min} to ${MAX_TIMER_MS}${allowInfinity ? ', or Infinity for no limit' : ''}`;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `${name} must be ${range}, got ${describe(value)}`);
  }
  if (value === Infinity) {
    if (allowInfinity) return value;
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `${name} must be ${range}; it cannot be Infinity`);
  }
  if (value < min) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `${name} must be ${range}, got ${value}`);
  }
  if (value > MAX_TIMER_MS) {
    // Node would fire such a timer after 1 ms; a caller meaning "never" says Infinity.
    const hint = allowInfinity ? ' (use Infinity for no limit)' : '';
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `${name} must be ${range}, got ${value}${hint}`);
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'symbol' || typeof value === 'function') return typeof value;
  return String(value);
}

/**
 * A validated duration as `socket.setTimeout()` takes it: there 0 means "no timeout", and
 * `Infinity` throws (`ERR_OUT_OF_RANGE`), so "no limit" becomes 0. A duration of 0 itself
 * cannot be said to a socket (it would mean none): it becomes 1 ms, the shortest it keeps.
 */
export function socketTimeoutMs(ms: number): number {
  if (ms === Infinity) return 0;
  return Math.min(Math.max(1, ms), MAX_TIMER_MS);
}

const NO_TIMER: Timer = {
  cancel(): void {
    // Nothing was armed.
  },
};

/**
 * Calls `fn` once after `ms`, whatever `ms` is: `Infinity` arms nothing (the returned timer's
 * `cancel` does nothing), a delay beyond `MAX_TIMER_MS` is kept by re-arming for the rest
 * (never Node's 1 ms), a negative delay fires on the next turn. NaN is a caller's bug: it is
 * treated as 0, as Node does, so a deadline is never lost. The timer is unref'd unless
 * `ref` is true: a pool's timers never keep the process alive.
 */
export function setTimerSafe(fn: () => void, ms: number, ref = false): Timer {
  if (ms === Infinity) return NO_TIMER;
  return new LongTimer(fn, Number.isNaN(ms) ? 0 : Math.max(0, ms), ref);
}

class LongTimer implements Timer {
  private handle: NodeJS.Timeout | undefined;
  private remainingMs: number;

  constructor(
    private readonly fn: () => void,
    ms: number,
    private readonly ref: boolean,
  ) {
    this.remainingMs = ms;
    this.arm();
  }

  private arm(): void {
    const step = Math.min(this.remainingMs, MAX_TIMER_MS);
    this.remainingMs -= step;
    this.handle = setTimeout(() => this.fire(), step);
    if (!this.ref) this.handle.unref();
  }

  private fire(): void {
    if (this.remainingMs > 0) {
      this.arm();
      return;
    }
    this.handle = undefined;
    this.fn();
  }

  cancel(): void {
    if (this.handle !== undefined) {
      clearTimeout(this.handle);
      this.handle = undefined;
    }
  }
}
