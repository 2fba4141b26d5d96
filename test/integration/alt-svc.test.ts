/**
 * Protocol selection by Alt-Svc (RFC 7838): `Auto` starts on TCP, learns `h3` from the response,
 * prepares an HTTP/3 connection and moves to it; a black-holed UDP path is remembered as broken
 * and retried after its backoff; `Http3` races QUIC against TCP with a head start.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, MemoryOriginStore } from '../../src/index.js';
import { startEmbeddedServer } from '../../src/server/embedded.js';
import { H3Server } from '../../src/server/h3.js';
import { startCaddy } from '../helpers/caddy.js';
import { respondText, startH2Server } from '../helpers/h2.js';
import { recordChannel } from '../helpers/diagnostics.js';
import { leakCheck } from '../helpers/leaks.js';
import { startUdpBlackHole } from '../helpers/udp-proxy.js';
import { generateCertificates } from '../../src/server/certs.js';
import { certs } from '../helpers/certs.js';


/** Polls (bounded: 200 × 10 ms) until `done` holds. */
async function until(done: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await done()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function protocolsOpen(pool: ConnectionPool): Promise<string[]> {
  return (await pool.stats()).connections.map((c) => c.protocol).sort();
}

test('Auto: the first request goes over TCP, Alt-Svc h3 prepares HTTP/3, later requests use it (embedded server and Caddy)', async () => {
  const embedded = await startEmbeddedServer({ certificates: await certs() });
  const caddy = await startCaddy({ body: 'caddy' });
  const leaks = leakCheck();
  for (const [url, ca] of [
    [embedded.httpsUrl, embedded.caCert],
    [caddy.url, caddy.caCert],
  ] as const) {
    const pool = new ConnectionPool({ tls: { ca } });
    const first = await pool.request(`${url}/`);
    assert.equal(first.protocol, 'h2');
    assert.match(String(first.headers['alt-svc']), /h3=":\d+"/);
    await first.text();
    await until(async () => (await protocolsOpen(pool)).includes('h3'), `an HTTP/3 connection to ${url}`);
    const later = await Promise.all(Array.from({ length: 5 }, () => pool.request(`${url}/`).then(async (r) => (await r.text(), r))));
    for (const res of later) assert.equal(res.protocol, 'h3', url);
    assert.deepEqual(await protocolsOpen(pool), ['h2', 'h3']);
    await pool.close();
    await leaks.check(pool);
  }
  await caddy.stop();
  await embedded.close();
});

test('Alt-Svc h3 with UDP black-holed: Auto stays on TCP, marks it broken, and tries HTTP/3 again after the backoff', async () => {
  const leaks = leakCheck();
  const c = await certs();
  let port = 0;
  const server = await startH2Server((stream) => {
    stream.respond({ ':status': 200, 'alt-svc': `h3=":${port}"; ma=60` });
    stream.end('tcp');
  }, { certs: c });
  port = server.port;
  // A UDP socket on the same port that swallows every datagram: the path is black-holed.
  const hole = await startUdpBlackHole(port);

  const pool = new ConnectionPool({ tls: { ca: c.caCert }, quicHandshakeTimeoutMs: 200, h3BrokenBackoffMs: 600, h3RaceDelayMs: 50 });
  const first = await pool.request(`${server.url}/`);
  assert.equal(first.protocol, 'h2');
  await first.text();
  // The background HTTP/3 attempt sends its Initial into the hole and gives up at its deadline.
  await until(() => hole.datagrams > 0, 'the QUIC attempt');
  await until(async () => (await pool.stats()).pendingDials === 0, 'the QUIC attempt to fail');
  const seen = hole.datagrams;
  // Broken: new connections for this origin go straight to TCP, no QUIC packet is sent.
  await pool.invalidate(pool.keyFor(server.url));
  const second = await pool.request(`${server.url}/`);
  assert.equal(second.protocol, 'h2');
  await second.text();
  assert.equal(hole.datagrams, seen, 'no QUIC while the origin is marked broken');
  // After the backoff, Auto races HTTP/3 again (TCP still wins here).
  await sleep(700);
  await pool.invalidate(pool.keyFor(server.url));
  const third = await pool.request(`${server.url}/`);
  assert.equal(third.protocol, 'h2');
  await third.text();
  await until(() => hole.datagrams > seen, 'a new QUIC attempt after the backoff');
  await pool.close();
  hole.close();
  await server.close();
  await leaks.check(pool);
});

test('Http3 races: a black-holed QUIC loses to TCP after its head start; closing the pool aborts the lingering attempt', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await startH2Server((stream) => respondText(stream, 'tcp'), { certs: c });
  const hole = await startUdpBlackHole(server.port);
  // The QUIC attempt would run 5 s; TCP starts after 50 ms and wins.
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, quicHandshakeTimeoutMs: 5_000, h3RaceDelayMs: 50 });
  const res = await pool.request(`${server.url}/`, { version: HttpVersion.Http3 });
  assert.equal(res.protocol, 'h2');
  assert.equal(await res.text(), 'tcp');
  assert.ok(hole.datagrams > 0, 'QUIC was tried first');
  // The QUIC attempt is still running in the background; close() must not leave it behind.
  await pool.close();
  hole.close();
  await server.close();
  await leaks.check(pool);
});

