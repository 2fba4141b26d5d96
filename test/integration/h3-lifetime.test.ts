/**
 * How long an HTTP/3 connection lives and what keeps it alive (issue 16, items 4 and 5): the
 * process may exit once no request is in flight; a connection is retired before the idle
 * timeout both sides agreed on; and no stream's unread data can stall the others until the
 * idle timeout strikes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { ManualClock } from '../../src/core/clock.js';
import { connectQuic } from '../../src/quic/index.js';
import { H3Server, type H3RequestHandler } from '../../src/server/h3.js';
import { leakCheck } from '../helpers/leaks.js';
import { RecordingHandler, quicCerts, startQuicServer } from '../helpers/quic.js';
import { certs, startH3 } from '../helpers/certs.js';


const MiB = 1024 * 1024;
const H3 = { version: HttpVersion.Http3Only } as const;

/** `/bytes/N`: N bytes; anything else a short text. */
const bytesHandler: H3RequestHandler = (req, res) => {
  req.resume();
  const match = /^\/bytes\/(\d+)$/.exec(req.url);
  if (match === null) {
    res.end('ok');
    return;
  }
  const n = Number(match[1]);
  res.setHeader('content-length', n);
  res.end(Buffer.alloc(n, 120));
};

test('a response left unread does not stall the other streams of its connection', async () => {
  const leaks = leakCheck();
  const { server, url } = await startH3(bytesHandler);
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert } });
  // More than quiche's first connection-level credit used to be (10 MiB), one response after
  // another: past it, quiche 0.18 replenishes only a small window (48 KiB to start, doubled only
  // when credit runs out twice within two round trips), which one paused stream could fill.
  let warm;
  for (let i = 0; i < 176; i++) {
    warm = await pool.request(`${url}/bytes/${64 * 1024}`, H3);
    assert.equal((await warm.bytes()).byteLength, 64 * 1024);
  }
  assert.ok(warm !== undefined);
  // Held, never read: the client stops taking its data, and quiche keeps what arrives.
  const unread = await pool.request(`${url}/bytes/${4 * MiB}`, H3);
  assert.equal(unread.connectionId, warm.connectionId);
  // A bound that the old code failed by waiting for the 30 s idle timeout, not a speed test.
  const started = performance.now();
  const other = await pool.request(`${url}/bytes/${2 * MiB}`, { ...H3, timeoutMs: 10_000 });
  assert.equal(other.connectionId, warm.connectionId);
  assert.equal((await other.bytes()).byteLength, 2 * MiB);
  assert.ok(performance.now() - started < 10_000);
  await unread.dump();
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('STOP_SENDING on a stream holding unread data gives its connection credit back', async () => {
  const leaks = leakCheck();
  // The echo server sends each stream back; the client grants 256 KiB per connection.
  const server = await startQuicServer();
  const handler = new RecordingHandler();
  const connection = await connectQuic({
    host: '127.0.0.1',
    port: server.port,
    servername: 'localhost',
    alpn: ['h3'],
    ca: [(await quicCerts()).caCert],
    transport: { initialMaxData: 256 * 1024, initialMaxStreamDataBidiLocal: 256 * 1024 },
    handler,
  });
  handler.connection = connection;
  const body = Buffer.alloc(200 * 1024, 7);
  // Stream a: its echo is never read, then the client stops it.
  const a = connection.openStream();
  connection.pauseStream(a);
  await handler.writeAll(a, body, true);
  const serverSide = server.handlers[0] as RecordingHandler;
  await serverSide.until(() => serverSide.finished.has(a), 'the server to receive stream a');
  // Loopback: the echo lands in quiche's buffer for stream a within a few milliseconds.
  await sleep(200);
  connection.stopSending(a, 0);
  // quiche 0.18 dropped those 200 KiB without counting them as consumed: the server could then
  // send only the 56 KiB left of the connection's credit, and stream b stalled for good.
  const b = connection.openStream();
  await handler.writeAll(b, body, true);
  await handler.until(() => handler.finished.has(b), 'the echo of stream b');
  assert.equal(handler.received(b).length, body.length);
  await connection.close();
  await server.close();
  await leaks.check();
});

