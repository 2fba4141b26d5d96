/**
 * QPACK field sections (RFC 9204 §4.5) without a dynamic table.
 *
 * We advertise SETTINGS_QPACK_MAX_TABLE_CAPACITY 0 and SETTINGS_QPACK_BLOCKED_STREAMS 0, so the
 * peer's encoder can only use the static table and literals, and our encoder never inserts
 * anything: every field section we write has Required Insert Count 0 and Base 0.
 *
 * Strings are latin1 both ways: one character per byte, as HTTP field values are bytes.
 */
import { MuxpoolError, internalError } from '../../errors.js';
import { H3_MESSAGE_ERROR, h3Error, qpackError } from './codes.js';
import { huffmanDecodeInto, huffmanEncodeInto, huffmanEncodedLengthOfString, huffmanMaxDecodedLength } from './huffman.js';
import { QPACK_STATIC_NAMES, QPACK_STATIC_TABLE, QPACK_STATIC_VALUES, staticEntriesNamed } from './qpack-static.js';

export interface FieldSectionLimits {
  /**
   * The most a decoded field section may weigh, counted as RFC 9114 §4.2.2 does: each field's
   * name and value lengths plus 32. This is our SETTINGS_MAX_FIELD_SECTION_SIZE.
   */
  maxFieldSectionSize: number;
}

/** RFC 9114 §4.2.2: "the size of each field line ... plus an overhead of 32 bytes". */
export const FIELD_OVERHEAD_BYTES = 32;

/** Buffer methods Node has on every Buffer but @types/node does not declare. */
interface Latin1Buffer extends Buffer {
  latin1Slice(start: number, end: number): string;
  latin1Write(value: string, offset: number, length?: number): number;
}

function asLatin1Buffer(bytes: Uint8Array): Latin1Buffer {
  return (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as Latin1Buffer;
}

/** Encoder scratch, reused: field sections are built here, then copied out at their exact size. */
const SCRATCH_KEEP_BYTES = 64 * 1024;
let encodeScratch = Buffer.allocUnsafe(4096) as Latin1Buffer;
/** Decoder scratch for Huffman-coded strings. */
let huffmanScratch = Buffer.allocUnsafe(1024) as Latin1Buffer;

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/** An N-bit prefix integer (RFC 7541 §5.1) with `flags` in the bits above the prefix. */
function writePrefixInt(out: Uint8Array, pos: number, flags: number, prefixBits: number, value: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[pos] = flags | value;
    return pos + 1;
  }
  out[pos++] = flags | max;
  let rest = value - max;
  while (rest >= 0x80) {
    out[pos++] = (rest & 0x7f) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  out[pos] = rest;
  return pos + 1;
}

/**
 * A string literal (RFC 9204 §4.1.2): the H bit (`huffmanFlag`) and length as a prefix integer,
 * then the bytes, Huffman-coded when that is shorter.
 */
function writeString(out: Latin1Buffer, pos: number, s: string, flags: number, prefixBits: number, huffmanFlag: number): number {
  const huffmanLength = huffmanEncodedLengthOfString(s);
  if (huffmanLength < 0) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', `a field has a character above U+00FF: ${JSON.stringify(s.slice(0, 40))}`);
  }
  if (huffmanLength < s.length) {
    pos = writePrefixInt(out, pos, flags | huffmanFlag, prefixBits, huffmanLength);
    return huffmanEncodeInto(s, out, pos);
  }
  pos = writePrefixInt(out, pos, flags, prefixBits, s.length);
  return pos + out.latin1Write(s, pos, s.length);
}

function assertLowercaseName(name: string): void {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    // RFC 9114 §4.2: "Characters in field names MUST be converted to lowercase prior to their
    // encoding." Callers lowercase; reaching here with an uppercase name is our bug.
    if (c >= 0x41 && c <= 0x5a) throw internalError(`field name ${JSON.stringify(name)} is not lowercase`);
  }
}

/**
 * Encodes a field section with the static table and literals only. Each field becomes an
 * indexed line when the static table has its name and value, a literal with a static name
 * reference when it has the name, or a literal with a literal name otherwise (RFC 9204 §4.5.2,
 * §4.5.4, §4.5.6). The N (never-index) bit is always 0: nothing is ever indexed anyway.
 */
