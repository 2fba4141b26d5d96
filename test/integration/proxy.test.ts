/**
 * Proxies against real ones on loopback: tinyproxy (CONNECT tunnels, absolute-form forwarding,
 * Basic auth), dante (SOCKS5 with and without username/password), and our own scripted proxy
 * for what real proxies do when things go wrong (407, refusals, closing mid-head, garbage, SOCKS
 * reply codes). The origins record the headers they receive, and our proxy records every
 * CONNECT head, so credentials crossing to the wrong side would show.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type net from 'node:net';
import { test } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import { ConnectionPool, HttpVersion, MuxpoolError, PoolKey } from '../../src/index.js';
import type { GeneratedCertificates } from '../../src/server/certs.js';
import { startEmbeddedServer } from '../../src/server/embedded.js';
import { rejectsWith } from '../helpers/assert.js';
import { certs } from '../helpers/certs.js';
import { leakCheck } from '../helpers/leaks.js';
import { freeTcpPort } from '../helpers/nghttpd.js';
import { type FakeProxy, SOCKS_PASSWORD, SOCKS_USER, startDante, startFakeHttpProxy, startFakeSocksProxy, startTinyproxy } from '../helpers/proxies.js';

interface Origin {
  url: string;
  port: number;
  /** Headers of every request received, in order. */
  seen: Array<Record<string, string | string[] | undefined>>;
  /** TCP (or TLS) connections accepted. */
  readonly connections: number;
  close(): Promise<void>;
}

