/**
 * request() over HTTP/1.1 against real loopback servers: node:http for the well-behaved cases,
 * raw TCP servers that write malformed or hostile responses on purpose for the rest.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import type net from 'node:net';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ConnectionPool, PoolKey, request } from '../../src/index.js';
import { ManualClock } from '../../src/testing.js';
import { rejectsWith } from '../helpers/assert.js';
import { leakCheck } from '../helpers/leaks.js';
import { onRequestHeads, startHttpServer, startRawServer } from '../helpers/servers.js';

async function readAll(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A raw server that answers every request head with `response(index)` bytes. */
async function rawResponder(response: (index: number) => string | Buffer, after?: (socket: net.Socket) => void) {
  return startRawServer((socket) => {
    onRequestHeads(socket, (_head, index) => {
      socket.write(response(index));
      after?.(socket);
    });
  });
}

/**
 * The stale keep-alive race: the first connection answers once, then drops the second request
 * without a byte; later connections answer normally.
 */
function staleSecondRequestServer() {
  return startRawServer((socket, connIndex) => {
    onRequestHeads(socket, (_head, index) => {
      if (connIndex === 0 && index === 1) socket.destroy();
      else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
  });
}

test('GET: status, lower-case headers, body; the second request reuses the connection', async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((req, res) => {
    res.setHeader('X-Echo-Path', req.url ?? '');
    res.setHeader('Set-Cookie', ['a=1', 'b=2']);
    res.end(`hello ${req.method}`);
  });
  const pool = new ConnectionPool();
  const first = await pool.request(`${server.url}/a?b=c`);
  assert.equal(first.status, 200);
  assert.equal(first.headers['x-echo-path'], '/a?b=c');
  assert.deepEqual(first.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(first.protocol, 'http/1.1');
  assert.equal(first.reused, false);
  assert.equal(await first.text(), 'hello GET');
  const second = await pool.request(`${server.url}/`);
  assert.equal(second.reused, true);
  assert.equal(second.connectionId, first.connectionId);
  assert.equal(await second.text(), 'hello GET');
  assert.equal(server.connections, 1);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('json(), arrayBuffer(), bytes(), and BODY_USED on a second read', async () => {
  const server = await startHttpServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true,"n":3}');
  });
  const pool = new ConnectionPool();
  const res = await pool.request(server.url);
  assert.deepEqual(await res.json(), { ok: true, n: 3 });
  await rejectsWith(res.text(), 'MUXPOOL_ERR_BODY_USED');
  const ab = await (await pool.request(server.url)).arrayBuffer();
  assert.equal(Buffer.from(ab).toString(), '{"ok":true,"n":3}');
  const bytes = await (await pool.request(server.url)).bytes();
  assert.equal(bytes.length, 17);
  await pool.close();
  await server.close();
});

test('invalid JSON is a typed error', async () => {
  const server = await startHttpServer((_req, res) => res.end('not json'));
  const pool = new ConnectionPool();
  await rejectsWith((await pool.request(server.url)).json(), 'MUXPOOL_ERR_INVALID_JSON');
  await pool.close();
  await server.close();
});

test('request bodies: string, bytes, Readable (chunked) and async iterable with content-length', async () => {
  const leaks = leakCheck();
  const seen: Array<{ method: string; te: string | undefined; cl: string | undefined; body: string }> = [];
  const server = await startHttpServer(async (req, res) => {
    const body = (await readAll(req)).toString();
    seen.push({ method: req.method ?? '', te: req.headers['transfer-encoding'], cl: req.headers['content-length'], body });
    res.end(body.toUpperCase());
  });
  const pool = new ConnectionPool();
  assert.equal(await (await pool.request(server.url, { method: 'POST', body: 'héllo' })).text(), 'HÉLLO');
  assert.equal(await (await pool.request(server.url, { method: 'PUT', body: Buffer.from('bytes') })).text(), 'BYTES');
  const readable = Readable.from(['str', Buffer.from('eam')]);
  assert.equal(await (await pool.request(server.url, { method: 'POST', body: readable })).text(), 'STREAM');
  async function* gen() {
    yield Buffer.from('it');
    yield 'er';
  }
  const iterated = await pool.request(server.url, { method: 'POST', body: gen(), headers: { 'content-length': '4' } });
  assert.equal(await iterated.text(), 'ITER');
  assert.equal(await (await pool.request(server.url, { method: 'POST' })).text(), '');
  assert.deepEqual(
    seen.map((s) => [s.te, s.cl]),
    [
      [undefined, '6'],
      [undefined, '5'],
      ['chunked', undefined],
      [undefined, '4'],
      [undefined, '0'],
    ],
  );
  assert.equal(server.connections, 1, 'all five on one connection');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a body longer than its content-length fails with INVALID_BODY and the socket is closed', async () => {
  const leaks = leakCheck();
  const server = await startHttpServer(async (req, res) => {
    await readAll(req).catch(() => undefined);
    res.end('x');
  });
  const pool = new ConnectionPool();
  const err = await rejectsWith(
    pool.request(server.url, { method: 'POST', body: Readable.from([Buffer.from('abcdef')]), headers: { 'content-length': '3' } }),
    'MUXPOOL_ERR_INVALID_BODY',
  );
  assert.equal(err.maybeProcessed, true);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('streamed response with backpressure: the server feels it while nobody reads', async () => {
  const leaks = leakCheck();
  const total = 8 * 1024 * 1024;
  let sawBackpressure = false;
  let serverDone = false;
  const server = await startHttpServer((_req, res) => {
    const chunk = Buffer.alloc(64 * 1024, 97);
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          sawBackpressure = true;
          res.once('drain', pump);
          return;
        }
      }
      serverDone = true;
      res.end();
    };
    pump();
  });
  const pool = new ConnectionPool();
  const res = await pool.request(server.url);
  const body = res.body;
  // Bounded wait for the server to hit a full socket while we read nothing.
  for (let i = 0; i < 200 && !sawBackpressure; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(sawBackpressure, 'the server saw backpressure');
  assert.equal(serverDone, false, 'the server could not push the whole body into an unread response');
  let received = 0;
  for await (const chunk of body) received += (chunk as Buffer).length;
  assert.equal(received, total);
  assert.equal((await pool.stats()).http1IdleConnections, 1, 'the connection went back to the pool');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('chunked response with trailers; HEAD, 204 and 304 have no body; 1xx responses are skipped', async () => {
  const leaks = leakCheck();
  const server = await rawResponder((index) => {
    switch (index) {
      case 0:
        return 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 42\r\n\r\n';
      case 1:
        return 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n';
      case 2:
        return 'HTTP/1.1 204 No Content\r\n\r\n';
      default:
        return 'HTTP/1.1 304 Not Modified\r\ncontent-length: 50\r\n\r\n';
    }
  });
  const pool = new ConnectionPool();
  const res = await pool.request(server.url);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'hello world');
  assert.deepEqual({ ...res.trailers }, { 'x-sum': '42' }); // a null-prototype record: compare its fields
  const head = await pool.request(server.url, { method: 'HEAD' });
  assert.equal(head.headers['content-length'], '100');
  assert.equal(await head.text(), '');
  const noContent = await pool.request(server.url);
  assert.equal(noContent.status, 204);
  assert.equal(await noContent.text(), '');
  const notModified = await pool.request(server.url);
  assert.equal(notModified.status, 304);
  assert.equal(await notModified.text(), '');
  assert.equal(server.connections, 1, 'every response was framed right: one connection');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a close-delimited body ends at EOF and the connection is not reused', async () => {
  const leaks = leakCheck();
  const server = await rawResponder(
    () => 'HTTP/1.1 200 OK\r\n\r\nuntil the end',
    (socket) => socket.end(),
  );
  const pool = new ConnectionPool();
  assert.equal(await (await pool.request(server.url)).text(), 'until the end');
  assert.equal(await (await pool.request(server.url)).text(), 'until the end');
  assert.equal(server.connections, 2);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('Connection: close is honoured', async () => {
  const server = await rawResponder(() => 'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok');
  const pool = new ConnectionPool();
  const a = await pool.request(server.url);
  await a.text();
  const b = await pool.request(server.url);
  await b.text();
  assert.notEqual(a.connectionId, b.connectionId);
  assert.equal(b.reused, false);
  await pool.close();
  await server.close();
});

test('Keep-Alive: timeout=N retires the idle socket shortly before the server would', async () => {
  const leaks = leakCheck();
  const clock = new ManualClock();
  const server = await rawResponder(() => 'HTTP/1.1 200 OK\r\nkeep-alive: timeout=5\r\ncontent-length: 2\r\n\r\nok');
  const pool = new ConnectionPool({ clock, keepAliveMarginMs: 1_000 });
  const a = await pool.request(server.url);
  await a.text();
  clock.advance(3_900);
  const b = await pool.request(server.url);
  await b.text();
  assert.equal(b.connectionId, a.connectionId, 'still within the hint: reused');
  clock.advance(4_100);
  const c = await pool.request(server.url);
  await c.text();
  assert.notEqual(c.connectionId, a.connectionId, 'past timeout minus margin: a new connection');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('the server closing an idle socket between requests costs nothing', async () => {
  const leaks = leakCheck();
  const server = await rawResponder(
    () => 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
    (socket) => setTimeout(() => socket.end(), 10),
  );
  const pool = new ConnectionPool();
  const a = await pool.request(server.url);
  await a.text();
  await new Promise((resolve) => setTimeout(resolve, 60));
  const b = await pool.request(server.url);
  assert.equal(await b.text(), 'ok');
  assert.equal(b.reused, false);
  assert.equal(b.attempts, 1, 'the pool saw the close: no failed attempt');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a reused socket that dies before any response byte: GET is retried once on a fresh connection', async () => {
  const leaks = leakCheck();
  // The first connection answers once, then drops the second request silently (the stale
  // keep-alive race); later connections answer normally.
  const server = await staleSecondRequestServer();
  const pool = new ConnectionPool();
  await (await pool.request(server.url)).text();
  const retried = await pool.request(server.url);
  assert.equal(await retried.text(), 'ok');
  assert.equal(retried.attempts, 2);
  assert.equal(retried.reused, false, 'the retry went to a fresh connection');
  assert.equal(server.connections, 2);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a reused socket that dies before any response byte: POST is not retried and says it may have been processed', async () => {
  const leaks = leakCheck();
  const server = await staleSecondRequestServer();
  const pool = new ConnectionPool();
  await (await pool.request(server.url)).text();
  const err = await rejectsWith(pool.request(server.url, { method: 'POST', body: 'x' }), 'MUXPOOL_ERR_CONNECTION_CLOSED');
  assert.equal(err.maybeProcessed, true);
  assert.equal(err.attempts, 1);
  // With an idempotency key the same POST is replayable.
  const server2 = await staleSecondRequestServer();
  await (await pool.request(server2.url)).text();
  const keyed = await pool.request(server2.url, { method: 'POST', body: 'x', headers: { 'idempotency-key': 'k1' } });
  assert.equal(keyed.attempts, 2);
  await keyed.text();
  await pool.close();
  await server.close();
  await server2.close();
  await leaks.check(pool);
});

test('malformed and hostile responses are typed errors and leave the pool consistent', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['bad status line', 'HTTP/1.1 2OO OK\r\ncontent-length: 0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['not HTTP at all', 'SSH-2.0-OpenSSH_9.2\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['conflicting Content-Length', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!', 'MUXPOOL_ERR_H1_CONTENT_LENGTH'],
    ['negative Content-Length', 'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n', 'MUXPOOL_ERR_H1_CONTENT_LENGTH'],
    ['oversized headers', `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 'MUXPOOL_ERR_HEADERS_TOO_LARGE'],
    ['too many headers', `HTTP/1.1 200 OK\r\n${'x-h: 1\r\n'.repeat(200)}\r\n`, 'MUXPOOL_ERR_HEADERS_TOO_LARGE'],
  ];
  for (const [name, response, code] of cases) {
    await t.test(name, async () => {
      const leaks = leakCheck();
      const server = await rawResponder(() => response);
      const pool = new ConnectionPool();
      await rejectsWith(pool.request(server.url), code);
      assert.equal((await pool.stats()).totalConnections, 0, 'the broken connection is gone');
      await pool.close();
      await server.close();
      await leaks.check(pool);
    });
  }
});

test('a malformed chunk size fails the body with H1_PARSE', async () => {
  const leaks = leakCheck();
  const server = await rawResponder(() => 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n');
  const pool = new ConnectionPool();
  const res = await pool.request(server.url);
  await rejectsWith(res.text(), 'MUXPOOL_ERR_H1_PARSE');
  assert.equal((await pool.stats()).totalConnections, 0);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('truncated bodies: chunked cut short and close mid-body are BODY_TRUNCATED', async (t) => {
  const cases: Array<[string, string]> = [
    ['truncated chunked body', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel'],
    ['close mid-body', 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part of it'],
  ];
  for (const [name, response] of cases) {
    await t.test(name, async () => {
      const leaks = leakCheck();
      const server = await rawResponder(
        () => response,
        (socket) => setTimeout(() => socket.end(), 5),
      );
      const pool = new ConnectionPool();
      const res = await pool.request(server.url);
      assert.equal(res.status, 200);
      await rejectsWith(res.text(), 'MUXPOOL_ERR_BODY_TRUNCATED');
      await pool.close();
      await server.close();
      await leaks.check(pool);
    });
  }
});

test('a reset mid-response is CONNECTION_RESET', async () => {
  const leaks = leakCheck();
  const server = await rawResponder(
    () => 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial',
    (socket) => setTimeout(() => socket.resetAndDestroy(), 5),
  );
  const pool = new ConnectionPool();
  const res = await pool.request(server.url);
  await rejectsWith(res.text(), 'MUXPOOL_ERR_CONNECTION_RESET');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('bad input fails before a byte is written', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  const pool = new ConnectionPool();
  await rejectsWith(pool.request('not a url'), 'MUXPOOL_ERR_INVALID_URL');
  await rejectsWith(pool.request('ftp://127.0.0.1/'), 'MUXPOOL_ERR_UNSUPPORTED_SCHEME');
  await rejectsWith(pool.request(server.url, { method: 'GE T' }), 'MUXPOOL_ERR_INVALID_METHOD');
  await rejectsWith(pool.request(server.url, { headers: { 'x-a': 'b\r\nx-injected: 1' } }), 'MUXPOOL_ERR_INVALID_HEADER');
  await rejectsWith(pool.request(server.url, { headers: { 'x-a': 'nul\0' } }), 'MUXPOOL_ERR_INVALID_HEADER');
  await rejectsWith(pool.request(server.url, { headers: { 'bad name': 'v' } }), 'MUXPOOL_ERR_INVALID_HEADER');
  await rejectsWith(pool.request(server.url, { body: 42 as unknown as string, method: 'POST' }), 'MUXPOOL_ERR_INVALID_BODY');
  assert.equal(server.connections, 0, 'no connection was opened for bad input');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('connection refused and DNS failure are typed errors', async () => {
  const leaks = leakCheck();
  const server = await startRawServer(() => {});
  const port = server.port;
  await server.close();
  const pool = new ConnectionPool({ connectTimeoutMs: 2_000 });
  const refused = await rejectsWith(pool.request(`http://127.0.0.1:${port}/`), 'MUXPOOL_ERR_CONNECT_REFUSED');
  assert.equal(refused.maybeProcessed, false);
  await rejectsWith(pool.request('http://no-such-host.invalid/'), 'MUXPOOL_ERR_DNS');
  assert.equal((await pool.stats()).totalConnections, 0);
  await pool.close();
  await leaks.check(pool);
});

test('timeoutMs and signal cancel a request and free its connection', async () => {
  const leaks = leakCheck();
  const server = await startHttpServer(() => {
    /* never answers */
  });
  const pool = new ConnectionPool();
  const timedOut = await rejectsWith(pool.request(server.url, { timeoutMs: 50 }), 'MUXPOOL_ERR_REQUEST_TIMEOUT');
  assert.equal(timedOut.maybeProcessed, true);
  const controller = new AbortController();
  const pending = pool.request(server.url, { signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  await rejectsWith(pending, 'MUXPOOL_ERR_ABORTED');
  assert.equal((await pool.stats()).totalConnections, 0, 'HTTP/1.1 cannot skip a response: the sockets were closed');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('abort mid-body ends the body stream with ABORTED', async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((_req, res) => {
    res.write('first part');
  });
  const pool = new ConnectionPool();
  const controller = new AbortController();
  const res = await pool.request(server.url, { signal: controller.signal });
  controller.abort();
  await rejectsWith(res.text(), 'MUXPOOL_ERR_ABORTED');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('dump() and body.destroy() free the connection', async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((_req, res) => res.end('x'.repeat(10_000)));
  const pool = new ConnectionPool({ maxPerHost: 1 });
  const a = await pool.request(server.url);
  await a.dump();
  const b = await pool.request(server.url);
  assert.equal(b.connectionId, a.connectionId, 'a dumped short body keeps the connection');
  b.body.destroy();
  const c = await pool.request(server.url);
  assert.equal((await c.text()).length, 10_000);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a response dropped without reading its body is collected and frees its connection', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const server = await startHttpServer((_req, res) => {
    res.write(Buffer.alloc(256 * 1024));
    // never ends: only abandonment can free the slot
  });
  const pool = new ConnectionPool({ maxPerHost: 1 });
  await (async () => {
    const res = await pool.request(server.url);
    assert.equal(res.status, 200);
  })();
  // Bounded: a few GC passes and event-loop turns.
  for (let i = 0; i < 50 && (await pool.stats()).activeStreams > 0; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal((await pool.stats()).activeStreams, 0, 'the abandoned stream was cancelled');
  await pool.close();
  await server.close();
});

test('maxPerHost holds under a burst of requests', async () => {
  const leaks = leakCheck();
  let inFlight = 0;
  let maxInFlight = 0;
  const server = await startHttpServer((_req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      res.end('ok');
    }, 2);
  });
  const pool = new ConnectionPool({ maxPerHost: 3 });
  const results = await Promise.all(Array.from({ length: 30 }, () => pool.request(server.url).then((r) => r.text())));
  assert.equal(results.length, 30);
  assert.ok(results.every((r) => r === 'ok'));
  assert.ok(server.connections <= 3, `${server.connections} connections`);
  assert.ok(maxInFlight <= 3);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('the process-wide request() works and keys compare by value', async () => {
  const server = await startHttpServer((_req, res) => res.end('default'));
  const res = await request(server.url);
  assert.equal(await res.text(), 'default');
  const a = new PoolKey('LOCALHOST', 80, false);
  const b = new PoolKey('localhost', 80, false);
  assert.ok(a.equals(b));
  assert.ok(new PoolKey('[0:0::1]', 443, true).equals(new PoolKey('::1', 443, true)));
  assert.ok(!new PoolKey('localhost', 443, true, { ca: 'x' }).equals(new PoolKey('localhost', 443, true)));
  await server.close();
  const { getDefaultPool } = await import('../../src/index.js');
  await getDefaultPool().close();
});

// Regression: the first attempt's end disposed the request's timer and signal listener, so a
// retry ran without timeoutMs and could hang until readTimeoutMs.
test('timeoutMs still covers a retried request (the first attempt no longer disposes it)', async () => {
  const leaks = leakCheck();
  let requests = 0;
  const server = await startRawServer((socket) => {
    socket.on('data', () => {
      requests++;
      if (requests === 1) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      else if (requests === 2) socket.destroy(); // a stale keep-alive socket: retried
      // the retry gets no answer at all
    });
  });
  const pool = new ConnectionPool({ readTimeoutMs: 60_000 });
  await (await pool.request(`${server.url}/`)).text();
  const err = await rejectsWith(pool.request(`${server.url}/`, { timeoutMs: 300 }), 'MUXPOOL_ERR_REQUEST_TIMEOUT');
  assert.equal(err.attempts, 2);
  assert.equal(requests, 3);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});
