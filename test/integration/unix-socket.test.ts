/**
 * Unix domain sockets (`socketPath`, per request or per pool): real servers listening on socket
 * paths in a temp dir. The URL gives Host, the scheme and the TLS name; TLS, HTTP/2 by ALPN and
 * HTTP/2 prior knowledge run over the socket; HTTP/3 cannot (Http3Only fails, Auto/Http3 do not
 * try); keys keep sockets and TCP apart; Alt-Svc from such an origin sends nothing to QUIC.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { ConnectionPool, HttpVersion, PoolKey } from '../../src/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { certs } from '../helpers/certs.js';
import { leakCheck } from '../helpers/leaks.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'muxpool-unix-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface SocketServer {
  path: string;
  /** Connections accepted and not yet closed. */
  open: () => number;
  close(): Promise<void>;
}

async function listenOn(server: Server, name: string): Promise<SocketServer> {
  const path = join(dir, name);
  const sockets = new Set<{ destroy(): void }>();
  const track = (socket: { destroy(): void; once(e: 'close', f: () => void): void }): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  server.on('connection', track);
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    open: () => sockets.size,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Waits (bounded) until the server has no open connection: the client closed its sockets. */
async function drained(server: SocketServer): Promise<void> {
  for (let i = 0; i < 200 && server.open() > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(server.open(), 0, 'connections to the socket left open');
}

const echoHost = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
  res.setHeader('alt-svc', 'h3=":443"; ma=3600');
  res.end(`${req.httpVersion} ${req.headers.host ?? req.headers[':authority'] ?? ''}`);
};

test('http over a Unix socket: the URL gives Host; per-request socketPath and the pool option alike', async () => {
  const leaks = leakCheck();
  const server = await listenOn(http.createServer(echoHost), 'plain.sock');
  const pool = new ConnectionPool();
  const a = await pool.request('http://svc.internal/x', { socketPath: server.path });
  assert.equal(await a.text(), '1.1 svc.internal');
  const b = await pool.request('http://svc.internal:8080/x', { socketPath: server.path });
  assert.equal(await b.text(), '1.1 svc.internal:8080');
  // undici's spelling, as `new Agent({ connect: { socketPath } })` takes it.
  const pooled = new ConnectionPool({ connect: { socketPath: server.path } });
  const c = await pooled.request('http://docker/v1.43/info');
  assert.equal(await c.text(), '1.1 docker');
  const d = await pooled.request('http://docker/v1.43/info');
  await d.text();
  assert.equal(d.reused, true);
  // undici's request(options) (the Dispatcher path) goes through the socket too.
  const raw = await pooled.request({ origin: 'http://docker', path: '/v1.43/info', method: 'GET' });
  assert.equal(raw.statusCode, 200);
  assert.equal(await raw.body.text(), '1.1 docker');
  await pool.close();
  await pooled.close();
  await drained(server);
  await server.close();
  await leaks.check(pool);
});

test('TLS over a Unix socket checks the URL host (SNI and certificate); HTTP/1.1 and HTTP/2 by ALPN', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const servernames: string[] = [];
  const h1 = https.createServer({ key: c.leafKey, cert: c.leafCert }, echoHost);
  h1.on('secureConnection', (s: TLSSocket) => servernames.push(String((s as TLSSocket & { servername?: string }).servername)));
  const h1Server = await listenOn(h1, 'h1.sock');
  const h2Server = await listenOn(http2.createSecureServer({ key: c.leafKey, cert: c.leafCert, allowHTTP1: true }, echoHost) as unknown as Server, 'h2.sock');
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const a = await pool.request('https://localhost/', { socketPath: h1Server.path });
  assert.equal(a.protocol, 'http/1.1');
  assert.equal(await a.text(), '1.1 localhost');
  assert.deepEqual(servernames, ['localhost']);
  const b = await pool.request('https://localhost/', { socketPath: h2Server.path });
  assert.equal(b.protocol, 'h2');
  assert.equal(await b.text(), '2.0 localhost');
  // The certificate covers localhost, not this name: the socket changes where, not whom.
  await rejectsWith(pool.request('https://elsewhere.test/', { socketPath: h2Server.path }), 'MUXPOOL_ERR_TLS_HOSTNAME');
  await pool.close();
  await drained(h1Server);
  await drained(h2Server);
  await h1Server.close();
  await h2Server.close();
  await leaks.check(pool);
});