test('an alternative advertised while the background dial to the previous one runs gets its try when that dial fails', async () => {
  const c = await certs();
  // The first alternative swallows every datagram; the second one answers.
  const hole = await startUdpBlackHole(0, '127.0.0.2');
  const live = await H3Server.listen({ cert: c.leafCert, key: c.leafKey, handler: (_req, res) => res.end('live') });
  let header = `h3="127.0.0.2:${hole.port}"`;
  const origin = await startH2Server((stream) => {
    stream.respond({ ':status': 200, 'alt-svc': header });
    stream.end('origin');
  }, { certs: c });
  const leaks = leakCheck();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, quicHandshakeTimeoutMs: 600 });
  assert.equal(await (await pool.request(`${origin.url}/`)).text(), 'origin');
  assert.equal((await pool.stats()).pendingDials, 1, 'the background dial to the silent alternative runs');
  header = `h3=":${live.port}"`;
  assert.equal(await (await pool.request(`${origin.url}/`)).text(), 'origin');
  await until(async () => (await protocolsOpen(pool)).includes('h3'), 'an HTTP/3 connection to the second alternative');
  const res = await pool.request(`${origin.url}/`);
  assert.equal(res.protocol, 'h3');
  assert.equal(await res.text(), 'live');
  await pool.close();
  await leaks.check(pool);
  await origin.close();
  await live.close();
  hole.close();
});

test('HTTP/2 ALTSVC frames (RFC 7838 §4), on the request stream or on stream 0 naming the origin, are learned like the header', async () => {
  const c = await certs();
  const h3 = await H3Server.listen({ cert: c.leafCert, key: c.leafKey, handler: (_req, res) => res.end('h3') });
  const leaks = leakCheck(); // with the HTTP/3 server's socket open
  const value = `h3=":${h3.port}"; ma=60`;
  let port = 0;
  const server = await startH2Server((stream, headers, session) => {
    const path = String(headers[':path']);
    // Frames for another origin, or naming one on a request stream, must be ignored.
    session.altsvc('h3=":1"', 'https://elsewhere.test');
    if (path === '/stream') session.altsvc(value, stream.id as number);
    else if (path === '/origin') session.altsvc(value, `https://localhost:${port}`);
    respondText(stream, 'h2');
  }, { certs: c });
  port = server.port;
  const dialEnds = recordChannel('muxpool:dial:end');
  const dials = dialEnds.events;
  for (const path of ['/stream', '/origin']) {
    const pool = new ConnectionPool({ tls: { ca: c.caCert } });
    const first = await pool.request(`${server.url}${path}`);
    assert.equal(first.protocol, 'h2');
    assert.equal(await first.text(), 'h2');
    await until(async () => (await protocolsOpen(pool)).includes('h3'), `an HTTP/3 connection after the ALTSVC frame on ${path}`);
    const later = await pool.request(`${server.url}/`);
    assert.equal(later.protocol, 'h3');
    assert.equal(await later.text(), 'h3');
    await pool.close();
    await leaks.check(pool);
  }
  // A pool that gets only the frame for another origin never leaves TCP.
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  for (let i = 0; i < 3; i++) {
    const res = await pool.request(`${server.url}/`);
    assert.equal(res.protocol, 'h2');
    await res.text();
  }
  dialEnds.stop();
  assert.deepEqual(dials.map((d) => d['protocol']), ['h2', 'h3', 'h2', 'h3', 'h2'], 'no dial for the foreign origin');
  await pool.close();
  await leaks.check(pool);
  await server.close();
  await h3.close();
});