/** An https origin on 127.0.0.1 (certificate for localhost and 127.0.0.1): h2 and http/1.1 by ALPN, or http/1.1 only. */
async function httpsOrigin(options: { h2?: boolean; altSvc?: string } = {}): Promise<Origin> {
  const c = await certs();
  const seen: Origin['seen'] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    seen.push({ ...req.headers });
    if (options.altSvc !== undefined) res.setHeader('alt-svc', options.altSvc);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ version: req.httpVersion, path: req.url }));
  };
  const server =
    options.h2 === false
      ? https.createServer({ key: c.leafKey, cert: c.leafCert }, handler)
      : http2.createSecureServer({ key: c.leafKey, cert: c.leafCert, allowHTTP1: true }, handler);
  server.on('secureConnection', (socket: net.Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `https://localhost:${port}`,
    port,
    seen,
    get connections() {
      return connections;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function httpOrigin(): Promise<Origin & { paths: string[] }> {
  const seen: Origin['seen'] = [];
  const paths: string[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = http.createServer((req, res) => {
    seen.push({ ...req.headers });
    paths.push(req.url ?? '');
    res.end(`plain ${req.url ?? ''}`);
  });
  server.on('connection', (socket: net.Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    paths,
    get connections() {
      return connections;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * An HTTPS origin behind our fake proxy that tunnels every CONNECT, the test CA, and a leak
 * check begun once both serve; `close()` stops the two servers.
 */
async function tunnelBed(): Promise<{
  origin: Origin;
  fake: FakeProxy;
  c: GeneratedCertificates;
  leaks: ReturnType<typeof leakCheck>;
  close: () => Promise<void>;
}> {
  const origin = await httpsOrigin();
  const fake = await startFakeHttpProxy(() => ({ kind: 'tunnel' }));
  const c = await certs();
  const leaks = leakCheck();
  const close = async (): Promise<void> => {
    await fake.close();
    await origin.close();
  };
  return { origin, fake, c, leaks, close };
}

/** Below the per-request copies of a PROXY_CONNECT error: the socket's error. */
function rootCause(err: { code?: string; cause?: unknown }): { code?: string } {
  let e = err;
  for (let i = 0; i < 5 && e.code === 'MUXPOOL_ERR_PROXY_CONNECT' && e.cause !== undefined; i++) e = e.cause as typeof e;
  return e;
}

/** Everything published on muxpool:proxy while `fn` runs. */
async function proxyEvents<T>(fn: () => Promise<T>): Promise<{ result: T; events: Array<{ target: string; proxy: string; mode: string }> }> {
  const events: Array<{ target: string; proxy: string; mode: string }> = [];
  const listener = (message: unknown): void => {
    events.push(message as { target: string; proxy: string; mode: string });
  };
  diagnostics.subscribe('muxpool:proxy', listener);
  try {
    return { result: await fn(), events };
  } finally {
    diagnostics.unsubscribe('muxpool:proxy', listener);
  }
}

test('tinyproxy CONNECT: HTTP/2 by ALPN inside the tunnel, many requests multiplexed on one tunnel, reused', async () => {
  const origin = await httpsOrigin();
  const proxy = await startTinyproxy();
  const c = await certs();
  const leaks = leakCheck();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: proxy.url });
  const { result: first, events } = await proxyEvents(() => pool.request(`${origin.url}/one`));
  assert.equal(first.protocol, 'h2');
  assert.deepEqual(await first.json(), { version: '2.0', path: '/one' });
  assert.deepEqual(events.map((e) => [e.mode, e.target, e.proxy]), [['tunnel', `localhost:${origin.port}`, proxy.url]]);
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.request(`${origin.url}/m${i}`).then(async (r) => ({ r, body: await r.json() }))));
  for (const { r } of many) {
    assert.equal(r.protocol, 'h2');
    assert.equal(r.connectionId, first.connectionId, 'every request on the one tunnelled session');
  }
  assert.equal(origin.connections, 1, 'the origin saw one TLS connection (through the proxy)');
  const stats = await pool.stats();
  assert.equal(stats.totalConnections, 1);
  assert.equal(stats.dialed, 1);
  await pool.close();
  await leaks.check(pool);
  await proxy.stop();
  await origin.close();
});

test('tinyproxy CONNECT: an HTTP/1.1-only origin, keep-alive reuse of the tunnelled connection', async () => {
  const origin = await httpsOrigin({ h2: false });
  const proxy = await startTinyproxy();
  const c = await certs();
  const leaks = leakCheck();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: proxy.url });
  const a = await pool.request(`${origin.url}/a`);
  assert.equal(a.protocol, 'http/1.1');
  await a.text();
  const b = await pool.request(`${origin.url}/b`);
  assert.deepEqual(await b.json(), { version: '1.1', path: '/b' });
  assert.equal(b.reused, true);
  assert.equal(b.connectionId, a.connectionId);
  assert.equal(origin.connections, 1);
  await pool.close();
  await leaks.check(pool);
  await proxy.stop();
  await origin.close();
});

test('tinyproxy forwarding: an http URL goes in absolute form; Basic credentials for the proxy; a 407 is typed', async () => {
  const origin = await httpOrigin();
  // tinyproxy's config syntax takes no specials in BasicAuth; percent-decoding is checked below with our own proxy.
  const proxy = await startTinyproxy({ basicAuth: { user: 'alice', password: 'passw0rd' } });
  const tls = await httpsOrigin();
  const leaks = leakCheck();
  const withCredentials = new ConnectionPool({ proxy: `http://alice:passw0rd@127.0.0.1:${proxy.port}` });
  const { result: res, events } = await proxyEvents(() => withCredentials.request(`${origin.url}/path?q=1`, { headers: { authorization: 'Bearer origin-token' } }));
  assert.equal(await res.text(), 'plain /path?q=1');
  assert.deepEqual(origin.paths, ['/path?q=1'], 'the proxy turned the absolute form back into origin form');
  assert.equal(origin.seen[0]?.['authorization'], 'Bearer origin-token', 'forwarded requests carry the origin credentials');
  assert.equal(origin.seen[0]?.['host'], `127.0.0.1:${origin.port}`);
  assert.deepEqual(events.map((e) => e.mode), ['forward']);
  assert.match(proxy.log, new RegExp(`GET http://127\\.0\\.0\\.1:${origin.port}/path\\?q=1 HTTP/1\\.1`));

  const without = new ConnectionPool({ proxy: proxy.url });
  const err = await rejectsWith(without.request(`${origin.url}/`), 'MUXPOOL_ERR_PROXY_AUTH');
  assert.equal(err.status, 407);
  assert.match(err.message, /needs credentials/);
  assert.equal(err.attempts, 1, 'a 407 is not retried');
  // And the same through CONNECT.
  const c = await certs();
  const tunnelled = new ConnectionPool({ tls: { ca: c.caCert }, proxy: proxy.url });
  const denied = await rejectsWith(tunnelled.request(`${tls.url}/`), 'MUXPOOL_ERR_PROXY_AUTH');
  assert.equal(denied.status, 407);
  assert.equal(denied.attempts, 1);
  const allowed = new ConnectionPool({ tls: { ca: c.caCert }, proxy: `http://alice:passw0rd@127.0.0.1:${proxy.port}` });
  const ok = await allowed.request(`${tls.url}/x`);
  assert.equal(ok.protocol, 'h2');
  await ok.text();
  for (const p of [withCredentials, without, tunnelled, allowed]) await p.close();
  for (const p of [withCredentials, without, tunnelled, allowed]) await leaks.check(p);
  await proxy.stop();
  await origin.close();
  await tls.close();
});

test('credentials never cross: CONNECT carries only Proxy-Authorization; the origin never sees it', async () => {
  const { origin, fake, c, leaks, close } = await tunnelBed();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: `http://b%40b:hun%3Ater2@127.0.0.1:${fake.port}` });
  const res = await pool.request(`${origin.url}/secret`, {
    headers: { authorization: 'Bearer origin-only', cookie: 'session=origin-only', 'proxy-authorization': 'Basic caller-set' },
  });
  await res.text();
  assert.equal(fake.heads.length, 1);
  const head = fake.heads[0] as string;
  assert.match(head, new RegExp(`^CONNECT localhost:${origin.port} HTTP/1\\.1\r\n`));
  assert.match(head, new RegExp(`\r\nhost: localhost:${origin.port}`, 'i'));
  assert.match(head, new RegExp(`\r\nproxy-authorization: Basic ${Buffer.from('b@b:hun:ter2').toString('base64')}`, 'i'));
  assert.doesNotMatch(head, /origin-only|caller-set|^authorization:|^cookie:/im);
  const seen = origin.seen[0] ?? {};
  assert.equal(seen['authorization'], 'Bearer origin-only');
  assert.equal(seen['cookie'], 'session=origin-only');
  assert.equal(seen['proxy-authorization'], undefined, 'no Proxy-Authorization reaches the origin through a tunnel');
  await pool.close();
  await leaks.check(pool);
  await close();
});

