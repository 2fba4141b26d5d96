/**
 * The HPACK Huffman code (RFC 7541 §5.2 and Appendix B), shared by HPACK (`h2/hpack.ts`) and
 * QPACK, which reuses it for string literals (RFC 9204 §4.1.2). Errors while decoding are
 * reported as negative results, so each codec raises its own typed error.
 *
 * Decoding walks a precomputed state table four bits at a time: a state is an internal node of
 * the code tree, and each (state, nibble) entry gives the next state and, at most, one decoded
 * byte (the shortest code is 5 bits long, so four bits complete at most one symbol).
 */
import { MuxpoolError, internalError } from '../errors.js';

/**
 * RFC 7541 Appendix B: for each symbol 0–255 and EOS (256), its code (right-aligned, as hex)
 * followed by its length in bits.
 */
// prettier-ignore
const TABLE: readonly number[] = [
  /*   0 */ 0x1ff8, 13, 0x7fffd8, 23, 0xfffffe2, 28, 0xfffffe3, 28,
  /*   4 */ 0xfffffe4, 28, 0xfffffe5, 28, 0xfffffe6, 28, 0xfffffe7, 28,
  /*   8 */ 0xfffffe8, 28, 0xffffea, 24, 0x3ffffffc, 30, 0xfffffe9, 28,
  /*  12 */ 0xfffffea, 28, 0x3ffffffd, 30, 0xfffffeb, 28, 0xfffffec, 28,
  /*  16 */ 0xfffffed, 28, 0xfffffee, 28, 0xfffffef, 28, 0xffffff0, 28,
  /*  20 */ 0xffffff1, 28, 0xffffff2, 28, 0x3ffffffe, 30, 0xffffff3, 28,
  /*  24 */ 0xffffff4, 28, 0xffffff5, 28, 0xffffff6, 28, 0xffffff7, 28,
  /*  28 */ 0xffffff8, 28, 0xffffff9, 28, 0xffffffa, 28, 0xffffffb, 28,
  /*  32 ' ' */ 0x14, 6, 0x3f8, 10, 0x3f9, 10, 0xffa, 12,
  /*  36 '$' */ 0x1ff9, 13, 0x15, 6, 0xf8, 8, 0x7fa, 11,
  /*  40 '(' */ 0x3fa, 10, 0x3fb, 10, 0xf9, 8, 0x7fb, 11,
  /*  44 ',' */ 0xfa, 8, 0x16, 6, 0x17, 6, 0x18, 6,
  /*  48 '0' */ 0x0, 5, 0x1, 5, 0x2, 5, 0x19, 6,
  /*  52 '4' */ 0x1a, 6, 0x1b, 6, 0x1c, 6, 0x1d, 6,
  /*  56 '8' */ 0x1e, 6, 0x1f, 6, 0x5c, 7, 0xfb, 8,
  /*  60 '<' */ 0x7ffc, 15, 0x20, 6, 0xffb, 12, 0x3fc, 10,
  /*  64 '@' */ 0x1ffa, 13, 0x21, 6, 0x5d, 7, 0x5e, 7,
  /*  68 'D' */ 0x5f, 7, 0x60, 7, 0x61, 7, 0x62, 7,
  /*  72 'H' */ 0x63, 7, 0x64, 7, 0x65, 7, 0x66, 7,
  /*  76 'L' */ 0x67, 7, 0x68, 7, 0x69, 7, 0x6a, 7,
  /*  80 'P' */ 0x6b, 7, 0x6c, 7, 0x6d, 7, 0x6e, 7,
  /*  84 'T' */ 0x6f, 7, 0x70, 7, 0x71, 7, 0x72, 7,
  /*  88 'X' */ 0xfc, 8, 0x73, 7, 0xfd, 8, 0x1ffb, 13,
  /*  92 '\' */ 0x7fff0, 19, 0x1ffc, 13, 0x3ffc, 14, 0x22, 6,
  /*  96 '`' */ 0x7ffd, 15, 0x3, 5, 0x23, 6, 0x4, 5,
  /* 100 'd' */ 0x24, 6, 0x5, 5, 0x25, 6, 0x26, 6,
  /* 104 'h' */ 0x27, 6, 0x6, 5, 0x74, 7, 0x75, 7,
  /* 108 'l' */ 0x28, 6, 0x29, 6, 0x2a, 6, 0x7, 5,
  /* 112 'p' */ 0x2b, 6, 0x76, 7, 0x2c, 6, 0x8, 5,
  /* 116 't' */ 0x9, 5, 0x2d, 6, 0x77, 7, 0x78, 7,
  /* 120 'x' */ 0x79, 7, 0x7a, 7, 0x7b, 7, 0x7ffe, 15,
  /* 124 '|' */ 0x7fc, 11, 0x3ffd, 14, 0x1ffd, 13, 0xffffffc, 28,
  /* 128 */ 0xfffe6, 20, 0x3fffd2, 22, 0xfffe7, 20, 0xfffe8, 20,
  /* 132 */ 0x3fffd3, 22, 0x3fffd4, 22, 0x3fffd5, 22, 0x7fffd9, 23,
  /* 136 */ 0x3fffd6, 22, 0x7fffda, 23, 0x7fffdb, 23, 0x7fffdc, 23,
  /* 140 */ 0x7fffdd, 23, 0x7fffde, 23, 0xffffeb, 24, 0x7fffdf, 23,
  /* 144 */ 0xffffec, 24, 0xffffed, 24, 0x3fffd7, 22, 0x7fffe0, 23,
  /* 148 */ 0xffffee, 24, 0x7fffe1, 23, 0x7fffe2, 23, 0x7fffe3, 23,
  /* 152 */ 0x7fffe4, 23, 0x1fffdc, 21, 0x3fffd8, 22, 0x7fffe5, 23,
  /* 156 */ 0x3fffd9, 22, 0x7fffe6, 23, 0x7fffe7, 23, 0xffffef, 24,
  /* 160 */ 0x3fffda, 22, 0x1fffdd, 21, 0xfffe9, 20, 0x3fffdb, 22,
  /* 164 */ 0x3fffdc, 22, 0x7fffe8, 23, 0x7fffe9, 23, 0x1fffde, 21,
  /* 168 */ 0x7fffea, 23, 0x3fffdd, 22, 0x3fffde, 22, 0xfffff0, 24,
  /* 172 */ 0x1fffdf, 21, 0x3fffdf, 22, 0x7fffeb, 23, 0x7fffec, 23,
  /* 176 */ 0x1fffe0, 21, 0x1fffe1, 21, 0x3fffe0, 22, 0x1fffe2, 21,
  /* 180 */ 0x7fffed, 23, 0x3fffe1, 22, 0x7fffee, 23, 0x7fffef, 23,
  /* 184 */ 0xfffea, 20, 0x3fffe2, 22, 0x3fffe3, 22, 0x3fffe4, 22,
  /* 188 */ 0x7ffff0, 23, 0x3fffe5, 22, 0x3fffe6, 22, 0x7ffff1, 23,
  /* 192 */ 0x3ffffe0, 26, 0x3ffffe1, 26, 0xfffeb, 20, 0x7fff1, 19,
  /* 196 */ 0x3fffe7, 22, 0x7ffff2, 23, 0x3fffe8, 22, 0x1ffffec, 25,
  /* 200 */ 0x3ffffe2, 26, 0x3ffffe3, 26, 0x3ffffe4, 26, 0x7ffffde, 27,
  /* 204 */ 0x7ffffdf, 27, 0x3ffffe5, 26, 0xfffff1, 24, 0x1ffffed, 25,
  /* 208 */ 0x7fff2, 19, 0x1fffe3, 21, 0x3ffffe6, 26, 0x7ffffe0, 27,
  /* 212 */ 0x7ffffe1, 27, 0x3ffffe7, 26, 0x7ffffe2, 27, 0xfffff2, 24,
  /* 216 */ 0x1fffe4, 21, 0x1fffe5, 21, 0x3ffffe8, 26, 0x3ffffe9, 26,
  /* 220 */ 0xffffffd, 28, 0x7ffffe3, 27, 0x7ffffe4, 27, 0x7ffffe5, 27,
  /* 224 */ 0xfffec, 20, 0xfffff3, 24, 0xfffed, 20, 0x1fffe6, 21,
  /* 228 */ 0x3fffe9, 22, 0x1fffe7, 21, 0x1fffe8, 21, 0x7ffff3, 23,
  /* 232 */ 0x3fffea, 22, 0x3fffeb, 22, 0x1ffffee, 25, 0x1ffffef, 25,
  /* 236 */ 0xfffff4, 24, 0xfffff5, 24, 0x3ffffea, 26, 0x7ffff4, 23,
  /* 240 */ 0x3ffffeb, 26, 0x7ffffe6, 27, 0x3ffffec, 26, 0x3ffffed, 26,
  /* 244 */ 0x7ffffe7, 27, 0x7ffffe8, 27, 0x7ffffe9, 27, 0x7ffffea, 27,
  /* 248 */ 0x7ffffeb, 27, 0xffffffe, 28, 0x7ffffec, 27, 0x7ffffed, 27,
  /* 252 */ 0x7ffffee, 27, 0x7ffffef, 27, 0x7fffff0, 27, 0x3ffffee, 26,
  /* 256 EOS */ 0x3fffffff, 30,
];

