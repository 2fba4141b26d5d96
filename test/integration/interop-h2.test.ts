/**
 * HTTP/2 interop against servers nobody here wrote: nghttpd (nghttp2, C) over TLS and in
 * cleartext with prior knowledge, and Caddy (Go's x/net/http2) with its internal CA. Each
 * checks ALPN, bodies byte for byte, connection reuse, a burst of concurrent streams on one
 * session, the peer's stream limit, error statuses and uploads.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool, HttpVersion, type Response } from '../../src/index.js';
import { type CaddyServer, startCaddyFixture } from '../helpers/caddy.js';
import { leakCheck } from '../helpers/leaks.js';
import { type NghttpdServer, startNghttpd } from '../helpers/nghttpd.js';

/** Caddy advertises HTTP/3, so Auto would move there: its HTTP/2 tests ask for HTTP/2 (ALPN still decides). */
const H2 = { version: HttpVersion.Http2 } as const;

const MiB = 1024 * 1024;
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Sends `count` requests at once and returns the responses with their bodies read. */
async function burst(pool: ConnectionPool, count: number, urlFor: (i: number) => string): Promise<{ res: Response; body: Buffer }[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const res = await pool.request(urlFor(i));
      return { res, body: await res.bytes() };
    }),
  );
}

describe('nghttpd over TLS', () => {
  let server: NghttpdServer;
  before(async () => {
    server = await startNghttpd({ echoUpload: true });
  });
  after(async () => {
    await server.stop();
  });

  test('Auto negotiates h2 by ALPN; a text and a 1 MiB binary body arrive intact; one connection serves them all', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: server.caCert } });
    const first = await pool.request(`${server.url}/hello.txt`);
    assert.equal(first.protocol, 'h2');
    assert.equal(first.status, 200);
    assert.equal(first.reused, false);
    assert.equal(await first.text(), server.files.hello);
    assert.equal(first.headers['content-length'], String(Buffer.byteLength(server.files.hello)));

    const big = await pool.request(`${server.url}/big.bin`);
    assert.equal(big.protocol, 'h2');
    assert.equal(big.reused, true);
    assert.equal(big.connectionId, first.connectionId);
    const bytes = await big.bytes();
    assert.equal(bytes.length, MiB);
    assert.equal(sha256(bytes), sha256(server.files.big));

    for (let i = 0; i < 10; i++) {
      const res = await pool.request(`${server.url}/hello.txt`);
      assert.equal(await res.text(), server.files.hello);
      assert.equal(res.reused, true);
      assert.equal(res.connectionId, first.connectionId);
    }
    const stats = await pool.stats();
    assert.equal(stats.http2Connections, 1);
    assert.equal(stats.totalConnections, 1);
    assert.equal(stats.dialed, 1);
    assert.equal(stats.connections[0]?.requests, 12);
    await pool.close();
    await leaks.check(pool);
  });

  test('100 concurrent requests (every tenth a 1 MiB body) share one session and all arrive intact', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: server.caCert } });
    const warm = await pool.request(`${server.url}/hello.txt`);
    await warm.text();
    const bigHash = sha256(server.files.big);
    const results = await burst(pool, 100, (i) => `${server.url}/${i % 10 === 0 ? 'big.bin' : 'hello.txt'}?i=${i}`);
    results.forEach(({ res, body }, i) => {
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal(res.connectionId, warm.connectionId, `request ${i} on the first session`);
      assert.equal(res.attempts, 1, `request ${i} needed no retry`);
      if (i % 10 === 0) assert.equal(sha256(body), bigHash, `request ${i} body`);
      else assert.equal(body.toString('utf8'), server.files.hello, `request ${i} body`);
    });
    const stats = await pool.stats();
    assert.equal(stats.http2Connections, 1);
    assert.equal(stats.dialed, 1);
    assert.equal(stats.activeStreams, 0);
    await pool.close();
    await leaks.check(pool);
  });

  test('a cold burst of 50 requests opens one session, not one per request', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: server.caCert } });
    const results = await burst(pool, 50, (i) => `${server.url}/hello.txt?cold=${i}`);
    for (const { res, body } of results) {
      assert.equal(res.protocol, 'h2');
      assert.equal(body.toString('utf8'), server.files.hello);
    }
    const ids = new Set(results.map(({ res }) => res.connectionId));
    const stats = await pool.stats();
    assert.equal(stats.http2Connections, 1, `connections ${[...ids].join(', ')}`);
    assert.equal(ids.size, 1);
    await pool.close();
    await leaks.check(pool);
  });

  test('404 is a response with a body, and the session stays usable', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: server.caCert } });
    const missing = await pool.request(`${server.url}/no/such/file`);
    assert.equal(missing.status, 404);
    assert.equal(missing.ok, false);
    assert.match(await missing.text(), /404/);
    const next = await pool.request(`${server.url}/hello.txt`);
    assert.equal(next.status, 200);
    assert.equal(next.connectionId, missing.connectionId);
    assert.equal(await next.text(), server.files.hello);
    await pool.close();
    await leaks.check(pool);
  });

  test('uploads are echoed byte for byte: 1 MiB of bytes with a length, and a streamed body without one', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: server.caCert } });
    const payload = randomBytes(MiB);
    const res = await pool.request(`${server.url}/upload`, { method: 'POST', body: payload });
    assert.equal(res.status, 200);
    const echoed = await res.bytes();
    assert.equal(echoed.length, payload.length);
    assert.equal(sha256(echoed), sha256(payload));

    const parts = Array.from({ length: 16 }, (_, i) => randomBytes(10_000 + i));
    async function* stream(): AsyncGenerator<Uint8Array> {
      for (const part of parts) yield part;
    }
    const put = await pool.request(`${server.url}/upload`, { method: 'PUT', body: stream() });
    assert.equal(put.status, 200);
    assert.equal(put.connectionId, res.connectionId);
    assert.equal(sha256(await put.bytes()), sha256(Buffer.concat(parts)));
    await pool.close();
    await leaks.check(pool);
  });
});