test('no UDP listener: the port-unreachable answer ends the QUIC attempt at once, Http3 goes to TCP and the origin is marked broken', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await startH2Server((stream) => respondText(stream, 'tcp'), { certs: c });
  // A handshake deadline far beyond the test's patience: only the ICMP answer can end it early.
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, quicHandshakeTimeoutMs: 30_000, h3RaceDelayMs: 5_000 });
  const ends = recordChannel('muxpool:dial:end');
  const res = await pool.request(`${server.url}/`, { version: HttpVersion.Http3 });
  assert.equal(res.protocol, 'h2');
  assert.equal(await res.text(), 'tcp');
  // The broken mark below is set by the QUIC failure: with a 30 s deadline it exists this early
  // only because the ICMP answer ended the attempt (otherwise the next dial would race again).
  await pool.invalidate(pool.keyFor(server.url));
  const fallbacks = recordChannel('muxpool:fallback');
  const again = await pool.request(`${server.url}/`, { version: HttpVersion.Http3 });
  assert.equal(again.protocol, 'h2');
  await again.text();
  fallbacks.stop();
  ends.stop();
  assert.equal(ends.events[0]?.['protocol'], 'h2');
  assert.deepEqual(fallbacks.events.map((f) => f['reason']), ['broken'], 'broken: straight to TCP, no QUIC attempt');
  // Http3Only says why, with the code of a refused TCP connection.
  await assert.rejects(pool.request(`${server.url}/`, { version: HttpVersion.Http3Only }), { code: 'MUXPOOL_ERR_CONNECT_REFUSED' });
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('Alt-Svc: clear, garbage, and an alternative elsewhere without certificate checks against the origin (off, or a custom servername) start no HTTP/3 dial', async () => {
  const leaks = leakCheck();
  const c = await certs();
  let header = 'clear';
  const server = await startH2Server((stream) => {
    stream.respond({ ':status': 200, 'alt-svc': header });
    stream.end('tcp');
  }, { certs: c });
  const dials = recordChannel('muxpool:dial:start');
  // Verified: clear and garbage say nothing usable.
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  for (const value of ['clear', 'h3=garbage', 'h3=":0"', 'h2=":1234"']) {
    header = value;
    const res = await pool.request(`${server.url}/`);
    assert.equal(res.protocol, 'h2');
    await res.text();
    assert.equal((await pool.stats()).pendingDials, 0, `no HTTP/3 dial for ${value}`);
  }
  // Unverified, or verified against another name than the origin's: nothing proves an address
  // elsewhere speaks for the origin (RFC 7838 §2.1).
  const unverified = new ConnectionPool({ tls: { rejectUnauthorized: false } });
  const otherName = new ConnectionPool({ tls: { ca: c.caCert, servername: 'localhost' } });
  for (const other of [unverified, otherName]) {
    for (const value of [`h3=":${server.port + 1}"`, `h3="127.0.0.2:${server.port}"`, `h3="elsewhere.test:${server.port}"`]) {
      header = value;
      const res = await other.request(`${server.url}/`);
      assert.equal(res.protocol, 'h2');
      await res.text();
      assert.equal((await other.stats()).pendingDials, 0, `no HTTP/3 dial for ${value}`);
    }
  }
  dials.stop();
  assert.equal(dials.events.length, 3, 'one TCP dial per pool, nothing else');
  assert.deepEqual(await protocolsOpen(pool), ['h2']);
  assert.deepEqual(await protocolsOpen(unverified), ['h2']);
  await pool.close();
  await unverified.close();
  await otherName.close();
  await server.close();
  await leaks.check(pool);
});

