/**
 * Our HTTP/2 engine against servers nobody here wrote (nghttpd, h2o) and `node:http2`, over TLS
 * (ALPN h2) and cleartext (prior knowledge): 64 MiB down and up byte for byte, 1 000 streams on
 * one connection, and GOAWAY when a server restarts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { startEmbeddedServer } from '../../src/server/embedded.js';
import { rejectsWith } from '../helpers/assert.js';
import { recordChannel } from '../helpers/diagnostics.js';
import { startH2Server } from '../helpers/h2.js';
import { type H2oServer, startH2o } from '../helpers/h2o.js';
import { leakCheck } from '../helpers/leaks.js';
import { type NghttpdServer, startNghttpd } from '../helpers/nghttpd.js';

const MiB = 1024 * 1024;
const BIG = randomBytes(64 * MiB);
const BIG_SHA = createHash('sha256').update(BIG).digest('hex');

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** 64 MiB in chunks of odd sizes, with no declared length. */
function streamedBig(): AsyncIterable<Uint8Array> {
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < BIG.length; ) {
        const size = Math.min(BIG.length - offset, 100_003);
        yield BIG.subarray(offset, offset + size);
        offset += size;
      }
    })(),
  );
}

async function download(pool: ConnectionPool, url: string): Promise<{ bytes: Buffer; protocol: string; connectionId: string }> {
  const res = await pool.request(url, { version: HttpVersion.Http2 });
  assert.equal(res.status, 200);
  return { bytes: Buffer.from(await res.arrayBuffer()), protocol: res.protocol, connectionId: res.connectionId };
}

async function thousandStreams(pool: ConnectionPool, url: (i: number) => string, check: (body: string, i: number) => void): Promise<void> {
  const ids = new Set<string>();
  await Promise.all(
    Array.from({ length: 1000 }, async (_, i) => {
      const res = await pool.request(url(i), { version: HttpVersion.Http2 });
      assert.equal(res.status, 200);
      check(await res.text(), i);
      ids.add(res.connectionId);
    }),
  );
  assert.equal(ids.size, 1, `1 000 requests used ${ids.size} connections`);
}

