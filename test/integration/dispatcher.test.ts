/**
 * The pool as an undici Dispatcher: Node's own fetch, undici's fetch/request/stream/pipeline and
 * setGlobalDispatcher run on it, over HTTP/1.1, HTTP/2 and HTTP/3 (once the origin advertised
 * it), against real servers on loopback; both handler shapes; what it refuses, typed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import * as undici from 'undici';
import { ConnectionPool, isMuxpoolError } from '../../src/index.js';
import type { DispatchController } from '../../src/client/dispatcher.js';
import type { DispatchInterceptor } from '../../src/client/pool.js';
import { startEmbeddedServer } from '../../src/server/embedded.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpServer } from '../helpers/servers.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

test("Node's global fetch with { dispatcher }: GET, POST bodies of every kind fetch sends, headers, status, abort", async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url === '/slow') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(1024));
        return; // never ends: the client aborts
      }
      res.setHeader('x-method', req.method ?? '');
      res.setHeader('x-content-type', req.headers['content-type'] ?? '');
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.statusCode = req.url === '/created' ? 201 : 200;
      res.end(`${req.method} ${req.url} ${body.length} ${sha256(body)}`);
    });
  });
  const pool = new ConnectionPool();
  // No cast: the pool is a Dispatcher to TypeScript too.
  const dispatcher = pool;
  try {
    const get = await fetch(`${server.url}/hello?x=1`, { dispatcher });
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('x-method'), 'GET');
    assert.deepEqual(get.headers.getSetCookie(), ['a=1', 'b=2']);
    assert.equal(await get.text(), `GET /hello?x=1 0 ${sha256(new Uint8Array())}`);

    const payload = Buffer.from('x'.repeat(100_000));
    const bodies: Array<[string, unknown, string]> = [
      ['string', 'hello', 'text/plain;charset=UTF-8'],
      ['bytes', new Uint8Array(payload), ''],
      ['form', new URLSearchParams({ a: '1', b: 'two' }), 'application/x-www-form-urlencoded;charset=UTF-8'],
      ['blob', new Blob([payload], { type: 'application/x-test' }), 'application/x-test'],
      ['stream', Readable.toWeb(Readable.from([payload.subarray(0, 50_000), payload.subarray(50_000)])) as ReadableStream, ''],
    ];
    for (const [kind, body, type] of bodies) {
      const init = { method: 'POST', body, dispatcher, ...(kind === 'stream' ? { duplex: 'half' } : {}) };
      const res = await fetch(`${server.url}/created`, init as unknown as RequestInit);
      assert.equal(res.status, 201, kind);
      assert.equal(res.headers.get('x-content-type'), type, kind);
      const [, , length] = (await res.text()).split(' ');
      const expected = kind === 'string' ? 5 : kind === 'form' ? 'a=1&b=two'.length : payload.length;
      assert.equal(Number(length), expected, kind);
    }

    const controller = new AbortController();
    const slow = await fetch(`${server.url}/slow`, { dispatcher, signal: controller.signal } as unknown as RequestInit);
    const reader = (slow.body as ReadableStream<Uint8Array>).getReader();
    assert.equal((await reader.read()).value?.byteLength, 1024);
    controller.abort();
    await assert.rejects(reader.read(), { name: 'AbortError' });
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test("undici's fetch, request, stream and pipeline with { dispatcher }, and setGlobalDispatcher(pool)", async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'text/plain');
      res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
    });
  });
  const pool = new ConnectionPool();
  // No cast: the pool is a Dispatcher to TypeScript too.
  const dispatcher = pool;
  const previous = undici.getGlobalDispatcher();
  try {
    const f = await undici.fetch(`${server.url}/f`, { dispatcher });
    assert.equal(await f.text(), 'GET /f ');

    const r = await undici.request(`${server.url}/r`, { dispatcher, method: 'PUT', body: 'put-body', headers: ['x-a', '1', 'x-b', '2'] });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['content-type'], 'text/plain');
    assert.equal(await r.body.text(), 'PUT /r put-body');

    const streamed: Buffer[] = [];
    await undici.stream(`${server.url}/s`, { dispatcher, method: 'GET' }, () =>
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          streamed.push(chunk);
          cb();
        },
      }),
    );
    assert.equal(Buffer.concat(streamed).toString(), 'GET /s ');

    const piped: Buffer[] = [];
    await pipeline(
      Readable.from(['piped ', 'body']),
      undici.pipeline(`${server.url}/p`, { dispatcher, method: 'POST' }, ({ body }) => body),
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          piped.push(chunk);
          cb();
        },
      }),
    );
    assert.equal(Buffer.concat(piped).toString(), 'POST /p piped body');

    undici.setGlobalDispatcher(dispatcher);
    const g = await undici.request(`${server.url}/global`);
    assert.equal(await g.body.text(), 'GET /global ');
    assert.equal((await pool.stats()).http1Connections >= 1, true, 'the global request went through the pool');
  } finally {
    undici.setGlobalDispatcher(previous);
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('fetch over HTTP/2, and over HTTP/3 once the origin advertised it (Alt-Svc)', async () => {
  const leaks = leakCheck();
  const embedded = await startEmbeddedServer();
  const pool = new ConnectionPool({ tls: { ca: embedded.caCert } });
  // No cast: the pool is a Dispatcher to TypeScript too.
  const dispatcher = pool;
  try {
    const first = await fetch(`${embedded.httpsUrl}/`, { dispatcher });
    assert.match(await first.text(), /HTTP\/2/);
    assert.equal((await pool.stats()).http2Connections, 1);
    if (embedded.http3) {
      // The Alt-Svc of the first response prepares an HTTP/3 connection in the background.
      for (let i = 0; i < 200 && (await pool.stats()).http3Connections === 0; i++) await new Promise((r) => setTimeout(r, 10));
      const later = await fetch(`${embedded.httpsUrl}/`, { dispatcher });
      assert.match(await later.text(), /HTTP\/3/, 'fetch in Node over HTTP/3');
      const echoed = await fetch(`${embedded.httpsUrl}/echo`, { method: 'POST', body: 'over h3', dispatcher } as unknown as RequestInit);
      assert.equal(await echoed.text(), 'over h3');
    } else {
      assert.fail(`the embedded server has no HTTP/3: ${embedded.http3Error ?? ''}`);
    }
  } finally {
    await pool.close();
    await embedded.close();
  }
  await leaks.check(pool);
});

test('the controller handler shape (undici 7): start, head, body with pause/resume, end; both shapes get trailers', async () => {
  const leaks = leakCheck();
  const big = Buffer.alloc(512 * 1024, 7);
  const server = await startHttpServer((req, res) => {
    if (req.url === '/trailers') {
      res.writeHead(200, { trailer: 'x-sum' });
      res.write('abc');
      res.addTrailers({ 'x-sum': '42' });
      res.end();
      return;
    }
    res.end(big);
  });
  const pool = new ConnectionPool();
  // No cast: the pool is a Dispatcher to TypeScript too.
  const dispatcher = pool;
  try {
    const got = await new Promise<{ status: number; bytes: number; pauses: number }>((resolve, reject) => {
      let bytes = 0;
      let pauses = 0;
      let status = 0;
      pool.dispatch(
        { origin: server.url, path: '/big', method: 'GET' },
        {
          onRequestStart() {},
          onResponseStart(_c: DispatchController, statusCode: number) {
            status = statusCode;
          },
          onResponseData(controller: DispatchController, chunk: Buffer) {
            bytes += chunk.length;
            if (pauses < 3) {
              pauses++;
              controller.pause();
              setTimeout(() => controller.resume(), 5);
            }
          },
          onResponseEnd() {
            resolve({ status, bytes, pauses });
          },
          onResponseError(_c: DispatchController, err: Error) {
            reject(err);
          },
        },
      );
    });
    assert.deepEqual(got, { status: 200, bytes: big.length, pauses: 3 });

    const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      pool.dispatch(
        { origin: server.url, path: '/trailers', method: 'GET' },
        {
          onResponseStart() {},
          onResponseData() {},
          onResponseEnd(_c: DispatchController, t: Record<string, unknown>) {
            resolve({ ...t });
          },
          onResponseError(_c: DispatchController, err: Error) {
            reject(err);
          },
        },
      );
    });
    assert.deepEqual(trailers, { 'x-sum': '42' });
    const r = await undici.request(`${server.url}/trailers`, { dispatcher });
    assert.equal(await r.body.text(), 'abc');
    assert.deepEqual({ ...r.trailers }, { 'x-sum': '42' });
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('upgrade and CONNECT get a typed error through the handler; bad options too, with nothing dialed', async () => {
  const pool = new ConnectionPool();
  const errorOf = (options: Record<string, unknown>): Promise<Error> =>
    new Promise((resolve) => {
      pool.dispatch(options as never, { onConnect() {}, onHeaders: () => true, onData: () => true, onComplete() {}, onError: resolve });
    });
  const upgrade = await errorOf({ origin: 'http://127.0.0.1:9', path: '/', method: 'GET', upgrade: 'websocket' });
  assert.ok(isMuxpoolError(upgrade, 'MUXPOOL_ERR_NOT_SUPPORTED'));
  const connect = await errorOf({ origin: 'http://127.0.0.1:9', path: '/', method: 'CONNECT' });
  assert.ok(isMuxpoolError(connect, 'MUXPOOL_ERR_NOT_SUPPORTED'));
  const badPath = await errorOf({ origin: 'http://127.0.0.1:9', path: 'nope', method: 'GET' });
  assert.ok(isMuxpoolError(badPath, 'MUXPOOL_ERR_INVALID_URL'));
  assert.equal((await pool.stats()).dialed, 0);
  await pool.close();
});

test("the pool's own undici-style request(options), stream(), pipeline(), compose(); connect() and upgrade() refused typed", async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('x-intercepted', String(req.headers['x-intercepted'] ?? 'no'));
      res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
    });
  });
  const pool = new ConnectionPool();
  try {
    const data = await pool.request({ origin: server.url, path: '/r?x=1', method: 'POST', body: 'abc', opaque: { tag: 7 } });
    assert.equal(data.statusCode, 200);
    assert.deepEqual(data.opaque, { tag: 7 });
    assert.equal(await data.body.text(), 'POST /r?x=1 abc');
    assert.equal(data.body.bodyUsed, true);

    const sink: Buffer[] = [];
    const streamed = await pool.stream({ origin: server.url, path: '/s', method: 'GET', opaque: 'o' }, ({ statusCode }) => {
      assert.equal(statusCode, 200);
      return new Writable({
        write(chunk: Buffer, _enc, cb) {
          sink.push(chunk);
          cb();
        },
      });
    });
    assert.equal(streamed.opaque, 'o');
    assert.equal(Buffer.concat(sink).toString(), 'GET /s ');

    const out: Buffer[] = [];
    await pipeline(
      Readable.from(['x', 'y']),
      pool.pipeline({ origin: server.url, path: '/p', method: 'PUT' }, ({ body }) => body),
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          out.push(chunk);
          cb();
        },
      }),
    );
    assert.equal(Buffer.concat(out).toString(), 'PUT /p xy');

    // An interceptor that adds a header: compose() runs it, the pool is unchanged.
    const addHeader: DispatchInterceptor = (dispatch) => (options, handler) =>
      dispatch({ ...options, headers: { ...(options.headers as Record<string, string>), 'x-intercepted': 'yes' } }, handler);
    const composed = pool.compose(addHeader);
    const viaComposed = await undici.request(`${server.url}/c`, { dispatcher: composed });
    assert.equal(viaComposed.headers['x-intercepted'], 'yes');
    await viaComposed.body.dump();
    const direct = await pool.request(`${server.url}/c`);
    assert.equal(direct.headers['x-intercepted'], 'no');
    await direct.dump();

    await assert.rejects(pool.connect({}), { code: 'MUXPOOL_ERR_NOT_SUPPORTED' });
    await assert.rejects(pool.upgrade({}), { code: 'MUXPOOL_ERR_NOT_SUPPORTED' });
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('dispatch edge cases: the path stays on its origin; a handler that throws or aborts ends the request once with its own error; onHeaders returning false holds the body; signal in request(options)', async () => {
  const leaks = leakCheck();
  const seen: string[] = [];
  const server = await startHttpServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/hang') {
      res.writeHead(200);
      res.write('partial');
      return;
    }
    res.end('x'.repeat(1000));
  });
  const pool = new ConnectionPool();
  try {
    // Regression: `//evil.example/x` was resolved as a reference and left the origin.
    const onOrigin = await pool.request({ origin: server.url, path: '//evil.example/x', method: 'GET' });
    await onOrigin.body.dump();
    assert.equal(seen.at(-1), '//evil.example/x', 'sent to the origin as it is');

    // A factory that throws on a small response: the stream() promise rejects with its error.
    const boom = new Error('factory failed');
    await assert.rejects(
      pool.stream({ origin: server.url, path: '/small', method: 'GET' }, () => {
        throw boom;
      }),
      (err) => err === boom,
    );

    // A legacy handler that throws from onData: one onError, with what it threw.
    const thrown = new Error('onData failed');
    const errors = await new Promise<unknown[]>((resolve) => {
      const got: unknown[] = [];
      pool.dispatch(
        { origin: server.url, path: '/small', method: 'GET' },
        {
          onConnect() {},
          onHeaders: () => true,
          onData: () => {
            throw thrown;
          },
          onComplete: () => got.push('complete'),
          onError: (err) => {
            got.push(err);
            setTimeout(() => resolve(got), 50);
          },
        },
      );
    });
    assert.deepEqual(errors, [thrown]);

    // onHeaders returning false: no data until resume() is called.
    const order: string[] = [];
    await new Promise<void>((resolve, reject) => {
      let resume: () => void = () => {};
      pool.dispatch(
        { origin: server.url, path: '/small', method: 'GET' },
        {
          onConnect() {},
          onHeaders: (_s, _h, r) => {
            resume = r;
            order.push('headers');
            setTimeout(() => {
              order.push('resume');
              resume();
            }, 30);
            return false;
          },
          onData: () => {
            if (order.at(-1) !== 'data') order.push('data');
            return true;
          },
          onComplete: () => resolve(),
          onError: reject,
        },
      );
    });
    assert.deepEqual(order, ['headers', 'resume', 'data']);

    // An AbortSignal in undici-style options aborts the request.
    const controller = new AbortController();
    const hanging = await pool.request({ origin: server.url, path: '/hang', method: 'GET', signal: controller.signal });
    controller.abort(new Error('stop'));
    await assert.rejects(hanging.body.text(), /stop/);
    assert.equal((await pool.stats()).activeStreams, 0);
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});
