/**
 * An HTTP/2 connection unrefs its socket (and stops its deadline and PING timers) only once it
 * stayed idle past the caller's continuations: a caller that sends its next request as soon as
 * the last response ended pays no unref/ref pair per request, and an idle connection still
 * never holds the process open.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { certs } from '../helpers/certs.js';
import { leakCheck } from '../helpers/leaks.js';

test('back-to-back HTTP/2 requests cost no socket unref each; the idle connection is unref\'d after them', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = http2.createSecureServer({ key: c.leafKey, cert: c.leafCert }, (_req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `https://localhost:${(server.address() as AddressInfo).port}/`;
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const original = tls.TLSSocket.prototype.unref;
  let unrefs = 0;
  try {
    assert.equal(await (await pool.request(url, { version: HttpVersion.Http2 })).text(), 'ok');
    tls.TLSSocket.prototype.unref = function (this: tls.TLSSocket) {
      unrefs++;
      return original.call(this);
    };
    const requests = 50;
    for (let i = 0; i < requests; i++) {
      const res = await pool.request(url, { version: HttpVersion.Http2 });
      assert.equal(res.protocol, 'h2');
      assert.equal(await res.text(), 'ok');
    }
    // process.nextTick ran before the caller's continuation: one unref per request (50).
    assert.ok(unrefs <= 2, `${unrefs} socket unrefs over ${requests} back-to-back requests`);
    // Once idle past a turn of the event loop, the connection lets the process go.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(unrefs >= 1, 'the idle connection was never unref\'d');
    assert.equal((await pool.stats()).dialed, 1);
  } finally {
    tls.TLSSocket.prototype.unref = original;
    await pool.close();
    server.close();
  }
  await leaks.check(pool);
});
