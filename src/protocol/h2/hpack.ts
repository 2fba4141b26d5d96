/**
 * HPACK (RFC 7541): the header compression of HTTP/2. Pure: blocks of bytes in and out.
 *
 * The decoder keeps the dynamic table in step with the peer's encoder and bounds everything a
 * peer controls: integers (§5.1), string lengths (§5.2), table-size updates (§4.2, §6.3), and the
 * decoded header list (an "HPACK bomb" of indexed references to one large entry costs one byte
 * each on the wire but the entry's size each in the list, so decoding stops collecting fields
 * once the list is over the limit and only keeps the table in step).
 *
 * The encoder indexes what a pool sends again and again, Huffman-codes strings when that is
 * shorter, and keeps the bytes of whole header sets it can send again unchanged.
 */
import type { MuxpoolError } from '../../errors.js';
import { HUFFMAN_ERR_EOS, huffmanDecodeInto, huffmanEncodeInto, huffmanEncodedLengthOfString, huffmanMaxDecodedLength } from '../huffman.js';
import { COMPRESSION_ERROR, h2ConnectionError } from './codes.js';
import { HPACK_STATIC_TABLE, STATIC_FIELD_INDEX, STATIC_NAME_INDEX } from './hpack-static.js';

const STATIC_COUNT = HPACK_STATIC_TABLE.length; // 61
/** RFC 7541 §4.1: an entry's size is its name and value lengths plus 32. */
export const ENTRY_OVERHEAD = 32;
/** RFC 7541 §4.2 / RFC 9113 §6.5.2: SETTINGS_HEADER_TABLE_SIZE starts at 4096. */
export const DEFAULT_TABLE_SIZE = 4096;

function compressionError(message: string): MuxpoolError {
  // RFC 9113 §4.3: "A decoding error in a field block MUST be treated as a connection error of
  // type COMPRESSION_ERROR."
  return h2ConnectionError(COMPRESSION_ERROR, `HPACK ${message}`, 'remote');
}

/** The dynamic table (§2.3.2): newest entry first in index order. */
class DynamicTable {
  /** Entries oldest first; `names.length - 1` is the newest (dynamic index 1). */
  readonly names: string[] = [];
  readonly values: string[] = [];
  size = 0;
  capacity: number;
  /** Entries ever inserted (the newest has absolute number `inserted - 1`). */
  inserted = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get length(): number {
    return this.names.length;
  }

  /** Dynamic index (1 = newest) → position in the arrays, or -1. */
  position(index: number): number {
    const position = this.names.length - index;
    return position >= 0 && index >= 1 ? position : -1;
  }

  /** §4.4: inserting evicts from the oldest end until the new entry fits; one larger than the table empties it. */
  insert(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    this.inserted++;
    this.evictTo(this.capacity - entrySize);
    if (entrySize > this.capacity) return;
    this.names.push(name);
    this.values.push(value);
    this.size += entrySize;
  }

  resize(capacity: number): void {
    this.capacity = capacity;
    this.evictTo(capacity);
  }

  /** Evicts oldest entries until the size is at most `target`. */
  private evictTo(target: number): void {
    let evict = 0;
    let size = this.size;
    while (size > target && evict < this.names.length) {
      size -= (this.names[evict] as string).length + (this.values[evict] as string).length + ENTRY_OVERHEAD;
      evict++;
    }
    if (evict > 0) {
      this.names.splice(0, evict);
      this.values.splice(0, evict);
      this.size = size;
    }
  }
}

export interface HeaderListLimits {
  /** Bytes as SETTINGS_MAX_HEADER_LIST_SIZE counts them (name + value + 32 per field). */
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
}

export interface DecodedHeaderList {
  /** Flat `[name, value, …]`; complete only when `overLimit` is false. */
  readonly fields: string[];
  /** Size of the whole list as decoded, counted even past the limit. */
  readonly bytes: number;
  readonly count: number;
  /** The list broke `maxHeaderBytes` or `maxHeaderCount`: `fields` stopped growing there. */
  readonly overLimit: boolean;
}

/** Bytes decoded Huffman strings are written into before becoming strings. */
let scratch = Buffer.allocUnsafe(4096);

export class HpackDecoder {
  private readonly table: DynamicTable;
  /** Our SETTINGS_HEADER_TABLE_SIZE: the most a table-size update may ask for (§6.3). */
  private readonly maxTableSize: number;

  constructor(maxTableSize: number = DEFAULT_TABLE_SIZE) {
    this.maxTableSize = maxTableSize;
    this.table = new DynamicTable(maxTableSize);
  }

