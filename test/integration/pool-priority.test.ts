/**
 * The waiter queue's priorities over a real saturated HTTP/1.1 origin (maxPerHost 1): the exact
 * service order, no starvation of the lowest class, invalid priorities; and `overflowWaitMs` over
 * real node:http2 servers allowing one stream: a full connection is waited on before a second
 * one is dialed, extra connections that fall idle are closed first. Time that matters for the
 * pool is a ManualClock; real time only passes while a test waits for the network.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, type RequestOptions } from '../../src/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { respondText, startH2Server } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpServer } from '../helpers/servers.js';
import { ManualClock, statsNow } from '../../src/testing.js';
import { certs } from '../helpers/certs.js';


/** A failed assertion must not leave sockets open: the test file would never exit. */
function cleanUpAfter(t: TestContext, pool: ConnectionPool, server: { close(): Promise<void> }): void {
  t.after(async () => {
    await pool.destroy();
    await server.close();
  });
}

/** Waits (bounded, about 10 s at most) for something the network will bring about. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (condition()) return;
    await sleep(5);
  }
  assert.fail(`timed out waiting until ${what}`);
}

/**
 * An HTTP/1.1 server that records the path of every request in arrival order and answers it at
 * once, except `/block`, which it holds until `unblock()`. One connection (maxPerHost 1) means
 * arrival order is the order in which the pool granted the slot.
 */
async function saturatedOrigin(t: TestContext, onRequest?: (path: string) => void) {
  const served: string[] = [];
  let release: (() => void) | undefined;
  const server = await startHttpServer((req, res) => {
    const path = req.url ?? '';
    if (path === '/block') {
      release = () => res.end('block');
      return;
    }
    served.push(path);
    onRequest?.(path);
    res.end('ok');
  });
  const pool = new ConnectionPool({ maxPerHost: 1 });
  cleanUpAfter(t, pool, server);
  const blocker = pool.request(`${server.url}/block`);
  await until(() => release !== undefined, 'the only connection is busy');
  return {
    server,
    pool,
    served,
    /** Frees the connection: the waiters are then served one after another. */
    async unblock(): Promise<void> {
      release?.();
      await (await blocker).text();
    },
  };
}

function send(pool: ConnectionPool, url: string, priority?: RequestOptions['priority']): Promise<string> {
  return pool.request(url, priority === undefined ? {} : { priority }).then((res) => res.text());
}

