/**
 * Interop smoke test: our QUIC driver against Caddy (quic-go), certificate verification on.
 *
 * No HTTP/3 layer exists yet, so the request is a few hand-made bytes (RFC 9114 frames, a
 * QPACK field section of static-table references and one literal): enough to prove that the
 * handshake, ALPN, the peer's unidirectional streams and a request stream all work against an
 * independent implementation.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectQuic } from '../../src/quic/index.js';
import { startCaddy } from '../helpers/caddy.js';
import { leakCheck } from '../helpers/leaks.js';
import { RecordingHandler } from '../helpers/quic.js';
import { rejectsWith } from '../helpers/assert.js';

/** RFC 9000 §16 variable-length integer (values below 2^30 are enough here). */
function varint(value: number): Buffer {
  if (value < 0x40) return Buffer.from([value]);
  if (value < 0x4000) return Buffer.from([0x40 | (value >> 8), value & 0xff]);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((0x80 << 24) | value);
  return out;
}

function frame(type: number, payload: Buffer): Buffer {
  return Buffer.concat([varint(type), varint(payload.length), payload]);
}

/** `GET https://authority/` as a QPACK field section that needs no dynamic table (RFC 9204). */
function getRequestHeaders(authority: string): Buffer {
  const value = Buffer.from(authority, 'latin1');
  assert.ok(value.length < 127);
  return Buffer.concat([
    Buffer.from([0x00, 0x00]), // Required Insert Count 0, Base 0 (§4.5.1)
    Buffer.from([0xc0 | 17]), // indexed, static: :method GET
    Buffer.from([0xc0 | 23]), // indexed, static: :scheme https
    Buffer.from([0xc0 | 1]), // indexed, static: :path /
    Buffer.from([0x50 | 0, value.length]), // literal with static name ref 0 (:authority), no Huffman
    value,
  ]);
}

test('Caddy over HTTP/3: verified handshake, its control streams, and a GET answered', async () => {
  const leaks = leakCheck();
  const caddy = await startCaddy({ body: 'hello from caddy' });
  try {
    const handler = new RecordingHandler();
    const connection = await connectQuic({
      host: '127.0.0.1',
      port: caddy.port,
      servername: 'localhost',
      alpn: ['h3'],
      ca: [caddy.caCert],
      handshakeTimeoutMs: 5_000,
      handler,
    });
    handler.connection = connection;
    assert.equal(connection.alpn, 'h3');

    // RFC 9114 §6.2.1: each side opens a control stream whose first frame is SETTINGS.
    const control = connection.openStream(false);
    connection.write(control, Buffer.concat([varint(0x00), frame(0x04, Buffer.alloc(0))]), false);
    const request = connection.openStream();
    connection.write(request, frame(0x01, getRequestHeaders(`localhost:${caddy.port}`)), true);

    await handler.until(() => handler.finished.has(request), 'the response');
    const response = handler.received(request);
    assert.equal(response[0], 0x01, 'the response starts with a HEADERS frame');
    assert.ok(response.includes(Buffer.from('hello from caddy')), 'the body arrives in a DATA frame');
    // The server's control stream (type 0x00), opened by the peer: what crashed the wrapper.
    await handler.until(() => handler.peerStreams.some(({ id }) => handler.received(id)[0] === 0x00), 'the server control stream');
    assert.ok(handler.peerStreams.every(({ bidirectional }) => !bidirectional));

    // H3_NO_ERROR (RFC 9114 §8.1).
    const info = await connection.close(0x100);
    assert.equal(info.error, undefined);

    // The same server, not trusted: the certificate is refused.
    const otherCa = await startCaddy();
    try {
      await rejectsWith(
        connectQuic({ host: '127.0.0.1', port: caddy.port, servername: 'localhost', alpn: ['h3'], ca: [otherCa.caCert] }),
        'MUXPOOL_ERR_TLS_CERT',
      );
    } finally {
      await otherCa.stop();
    }
  } finally {
    await caddy.stop();
  }
  await leaks.check();
});