test('Alt-Svc elsewhere (RFC 7838 §2.1): honoured when that server proves it is the origin, with Alt-Used; not when its certificate names another host', async () => {
  const leaks = leakCheck();
  const c = await certs();
  // Same CA, a leaf for another name only: trusted, but not for "localhost".
  const other = await generateCertificates({ names: ['other.test'], ips: [] });
  const seen: { authority: string | undefined; altUsed: unknown }[] = [];
  const alternative = await H3Server.listen({
    host: '127.0.0.2',
    cert: c.leafCert,
    key: c.leafKey,
    handler: (req, res) => {
      seen.push({ authority: req.authority, altUsed: req.headers['alt-used'] });
      res.end('alternative');
    },
  });
  const impostor = await H3Server.listen({
    host: '127.0.0.3',
    cert: other.leafCert,
    key: other.leafKey,
    handler: (_req, res) => res.end('impostor'),
  });
  let header = `h3="127.0.0.2:${alternative.port}"; ma=60`;
  const origin = await startH2Server((stream) => {
    stream.respond({ ':status': 200, 'alt-svc': header });
    stream.end('origin');
  }, { certs: c });
  const store = new MemoryOriginStore();
  const pool = new ConnectionPool({ tls: { ca: [c.caCert, other.caCert] }, originStore: store });
  const first = await pool.request(`${origin.url}/`);
  assert.equal(first.protocol, 'h2');
  assert.equal(await first.text(), 'origin');
  await until(async () => (await protocolsOpen(pool)).includes('h3'), 'an HTTP/3 connection to the alternative');
  const later = await pool.request(`${origin.url}/x`);
  assert.equal(later.protocol, 'h3');
  assert.equal(await later.text(), 'alternative');
  // The request still names the origin; Alt-Used names the alternative (§5).
  assert.deepEqual(seen.at(-1), { authority: `localhost:${origin.port}`, altUsed: `127.0.0.2:${alternative.port}` });
  const h3 = (await pool.stats()).connections.find((conn) => conn.protocol === 'h3');
  assert.equal(h3?.remoteAddress, '127.0.0.2');

  // A second pool sharing the store goes to the alternative at once.
  const second = new ConnectionPool({ tls: { ca: [c.caCert, other.caCert] }, originStore: store });
  const direct = await second.request(`${origin.url}/`);
  assert.equal(direct.protocol, 'h3');
  assert.equal(await direct.text(), 'alternative');
  await second.close();

  // The origin now points at a server whose certificate is not valid for it: the handshake is
  // refused, requests stay on TCP without an error, and that alternative is marked broken.
  header = `h3="127.0.0.3:${impostor.port}"; ma=60`;
  const third = new ConnectionPool({ tls: { ca: [c.caCert, other.caCert] }, quicHandshakeTimeoutMs: 1_000 });
  const dialEnds = recordChannel('muxpool:dial:end');
  const dials = dialEnds.events;
  const res = await third.request(`${origin.url}/`);
  assert.equal(await res.text(), 'origin');
  await until(() => dials.some((d) => d['error'] !== undefined), 'the HTTP/3 dial to the impostor to fail');
  dialEnds.stop();
  const failed = dials.find((d) => d['error'] !== undefined);
  assert.equal((failed?.['error'] as { code?: string } | undefined)?.code, 'MUXPOOL_ERR_TLS_HOSTNAME');
  await until(async () => (await third.stats()).pendingDials === 0, 'the failed dial to settle');
  // Broken: a new connection for the origin goes straight to TCP, no QUIC attempt.
  await third.invalidate(third.keyFor(origin.url));
  const starting = recordChannel('muxpool:dial:start');
  const starts = starting.events;
  for (let i = 0; i < 3; i++) {
    const again = await third.request(`${origin.url}/`);
    assert.equal(again.protocol, 'h2');
    assert.equal(await again.text(), 'origin');
  }
  starting.stop();
  assert.equal(starts.length, 1);
  assert.ok(!(starts[0]?.['protocols'] as string[]).includes('h3'), `dialed ${String(starts[0]?.['protocols'])}`);
  assert.deepEqual(await protocolsOpen(third), ['h2']);
  await third.close();
  await pool.close();
  await origin.close();
  await alternative.close();
  await impostor.close();
  await leaks.check(pool);
});