  /** Current dynamic table size in bytes (for tests). */
  get tableSize(): number {
    return this.table.size;
  }

  /**
   * Decodes one complete field block. Throws a COMPRESSION_ERROR connection error on anything
   * RFC 7541 calls a decoding error; a list over `limits` is not an error here (the table stays
   * in step), it is reported with `overLimit`.
   */
  decode(block: Uint8Array, limits: HeaderListLimits): DecodedHeaderList {
    const bytesOf = Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.length);
    const fields: string[] = [];
    let bytes = 0;
    let count = 0;
    let overLimit = false;
    let sawField = false;
    this.pos = 0;
    const end = bytesOf.length;
    const table = this.table;
    while (this.pos < end) {
      const first = bytesOf[this.pos] as number;
      let name: string;
      let value: string;
      if ((first & 0x80) !== 0) {
        // §6.1 Indexed Header Field.
        const index = this.readInt(bytesOf, 7);
        if (index === 0) throw compressionError('indexed field with index 0');
        if (index <= STATIC_COUNT) {
          const entry = HPACK_STATIC_TABLE[index - 1] as readonly [string, string];
          name = entry[0];
          value = entry[1];
        } else {
          const position = table.position(index - STATIC_COUNT);
          if (position < 0) throw compressionError(`index ${index} beyond the tables`);
          name = table.names[position] as string;
          value = table.values[position] as string;
        }
      } else if ((first & 0xe0) === 0x20) {
        // §6.3 Dynamic Table Size Update. §4.2: "This dynamic table size update MUST occur at
        // the beginning of the first header block following the change to the dynamic table size."
        if (sawField) throw compressionError('dynamic table size update after a field');
        const size = this.readInt(bytesOf, 5);
        // §6.3: "The new maximum size MUST be lower than or equal to the limit determined by the
        // protocol using HPACK" (our SETTINGS_HEADER_TABLE_SIZE).
        if (size > this.maxTableSize) throw compressionError(`table size update to ${size}, over our SETTINGS_HEADER_TABLE_SIZE ${this.maxTableSize}`);
        table.resize(size);
        continue;
      } else {
        // §6.2 Literal Header Field: with incremental indexing (01), without (0000), never indexed (0001).
        const incremental = (first & 0xc0) === 0x40;
        const index = this.readInt(bytesOf, incremental ? 6 : 4);
        if (index === 0) {
          name = this.readString(bytesOf);
        } else if (index <= STATIC_COUNT) {
          name = (HPACK_STATIC_TABLE[index - 1] as readonly [string, string])[0];
        } else {
          const position = table.position(index - STATIC_COUNT);
          if (position < 0) throw compressionError(`name index ${index} beyond the tables`);
          name = table.names[position] as string;
        }
        value = this.readString(bytesOf);
        if (incremental) table.insert(name, value);
      }
      sawField = true;
      bytes += name.length + value.length + ENTRY_OVERHEAD;
      count++;
      if (overLimit) continue;
      if (bytes > limits.maxHeaderBytes || count > limits.maxHeaderCount) {
        overLimit = true;
        fields.length = 0; // what was collected is of no use any more
        continue;
      }
      fields.push(name, value);
    }
    return { fields, bytes, count, overLimit };
  }

  /** Read position shared by the helpers below (set before, read after each call). */
  private pos = 0;

  /** §5.1 integer with an N-bit prefix starting at `this.pos`. */
  private readInt(bytes: Buffer, prefixBits: number): number {
    const mask = (1 << prefixBits) - 1;
    let pos = this.pos;
    let value = (bytes[pos++] as number) & mask;
    if (value < mask) {
      this.pos = pos;
      return value;
    }
    let shift = 0;
    for (;;) {
      if (pos >= bytes.length) throw compressionError('integer runs past the end of the block');
      const byte = bytes[pos++] as number;
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      // §5.1: "Integer encodings that exceed implementation limits ... MUST be treated as
      // decoding errors." Ours: 2^31 - 1, far above any length or index that can be valid.
      if (value > 0x7fffffff) throw compressionError('integer overflow');
      if ((byte & 0x80) === 0) break;
      if (shift > 28) throw compressionError('integer overflow');
    }
    this.pos = pos;
    return value;
  }

  /** §5.2 string literal at `this.pos`. */
  private readString(bytes: Buffer): string {
    if (this.pos >= bytes.length) throw compressionError('string literal missing');
    const huffman = ((bytes[this.pos] as number) & 0x80) !== 0;
    const length = this.readInt(bytes, 7);
    const start = this.pos;
    if (length > bytes.length - start) throw compressionError(`string of ${length} bytes runs past the end of the block`);
    this.pos = start + length;
    if (!huffman) return bytes.toString('latin1', start, start + length);
    const max = huffmanMaxDecodedLength(length);
    if (scratch.length < max) scratch = Buffer.allocUnsafe(Math.max(max, scratch.length * 2));
    const decodedEnd = huffmanDecodeInto(bytes, start, start + length, scratch, 0);
    if (decodedEnd < 0) throw compressionError(decodedEnd === HUFFMAN_ERR_EOS ? 'Huffman string contains EOS' : 'Huffman string has invalid padding');
    return scratch.toString('latin1', 0, decodedEnd);
  }
}

