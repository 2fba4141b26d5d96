/**
 * Lenient HTTP/1.1 framing and response fields, over real raw TCP servers that write the
 * hostile bytes on purpose (issue 16, items 3, 10, 13, 16): ambiguous framing is refused and the
 * connection closed, HTTP/1.0 transfer-coded responses are never followed by another request on
 * the same socket, and header records read back exactly what the server sent on HTTP/1.1 and
 * HTTP/2 alike (HTTP/3 is covered in h3-bad-input.test.ts).
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { test } from 'node:test';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { startH2Server } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';
import { onRequestHeads, startRawServer } from '../helpers/servers.js';

/** A raw server that answers every request head with `response(index)` bytes. */
function rawResponder(response: (index: number) => string, after?: (socket: net.Socket) => void) {
  return startRawServer((socket) => {
    onRequestHeads(socket, (_head, index) => {
      socket.write(response(index), 'latin1');
      after?.(socket);
    });
  });
}

test('ambiguous or undecodable framing fails with H1_PARSE and the connection is closed, not reused', async (t) => {
  const cases: Array<[string, string]> = [
    // RFC 9112 §6.3 step 3: both framings "ought to be handled as an error".
    ['Content-Length and Transfer-Encoding: chunked', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['Transfer-Encoding: chunked and Content-Length', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    // Only chunked is decoded: gzip bytes must not come out as a 200 body.
    ['Transfer-Encoding: gzip, chunked', 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['Transfer-Encoding whose last coding is not chunked', 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nzzz'],
    // RFC 9112 §5.2: obs-fold is refused, not unfolded.
    ['obsolete line folding', 'HTTP/1.1 200 OK\r\nx-folded: a\r\n b\r\ncontent-length: 2\r\n\r\nok'],
    // RFC 9110 §5.5: NUL in a value; a name that is not a token.
    ['NUL in a field value', 'HTTP/1.1 200 OK\r\nx-nul: a\0b\r\ncontent-length: 2\r\n\r\nok'],
    ['a field name with a space', 'HTTP/1.1 200 OK\r\nx bad: a\r\ncontent-length: 2\r\n\r\nok'],
  ];
  for (const [name, response] of cases) {
    await t.test(name, async () => {
      const leaks = leakCheck();
      const server = await rawResponder(() => response);
      const pool = new ConnectionPool();
      const err = await rejectsWith(pool.request(server.url), 'MUXPOOL_ERR_H1_PARSE');
      assert.equal(err.origin, 'remote');
      assert.equal((await pool.stats()).totalConnections, 0, 'the broken connection is gone');
      await pool.close();
      await server.close();
      await leaks.check(pool);
    });
  }
});

test('an HTTP/1.0 response with Connection: keep-alive and chunked framing: the connection is closed after it', async () => {
  const leaks = leakCheck();
  const server = await rawResponder(() => 'HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
  const pool = new ConnectionPool();
  const first = await pool.request(server.url);
  assert.equal(await first.text(), 'ok');
  const second = await pool.request(server.url);
  assert.equal(await second.text(), 'ok');
  // RFC 9112 §6.1: faulty framing, "close the connection after processing the message".
  assert.equal(second.reused, false);
  assert.notEqual(second.connectionId, first.connectionId);
  assert.equal(server.connections, 2);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('HTTP/1.0 keep-alive with Content-Length persists, but not when Connection also says close', async () => {
  const leaks = leakCheck();
  const server = await rawResponder((index) =>
    index === 0
      ? 'HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok'
      : 'HTTP/1.0 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 2\r\n\r\nok',
  );
  const pool = new ConnectionPool();
  const first = await pool.request(server.url);
  assert.equal(await first.text(), 'ok');
  const second = await pool.request(server.url);
  assert.equal(await second.text(), 'ok');
  assert.equal(second.reused, true, 'RFC 9112 §9.3: an HTTP/1.0 keep-alive response may persist');
  const third = await pool.request(server.url);
  assert.equal(await third.text(), 'ok');
  assert.equal(third.reused, false, 'close wins over keep-alive');
  assert.equal(server.connections, 2);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a chunk size with more than 16 leading zeros is accepted: only its value must fit', async () => {
  const leaks = leakCheck();
  const zeros = '0'.repeat(32);
  const server = await rawResponder(() => `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${zeros}5\r\nhello\r\n${zeros}\r\n\r\n`);
  const pool = new ConnectionPool();
  const first = await pool.request(server.url);
  assert.equal(await first.text(), 'hello');
  const second = await pool.request(server.url);
  assert.equal(await second.text(), 'hello');
  assert.equal(second.reused, true);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

const PROTOTYPE_NAMES: Array<[string, string]> = [
  ['constructor', 'foo'],
  ['__proto__', 'bar'],
  ['tostring', 'baz'],
  ['valueof', '1'],
];

function assertPrototypeNames(headers: Record<string, unknown>, protocol: string): void {
  for (const [name, value] of PROTOTYPE_NAMES) assert.equal(headers[name], value, `${protocol}: ${name}`);
  assert.equal(Object.getPrototypeOf(headers), null, `${protocol}: the header record inherits nothing`);
}

test('response headers named after Object.prototype members read back as sent over HTTP/1.1', async () => {
  const leaks = leakCheck();
  const fields = PROTOTYPE_NAMES.map(([name, value]) => `${name}: ${value}\r\n`).join('');
  const server = await rawResponder(
    () => `HTTP/1.1 200 OK\r\n${fields}transfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n${fields}\r\n`,
  );
  const pool = new ConnectionPool();
  const res = await pool.request(server.url);
  assertPrototypeNames(res.headers, 'http/1.1 headers');
  assert.equal(await res.text(), 'ok');
  assert.ok(res.trailers !== undefined);
  assertPrototypeNames(res.trailers, 'http/1.1 trailers');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('response headers named after Object.prototype members read back as sent over HTTP/2', async () => {
  const leaks = leakCheck();
  const server = await startH2Server((stream) => {
    const headers: Record<string, string | number> = { ':status': 200 };
    for (const [name, value] of PROTOTYPE_NAMES) Object.defineProperty(headers, name, { value, enumerable: true });
    stream.respond(headers, { waitForTrailers: true });
    stream.on('wantTrailers', () => {
      const trailers: Record<string, string> = {};
      for (const [name, value] of PROTOTYPE_NAMES) Object.defineProperty(trailers, name, { value, enumerable: true });
      stream.sendTrailers(trailers);
    });
    stream.end('ok');
  });
  const pool = new ConnectionPool();
  const res = await pool.request(`${server.url}/`, { version: HttpVersion.Http2 });
  assert.equal(res.protocol, 'h2');
  assertPrototypeNames(res.headers, 'h2 headers');
  assert.equal(await res.text(), 'ok');
  assert.ok(res.trailers !== undefined);
  assertPrototypeNames(res.trailers, 'h2 trailers');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});