test('an https:// proxy: TLS to the proxy, then TLS with ALPN to the origin inside it', async () => {
  const origin = await httpsOrigin();
  const c = await certs();
  const fake = await startFakeHttpProxy(() => ({ kind: 'tunnel' }), { tls: { key: c.leafKey, cert: c.leafCert } });
  const leaks = leakCheck();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: `https://localhost:${fake.port}` });
  const results = await Promise.all(Array.from({ length: 5 }, () => pool.request(`${origin.url}/tls-in-tls`).then(async (r) => ((await r.json()) as { version: string }).version)));
  assert.deepEqual(results, ['2.0', '2.0', '2.0', '2.0', '2.0']);
  assert.equal(fake.connections, 1);
  assert.match(fake.heads[0] ?? '', /^CONNECT localhost:\d+ HTTP\/1\.1/);
  await pool.close();
  await leaks.check(pool);
  // An http URL through an https:// proxy is forwarded over the TLS connection to the proxy.
  const fwd = await startFakeHttpProxy((head) => (head.startsWith('GET ') ? { kind: 'reply', raw: 'HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nforwarded' } : { kind: 'tunnel' }), {
    tls: { key: c.leafKey, cert: c.leafCert },
  });
  const viaTls = new ConnectionPool({ tls: { ca: c.caCert }, proxy: `https://carol:pw@localhost:${fwd.port}` });
  assert.equal(await (await viaTls.request('http://origin.test:8080/p?q')).text(), 'forwarded');
  assert.match(fwd.heads[0] ?? '', /^GET http:\/\/origin\.test:8080\/p\?q HTTP\/1\.1\r\nhost: origin\.test:8080\r\n/);
  assert.match(fwd.heads[0] ?? '', new RegExp(`proxy-authorization: Basic ${Buffer.from('carol:pw').toString('base64')}`));
  await viaTls.close();
  await leaks.check(viaTls);
  await fwd.close();
  // An untrusted proxy certificate is a failure to reach the proxy, with the TLS error as cause.
  const untrusting = new ConnectionPool({ proxy: `https://localhost:${fake.port}` });
  const err = await rejectsWith(untrusting.request(`${origin.url}/`), 'MUXPOOL_ERR_PROXY_CONNECT');
  assert.equal(rootCause(err).code, 'MUXPOOL_ERR_TLS_CERT');
  await untrusting.close();
  await leaks.check(untrusting);
  // Verification off for origins stays on for the proxy, which would get our proxy credentials.
  const insecureOrigins = new ConnectionPool({ proxy: `https://carol:pw@localhost:${fake.port}`, tls: { rejectUnauthorized: false } });
  const stillChecked = await rejectsWith(insecureOrigins.request(`${origin.url}/`), 'MUXPOOL_ERR_PROXY_CONNECT');
  assert.equal(rootCause(stillChecked).code, 'MUXPOOL_ERR_TLS_CERT');
  await insecureOrigins.close();
  await leaks.check(insecureOrigins);
  await fake.close();
  await origin.close();
});