export function encodeFieldSection(fields: ReadonlyArray<readonly [string, string]>): Uint8Array {
  // Worst case per field: two prefix integers of up to 6 bytes each plus the raw strings
  // (Huffman is only chosen when shorter).
  let bound = 2;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as readonly [string, string];
    bound += field[0].length + field[1].length + 12;
  }
  let out = encodeScratch;
  if (bound > out.length) {
    out = Buffer.allocUnsafe(bound) as Latin1Buffer;
    if (bound <= SCRATCH_KEEP_BYTES) encodeScratch = out;
  }
  // RFC 9204 §4.5.1: Encoded Required Insert Count 0 (no dynamic references), then Sign 0 and
  // Delta Base 0.
  out[0] = 0;
  out[1] = 0;
  let pos = 2;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as readonly [string, string];
    const name = field[0];
    const value = field[1];
    const entries = staticEntriesNamed(name);
    if (entries !== undefined) {
      const index = entries.byValue.get(value);
      if (index !== undefined) {
        // §4.5.2 Indexed Field Line: 1, T=1 (static), index as a 6-bit prefix integer.
        pos = writePrefixInt(out, pos, 0xc0, 6, index);
        continue;
      }
      // §4.5.4 Literal Field Line with Name Reference: 01, N=0, T=1, index as 4-bit prefix.
      pos = writePrefixInt(out, pos, 0x50, 4, entries.nameIndex);
      pos = writeString(out, pos, value, 0x00, 7, 0x80);
      continue;
    }
    assertLowercaseName(name);
    // §4.5.6 Literal Field Line with Literal Name: 001, N=0, H, name length as 3-bit prefix.
    pos = writeString(out, pos, name, 0x20, 3, 0x08);
    pos = writeString(out, pos, value, 0x00, 7, 0x80);
  }
  const block = Buffer.allocUnsafe(pos);
  out.copy(block, 0, 0, pos);
  return block;
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/**
 * Continuation bytes we read after a prefix: 35 bits, more than any index or length a field
 * section can hold (larger values then fail the range or truncation checks), and never past
 * 2^53, so the arithmetic stays exact.
 */
const MAX_CONTINUATION_BYTES = 5;

function truncated(): MuxpoolError {
  return qpackError('field section is truncated');
}

function tooLarge(limit: number): MuxpoolError {
  // No wire code: the section is well formed, just larger than we accept; the caller refuses
  // the stream (RFC 9114 §4.2.2).
  return new MuxpoolError('MUXPOOL_ERR_HEADERS_TOO_LARGE', `HTTP/3 field section is larger than ${limit} bytes (RFC 9114 §4.2.2 size)`, {
    origin: 'remote',
  });
}

/** A cursor over one field section: reads prefix integers and string literals. */
class FieldSectionReader {
  pos = 0;
  readonly bytes: Latin1Buffer;
  readonly end: number;

  constructor(bytes: Uint8Array) {
    this.bytes = asLatin1Buffer(bytes);
    this.end = bytes.length;
  }

  /** An N-bit prefix integer (RFC 7541 §5.1) starting in the current byte. */
  readInt(prefixBits: number): number {
    if (this.pos >= this.end) throw truncated();
    const max = (1 << prefixBits) - 1;
    let value = (this.bytes[this.pos++] as number) & max;
    if (value < max) return value;
    let multiplier = 1;
    for (let count = 0; ; count++) {
      if (this.pos >= this.end) throw truncated();
      // RFC 7541 §5.1: "Integer encodings that exceed implementation limits -- in value or
      // octet length -- MUST be treated as decoding errors."
      if (count === MAX_CONTINUATION_BYTES) throw qpackError('prefix integer is too long');
      const byte = this.bytes[this.pos++] as number;
      value += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) break;
      multiplier *= 0x80;
    }
    return value;
  }

  /**
   * A string literal whose H bit sits just above a `prefixBits`-bit length. Throws
   * HEADERS_TOO_LARGE when the decoded string is longer than `budget` bytes.
   */
  readString(prefixBits: number, budget: number, limit: number): string {
    if (this.pos >= this.end) throw truncated();
    const huffman = ((this.bytes[this.pos] as number) & (1 << prefixBits)) !== 0;
    const length = this.readInt(prefixBits);
    if (length > this.end - this.pos) throw truncated();
    const start = this.pos;
    this.pos += length;
    if (!huffman) {
      if (length > budget) throw tooLarge(limit);
      return this.bytes.latin1Slice(start, start + length);
    }
    const room = huffmanMaxDecodedLength(length);
    if (room > huffmanScratch.length) huffmanScratch = Buffer.allocUnsafe(Math.max(room, 2 * huffmanScratch.length)) as Latin1Buffer;
    const decoded = huffmanDecodeInto(this.bytes, start, start + length, huffmanScratch, 0);
    if (decoded > budget) throw tooLarge(limit);
    return huffmanScratch.latin1Slice(0, decoded);
  }
}