/** The EOS symbol (RFC 7541 §5.2): only ever seen as padding, never as a whole code. */
export const HUFFMAN_EOS = 256;

/** Code of each symbol 0–256, right-aligned. */
export const HUFFMAN_CODES = new Uint32Array(257);
/** Length in bits of each symbol's code. */
export const HUFFMAN_LENGTHS = new Uint8Array(257);
for (let sym = 0; sym <= 256; sym++) {
  HUFFMAN_CODES[sym] = TABLE[2 * sym] as number;
  HUFFMAN_LENGTHS[sym] = TABLE[2 * sym + 1] as number;
}

// The decoding tree: internal nodes 0..255 (0 is the root). A child is either another internal
// node (>= 0) or a leaf, stored as -(symbol + 1).
const INTERNAL_NODES = 256;
const childZero = new Int16Array(INTERNAL_NODES);
const childOne = new Int16Array(INTERNAL_NODES);
/** A node whose path from the root is all ones and at most 7 bits long: valid padding (§5.2). */
const validPadding = new Uint8Array(INTERNAL_NODES);

// One entry per (state, nibble): next state in bits 16–23, flags in bits 8–10, symbol in 0–7.
const EMITS = 1 << 8;
const FAILS = 1 << 9;
const DECODE_TABLE = new Uint32Array(INTERNAL_NODES * 16);

