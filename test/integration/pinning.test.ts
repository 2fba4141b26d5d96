/**
 * Certificate pinning (`tls.pins`) over HTTP/1.1, HTTP/2 and HTTP/3: a pin on the leaf's key or
 * on the CA's works; a pin that matches nothing fails with MUXPOOL_ERR_TLS_PIN before any request
 * is written, and the connection is never pooled.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { pinOf } from '../../src/connect/pins.js';
import { generateCertificates } from '../../src/server/certs.js';
import { H3Server } from '../../src/server/h3.js';
import { rejectsWith } from '../helpers/assert.js';
import { certs } from '../helpers/certs.js';
import { leakCheck } from '../helpers/leaks.js';

const VERSIONS = [
  { version: HttpVersion.Http1_1, protocol: 'http/1.1' },
  { version: HttpVersion.Http2, protocol: 'h2' },
  { version: HttpVersion.Http3Only, protocol: 'h3' },
] as const;

/** TLS (h1 + h2) and HTTP/3 on one port number, counting the requests that reach a handler. */
async function countingServer(): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  const c = await certs();
  let requests = 0;
  const tcp = http2.createSecureServer({ key: c.leafKey, cert: c.leafCert, allowHTTP1: true }, (_req, res) => {
    requests++;
    res.end('pinned');
  });
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const port = (tcp.address() as AddressInfo).port;
  const h3 = await H3Server.listen({
    cert: c.leafCert,
    key: c.leafKey,
    port,
    handler: (_req, res) => {
      requests++;
      res.end('pinned');
    },
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  tcp.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  return {
    url: `https://localhost:${port}/`,
    requests: () => requests,
    async close() {
      for (const s of sessions) s.destroy();
      await Promise.all([new Promise<void>((resolve) => tcp.close(() => resolve())), h3.close()]);
    },
  };
}

test('a pin on the leaf key, or on the CA key (from tls.ca), lets requests through on every protocol', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await countingServer();
  for (const pin of [pinOf(new X509Certificate(c.leafCert)), pinOf(new X509Certificate(c.caCert))]) {
    const other = 'sha256/' + Buffer.alloc(32, 7).toString('base64');
    const pool = new ConnectionPool({ tls: { ca: c.caCert, pins: [other, pin] } });
    for (const { version, protocol } of VERSIONS) {
      const res = await pool.request(server.url, { version });
      assert.equal(res.protocol, protocol);
      assert.equal(await res.text(), 'pinned');
    }
    await pool.close();
    assert.equal((await pool.stats()).totalConnections, 0);
  }
  // curl's spelling (sha256//) is the same pin.
  const curlish = new ConnectionPool({ tls: { ca: c.caCert, pins: [pinOf(new X509Certificate(c.leafCert)).replace('sha256/', 'sha256//')] } });
  assert.equal(await (await curlish.request(server.url)).text(), 'pinned');
  await curlish.close();
  await server.close();
  await leaks.check(curlish);
});

test('a wrong pin fails with TLS_PIN on every protocol, before any request reaches the server, and nothing is pooled', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await countingServer();
  const stranger = await generateCertificates({ caName: 'not this server' });
  const pool = new ConnectionPool({ tls: { ca: [c.caCert, stranger.caCert], pins: [pinOf(new X509Certificate(stranger.leafCert)), pinOf(new X509Certificate(stranger.caCert))] } });
  for (const { version, protocol } of VERSIONS) {
    const err = await rejectsWith(pool.request(server.url, { version }), 'MUXPOOL_ERR_TLS_PIN');
    assert.equal(err.maybeProcessed, false, protocol);
    assert.equal(err.attempts, 1, `not retried over ${protocol}`);
    assert.equal((await pool.stats()).totalConnections, 0, `no ${protocol} connection pooled`);
  }
  assert.equal(server.requests(), 0, 'no request reached the server');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('pins are part of the TLS identity: a pinned pool never shares a key with an unpinned one', () => {
  const plain = new ConnectionPool({ tls: { ca: 'x' } });
  const pinned = new ConnectionPool({ tls: { ca: 'x', pins: ['sha256/' + Buffer.alloc(32).toString('base64')] } });
  const reordered = new ConnectionPool({ tls: { ca: 'x', pins: ['sha256/' + Buffer.alloc(32, 1).toString('base64'), 'sha256/' + Buffer.alloc(32).toString('base64')] } });
  const again = new ConnectionPool({ tls: { ca: 'x', pins: ['sha256/' + Buffer.alloc(32).toString('base64'), 'sha256/' + Buffer.alloc(32, 1).toString('base64')] } });
  assert.notEqual(plain.keyFor('https://a.test/').id, pinned.keyFor('https://a.test/').id);
  assert.equal(reordered.keyFor('https://a.test/').id, again.keyFor('https://a.test/').id);
});

test('a malformed pin is INVALID_ARGUMENT when the pool is made', () => {
  assert.throws(() => new ConnectionPool({ tls: { pins: ['md5/abc'] } }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' });
  assert.throws(() => new ConnectionPool({ tls: { pins: 'sha256/x' as unknown as string[] } }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' });
});