test('tunnel failures are typed: 403 and 502 with the status, 407, closed mid-head, garbage, silence, unreachable', async () => {
  const origin = await httpsOrigin();
  const c = await certs();
  const leaks = leakCheck();
  const cases: Array<{ answer: Parameters<typeof startFakeHttpProxy>[0] extends (h: string, i: number) => infer A ? A : never; code: string; status?: number; message: RegExp }> = [
    { answer: { kind: 'reply', raw: 'HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n' }, code: 'MUXPOOL_ERR_PROXY_TUNNEL', status: 403, message: /refused the tunnel to localhost:\d+: 403 Forbidden/ },
    { answer: { kind: 'reply', raw: 'HTTP/1.0 502 Bad Gateway\r\n\r\nupstream down' }, code: 'MUXPOOL_ERR_PROXY_TUNNEL', status: 502, message: /502 Bad Gateway/ },
    {
      answer: { kind: 'reply', raw: 'HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="corp"\r\ncontent-length: 0\r\n\r\n' },
      code: 'MUXPOOL_ERR_PROXY_AUTH',
      status: 407,
      message: /needs credentials \(407 Proxy Authentication Required; it asks for Basic\)/,
    },
    { answer: { kind: 'close', raw: 'HTTP/1.1 200 Conn' }, code: 'MUXPOOL_ERR_PROXY_TUNNEL', message: /closed the connection after 17 bytes/ },
    { answer: { kind: 'close', raw: '' }, code: 'MUXPOOL_ERR_PROXY_TUNNEL', message: /closed the connection without replying/ },
    { answer: { kind: 'close', raw: 'SSH-2.0-OpenSSH_9.2\r\n' }, code: 'MUXPOOL_ERR_PROXY_TUNNEL', message: /malformed: it does not start with HTTP\// },
    { answer: { kind: 'close', raw: 'HTTP/1.1 2000 OK\r\n\r\n' }, code: 'MUXPOOL_ERR_PROXY_TUNNEL', message: /malformed: bad status line/ },
    { answer: { kind: 'reply', raw: `HTTP/1.1 200 OK\r\nx: ${'a'.repeat(20_000)}\r\n\r\n` }, code: 'MUXPOOL_ERR_PROXY_TUNNEL', message: /exceeds 16384 bytes/ },
    { answer: { kind: 'tunnel', extraBytes: Buffer.from('early') }, code: 'MUXPOOL_ERR_PROXY_TUNNEL', message: /sent 5 bytes into the tunnel before TLS began/ },
    { answer: { kind: 'silent' }, code: 'MUXPOOL_ERR_CONNECT_TIMEOUT', message: /through http:\/\/127\.0\.0\.1:\d+ took longer than 300 ms/ },
  ];
  for (const { answer, code, status, message } of cases) {
    const fake = await startFakeHttpProxy(() => answer);
    const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: fake.url, connectTimeoutMs: 300 });
    const err = await rejectsWith(pool.request(`${origin.url}/`, { headers: { authorization: 'Bearer never-to-the-proxy' } }), code);
    assert.match(err.message, message);
    assert.equal(err.status, status, err.message);
    assert.equal(err.maybeProcessed, false);
    assert.equal(err.attempts, 1, `${code} is not retried`);
    assert.equal(fake.connections, 1);
    assert.doesNotMatch(fake.heads.join('\n'), /never-to-the-proxy/);
    await pool.close();
    await fake.close();
    await leaks.check(pool);
  }
  // Nothing listens: the proxy is unreachable, refused like a direct dial, so retried once.
  const port = await freeTcpPort();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: `http://127.0.0.1:${port}` });
  const err = await rejectsWith(pool.request(`${origin.url}/`), 'MUXPOOL_ERR_PROXY_CONNECT');
  assert.equal(rootCause(err).code, 'MUXPOOL_ERR_CONNECT_REFUSED');
  assert.match(err.message, new RegExp(`cannot reach the proxy http://127\\.0\\.0\\.1:${port}`));
  assert.equal(err.attempts, 2, 'a refused proxy is retried as a refused origin is');
  await pool.close();
  await leaks.check(pool);
  await origin.close();
});

