/**
 * Counts sockets and timers from their creation, not from `process.getActiveResourcesInfo()`:
 * that list shows only ref'd handles, and the pool unrefs idle sockets and its own timers, so a
 * leak of exactly those would pass unseen. An `async_hooks` hook sees every TCP, TLS and UDP
 * handle and every timer when it is made and when it is destroyed; what was made and never
 * destroyed is what is left behind.
 *
 * A small local tracker for the soak, churn and hostile-peer tests; the general leak check lives
 * in `leaks.ts`.
 */
import { createHook } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFunction: (() => void) | undefined;
/**
 * A full garbage collection, with or without --expose-gc. Needed here because a TLS socket's
 * TLSWRAP (and an HTTP/2 session's HTTP2SESSION) reports `destroy` only when the wrap object is
 * collected, not when the socket closes.
 */
export function forceGc(): void {
  if (gcFunction === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed !== undefined) gcFunction = exposed;
    else {
      setFlagsFromString('--expose-gc');
      gcFunction = runInNewContext('gc') as () => void;
    }
  }
  gcFunction();
}

/** The resource types that hold a socket or a timer. */
export const TRACKED_TYPES: readonly string[] = ['TCPWRAP', 'TLSWRAP', 'UDPWRAP', 'TCPSERVERWRAP', 'Timeout', 'HTTP2SESSION', 'PIPEWRAP'];

export interface HandleTracker {
  /** Handles made since `start` and not destroyed yet, by type. */
  live(): Record<string, number>;
  /** Handles made since `start`, by type (live or not). */
  created(): Record<string, number>;
  /**
   * Waits (bounded by `limitMs`, collecting garbage as it goes) until every handle made since
   * `start` is destroyed; returns what is still alive, by type. A TLS socket that is closed but
   * still referenced counts as alive: something holds it.
   */
  settle(limitMs?: number): Promise<Record<string, number>>;
  /** Turns the hook off; the counts stay readable. */
  stop(): void;
}

/**
 * Starts tracking. `ignore(type, resource)` may exclude resources the caller knows are its own
 * (e.g. the test's server sockets); it is asked once, at creation.
 */
export function trackHandles(ignore?: (type: string, resource: object) => boolean): HandleTracker {
  const live = new Map<number, string>();
  const created: Record<string, number> = {};
  const hook = createHook({
    init(asyncId, type, _trigger, resource) {
      if (!TRACKED_TYPES.includes(type)) return;
      if (ignore?.(type, resource) === true) return;
      live.set(asyncId, type);
      created[type] = (created[type] ?? 0) + 1;
    },
    destroy(asyncId) {
      live.delete(asyncId);
    },
  });
  hook.enable();
  const countLive = (): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (const type of live.values()) counts[type] = (counts[type] ?? 0) + 1;
    return counts;
  };
  return {
    live: countLive,
    created: () => ({ ...created }),
    async settle(limitMs = 3_000): Promise<Record<string, number>> {
      const deadline = performance.now() + limitMs;
      // Handles close asynchronously (a socket's close callback runs a turn later); the sleep's
      // own timer is made after the hook is told to skip it below.
      for (;;) {
        const counts = countLive();
        if (Object.keys(counts).length === 0 || performance.now() > deadline) return counts;
        hook.disable();
        const pause = sleep(10);
        hook.enable();
        await pause;
        forceGc();
      }
    },
    stop() {
      hook.disable();
    },
  };
}

/** `{ TCPWRAP: 2 }` → `TCPWRAP: 2`; empty → `none`. */
export function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length === 0 ? 'none' : entries.map(([type, n]) => `${type}: ${n}`).join(', ');
}
