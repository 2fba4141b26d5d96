/**
 * Every test ends by checking that nothing is left behind: the pool holds no connection, no
 * waiter and no dial, and the process has no socket or timer more than when the test began.
 */
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import type { ConnectionPool } from '../../src/index.js';
import { statsNow } from '../../src/testing.js';

type Counts = Record<string, number>;

function resourceCounts(): Counts {
  const counts: Counts = {};
  for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

const WATCHED = ['TCPSocketWrap', 'TCPWrap', 'TLSWrap', 'UDPWrap', 'Timeout'];

/** Takes a baseline now; `check()` later waits (bounded) for the counts to come back to it. */
export function leakCheck(): { check(pool?: ConnectionPool): Promise<void> } {
  const before = resourceCounts();
  return {
    async check(pool?: ConnectionPool): Promise<void> {
      if (pool !== undefined) {
        const stats = statsNow(pool);
        assert.equal(stats.totalConnections, 0, 'pool still holds connections');
        assert.equal(stats.waiters, 0, 'pool still holds waiters');
        assert.equal(stats.pendingDials, 0, 'pool still has dials in flight');
      }
      let after = resourceCounts();
      // Socket handles close asynchronously: give them up to ~2 s of event-loop turns.
      for (let i = 0; i < 400; i++) {
        if (WATCHED.every((name) => (after[name] ?? 0) <= (before[name] ?? 0))) return;
        await tick();
        if (i > 20) await new Promise((resolve) => setTimeout(resolve, 5));
        after = resourceCounts();
      }
      const leaked = WATCHED.filter((name) => (after[name] ?? 0) > (before[name] ?? 0)).map(
        (name) => `${name}: ${before[name] ?? 0} → ${after[name] ?? 0}`,
      );
      assert.deepEqual(leaked, [], `resources left behind: ${leaked.join(', ')}`);
    },
  };
}