test('SOCKS5 reply codes become MUXPOOL_ERR_SOCKS with replyCode; "connection refused" is retried; no acceptable method is PROXY_AUTH', async () => {
  const origin = await httpOrigin();
  const leaks = leakCheck();
  for (const code of [1, 2, 3, 4, 5, 6, 7, 8, 0x2a]) {
    const fake = await startFakeSocksProxy(() => ({ kind: 'reply', code }));
    const pool = new ConnectionPool({ proxy: fake.url });
    const err = await rejectsWith(pool.request(`${origin.url}/`), 'MUXPOOL_ERR_SOCKS');
    assert.equal(err.replyCode, code);
    assert.match(err.message, new RegExp(`\\(reply ${code}\\)`));
    assert.equal(err.attempts, code === 5 ? 2 : 1);
    assert.equal(fake.connections, code === 5 ? 2 : 1);
    await pool.close();
    await fake.close();
  }
  const noMethod = await startFakeSocksProxy(() => ({ kind: 'method', method: 0xff }));
  const pool = new ConnectionPool({ proxy: noMethod.url });
  const auth = await rejectsWith(pool.request(`${origin.url}/`), 'MUXPOOL_ERR_PROXY_AUTH');
  assert.match(auth.message, /needs credentials/);
  await pool.close();
  await noMethod.close();
  const garbage = await startFakeSocksProxy(() => ({ kind: 'garbage', raw: Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n') }));
  const confused = new ConnectionPool({ proxy: garbage.url });
  const bad = await rejectsWith(confused.request(`${origin.url}/`), 'MUXPOOL_ERR_SOCKS');
  assert.match(bad.message, /broke the protocol: version 72/);
  assert.equal(bad.replyCode, undefined);
  await confused.close();
  await garbage.close();
  await leaks.check(pool);
  await origin.close();
});

test('socks5 resolves through the pool resolver and sends an address; socks5h sends the name', async () => {
  const origin = await httpOrigin();
  const fake = await startFakeSocksProxy(() => ({ kind: 'tunnel' }));
  const leaks = leakCheck();
  const resolved: string[] = [];
  const resolver = async (name: string): Promise<Array<{ address: string; family: 4 | 6 }>> => {
    resolved.push(name);
    return name === 'origin.test' ? [{ address: '127.0.0.1', family: 4 }] : [];
  };
  const local = new ConnectionPool({ proxy: `socks5://127.0.0.1:${fake.port}`, resolver });
  assert.equal(await (await local.request(`http://origin.test:${origin.port}/l`)).text(), 'plain /l');
  const remote = new ConnectionPool({ proxy: `socks5h://127.0.0.1:${fake.port}`, resolver });
  assert.equal(await (await remote.request(`http://origin.test:${origin.port}/r`)).text(), 'plain /r');
  assert.deepEqual(fake.socksTargets, [
    { host: '127.0.0.1', port: origin.port, atyp: 'ipv4' },
    { host: 'origin.test', port: origin.port, atyp: 'domain' },
  ]);
  assert.deepEqual(resolved, ['origin.test'], 'socks5h resolves nothing here');
  // Through SOCKS an http URL is tunnelled: origin form, Host from the URL.
  assert.deepEqual(origin.paths, ['/l', '/r']);
  assert.equal(origin.seen[1]?.['host'], `origin.test:${origin.port}`);
  await local.close();
  await remote.close();
  await leaks.check(local);
  await leaks.check(remote);
  await fake.close();
  await origin.close();
});

test('socks5: the dial deadline passing while the target name resolves fails the request typed, not a hang', async () => {
  const fake = await startFakeSocksProxy(() => ({ kind: 'tunnel' }));
  const leaks = leakCheck();
  // The proxy is reached at once; the origin's name takes longer than the whole dial may.
  const resolver = async (): Promise<Array<{ address: string; family: 4 | 6 }>> => {
    await new Promise((resolve) => setTimeout(resolve, 400));
    return [{ address: '127.0.0.1', family: 4 }];
  };
  const pool = new ConnectionPool({ proxy: `socks5://127.0.0.1:${fake.port}`, resolver, connectTimeoutMs: 100, maxRetries: 0 });
  // Bounded: on the old order the handshake read waited on a socket destroyed during the lookup, forever.
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    pool.request('http://slow-name.test:8080/').then(
      () => 'resolved',
      (err: unknown) => err,
    ),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve('hung'), 5_000);
    }),
  ]);
  clearTimeout(timer);
  assert.ok(outcome instanceof MuxpoolError, `expected a typed error, got ${String(outcome)}`);
  assert.equal(outcome.code, 'MUXPOOL_ERR_CONNECT_TIMEOUT', outcome.message);
  assert.equal(fake.socksTargets.length, 0, 'no CONNECT was sent after the deadline');
  await pool.close();
  await leaks.check(pool);
  await fake.close();
});