test('the process exits soon after its last HTTP/3 request, without pool.close()', async () => {
  const { server, url } = await startH3(bytesHandler);
  // The child makes one request, reads the body, says so, and does nothing more: it exits once
  // nothing keeps its event loop alive. The old code kept the UDP socket referenced as long as
  // the HTTP/3 control stream was open: until the 30 s idle timeout.
  const index = new URL('../../src/index.js', import.meta.url).href;
  const script = `
    import { ConnectionPool, HttpVersion } from ${JSON.stringify(index)};
    const pool = new ConnectionPool({ tls: { ca: process.env.TEST_CA } });
    const res = await pool.request(${JSON.stringify(`${url}/bytes/65536`)}, { version: HttpVersion.Http3Only });
    const body = await res.bytes();
    console.log(res.protocol, body.byteLength);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, TEST_CA: (await certs()).caCert },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  let doneAt = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    doneAt ||= performance.now();
  });
  const exitLimitMs = 5_000;
  // A bound on waiting, not a speed test: the child gets 15 s before it is killed.
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(killer);
  const lingeredMs = performance.now() - doneAt;
  await server.close();
  assert.equal(output.trim(), 'h3 65536');
  assert.equal(signal, null, 'the child was still alive 15 s after starting');
  assert.equal(code, 0);
  assert.ok(lingeredMs < exitLimitMs, `the child lived ${Math.round(lingeredMs)} ms after its response`);
});

test('an idle connection retires a margin before the idle timeout agreed with the server, not only ours', async () => {
  const leaks = leakCheck();
  // RFC 9000 §10.1: the idle timeout is the smaller of both sides'. Ours is 30 s, the server's
  // 1.5 s: with the 1 s margin, the connection may be handed out for about 0.5 s after the last
  // packet. The old code counted from our own 30 s and would hand it out until the server's
  // timeout struck, a request then racing the server forgetting the connection.
  const { server, url } = await startH3(bytesHandler, { idleTimeoutMs: 1_500 });
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert }, quicIdleTimeoutMs: 30_000, keepAliveMarginMs: 1_000 });
  const first = await pool.request(`${url}/`, H3);
  assert.equal(await first.text(), 'ok');
  const again = await pool.request(`${url}/`, H3);
  assert.equal(await again.text(), 'ok');
  assert.equal(again.connectionId, first.connectionId, 'reused at once');
  // Past the retirement point, before the server's timeout.
  await sleep(800);
  const later = await pool.request(`${url}/`, H3);
  assert.equal(await later.text(), 'ok');
  assert.notEqual(later.connectionId, first.connectionId, 'a connection this close to the server’s idle timeout is not reused');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a request held for stream credit keeps the process alive until it completes', async () => {
  // One stream at a time: the second request waits for the first, then for the MAX_STREAMS that
  // follows it a round trip later, with no request stream open meanwhile.
  const c = await certs();
  const server = await H3Server.listen({ cert: c.leafCert, key: c.leafKey, maxConcurrentStreams: 1, handler: bytesHandler });
  const url = `https://localhost:${server.port}`;
  const index = new URL('../../src/index.js', import.meta.url).href;
  const script = `
    import { ConnectionPool, HttpVersion } from ${JSON.stringify(index)};
    const pool = new ConnectionPool({ tls: { ca: process.env.TEST_CA } });
    const one = async () => (await (await pool.request(${JSON.stringify(`${url}/bytes/1000`)}, { version: HttpVersion.Http3Only })).bytes()).byteLength;
    for (let round = 0; round < 5; round++) console.log((await Promise.all([one(), one(), one()])).join(' '));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, TEST_CA: c.caCert },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(killer);
  await server.close();
  // Node exits with 13 when the event loop empties under a pending top-level await.
  assert.equal(code, 0, `exit code ${code}, output ${JSON.stringify(output)}`);
  assert.equal(output.trim().split('\n').length, 5);
});

test('a request the idle timeout overtook before it left is retried as not processed (a POST too)', async () => {
  const leaks = leakCheck();
  // The server forgets an idle connection after 1 s. The pool runs on a manual clock, so it
  // hands that connection out however long it really sat idle; the driver's timers fire only
  // when the test says: the idle timer fires between the request's write and the turn that
  // would have sent it, as it does when the event loop is late.
  const { server, url } = await startH3(bytesHandler, { idleTimeoutMs: 1_000 });
  const clock = new ManualClock();
  const pool = new ConnectionPool({ tls: { ca: (await certs()).caCert }, clock });
  const first = await pool.request(`${url}/`, H3);
  assert.equal(await first.text(), 'ok');
  // Past the idle timeout for real (quiche makes it at least 3 × PTO; far less on loopback).
  await sleep(2_500);
  const pending = pool.request(`${url}/`, { ...H3, method: 'POST', body: new Uint8Array([1, 2, 3]) });
  // The stream was opened and written synchronously by request(); its turn is still to come.
  clock.advance(1_000);
  const res = await pending;
  assert.equal(await res.text(), 'ok');
  assert.notEqual(res.connectionId, first.connectionId);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});
