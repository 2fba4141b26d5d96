/**
 * request() over HTTP/2 against real node:http2 servers: negotiation, bodies and backpressure
 * both ways, trailers, connection-specific headers, abort, GOAWAY, REFUSED_STREAM, PING health,
 * header limits and coalescing.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, MuxpoolError, type Response } from '../../src/index.js';
import { type GeneratedCertificates, generateCertificates } from '../../src/server/certs.js';
import { rejectsWith } from '../helpers/assert.js';
import { respondText, startH2Server, startSilentProxy } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';

let certsPromise: Promise<GeneratedCertificates> | undefined;
function certs(): Promise<GeneratedCertificates> {
  certsPromise ??= generateCertificates({ names: ['localhost', 'a.test', 'b.test'] });
  return certsPromise;
}

const MiB = 1024 * 1024;

test('Auto over TLS picks h2 by ALPN in one handshake; HTTP/1.1-only peers get HTTP/1.1 from the same offer', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const both = await startH2Server((stream, headers) => respondText(stream, `h2 ${String(headers[':authority'])}`), {
    certs: c,
    allowHTTP1: true,
  });
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const a = await pool.request(`${both.url}/`);
  assert.equal(a.protocol, 'h2');
  assert.equal(await a.text(), `h2 localhost:${both.port}`);
  assert.equal(a.reused, false);
  const b = await pool.request(`${both.url}/`);
  await b.text();
  assert.equal(b.reused, true);
  assert.equal(b.connectionId, a.connectionId);
  assert.equal(both.sessionCount, 1);
  // The same server asked for HTTP/1.1 explicitly: ALPN offers only http/1.1.
  const h1 = await pool.request(`${both.url}/`, { version: HttpVersion.Http1_1 });
  assert.equal(h1.protocol, 'http/1.1');
  assert.equal(await h1.text(), `http/1.1 localhost:${both.port}`);
  await pool.close();
  await both.close();
  await leaks.check(pool);
});

test('cleartext: http:// uses HTTP/1.1 by default and HTTP/2 with prior knowledge when asked', async () => {
  const leaks = leakCheck();
  const h2c = await startH2Server((stream) => respondText(stream, 'h2c'));
  const pool = new ConnectionPool();
  const res = await pool.request(`${h2c.url}/`, { version: HttpVersion.Http2 });
  assert.equal(res.protocol, 'h2');
  assert.equal(await res.text(), 'h2c');
  // Auto on http:// speaks HTTP/1.1, which an h2c-only server cannot answer: a clean error.
  const err = await rejectsWith(pool.request(`${h2c.url}/`, { timeoutMs: 2_000 }), 'MUXPOOL_ERR_H1_PARSE', 'MUXPOOL_ERR_CONNECTION_CLOSED', 'MUXPOOL_ERR_CONNECTION_RESET');
  assert.ok(err instanceof MuxpoolError);
  // And the prior-knowledge connection is still good.
  const again = await pool.request(`${h2c.url}/`, { version: HttpVersion.Http2 });
  assert.equal(again.reused, true);
  await again.text();
  await pool.close();
  await h2c.close();
  await leaks.check(pool);
});

test('request and response bodies stream both ways with backpressure reaching each side', async () => {
  const leaks = leakCheck();
  const c = await certs();
  let serverSent = 0;
  let uploadReceived = 0;
  const server = await startH2Server(
    (stream, headers) => {
      if (headers[':path'] === '/upload') {
        stream.on('data', (chunk: Buffer) => {
          uploadReceived += chunk.length;
        });
        stream.on('end', () => respondText(stream, String(uploadReceived)));
        return;
      }
      // /download: 16 MiB written as fast as flow control lets it go.
      stream.respond({ ':status': 200 });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const total = 16 * MiB;
      const pump = (): void => {
        while (serverSent < total) {
          serverSent += chunk.length;
          if (!stream.write(chunk)) {
            stream.once('drain', pump);
            return;
          }
        }
        stream.end();
      };
      pump();
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });

  // Upload 8 MiB from an async generator with a declared length.
  async function* upload(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 128; i++) yield Buffer.alloc(64 * 1024, i);
  }
  const up = await pool.request(`${server.url}/upload`, { method: 'PUT', body: upload(), headers: { 'content-length': String(8 * MiB) } });
  assert.equal(await up.text(), String(8 * MiB));

  const res = await pool.request(`${server.url}/download`);
  const body = res.body;
  // Nobody reads for a while: the server must be held back by flow control.
  await sleep(300);
  assert.ok(serverSent < 8 * MiB, `server pushed ${serverSent} bytes into an unread stream`);
  let received = 0;
  for await (const chunk of body) received += (chunk as Buffer).length;
  assert.equal(received, 16 * MiB);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('trailers arrive; connection-specific request headers are stripped (RFC 9113 §8.2.2), te: trailers kept', async () => {
  const leaks = leakCheck();
  const c = await certs();
  let seen: http2.IncomingHttpHeaders | undefined;
  const server = await startH2Server(
    (stream, headers) => {
      seen = headers;
      stream.respond({ ':status': 200 }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc123' }));
      stream.end('body');
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const res = await pool.request(`${server.url}/t`, {
    headers: {
      connection: 'keep-alive, x-hop',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'keep-alive',
      'x-hop': 'drop me',
      te: 'trailers',
      'x-kept': 'yes',
    },
  });
  assert.equal(await res.text(), 'body');
  assert.deepEqual({ ...res.trailers }, { 'x-checksum': 'abc123' }); // a null-prototype record: compare its fields
  assert.ok(seen !== undefined);
  for (const name of ['connection', 'keep-alive', 'proxy-connection', 'x-hop']) assert.equal(seen[name], undefined, name);
  assert.equal(seen['te'], 'trailers');
  assert.equal(seen['x-kept'], 'yes');
  // te with anything but "trailers" is dropped too.
  const res2 = await pool.request(`${server.url}/t`, { headers: { te: 'gzip' } });
  await res2.text();
  assert.equal(seen['te'], undefined);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('abort mid-response sends RST_STREAM(CANCEL) and frees the slot at once', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const resets: number[] = [];
  const server = await startH2Server(
    (stream) => {
      stream.on('close', () => resets.push(stream.rstCode));
      stream.respond({ ':status': 200 });
      stream.write('first part');
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const controller = new AbortController();
  const res = await pool.request(`${server.url}/slow`, { signal: controller.signal });
  assert.equal((await pool.stats()).activeStreams, 1);
  controller.abort();
  assert.equal((await pool.stats()).activeStreams, 0, 'slot freed synchronously');
  await assert.rejects(res.text(), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_ABORTED');
  for (let i = 0; i < 100 && resets.length === 0; i++) await sleep(5);
  assert.deepEqual(resets, [http2.constants.NGHTTP2_CANCEL]);
  // The session survives a cancelled stream.
  server.server.removeAllListeners('stream');
  server.server.on('stream', (stream) => respondText(stream, 'next'));
  const next = await pool.request(`${server.url}/`);
  assert.equal(next.connectionId, res.connectionId);
  assert.equal(await next.text(), 'next');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('GOAWAY mid-burst: 40 requests all succeed; those above the last stream id are retried once on a new connection', async () => {
  const leaks = leakCheck();
  const c = await certs();
  let streams = 0;
  const server = await startH2Server(
    (stream, _headers, session) => {
      streams++;
      // The 10th stream triggers GOAWAY naming it as the last one processed.
      if (streams === 10) session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id ?? 0);
      setTimeout(() => respondText(stream, 'ok'), 5);
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  // Open the first session before the burst so the burst lands on it.
  await (await pool.request(`${server.url}/warm`)).text();
  const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => pool.request(`${server.url}/${i}`).then(async (r) => {
    await r.text();
    return r;
  })));
  const failed = results.filter((r) => r.status === 'rejected');
  assert.deepEqual(failed, [], 'every request succeeded');
  const responses = results.map((r) => (r as PromiseFulfilledResult<Response>).value);
  const retried = responses.filter((r) => r.attempts === 2);
  assert.ok(retried.length > 0, 'some requests were above the last stream id and were retried');
  assert.ok(responses.every((r) => r.attempts <= 2));
  const firstId = responses[0]?.connectionId;
  assert.ok(retried.every((r) => r.connectionId !== firstId), 'retries went to a new connection');
  assert.ok(server.sessionCount >= 2);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('REFUSED_STREAM is retried once (even for POST: the server processed nothing); twice refused fails typed', async () => {
  const leaks = leakCheck();
  const c = await certs();
  let refuse = 1;
  const server = await startH2Server(
    (stream) => {
      if (refuse > 0) {
        refuse--;
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      respondText(stream, 'accepted');
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const res = await pool.request(`${server.url}/`, { method: 'POST', body: 'data' });
  assert.equal(await res.text(), 'accepted');
  assert.equal(res.attempts, 2);
  refuse = 2;
  const err = await rejectsWith(pool.request(`${server.url}/`, { method: 'POST', body: 'data' }), 'MUXPOOL_ERR_STREAM_REFUSED');
  assert.equal(err.maybeProcessed, false);
  assert.equal(err.attempts, 2);
  assert.equal(err.wireCode, http2.constants.NGHTTP2_REFUSED_STREAM);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a server that stops answering is found by PING: in flight (typed error) and before reuse (retried on a new connection)', async () => {
  const leaks = leakCheck();
  const h2c = await startH2Server((stream, headers) => {
    if (headers[':path'] === '/hang') stream.respond({ ':status': 200 });
    else respondText(stream, 'ok');
  });
  const proxy = await startSilentProxy(h2c.port);
  const pool = new ConnectionPool({ pingIntervalMs: 100, pingTimeoutMs: 200 });
  const url = `http://127.0.0.1:${proxy.port}`;
  // In flight: the response head came, then silence.
  const res = await pool.request(`${url}/hang`, { version: HttpVersion.Http2 });
  proxy.silenceExisting();
  const err = await rejectsWith(res.text(), 'MUXPOOL_ERR_PING_TIMEOUT');
  assert.equal(err.maybeProcessed, true);
  // Before reuse: an idle session goes silent; the next GET pings it, the PING fails, and the
  // GET is retried on a fresh connection (a new proxy connection forwards normally).
  const warm = await pool.request(`${url}/`, { version: HttpVersion.Http2 });
  await warm.text();
  proxy.silenceExisting();
  await sleep(150);
  const after = await pool.request(`${url}/`, { version: HttpVersion.Http2 });
  assert.equal(await after.text(), 'ok');
  assert.equal(after.attempts, 2);
  assert.notEqual(after.connectionId, warm.connectionId);
  assert.equal(proxy.connections, 3);
  await pool.close();
  await proxy.close();
  await h2c.close();
  await leaks.check(pool);
});

test('oversized response headers fail that stream with HEADERS_TOO_LARGE; the session carries on', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await startH2Server(
    (stream, headers) => {
      if (headers[':path'] === '/big') {
        stream.respond({ ':status': 200, 'x-big': 'a'.repeat(40_000) });
        stream.end('x');
      } else respondText(stream, 'small');
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, maxHeaderBytes: 16_384 });
  const err = await rejectsWith(pool.request(`${server.url}/big`), 'MUXPOOL_ERR_HEADERS_TOO_LARGE');
  assert.equal(err.attempts, 1, 'not retried');
  const ok = await pool.request(`${server.url}/`);
  assert.equal(await ok.text(), 'small');
  assert.equal(ok.reused, true);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('coalescing: another host name on the same address whose certificate covers it shares the connection', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await startH2Server((stream, headers) => respondText(stream, String(headers[':authority'])), { certs: c });
  const resolver = async (host: string) => {
    if (host.endsWith('.test')) return [{ address: '127.0.0.1', family: 4 as const }];
    throw Object.assign(new Error(`unknown host ${host}`), { code: 'ENOTFOUND' });
  };
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, resolver });
  const a = await pool.request(`https://a.test:${server.port}/`);
  assert.equal(await a.text(), `a.test:${server.port}`);
  const b = await pool.request(`https://b.test:${server.port}/`);
  assert.equal(await b.text(), `b.test:${server.port}`, ':authority names the origin asked for');
  assert.equal(b.connectionId, a.connectionId, 'b.test reused the a.test connection');
  assert.equal(b.reused, true);
  assert.equal(server.sessionCount, 1);
  const stats = await pool.stats();
  assert.equal(stats.http2Connections, 1, 'one connection serving two origins counts once');
  assert.equal(stats.connections.length, 2);
  // c.test resolves to the same address but the certificate does not cover it.
  const hostErr = await rejectsWith(pool.request(`https://c.test:${server.port}/`), 'MUXPOOL_ERR_TLS_HOSTNAME');
  assert.equal(hostErr.maybeProcessed, false, 'c.test dialed its own connection and failed verification');
  assert.equal(server.sessionCount, 1);
  await pool.close();

  // Off by option; and never across TLS settings.
  const apart = new ConnectionPool({ tls: { ca: c.caCert }, resolver, coalesce: false });
  const a2 = await apart.request(`https://a.test:${server.port}/`);
  const b2 = await apart.request(`https://b.test:${server.port}/`);
  assert.notEqual(a2.connectionId, b2.connectionId);
  await a2.text();
  await b2.text();
  await apart.close();
  const { PoolKey } = await import('../../src/index.js');
  const mixed = new ConnectionPool({ tls: { ca: c.caCert }, resolver });
  const e1 = await mixed.getOrCreate(new PoolKey('a.test', server.port, true, { ca: c.caCert }), HttpVersion.Http2);
  const e2 = await mixed.getOrCreate(new PoolKey('b.test', server.port, true, { ca: [c.caCert, c.caCert] }), HttpVersion.Http2);
  assert.ok(e1 !== undefined && e2 !== undefined);
  assert.notEqual(e1.connection.id, e2.connection.id, 'different TLS settings never share');
  await mixed.release(e1);
  await mixed.release(e2);
  await mixed.close();
  await server.close();
  await leaks.check(mixed);
});

test('bodies: Readable upload of unknown length, empty POST, HEAD, 204; a body longer than content-length fails typed', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await startH2Server(
    (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (stream.destroyed || stream.closed) return;
        if (headers[':path'] === '/204') {
          stream.respond({ ':status': 204 });
          stream.end();
          return;
        }
        const body = Buffer.concat(chunks).toString();
        stream.respond({ ':status': 200, 'x-length': String(headers['content-length'] ?? 'none') });
        stream.end(headers[':method'] === 'HEAD' ? undefined : `${headers[':method']} ${body}`);
      });
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const streamed = await pool.request(`${server.url}/`, { method: 'POST', body: Readable.from(['a', 'b', 'c']) });
  assert.equal(await streamed.text(), 'POST abc');
  assert.equal(streamed.headers['x-length'], 'none');
  const empty = await pool.request(`${server.url}/`, { method: 'POST' });
  assert.equal(await empty.text(), 'POST ');
  assert.equal(empty.headers['x-length'], '0');
  const head = await pool.request(`${server.url}/`, { method: 'HEAD' });
  assert.equal(await head.text(), '');
  const none = await pool.request(`${server.url}/204`);
  assert.equal(none.status, 204);
  await none.dump();
  async function* tooLong(): AsyncGenerator<string> {
    yield 'abcdef';
  }
  await rejectsWith(
    pool.request(`${server.url}/`, { method: 'POST', body: tooLong(), headers: { 'content-length': '3' } }),
    'MUXPOOL_ERR_INVALID_BODY',
  );
  const after = await pool.request(`${server.url}/`);
  assert.equal(await after.text(), 'GET ');
  assert.equal(after.reused, true, 'a failed upload costs its stream, not the session');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('read timeout: a stalled stream fails typed after readTimeoutMs; one that keeps sending does not; the session serves on', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const timers: NodeJS.Timeout[] = [];
  const server = await startH2Server(
    (stream, headers) => {
      const path = String(headers[':path']);
      if (path === '/stall') {
        stream.respond({ ':status': 200 });
        stream.write('first');
        return; // and then nothing
      }
      if (path === '/trickle') {
        stream.respond({ ':status': 200 });
        let sent = 0;
        const timer = setInterval(() => {
          if (stream.destroyed) return clearInterval(timer);
          stream.write('.');
          if (++sent === 8) {
            clearInterval(timer);
            stream.end();
          }
        }, 50);
        timers.push(timer);
        return;
      }
      respondText(stream, 'ok');
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, readTimeoutMs: 200 });
  const stalled = await pool.request(`${server.url}/stall`);
  const err = await rejectsWith(stalled.text(), 'MUXPOOL_ERR_READ_TIMEOUT');
  assert.equal(err.maybeProcessed, true);
  // 8 × 50 ms = 400 ms in all, longer than the limit, but never 200 ms without data.
  const trickle = await pool.request(`${server.url}/trickle`);
  assert.equal(await trickle.text(), '........');
  const after = await pool.request(`${server.url}/after`);
  assert.equal(await after.text(), 'ok');
  assert.equal(after.connectionId, stalled.connectionId);
  for (const timer of timers) clearInterval(timer);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('one connection failure ends many streams: each request gets its own error object', async () => {
  // Regression: H2Session.destroy handed the same error to every stream, and the client then
  // set `attempts` on it, so concurrent requests overwrote each other's.
  const leaks = leakCheck();
  const h2c = await startH2Server((stream) => stream.respond({ ':status': 200 }));
  const proxy = await startSilentProxy(h2c.port);
  const pool = new ConnectionPool({ pingIntervalMs: 100, pingTimeoutMs: 200 });
  const url = `http://127.0.0.1:${proxy.port}`;
  const a = await pool.request(`${url}/a`, { version: HttpVersion.Http2 });
  const b = await pool.request(`${url}/b`, { version: HttpVersion.Http2 });
  assert.equal(a.connectionId, b.connectionId);
  proxy.silenceExisting();
  const [errA, errB] = await Promise.all([rejectsWith(a.text(), 'MUXPOOL_ERR_PING_TIMEOUT'), rejectsWith(b.text(), 'MUXPOOL_ERR_PING_TIMEOUT')]);
  assert.notEqual(errA, errB, 'two requests, two error objects');
  assert.equal(errA.message, errB.message);
  assert.ok(errA.cause instanceof MuxpoolError && errA.cause === errB.cause, 'both chain the connection error as their cause');
  errA.attempts = 7;
  assert.notEqual(errB.attempts, 7);
  await pool.close();
  await proxy.close();
  await h2c.close();
  await leaks.check(pool);
});