/** Fields sent as literals never indexed (§7.1.3): secrets an intermediary must not compress. */
const NEVER_INDEXED = new Set(['authorization', 'proxy-authorization']);
/** The most header sets whose encoded bytes are kept for sending again. */
const CACHE_ENTRIES = 256;
const MAX_CACHED_KEY = 2048;
/** Our table size, whatever larger size the peer allows: the pool's header sets fit in it. */
export const ENCODER_MAX_TABLE_SIZE = 4096;

interface CachedBlock {
  readonly bytes: Uint8Array;
  /** `inserted` of the table when it was encoded: valid while nothing was inserted since. */
  readonly stamp: number;
}

/**
 * Where every encoder writes: encoding is synchronous and its result is a copy, so one buffer
 * serves all connections instead of a kilobyte held by each idle one. A block that needed more
 * than `SHARED_OUT_LIMIT` grows a buffer of its own, dropped after the call.
 */
let sharedOut = new Uint8Array(1024);
const SHARED_OUT_LIMIT = 64 * 1024;

export class HpackEncoder {
  private readonly table = new DynamicTable(DEFAULT_TABLE_SIZE);
  /** `name\0value` → absolute insertion number of its newest copy in the table. */
  private readonly fieldIndex = new Map<string, number>();
  private readonly nameIndex = new Map<string, number>();
  /** Absolute number of the oldest entry still in the table. */
  private oldest = 0;
  /** Smallest and last capacity since the last block (§4.2: both must be signalled). */
  private pendingMin: number | undefined;
  private pendingFinal: number | undefined;
  private readonly cache = new Map<string, CachedBlock>();
  private out = sharedOut;
  private length = 0;

  /** The peer's SETTINGS_HEADER_TABLE_SIZE changed: our table follows it, up to our own cap. */
  setPeerTableSize(size: number): void {
    const capacity = Math.min(size, ENCODER_MAX_TABLE_SIZE);
    if (capacity === this.table.capacity && this.pendingFinal === undefined) return;
    this.pendingMin = Math.min(this.pendingMin ?? capacity, capacity);
    this.pendingFinal = capacity;
    this.resizeTable(capacity);
  }

  /**
   * Encodes a flat `[name, value, …]` list (names lower-case). The result is valid until the
   * next call; the caller sends it at once. `knownKey`, when given, is `fields.join('\0')`,
   * computed once by a caller that sends the same list many times.
   */
  encode(fields: readonly string[], knownKey?: string): Uint8Array {
    let key: string | undefined;
    if (knownKey !== undefined) key = knownKey.length <= MAX_CACHED_KEY ? knownKey : undefined;
    else {
      // Large sets are rarely sent twice; keeping them would only hold memory.
      let keyLength = 0;
      for (let i = 0; i < fields.length && keyLength <= MAX_CACHED_KEY; i++) keyLength += (fields[i] as string).length + 1;
      key = keyLength <= MAX_CACHED_KEY ? fields.join('\0') : undefined;
    }
    if (key !== undefined && this.pendingFinal === undefined) {
      const cached = this.cache.get(key);
      if (cached !== undefined && cached.stamp === this.table.inserted) return cached.bytes;
    }
    this.out = sharedOut;
    this.length = 0;
    if (this.pendingFinal !== undefined) {
      if (this.pendingMin !== undefined && this.pendingMin < this.pendingFinal) this.writeInt(0x20, 5, this.pendingMin);
      this.writeInt(0x20, 5, this.pendingFinal);
      this.pendingMin = this.pendingFinal = undefined;
    }
    const updated = this.length > 0;
    const stamp = this.table.inserted;
    for (let i = 0; i < fields.length; i += 2) this.encodeField(fields[i] as string, fields[i + 1] as string);
    const bytes = this.out.slice(0, this.length);
    if (this.out.length <= SHARED_OUT_LIMIT) sharedOut = this.out;
    this.out = sharedOut;
    // Only a block that inserted nothing can be replayed: it changed no state at the peer.
    if (key !== undefined && !updated && this.table.inserted === stamp) {
      if (this.cache.size >= CACHE_ENTRIES) this.cache.clear();
      this.cache.set(key, { bytes, stamp });
    }
    return bytes;
  }

