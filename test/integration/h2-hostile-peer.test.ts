/**
 * HTTP/2 peers that misbehave on purpose (raw h2c servers writing frames by hand, see
 * test/helpers/h2-frames.ts), on the node:http2 client path.
 *
 * RFC 9113 §8.1: an HTTP/2 response is complete only when a frame with END_STREAM arrives. A
 * body cut short — by RST_STREAM (NO_ERROR or CANCEL), by a node:http2 server closing the stream
 * mid-body, or by the connection closing — fails typed and never reads as a whole body (a cut-off
 * JSON document must not parse as a good one). Raw h2c servers write the frames by hand
 * (test/helpers/h2-frames.ts); one server is node:http2 itself. Interim (1xx) responses are
 * bounded as on every protocol.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { H2_CODE, dataFrame, headersFrame, rstStreamFrame, startRawH2Server } from '../helpers/h2-frames.js';
import { startH2Server } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';

const H2 = { version: HttpVersion.Http2, timeoutMs: 10_000 } as const;

function closeAfter(t: TestContext, ...closers: Array<() => Promise<unknown>>): void {
  t.after(async () => {
    await Promise.allSettled(closers.map((close) => close()));
  });
}

/** Reads the whole body: resolves with its text, or rejects with what cut it. */
async function fetchText(pool: ConnectionPool, url: string): Promise<string> {
  const res = await pool.request(url, H2);
  return res.text();
}

const CUTS: Array<{ name: string; cut: (socket: Socket, streamId: number) => void; codes: string[] }> = [
  { name: 'RST_STREAM(NO_ERROR)', cut: (socket, id) => socket.write(rstStreamFrame(id, H2_CODE.NO_ERROR)), codes: ['MUXPOOL_ERR_BODY_TRUNCATED'] },
  { name: 'RST_STREAM(CANCEL)', cut: (socket, id) => socket.write(rstStreamFrame(id, H2_CODE.CANCEL)), codes: ['MUXPOOL_ERR_STREAM_RESET'] },
  { name: 'RST_STREAM(INTERNAL_ERROR)', cut: (socket, id) => socket.write(rstStreamFrame(id, H2_CODE.INTERNAL_ERROR)), codes: ['MUXPOOL_ERR_STREAM_RESET'] },
  { name: 'the TCP connection closing', cut: (socket) => socket.destroy(), codes: ['MUXPOOL_ERR_BODY_TRUNCATED'] },
  { name: 'the TCP connection half-closed (FIN)', cut: (socket) => socket.end(), codes: ['MUXPOOL_ERR_BODY_TRUNCATED'] },
];

for (const { name, cut, codes } of CUTS) {
  test(`HEADERS and part of the body, then ${name} before END_STREAM: the request fails, never a truncated success`, async (t) => {
    // Regression: node ends the readable side for these too, and its 'end' was taken for
    // END_STREAM: the request resolved 200 and text() gave the partial body.
    const leaks = leakCheck();
    const server = await startRawH2Server((socket, id) => {
      socket.write(headersFrame(id, [[':status', '200'], ['content-type', 'application/json']]));
      socket.write(dataFrame(id, '{"items":[1,2,'));
      setTimeout(() => cut(socket, id), 20);
    });
    const pool = new ConnectionPool();
    closeAfter(t, () => pool.destroy(), () => server.close());
    const err = await rejectsWith(fetchText(pool, `${server.url}/doc`), ...codes);
    assert.equal(err.maybeProcessed, true, 'the server answered: it saw the request');
    await pool.close();
    await server.close();
    await leaks.check();
  });
}

test('the same cut while the consumer has paused the stream (a large body unread) still fails', async (t) => {
  // The 'end' then comes long after the stream closed: END_STREAM must be told apart at arrival.
  const leaks = leakCheck();
  const big = Buffer.alloc(200 * 1024, 0x61);
  const server = await startRawH2Server((socket, id) => {
    socket.write(headersFrame(id, [[':status', '200']]));
    for (let offset = 0; offset < big.length; offset += 16 * 1024) socket.write(dataFrame(id, big.subarray(offset, offset + 16 * 1024)));
    socket.write(rstStreamFrame(id, H2_CODE.NO_ERROR));
  });
  const pool = new ConnectionPool();
  closeAfter(t, () => pool.destroy(), () => server.close());
  const res = await pool.request(`${server.url}/big`, H2);
  // Nobody reads for a while: the exchange pauses the stream at its 64 KiB high-water mark.
  await sleep(100);
  await rejectsWith(res.text(), 'MUXPOOL_ERR_BODY_TRUNCATED');
  await pool.close();
  await server.close();
  await leaks.check();
});

