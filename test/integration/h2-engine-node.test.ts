/**
 * Our HTTP/2 engine against node:http2 servers (TLS and h2c) and our embedded server: 64 MiB both
 * ways, 1 000 streams on one connection, GOAWAY on a server restart, and ordinary traffic with
 * cancellations mixed in (also against nghttpd and Caddy).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { BIG, BIG_SHA, MiB, download, sha256, soak, streamedBig, thousandStreams } from '../helpers/h2-interop.js';
import { leakCheck } from '../helpers/leaks.js';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateCertificates } from '../../src/server/certs.js';
import { startEmbeddedServer } from '../../src/server/embedded.js';
import { startH2Server } from '../helpers/h2.js';
import { startNghttpd } from '../helpers/nghttpd.js';
import { startCaddyFixture } from '../helpers/caddy.js';

describe('node:http2', () => {
  for (const tls of [true, false]) {
    test(`${tls ? 'TLS' : 'h2c'}: 64 MiB both ways, 1 000 streams on one connection`, async () => {
      const leaks = leakCheck();
      const certs = tls ? await generateCertificates({ names: ['localhost'] }) : undefined;
      const server = await startH2Server(
        (stream, headers) => {
          if (headers[':method'] === 'POST') {
            const hash = createHash('sha256');
            let length = 0;
            stream.on('data', (chunk: Buffer) => {
              hash.update(chunk);
              length += chunk.length;
            });
            stream.on('end', () => {
              stream.respond({ ':status': 200 });
              stream.end(`${length} ${hash.digest('hex')}`);
            });
            return;
          }
          stream.respond({ ':status': 200 });
          stream.end(headers[':path'] === '/big' ? BIG : String(headers[':path']));
        },
        { ...(certs !== undefined ? { certs } : {}) },
      );
      const pool = new ConnectionPool({ tls: { ca: certs?.caCert }, maxPerHost: 1, maxWaiters: 2000 });
      const down = await download(pool, `${server.url}/big`);
      assert.equal(sha256(down.bytes), BIG_SHA);
      const up = await pool.request(`${server.url}/up`, { version: HttpVersion.Http2, method: 'POST', body: streamedBig() });
      assert.equal(await up.text(), `${BIG.length} ${BIG_SHA}`);
      await thousandStreams(pool, (i) => `${server.url}/item/${i}`, (body, i) => assert.equal(body, `/item/${i}`));
      assert.equal(server.sessionCount, 1);
      await pool.close();
      await server.close();
      await leaks.check(pool);
    });
  }

  test('GOAWAY on restart: the request in flight finishes, the next one goes to the new server on a new connection', async () => {
    const leaks = leakCheck();
    let generation = 1;
    const handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
      const answer = `generation ${generation} ${String(headers[':path'])}`;
      const delay = headers[':path'] === '/slow' ? 200 : 0;
      setTimeout(() => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200 });
        stream.end(answer);
      }, delay);
    };
    const first = await startH2Server((stream, headers) => handler(stream, headers));
    const port = first.port;
    const pool = new ConnectionPool();
    const a = await pool.request(`${first.url}/a`, { version: HttpVersion.Http2 });
    assert.equal(await a.text(), 'generation 1 /a');
    const slow = pool.request(`${first.url}/slow`, { version: HttpVersion.Http2 });
    await sleep(50);
    // Restart: graceful GOAWAY on every session (node sends GOAWAY(NO_ERROR)), stop listening.
    for (const session of first.sessions) session.close();
    const closed = new Promise<void>((resolve) => first.server.close(() => resolve()));
    const slowRes = await slow;
    assert.equal(await slowRes.text(), 'generation 1 /slow');
    await closed;
    generation = 2;
    const second = http2.createServer();
    const sessions = new Set<http2.ServerHttp2Session>();
    second.on('session', (s: http2.ServerHttp2Session) => sessions.add(s));
    second.on('stream', handler);
    second.listen(port, '127.0.0.1');
    await once(second, 'listening');
    const b = await pool.request(`${first.url}/b`, { version: HttpVersion.Http2 });
    assert.equal(await b.text(), 'generation 2 /b');
    assert.notEqual(b.connectionId, a.connectionId);
    assert.equal(b.reused, false);
    await pool.close();
    for (const s of sessions) s.destroy();
    await new Promise<void>((resolve) => second.close(() => resolve()));
    await leaks.check(pool);
  });
});

describe('soak with cancellations', () => {
  test('node:http2: 600 requests, 1 ms deadlines and aborts mid-body mixed in, no GOAWAY, one connection', async () => {
    const leaks = leakCheck();
    const certs = await generateCertificates({ names: ['localhost'] });
    const big = randomBytes(MiB);
    const server = await startH2Server(
      (stream, headers) => {
        stream.respond({ ':status': 200 });
        stream.end(headers[':path'] === '/big' ? big : 'small');
      },
      { certs },
    );
    const pool = new ConnectionPool({ tls: { ca: certs.caCert }, maxPerHost: 1 });
    await soak(pool, server.url, '/big', '/small', (body) => assert.equal(body, 'small'));
    assert.equal(server.sessionCount, 1);
    await pool.close();
    await server.close();
    await leaks.check(pool);
  });

  test('our embedded server (node:http2 compat API): the same soak', async () => {
    const leaks = leakCheck();
    const embedded = await startEmbeddedServer({ certificates: await generateCertificates({ names: ['localhost'] }) });
    const pool = new ConnectionPool({ tls: { ca: embedded.caCert }, maxPerHost: 1 });
    await soak(pool, embedded.httpsUrl, `/bytes/${MiB}`, '/', (body) => assert.match(body, /embedded server over HTTP\/2/));
    await pool.close();
    await embedded.close();
    await leaks.check(pool);
  });

  test('nghttpd: the same soak', async () => {
    const leaks = leakCheck();
    const server = await startNghttpd({});
    const pool = new ConnectionPool({ tls: { ca: server.caCert }, maxPerHost: 1 });
    await soak(pool, server.url, '/big.bin', '/hello.txt', (body) => assert.equal(body, server.files.hello));
    await pool.close();
    await server.stop();
    await leaks.check(pool);
  });

  test("Caddy (Go's HTTP/2 server): the same soak", async () => {
    const leaks = leakCheck();
    const caddy = await startCaddyFixture(randomBytes(MiB));
    try {
      const pool = new ConnectionPool({ tls: { ca: caddy.caCert }, maxPerHost: 1 });
      await soak(pool, caddy.url, '/big.bin', '/hello.txt', (body) => assert.equal(body, 'hello from caddy\n'));
      await pool.close();
      await leaks.check(pool);
    } finally {
      await caddy.stop();
    }
  });
});