function buildDecoder(): void {
  let nodes = 1;
  childZero.fill(0x7fff);
  childOne.fill(0x7fff);
  for (let sym = 0; sym <= 256; sym++) {
    const code = HUFFMAN_CODES[sym] as number;
    const length = HUFFMAN_LENGTHS[sym] as number;
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const children = ((code >>> bit) & 1) === 0 ? childZero : childOne;
      const next = children[node] as number;
      if (bit === 0) {
        if (next !== 0x7fff) throw internalError(`HPACK Huffman table: code of ${sym} is not prefix-free`);
        children[node] = -(sym + 1);
      } else if (next === 0x7fff) {
        if (nodes >= INTERNAL_NODES) throw internalError('HPACK Huffman table: too many internal nodes');
        children[node] = nodes;
        node = nodes++;
      } else if (next < 0) {
        throw internalError(`HPACK Huffman table: code of ${sym} extends another code`);
      } else {
        node = next;
      }
    }
  }
  if (nodes !== INTERNAL_NODES) throw internalError('HPACK Huffman table: the code is not complete');
  // The all-ones path: root, then up to 7 one bits.
  let padding = 0;
  for (let depth = 0; depth <= 7; depth++) {
    validPadding[padding] = 1;
    padding = childOne[padding] as number;
  }
  for (let state = 0; state < INTERNAL_NODES; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const next = (((nibble >>> bit) & 1) === 0 ? childZero : childOne)[node] as number;
        if (next >= 0) {
          node = next;
          continue;
        }
        const sym = -next - 1;
        if (sym === HUFFMAN_EOS) {
          // RFC 7541 §5.2: "A Huffman-encoded string literal containing the EOS symbol MUST be
          // treated as a decoding error."
          entry = FAILS;
          break;
        }
        entry = EMITS | sym;
        node = 0;
      }
      DECODE_TABLE[(state << 4) | nibble] = entry | (node << 16);
    }
  }
}
buildDecoder();

/** Bytes the Huffman encoding of `bytes` takes, padding included. */
export function huffmanEncodedLength(bytes: Uint8Array): number {
  let bits = 0;
  for (let i = 0; i < bytes.length; i++) bits += HUFFMAN_LENGTHS[bytes[i] as number] as number;
  return (bits + 7) >>> 3;
}

