/**
 * Socket reads past the Readable stream (core/direct-read.ts), on real TLS sockets: a reader
 * gets every byte in order and may keep what it got (the shared read buffer and the slabs are
 * never written over under it); without a reader the socket is an ordinary stream, with
 * backpressure; and an HTTP/2 exchange over such a socket, small or bulk, arrives intact.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { attachDirectReader, directReadOptions, markDirect } from '../../src/core/direct-read.js';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { certs } from '../helpers/certs.js';
import { startTestEngine } from '../helpers/h2-engine.js';
import { leakCheck } from '../helpers/leaks.js';

/** A TLS server that writes `payload` to each client, in writes of `writeBytes` (each its own TLS record or more). */
async function payloadServer(payload: Buffer, writeBytes: number): Promise<{ port: number; ca: string; close(): void }> {
  const c = await certs();
  const server = tls.createServer({ key: c.leafKey, cert: c.leafCert }, (socket) => {
    socket.on('error', () => {});
    for (let i = 0; i < payload.length; i += writeBytes) socket.write(payload.subarray(i, i + writeBytes));
    socket.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, ca: c.caCert, close: () => server.close() };
}

function dialDirect(port: number, ca: string): tls.TLSSocket {
  const options: tls.ConnectionOptions & { onread: ReturnType<typeof directReadOptions> } = {
    host: '127.0.0.1',
    port,
    ca,
    servername: 'localhost',
    onread: directReadOptions(),
  };
  const socket = tls.connect(options);
  markDirect(socket, options.onread);
  return socket;
}

test('an attached reader gets every byte in order, and what it kept is never written over (small and large reads mixed)', async () => {
  // Large writes fill TLS records (slab reads), small ones do not (shared-buffer reads): both
  // kinds, interleaved, and every chunk held until the end before it is compared.
  const payload = randomBytes(3 * 1024 * 1024 + 12_345);
  const server = await payloadServer(payload, 40_000);
  const small = await payloadServer(payload.subarray(0, 200_000), 700);
  try {
    for (const s of [server, small]) {
      const socket = dialDirect(s.port, s.ca);
      const kept: Buffer[] = [];
      await once(socket, 'secureConnect');
      assert.equal(attachDirectReader(socket, { onSocketRead: (bytes) => kept.push(bytes) }), true);
      await once(socket, 'end');
      const expected = s === server ? payload : payload.subarray(0, 200_000);
      assert.ok(kept.length > 1);
      assert.ok(Buffer.concat(kept).equals(expected), 'bytes a reader kept changed, or arrived out of order');
      socket.destroy();
    }
  } finally {
    server.close();
    small.close();
  }
});

test('without a reader the socket is an ordinary stream: data events, pause with backpressure, and bytes read before a reader attaches go to it first', async () => {
  const payload = randomBytes(2 * 1024 * 1024);
  const server = await payloadServer(payload, 64 * 1024);
  try {
    const socket = dialDirect(server.port, server.ca);
    await once(socket, 'secureConnect');
    // Not flowing: the socket fills its buffer up to the high-water mark and stops reading.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(socket.readableLength > 0, 'nothing was buffered before a reader attached');
    assert.ok(socket.readableLength < payload.length, 'the unread socket did not stop reading at its high-water mark');
    // Some through 'data', then the rest to a reader.
    const viaStream: Buffer[] = [];
    await new Promise<void>((resolve) => {
      const onData = (chunk: Buffer): void => {
        viaStream.push(chunk);
        // Paused before the stream emits more: what it still holds goes to the reader.
        socket.pause();
        socket.off('data', onData);
        resolve();
      };
      socket.on('data', onData);
    });
    const viaReader: Buffer[] = [];
    attachDirectReader(socket, { onSocketRead: (bytes) => viaReader.push(bytes) });
    await once(socket, 'end');
    assert.ok(viaReader.length > 0);
    assert.ok(Buffer.concat([...viaStream, ...viaReader]).equals(payload));
    socket.destroy();
  } finally {
    server.close();
  }
});

test('a socket made without directReadOptions is left alone', async () => {
  const server = await payloadServer(Buffer.from('hello'), 5);
  try {
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: server.ca, servername: 'localhost' });
    await once(socket, 'secureConnect');
    assert.equal(attachDirectReader(socket, { onSocketRead: () => assert.fail('read by the direct reader') }), false);
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    assert.equal(chunk.toString(), 'hello');
    socket.destroy();
  } finally {
    server.close();
  }
});

