/**
 * Property-based fuzz targets for every pure decoder (issue 16, item 18). Each target pairs a
 * generator of hostile inputs (grammar-shaped messages with lengths near 2^62, truncations,
 * repeats, byte flips, invalid Huffman padding and EOS, plus plain random bytes) with a check
 * that throws when a property breaks:
 *
 * - the decoder raises nothing but a `MuxpoolError`, and never `MUXPOOL_ERR_INTERNAL` (bad input
 *   is the peer's fault, never an invariant of ours);
 * - what it keeps and what it hands out is bounded by the input and its limits;
 * - incremental decoders give the same result however the input is split;
 * - each case ends within CASE_BUDGET_MS (a hang is caught by the runner's watchdog).
 *
 * `npm run fuzz` (test/fuzz/run.ts) runs them long; test/unit/fuzz-short.test.ts runs a few
 * thousand cases of each with a fixed seed as part of `npm test`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { FileOriginStore } from '../../src/connect/origin-store.js';
import { MuxpoolError } from '../../src/errors.js';
import { parseAltSvc } from '../../src/protocol/alt-svc.js';
import { type ResponseHead, ResponseParser } from '../../src/protocol/h1/parser.js';
import type { IncomingHeaders } from '../../src/protocol/message.js';
import {
  ControlStreamDecoder,
  MAX_CONTROL_FRAME_PAYLOAD_BYTES,
  QPACK_STATIC_TABLE,
  QpackDecoderStreamDecoder,
  QpackEncoderStreamDecoder,
  RequestStreamDecoder,
  UniStreamTypeReader,
  decodeFieldSection,
  encodeFieldSection,
  huffmanDecode,
  huffmanEncode,
  readStreamType,
  readVarint,
  writeVarint,
} from '../../src/protocol/h3/index.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from '../../src/protocol/h3/huffman.js';
import { H2_FUZZ_TARGETS } from './h2.fuzz.js';

/** A case slower than this is a failure: every decoder is linear in small inputs. */
export const CASE_BUDGET_MS = 2_000;

export interface FuzzTarget<T = unknown> {
  readonly name: string;
  /** What the target covers, for the runner's report. */
  readonly covers: string;
  readonly arbitrary: fc.Arbitrary<T>;
  /** Throws when a property breaks. */
  check(input: T): void;
  /** Cases for the short run in `npm test` (the expensive targets take fewer). */
  readonly shortRuns: number;
  /** Releases what the cases needed (temporary files), once the run is over. */
  dispose?(): void;
}

function define<T>(target: FuzzTarget<T>): FuzzTarget<unknown> {
  return target as FuzzTarget<unknown>;
}

/** Fails the property with a message that says what broke. */
function violated(message: string): never {
  throw new Error(`property violated: ${message}`);
}