  private encodeField(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (entrySize > this.table.capacity >>> 1) {
      // Too large to be (or to become) an entry of ours: a literal without indexing.
      const nameIndex = STATIC_NAME_INDEX.get(name) ?? this.dynamicNameIndex(name);
      this.writeInt(NEVER_INDEXED.has(name) ? 0x10 : 0x00, 4, nameIndex);
      if (nameIndex === 0) this.writeString(name);
      this.writeString(value);
      return;
    }
    const key = `${name}\0${value}`;
    const staticIndex = STATIC_FIELD_INDEX.get(key);
    if (staticIndex !== undefined) {
      this.writeInt(0x80, 7, staticIndex);
      return;
    }
    const absolute = this.fieldIndex.get(key);
    if (absolute !== undefined && absolute >= this.oldest) {
      this.writeInt(0x80, 7, this.dynamicIndex(absolute));
      return;
    }
    const nameIndex = STATIC_NAME_INDEX.get(name) ?? this.dynamicNameIndex(name);
    if (NEVER_INDEXED.has(name)) {
      this.writeInt(0x10, 4, nameIndex);
    } else {
      this.writeInt(0x40, 6, nameIndex);
      this.insert(name, value, key);
    }
    if (nameIndex === 0) this.writeString(name);
    this.writeString(value);
  }

  /** The dynamic index of an entry with this name, or 0. */
  private dynamicNameIndex(name: string): number {
    const absolute = this.nameIndex.get(name);
    return absolute !== undefined && absolute >= this.oldest ? this.dynamicIndex(absolute) : 0;
  }

  private dynamicIndex(absolute: number): number {
    return STATIC_COUNT + (this.table.inserted - absolute);
  }

  private insert(name: string, value: string, key: string): void {
    const absolute = this.table.inserted;
    this.table.insert(name, value);
    this.oldest = this.table.inserted - this.table.length;
    this.fieldIndex.set(key, absolute);
    this.nameIndex.set(name, absolute);
    if (this.fieldIndex.size > 4 * this.table.length + 64) this.pruneIndexes();
  }

  private resizeTable(capacity: number): void {
    this.table.resize(capacity);
    this.oldest = this.table.inserted - this.table.length;
    this.pruneIndexes();
    this.cache.clear();
  }

  /** Forgets index entries of evicted fields, so the maps stay as small as the table. */
  private pruneIndexes(): void {
    for (const [key, absolute] of this.fieldIndex) if (absolute < this.oldest) this.fieldIndex.delete(key);
    for (const [key, absolute] of this.nameIndex) if (absolute < this.oldest) this.nameIndex.delete(key);
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.out.length) return;
    const grown = new Uint8Array(Math.max(this.out.length * 2, this.length + extra));
    grown.set(this.out.subarray(0, this.length));
    this.out = grown;
  }

  /** §5.1: `value` with an N-bit prefix, the high bits of the first byte set to `pattern`. */
  private writeInt(pattern: number, prefixBits: number, value: number): void {
    this.ensure(6);
    const max = (1 << prefixBits) - 1;
    if (value < max) {
      this.out[this.length++] = pattern | value;
      return;
    }
    this.out[this.length++] = pattern | max;
    let rest = value - max;
    while (rest >= 128) {
      this.out[this.length++] = (rest % 128) | 0x80;
      rest = Math.floor(rest / 128);
    }
    this.out[this.length++] = rest;
  }

  /** §5.2: Huffman when it is shorter, raw otherwise. Characters above U+00FF go as UTF-8. */
  private writeString(s: string): void {
    const huffmanLength = huffmanEncodedLengthOfString(s);
    if (huffmanLength < 0) {
      const utf8 = Buffer.from(s, 'utf8');
      this.writeInt(0x00, 7, utf8.length);
      this.ensure(utf8.length);
      this.out.set(utf8, this.length);
      this.length += utf8.length;
      return;
    }
    if (huffmanLength < s.length) {
      this.writeInt(0x80, 7, huffmanLength);
      this.ensure(huffmanLength);
      this.length = huffmanEncodeInto(s, this.out, this.length);
      return;
    }
    this.writeInt(0x00, 7, s.length);
    this.ensure(s.length);
    for (let i = 0; i < s.length; i++) this.out[this.length++] = s.charCodeAt(i);
  }
}