test('socks5: a proxy that resets the connection while the target name resolves fails the request typed (no unheard socket error)', async () => {
  const fake = await startFakeSocksProxy(() => ({ kind: 'reset', afterMs: 100 }));
  const leaks = leakCheck();
  const resolver = async (): Promise<Array<{ address: string; family: 4 | 6 }>> => {
    await new Promise((resolve) => setTimeout(resolve, 400));
    return [{ address: '127.0.0.1', family: 4 }];
  };
  const pool = new ConnectionPool({ proxy: `socks5://127.0.0.1:${fake.port}`, resolver, connectTimeoutMs: 5_000, maxRetries: 0 });
  // On the old order the socket had no 'error' listener during the lookup: the reset was an
  // uncaught exception that ended the process.
  const err = await rejectsWith(pool.request('http://reset-name.test:8080/'), 'MUXPOOL_ERR_SOCKS');
  assert.match(err.message, /closed the connection/);
  await pool.close();
  await leaks.check(pool);
  await fake.close();
});

test('dante SOCKS5 without authentication: socks5 and socks5h, http and https (HTTP/2 inside) origins', async () => {
  const plain = await httpOrigin();
  const tls = await httpsOrigin();
  const dante = await startDante();
  const c = await certs();
  const leaks = leakCheck();
  for (const scheme of ['socks5', 'socks5h']) {
    const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: `${scheme}://127.0.0.1:${dante.port}` });
    assert.equal(await (await pool.request(`http://localhost:${plain.port}/d`)).text(), 'plain /d');
    const all = await Promise.all(Array.from({ length: 8 }, () => pool.request(`${tls.url}/d`)));
    for (const r of all) {
      assert.equal(r.protocol, 'h2');
      await r.text();
    }
    assert.equal(new Set(all.map((r) => r.connectionId)).size, 1);
    await pool.close();
    await leaks.check(pool);
  }
  await dante.stop();
  await plain.close();
  await tls.close();
});

test('dante SOCKS5 with username/password (RFC 1929): right, wrong and missing credentials', async () => {
  const origin = await httpOrigin();
  const dante = await startDante({ auth: true });
  const leaks = leakCheck();
  const good = new ConnectionPool({ proxy: `socks5h://${SOCKS_USER}:${SOCKS_PASSWORD}@127.0.0.1:${dante.port}` });
  assert.equal(await (await good.request(`${origin.url}/auth`)).text(), 'plain /auth');
  const wrong = new ConnectionPool({ proxy: `socks5h://${SOCKS_USER}:nope@127.0.0.1:${dante.port}` });
  const refused = await rejectsWith(wrong.request(`${origin.url}/`), 'MUXPOOL_ERR_PROXY_AUTH');
  assert.match(refused.message, /refused the user name and password/);
  const none = new ConnectionPool({ proxy: `socks5h://127.0.0.1:${dante.port}` });
  const needs = await rejectsWith(none.request(`${origin.url}/`), 'MUXPOOL_ERR_PROXY_AUTH');
  assert.match(needs.message, /needs credentials/);
  for (const p of [good, wrong, none]) await p.close();
  for (const p of [good, wrong, none]) await leaks.check(p);
  await dante.stop();
  await origin.close();
});