/** The error a decoder raised, checked: a MuxpoolError, not an internal one. */
function decoderError(err: unknown, what: string): MuxpoolError {
  if (!(err instanceof MuxpoolError)) violated(`${what} threw a non-MuxpoolError: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  if (err.code === 'MUXPOOL_ERR_INTERNAL') violated(`${what} raised an internal error on peer input: ${err.message}`);
  return err;
}

function timed<T>(what: string, run: () => T): T {
  const started = performance.now();
  const result = run();
  const elapsed = performance.now() - started;
  if (elapsed > CASE_BUDGET_MS) violated(`${what} took ${elapsed.toFixed(0)} ms on one case`);
  return result;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** Splits `bytes` at the sorted, de-duplicated `cuts` (offsets outside the input are dropped). */
function pieces(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (cut <= from || cut >= bytes.length) continue;
    out.push(bytes.subarray(from, cut));
    from = cut;
  }
  if (from < bytes.length || out.length === 0) out.push(bytes.subarray(from));
  return out;
}

function concat(parts: Array<Uint8Array | string>): Uint8Array {
  return Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'latin1') : part)));
}

/** Flips, drops or duplicates a few bytes: near-valid inputs reach deeper than random ones. */
function mutated(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const edit = fc.tuple(fc.nat(), fc.constantFrom('flip', 'drop', 'dup', 'set'), fc.integer({ min: 0, max: 255 }));
  return fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([bytes, edits]) => {
    let out = Buffer.from(bytes);
    for (const [at, kind, byte] of edits) {
      if (out.length === 0) break;
      const i = at % out.length;
      if (kind === 'flip') out[i] = (out[i] as number) ^ (1 << (byte & 7));
      else if (kind === 'set') out[i] = byte;
      else if (kind === 'drop') out = Buffer.concat([out.subarray(0, i), out.subarray(i + 1)]);
      else out = Buffer.concat([out.subarray(0, i + 1), out.subarray(i)]);
    }
    return out;
  });
}

/** Truncated at a random point, or repeated: the shapes a cut or looping peer sends. */
function truncatedOrRepeated(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.tuple(base, fc.nat()).map(([bytes, at]) => bytes.subarray(0, bytes.length === 0 ? 0 : at % bytes.length)),
    fc.tuple(base, fc.integer({ min: 2, max: 4 })).map(([bytes, times]) => Buffer.concat(Array.from({ length: times }, () => bytes))),
  );
}

function hostile(base: fc.Arbitrary<Uint8Array>, randomMaxLength: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { arbitrary: base, weight: 4 },
    { arbitrary: mutated(base), weight: 3 },
    { arbitrary: truncatedOrRepeated(base), weight: 2 },
    { arbitrary: fc.uint8Array({ maxLength: randomMaxLength }), weight: 1 },
  );
}

// ---------------------------------------------------------------------------------------------
// QUIC varints (RFC 9000 §16), with values up to 2^62 - 1 and non-minimal encodings.

const MAX_VARINT_BIG = (1n << 62n) - 1n;

/** `value` as a varint of `length` bytes (1, 2, 4, 8), or its shortest form. */
function varintBytes(value: bigint, length?: 1 | 2 | 4 | 8): Uint8Array {
  const shortest = value < 64n ? 1 : value < 16384n ? 2 : value < 1n << 30n ? 4 : 8;
  const size = Math.max(length ?? shortest, shortest);
  const out = new Uint8Array(size);
  let rest = value;
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  out[0] = (out[0] as number) | ({ 1: 0x00, 2: 0x40, 4: 0x80, 8: 0xc0 } as Record<number, number>)[size]!;
  return out;
}

/** Reference decoder: the exact value, as a bigint. */
function referenceVarint(bytes: Uint8Array, offset: number): { value: bigint; length: number } | undefined {
  if (offset >= bytes.length) return undefined;
  const length = 1 << ((bytes[offset] as number) >> 6);
  if (offset + length > bytes.length) return undefined;
  let value = BigInt((bytes[offset] as number) & 0x3f);
  for (let i = 1; i < length; i++) value = (value << 8n) | BigInt(bytes[offset + i] as number);
  return { value, length };
}

/** Values a peer can send: small, at each length boundary, near 2^53 and near 2^62. */
const interestingVarint: fc.Arbitrary<bigint> = fc.oneof(
  fc.bigInt({ min: 0n, max: 63n }),
  fc.constantFrom(63n, 64n, 16383n, 16384n, (1n << 30n) - 1n, 1n << 30n, (1n << 53n) - 1n, 1n << 53n, MAX_VARINT_BIG - 3n, MAX_VARINT_BIG),
  fc.bigInt({ min: 0n, max: MAX_VARINT_BIG }),
  fc.bigInt({ min: MAX_VARINT_BIG - 1024n, max: MAX_VARINT_BIG }),
);

const varintArbitrary: fc.Arbitrary<Uint8Array> = fc
  .tuple(interestingVarint, fc.constantFrom<1 | 2 | 4 | 8 | undefined>(undefined, undefined, 1, 2, 4, 8))
  .map(([value, length]) => varintBytes(value, length));

const varintTarget = define({
  name: 'varint',
  covers: 'QUIC varints: readVarint, readStreamType, UniStreamTypeReader, writeVarint round trip',
  shortRuns: 3_000,
  arbitrary: fc.record({
    bytes: hostile(fc.array(varintArbitrary, { maxLength: 4 }).map((list) => concat(list)), 24),
    offset: fc.nat({ max: 12 }),
    split: fc.nat({ max: 9 }),
    safe: fc.oneof(fc.integer({ min: 0, max: 16_400 }), fc.constantFrom(63, 64, 1073741823, 1073741824, Number.MAX_SAFE_INTEGER), fc.maxSafeNat()),
  }),
  check({ bytes, offset, split, safe }) {
    timed('varint', () => {
      const expected = referenceVarint(bytes, offset);
      let got: { value: number; length: number } | undefined;
      try {
        got = readVarint(bytes, offset);
      } catch (err) {
        const error = decoderError(err, 'readVarint');
        if (expected === undefined || expected.value <= BigInt(Number.MAX_SAFE_INTEGER)) violated(`readVarint refused a readable varint: ${error.message}`);
        return;
      }
      if (expected === undefined) {
        if (got !== undefined) violated('readVarint read past the end');
      } else {
        if (expected.value > BigInt(Number.MAX_SAFE_INTEGER)) violated(`readVarint accepted ${expected.value}, above 2^53 - 1`);
        if (got === undefined || got.length !== expected.length || BigInt(got.value) !== expected.value) violated(`readVarint misread ${expected.value}`);
      }
      // Stream types may exceed 2^53 - 1: read rounded, never an exception.
      const type = readStreamType(bytes, offset);
      if ((type === undefined) !== (expected === undefined)) violated('readStreamType disagrees on completeness');
      if (type !== undefined && expected !== undefined && (type.type !== Number(expected.value) || type.length !== expected.length)) {
        violated(`readStreamType read ${type.type}, expected about ${expected.value}`);
      }
      // The same type fed in two pieces.
      const rest = bytes.subarray(offset);
      if (rest.length > 0) {
        const reader = new UniStreamTypeReader();
        const firstPiece = rest.subarray(0, Math.min(split, rest.length));
        const first = reader.push(firstPiece);
        const result = first ?? (split < rest.length ? reader.push(rest.subarray(split)) : undefined);
        if ((result === undefined) !== (expected === undefined)) violated('UniStreamTypeReader disagrees on completeness');
        if (result !== undefined && expected !== undefined) {
          if (result.type !== Number(expected.value)) violated(`UniStreamTypeReader read ${result.type}, expected ${expected.value}`);
          // The rest is what follows the type in the chunk that completed it.
          const restLength = (first !== undefined ? firstPiece.length : rest.length) - expected.length;
          if (result.rest.length !== restLength) violated('UniStreamTypeReader lost or invented bytes after the type');
        }
      }
      // Round trip for every value a number holds exactly.
      const out = new Uint8Array(8);
      const end = writeVarint(out, 0, safe);
      const back = readVarint(out.subarray(0, end), 0);
      if (back?.value !== safe || back.length !== end) violated(`writeVarint/readVarint round trip lost ${safe}`);
    });
  },
});

// ---------------------------------------------------------------------------------------------
// Huffman (RFC 7541 Appendix B), against a bit-by-bit reference decoder.

const huffmanByCode = new Map<string, number>();
for (let sym = 0; sym <= 256; sym++) huffmanByCode.set(`${HUFFMAN_LENGTHS[sym]}:${HUFFMAN_CODES[sym]}`, sym);

/** RFC 7541 §5.2 read literally: bytes, or 'error' for EOS, long or non-EOS padding. */
function referenceHuffman(bytes: Uint8Array): number[] | 'error' {
  const out: number[] = [];
  let code = 0;
  let bits = 0;
  for (const byte of bytes) {
    for (let b = 7; b >= 0; b--) {
      code = code * 2 + ((byte >> b) & 1);
      bits++;
      const sym = huffmanByCode.get(`${bits}:${code}`);
      if (sym === undefined) continue;
      if (sym === 256) return 'error';
      out.push(sym);
      code = 0;
      bits = 0;
    }
  }
  // Padding: at most 7 bits, all ones (the EOS prefix).
  if (bits > 7 || code !== 2 ** bits - 1) return 'error';
  return out;
}

/** Appends raw bits to a valid encoding: EOS (30 ones), zero padding, long padding, garbage. */
const huffmanArbitrary: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 48 }).map((bytes) => huffmanEncode(bytes)),
  fc
    .tuple(fc.uint8Array({ maxLength: 32 }), fc.constantFrom([0xff, 0xff, 0xff, 0xfc], [0x00], [0xff], [0xff, 0xff], [0x3f, 0xff, 0xff, 0xff], [0xfe]))
    .map(([bytes, tail]) => concat([huffmanEncode(bytes), Uint8Array.from(tail)])),
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.nat()).map(([bytes, at]) => {
    // The last byte's padding bits cleared or changed.
    const encoded = Buffer.from(huffmanEncode(bytes));
    if (encoded.length > 0) encoded[encoded.length - 1] = (encoded[encoded.length - 1] as number) & (at & 0xff);
    return encoded;
  }),
  fc.uint8Array({ maxLength: 64 }),
);

const huffmanTarget = define({
  name: 'huffman',
  covers: 'Huffman decoding: EOS, padding longer than 7 bits or not EOS-prefixed, round trip',
  shortRuns: 3_000,
  arbitrary: fc.record({ bytes: hostile(huffmanArbitrary, 64), plain: fc.uint8Array({ maxLength: 64 }) }),
  check({ bytes, plain }) {
    timed('huffman', () => {
      const expected = referenceHuffman(bytes);
      let got: Uint8Array | undefined;
      try {
        got = huffmanDecode(bytes);
      } catch (err) {
        const error = decoderError(err, 'huffmanDecode');
        if (error.code !== 'MUXPOOL_ERR_QPACK') violated(`huffmanDecode failed with ${error.code}`);
        if (expected !== 'error') violated(`huffmanDecode refused a valid string: ${error.message}`);
      }
      if (got !== undefined) {
        if (expected === 'error') violated('huffmanDecode accepted EOS or invalid padding');
        if (got.length > Math.floor((bytes.length * 8) / 5)) violated('huffmanDecode produced more than 8/5 of its input');
        if (Buffer.compare(Buffer.from(got), Buffer.from(expected)) !== 0) violated('huffmanDecode disagrees with the reference decoder');
      }
      const round = huffmanDecode(huffmanEncode(plain));
      if (Buffer.compare(Buffer.from(round), Buffer.from(plain)) !== 0) violated('Huffman round trip changed the bytes');
    });
  },
});

// ---------------------------------------------------------------------------------------------
// QPACK field sections (RFC 9204 §4.5) and the encoder/decoder instruction streams (§4.3, §4.4).

/** An N-bit prefix integer (RFC 7541 §5.1), with up to `extra` redundant continuation bytes. */
function prefixInt(flags: number, prefixBits: number, value: bigint, extra = 0): Uint8Array {
  const max = BigInt((1 << prefixBits) - 1);
  if (value < max && extra === 0) return Uint8Array.of(flags | Number(value));
  const out = [flags | Number(max)];
  let rest = value - max;
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  for (let i = 0; i < extra; i++) {
    out.push(Number(rest) | 0x80);
    rest = 0n;
  }
  out.push(Number(rest));
  return Uint8Array.from(out);
}

const qpackLength: fc.Arbitrary<bigint | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 6 }, // the true length
  { arbitrary: fc.bigInt({ min: 0n, max: 300n }), weight: 2 },
  { arbitrary: fc.constantFrom((1n << 32n) - 1n, 1n << 35n, (1n << 53n) + 1n, MAX_VARINT_BIG, 1n << 70n), weight: 1 },
);

/** A string literal: raw or Huffman (valid or garbage), its length true or lying. */
function qpackString(flags: number, prefixBits: number, huffmanFlag: number): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.uint8Array({ maxLength: 40 }), fc.constantFrom('raw', 'huffman', 'garbage'), qpackLength, fc.nat({ max: 2 }))
    .map(([text, coding, length, extra]) => {
      const body = coding === 'raw' ? text : coding === 'huffman' ? huffmanEncode(text) : text;
      const flag = coding === 'raw' ? 0 : huffmanFlag;
      return concat([prefixInt(flags | flag, prefixBits, length ?? BigInt(body.length), extra), body]);
    });
}

const staticIndex: fc.Arbitrary<bigint> = fc.oneof(
  fc.bigInt({ min: 0n, max: BigInt(QPACK_STATIC_TABLE.length - 1) }),
  fc.constantFrom(BigInt(QPACK_STATIC_TABLE.length), 1000n, 1n << 34n, MAX_VARINT_BIG),
);

const fieldLine: fc.Arbitrary<Uint8Array> = fc.oneof(
  // §4.5.2 indexed, static (T=1) or dynamic (T=0)
  fc.tuple(fc.boolean(), staticIndex).map(([isStatic, index]) => prefixInt(isStatic ? 0xc0 : 0x80, 6, index)),
  // §4.5.4 literal with name reference
  fc
    .tuple(fc.boolean(), staticIndex, qpackString(0x00, 7, 0x80))
    .map(([isStatic, index, value]) => concat([prefixInt(isStatic ? 0x50 : 0x40, 4, index), value])),
  // §4.5.6 literal with literal name
  fc.tuple(qpackString(0x20, 3, 0x08), qpackString(0x00, 7, 0x80)).map(([name, value]) => concat([name, value])),
  // §4.5.3, §4.5.5 post-base forms
  fc.tuple(fc.constantFrom(0x10, 0x00), fc.bigInt({ min: 0n, max: 100n })).map(([flags, index]) => prefixInt(flags, flags === 0x10 ? 4 : 3, index)),
);

const fieldSectionPrefix: fc.Arbitrary<Uint8Array> = fc.oneof(
  { arbitrary: fc.constant(Uint8Array.of(0, 0)), weight: 8 },
  { arbitrary: fc.tuple(interestingVarint, fc.boolean(), fc.bigInt({ min: 0n, max: 1n << 40n })).map(([ric, sign, base]) => concat([prefixInt(0, 8, ric), prefixInt(sign ? 0x80 : 0, 7, base)])), weight: 1 },
);

const fieldSectionArbitrary: fc.Arbitrary<Uint8Array> = fc
  .tuple(fieldSectionPrefix, fc.array(fieldLine, { maxLength: 8 }))
  .map(([prefix, lines]) => concat([prefix, ...lines]));

/** Valid lower-case field lists, for the encode/decode round trip. */
const fieldList: fc.Arbitrary<Array<[string, string]>> = fc.array(
  fc.tuple(
    fc.oneof(
      fc.constantFrom(...QPACK_STATIC_TABLE.map(([name]) => name)),
      fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_!#'), minLength: 1, maxLength: 12 }),
    ),
    fc.oneof(fc.constantFrom(...QPACK_STATIC_TABLE.map(([, value]) => value)), fc.uint8Array({ maxLength: 30 }).map(latin1)),
  ),
  { maxLength: 8 },
);

function sectionSize(fields: Array<[string, string]>): number {
  let size = 0;
  for (const [name, value] of fields) size += name.length + value.length + 32;
  return size;
}

const qpackTarget = define({
  name: 'qpack',
  covers: 'QPACK field sections: static/dynamic references, literals, Huffman, prefix integers near 2^62, limits, round trip',
  shortRuns: 3_000,
  arbitrary: fc.record({
    block: hostile(fieldSectionArbitrary, 96),
    limit: fc.constantFrom(64, 512, 16_384),
    fields: fieldList,
  }),
  check({ block, limit, fields }) {
    timed('qpack', () => {
      try {
        const decoded = decodeFieldSection(block, { maxFieldSectionSize: limit });
        if (sectionSize(decoded) > limit) violated(`decoded section of ${sectionSize(decoded)} bytes is over the limit ${limit}`);
        for (const [name] of decoded) if (/[A-Z]/.test(name)) violated(`upper-case name ${JSON.stringify(name)} passed`);
      } catch (err) {
        decoderError(err, 'decodeFieldSection');
      }
      const back = decodeFieldSection(encodeFieldSection(fields), { maxFieldSectionSize: 1 << 20 });
      if (JSON.stringify(back) !== JSON.stringify(fields)) violated('QPACK round trip changed the fields');
    });
  },
});

const qpackStreamsTarget = define({
  name: 'qpack-streams',
  covers: 'QPACK encoder and decoder stream instructions, split anywhere',
  shortRuns: 3_000,
  arbitrary: fc.record({
    encoder: hostile(
      fc.array(fc.oneof(fc.constant(Uint8Array.of(0x20)), fc.tuple(fc.constantFrom(0x20, 0xc0, 0x80, 0x40, 0x00), interestingVarint).map(([flags, v]) => prefixInt(flags, 5, v))), { maxLength: 6 }).map((l) => concat(l)),
      32,
    ),
    decoder: hostile(
      fc.array(fc.tuple(fc.constantFrom(0x40, 0x80, 0x00), interestingVarint, fc.nat({ max: 3 })).map(([flags, v, extra]) => prefixInt(flags, flags === 0x80 ? 7 : 6, v, extra)), { maxLength: 6 }).map((l) => concat(l)),
      32,
    ),
    cuts: fc.array(fc.nat({ max: 64 }), { maxLength: 4 }),
  }),
  check({ encoder, decoder, cuts }) {
    timed('qpack-streams', () => {
      const outcome = (feed: (decoder: QpackEncoderStreamDecoder | QpackDecoderStreamDecoder) => void, make: () => QpackEncoderStreamDecoder | QpackDecoderStreamDecoder): string => {
        try {
          feed(make());
          return 'ok';
        } catch (err) {
          return decoderError(err, 'QPACK stream decoder').code;
        }
      };
      for (const [bytes, make] of [
        [encoder, () => new QpackEncoderStreamDecoder()],
        [decoder, () => new QpackDecoderStreamDecoder()],
      ] as const) {
        const whole = outcome((d) => d.push(bytes), make);
        const split = outcome((d) => {
          for (const piece of pieces(bytes, cuts)) d.push(piece);
        }, make);
        if (whole !== split) violated(`QPACK stream decoder: ${whole} whole, ${split} split at ${JSON.stringify(cuts)}`);
      }
    });
  },
});

// ---------------------------------------------------------------------------------------------
// HTTP/3 frames on request and control streams (RFC 9114 §7).

const frameType: fc.Arbitrary<bigint> = fc.oneof(
  { arbitrary: fc.constantFrom(0x00n, 0x01n, 0x03n, 0x04n, 0x05n, 0x07n, 0x0dn), weight: 6 },
  { arbitrary: fc.constantFrom(0x02n, 0x06n, 0x08n, 0x09n), weight: 1 }, // HTTP/2 only
  { arbitrary: fc.bigInt({ min: 0n, max: (1n << 57n) - 2n }).map((n) => 0x1fn * n + 0x21n), weight: 1 }, // reserved
  { arbitrary: interestingVarint, weight: 1 },
);

function settingsPayload(): fc.Arbitrary<Uint8Array> {
  return fc
    .array(fc.tuple(fc.oneof(fc.constantFrom(0x01n, 0x06n, 0x07n, 0x02n, 0x21n), interestingVarint), interestingVarint), { maxLength: 5 })
    .map((pairs) => concat(pairs.flatMap(([id, value]) => [varintBytes(id), varintBytes(value)])));
}

/** One frame: type, a length that is true, short, long or near 2^62, and a payload. */
const frame: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    frameType,
    fc.oneof(
      { arbitrary: fieldSectionArbitrary, weight: 3 },
      { arbitrary: settingsPayload(), weight: 2 },
      { arbitrary: varintArbitrary, weight: 2 },
      { arbitrary: fc.uint8Array({ maxLength: 40 }), weight: 2 },
    ),
    fc.oneof(
      { arbitrary: fc.constant<bigint | undefined>(undefined), weight: 8 },
      { arbitrary: fc.bigInt({ min: 0n, max: 64n }), weight: 1 },
      { arbitrary: fc.constantFrom(16_385n, (1n << 30n) - 1n, 1n << 53n, MAX_VARINT_BIG), weight: 1 },
    ),
    fc.constantFrom<1 | 2 | 4 | 8 | undefined>(undefined, undefined, undefined, 8),
  )
  .map(([type, payload, length, width]) => concat([varintBytes(type, width), varintBytes(length ?? BigInt(payload.length), width), payload]));

/** A frame of `type` whose payload is `payload`, its length written in `width` bytes. */
function frameBytes(type: bigint, payload: Uint8Array, width?: 1 | 2 | 4 | 8): Uint8Array {
  return concat([varintBytes(type, width), varintBytes(BigInt(payload.length), width), payload]);
}

const reservedFrame: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.bigInt({ min: 0n, max: (1n << 57n) - 2n }), fc.uint8Array({ maxLength: 8 }))
  .map(([n, payload]) => frameBytes(0x1fn * n + 0x21n, payload));

/** What a server sends on a request stream: interim and final HEADERS, DATA, trailers, grease. */
const responseFrames: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.array(fc.constantFrom('100', '103'), { maxLength: 2 }),
    fc.constantFrom('200', '204', '404', '2000', ''),
    fieldList,
    fc.array(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 24 }).map((data) => frameBytes(0n, data)), reservedFrame), { maxLength: 4 }),
    fc.option(fieldList),
  )
  .map(([interim, status, fields, body, trailers]) =>
    concat([
      ...interim.map((code) => frameBytes(1n, encodeFieldSection([[':status', code]]))),
      frameBytes(1n, encodeFieldSection(status === '' ? fields : [[':status', status], ...fields])),
      ...body,
      ...(trailers === null ? [] : [frameBytes(1n, encodeFieldSection(trailers))]),
    ]),
  );

const frameStream: fc.Arbitrary<Uint8Array> = hostile(
  fc.oneof(
    { arbitrary: responseFrames, weight: 3 },
    { arbitrary: fc.tuple(responseFrames, fc.array(frame, { maxLength: 3 })).map(([good, bad]) => concat([good, ...bad])), weight: 2 },
    { arbitrary: fc.array(frame, { maxLength: 6 }).map((frames) => concat(frames)), weight: 2 },
  ),
  96,
);

const FIELD_LIMIT = 1_024;

/** Events and outcome of a decoder fed `chunks`, with the buffering bound checked after each. */
function runFrames(kind: 'request' | 'control', role: 'client' | 'server', chunks: Uint8Array[], fin: boolean, inputBytes: number): string {
  const decoder = kind === 'request' ? new RequestStreamDecoder({ maxFieldSectionSize: FIELD_LIMIT }, role) : new ControlStreamDecoder(role);
  const events: unknown[] = [];
  const summary: string[] = [];
  let dataBytes = 0;
  let dataText = '';
  const flushData = (): void => {
    if (dataText !== '') summary.push(`data ${dataText}`);
    dataText = '';
  };
  const bound = kind === 'request' ? FIELD_LIMIT : MAX_CONTROL_FRAME_PAYLOAD_BYTES;
  // Events a push appended, even one that then threw: they were decoded before the error.
  const takeEvents = (): void => {
    for (const event of events as Array<{ kind: string; bytes?: Uint8Array }>) {
      if (event.kind === 'data') {
        dataBytes += (event.bytes as Uint8Array).length;
        dataText += Buffer.from(event.bytes as Uint8Array).toString('hex');
      } else {
        flushData();
        summary.push(JSON.stringify(event, (_k, v: unknown) => (v instanceof Map ? [...v.entries()] : v)));
      }
    }
    events.length = 0;
  };
  try {
    for (const chunk of chunks) {
      try {
        (decoder as { push(chunk: Uint8Array, out: unknown[]): void }).push(chunk, events);
      } finally {
        takeEvents();
      }
      const held = (decoder as unknown as { payload?: Uint8Array }).payload;
      if (held !== undefined && held.length > bound) violated(`${kind} decoder buffers ${held.length} bytes, over ${bound}`);
    }
    if (dataBytes > inputBytes) violated('DATA events carry more bytes than the input');
    if (fin) decoder.finish();
    flushData();
    return `${summary.join('|')}|ok`;
  } catch (err) {
    flushData();
    const error = decoderError(err, `${kind} stream decoder`);
    return `${summary.join('|')}|${error.code}:${error.wireCode ?? ''}`;
  }
}

function framesTarget(kind: 'request' | 'control'): FuzzTarget<unknown> {
  return define({
    name: kind === 'request' ? 'h3-request-stream' : 'h3-control-stream',
    covers:
      kind === 'request'
        ? 'HTTP/3 request streams: frame order, HEADERS (QPACK) and DATA, lengths near 2^62, truncation, whole vs split'
        : 'HTTP/3 control streams: SETTINGS, GOAWAY, MAX_PUSH_ID, CANCEL_PUSH, reserved types, whole vs split',
    shortRuns: 2_000,
    arbitrary: fc.record({
      bytes:
        kind === 'request'
          ? frameStream
          : fc.oneof(
              frameStream,
              fc.tuple(settingsPayload(), frameStream).map(([settings, rest]) => concat([varintBytes(0x04n), varintBytes(BigInt(settings.length)), settings, rest])),
            ),
      role: fc.constantFrom<'client' | 'server'>('client', 'server'),
      fin: fc.boolean(),
      cuts: fc.array(fc.nat({ max: 200 }), { maxLength: 6 }),
    }),
    check({ bytes, role, fin, cuts }) {
      timed(kind, () => {
        const whole = runFrames(kind, role, [bytes], fin, bytes.length);
        const split = runFrames(kind, role, pieces(bytes, cuts), fin, bytes.length);
        if (whole !== split) violated(`${kind} stream: whole gives ${whole}, split at ${JSON.stringify(cuts)} gives ${split}`);
        if (bytes.length <= 48) {
          const everyByte = runFrames(kind, role, pieces(bytes, Array.from({ length: bytes.length }, (_, i) => i)), fin, bytes.length);
          if (whole !== everyByte) violated(`${kind} stream: whole gives ${whole}, byte by byte ${everyByte}`);
        }
      });
    },
  });
}

// ---------------------------------------------------------------------------------------------
// The HTTP/1.1 response parser (RFC 9112).

const EOLS = ['\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r', ' \r\n'];

const headerLine: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.constantFrom(
      'content-length: 5',
      'content-length: 0',
      'Content-Length: 3',
      'content-length: 5, 5',
      'content-length: 1, 2',
      'content-length: 99999999999999999999',
      'content-length: 4611686018427387903',
      'content-length: -1',
      'transfer-encoding: chunked',
      'Transfer-Encoding: CHUNKED',
      'transfer-encoding: gzip, chunked',
      'transfer-encoding: gzip',
      'transfer-encoding: chunked, chunked',
      'transfer-encoding: ,chunked,',
      'connection: close',
      'connection: keep-alive',
      'keep-alive: timeout=5, max=3',
      'keep-alive: timeout=99999999999',
      'set-cookie: a=1',
      'x-a: b',
      'trailer: x-t',
      ' obs-fold',
      '\tobs-fold',
      'constructor: x',
      '__proto__: y',
      'toString: z',
      'bad header',
      ': empty-name',
      'x\0: y',
      'x: a\0b',
      'x: a\rb',
      'x : space',
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.string({ unit: fc.constantFrom(...'abcxyzABC-_:!# \t\x7f\xe9'), minLength: 0, maxLength: 10 }),
        fc.string({ unit: fc.constantFrom(...'abc 123\t,;="\\\x01\x7f\xff'), maxLength: 20 }),
      )
      .map(([name, value]) => `${name}:${value}`),
  },
);

const statusLine: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'HTTP/1.1 200 OK',
      'HTTP/1.1 200 OK',
      'HTTP/1.0 200 OK',
      'HTTP/1.1 204 No Content',
      'HTTP/1.1 304 Not Modified',
      'HTTP/1.1 404 Not Found',
      'HTTP/1.1 100 Continue',
      'HTTP/1.1 103 Early Hints',
      'HTTP/1.1 101 Switching Protocols',
      'HTTP/1.1 200',
      'HTTP/1.1 200 ',
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom('HTTP/2 200 OK', 'HTTP/1.1 99 X', 'HTTP/1.1 2OO OK', 'HTTP/1.1  200 OK', 'http/1.1 200 OK', 'HTTP/1.1 600 X', '') },
);

/** A chunk size as a peer might write it: true or lying, leading zeros, near 2^64, extensions. */
const chunkSizeText = (length: number): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.oneof(
        { arbitrary: fc.constant(length.toString(16)), weight: 12 },
        { arbitrary: fc.constant(length.toString(16).toUpperCase()), weight: 1 },
        { arbitrary: fc.nat({ max: 40 }).map((zeros) => '0'.repeat(zeros) + length.toString(16)), weight: 2 },
        { arbitrary: fc.constantFrom('ffffffffffffffff', '10000000000000', 'fffffffffffff', '', 'x', '-1', ' 1', '1 '), weight: 1 },
      ),
      fc.oneof({ arbitrary: fc.constant(''), weight: 8 }, { arbitrary: fc.constantFrom(';ext', ';a=b', ' ;x="y"', ';\0', '; x\r'), weight: 1 }),
    )
    .map(([size, ext]) => size + ext);

const chunk: fc.Arbitrary<string> = fc
  .uint8Array({ maxLength: 20 })
  .chain((data) =>
    fc
      .tuple(chunkSizeText(data.length), fc.oneof({ arbitrary: fc.constant('\r\n'), weight: 8 }, { arbitrary: fc.constantFrom(...EOLS), weight: 1 }), fc.constantFrom('\r\n', '\r\n', '\r\n', '\r\n', '\n', 'X', ''))
      .map(([size, eol, after]) => `${size}${eol}${latin1(data)}${after}`),
  );

const chunkedBody: fc.Arbitrary<string> = fc
  .tuple(
    fc.array(chunk, { maxLength: 4 }),
    chunkSizeText(0),
    fc.array(fc.oneof(fc.constantFrom('x-t: 1', 'constructor: c', 'set-cookie: t=1'), headerLine), { maxLength: 3 }),
    fc.oneof({ arbitrary: fc.constant('\r\n'), weight: 8 }, { arbitrary: fc.constantFrom(...EOLS), weight: 1 }),
  )
  .map(([chunks, last, trailers, eol]) => `${chunks.join('')}${last}${eol}${trailers.map((t) => t + eol).join('')}${eol}`);

/** A body and the framing fields that go with it (or, sometimes, lie about it). */
const framedBody: fc.Arbitrary<{ fields: string[]; body: string }> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(chunkedBody, fc.constantFrom('chunked', 'chunked', 'Chunked', 'gzip, chunked', 'chunked, gzip', ' chunked ,'), fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }))
      .map(([body, te, withLength]) => ({ fields: [`transfer-encoding: ${te}`, ...(withLength ? [`content-length: ${body.length}`] : [])], body })),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.uint8Array({ maxLength: 24 }), fc.oneof({ arbitrary: fc.constant(0), weight: 6 }, { arbitrary: fc.integer({ min: -2, max: 2 }), weight: 1 }))
      .map(([data, skew]) => ({ fields: [`content-length: ${Math.max(0, data.length + skew)}`], body: latin1(data) })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }).map((data) => ({ fields: [], body: latin1(data) })) },
);

const h1Response: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.array(fc.constantFrom('HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n'), { maxLength: 2 }),
    statusLine,
    fc.array(fc.oneof({ arbitrary: fc.constantFrom('x-a: b', 'connection: close', 'connection: keep-alive', 'keep-alive: timeout=3', 'set-cookie: a=1', 'Set-Cookie: b=2'), weight: 3 }, { arbitrary: headerLine, weight: 1 }), {
      maxLength: 5,
    }),
    framedBody,
    fc.oneof({ arbitrary: fc.constant('\r\n'), weight: 8 }, { arbitrary: fc.constantFrom(...EOLS), weight: 1 }),
    fc.oneof({ arbitrary: fc.constant(''), weight: 4 }, { arbitrary: fc.constantFrom('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', 'garbage'), weight: 1 }),
  )
  .map(([interim, status, headers, framed, eol, after]) => {
    const fields = [...headers, ...framed.fields].map((line) => line + eol).join('');
    return Buffer.from(`${interim.join('')}${status}${eol}${fields}${eol}${framed.body}${after}`, 'latin1');
  });

const H1_LIMITS = { maxHeaderBytes: 512, maxHeaderCount: 16 };
/** Single cuts at every offset for inputs up to this size (a parse per offset per case). */
const EVERY_OFFSET_MAX_BYTES = 160;

function headerCount(headers: IncomingHeaders): number {
  let count = 0;
  for (const name in headers) {
    const value = headers[name];
    count += Array.isArray(value) ? value.length : 1;
  }
  return count;
}

/** Events of one parse, bodies merged, ending with the outcome: an error code or the state. */
function runH1(bytes: Uint8Array, method: string, eof: boolean, chunks: Uint8Array[]): string {
  const events: string[] = [];
  let body = '';
  let bodyBytes = 0;
  const flushBody = (): void => {
    if (body !== '') events.push(`body ${body}`);
    body = '';
  };
  const parser = new ResponseParser(
    {
      onHead(head: ResponseHead) {
        if (Object.getPrototypeOf(head.headers) !== null) violated('a header record has a prototype');
        if (headerCount(head.headers) > H1_LIMITS.maxHeaderCount) violated('more fields than maxHeaderCount');
        events.push(`head ${head.status} ${JSON.stringify(head.headers)} ${head.keepAlive} ${head.keepAliveTimeoutMs}`);
      },
      onBody(data) {
        bodyBytes += data.length;
        body += data.toString('latin1');
      },
      onTrailers(trailers) {
        flushBody();
        events.push(`trailers ${JSON.stringify(trailers)}`);
      },
      onComplete() {
        flushBody();
        events.push('complete');
      },
    },
    H1_LIMITS,
  );
  parser.start(method);
  let outcome: string;
  try {
    for (const piece of chunks) {
      parser.execute(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
      // What the parser keeps between chunks: a partial head (bounded by maxHeaderBytes) and a
      // partial chunk-size line (bounded by its 4 KiB line limit).
      const held = parser as unknown as { pending?: Buffer; lineText: string };
      if (held.pending !== undefined && held.pending.length > H1_LIMITS.maxHeaderBytes) violated(`the parser holds ${held.pending.length} head bytes, over maxHeaderBytes`);
      if (held.lineText.length > 4096) violated(`the parser holds a ${held.lineText.length}-byte chunk-size line`);
    }
    if (eof) parser.finish();
    outcome = parser.state;
  } catch (err) {
    outcome = decoderError(err, 'ResponseParser').code;
  }
  if (bodyBytes > bytes.length) violated('more body bytes than input bytes');
  flushBody();
  events.push(outcome);
  return events.join('\n');
}

const h1Target = define({
  name: 'h1-response',
  covers: 'HTTP/1.1 response parser: status line, fields, framing, chunked, trailers, limits; whole vs split at every offset',
  // Each case parses its input once per offset: 1,000 cases are some 100,000 parses.
  shortRuns: 1_000,
  arbitrary: fc.record({
    bytes: hostile(h1Response, 200),
    method: fc.constantFrom('GET', 'GET', 'HEAD', 'POST'),
    eof: fc.boolean(),
    cuts: fc.array(fc.nat({ max: 400 }), { maxLength: 5 }),
  }),
  check({ bytes, method, eof, cuts }) {
    timed('h1-response', () => {
      const whole = runH1(bytes, method, eof, [bytes]);
      const compare = (label: string, chunks: Uint8Array[]): void => {
        const got = runH1(bytes, method, eof, chunks);
        if (got !== whole) violated(`HTTP/1.1 parse differs when ${label}:\n--- whole\n${whole}\n--- ${label}\n${got}`);
      };
      compare(`split at ${JSON.stringify(cuts)}`, pieces(bytes, cuts));
      compare('fed byte by byte', pieces(bytes, Array.from({ length: bytes.length }, (_, i) => i)));
      if (bytes.length <= EVERY_OFFSET_MAX_BYTES) for (let cut = 1; cut < bytes.length; cut++) compare(`split at ${cut}`, pieces(bytes, [cut]));
    });
  },
});

// ---------------------------------------------------------------------------------------------
// The Alt-Svc parser (RFC 7838 §3).

const altSvcValue: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .array(
        fc
          .tuple(
            fc.constantFrom('h3', 'h2', 'h3-29', 'h%33', 'h%zz', '%', 'x"y', ''),
            fc.constantFrom(':443', 'alt.example:8443', '[::1]:443', '[::1:443', 'HOST:1', ':0', ':65536', ':99999999999', 'a b:1', ':', '', 'h:1"'),
            fc.constantFrom('"', '"', '', '\\"'),
            fc.array(fc.constantFrom('ma=60', 'ma=99999999999999999999', 'ma=-1', 'ma="30"', 'persist=1', 'persist=0', 'x=y', 'ma', '=', 'ma="unterminated'), { maxLength: 3 }),
          )
          .map(([id, authority, quote, params]) => [`${id}=${quote}${authority}${quote}`, ...params].join(';')),
        { maxLength: 20 },
      )
      .map((alternatives) => alternatives.join(', ')),
  },
  { weight: 1, arbitrary: fc.constantFrom('clear', ' clear ', 'clear, h3=":443"') },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...'h3=":;,\\ \tma1%[]'), maxLength: 80 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 80 }).map(latin1) },
  { weight: 1, arbitrary: fc.constantFrom('"'.repeat(9000), `h3=":443", ${'\\'.repeat(8000)}`, `${'h3=":1",'.repeat(1100)}`) },
);

const altSvcTarget = define({
  name: 'alt-svc',
  covers: 'Alt-Svc field values: quoting, escapes, authorities, parameters, clear, repeats, oversized fields',
  shortRuns: 3_000,
  arbitrary: fc.oneof(altSvcValue, fc.array(altSvcValue, { maxLength: 3 })),
  check(value) {
    timed('alt-svc', () => {
      let parsed: ReturnType<typeof parseAltSvc>;
      try {
        parsed = parseAltSvc(value as string | string[]);
      } catch (err) {
        violated(`parseAltSvc threw: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (parsed === undefined || parsed.clear) return;
      if (parsed.alternatives.length === 0 || parsed.alternatives.length > 16) violated(`${parsed.alternatives.length} alternatives`);
      for (const alt of parsed.alternatives) {
        if (!Number.isInteger(alt.port) || alt.port < 1 || alt.port > 65_535) violated(`port ${alt.port}`);
        if (!Number.isInteger(alt.maxAgeSeconds) || alt.maxAgeSeconds < 0 || alt.maxAgeSeconds > 2 ** 31) violated(`ma ${alt.maxAgeSeconds}`);
        if (alt.host !== alt.host.toLowerCase() || /[\s/?#@]/.test(alt.host)) violated(`host ${JSON.stringify(alt.host)}`);
      }
    });
  },
});