/** Like `huffmanEncodedLength` for a latin1 string; -1 if a character is above U+00FF. */
export function huffmanEncodedLengthOfString(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) return -1;
    bits += HUFFMAN_LENGTHS[c] as number;
  }
  return (bits + 7) >>> 3;
}

/**
 * Encodes every byte (or latin1 character) of `src` into `out` at `offset`; returns the offset
 * after the last byte. The last byte is padded with the most significant bits of EOS, all ones
 * (RFC 7541 §5.2).
 */
function encodeInto(src: string | Uint8Array, out: Uint8Array, offset: number): number {
  const isString = typeof src === 'string';
  let pending = 0; // bits held in `acc`, always < 8 between symbols
  let acc = 0;
  let pos = offset;
  for (let i = 0; i < src.length; i++) {
    const sym = isString ? src.charCodeAt(i) : (src[i] as number);
    if (sym > 0xff) throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', `character U+${sym.toString(16)} cannot be sent as latin1`);
    let code = HUFFMAN_CODES[sym] as number;
    let length = HUFFMAN_LENGTHS[sym] as number;
    if (length > 24) {
      // Keep `acc` within 31 bits: first the high bits of a long code, then its low 24 bits.
      const highBits = length - 24;
      acc = (acc << highBits) | (code >>> 24);
      pending += highBits;
      code &= 0xffffff;
      length = 24;
      while (pending >= 8) {
        pending -= 8;
        out[pos++] = (acc >>> pending) & 0xff;
      }
    }
    acc = ((acc << length) | code) & 0x7fffffff;
    pending += length;
    while (pending >= 8) {
      pending -= 8;
      out[pos++] = (acc >>> pending) & 0xff;
    }
  }
  if (pending > 0) out[pos++] = ((acc << (8 - pending)) | (0xff >>> pending)) & 0xff;
  return pos;
}

/** Huffman-encodes `src` (a latin1 string or bytes) into `out` at `offset`; returns the new offset. */
export function huffmanEncodeInto(src: string | Uint8Array, out: Uint8Array, offset: number): number {
  return encodeInto(src, out, offset);
}

/** Huffman-encodes a latin1 string or a byte string. */
export function huffmanEncode(s: string | Uint8Array): Uint8Array {
  const length = typeof s === 'string' ? huffmanEncodedLengthOfString(s) : huffmanEncodedLength(s);
  if (length < 0) throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', 'a character above U+00FF cannot be sent as latin1');
  const out = new Uint8Array(length);
  encodeInto(s, out, 0);
  return out;
}

/** `huffmanDecodeInto` result: the string contains the EOS symbol. */
export const HUFFMAN_ERR_EOS = -1;
/** `huffmanDecodeInto` result: the padding is longer than 7 bits or not a prefix of EOS. */
export const HUFFMAN_ERR_PADDING = -2;

/**
 * Decodes `src[start, end)` into `out` at `offset` (room for `(end - start) * 8 / 5` bytes, the
 * most a byte string can expand to); returns the offset after the decoded bytes, or
 * `HUFFMAN_ERR_EOS` / `HUFFMAN_ERR_PADDING` when the string is not valid.
 */
export function huffmanDecodeInto(src: Uint8Array, start: number, end: number, out: Uint8Array, offset: number): number {
  let state = 0;
  let pos = offset;
  for (let i = start; i < end; i++) {
    const byte = src[i] as number;
    let entry = DECODE_TABLE[(state << 4) | (byte >>> 4)] as number;
    if ((entry & EMITS) !== 0) out[pos++] = entry & 0xff;
    else if ((entry & FAILS) !== 0) return HUFFMAN_ERR_EOS;
    state = entry >>> 16;
    entry = DECODE_TABLE[(state << 4) | (byte & 0x0f)] as number;
    if ((entry & EMITS) !== 0) out[pos++] = entry & 0xff;
    else if ((entry & FAILS) !== 0) return HUFFMAN_ERR_EOS;
    state = entry >>> 16;
  }
  // RFC 7541 §5.2: "A padding strictly longer than 7 bits MUST be treated as a decoding error.
  // A padding not corresponding to the most significant bits of the code for the EOS symbol
  // MUST be treated as a decoding error."
  if (validPadding[state] !== 1) return HUFFMAN_ERR_PADDING;
  return pos;
}

/** The most bytes `encodedLength` Huffman-coded bytes can decode to (5-bit shortest code). */
export function huffmanMaxDecodedLength(encodedLength: number): number {
  return Math.floor((encodedLength * 8) / 5);
}