test('keys keep direct, proxied and different proxies apart; no coalescing across them', async () => {
  const direct = new ConnectionPool();
  const viaA = new ConnectionPool({ proxy: 'http://127.0.0.1:3128' });
  const viaB = new ConnectionPool({ proxy: 'socks5h://127.0.0.1:1080' });
  const viaAasBob = new ConnectionPool({ proxy: 'http://bob:x@127.0.0.1:3128' });
  const viaAasEve = new ConnectionPool({ proxy: 'http://eve:y@127.0.0.1:3128' });
  const url = 'https://example.test/';
  const ids = [direct, viaA, viaB, viaAasBob, viaAasEve].map((p) => p.keyFor(url).id);
  assert.equal(new Set(ids).size, 5, ids.join(' | '));
  for (const id of ids) assert.doesNotMatch(id, /\by\b|:x@/, 'no password in a key id');
  assert.equal(viaA.keyFor(url).id, new PoolKey('example.test', 443, true, undefined, { proxy: viaA.keyFor(url).proxy }).id);
  for (const p of [direct, viaA, viaB, viaAasBob, viaAasEve]) await p.close();

  // One pool, one origin whose certificate covers localhost and 127.0.0.1: direct to one name
  // (noProxy), proxied to the other. Without a proxy the second would coalesce onto the first.
  const { origin, fake, c, leaks, close } = await tunnelBed();
  const control = new ConnectionPool({ tls: { ca: c.caCert } });
  const x = await control.request(`https://localhost:${origin.port}/`);
  const y = await control.request(`https://127.0.0.1:${origin.port}/`);
  await x.text();
  await y.text();
  assert.equal(y.connectionId, x.connectionId, 'control: the direct pool coalesces the two names');
  await control.close();
  const mixed = new ConnectionPool({ tls: { ca: c.caCert }, proxy: fake.url, noProxy: 'localhost' });
  const d = await mixed.request(`https://localhost:${origin.port}/`);
  const p = await mixed.request(`https://127.0.0.1:${origin.port}/`);
  await d.text();
  await p.text();
  assert.notEqual(p.connectionId, d.connectionId, 'a proxied request never coalesces onto a direct connection');
  const again = await mixed.request(`https://localhost:${origin.port}/`);
  await again.text();
  assert.equal(again.connectionId, d.connectionId);
  assert.equal(fake.heads.length, 1, 'only the 127.0.0.1 request went through the proxy');
  assert.match(fake.heads[0] ?? '', /^CONNECT 127\.0\.0\.1:/);
  await mixed.close();
  await leaks.check(control);
  await leaks.check(mixed);
  await close();
});

