/**
 * `readTimeoutMs` means the same on every protocol (src/protocol/stream-support.ts): a stream
 * fails when it can neither receive nor send for that long. An upload that moves is progress, time
 * spent waiting for the caller's own body is not the peer's fault, and a peer that takes none of
 * the body and answers nothing fails with READ_TIMEOUT rather than waiting for `timeoutMs` (which
 * `close()` would wait for too). `Infinity` means no deadline.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, type Resolver } from '../../src/index.js';
import { H3Server } from '../../src/server/h3.js';
import { rejectsWith } from '../helpers/assert.js';
import { startRawServer } from '../helpers/servers.js';
import { leakCheck } from '../helpers/leaks.js';
import { certs } from '../helpers/certs.js';


const loopback: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];

type Protocol = 'http/1.1' | 'h2' | 'h3';
const PROTOCOLS: readonly Protocol[] = ['http/1.1', 'h2', 'h3'];

/** How a test server answers: read the whole body (or never read it), then answer after `delayMs`. */
interface Behaviour {
  readBody: boolean;
  delayMs: number;
}

interface Served {
  url: string;
  version: HttpVersion;
  /** Request body bytes the server read. */
  received(): number;
  close(): Promise<void>;
}

async function serve(protocol: Protocol, behaviour: Behaviour): Promise<Served> {
  let received = 0;
  const answer = (write: (text: string) => void): void => {
    setTimeout(() => write(`got ${received}`), behaviour.delayMs).unref();
  };
  if (protocol === 'h3') {
    const c = await certs();
    const server = await H3Server.listen({
      cert: c.leafCert,
      key: c.leafKey,
      handler: (req, res) => {
        if (!behaviour.readBody) return;
        req.on('data', (chunk: Buffer) => (received += chunk.length));
        req.on('end', () => answer((text) => res.end(text)));
      },
    });
    return { url: `https://localhost:${server.port}`, version: HttpVersion.Http3Only, received: () => received, close: () => server.close() };
  }
  if (protocol === 'h2') {
    // A small window: a server that does not read grants no credit after the first KiB.
    const server = http2.createServer({ settings: { initialWindowSize: 1024 } });
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (session: http2.ServerHttp2Session) => {
      sessions.add(session);
      session.on('error', () => {});
      session.on('close', () => sessions.delete(session));
    });
    server.on('stream', (stream) => {
      stream.on('error', () => {});
      if (!behaviour.readBody) {
        stream.pause();
        return;
      }
      stream.on('data', (chunk: Buffer) => (received += chunk.length));
      stream.on('end', () =>
        answer((text) => {
          if (stream.destroyed) return;
          stream.respond({ ':status': 200 });
          stream.end(text);
        }),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    return {
      url: `http://127.0.0.1:${port}`,
      version: HttpVersion.Http2,
      received: () => received,
      async close() {
        for (const session of sessions) session.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }
  if (!behaviour.readBody) {
    // Accepts and never reads: the socket's buffers fill and the upload stalls.
    const raw = await startRawServer((socket) => socket.pause());
    return { url: raw.url, version: HttpVersion.Http1_1, received: () => 0, close: () => raw.close() };
  }
  const server = http.createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (received += chunk.length));
    req.on('end', () => answer((text) => res.end(text)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    version: HttpVersion.Http1_1,
    received: () => received,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function newPool(readTimeoutMs: number): Promise<ConnectionPool> {
  return new ConnectionPool({ readTimeoutMs, tls: { ca: (await certs()).caCert }, resolver: loopback, connectTimeoutMs: 5_000 });
}

function closeAfter(t: TestContext, ...closers: Array<() => Promise<unknown>>): void {
  t.after(async () => {
    await Promise.allSettled(closers.map((close) => close()));
  });
}

for (const protocol of PROTOCOLS) {
  test(`${protocol}: an upload that takes longer than readTimeoutMs but keeps moving succeeds`, async (t) => {
    // Regression (HTTP/2): the deadline counted from the stream's start, so once the body was
    // done a sweep found the stream "idle" since then and failed it with READ_TIMEOUT.
    const leaks = leakCheck();
    const server = await serve(protocol, { readBody: true, delayMs: 150 });
    const pool = await newPool(300);
    closeAfter(t, () => pool.destroy(), () => server.close());
    const chunk = Buffer.alloc(1024, 0x61);
    async function* slowBody(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 8; i++) {
        yield chunk;
        await sleep(100);
      }
    }
    const started = performance.now();
    const res = await pool.request(`${server.url}/upload`, { method: 'POST', body: slowBody(), version: server.version, timeoutMs: 10_000 });
    assert.equal(res.protocol, protocol);
    assert.equal(await res.text(), `got ${8 * 1024}`);
    assert.ok(performance.now() - started > 300, 'the exchange outlasted readTimeoutMs');
    await pool.close();
    await server.close();
    await leaks.check();
  });

  test(`${protocol}: a server that takes none of a streamed body and answers nothing fails with READ_TIMEOUT, not at timeoutMs`, async (t) => {
    // Regression (HTTP/2, HTTP/3): a stream still sending was never timed out, so the request
    // waited for timeoutMs, and close() with it.
    const leaks = leakCheck();
    const server = await serve(protocol, { readBody: false, delayMs: 0 });
    const pool = await newPool(400);
    closeAfter(t, () => pool.destroy(), () => server.close());
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    let produced = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      // Bounded only by the peer: at most 256 MiB, far beyond any window or socket buffer here.
      for (let i = 0; i < 4096; i++) {
        produced++;
        yield chunk;
      }
    }
    const started = performance.now();
    const err = await rejectsWith(
      pool.request(`${server.url}/never-read`, { method: 'POST', body: endless(), version: server.version, timeoutMs: 20_000 }),
      'MUXPOOL_ERR_READ_TIMEOUT',
    );
    const elapsed = performance.now() - started;
    assert.equal(err.maybeProcessed, true);
    assert.ok(elapsed < 10_000, `failed after ${Math.round(elapsed)} ms: the read deadline, not timeoutMs`);
    assert.ok(produced < 4096, 'the body was read only as fast as the transport took it');
    const closing = performance.now();
    await pool.close();
    assert.ok(performance.now() - closing < 2_000, 'close() does not wait for the dead stream');
    await server.close();
    await leaks.check();
  });

  test(`${protocol}: readTimeoutMs Infinity means no read deadline`, async (t) => {
    // Regression: HTTP/1.1 passed Infinity to socket.setTimeout (which throws: every dial failed
    // with CONNECT); HTTP/2 and HTTP/3 passed it to setTimeout, which Node turns into 1 ms.
    const leaks = leakCheck();
    const server = await serve(protocol, { readBody: true, delayMs: 50 });
    const pool = await newPool(Infinity);
    closeAfter(t, () => pool.destroy(), () => server.close());
    const res = await pool.request(`${server.url}/`, { method: 'POST', body: 'abc', version: server.version, timeoutMs: 10_000 });
    assert.equal(await res.text(), 'got 3');
    await pool.close();
    await server.close();
    await leaks.check();
  });
}
