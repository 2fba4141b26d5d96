/**
 * QUIC variable-length integers (RFC 9000 §16): the two high bits of the first byte give the
 * length (1, 2, 4 or 8 bytes), the rest is the value in network byte order, up to 2^62 - 1.
 *
 * JavaScript numbers hold integers exactly up to 2^53 - 1, so the encoder refuses larger values,
 * and `readVarint` reports a larger value as a protocol error. Peers do send larger values where
 * they are legal and harmless to round: reserved "grease" frame, stream and setting types are
 * 0x1f * N + 0x21 for N up to about 2^57, and a GOAWAY may carry 2^62 - 4 (RFC 9114 §5.2). The
 * stream decoders read those with `readVarintAt`, which rounds instead of failing.
 */
import { internalError } from '../../errors.js';
import { H3_FRAME_ERROR, h3Error } from './codes.js';

/** The largest value a QUIC varint can hold (RFC 9000 §16). */
export const MAX_VARINT = 2 ** 62 - 1;

const TWO_POW_32 = 2 ** 32;

/** Bytes needed to encode `value` in the shortest form. */
export function varintLength(value: number): number {
  if (value <= 63) return 1;
  if (value <= 16383) return 2;
  if (value <= 1073741823) return 4;
  return 8;
}

/** The encoded length announced by a varint's first byte: 1, 2, 4 or 8. */
export function varintLengthFromFirstByte(firstByte: number): number {
  return 1 << (firstByte >> 6);
}

/**
 * Writes `value` in its shortest form at `offset` and returns the offset after it. The caller
 * provides room (`varintLength(value)` bytes). Values above 2^53 - 1 cannot be represented
 * exactly in a number and are refused.
 */
export function writeVarint(buf: Uint8Array, offset: number, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw internalError(`cannot encode ${value} as a QUIC varint`);
  if (value <= 63) {
    buf[offset] = value;
    return offset + 1;
  }
  if (value <= 16383) {
    buf[offset] = 0x40 | (value >>> 8);
    buf[offset + 1] = value & 0xff;
    return offset + 2;
  }
  if (value <= 1073741823) {
    buf[offset] = 0x80 | (value >>> 24);
    buf[offset + 1] = (value >>> 16) & 0xff;
    buf[offset + 2] = (value >>> 8) & 0xff;
    buf[offset + 3] = value & 0xff;
    return offset + 4;
  }
  const high = Math.floor(value / TWO_POW_32);
  const low = value >>> 0;
  buf[offset] = 0xc0 | (high >>> 24);
  buf[offset + 1] = (high >>> 16) & 0xff;
  buf[offset + 2] = (high >>> 8) & 0xff;
  buf[offset + 3] = high & 0xff;
  buf[offset + 4] = low >>> 24;
  buf[offset + 5] = (low >>> 16) & 0xff;
  buf[offset + 6] = (low >>> 8) & 0xff;
  buf[offset + 7] = low & 0xff;
  return offset + 8;
}

/**
 * The value of the `length`-byte varint at `offset` (the caller checked that the bytes are
 * there). Values above 2^53 - 1 come back rounded to the nearest double: good enough to tell a
 * reserved type from a known one, or to compare GOAWAY identifiers, and never an exception.
 */
export function readVarintAt(buf: Uint8Array, offset: number, length: number): number {
  const first = (buf[offset] as number) & 0x3f;
  switch (length) {
    case 1:
      return first;
    case 2:
      return (first << 8) | (buf[offset + 1] as number);
    case 4:
      return ((first << 24) | ((buf[offset + 1] as number) << 16) | ((buf[offset + 2] as number) << 8) | (buf[offset + 3] as number)) >>> 0;
    default: {
      const high = ((first << 24) | ((buf[offset + 1] as number) << 16) | ((buf[offset + 2] as number) << 8) | (buf[offset + 3] as number)) >>> 0;
      const low =
        (((buf[offset + 4] as number) << 24) | ((buf[offset + 5] as number) << 16) | ((buf[offset + 6] as number) << 8) | (buf[offset + 7] as number)) >>> 0;
      return high * TWO_POW_32 + low;
    }
  }
}

/**
 * Reads the varint at `offset`: its value and encoded length, or `undefined` when `buf` ends
 * before the varint does. Non-minimal encodings are accepted (RFC 9000 §16 does not require the
 * shortest form). A value above 2^53 - 1 is an H3_FRAME_ERROR here; use `readVarintAt` where
 * such values are legal.
 */
export function readVarint(buf: Uint8Array, offset: number): { value: number; length: number } | undefined {
  if (offset >= buf.length) return undefined;
  const length = varintLengthFromFirstByte(buf[offset] as number);
  if (offset + length > buf.length) return undefined;
  const value = readVarintAt(buf, offset, length);
  if (value > Number.MAX_SAFE_INTEGER) throw h3Error(H3_FRAME_ERROR, `varint ${value} exceeds 2^53 - 1`);
  return { value, length };
}
