/**
 * Durations: Node clamps a timer of 2^31 ms or more to 1 ms, so such values used to fire at
 * once. Now `Infinity` means "no limit" where a limit can be off, and values beyond what a timer
 * keeps, NaN and negatives are refused at once, consistently, with a typed error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionPool } from '../../src/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpServer } from '../helpers/servers.js';

const TOO_LONG = 2 ** 31;

test('Infinity means no limit: readTimeoutMs, connectTimeoutMs, timeoutMs, acquireTimeoutMs all work, and nothing leaks', async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((_req, res) => setTimeout(() => res.end('late'), 30));
  // Regression: readTimeoutMs: Infinity made every dial fail with MUXPOOL_ERR_CONNECT and left
  // the connected socket open.
  const pool = new ConnectionPool({ readTimeoutMs: Infinity, connectTimeoutMs: Infinity, acquireTimeoutMs: Infinity });
  try {
    const res = await pool.request(`${server.url}/`, { timeoutMs: Infinity, acquireTimeoutMs: Infinity });
    assert.equal(await res.text(), 'late');
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('durations beyond 2^31 - 1 ms, NaN and negatives are refused at once with MUXPOOL_ERR_INVALID_ARGUMENT', async () => {
  const server = await startHttpServer((_req, res) => res.end('ok'));
  const pool = new ConnectionPool();
  try {
    // Regression: timeoutMs 2^31 fired after 1 ms as MUXPOOL_ERR_REQUEST_TIMEOUT.
    await rejectsWith(pool.request(`${server.url}/`, { timeoutMs: TOO_LONG }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
    await rejectsWith(pool.request(`${server.url}/`, { acquireTimeoutMs: TOO_LONG }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
    await rejectsWith(pool.request(`${server.url}/`, { acquireTimeoutMs: -1 }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
    await rejectsWith(pool.request(`${server.url}/`, { acquireTimeoutMs: Number.NaN }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
    for (const name of ['connectTimeoutMs', 'acquireTimeoutMs', 'readTimeoutMs', 'maxIdleMs', 'pingTimeoutMs'] as const) {
      assert.throws(() => new ConnectionPool({ [name]: TOO_LONG }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' }, name);
      assert.throws(() => new ConnectionPool({ [name]: Number.NaN }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' }, name);
    }
    assert.throws(() => new ConnectionPool({ quicHandshakeTimeoutMs: Infinity }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' });
    assert.equal((await pool.stats()).dialed, 0, 'nothing was dialed for a refused request');
  } finally {
    await pool.close();
    await server.close();
  }
});
