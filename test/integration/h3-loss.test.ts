/**
 * HTTP/3 over a lossy path: our HTTP/3 server behind an in-process UDP proxy that drops, delays,
 * reorders and duplicates datagrams (seeded, so a run can be replayed), or black-holes them.
 * QUIC's loss recovery must carry the handshake and a large body through; a dead path must
 * fail `Http3Only` at its deadline, send `Http3` to TCP, and be remembered for the backoff.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, type Resolver } from '../../src/index.js';
import { startEmbeddedServer, type EmbeddedServer } from '../../src/server/embedded.js';
import { H3Server, type H3RequestHandler } from '../../src/server/h3.js';
import { type GeneratedCertificates, generateCertificates } from '../../src/server/certs.js';
import { rejectsWith } from '../helpers/assert.js';
import { leakCheck } from '../helpers/leaks.js';
import { type UdpProxy, type UdpProxyOptions, startUdpProxy } from '../helpers/udp-proxy.js';

let certsPromise: Promise<GeneratedCertificates> | undefined;
function certs(): Promise<GeneratedCertificates> {
  certsPromise ??= generateCertificates({ caName: 'muxpool h3-loss test CA' });
  return certsPromise;
}

/** `localhost` pinned to IPv4 loopback, where the proxy listens. */
const loopback: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];

const MiB = 1024 * 1024;

/**
 * Closes everything a test opened even when an assertion fails half-way, so a failure cannot
 * leave sockets that keep the run alive. On success it all is closed already: these are no-ops.
 */
function closeAfter(t: TestContext, ...closers: Array<() => Promise<unknown>>): void {
  t.after(async () => {
    await Promise.allSettled(closers.map((close) => close()));
  });
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Our HTTP/3 server with `handler`, and the proxy in front of it. */
async function serverBehindProxy(
  handler: H3RequestHandler,
  proxyOptions: Omit<UdpProxyOptions, 'target'>,
): Promise<{ server: H3Server; proxy: UdpProxy; url: string }> {
  const c = await certs();
  const server = await H3Server.listen({ cert: c.leafCert, key: c.leafKey, handler });
  const proxy = await startUdpProxy({ ...proxyOptions, target: { host: server.host, port: server.port } });
  return { server, proxy, url: `https://localhost:${proxy.port}` };
}

test('30% loss both ways: the QUIC handshake completes and a GET succeeds over HTTP/3', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  const { server, proxy, url } = await serverBehindProxy(
    (req, res) => {
      req.resume();
      res.setHeader('content-type', 'text/plain');
      res.end(`hello over a lossy path to ${req.url}`);
    },
    { seed: 7, lossRate: 0.3 },
  );
  // QUIC's probe timeouts (with exponential backoff) recover lost handshake flights; give the
  // handshake room to take several of them.
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, resolver: loopback, connectTimeoutMs: 20_000 });
  closeAfter(t, () => pool.destroy(), () => server.close(), () => proxy.close());
  const res = await pool.request(`${url}/lossy`, { version: HttpVersion.Http3Only, timeoutMs: 25_000 });
  assert.equal(res.status, 200);
  assert.equal(res.protocol, 'h3');
  assert.equal(await res.text(), 'hello over a lossy path to /lossy');
  assert.ok(proxy.stats.dropped > 0, `the proxy dropped nothing: ${JSON.stringify(proxy.stats)}`);
  assert.equal(proxy.clients, 1, 'one QUIC connection, one client address');
  await pool.close();
  await server.close();
  await proxy.close();
  await leaks.check(pool);
});

