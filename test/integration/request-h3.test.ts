/**
 * request() over HTTP/3: our client against our own HTTP/3 server (src/server/h3.ts) on
 * loopback. Caddy interop, loss and bad input have files of their own.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { startEmbeddedServer } from '../../src/server/embedded.js';
import { H3Server, type H3RequestHandler } from '../../src/server/h3.js';
import { rejectsWith } from '../helpers/assert.js';
import { respondText, startH2Server } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';
import { certs, startH3 } from '../helpers/certs.js';


const MiB = 1024 * 1024;
const H3 = { version: HttpVersion.Http3Only } as const;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

test('GET over HTTP/3: one QUIC connection reused, 1 MiB intact, stats report it', async () => {
  const leaks = leakCheck();
  const big = Buffer.alloc(MiB);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const { server, url } = await startH3((req, res) => {
    req.resume();
    if (req.url === '/big') {
      res.setHeader('content-length', big.length);
      res.end(big);
      return;
    }
    res.setHeader('content-type', 'text/plain');
    res.setHeader('x-seen-authority', req.authority ?? '');
    res.end(`${req.method} ${req.url}`);
  });
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert } });
  const a = await pool.request(`${url}/hello?x=1`, H3);
  assert.equal(a.protocol, 'h3');
  assert.equal(a.status, 200);
  assert.equal(a.headers['x-seen-authority'], `localhost:${server.port}`);
  assert.equal(await a.text(), 'GET /hello?x=1');
  assert.equal(a.reused, false);
  const b = await pool.request(`${url}/big`, H3);
  assert.equal(b.connectionId, a.connectionId);
  assert.equal(b.reused, true);
  const body = await b.bytes();
  assert.equal(body.byteLength, MiB);
  assert.equal(sha256(body), sha256(big));
  const stats = await pool.stats();
  assert.equal(stats.http3Connections, 1);
  const snapshot = stats.connections.find((c) => c.id === a.connectionId);
  assert.equal(snapshot?.protocol, 'h3');
  assert.equal(snapshot?.requests, 2);
  assert.ok((snapshot?.maxStreams ?? 0) >= 1);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('bodies stream both ways: 8 MiB upload of unknown length echoed back, read slowly', async () => {
  const leaks = leakCheck();
  const { server, url } = await startH3((req, res) => {
    res.setHeader('content-type', 'application/octet-stream');
    req.pipe(res);
  });
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert } });
  const chunk = Buffer.alloc(64 * 1024, 7);
  const total = 8 * MiB;
  let produced = 0;
  const upload = new Readable({
    read() {
      if (produced >= total) {
        this.push(null);
        return;
      }
      produced += chunk.length;
      this.push(chunk);
    },
  });
  const res = await pool.request(`${url}/echo`, { ...H3, method: 'POST', body: upload });
  assert.equal(res.status, 200);
  let received = 0;
  let reads = 0;
  // A slow reader: the response pauses the QUIC stream, the server's pipe pauses the upload.
  for await (const part of res.body) {
    received += (part as Buffer).length;
    if (++reads % 64 === 0) await sleep(1);
  }
  assert.equal(received, total);
  assert.equal(produced, total);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('100 concurrent requests ride one connection; a server allowing 2 streams gets at most 2 at a time', async () => {
  const leaks = leakCheck();
  let open = 0;
  let peak = 0;
  const handler: H3RequestHandler = (req, res) => {
    req.resume();
    open++;
    peak = Math.max(peak, open);
    setTimeout(() => {
      open--;
      res.end(String(req.url));
    }, 5);
  };
  const wide = await startH3(handler);
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert }, maxPerHost: 1 });
  const all = await Promise.all(Array.from({ length: 100 }, (_, i) => pool.request(`${wide.url}/${i}`, H3).then(async (r) => [r.connectionId, await r.text()] as const)));
  assert.equal(new Set(all.map(([id]) => id)).size, 1);
  assert.deepEqual(
    all.map(([, text]) => text),
    Array.from({ length: 100 }, (_, i) => `/${i}`),
  );
  assert.ok(peak > 2, `expected real concurrency, peak was ${peak}`);
  await wide.server.close();

  peak = 0;
  const narrow = await startH3(handler, { maxConcurrentStreams: 2 });
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => pool.request(`${narrow.url}/${i}`, { ...H3, acquireTimeoutMs: 10_000 }).then((r) => r.text())));
  assert.equal(results.length, 10);
  assert.ok(peak <= 2, `the peer allows 2 streams, but ${peak} were open at once`);
  const stats = await pool.stats();
  const narrowConnections = stats.connections.filter((c) => c.origin.endsWith(`:${narrow.server.port}`));
  assert.equal(narrowConnections.length, 1);
  await pool.close();
  await narrow.server.close();
  await leaks.check(pool);
});

test('abort mid-response resets the stream and frees the slot at once; the connection carries on', async () => {
  const leaks = leakCheck();
  let resets = 0;
  const { server, url } = await startH3((req, res) => {
    req.resume();
    if (req.url === '/endless') {
      res.on('error', () => resets++);
      res.on('close', () => {
        if (!res.writableFinished) resets++;
      });
      const timer = setInterval(() => {
        if (res.destroyed) {
          clearInterval(timer);
          return;
        }
        res.write(Buffer.alloc(1024, 1));
      }, 2);
      return;
    }
    res.end('ok');
  });
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert }, maxStreams: 1 });
  const controller = new AbortController();
  const res = await pool.request(`${url}/endless`, { ...H3, signal: controller.signal });
  const reader = res.body[Symbol.asyncIterator]();
  await reader.next();
  controller.abort();
  await assert.rejects(reader.next());
  // maxStreams 1: the next request can only start if the aborted stream's slot came back.
  const next = await pool.request(`${url}/after`, { ...H3, acquireTimeoutMs: 2_000 });
  assert.equal(await next.text(), 'ok');
  assert.equal(next.connectionId, res.connectionId);
  for (let i = 0; i < 100 && resets === 0; i++) await sleep(10);
  assert.ok(resets > 0, 'the server saw the stream reset');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('resumption: a new connection to the same origin resumes the QUIC session', async () => {
  const leaks = leakCheck();
  const { server, url } = await startH3((req, res) => {
    req.resume();
    res.end('ok');
  });
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert } });
  const first = await pool.request(`${url}/`, H3);
  await first.text();
  // The ticket arrives just after the handshake, in a packet of its own: give it a few round
  // trips on the same connection, then retire the connection.
  for (let i = 0; i < 3; i++) {
    await sleep(10);
    await (await pool.request(`${url}/`, H3)).text();
  }
  await pool.invalidate(pool.keyFor(url));
  const second = await pool.request(`${url}/`, H3);
  await second.text();
  assert.notEqual(second.connectionId, first.connectionId);
  const snapshot = (await pool.stats()).connections.find((c) => c.id === second.connectionId);
  assert.equal(snapshot?.resumed, true);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('Http3 uses HTTP/3 where it answers and falls back to TCP where nothing listens on UDP, remembering it', async () => {
  const leaks = leakCheck();
  const embedded = await startEmbeddedServer({ certificates: await certs() });
  assert.equal(embedded.http3, true);
  const tcpOnly = await startH2Server((stream) => respondText(stream, 'tcp only'), { certs: await certs() });
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert }, quicHandshakeTimeoutMs: 300 });
  const h3 = await pool.request(`${embedded.httpsUrl}/`, { version: HttpVersion.Http3 });
  assert.equal(h3.protocol, 'h3');
  assert.match(await h3.text(), /HTTP\/3/);
  const fallback = await pool.request(`${tcpOnly.url}/`, { version: HttpVersion.Http3 });
  assert.equal(fallback.protocol, 'h2');
  assert.equal(await fallback.text(), 'tcp only');
  // Remembered: the next new connection for that origin goes straight to TCP.
  await pool.invalidate(pool.keyFor(tcpOnly.url));
  const again = await pool.request(`${tcpOnly.url}/`, { version: HttpVersion.Http3 });
  assert.equal(again.protocol, 'h2');
  await again.text();
  assert.equal(tcpOnly.sessionCount, 2);
  // Http3Only has no fallback: it fails typed (the port-unreachable answer, as a refused TCP
  // connection would; a silent path fails at its deadline, see h3-loss).
  const strict = new ConnectionPool({ tls: { ca: (await certs()).caCert }, connectTimeoutMs: 300 });
  await rejectsWith(strict.request(`${tcpOnly.url}/`, H3), 'MUXPOOL_ERR_CONNECT_REFUSED');
  await strict.close();
  await pool.close();
  await tcpOnly.close();
  await embedded.close();
  await leaks.check(pool);
});

test('0-RTT is opt-in and carries only replay-safe requests; a POST on a 0-RTT connection waits for the handshake', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const seen: Array<[string, string, boolean]> = [];
  const server = await H3Server.listen({
    cert: c.leafCert,
    key: c.leafKey,
    earlyData: true,
    handler: (req, res) => {
      req.resume();
      seen.push([req.method, req.url, req.earlyData]);
      res.end('ok');
    },
  });
  const url = `https://localhost:${server.port}`;
  const warmTicket = async (pool: ConnectionPool): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      await sleep(10);
      await (await pool.request(`${url}/warm`, H3)).text();
    }
    await pool.invalidate(pool.keyFor(url));
  };

  const optedIn = new ConnectionPool({ tls: { ca: c.caCert }, earlyData: true });
  await warmTicket(optedIn);
  const [get, post] = await Promise.all([
    optedIn.request(`${url}/early-get`, H3),
    optedIn.request(`${url}/early-post`, { ...H3, method: 'POST', body: 'not replay-safe' }),
  ]);
  await Promise.all([get.text(), post.text()]);
  assert.equal(get.connectionId, post.connectionId);
  assert.deepEqual(
    seen.filter(([, path]) => path.startsWith('/early')).sort(),
    [
      ['GET', '/early-get', true],
      ['POST', '/early-post', false],
    ],
  );
  await optedIn.close();

  // Without the option a resumed connection still waits for its handshake.
  seen.length = 0;
  const cautious = new ConnectionPool({ tls: { ca: c.caCert } });
  await warmTicket(cautious);
  await (await cautious.request(`${url}/late-get`, H3)).text();
  assert.deepEqual(seen.find(([, path]) => path === '/late-get'), ['GET', '/late-get', false]);
  await cautious.close();
  await server.close();
  await leaks.check();
});

test('read timeout over HTTP/3: a stalled stream fails typed after readTimeoutMs; the connection serves on', async () => {
  const leaks = leakCheck();
  const { server, url } = await startH3((req, res) => {
    req.resume();
    if (req.url === '/stall') {
      res.write('first'); // and then nothing
      return;
    }
    res.end('ok');
  });
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert }, readTimeoutMs: 200 });
  const stalled = await pool.request(`${url}/stall`, H3);
  const err = await rejectsWith(stalled.text(), 'MUXPOOL_ERR_READ_TIMEOUT');
  assert.equal(err.maybeProcessed, true);
  const after = await pool.request(`${url}/after`, H3);
  assert.equal(await after.text(), 'ok');
  assert.equal(after.connectionId, stalled.connectionId);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});