test('HTTP/3 never goes through a proxy: Http3Only fails typed, Auto and Http3 stay on TCP despite Alt-Svc', async () => {
  const c = await certs();
  const embedded = await startEmbeddedServer({ certificates: c });
  const proxy = await startTinyproxy();
  const leaks = leakCheck();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: proxy.url, h3RaceDelayMs: 0 });
  const err = await rejectsWith(pool.request(`${embedded.httpsUrl}/`, { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE');
  assert.match(err.message, /HTTP\/3 cannot go through the proxy http:\/\/127\.0\.0\.1:\d+ \(proxies carry TCP only\)/);
  const dials: unknown[] = [];
  const onDial = (message: unknown): void => {
    dials.push(message);
  };
  diagnostics.subscribe('muxpool:dial:start', onDial);
  try {
    const first = await pool.request(`${embedded.httpsUrl}/`);
    assert.equal(first.protocol, 'h2');
    if (embedded.http3) assert.match(String(first.headers['alt-svc']), /h3=/);
    await first.text();
    for (let i = 0; i < 5; i++) {
      for (const version of [HttpVersion.Auto, HttpVersion.Http3]) {
        const res = await pool.request(`${embedded.httpsUrl}/`, { version });
        assert.equal(res.protocol, 'h2');
        await res.text();
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    diagnostics.unsubscribe('muxpool:dial:start', onDial);
  }
  assert.equal(dials.length, 1, 'one TCP dial, no QUIC dial in the background');
  assert.deepEqual((await pool.stats()).connections.map((conn) => conn.protocol), ['h2']);
  // The seed API's Http3 through a proxy is TCP too; Http3Only is refused.
  const key = pool.keyFor(`${embedded.httpsUrl}/`);
  await rejectsWith(pool.getOrCreate(key, HttpVersion.Http3Only), 'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE');
  await pool.close();
  await leaks.check(pool);
  await proxy.stop();
  await embedded.close();
});

test("proxy: 'env' follows HTTPS_PROXY, HTTP_PROXY and NO_PROXY (read when the pool is built)", async () => {
  const tls = await httpsOrigin();
  const plain = await httpOrigin();
  const fake = await startFakeHttpProxy(() => ({ kind: 'tunnel' }));
  const c = await certs();
  const leaks = leakCheck();
  const names = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy'];
  const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
  let pool: ConnectionPool;
  try {
    for (const n of names) delete process.env[n];
    process.env['HTTPS_PROXY'] = fake.url;
    process.env['no_proxy'] = `example.invalid, 127.0.0.1:${plain.port}`;
    pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: 'env' });
    process.env['HTTPS_PROXY'] = 'ftp://changed-later';
  } finally {
    for (const n of names) {
      if (saved[n] === undefined) delete process.env[n];
      else process.env[n] = saved[n];
    }
  }
  await (await pool.request(`${tls.url}/`)).text();
  assert.equal(fake.heads.length, 1, 'https went through HTTPS_PROXY');
  await (await pool.request(`${plain.url}/`)).text();
  assert.equal(fake.heads.length, 1, 'NO_PROXY with host:port sends this origin direct (and no HTTP_PROXY is set)');
  assert.equal(pool.keyFor(`${plain.url}/`).proxy, undefined);
  await pool.close();
  await leaks.check(pool);

  // A bad value fails at construction, naming the variable.
  const before = process.env['ALL_PROXY'];
  process.env['ALL_PROXY'] = 'gopher://old:70';
  try {
    assert.throws(() => new ConnectionPool({ proxy: 'env' }), (e: Error & { code?: string }) => e.code === 'MUXPOOL_ERR_INVALID_ARGUMENT' && /ALL_PROXY: unsupported proxy scheme gopher/.test(e.message));
  } finally {
    if (before === undefined) delete process.env['ALL_PROXY'];
    else process.env['ALL_PROXY'] = before;
  }
  await fake.close();
  await tls.close();
  await plain.close();
});

test('bad proxy URLs fail at construction with MUXPOOL_ERR_INVALID_ARGUMENT; the password is never in the message', () => {
  for (const [proxy, message] of [
    ['ftp://proxy:21', /unsupported proxy scheme ftp/],
    ['socks4://proxy:1080', /unsupported proxy scheme socks4/],
    ['http://user:sup3rsecret@', /not a valid proxy URL|no host/],
    ['http://proxy:99999', /not a valid proxy URL|out of range/],
    ['http://proxy:3128/path', /no path/],
    ['http://us%zzer:pw@proxy', /percent-encoding/],
    ['', /empty/],
  ] as const) {
    assert.throws(
      () => new ConnectionPool({ proxy }),
      (e: Error & { code?: string }) => e.code === 'MUXPOOL_ERR_INVALID_ARGUMENT' && message.test(e.message) && !e.message.includes('sup3rsecret'),
      proxy,
    );
  }
  assert.throws(() => new ConnectionPool({ proxy: 42 as unknown as string }), /proxy must be a URL string/);
  // A scheme-less value is an HTTP proxy, as curl reads it.
  assert.equal(new ConnectionPool({ proxy: 'proxy.corp:3128' }).keyFor('https://a.test/').proxy?.id, 'http://proxy.corp:3128');
});

test('the undici Dispatcher path (fetch with dispatcher: pool) goes through the proxy too', async () => {
  const { origin, fake, c, leaks, close } = await tunnelBed();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: fake.url });
  const res = await undiciFetch(`${origin.url}/via-dispatcher`, { dispatcher: pool as never });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { version: '2.0', path: '/via-dispatcher' });
  assert.equal(fake.heads.length, 1);
  assert.match(fake.heads[0] ?? '', /^CONNECT localhost:\d+ HTTP\/1\.1/);
  await pool.close();
  await leaks.check(pool);
  await close();
});

test('the seed API: a hand-built PoolKey is direct unless it carries the proxy; with it, getOrCreate tunnels', async () => {
  const { origin, fake, c, leaks, close } = await tunnelBed();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, proxy: fake.url });
  const direct = await pool.getOrCreate(new PoolKey('localhost', origin.port, true), HttpVersion.Http2);
  assert.ok(direct !== undefined);
  await pool.release(direct);
  assert.equal(fake.heads.length, 0, 'a hand-built key without a proxy goes direct');
  const proxied = await pool.getOrCreate(new PoolKey('localhost', origin.port, true, undefined, { proxy: pool.keyFor(`${origin.url}/`).proxy }), HttpVersion.Http3);
  assert.ok(proxied !== undefined);
  assert.equal(proxied.connection.protocol, 'h2', 'Http3 through a proxy is TCP');
  assert.notEqual(proxied.connection.id, direct.connection.id);
  await pool.release(proxied);
  assert.equal(fake.heads.length, 1);
  // request() to the same origin shares the proxied connection (same key id).
  const res = await pool.request(`${origin.url}/`);
  await res.text();
  assert.equal(res.connectionId, proxied.connection.id);
  await pool.close();
  await leaks.check(pool);
  await close();
});