// ---------------------------------------------------------------------------------------------
// The origin store's file, read through its public path: `new FileOriginStore(path)`.

const recordValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(Date.now() + 3_600_000, Date.now() - 1, 0, -1, 1e15, Number.MAX_SAFE_INTEGER, 'later', null, true),
  fc.constantFrom('h2', 'http/1.1', 'h3', 'alt.example', 443, 70_000, 'AAAA'),
  fc.jsonValue({ maxDepth: 2 }),
);

const originRecord: fc.Arbitrary<Record<string, unknown>> = fc.dictionary(
  fc.constantFrom('altSvcH3Until', 'altSvcH3Host', 'altSvcH3Port', 'brokenUntil', 'brokenBackoffMs', 'tcpProtocol', 'streamLimit', 'tlsSession', 'quicSession', '__proto__', 'constructor', 'x'),
  recordValue,
  { maxKeys: 6 },
);

const storeText: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        fc.constantFrom<unknown>(1, 1, 1, 2, '1', null),
        fc.dictionary(fc.oneof(fc.constantFrom('h:localhost:443|tls', '__proto__', 'constructor', ''), fc.string({ maxLength: 12 })), fc.oneof(originRecord, recordValue), { maxKeys: 5 }),
      )
      .map(([version, origins]) => JSON.stringify({ version, origins })),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
  { weight: 1, arbitrary: fc.constantFrom('{"version":1,"origins":{"a":{"brokenUntil":1e400}}}', '{"version":1,"origins":[[1]]}', '\ufeff{}', '{"version":1,"origins":"x"}') },
);