test('the packet that ends a stream is lost after every byte before it was acknowledged: the end still arrives, both ways', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  // Set once the proxy exists: the handler loses the next packet towards the client.
  const holder: { proxy?: UdpProxy } = {};
  const { server, proxy, url } = await serverBehindProxy(
    async (req, res) => {
      let received = 0;
      for await (const part of req) received += (part as Buffer).length;
      res.write(`got ${received}`);
      // Long enough for the client to acknowledge what was written; then the packet carrying
      // the end of the response is lost.
      await sleep(150);
      holder.proxy?.dropNext('toClient');
      res.end();
    },
    {},
  );
  holder.proxy = proxy;
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, resolver: loopback, readTimeoutMs: 5_000 });
  closeAfter(t, () => pool.destroy(), () => server.close(), () => proxy.close());
  // The request body's last chunk is acknowledged, then the packet ending the request is lost.
  async function* upload(): AsyncGenerator<Uint8Array> {
    yield Buffer.alloc(10_000, 1);
    await sleep(150);
    proxy.dropNext('toTarget');
  }
  const res = await pool.request(`${url}/`, { version: HttpVersion.Http3Only, method: 'POST', body: upload() });
  assert.equal(await res.text(), 'got 10000');
  assert.equal(proxy.stats.dropped, 2, 'both stream ends were lost once');
  await pool.close();
  await server.close();
  await proxy.close();
  await leaks.check(pool);
});

test('2% loss with delay, jitter, reordering and duplicates: a 1 MiB response arrives intact', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  const body = randomBytes(MiB);
  const { server, proxy, url } = await serverBehindProxy(
    (req, res) => {
      req.resume();
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('content-length', body.length);
      res.end(body);
    },
    { seed: 42, lossRate: 0.02, delayMs: 1, jitterMs: 2, reorderRate: 0.02, duplicateRate: 0.02 },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, resolver: loopback, connectTimeoutMs: 20_000 });
  closeAfter(t, () => pool.destroy(), () => server.close(), () => proxy.close());
  const res = await pool.request(`${url}/big`, { version: HttpVersion.Http3Only, timeoutMs: 25_000 });
  assert.equal(res.status, 200);
  assert.equal(res.protocol, 'h3');
  assert.equal(res.headers['content-length'], String(MiB));
  const received = await res.bytes();
  assert.equal(received.length, body.length);
  assert.equal(sha256(received), sha256(body));
  // The path really was faulty, in every way asked for.
  const { dropped, reordered, duplicated } = proxy.stats;
  assert.ok(dropped > 0 && reordered > 0 && duplicated > 0, `faults: ${JSON.stringify(proxy.stats)}`);
  await pool.close();
  await server.close();
  await proxy.close();
  await leaks.check(pool);
});

/**
 * The embedded server speaks HTTP/1.1 and HTTP/2 over TLS on TCP port P; HTTP/3 for the same
 * origin must be on UDP port P. The embedded server is started without HTTP/3, the proxy binds
 * UDP port P and forwards to an HTTP/3 server of our own. TCP and UDP ports are separate
 * spaces, so UDP P is almost always free; if not, another TCP port is tried (bounded).
 */
async function tcpOriginWithProxiedH3(
  c: GeneratedCertificates,
  h3: H3Server,
): Promise<{ embedded: EmbeddedServer; proxy: UdpProxy; url: string }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const embedded = await startEmbeddedServer({ certificates: c, http3: false });
    const port = Number(new URL(embedded.httpsUrl).port);
    try {
      const proxy = await startUdpProxy({ port, target: { host: h3.host, port: h3.port }, blackhole: true });
      return { embedded, proxy, url: embedded.httpsUrl };
    } catch (err) {
      lastError = err;
      await embedded.close();
    }
  }
  throw new Error('no TCP port whose UDP twin was free', { cause: lastError });
}