function dynamicReference(): MuxpoolError {
  // RFC 9204 §2.2.3: a reference to a dynamic entry with an absolute index >= Required Insert
  // Count "MUST [be treated] as a connection error of type QPACK_DECOMPRESSION_FAILED"; ours
  // is always 0.
  return qpackError('field line references the dynamic table, which has capacity 0');
}

function staticIndex(index: number): number {
  // RFC 9204 §3.1: "When the decoder encounters an invalid static table index in a field line
  // format, it MUST treat this as a connection error of type QPACK_DECOMPRESSION_FAILED."
  if (index >= QPACK_STATIC_TABLE.length) throw qpackError(`static table index ${index} is out of range`);
  return index;
}

function checkLowercase(name: string): void {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    // RFC 9114 §4.2: "A request or response containing uppercase characters in field names MUST
    // be treated as malformed" — a stream error of type H3_MESSAGE_ERROR (§4.1.2).
    if (c >= 0x41 && c <= 0x5a) throw h3Error(H3_MESSAGE_ERROR, `field name ${JSON.stringify(name.slice(0, 60))} has uppercase characters`);
  }
}

/**
 * Decodes a field section that uses only the static table and literals. Any reference to the
 * dynamic table is a QPACK_DECOMPRESSION_FAILED error (we told the peer its capacity is 0);
 * a section whose RFC 9114 §4.2.2 size exceeds `limits.maxFieldSectionSize` stops decoding with
 * MUXPOOL_ERR_HEADERS_TOO_LARGE. Field validation beyond lowercase names is the caller's.
 */
export function decodeFieldSection(block: Uint8Array, limits: FieldSectionLimits): Array<[string, string]> {
  const limit = limits.maxFieldSectionSize;
  const reader = new FieldSectionReader(block);
  // RFC 9204 §4.5.1.1: with a maximum table capacity of 0, MaxEntries is 0, so any encoded
  // Required Insert Count other than 0 "MUST [be treated] as a connection error of type
  // QPACK_DECOMPRESSION_FAILED".
  if (reader.readInt(8) !== 0) throw qpackError('Required Insert Count is not 0, but the dynamic table has capacity 0');
  if (reader.pos >= reader.end) throw truncated();
  const signBit = ((reader.bytes[reader.pos] as number) & 0x80) !== 0;
  reader.readInt(7);
  // RFC 9204 §4.5.1.2: "An endpoint MUST treat a field block with a Sign bit of 1 as invalid if
  // the value of Required Insert Count is less than or equal to the value of Delta Base."
  if (signBit) throw qpackError('negative Base with Required Insert Count 0');

  const fields: Array<[string, string]> = [];
  let size = 0;
  while (reader.pos < reader.end) {
    const first = reader.bytes[reader.pos] as number;
    if ((first & 0x80) !== 0) {
      // §4.5.2 Indexed Field Line: 1 T index(6+).
      if ((first & 0x40) === 0) throw dynamicReference();
      const index = staticIndex(reader.readInt(6));
      const name = QPACK_STATIC_NAMES[index] as string;
      const value = QPACK_STATIC_VALUES[index] as string;
      size += name.length + value.length + FIELD_OVERHEAD_BYTES;
      if (size > limit) throw tooLarge(limit);
      fields.push([name, value]);
    } else if ((first & 0x40) !== 0) {
      // §4.5.4 Literal Field Line with Name Reference: 01 N T index(4+), then the value.
      if ((first & 0x10) === 0) throw dynamicReference();
      const name = QPACK_STATIC_NAMES[staticIndex(reader.readInt(4))] as string;
      size += name.length + FIELD_OVERHEAD_BYTES;
      if (size > limit) throw tooLarge(limit);
      const value = reader.readString(7, limit - size, limit);
      size += value.length;
      fields.push([name, value]);
    } else if ((first & 0x20) !== 0) {
      // §4.5.6 Literal Field Line with Literal Name: 001 N H length(3+) name, then the value.
      size += FIELD_OVERHEAD_BYTES;
      if (size > limit) throw tooLarge(limit);
      const name = reader.readString(3, limit - size, limit);
      checkLowercase(name);
      size += name.length;
      const value = reader.readString(7, limit - size, limit);
      size += value.length;
      fields.push([name, value]);
    } else {
      // §4.5.3 Indexed Field Line with Post-Base Index (0001) and §4.5.5 Literal Field Line with
      // Post-Base Name Reference (0000) always refer to the dynamic table.
      throw dynamicReference();
    }
  }
  return fields;
}