test('a saturated origin serves waiters high before normal before low, first come first served within a class', async (t) => {
  const leaks = leakCheck();
  const { server, pool, served, unblock } = await saturatedOrigin(t);
  const queued: Array<[RequestOptions['priority'], string]> = [
    ['low', '/low-1'],
    ['normal', '/normal-1'],
    ['high', '/high-1'],
    ['low', '/low-2'],
    [undefined, '/default-1'],
    ['high', '/high-2'],
    ['normal', '/normal-2'],
  ];
  const done = queued.map(([priority, path]) => send(pool, `${server.url}${path}`, priority));
  assert.equal(statsNow(pool).waiters, queued.length, 'every request waits for the one busy connection');
  await unblock();
  await Promise.all(done);
  assert.deepEqual(served, ['/high-1', '/high-2', '/normal-1', '/default-1', '/normal-2', '/low-1', '/low-2']);
  assert.equal(server.connections, 1, 'maxPerHost 1: all of them on the one connection');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('no starvation: while high requests keep arriving, waiting normal and low ones are served after every 8 highs', async (t) => {
  const leaks = leakCheck();
  const TOTAL_HIGHS = 20;
  let highsSent = 0;
  const pending: Array<Promise<string>> = [];
  // Each high request the server receives queues another: there is always a high one waiting.
  let sendHigh = (): void => {};
  const { server, pool, served, unblock } = await saturatedOrigin(t, (path) => {
    if (path.startsWith('/high-')) sendHigh();
  });
  sendHigh = () => {
    if (highsSent >= TOTAL_HIGHS) return;
    highsSent++;
    pending.push(send(pool, `${server.url}/high-${highsSent}`, 'high'));
  };
  pending.push(send(pool, `${server.url}/low`, 'low'));
  pending.push(send(pool, `${server.url}/normal`, 'normal'));
  sendHigh();
  sendHigh();
  assert.equal(statsNow(pool).waiters, 4);
  await unblock();
  // Bounded: 22 requests in all, the loop only waits for the ones already sent.
  for (let settled = 0; settled < pending.length; settled++) await pending[settled];
  const highs = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `/high-${from + i}`);
  assert.deepEqual(served, [...highs(1, 8), '/normal', '/low', ...highs(9, TOTAL_HIGHS)]);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('an invalid priority is MUXPOOL_ERR_INVALID_ARGUMENT, whether the origin is free or saturated', async (t) => {
  const leaks = leakCheck();
  const server = await startHttpServer((_req, res) => res.end('ok'));
  const pool = new ConnectionPool({ maxPerHost: 1 });
  cleanUpAfter(t, pool, server);
  const key = pool.keyFor(server.url);
  for (const priority of ['urgent', 'HIGH', 0, null, {}]) {
    await rejectsWith(pool.request(server.url, { priority: priority as never }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
    await rejectsWith(pool.acquireH1(key, { priority: priority as never }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
    await rejectsWith(pool.getOrCreate(key, HttpVersion.Http2, { priority: priority as never }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
  }
  assert.equal(server.connections, 0, 'nothing was dialed for a rejected call');
  const socket = await pool.acquireH1(key, { priority: 'low' });
  // Saturated: the request would have to queue; it is refused all the same.
  await rejectsWith(pool.request(server.url, { priority: 'soon' as never }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
  assert.equal(statsNow(pool).waiters, 0);
  await pool.putH1(key, socket);
  assert.equal(await send(pool, server.url, 'high'), 'ok');
  // An idle connection is ready: the request would take it without queueing; refused all the same.
  await rejectsWith(pool.request(server.url, { priority: 'urgent' as never }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
  assert.equal(statsNow(pool).http1IdleConnections, 1, 'the idle connection was not taken');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

/** A TLS HTTP/2 server allowing one stream per connection; `/hold*` paths wait for `release`. */
async function oneStreamOrigin(t: TestContext, overflowWaitMs: number) {
  const c = await certs();
  const held = new Map<string, () => void>();
  const server = await startH2Server(
    (stream, headers) => {
      const path = String(headers[':path']);
      if (path.startsWith('/hold')) held.set(path, () => respondText(stream, path));
      else respondText(stream, path);
    },
    { certs: c, settings: { maxConcurrentStreams: 1 } },
  );
  const clock = new ManualClock();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, maxPerHost: 2, overflowWaitMs, clock });
  cleanUpAfter(t, pool, server);
  return {
    server,
    pool,
    clock,
    held,
    release(path: string): void {
      const respond = held.get(path);
      assert.ok(respond !== undefined, `${path} is held`);
      respond();
    },
  };
}

test('overflowWaitMs: a stream freed within the wait serves the next request on the same connection, no second dial', async (t) => {
  const leaks = leakCheck();
  const { server, pool, clock, held, release } = await oneStreamOrigin(t, 50);
  const first = pool.request(`${server.url}/hold-1`);
  await until(() => held.has('/hold-1'), 'the first stream is open');
  const second = pool.request(`${server.url}/second`);
  let stats = statsNow(pool);
  assert.equal(stats.waiters, 1, 'the only stream is taken: the second request waits');
  assert.equal(stats.pendingDials, 0, 'no dial before overflowWaitMs');
  clock.advance(49);
  assert.equal(statsNow(pool).pendingDials, 0, 'still within overflowWaitMs');
  release('/hold-1');
  const firstRes = await first;
  assert.equal(await firstRes.text(), '/hold-1');
  const secondRes = await second;
  assert.equal(await secondRes.text(), '/second');
  assert.equal(secondRes.connectionId, firstRes.connectionId, 'served on the connection whose stream freed');
  assert.equal(secondRes.protocol, 'h2');
  clock.advance(1_000);
  stats = statsNow(pool);
  assert.equal(stats.pendingDials, 0, 'no late dial once the waiter was served');
  assert.equal(stats.totalConnections, 1);
  assert.equal(server.sessionCount, 1, 'one connection for both requests');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('overflowWaitMs: a stream not freed within the wait opens a second connection; the extra one closes first once idle', async (t) => {
  const leaks = leakCheck();
  const { server, pool, clock, held, release } = await oneStreamOrigin(t, 50);
  const first = pool.request(`${server.url}/hold-1`);
  await until(() => held.has('/hold-1'), 'the first stream is open');
  const second = pool.request(`${server.url}/hold-2`);
  clock.advance(49);
  assert.equal(statsNow(pool).pendingDials, 0, 'waiting for the first stream to free');
  clock.advance(1);
  assert.equal(statsNow(pool).pendingDials, 1, 'overflowWaitMs passed: a second connection is dialed');
  await until(() => held.has('/hold-2'), 'the second request reached the server');
  assert.equal(server.sessionCount, 2, 'up to maxPerHost connections');
  assert.equal(statsNow(pool).totalConnections, 2);
  // The second connection falls idle while the first is still full: it is the one with room, kept.
  release('/hold-2');
  const secondRes = await second;
  assert.equal(await secondRes.text(), '/hold-2');
  assert.equal(statsNow(pool).totalConnections, 2, 'an idle connection stays while the other has no free stream');
  // Now the first falls idle while the second has room: one of them is surplus and closes.
  release('/hold-1');
  const firstRes = await first;
  assert.equal(await firstRes.text(), '/hold-1');
  assert.notEqual(firstRes.connectionId, secondRes.connectionId);
  await until(() => statsNow(pool).totalConnections === 1, 'the surplus idle connection is closed');
  const [kept] = statsNow(pool).connections;
  assert.equal(kept?.state, 'idle');
  assert.equal(kept?.id, secondRes.connectionId, 'the first connection, idle while the second had room, was the one closed');
  // What stays still serves.
  const third = await pool.request(`${server.url}/third`);
  assert.equal(await third.text(), '/third');
  assert.equal(third.connectionId, secondRes.connectionId);
  assert.equal(server.sessionCount, 2);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('overflowWaitMs 0 dials at once; HTTP/1.1 never waits for a busy connection', async (t) => {
  const leaks = leakCheck();
  const { server, pool, held, release } = await oneStreamOrigin(t, 0);
  const first = pool.request(`${server.url}/hold-1`);
  await until(() => held.has('/hold-1'), 'the first stream is open');
  const second = pool.request(`${server.url}/second`);
  assert.equal(statsNow(pool).pendingDials, 1, 'no overflow wait: the second connection is dialed at once');
  assert.equal(await (await second).text(), '/second');
  release('/hold-1');
  assert.equal(await (await first).text(), '/hold-1');
  assert.equal(server.sessionCount, 2);
  await pool.close();
  await server.close();

  // HTTP/1.1 connections are not shared: the default overflowWaitMs does not apply to them.
  let releaseH1: (() => void) | undefined;
  const h1 = await startHttpServer((req, res) => {
    if (req.url === '/hold') releaseH1 = () => res.end('held');
    else res.end('ok');
  });
  const clock = new ManualClock();
  const h1Pool = new ConnectionPool({ maxPerHost: 2, clock });
  cleanUpAfter(t, h1Pool, h1);
  assert.equal(h1Pool.overflowWaitMs, 50, 'the default');
  const busy = h1Pool.request(`${h1.url}/hold`);
  await until(() => releaseH1 !== undefined, 'the first connection is busy');
  const next = h1Pool.request(`${h1.url}/next`);
  assert.equal(statsNow(h1Pool).pendingDials, 1, 'a second HTTP/1.1 connection is dialed without waiting');
  assert.equal(await (await next).text(), 'ok');
  releaseH1?.();
  assert.equal(await (await busy).text(), 'held');
  assert.equal(h1.connections, 2);
  await h1Pool.close();
  await h1.close();
  await leaks.check(h1Pool);
});

test('overflowWaitMs is validated like the other limits', async () => {
  assert.throws(() => new ConnectionPool({ overflowWaitMs: -1 }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' });
  assert.throws(() => new ConnectionPool({ overflowWaitMs: 2 ** 31 }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' });
  assert.throws(() => new ConnectionPool({ overflowWaitMs: Number.NaN }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' });
  // Like every duration: Infinity means no limit (never overflow).
  const never = new ConnectionPool({ overflowWaitMs: Infinity });
  assert.equal(never.overflowWaitMs, Infinity);
  await never.close();
  const pool = new ConnectionPool({ overflowWaitMs: 0 });
  assert.equal(pool.overflowWaitMs, 0);
  await pool.close();
});
