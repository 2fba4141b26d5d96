/**
 * The per-request lifecycle on diagnostics_channel (`muxpool:request:*`) and `res.timings`:
 * the order of events and the one request object they share, a header added at create time
 * reaching the server, errors before and during the body, trailers, and where the time went
 * for a request that dialed, one that reused, and one that queued.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, MuxpoolError, type RequestInfo } from '../../src/index.js';
import { requestObserved } from '../../src/client/request-events.js';
import { ManualClock } from '../../src/testing.js';
import { certs, startH3 } from '../helpers/certs.js';
import { startH2Server } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpServer, startHttpsServer } from '../helpers/servers.js';

const EVENTS = ['create', 'connection', 'headers-sent', 'response', 'end', 'error'] as const;

interface Recorded {
  event: (typeof EVENTS)[number];
  message: Record<string, unknown> & { request: RequestInfo };
}

/** Records every per-request event in order; `onCreate` runs inside the create subscriber. */
function recordRequests(onCreate?: (request: RequestInfo) => void): { events: Recorded[]; stop(): void } {
  const events: Recorded[] = [];
  const listeners = EVENTS.map((event) => {
    const listener = (message: unknown): void => {
      const m = message as Recorded['message'];
      events.push({ event, message: m });
      if (event === 'create') onCreate?.(m.request);
    };
    diagnostics.subscribe(`muxpool:request:${event}`, listener);
    return [event, listener] as const;
  });
  return { events, stop: () => listeners.forEach(([event, listener]) => diagnostics.unsubscribe(`muxpool:request:${event}`, listener)) };
}