describe('nghttpd with a small stream limit', () => {
  let server: NghttpdServer;
  before(async () => {
    server = await startNghttpd({ maxConcurrentStreams: 4 });
  });
  after(async () => {
    await server.stop();
  });

  test('SETTINGS_MAX_CONCURRENT_STREAMS 4 is honoured: 40 concurrent requests, none refused', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: server.caCert }, maxPerHost: 1 });
    await (await pool.request(`${server.url}/hello.txt`)).text();
    const limits = (await pool.stats()).connections.map((c) => c.maxStreams);
    assert.deepEqual(limits, [4], 'the pool learned the peer limit');
    const results = await burst(pool, 40, (i) => `${server.url}/${i % 4 === 0 ? 'big.bin' : 'hello.txt'}?i=${i}`);
    for (const { res, body } of results) {
      assert.equal(res.status, 200);
      assert.equal(res.attempts, 1, 'nothing was refused and retried');
      assert.ok(body.length === MiB || body.toString('utf8') === server.files.hello);
    }
    assert.equal((await pool.stats()).dialed, 1);
    await pool.close();
    await leaks.check(pool);
  });
});

describe('nghttpd in cleartext (--no-tls)', () => {
  let server: NghttpdServer;
  before(async () => {
    server = await startNghttpd({ tls: false });
  });
  after(async () => {
    await server.stop();
  });

  test('HTTP/2 with prior knowledge: bodies intact, one connection reused, 100 concurrent streams', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool();
    const first = await pool.request(`${server.url}/hello.txt`, { version: HttpVersion.Http2 });
    assert.equal(first.protocol, 'h2');
    assert.equal(await first.text(), server.files.hello);
    const big = await pool.request(`${server.url}/big.bin`, { version: HttpVersion.Http2 });
    assert.equal(big.reused, true);
    assert.equal(big.connectionId, first.connectionId);
    assert.equal(sha256(await big.bytes()), sha256(server.files.big));
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const res = await pool.request(`${server.url}/hello.txt?i=${i}`, { version: HttpVersion.Http2 });
        return { res, text: await res.text() };
      }),
    );
    for (const { res, text } of results) {
      assert.equal(text, server.files.hello);
      assert.equal(res.connectionId, first.connectionId);
    }
    const missing = await pool.request(`${server.url}/missing`, { version: HttpVersion.Http2 });
    assert.equal(missing.status, 404);
    await missing.dump();
    const stats = await pool.stats();
    assert.equal(stats.http2Connections, 1);
    assert.equal(stats.dialed, 1);
    await pool.close();
    await leaks.check(pool);
  });
});