test('HTTP/2 prior knowledge (h2c) over a Unix socket', async () => {
  const leaks = leakCheck();
  const server = await listenOn(http2.createServer(echoHost) as unknown as Server, 'h2c.sock');
  const pool = new ConnectionPool({ socketPath: server.path });
  const res = await pool.request('http://h2c.internal/', { version: HttpVersion.Http2 });
  assert.equal(res.protocol, 'h2');
  assert.equal(await res.text(), '2.0 h2c.internal');
  await pool.close();
  await drained(server);
  await server.close();
  await leaks.check(pool);
});

test('HTTP/3 cannot run over a Unix socket: Http3Only fails saying why, Http3 and Auto use the socket, Alt-Svc is ignored', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await listenOn(http2.createSecureServer({ key: c.leafKey, cert: c.leafCert, allowHTTP1: true }, echoHost) as unknown as Server, 'h3.sock');
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, socketPath: server.path });
  const dials: string[][] = [];
  const onDial = (message: unknown): void => {
    dials.push([...(message as { protocols: string[] }).protocols]);
  };
  diagnostics.subscribe('muxpool:dial:start', onDial);
  try {
    // The origin advertises h3 on every response: no QUIC dial follows, in the background or
    // for the next Auto request, and no second connection.
    for (let i = 0; i < 3; i++) {
      const res = await pool.request('https://localhost/');
      assert.equal(res.protocol, 'h2');
      await res.text();
    }
    assert.deepEqual(dials, [['h2', 'http/1.1']]);
    const err = await rejectsWith(pool.request('https://localhost/', { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE');
    assert.match(err.message, /Unix domain socket/);
    const viaHttp3 = await pool.request('https://localhost/', { version: HttpVersion.Http3 });
    assert.equal(viaHttp3.protocol, 'h2');
    await viaHttp3.text();
  } finally {
    diagnostics.unsubscribe('muxpool:dial:start', onDial);
  }
  const stats = await pool.stats();
  assert.equal(stats.totalConnections, 1);
  assert.equal(stats.pendingDials, 0);
  await pool.close();
  await drained(server);
  await server.close();
  await leaks.check(pool);
});

test('the key includes the socket path: /a.sock never serves /b.sock or TCP', async () => {
  const leaks = leakCheck();
  const say = (what: string) => (_req: http.IncomingMessage, res: http.ServerResponse) => res.end(what);
  const a = await listenOn(http.createServer(say('a')), 'a.sock');
  const b = await listenOn(http.createServer(say('b')), 'b.sock');
  const tcp = http.createServer(say('tcp'));
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const port = (tcp.address() as { port: number }).port;
  const pool = new ConnectionPool();
  const url = `http://127.0.0.1:${port}/`;
  const seen: string[] = [];
  for (let i = 0; i < 2; i++) {
    for (const socketPath of [a.path, b.path, undefined]) {
      const res = await pool.request(url, socketPath === undefined ? {} : { socketPath });
      seen.push(await res.text());
    }
  }
  assert.deepEqual(seen, ['a', 'b', 'tcp', 'a', 'b', 'tcp']);
  assert.notEqual(pool.keyFor(url, a.path).id, pool.keyFor(url, b.path).id);
  assert.notEqual(pool.keyFor(url, a.path).id, pool.keyFor(url).id);
  assert.equal((await pool.stats()).totalConnections, 3);
  await pool.close();
  tcp.closeAllConnections();
  await new Promise<void>((resolve) => tcp.close(() => resolve()));
  await drained(a);
  await drained(b);
  await a.close();
  await b.close();
  await leaks.check(pool);
});

test('an empty socketPath is INVALID_ARGUMENT', async () => {
  const pool = new ConnectionPool();
  await rejectsWith(pool.request('http://x.test/', { socketPath: '' }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
  await pool.close();
});

test('the seed API: a PoolKey with a socketPath keeps it when it takes the pool TLS settings', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await listenOn(http2.createSecureServer({ key: c.leafKey, cert: c.leafCert }, echoHost) as unknown as Server, 'seed.sock');
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const key = new PoolKey('localhost', 443, true, undefined, { socketPath: server.path });
  const entry = await pool.getOrCreate(key, HttpVersion.Http2);
  assert.equal(entry?.connection.protocol, 'h2');
  assert.match(entry?.key.id ?? '', /@unix:/);
  if (entry !== undefined) await pool.release(entry);
  await pool.close();
  await drained(server);
  await server.close();
  await leaks.check(pool);
});
