/** Splitting a datagram of coalesced QUIC packets (RFC 9000 §12.2) into its packets. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVersionNegotiation, splitCoalesced } from '../../src/quic/coalesced.js';

/** A two-byte variable-length integer (RFC 9000 §16). */
function varint2(n: number): number[] {
  return [0x40 | (n >> 8), n & 0xff];
}

/** A version 1 long-header packet of `type` with `payloadLength` bytes after its Length field. */
function longPacket(type: number, payloadLength: number, token: number[] = []): Buffer {
  const dcid = [1, 2, 3, 4, 5, 6, 7, 8];
  const scid = [9, 10, 11, 12];
  const header = [0xc0 | (type << 4), 0, 0, 0, 1, dcid.length, ...dcid, scid.length, ...scid];
  // Only an Initial has a token field (a length, then the token).
  const tokenField = type === 0 ? [token.length, ...token] : [];
  return Buffer.from([...header, ...tokenField, ...varint2(payloadLength), ...new Array<number>(payloadLength).fill(0xaa)]);
}

const shortPacket = Buffer.from([0x41, 1, 2, 3, 4, 5, 6, 7, 8, 0xbb, 0xbb, 0xbb]);

test('an Initial, a Handshake and a 1-RTT packet in one datagram come apart at their Length fields', () => {
  const initial = longPacket(0, 40, [7, 7, 7]);
  const handshake = longPacket(2, 30);
  const parts = splitCoalesced(Buffer.concat([initial, handshake, shortPacket]));
  assert.ok(parts !== undefined);
  assert.deepEqual(parts.map((p) => Buffer.from(p)), [initial, handshake, shortPacket]);
});

test('two long-header packets and nothing after them', () => {
  const initial = longPacket(0, 100);
  const zeroRtt = longPacket(1, 20);
  assert.deepEqual(splitCoalesced(Buffer.concat([initial, zeroRtt]))?.map((p) => p.length), [initial.length, zeroRtt.length]);
});

test('a datagram of one packet is left whole (undefined): short header, one long packet, Retry, another version', () => {
  assert.equal(splitCoalesced(shortPacket), undefined);
  assert.equal(splitCoalesced(longPacket(2, 50)), undefined);
  // A Retry has no Length field: it runs to the end, whatever follows.
  assert.equal(splitCoalesced(Buffer.concat([longPacket(3, 10), shortPacket])), undefined);
  const otherVersion = longPacket(2, 10);
  otherVersion[4] = 2;
  assert.equal(splitCoalesced(Buffer.concat([otherVersion, shortPacket])), undefined);
  assert.equal(splitCoalesced(Buffer.alloc(0)), undefined);
});

test('a Length running past the datagram, or a truncated header, leaves the datagram whole for quiche to judge', () => {
  const truncated = longPacket(2, 50).subarray(0, 30);
  assert.equal(splitCoalesced(truncated), undefined);
  assert.equal(splitCoalesced(Buffer.from([0xc0, 0, 0])), undefined);
  // A good packet followed by a broken one: the broken rest is handed over as it is.
  const good = longPacket(2, 10);
  const parts = splitCoalesced(Buffer.concat([good, truncated]));
  assert.deepEqual(parts?.map((p) => p.length), [good.length, truncated.length]);
});

test('more packets than the limit: the datagram is left whole', () => {
  const many = Buffer.concat(Array.from({ length: 9 }, () => longPacket(2, 1)));
  assert.equal(splitCoalesced(many), undefined);
  const eight = Buffer.concat(Array.from({ length: 8 }, () => longPacket(2, 1)));
  assert.equal(splitCoalesced(eight)?.length, 8);
});

test('Version Negotiation is told by its version 0, whatever its first byte says (it can read as a Retry)', () => {
  const vn = Uint8Array.from([0xf3, 0, 0, 0, 0, 4, 1, 2, 3, 4, 0, 0, 0, 0, 0, 1]);
  const retry = Uint8Array.from([0xf0, 0, 0, 0, 1, 4, 1, 2, 3, 4, 0]);
  assert.equal(isVersionNegotiation(vn), true);
  assert.equal(isVersionNegotiation(retry), false);
  assert.equal(isVersionNegotiation(Uint8Array.from([0x40, 0, 0, 0, 0])), false, 'a short header is never one');
});