/** A directory for the store file, made by the first case and removed by `dispose()`. */
let storeDir: string | undefined;
function storePath(): string {
  storeDir ??= mkdtempSync(join(tmpdir(), 'muxpool-fuzz-'));
  return join(storeDir, 'origins.json');
}

const originStoreTarget = define({
  name: 'origin-store',
  covers: 'FileOriginStore loading: damaged JSON, wrong types, expired and absurd times, prototype keys',
  shortRuns: 1_000,
  dispose() {
    if (storeDir !== undefined) rmSync(storeDir, { recursive: true, force: true });
    storeDir = undefined;
  },
  arbitrary: fc.oneof(storeText, mutated(storeText.map((text) => Buffer.from(text))).map((bytes) => Buffer.from(bytes).toString('utf8'))),
  check(text) {
    timed('origin-store', () => {
      const path = storePath();
      writeFileSync(path, text as string, { mode: 0o600 });
      let store: FileOriginStore;
      try {
        store = new FileOriginStore(path);
      } catch (err) {
        decoderError(err, 'FileOriginStore');
        return;
      }
      const now = Date.now();
      let data: unknown;
      try {
        data = JSON.parse(text as string);
      } catch {
        data = undefined;
      }
      const origins = (data as { origins?: unknown } | undefined)?.origins;
      if (typeof origins !== 'object' || origins === null) return;
      for (const origin of Object.keys(origins)) {
        const record = store.get(origin);
        if (record === undefined) continue;
        if (typeof record !== 'object') violated(`record for ${origin} is a ${typeof record}`);
        if (record.altSvcH3Until !== undefined && !(typeof record.altSvcH3Until === 'number' && record.altSvcH3Until > now - 60_000)) {
          violated(`expired or invalid altSvcH3Until ${String(record.altSvcH3Until)} kept`);
        }
        if (record.brokenUntil !== undefined && !(typeof record.brokenUntil === 'number' && record.brokenUntil > now - 60_000)) {
          violated(`expired or invalid brokenUntil ${String(record.brokenUntil)} kept`);
        }
      }
    });
  },
});

export const TARGETS: ReadonlyArray<FuzzTarget<unknown>> = [
  h1Target,
  framesTarget('request'),
  framesTarget('control'),
  qpackTarget,
  qpackStreamsTarget,
  huffmanTarget,
  varintTarget,
  altSvcTarget,
  originStoreTarget,
  ...H2_FUZZ_TARGETS.map((target) => define<never>(target as unknown as FuzzTarget<never>)),
];

/** Runs `target` for `numRuns` cases from `seed`; the report of a failure, or undefined. */
export function runTarget(
  target: FuzzTarget<unknown>,
  options: { numRuns: number; seed: number; onCase?: () => void },
): { failure: string | undefined; runs: number } {
  const onCase = options.onCase;
  const property = fc.property(target.arbitrary, (input) => {
    onCase?.();
    target.check(input);
  });
  let details: fc.RunDetails<[unknown]>;
  try {
    details = fc.check(property, { numRuns: options.numRuns, seed: options.seed, endOnFailure: false });
  } finally {
    target.dispose?.();
  }
  if (!details.failed) return { failure: undefined, runs: details.numRuns };
  const error = details.errorInstance;
  const reason = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return { failure: `${fc.defaultReportMessage(details)}\n${reason}`, runs: details.numRuns };
}
