/**
 * The seed API over real HTTP/1.1 sockets on loopback: getH1/putH1, acquireH1, limits, the
 * waiter queue, expiry on an injected clock, stats, close and destroy.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { ConnectionPool, HttpVersion, PoolKey } from '../../src/index.js';
import { ManualClock } from '../../src/testing.js';
import { rejectsWith } from '../helpers/assert.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpServer, startRawServer } from '../helpers/servers.js';

function keyOf(port: number): PoolKey {
  return new PoolKey('127.0.0.1', port, false);
}

test('defaults and withConfig follow the seed', async () => {
  const pool = new ConnectionPool();
  assert.equal(pool.maxIdleMs, 30_000);
  assert.equal(pool.maxPerHost, 6);
  assert.equal(pool.maxStreams, 100);
  const custom = ConnectionPool.withConfig(5_000, 2, 10);
  assert.equal(custom.maxIdleMs, 5_000);
  assert.equal(custom.maxPerHost, 2);
  assert.equal(custom.maxStreams, 10);
  assert.throws(() => ConnectionPool.withConfig(-1, 2, 10), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' });
  assert.throws(() => new ConnectionPool({ maxStreams: 0 }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' });
  await pool.close();
  await custom.close();
});

test('getOrCreate(Http1_1) is undefined, as in the seed', async () => {
  const pool = new ConnectionPool();
  assert.equal(await pool.getOrCreate(keyOf(1), HttpVersion.Http1_1), undefined);
  await pool.close();
});

test('acquireH1 dials, putH1 keeps, getH1 hands back the most recently returned first', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool();
  const key = keyOf(server.port);
  const a = (await pool.acquireH1(key)) as net.Socket;
  const b = (await pool.acquireH1(key)) as net.Socket;
  assert.notEqual(a, b);
  assert.equal(server.connections, 2);
  let stats = await pool.stats();
  assert.equal(stats.totalConnections, 2);
  assert.equal(stats.http1IdleConnections, 0);
  await pool.putH1(key, a);
  await pool.putH1(key, b);
  stats = await pool.stats();
  assert.equal(stats.http1IdleConnections, 2);
  assert.equal(await pool.getH1(key), b, 'most recently returned first');
  assert.equal(await pool.getH1(key), a);
  assert.equal(await pool.getH1(key), undefined);
  await pool.putH1(key, a);
  await pool.putH1(key, b);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('getH1 skips sockets the server closed while idle', async () => {
  const leaks = leakCheck();
  const sockets: net.Socket[] = [];
  const server = await startRawServer((socket) => sockets.push(socket));
  const pool = new ConnectionPool();
  const key = keyOf(server.port);
  const socket = await pool.acquireH1(key);
  await pool.putH1(key, socket);
  const closed = once(socket, 'close');
  sockets[0]?.end();
  await closed;
  assert.equal(await pool.getH1(key), undefined);
  assert.equal((await pool.stats()).totalConnections, 0);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('getH1 skips a socket with unexpected unread bytes', async () => {
  const leaks = leakCheck();
  const sockets: net.Socket[] = [];
  const server = await startRawServer((socket) => sockets.push(socket));
  const pool = new ConnectionPool();
  const key = keyOf(server.port);
  const socket = await pool.acquireH1(key);
  await pool.putH1(key, socket);
  // Nobody asked: an unsolicited response makes the idle socket unusable (RFC 9112 §9.3.2).
  sockets[0]?.write('HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n');
  await once(socket, 'close');
  assert.equal(await pool.getH1(key), undefined);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('putH1 drops the socket when maxPerHost is 0 or the key is full', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  const zero = new ConnectionPool({ maxPerHost: 0 });
  const key = keyOf(server.port);
  const { connect } = await import('node:net');
  const foreign = connect(server.port, '127.0.0.1');
  await once(foreign, 'connect');
  await zero.putH1(key, foreign);
  assert.ok(foreign.destroyed, 'maxPerHost 0 keeps nothing');
  assert.equal((await zero.stats()).totalConnections, 0);

  const one = new ConnectionPool({ maxPerHost: 1 });
  const first = connect(server.port, '127.0.0.1');
  const second = connect(server.port, '127.0.0.1');
  await Promise.all([once(first, 'connect'), once(second, 'connect')]);
  await one.putH1(key, first);
  await one.putH1(key, second);
  assert.ok(!first.destroyed, 'the first foreign socket is adopted');
  assert.ok(second.destroyed, 'over the cap: dropped');
  assert.equal(await one.getH1(key), first);
  await one.putH1(key, first);
  await zero.close();
  await one.close();
  await server.close();
  await leaks.check(one);
});

test('maxPerHost caps idle + busy connections; waiters are served FIFO', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool({ maxPerHost: 2 });
  const key = keyOf(server.port);
  const a = await pool.acquireH1(key);
  const b = await pool.acquireH1(key);
  const order: number[] = [];
  const waiting = [1, 2, 3].map((n) =>
    pool.acquireH1(key).then((socket) => {
      order.push(n);
      return socket;
    }),
  );
  await new Promise((resolve) => setImmediate(resolve));
  const stats = await pool.stats();
  assert.equal(stats.waiters, 3);
  assert.equal(stats.totalConnections, 2);
  await pool.putH1(key, a);
  const first = await waiting[0];
  await pool.putH1(key, b);
  const second = await waiting[1];
  await pool.putH1(key, first as net.Socket);
  const third = await waiting[2];
  assert.deepEqual(order, [1, 2, 3]);
  assert.equal(server.connections, 2, 'never more than maxPerHost sockets');
  await pool.putH1(key, second as net.Socket);
  await pool.putH1(key, third as net.Socket);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a full queue fails fast; a waiter times out or aborts without a trace', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool({ maxPerHost: 1, maxWaiters: 1, acquireTimeoutMs: 50 });
  const key = keyOf(server.port);
  const held = await pool.acquireH1(key);
  const timedOut = pool.acquireH1(key);
  await rejectsWith(pool.acquireH1(key), 'MUXPOOL_ERR_QUEUE_FULL');
  const timeoutErr = await rejectsWith(timedOut, 'MUXPOOL_ERR_ACQUIRE_TIMEOUT');
  assert.equal(timeoutErr.maybeProcessed, false);
  const controller = new AbortController();
  const aborted = pool.acquireH1(key, { signal: controller.signal, acquireTimeoutMs: 60_000 });
  controller.abort(new Error('changed my mind'));
  await rejectsWith(aborted, 'MUXPOOL_ERR_ABORTED');
  assert.equal((await pool.stats()).waiters, 0);
  await pool.putH1(key, held);
  const again = await pool.acquireH1(key);
  assert.equal(again, held, 'the slot is free again after the waiters left');
  await pool.putH1(key, again);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('cleanup drops connections idle longer than maxIdleMs (injected clock)', async () => {
  const leaks = leakCheck();
  const clock = new ManualClock();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool({ maxIdleMs: 1_000, clock, autoCleanup: false });
  const key = keyOf(server.port);
  const socket = await pool.acquireH1(key);
  await pool.putH1(key, socket);
  clock.advance(400);
  assert.equal(await pool.cleanup(), 600, 'cleanup says when the next connection expires');
  assert.equal((await pool.stats()).totalConnections, 1);
  clock.advance(700);
  assert.equal(await pool.cleanup(), undefined);
  assert.equal((await pool.stats()).totalConnections, 0);
  assert.ok(socket.destroyed, 'an expired connection is closed, not forgotten');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('getH1 skips expired sockets; the automatic idle timer closes them too', async () => {
  const leaks = leakCheck();
  const clock = new ManualClock();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool({ maxIdleMs: 1_000, clock });
  const key = keyOf(server.port);
  const a = await pool.acquireH1(key);
  await pool.putH1(key, a);
  clock.advance(1_001);
  assert.equal(await pool.getH1(key), undefined, 'expired: skipped');
  assert.ok(a.destroyed);
  const b = await pool.acquireH1(key);
  await pool.putH1(key, b);
  assert.equal(clock.pendingTimers, 1, 'one pool timer for idle expiry');
  clock.advance(1_002);
  assert.ok(b.destroyed, 'the idle timer closed it without cleanup()');
  assert.equal((await pool.stats()).totalConnections, 0);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('spawnCleanupTask runs cleanup periodically until stopped', async () => {
  const clock = new ManualClock();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool({ maxIdleMs: 100, clock, autoCleanup: false });
  const key = keyOf(server.port);
  const task = pool.spawnCleanupTask(50);
  const socket = await pool.acquireH1(key);
  await pool.putH1(key, socket);
  clock.advance(160);
  assert.ok(socket.destroyed, 'the task swept the expired socket');
  task.stop();
  assert.equal(clock.pendingTimers, 0, 'stop() leaves no timer');
  await pool.close();
  await server.close();
});

test('invalidate closes idle connections of a key; busy ones close when released', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool();
  const key = keyOf(server.port);
  const busy = await pool.acquireH1(key);
  const idle = await pool.acquireH1(key);
  await pool.putH1(key, idle);
  await pool.invalidate(key);
  assert.ok(idle.destroyed);
  assert.ok(!busy.destroyed, 'a busy connection is not cut off');
  await pool.putH1(key, busy);
  assert.ok(busy.destroyed, 'an invalid connection is closed when it comes back');
  assert.equal((await pool.stats()).totalConnections, 0);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('close() fails waiters and refuses new work; it resolves while a socket is lent out, and a socket put back after it is closed', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool({ maxPerHost: 1 });
  const key = keyOf(server.port);
  const busy = await pool.acquireH1(key);
  const waiter = pool.acquireH1(key);
  const closing = pool.close();
  await rejectsWith(waiter, 'MUXPOOL_ERR_POOL_CLOSED');
  await rejectsWith(pool.acquireH1(key), 'MUXPOOL_ERR_POOL_CLOSED');
  await rejectsWith(pool.request(server.url), 'MUXPOOL_ERR_POOL_CLOSED');
  // The seed's rule: a socket taken with acquireH1/getH1 is the caller's until putH1. close()
  // ends what the pool owns and does not wait for it (it used to wait forever).
  await closing;
  assert.equal(busy.destroyed, false, 'the lent socket is still the caller\'s');
  assert.equal((await pool.stats()).totalConnections, 0);
  await pool.putH1(key, busy);
  assert.ok(busy.destroyed, 'a socket put back after close() is closed at once');
  await server.close();
  await leaks.check(pool);
});

test('close() resolves while a getH1() socket is out; destroy() too', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  for (const end of ['close', 'destroy'] as const) {
    const pool = new ConnectionPool();
    const key = keyOf(server.port);
    await pool.putH1(key, await pool.acquireH1(key));
    const lent = await pool.getH1(key);
    assert.ok(lent !== undefined, 'the idle socket is lent out');
    await pool[end]();
    assert.equal(lent.destroyed, false);
    await pool.putH1(key, lent);
    assert.ok(lent.destroyed);
    const stats = await pool.stats();
    assert.ok(stats.closed <= stats.dialed, `${end}: closed ${stats.closed} ≤ dialed ${stats.dialed}`);
    await leaks.check(pool);
  }
  await server.close();
});

test('destroy() ends busy requests at once', async () => {
  const leaks = leakCheck();
  const server = await startHttpServer(() => {
    /* never answers */
  });
  const pool = new ConnectionPool();
  const pending = pool.request(server.url);
  await new Promise((resolve) => setTimeout(resolve, 20));
  await pool.destroy(new Error('shutting down'));
  await rejectsWith(pending, 'MUXPOOL_ERR_POOL_CLOSED');
  await server.close();
  await leaks.check(pool);
});