test('a whole body read after a pause, and RST_STREAM(NO_ERROR) after END_STREAM (RFC 9113 §8.1), are successes', async (t) => {
  const leaks = leakCheck();
  const big = Buffer.alloc(200 * 1024, 0x62);
  const server = await startRawH2Server((socket, id) => {
    socket.write(headersFrame(id, [[':status', '200'], ['content-length', String(big.length)]]));
    for (let offset = 0; offset < big.length; offset += 16 * 1024) {
      const last = offset + 16 * 1024 >= big.length;
      socket.write(dataFrame(id, big.subarray(offset, offset + 16 * 1024), last));
    }
    // "Clients MUST NOT discard responses as a result of receiving such a RST_STREAM".
    socket.write(rstStreamFrame(id, H2_CODE.NO_ERROR));
  });
  const pool = new ConnectionPool();
  closeAfter(t, () => pool.destroy(), () => server.close());
  for (let i = 0; i < 2; i++) {
    const res = await pool.request(`${server.url}/big`, H2);
    await sleep(50);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, big.length);
    assert.ok(body.equals(big));
  }
  // END_STREAM on HEADERS, and on trailers.
  await server.close();
  const other = await startRawH2Server((socket, id) => {
    if (id === 1) socket.write(headersFrame(id, [[':status', '204']], true));
    else {
      socket.write(headersFrame(id, [[':status', '200']]));
      socket.write(dataFrame(id, 'body'));
      socket.write(headersFrame(id, [['x-checksum', 'abc']], true));
    }
  });
  closeAfter(t, () => other.close());
  const empty = await pool.request(`${other.url}/`, H2);
  assert.equal(empty.status, 204);
  assert.equal(await empty.text(), '');
  const withTrailers = await pool.request(`${other.url}/`, H2);
  assert.equal(await withTrailers.text(), 'body');
  assert.equal(withTrailers.trailers?.['x-checksum'], 'abc');
  await pool.close();
  await other.close();
  await leaks.check();
});

test('content-length that disagrees with the DATA received is a typed error, not a reset "by the server"', async (t) => {
  const leaks = leakCheck();
  const server = await startRawH2Server((socket, id) => {
    // Stream 1: fewer bytes than announced; stream 3: more.
    socket.write(headersFrame(id, [[':status', '200'], ['content-length', id === 1 ? '10' : '2']]));
    socket.write(dataFrame(id, 'part', true));
  });
  const pool = new ConnectionPool();
  closeAfter(t, () => pool.destroy(), () => server.close());
  for (let i = 0; i < 2; i++) {
    const err = await rejectsWith(fetchText(pool, `${server.url}/`), 'MUXPOOL_ERR_BODY_TRUNCATED');
    assert.match(err.message, /content-length/);
  }
  await pool.close();
  await server.close();
  await leaks.check();
});

test('a node:http2 server that closes the stream with NO_ERROR mid-body: BODY_TRUNCATED by its content-length; the session serves on', async (t) => {
  // Depending on timing, node's server sends RST_STREAM(NO_ERROR) before or after ending its side
  // (END_STREAM); in the second case only the content-length it announced shows the cut (RFC 9113
  // §8.1.1). Either way the body is truncated.
  const leaks = leakCheck();
  const server = await startH2Server((stream, headers) => {
    if (headers[':path'] === '/cut') {
      stream.respond({ ':status': 200, 'content-length': 100 });
      stream.write('{"partial":', () => stream.close(http2.constants.NGHTTP2_NO_ERROR));
    } else {
      stream.respond({ ':status': 200 });
      stream.end('whole');
    }
  });
  const pool = new ConnectionPool();
  closeAfter(t, () => pool.destroy(), () => server.close());
  const first = await pool.request(`${server.url}/cut`, H2);
  await rejectsWith(first.text(), 'MUXPOOL_ERR_BODY_TRUNCATED');
  // A stream error ends only its stream.
  const second = await pool.request(`${server.url}/whole`, H2);
  assert.equal(await second.text(), 'whole');
  assert.equal(second.connectionId, first.connectionId);
  await pool.close();
  await server.close();
  await leaks.check();
});

test('an endless stream of interim (1xx) responses fails with HEADERS_TOO_LARGE at the bound, long before timeoutMs', async (t) => {
  const leaks = leakCheck();
  const timers = new Set<NodeJS.Timeout>();
  const server = await startRawH2Server((socket, id) => {
    const timer = setInterval(() => {
      if (socket.destroyed) clearInterval(timer);
      else socket.write(headersFrame(id, [[':status', '103'], ['link', '</style.css>; rel=preload']]));
    }, 10);
    timers.add(timer);
  });
  const pool = new ConnectionPool({ readTimeoutMs: 60_000 });
  closeAfter(t, () => pool.destroy(), () => server.close(), async () => timers.forEach((timer) => clearInterval(timer)));
  const started = performance.now();
  const err = await rejectsWith(pool.request(`${server.url}/`, { version: HttpVersion.Http2, timeoutMs: 20_000 }), 'MUXPOOL_ERR_HEADERS_TOO_LARGE');
  assert.match(err.message, /interim/);
  assert.ok(performance.now() - started < 10_000);
  for (const timer of timers) clearInterval(timer);
  await pool.close();
  await server.close();
  await leaks.check();
});

test('a server that answers in full before the streamed request body is done: a success, and the upload stops (RFC 9113 §8.1)', async (t) => {
  const leaks = leakCheck();
  const server = await startRawH2Server((socket, id) => {
    // One write: node sees END_STREAM before it has emitted the response head.
    socket.write(Buffer.concat([headersFrame(id, [[':status', '413']]), dataFrame(id, 'too large', true)]));
    // "request that the client abort transmission of a request without error".
    if (id === 3) socket.write(rstStreamFrame(id, H2_CODE.NO_ERROR));
  });
  const pool = new ConnectionPool();
  closeAfter(t, () => pool.destroy(), () => server.close());
  for (let i = 0; i < 2; i++) {
    let produced = 0;
    async function* upload(): AsyncGenerator<Uint8Array> {
      for (; produced < 100; produced++) {
        yield Buffer.alloc(1024, 0x63);
        await sleep(20);
      }
    }
    const res = await pool.request(`${server.url}/upload`, { method: 'POST', body: upload(), version: HttpVersion.Http2, timeoutMs: 10_000 });
    assert.equal(res.status, 413);
    assert.equal(await res.text(), 'too large');
    assert.ok(produced < 100, `the body stopped (${produced} chunks produced)`);
  }
  await pool.close();
  await server.close();
  await leaks.check();
});