test('HTTP/2 over direct reads: small responses back to back and a bulk body arrive intact; HTTP/1.1 over a socket offered h2 too', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const bulk = randomBytes(8 * 1024 * 1024 + 3);
  const server = http2.createSecureServer({ key: c.leafKey, cert: c.leafCert, allowHTTP1: true }, (req, res) => {
    if (req.url === '/bulk') res.end(bulk);
    else res.end(`${req.httpVersion} ${req.url}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `https://localhost:${(server.address() as AddressInfo).port}`;
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  try {
    for (let i = 0; i < 20; i++) assert.equal(await (await pool.request(`${origin}/${i}`)).text(), `2.0 /${i}`);
    const parts: Buffer[] = [];
    for await (const chunk of (await pool.request(`${origin}/bulk`)).body) parts.push(chunk as Buffer);
    assert.ok(Buffer.concat(parts).equals(bulk), 'the bulk body differs');
    assert.equal((await (await pool.request(`${origin}/bulk`)).bytes()).equals(bulk), true);
    assert.equal(await (await pool.request(`${origin}/after`)).text(), '2.0 /after');
    assert.equal((await pool.stats()).dialed, 1);
  } finally {
    await pool.close();
  }
  // The same server speaking HTTP/1.1 (the client offered h2 and http/1.1; ALPN picked 1.1):
  // the socket was made for direct reads, and without a reader it is read as a stream.
  const h1Server = tls.createServer({ key: c.leafKey, cert: c.leafCert, ALPNProtocols: ['http/1.1'] }, (socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${bulk.length}\r\n\r\n`);
      socket.end(bulk);
    });
  });
  h1Server.listen(0, '127.0.0.1');
  await once(h1Server, 'listening');
  const pool1 = new ConnectionPool({ tls: { ca: c.caCert } });
  try {
    const res = await pool1.request(`https://localhost:${(h1Server.address() as AddressInfo).port}/`, { version: HttpVersion.Auto });
    assert.equal(res.protocol, 'http/1.1');
    assert.ok((await res.bytes()).equals(bulk));
  } finally {
    await pool1.close();
    h1Server.close();
    server.close();
  }
  await leaks.check();
});

test('bytes already buffered when the HTTP/2 engine starts are read after its preface is queued (the server SETTINGS waiting on the socket)', async () => {
  const c = await certs();
  const server = http2.createSecureServer({ key: c.leafKey, cert: c.leafCert });
  const sessionErrors: string[] = [];
  server.on('session', (session) => session.on('error', (err: Error) => sessionErrors.push(err.message)));
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end('after buffered settings');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const onread = directReadOptions();
  const socket = tls.connect({ host: '127.0.0.1', port, ca: c.caCert, servername: 'localhost', ALPNProtocols: ['h2'], onread } as tls.ConnectionOptions);
  markDirect(socket, onread);
  try {
    await once(socket, 'secureConnect');
    // The server's SETTINGS arrives before any reader: it waits in the socket's own stream.
    const deadline = Date.now() + 5_000;
    // Bounded: until the bytes are there or the deadline passes.
    while (socket.readableLength === 0 && Date.now() < deadline) await sleep(5);
    assert.ok(socket.readableLength > 0, 'the server sent nothing before the engine started');
    const view = await startTestEngine(socket, `https://127.0.0.1:${port}`, { readTimeoutMs: 5_000 });
    const body: Buffer[] = [];
    const status = await new Promise<number>((resolve, reject) => {
      let code = 0;
      view.openStream({ method: 'GET', path: '/', authority: `127.0.0.1:${port}`, scheme: 'https', headers: [], contentLength: null }, null, {
        onResponse: (s) => {
          code = s;
        },
        onData: (chunk) => (body.push(Buffer.from(chunk)), true),
        onTrailers: () => {},
        onComplete: () => resolve(code),
        onError: reject,
      });
    });
    // On the old order the SETTINGS ACK went out before the client preface: the server saw a
    // bad preface and dropped the connection.
    assert.equal(status, 200);
    assert.equal(Buffer.concat(body).toString(), 'after buffered settings');
    assert.deepEqual(sessionErrors, []);
    view.destroy();
  } finally {
    socket.destroy();
    server.close();
  }
});

test('a socket drops its slab once reads are small again: the next large read gets a new one, the old one stays with whoever holds its views', () => {
  const options = directReadOptions();
  const pushed: Buffer[] = [];
  // No reader attached: the callback pushes into the socket's stream, here a stand-in.
  const socket = { push: (bytes: Buffer) => (pushed.push(bytes), true) } as unknown as tls.TLSSocket;
  const read = (length: number): Uint8Array => {
    const buffer = options.buffer();
    (buffer as Buffer).fill(length & 0xff, 0, length);
    options.callback.call(socket, length, buffer);
    return buffer;
  };
  read(16 * 1024); // large, into the shared buffer: the next reads go to a slab
  const slabRead = read(16 * 1024);
  read(100); // small, still in that slab; then back to the shared buffer
  read(100);
  read(16 * 1024);
  const nextSlabRead = read(16 * 1024);
  assert.notEqual(nextSlabRead.buffer, slabRead.buffer, 'the socket kept its old slab while its reads were small');
  // What was handed out from the old slab is intact.
  assert.ok(pushed[1]?.every((byte) => byte === ((16 * 1024) & 0xff)));
  assert.ok(pushed[2]?.every((byte) => byte === 100));
});