test('a black-holed UDP path: Http3Only fails at its deadline and marks the origin; Http3 then goes to TCP at once, and tries HTTP/3 again after the backoff', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  const h3 = await H3Server.listen({
    cert: c.leafCert,
    key: c.leafKey,
    handler: (req, res) => {
      req.resume();
      res.end('hello over HTTP/3');
    },
  });
  closeAfter(t, () => h3.close());
  const { embedded, proxy, url } = await tcpOriginWithProxiedH3(c, h3);
  const connectTimeoutMs = 1_000;
  // Long enough that the second request surely starts inside it (it follows the first at
  // once), short enough to wait out.
  const h3BrokenBackoffMs = 1_000;
  const pool = new ConnectionPool({
    tls: { ca: c.caCert },
    resolver: loopback,
    connectTimeoutMs,
    quicHandshakeTimeoutMs: 500,
    // A head start longer than the QUIC deadline: TCP starts only once QUIC failed, so the
    // broken mark is set before the fallback answers (the race itself is tested in alt-svc).
    h3RaceDelayMs: 2_000,
    h3BrokenBackoffMs,
  });
  closeAfter(t, () => pool.destroy(), () => embedded.close(), () => proxy.close());
  const key = pool.keyFor(url);

  // Http3Only has no fallback: the handshake gets connectTimeoutMs and fails at that deadline.
  const started = performance.now();
  const err = await rejectsWith(pool.request(`${url}/`, { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT');
  assert.ok(performance.now() - started >= connectTimeoutMs - 20, 'it gave up before its deadline');
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${proxy.port}`));
  // The failed connection's last packet (its CONNECTION_CLOSE) may still be on its way.
  await sleep(100);
  const seenByHttp3Only = proxy.stats.receivedFromClients;
  assert.ok(seenByHttp3Only > 0, 'the QUIC client sent nothing');
  assert.equal(proxy.stats.forwarded, 0);

  // That failure is remembered for the origin: Http3 goes straight to TCP, with no datagram
  // (the race against a black hole, QUIC first, is in alt-svc.test.ts).
  const fallback = await pool.request(`${url}/`, { version: HttpVersion.Http3 });
  assert.equal(fallback.protocol, 'h2');
  assert.match(await fallback.text(), /over HTTP\/2/);
  const afterFallback = proxy.stats.receivedFromClients;
  assert.equal(afterFallback, seenByHttp3Only, 'HTTP/3 was tried again inside the backoff');
  const fallbackDoneAt = performance.now();

  // Still inside the backoff, a new connection goes to TCP too.
  await pool.invalidate(key);
  const direct = await pool.request(`${url}/`, { version: HttpVersion.Http3 });
  assert.equal(direct.protocol, 'h2');
  await direct.text();
  assert.notEqual(direct.connectionId, fallback.connectionId, 'the second request did not dial');
  assert.equal(proxy.stats.receivedFromClients, afterFallback, 'HTTP/3 was tried again inside the backoff');

  // The path heals; once the backoff has passed (the mark was set before the fallback
  // resolved), Http3 tries QUIC again and gets it.
  proxy.setBlackhole(false);
  const waitMs = fallbackDoneAt + h3BrokenBackoffMs + 50 - performance.now();
  if (waitMs > 0) await sleep(waitMs);
  await pool.invalidate(key);
  const again = await pool.request(`${url}/`, { version: HttpVersion.Http3 });
  assert.ok(proxy.stats.receivedFromClients > afterFallback, 'HTTP/3 was not tried after the backoff');
  assert.equal(again.protocol, 'h3');
  assert.equal(await again.text(), 'hello over HTTP/3');

  await pool.close();
  await embedded.close();
  await h3.close();
  await proxy.close();
  await leaks.check(pool);
});

test('a QUIC handshake that timed out says the request was never processed (maybeProcessed false), as a TCP connect timeout does', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  const { server, proxy, url } = await serverBehindProxy((_req, res) => res.end('unreachable'), { blackhole: true });
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, resolver: loopback, connectTimeoutMs: 300 });
  closeAfter(t, () => pool.destroy(), () => server.close(), () => proxy.close());
  const err = await rejectsWith(pool.request(`${url}/`, { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT');
  assert.equal(err.attempts, 1);
  await pool.close();
  await server.close();
  await proxy.close();
  await leaks.check(pool);
  // Checked last, so the rest of the story runs whatever this says.
  assert.equal(err.maybeProcessed, false, 'a dial that never completed cannot have processed the request');
});
