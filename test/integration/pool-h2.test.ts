/**
 * HTTP/2 in the pool: stream slots on live node:http2 sessions behind getOrCreate, against real
 * secure servers with maxConcurrentStreams 1, 2 and 100, changing SETTINGS, and 0 streams.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, type PoolEntry, PoolKey } from '../../src/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { type H2ServerOptions, type StreamListener, respondText, startH2Server } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';
import { certs } from '../helpers/certs.js';


const hello: StreamListener = (stream, headers) => respondText(stream, String(headers[':path']));

async function setup(maxConcurrentStreams: number | undefined, options: { maxPerHost?: number; maxStreams?: number } = {}, serverOptions: H2ServerOptions = {}) {
  const c = await certs();
  const server = await startH2Server(hello, {
    certs: c,
    ...(maxConcurrentStreams !== undefined ? { settings: { maxConcurrentStreams } } : {}),
    ...serverOptions,
  });
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, ...options });
  const key = pool.keyFor(server.url);
  return { server, pool, key };
}

async function takeAll(pool: ConnectionPool, key: ReturnType<ConnectionPool['keyFor']>, n: number): Promise<PoolEntry[]> {
  const entries = await Promise.all(Array.from({ length: n }, () => pool.getOrCreate(key, HttpVersion.Http2)));
  return entries.map((e) => {
    assert.ok(e !== undefined);
    return e;
  });
}

test('getOrCreate: concurrent callers share one dial; maxStreams follows the peer (100 streams)', async () => {
  const leaks = leakCheck();
  const { server, pool, key } = await setup(100, { maxStreams: 50 });
  const entries = await takeAll(pool, key, 30);
  assert.equal(server.sessionCount, 1, 'one dial for 30 concurrent callers');
  const first = entries[0] as PoolEntry;
  assert.ok(entries.every((e) => e === first), 'every caller got a slot on the same connection');
  assert.equal(first.version, HttpVersion.Http2);
  assert.equal(first.activeStreams, 30);
  assert.equal(first.maxStreams, 50, 'min(configured 50, peer 100)');
  assert.equal(first.canMultiplex(), true);
  assert.equal(first.connection.protocol, 'h2');
  const stats = await pool.stats();
  assert.equal(stats.http2Connections, 1);
  assert.equal(stats.activeStreams, 30);
  const snap = stats.connections[0];
  assert.ok(snap !== undefined);
  assert.equal(snap.protocol, 'h2');
  assert.equal(snap.state, 'active');
  assert.equal(snap.activeStreams, 30);
  assert.equal(snap.maxStreams, 50);
  assert.equal(snap.origin, key.origin);
  for (const e of entries) await pool.release(e);
  assert.equal((await pool.stats()).activeStreams, 0);
  assert.equal((await pool.stats()).connections[0]?.state, 'idle');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('getOrCreate: a peer allowing 1 stream gets one connection per caller up to maxPerHost, then callers wait FIFO', async () => {
  const leaks = leakCheck();
  const { server, pool, key } = await setup(1, { maxPerHost: 3 });
  const entries = await takeAll(pool, key, 3);
  assert.equal(new Set(entries.map((e) => e.connection.id)).size, 3);
  assert.ok(entries.every((e) => e.maxStreams === 1 && !e.canMultiplex()));
  const order: number[] = [];
  const waiting = [1, 2].map((i) =>
    pool.getOrCreate(key, HttpVersion.Http2).then((e) => {
      order.push(i);
      return e;
    }),
  );
  await sleep(30);
  assert.equal(order.length, 0, 'callers wait while every connection is full');
  assert.equal((await pool.stats()).waiters, 2);
  assert.equal(server.sessionCount, 3, 'never more than maxPerHost connections');
  await pool.release(entries[1] as PoolEntry);
  const w1 = await waiting[0];
  assert.equal(w1, entries[1], 'the released slot went to the first waiter');
  await pool.release(entries[0] as PoolEntry);
  const w2 = await waiting[1];
  assert.deepEqual(order, [1, 2]);
  for (const e of [w1, w2, entries[2]]) await pool.release(e as PoolEntry);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('getOrCreate: 2 streams per connection, waiters time out or abort without leaving a trace', async () => {
  const leaks = leakCheck();
  const { server, pool, key } = await setup(2, { maxPerHost: 1 });
  const entries = await takeAll(pool, key, 2);
  assert.equal(server.sessionCount, 1);
  assert.equal(entries[0], entries[1]);
  const err = await rejectsWith(pool.getOrCreate(key, HttpVersion.Http2, { acquireTimeoutMs: 50 }), 'MUXPOOL_ERR_ACQUIRE_TIMEOUT');
  assert.match(err.message, /all busy/);
  const controller = new AbortController();
  const aborted = pool.getOrCreate(key, HttpVersion.Http2, { signal: controller.signal });
  controller.abort();
  await rejectsWith(aborted, 'MUXPOOL_ERR_ABORTED');
  assert.equal((await pool.stats()).waiters, 0);
  for (const e of entries) await pool.release(e);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('invalidate: no new streams on that session, open ones finish, then it closes', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const pending: Array<() => void> = [];
  const server = await startH2Server(
    (stream, headers) => {
      if (headers[':path'] === '/slow') pending.push(() => respondText(stream, 'slow done'));
      else respondText(stream, 'fast');
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const slow = pool.request(`${server.url}/slow`);
  await sleep(30);
  const entry = (await pool.stats()).connections[0];
  assert.ok(entry !== undefined);
  await pool.invalidate(pool.keyFor(server.url));
  assert.equal((await pool.stats()).connections[0]?.state, 'draining');
  const next = await pool.request(`${server.url}/fast`);
  assert.notEqual(next.connectionId, entry.id, 'a new request goes to a new connection');
  await next.text();
  pending.shift()?.();
  const res = await slow;
  assert.equal(await res.text(), 'slow done', 'the open stream finished on the invalidated session');
  assert.equal(res.connectionId, entry.id);
  await sleep(20);
  const ids = (await pool.stats()).connections.map((s) => s.id);
  assert.ok(!ids.includes(entry.id), 'the invalidated session closed once its stream was done');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a SETTINGS frame lowering the limit is followed; raising it wakes waiters', async () => {
  const leaks = leakCheck();
  const { server, pool, key } = await setup(10, { maxPerHost: 1 });
  const [a] = await takeAll(pool, key, 1);
  assert.ok(a !== undefined);
  assert.equal(a.maxStreams, 10);
  const session = [...server.sessions][0];
  assert.ok(session !== undefined);
  session.settings({ maxConcurrentStreams: 1 });
  for (let i = 0; i < 100 && a.maxStreams > 1; i++) await sleep(5);
  assert.equal(a.maxStreams, 1, 'the lowered limit applies');
  assert.equal(a.canMultiplex(), false);
  const waiting = pool.getOrCreate(key, HttpVersion.Http2);
  await sleep(20);
  assert.equal((await pool.stats()).waiters, 1);
  session.settings({ maxConcurrentStreams: 5 });
  const b = await waiting;
  assert.equal(b, a, 'raising the limit served the waiter on the same connection');
  assert.equal(a.maxStreams, 5);
  await pool.release(a);
  await pool.release(a);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a peer advertising 0 streams: no hang, no dial storm; the deadline error says why, a raised limit serves', async () => {
  const leaks = leakCheck();
  const { server, pool, key } = await setup(0, { maxPerHost: 4 });
  // Long enough for the handshake and SETTINGS even on a loaded machine.
  const err = await rejectsWith(pool.getOrCreate(key, HttpVersion.Http2, { acquireTimeoutMs: 1_000 }), 'MUXPOOL_ERR_ACQUIRE_TIMEOUT');
  assert.match(err.message, /allows 0 concurrent streams/);
  assert.equal(server.sessionCount, 1, 'one connection, not maxPerHost of them');
  const waiting = pool.getOrCreate(key, HttpVersion.Http2, { acquireTimeoutMs: 5_000 });
  await sleep(30);
  for (const session of server.sessions) session.settings({ maxConcurrentStreams: 3 });
  const entry = await waiting;
  assert.ok(entry !== undefined);
  assert.equal(entry.maxStreams, 3);
  await pool.release(entry);
  // A request (not only getOrCreate) fails the same way, with nothing sent.
  for (const session of server.sessions) session.settings({ maxConcurrentStreams: 0 });
  await sleep(30);
  const reqErr = await rejectsWith(pool.request(`${server.url}/x`, { acquireTimeoutMs: 100 }), 'MUXPOOL_ERR_ACQUIRE_TIMEOUT');
  assert.equal(reqErr.maybeProcessed, false);
  assert.equal(server.streamCount, 0);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('getOrCreate(Http2) on an origin that speaks only HTTP/1.1 resolves undefined; the connection stays pooled', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await startH2Server(hello, { certs: c, allowHTTP1: true });
  // An HTTP/1.1-only TLS server: node:https answers ALPN with http/1.1.
  const { startHttpsServer } = await import('../helpers/servers.js');
  const h1 = await startHttpsServer((_req, res) => res.end('h1'), { key: c.leafKey, cert: c.leafCert, ALPNProtocols: ['http/1.1'] });
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const key = pool.keyFor(h1.url);
  assert.equal(await pool.getOrCreate(key, HttpVersion.Http2), undefined);
  const stats = await pool.stats();
  assert.equal(stats.http1IdleConnections, 1, 'the HTTP/1.1 connection ALPN gave is kept for HTTP/1.1 use');
  const res = await pool.request(h1.url);
  assert.equal(await res.text(), 'h1');
  assert.equal(res.reused, false);
  assert.equal(h1.connections, 1, 'the one handshake served both');
  await rejectsWith(pool.request(h1.url, { version: HttpVersion.Http2 }), 'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE');
  await pool.close();
  await server.close();
  await h1.close();
  await leaks.check(pool);
});

test('a PoolKey built without TLS settings takes the pool\'s: getOrCreate and request() share one bucket and one session', async () => {
  const leaks = leakCheck();
  const { server, pool } = await setup(100);
  // Regression: with pool `tls` options, `new PoolKey(host, port, true)` was a bucket of its own,
  // so request() opened a second session and left the first with no requests.
  const key = new PoolKey('localhost', server.port, true);
  const entries = await takeAll(pool, key, 10);
  for (const e of entries) await pool.release(e);
  const responses = await Promise.all(Array.from({ length: 100 }, () => pool.request(`${server.url}/x`)));
  for (const res of responses) await res.dump();
  assert.equal(server.sessionCount, 1, 'one session for both paths');
  const stats = await pool.stats();
  assert.equal(stats.http2Connections, 1);
  assert.equal(stats.connections[0]?.requests, 100);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});
