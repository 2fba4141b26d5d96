/**
 * Every test ends by checking that nothing is left behind: the pool holds no connection, no
 * waiter and no dial, and no socket (TCP, TLS, UDP) or timer created since the test began is
 * still open, whether ref'd or not (see `handles.ts`: tracked from creation).
 */
import assert from 'node:assert/strict';
import { describeHandles, handleMark, openSince, quietSleep } from './handles.js';

/** What the check needs of a pool: anything with `stats()` (a `ConnectionPool`, a core). */
export interface PoolStatsSource {
  stats(): Promise<{ totalConnections: number; waiters: number; pendingDials: number }>;
}

/** How long a handle may take to close after the pool let it go (closes are asynchronous). */
const SETTLE_MS = 2_000;

/** Takes a baseline now; `check()` later waits (bounded) until every handle created since is closed. */
export function leakCheck(): { check(pool?: PoolStatsSource): Promise<void> } {
  const mark = handleMark();
  return {
    async check(pool?: PoolStatsSource): Promise<void> {
      if (pool !== undefined) {
        const stats = await pool.stats();
        assert.equal(stats.totalConnections, 0, 'pool still holds connections');
        assert.equal(stats.waiters, 0, 'pool still holds waiters');
        assert.equal(stats.pendingDials, 0, 'pool still has dials in flight');
      }
      const deadline = Date.now() + SETTLE_MS;
      let open = openSince(mark);
      for (let turn = 0; open.length > 0 && Date.now() < deadline; turn++) {
        await quietSleep(turn < 20 ? 1 : 10);
        open = openSince(mark);
      }
      assert.equal(open.length, 0, `handles left open since the test began:\n  ${describeHandles(open)}${open.some((h) => h.stack !== undefined) ? '' : '\n  (MUXPOOL_LEAK_STACKS=1 shows where each was created)'}`);
    },
  };
}
