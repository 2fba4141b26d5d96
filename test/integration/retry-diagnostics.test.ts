/**
 * Retry safety as data: which failures are retried, for which methods, how often; and the
 * diagnostics channels that tell what the pool decided.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { test } from 'node:test';
import { ConnectionPool, HttpVersion, MuxpoolError } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { H3Server } from '../../src/server/h3.js';
import { respondText, startH2Server } from '../helpers/h2.js';
import { recordChannel } from '../helpers/diagnostics.js';
import { leakCheck } from '../helpers/leaks.js';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } = http2.constants;

async function failure(promise: Promise<unknown>): Promise<MuxpoolError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof MuxpoolError, String(err));
    return err;
  }
  assert.fail('expected the request to fail');
}

test('the retry matrix: not-processed failures are retried for every method up to maxRetries; maybe-processed ones only when idempotent', async () => {
  const leaks = leakCheck();
  const certs = await generateCertificates();
  const seen = new Map<string, number>();
  const server = await startH2Server((stream, headers) => {
    const path = String(headers[':path']);
    const tag = `${String(headers[':method'])} ${path}`;
    seen.set(tag, (seen.get(tag) ?? 0) + 1);
    stream.on('error', () => {});
    if (path === '/refused') stream.close(NGHTTP2_REFUSED_STREAM);
    else if (path === '/reset') stream.close(NGHTTP2_INTERNAL_ERROR);
    else respondText(stream, 'ok');
  }, { certs });
  const methods = ['GET', 'HEAD', 'PUT', 'DELETE', 'POST', 'PATCH'];
  for (const maxRetries of [0, 1, 2]) {
    seen.clear();
    const pool = new ConnectionPool({ tls: { ca: certs.caCert }, maxRetries });
    await (await pool.request(`${server.url}/warm`)).text(); // later requests ride a reused connection
    for (const method of methods) {
      const body = method === 'GET' || method === 'HEAD' || method === 'DELETE' ? undefined : 'payload';
      // REFUSED_STREAM: the server processed nothing, so every method is retried.
      const refused = await failure(pool.request(`${server.url}/refused`, { method, body }));
      assert.equal(refused.code, 'MUXPOOL_ERR_STREAM_REFUSED');
      assert.equal(refused.maybeProcessed, false);
      assert.equal(refused.attempts, maxRetries + 1, `${method} /refused with maxRetries ${maxRetries}`);
      assert.equal(seen.get(`${method} /refused`), maxRetries + 1);
      // A reset with an error code before any response: maybe processed, so only idempotent
      // methods on a reused connection are sent again.
      const reset = await failure(pool.request(`${server.url}/reset`, { method, body }));
      assert.equal(reset.code, 'MUXPOOL_ERR_STREAM_RESET');
      assert.equal(reset.maybeProcessed, true);
      const idempotent = method !== 'POST' && method !== 'PATCH';
      const expected = idempotent ? maxRetries + 1 : 1;
      assert.equal(reset.attempts, expected, `${method} /reset with maxRetries ${maxRetries}`);
      assert.equal(seen.get(`${method} /reset`), expected);
    }
    await pool.close();
    await leaks.check(pool);
  }
  await server.close();
});

test('the retry matrix, continued: a refused connection and H3_REQUEST_REJECTED are retried for every method; a reused HTTP/1.1 socket closed after the request was written only for idempotent ones', async () => {
  const leaks = leakCheck();
  const methods = ['GET', 'HEAD', 'PUT', 'DELETE', 'POST', 'PATCH'];
  const bodyFor = (method: string): string | undefined => (method === 'GET' || method === 'HEAD' || method === 'DELETE' ? undefined : 'payload');

  // A refused connection: nothing listens on the port, so nothing can have been processed.
  const closed = net.createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const refusedPort = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const dials = recordChannel('muxpool:dial:start');
  for (const maxRetries of [0, 2]) {
    const pool = new ConnectionPool({ maxRetries });
    for (const method of methods) {
      dials.events.length = 0;
      const err = await failure(pool.request(`http://127.0.0.1:${refusedPort}/`, { method, body: bodyFor(method) }));
      assert.equal(err.code, 'MUXPOOL_ERR_CONNECT_REFUSED');
      assert.equal(err.maybeProcessed, false);
      assert.equal(err.attempts, maxRetries + 1, `${method} to a refusing port with maxRetries ${maxRetries}`);
      assert.equal(dials.events.length, maxRetries + 1);
    }
    await pool.close();
    await leaks.check(pool);
  }
  dials.stop();

  // HTTP/1.1: the second request on a connection is read, then the socket is closed without a
  // byte of response. The server may have acted on it: only idempotent methods are replayed.
  const seen = new Map<string, number>();
  const perSocket = new WeakMap<net.Socket, number>();
  const h1 = http.createServer((req, res) => {
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    const tag = `${req.method ?? ''} ${req.url ?? ''}`;
    seen.set(tag, (seen.get(tag) ?? 0) + 1);
    if (n >= 2) {
      req.socket.destroy();
      return;
    }
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  h1.listen(0, '127.0.0.1');
  await once(h1, 'listening');
  const h1Url = `http://127.0.0.1:${(h1.address() as net.AddressInfo).port}`;
  const h1Leaks = leakCheck(); // taken with the server listening (its connection-tracking timer is its own)
  for (const maxRetries of [0, 1]) {
    seen.clear();
    for (const method of methods) {
      const pool = new ConnectionPool({ maxRetries, maxPerHost: 1 });
      await (await pool.request(`${h1Url}/warm`)).text();
      const idempotent = method !== 'POST' && method !== 'PATCH';
      const expected = idempotent ? maxRetries + 1 : 1;
      const request = pool.request(`${h1Url}/stale`, { method, body: bodyFor(method) });
      if (expected > 1) {
        // Replayed on a connection of its own, where it is the first request and succeeds.
        const res = await request;
        assert.equal(res.attempts, 2, `${method} /stale with maxRetries ${maxRetries}`);
        await res.text();
      } else {
        const err = await failure(request);
        assert.equal(err.maybeProcessed, true, `${method}: ${err.code}`);
        assert.equal(err.attempts, 1, `${method} /stale with maxRetries ${maxRetries}`);
      }
      assert.equal(seen.get(`${method} /stale`), expected, `${method} /stale reached the server`);
      await pool.close();
      await h1Leaks.check(pool);
    }
  }
  h1.closeAllConnections();
  await new Promise<void>((resolve) => h1.close(() => resolve()));

  // HTTP/3: H3_REQUEST_REJECTED says the request was not processed (RFC 9114 §4.1.1).
  const certs = await generateCertificates();
  seen.clear();
  const h3 = await H3Server.listen({
    cert: certs.leafCert,
    key: certs.leafKey,
    handler: (req, res) => {
      const tag = `${req.method} ${req.url}`;
      seen.set(tag, (seen.get(tag) ?? 0) + 1);
      req.resume();
      res.reject();
    },
  });
  const h3Leaks = leakCheck(); // taken with the server's socket open
  for (const maxRetries of [0, 2]) {
    seen.clear();
    const pool = new ConnectionPool({ tls: { ca: certs.caCert }, maxRetries });
    for (const method of methods) {
      const err = await failure(pool.request(`https://localhost:${h3.port}/rejected`, { method, body: bodyFor(method), version: HttpVersion.Http3Only }));
      assert.equal(err.code, 'MUXPOOL_ERR_STREAM_REFUSED');
      assert.equal(err.maybeProcessed, false);
      assert.equal(err.attempts, maxRetries + 1, `${method} rejected with maxRetries ${maxRetries}`);
      assert.equal(seen.get(`${method} /rejected`), maxRetries + 1);
    }
    await pool.close();
    await h3Leaks.check(pool);
  }
  await h3.close();
  await leaks.check();
});

test('diagnostics channels: dial start and end, reuse, retry, queue wait, GOAWAY', async () => {
  const leaks = leakCheck();
  const certs = await generateCertificates();
  let refuse = 1;
  const server = await startH2Server((stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] === '/flaky' && refuse-- > 0) {
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (headers[':path'] === '/goaway') {
      respondText(stream, 'bye');
      stream.session?.goaway(0, stream.id);
      return;
    }
    respondText(stream, 'ok');
  }, { certs });
  const events: Array<[string, Record<string, unknown>]> = [];
  const names = ['muxpool:dial:start', 'muxpool:dial:end', 'muxpool:reuse', 'muxpool:retry', 'muxpool:queue:wait', 'muxpool:goaway'];
  const listeners = names.map((name) => {
    const listener = (message: unknown): void => {
      events.push([name, message as Record<string, unknown>]);
    };
    diagnostics.subscribe(name, listener);
    return [name, listener] as const;
  });
  try {
    const pool = new ConnectionPool({ tls: { ca: certs.caCert } });
    await (await pool.request(`${server.url}/first`)).text();
    await (await pool.request(`${server.url}/flaky`)).text();
    await (await pool.request(`${server.url}/goaway`)).text();
    await pool.close();
    await server.close();
    await leaks.check(pool);
  } finally {
    for (const [name, listener] of listeners) diagnostics.unsubscribe(name, listener);
  }
  const kinds = events.map(([name]) => name);
  assert.deepEqual(kinds.slice(0, 3), ['muxpool:dial:start', 'muxpool:dial:end', 'muxpool:queue:wait']);
  const dialEnd = events.find(([name]) => name === 'muxpool:dial:end')?.[1];
  assert.equal(dialEnd?.['protocol'], 'h2');
  assert.equal(typeof dialEnd?.['durationMs'], 'number');
  assert.ok(kinds.includes('muxpool:reuse'));
  const retry = events.find(([name]) => name === 'muxpool:retry')?.[1];
  assert.equal(retry?.['attempt'], 2);
  assert.equal((retry?.['error'] as MuxpoolError | undefined)?.code, 'MUXPOOL_ERR_STREAM_REFUSED');
  const goaway = events.find(([name]) => name === 'muxpool:goaway')?.[1];
  assert.equal(goaway?.['protocol'], 'h2');
});
