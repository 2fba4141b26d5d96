import type { Clock, Timer } from '../core/clock.js';
import { MuxpoolError } from '../errors.js';
import type { PoolEntry } from './entry.js';
import type { ConnectionProtocol } from './version.js';

/**
 * A caller waiting for a stream slot. Settled exactly once: with an entry, with `undefined`
 * (the origin cannot speak any protocol the caller accepts), or with an error.
 */
export class Waiter {
  readonly protocols: readonly ConnectionProtocol[];
  /** getOrCreate semantics: resolve `undefined` when the origin cannot speak these protocols. */
  readonly allowUnavailable: boolean;
  readonly promise: Promise<PoolEntry | undefined>;
  settled = false;
  private resolveFn!: (entry: PoolEntry | undefined) => void;
  private rejectFn!: (err: MuxpoolError) => void;
  private timer: Timer | undefined;
  private signal: AbortSignal | undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    protocols: readonly ConnectionProtocol[],
    allowUnavailable: boolean,
    clock: Clock,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    /**
     * Called when the waiter gives up by itself (deadline, abort), so the queue forgets it;
     * may return why no slot was found, for the deadline's error message.
     */
    onGiveUp: (waiter: Waiter) => string | undefined | void,
  ) {
    this.protocols = protocols;
    this.allowUnavailable = allowUnavailable;
    this.promise = new Promise<PoolEntry | undefined>((resolve, reject) => {
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

  resolve(entry: PoolEntry | undefined): void {
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

/** The error for an aborted signal; keeps the signal's reason as the cause. */
export function abortError(signal: AbortSignal): MuxpoolError {
  // Our own cancellations (request timeout, pool closing) abort with the error to report.
  if (signal.reason instanceof MuxpoolError) return signal.reason;
  return new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the operation was aborted', {
    cause: signal.reason,
    maybeProcessed: false,
  });
}