/** An HTTP/1.1 backend that answers every upload with `<length> <sha256>`. */
async function startHashBackend(): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
    });
    // No keep-alive towards h2o: its connection to us must not outlive the test (leak check).
    req.on('end', () => res.writeHead(200, { connection: 'close' }).end(`${length} ${hash.digest('hex')}`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

for (const tls of [true, false]) {
  describe(`nghttpd (${tls ? 'TLS' : 'h2c'})`, () => {
    let server: NghttpdServer;
    before(async () => {
      server = await startNghttpd({ tls, echoUpload: true, files: { 'big64.bin': BIG } });
    });
    after(() => server.stop());

    test('64 MiB download and 64 MiB upload (echoed) arrive byte for byte', async () => {
      const leaks = leakCheck();
      const pool = new ConnectionPool({ tls: { ca: server.caCert } });
      const down = await download(pool, `${server.url}/big64.bin`);
      assert.equal(down.protocol, 'h2');
      assert.equal(down.bytes.length, BIG.length);
      assert.equal(sha256(down.bytes), BIG_SHA);
      const up = await pool.request(`${server.url}/echo`, { version: HttpVersion.Http2, method: 'POST', body: BIG });
      const echoed = Buffer.from(await up.arrayBuffer());
      assert.equal(echoed.length, BIG.length);
      assert.equal(sha256(echoed), BIG_SHA);
      const streamed = await pool.request(`${server.url}/echo`, { version: HttpVersion.Http2, method: 'PUT', body: streamedBig() });
      assert.equal(sha256(Buffer.from(await streamed.arrayBuffer())), BIG_SHA);
      await pool.close();
      await leaks.check(pool);
    });

    test('1 000 streams on one connection (the server allows 100 at once)', async () => {
      const leaks = leakCheck();
      const pool = new ConnectionPool({ tls: { ca: server.caCert }, maxPerHost: 1, maxWaiters: 2000 });
      await thousandStreams(pool, () => `${server.url}/hello.txt`, (body) => assert.equal(body, server.files.hello));
      await pool.close();
      await leaks.check(pool);
    });
  });
}

describe('h2o', () => {
  let server: H2oServer;
  let backend: { server: http.Server; port: number };
  before(async () => {
    backend = await startHashBackend();
    server = await startH2o({ files: { 'big64.bin': BIG, 'hello.txt': new Uint8Array(Buffer.from('hello from h2o\n')) }, backendPort: backend.port });
  });
  after(async () => {
    await server.stop();
    backend.server.closeAllConnections();
    await new Promise<void>((resolve) => backend.server.close(() => resolve()));
  });

  for (const tls of [true, false]) {
    test(`${tls ? 'TLS' : 'h2c'}: 64 MiB download, 64 MiB upload (hashed behind h2o), 1 000 streams on one connection`, async () => {
      const leaks = leakCheck();
      const base = tls ? server.tlsUrl : server.h2cUrl;
      const pool = new ConnectionPool({ tls: { ca: server.caCert }, maxPerHost: 1, maxWaiters: 2000 });
      const down = await download(pool, `${base}/big64.bin`);
      assert.equal(down.protocol, 'h2');
      assert.equal(sha256(down.bytes), BIG_SHA);
      const up = await pool.request(`${base}/up/`, { version: HttpVersion.Http2, method: 'POST', body: BIG });
      assert.equal(await up.text(), `${BIG.length} ${BIG_SHA}`);
      const streamed = await pool.request(`${base}/up/`, { version: HttpVersion.Http2, method: 'POST', body: streamedBig() });
      assert.equal(await streamed.text(), `${BIG.length} ${BIG_SHA}`);
      await thousandStreams(pool, () => `${base}/hello.txt`, (body) => assert.equal(body, 'hello from h2o\n'));
      await pool.close();
      await leaks.check(pool);
    });
  }
});

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

/**
 * Ordinary traffic with cancellations mixed in (1 ms deadlines on 1 MiB responses, aborts
 * mid-body): every request settles as asked, and the server never takes us for an attacker
 * (no GOAWAY, no ENHANCE_YOUR_CALM, one connection throughout).
 */
async function soak(pool: ConnectionPool, base: string, bigPath: string, smallPath: string, check: (body: string) => void): Promise<void> {
  const goaways = recordChannel('muxpool:goaway');
  const outcomes = { ok: 0, timedOut: 0, aborted: 0 };
  const ids = new Set<string>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < 600) {
      const i = next++;
      if (i % 50 === 7) {
        await rejectsWith(
          pool.request(`${base}${bigPath}`, { version: HttpVersion.Http2, timeoutMs: 1 }).then((res) => res.arrayBuffer()),
          'MUXPOOL_ERR_REQUEST_TIMEOUT',
        );
        outcomes.timedOut++;
      } else if (i % 37 === 5) {
        const controller = new AbortController();
        const res = await pool.request(`${base}${bigPath}`, { version: HttpVersion.Http2, signal: controller.signal });
        ids.add(res.connectionId);
        const chunks = res.body[Symbol.asyncIterator]();
        await chunks.next();
        controller.abort();
        await rejectsWith(
          (async () => {
            for (let r = await chunks.next(); r.done !== true; r = await chunks.next());
          })(),
          'MUXPOOL_ERR_ABORTED',
        );
        outcomes.aborted++;
      } else {
        const res = await pool.request(`${base}${smallPath}`, { version: HttpVersion.Http2 });
        ids.add(res.connectionId);
        check(await res.text());
        outcomes.ok++;
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  goaways.stop();
  assert.equal(outcomes.ok + outcomes.timedOut + outcomes.aborted, 600);
  assert.ok(outcomes.timedOut >= 10 && outcomes.aborted >= 10, JSON.stringify(outcomes));
  assert.deepEqual(goaways.events, [], 'the server sent GOAWAY');
  assert.equal(ids.size, 1, `served by ${ids.size} connections`);
}

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
});