describe('Caddy (tls internal)', () => {
  let caddy: CaddyServer;
  const big = randomBytes(MiB);
  before(async () => {
    caddy = await startCaddyFixture(big);
  });
  after(async () => {
    await caddy.stop();
  });

  test('ALPN gives h2 (the server agrees), files arrive intact, one connection is reused', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const proto = await pool.request(`${caddy.url}/proto`, H2);
    assert.equal(proto.protocol, 'h2');
    assert.equal(await proto.text(), 'HTTP/2.0');
    assert.match(String(proto.headers['alt-svc']), /h3=":\d+"/);

    const hello = await pool.request(`${caddy.url}/hello.txt`, H2);
    assert.equal(await hello.text(), 'hello from caddy\n');
    assert.equal(hello.reused, true);
    assert.equal(hello.connectionId, proto.connectionId);

    const file = await pool.request(`${caddy.url}/big.bin`, H2);
    assert.equal(file.headers['content-length'], String(MiB));
    const bytes = await file.bytes();
    assert.equal(bytes.length, MiB);
    assert.equal(sha256(bytes), sha256(big));
    assert.equal(file.connectionId, proto.connectionId);

    const missing = await pool.request(`${caddy.url}/missing.txt`, H2);
    assert.equal(missing.status, 404);
    await missing.dump();
    const stats = await pool.stats();
    assert.equal(stats.http2Connections, 1);
    assert.equal(stats.dialed, 1);
    await pool.close();
    await leaks.check(pool);
  });

  test('100 concurrent requests share one session and all arrive intact', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const warm = await pool.request(`${caddy.url}/proto`, H2);
    await warm.text();
    const bigHash = sha256(big);
    const results = await burst(pool, 100, (i) => `${caddy.url}/${i % 10 === 0 ? 'big.bin' : 'hello.txt'}?i=${i}`);
    results.forEach(({ res, body }, i) => {
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal(res.connectionId, warm.connectionId, `request ${i} on the first session`);
      if (i % 10 === 0) assert.equal(sha256(body), bigHash, `request ${i} body`);
      else assert.equal(body.toString('utf8'), 'hello from caddy\n', `request ${i} body`);
    });
    const stats = await pool.stats();
    assert.equal(stats.http2Connections, 1);
    assert.equal(stats.dialed, 1);
    await pool.close();
    await leaks.check(pool);
  });

  test('POST bodies reach the server intact: echoed back through {http.request.body}', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const text = `muxpool upload ${randomBytes(8).toString('hex')}`;
    const small = await pool.request(`${caddy.url}/echo`, { ...H2, method: 'POST', body: text });
    assert.equal(small.protocol, 'h2');
    assert.equal(await small.text(), text);

    const payload = randomBytes(MiB);
    const res = await pool.request(`${caddy.url}/echo`, { ...H2, method: 'POST', body: payload });
    const echoed = await res.bytes();
    assert.equal(echoed.length, payload.length);
    assert.equal(sha256(echoed), sha256(payload));

    async function* stream(): AsyncGenerator<string> {
      for (let i = 0; i < 20; i++) yield `chunk ${i};`;
    }
    const streamed = await pool.request(`${caddy.url}/echo`, { ...H2, method: 'POST', body: stream() });
    assert.equal(await streamed.text(), Array.from({ length: 20 }, (_, i) => `chunk ${i};`).join(''));
    assert.equal(streamed.connectionId, small.connectionId);
    await pool.close();
    await leaks.check(pool);
  });
});