test('one request, in order: create → connection → headers-sent → response → end, one request object; addHeader reaches the server', async () => {
  const leaks = leakCheck();
  const seen: Array<string | undefined> = [];
  const server = await startHttpServer((req, res) => {
    seen.push(req.headers['x-trace'] as string | undefined);
    res.setHeader('content-type', 'text/plain');
    setTimeout(() => res.end('hello'), 40);
  });
  const pool = new ConnectionPool();
  assert.equal(requestObserved(), false, 'nobody listens: nothing is built');
  let lateAdd: unknown;
  const recording = recordRequests((request) => {
    request.addHeader('X-Trace', 'abc');
    assert.throws(() => request.addHeader('host', 'evil'), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_INVALID_HEADER');
    assert.throws(() => request.addHeader('x-bad', 'a\r\nb'), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_INVALID_HEADER');
  });
  assert.equal(requestObserved(), true);
  const sub = (message: unknown): void => {
    try {
      (message as { request: RequestInfo }).request.addHeader('x-late', '1');
    } catch (err) {
      lateAdd = err;
    }
  };
  diagnostics.subscribe('muxpool:request:headers-sent', sub);
  try {
    const url = `${server.url.replace('127.0.0.1', 'localhost')}/path?q=1`;
    const res = await pool.request(url, { headers: { 'x-trace': 'caller' } });
    assert.equal(await res.text(), 'hello');
    assert.deepEqual(
      recording.events.map((e) => e.event),
      ['create', 'connection', 'headers-sent', 'response', 'end'],
    );
    const request = recording.events[0]?.message.request as RequestInfo;
    for (const e of recording.events) assert.equal(e.message.request, request, `${e.event} carries the same request object`);
    assert.equal(request.origin, new URL(url).origin);
    assert.equal(request.method, 'GET');
    assert.equal(request.path, '/path?q=1');
    assert.equal(request.pool, pool);
    assert.equal(request.protocol, 'http/1.1');
    assert.equal(request.httpVersion, '1.1');
    assert.deepEqual(seen, ['abc'], "addHeader replaced the caller's field of the same name: sent once");
    assert.ok(lateAdd instanceof MuxpoolError && lateAdd.code === 'MUXPOOL_ERR_INVALID_ARGUMENT', 'addHeader after the head was sent is refused');

    const connection = recording.events[1]?.message as Record<string, unknown>;
    assert.equal(connection.reused, false);
    assert.equal(connection.protocol, 'http/1.1');
    assert.equal(connection.connectionId, res.connectionId);
    assert.ok(['127.0.0.1', '::1'].includes(String(connection.remoteAddress)));
    assert.equal(connection.remotePort, server.port);
    assert.equal(connection.attempt, 1);
    const response = recording.events[3]?.message as Record<string, unknown>;
    assert.equal(response.status, 200);
    assert.equal((response.headers as Record<string, string>)['content-type'], 'text/plain');

    // Timings of a request that dialed: a name lookup (localhost), a connect, no TLS, the
    // server's 40 ms before the head; the same object on the end event.
    const timings = res.timings;
    assert.ok(timings.dnsMs > 0, `dns ${timings.dnsMs}`);
    assert.ok(timings.connectMs > 0, `connect ${timings.connectMs}`);
    assert.equal(timings.handshakeMs, 0);
    assert.ok(timings.firstByteMs >= 35, `first byte ${timings.firstByteMs}`);
    assert.ok(timings.totalMs !== undefined && timings.totalMs >= timings.firstByteMs + timings.dnsMs + timings.connectMs);
    const ended = recording.events[4]?.message as Record<string, unknown>;
    assert.deepEqual(ended.timings, timings);
    assert.equal(ended.status, 200);

    // Reused: no dial phases.
    const again = await pool.request(url);
    await again.dump();
    assert.equal(again.reused, true);
    const reusedTimings = again.timings;
    assert.equal(reusedTimings.dnsMs + reusedTimings.connectMs + reusedTimings.handshakeMs, 0);
    assert.ok(reusedTimings.queuedMs < 20);
    assert.equal(recording.events.filter((e) => e.event === 'connection').at(-1)?.message.reused, true);
  } finally {
    diagnostics.unsubscribe('muxpool:request:headers-sent', sub);
    recording.stop();
  }
  assert.equal(requestObserved(), false);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('timings: TLS handshake measured; a request queued behind maxPerHost 1 reports its wait as queued', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await startHttpsServer((_req, res) => setTimeout(() => res.end('x'), 60), { key: c.leafKey, cert: c.leafCert });
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, maxPerHost: 1 });
  const [a, b] = await Promise.all([pool.request(`${server.url}/a`, { version: HttpVersion.Http1_1 }), pool.request(`${server.url}/b`, { version: HttpVersion.Http1_1 })]);
  await a.dump();
  await b.dump();
  const first = a.reused ? b : a;
  const second = a.reused ? a : b;
  assert.ok(first.timings.handshakeMs > 0, `TLS ${first.timings.handshakeMs}`);
  assert.ok(first.timings.connectMs > 0);
  assert.equal(second.reused, true);
  assert.ok(second.timings.queuedMs >= 50, `the second waited for the first (${second.timings.queuedMs} ms)`);
  assert.equal(second.timings.handshakeMs, 0);
  assert.ok(first.timings.totalMs !== undefined);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('errors: a refused connection ends in error without a connection event; a body cut short ends in error after response; trailers on end (HTTP/2)', async () => {
  const leaks = leakCheck();
  const recording = recordRequests();
  const pool = new ConnectionPool({ maxRetries: 0 });
  const c = await certs();
  try {
    const closed = await startHttpServer((_req, res) => res.end());
    const dead = `${closed.url}/`;
    await closed.close();
    await assert.rejects(pool.request(dead), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_CONNECT_REFUSED');
    assert.deepEqual(recording.events.map((e) => e.event), ['create', 'error']);
    assert.equal((recording.events[1]?.message.error as MuxpoolError).code, 'MUXPOOL_ERR_CONNECT_REFUSED');
    assert.equal(recording.events[1]?.message.status, undefined);

    recording.events.length = 0;
    const cut = await startHttpServer((_req, res) => {
      res.setHeader('content-length', '100');
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const res = await pool.request(`${cut.url}/`);
    await assert.rejects(res.text());
    assert.deepEqual(recording.events.map((e) => e.event), ['create', 'connection', 'headers-sent', 'response', 'error']);
    assert.equal(recording.events[4]?.message.status, 200);
    await cut.close();

    recording.events.length = 0;
    const h2 = await startH2Server(
      (stream) => {
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc' }));
        stream.end('body');
      },
      { certs: c },
    );
    const h2pool = new ConnectionPool({ tls: { ca: c.caCert } });
    const withTrailers = await h2pool.request(`${h2.url}/t`, { version: HttpVersion.Http2 });
    assert.equal(await withTrailers.text(), 'body');
    const end = recording.events.find((e) => e.event === 'end');
    assert.deepEqual({ ...(end?.message.trailers as object) }, { 'x-checksum': 'abc' });
    assert.equal(recording.events.find((e) => e.event === 'connection')?.message.protocol, 'h2');
    assert.ok(withTrailers.timings.handshakeMs > 0);
    await h2pool.close();
    await h2.close();
  } finally {
    recording.stop();
  }
  await pool.close();
  await leaks.check(pool);
});

test('HTTP/3: QUIC handshake in handshakeMs, no separate connect; fetch through dispatch() publishes the same lifecycle', async () => {
  const leaks = leakCheck();
  const recording = recordRequests();
  const { server, url } = await startH3((req, res) => {
    req.resume();
    res.end('h3');
  });
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert } });
  try {
    const res = await pool.request(`${url}/x`, { version: HttpVersion.Http3Only });
    assert.equal(await res.text(), 'h3');
    const timings = res.timings;
    assert.ok(timings.handshakeMs > 0, `QUIC handshake ${timings.handshakeMs}`);
    assert.equal(timings.connectMs, 0);
    const connection = recording.events.find((e) => e.event === 'connection')?.message as Record<string, unknown>;
    assert.equal(connection.protocol, 'h3');
    assert.equal(connection.remotePort, server.port);

    recording.events.length = 0;
    const plain = await startHttpServer((_req, r) => r.end('via fetch'));
    const fetched = await fetch(`${plain.url}/f`, { dispatcher: pool });
    assert.equal(await fetched.text(), 'via fetch');
    assert.deepEqual(recording.events.map((e) => e.event), ['create', 'connection', 'headers-sent', 'response', 'end']);
    const end = recording.events[4]?.message as Record<string, unknown>;
    assert.ok(((end.timings as { totalMs: number }).totalMs ?? 0) > 0);
    await pool.close();
    await plain.close();
  } finally {
    recording.stop();
  }
  await server.close();
  await leaks.check(pool);
});

test('timings read the pool clock: with a ManualClock the wait for the head and the total are exact', async () => {
  const leaks = leakCheck();
  const clock = new ManualClock();
  const waiting: Array<() => void> = [];
  const server = await startHttpServer((_req, res) => {
    waiting.push(() => res.end('late'));
  });
  const pool = new ConnectionPool({ clock });
  const pending = pool.request(`${server.url}/`);
  for (let i = 0; i < 500 && waiting.length === 0; i++) await sleep(5);
  clock.advance(250);
  waiting.shift()?.();
  const res = await pending;
  assert.equal(await res.text(), 'late');
  const timings = res.timings;
  assert.equal(timings.firstByteMs, 250);
  assert.equal(timings.totalMs, 250);
  assert.equal(timings.queuedMs, 0);

  // A reused connection on the fast path: the request starts when the core hands it its slot.
  const again = pool.request(`${server.url}/`);
  for (let i = 0; i < 500 && waiting.length === 0; i++) await sleep(5);
  clock.advance(40);
  waiting.shift()?.();
  const second = await again;
  const body = second.text();
  assert.equal(second.timings.firstByteMs, 40);
  await body;
  assert.equal(second.timings.totalMs, 40);
  assert.equal(second.timings.queuedMs + second.timings.dnsMs + second.timings.connectMs + second.timings.handshakeMs, 0);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});