test('stats() reports connections with their state', async () => {
  const server = await startHttpServer((_req, res) => res.end('ok'));
  const pool = new ConnectionPool();
  const res = await pool.request(`${server.url}/`);
  assert.equal(await res.text(), 'ok');
  const stats = await pool.stats();
  assert.equal(stats.totalConnections, 1);
  assert.equal(stats.http1IdleConnections, 1);
  assert.equal(stats.http2Connections, 0);
  assert.equal(stats.http3Connections, 0);
  assert.equal(stats.activeStreams, 0);
  const [conn] = stats.connections;
  assert.equal(conn?.protocol, 'http/1.1');
  assert.equal(conn?.state, 'idle');
  assert.equal(conn?.requests, 1);
  assert.equal(conn?.origin, server.url);
  await pool.close();
  await server.close();
});

test('putH1 of a socket the pool never dialed counts it as dialed: closed never exceeds dialed', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool();
  const key = keyOf(server.port);
  const foreign = net.connect(server.port, '127.0.0.1');
  await once(foreign, 'connect');
  await pool.putH1(key, foreign);
  let stats = await pool.stats();
  assert.equal(stats.dialed, 1, 'the adopted socket counts as dialed');
  assert.equal(stats.http1IdleConnections, 1);
  await pool.close();
  stats = await pool.stats();
  assert.equal(stats.closed, 1);
  assert.ok(stats.closed <= stats.dialed);
  assert.ok(foreign.destroyed);
  await server.close();
  await leaks.check(pool);
});
