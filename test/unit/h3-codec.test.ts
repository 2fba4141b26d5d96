/** The pure HTTP/3 codecs: varints, Huffman, QPACK, frames, and the incremental stream decoders. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MuxpoolError } from '../../src/errors.js';
import {
  type ControlEvent,
  ControlStreamDecoder,
  FRAME_CANCEL_PUSH,
  FRAME_DATA,
  FRAME_GOAWAY,
  FRAME_HEADERS,
  FRAME_MAX_PUSH_ID,
  FRAME_PUSH_PROMISE,
  FRAME_SETTINGS,
  H3_CLOSED_CRITICAL_STREAM,
  H3_EXCESSIVE_LOAD,
  H3_FRAME_ERROR,
  H3_FRAME_UNEXPECTED,
  H3_ID_ERROR,
  H3_MESSAGE_ERROR,
  H3_MISSING_SETTINGS,
  H3_SETTINGS_ERROR,
  QPACK_DECODER_STREAM_ERROR,
  QPACK_DECOMPRESSION_FAILED,
  QPACK_ENCODER_STREAM_ERROR,
  QPACK_STATIC_TABLE,
  QpackDecoderStreamDecoder,
  QpackEncoderStreamDecoder,
  RequestStreamDecoder,
  type RequestStreamEvent,
  SETTINGS_MAX_FIELD_SECTION_SIZE,
  SETTINGS_QPACK_BLOCKED_STREAMS,
  SETTINGS_QPACK_MAX_TABLE_CAPACITY,
  STREAM_TYPE_CONTROL,
  UniStreamTypeReader,
  decodeFieldSection,
  describeH3Error,
  encodeDataFrameHeader,
  encodeFieldSection,
  encodeFrame,
  encodeFrameHeader,
  encodeGoawayFrame,
  encodeHeadersFrame,
  encodeSettingsFrame,
  encodeStreamType,
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
  isReservedType,
  parseGoaway,
  parseSettings,
  readStreamType,
  readVarint,
  staticIndexOf,
  staticNameIndexOf,
  varintLength,
  writeVarint,
} from '../../src/protocol/h3/index.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from '../../src/protocol/h3/huffman.js';
import { readVarintAt } from '../../src/protocol/h3/varint.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const latin1 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

/** Runs `fn` and checks it throws a MuxpoolError with this code and wire code (undefined: none). */
function throwsCode(fn: () => unknown, code: string, wireCode: number | undefined, label = ''): MuxpoolError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MuxpoolError, `${label}: expected a MuxpoolError, got ${String(err)}`);
    assert.equal(err.code, code, `${label}: ${err.message}`);
    assert.equal(err.wireCode, wireCode, `${label}: wire code of "${err.message}"`);
    return err;
  }
  assert.fail(`${label}: expected ${code}, nothing was thrown`);
}

const h3 = (fn: () => unknown, wireCode: number, label = ''): MuxpoolError => {
  const err = throwsCode(fn, 'MUXPOOL_ERR_H3_PROTOCOL', wireCode, label);
  assert.equal(err.origin, 'remote', label);
  return err;
};
const qpack = (fn: () => unknown, label = '', wireCode = QPACK_DECOMPRESSION_FAILED): MuxpoolError => {
  const err = throwsCode(fn, 'MUXPOOL_ERR_QPACK', wireCode, label);
  assert.equal(err.origin, 'remote', label);
  return err;
};

// ---------------------------------------------------------------------------------------------
// Varints
// ---------------------------------------------------------------------------------------------

test('varints round-trip at every length boundary, in the shortest form', () => {
  const cases: Array<[number, number]> = [
    [0, 1],
    [63, 1],
    [64, 2],
    [16383, 2],
    [16384, 4],
    [2 ** 30 - 1, 4],
    [2 ** 30, 8],
    [2 ** 32 + 5, 8],
    [Number.MAX_SAFE_INTEGER, 8],
  ];
  for (const [value, length] of cases) {
    assert.equal(varintLength(value), length, `length of ${value}`);
    const buf = new Uint8Array(length + 2).fill(0xee);
    assert.equal(writeVarint(buf, 1, value), 1 + length, `end offset of ${value}`);
    assert.equal(buf[0], 0xee, 'writes nothing before the offset');
    assert.equal(buf[length + 1], 0xee, 'writes nothing past the varint');
    assert.equal((buf[1] as number) >> 6, Math.log2(length), `length bits of ${value}`);
    assert.deepEqual(readVarint(buf, 1), { value, length }, `read ${value}`);
    for (let cut = 1; cut < length + 1; cut++) assert.equal(readVarint(buf.subarray(0, cut), 1), undefined, `${value} cut at ${cut}`);
  }
  assert.equal(readVarint(new Uint8Array(0), 0), undefined);
});

test('varints: RFC 9000 Appendix A.1 examples, non-minimal forms, and values past 2^53', () => {
  assert.deepEqual(readVarint(fromHex('9d7f3e7d'), 0), { value: 494878333, length: 4 });
  assert.deepEqual(readVarint(fromHex('7bbd'), 0), { value: 15293, length: 2 });
  assert.deepEqual(readVarint(fromHex('25'), 0), { value: 37, length: 1 });
  assert.deepEqual(readVarint(fromHex('4025'), 0), { value: 37, length: 2 }, 'RFC 9000 §16 allows non-minimal encodings');
  const big = fromHex('c2197c5eff14e88c'); // 151288809941952652 > 2^53
  h3(() => readVarint(big, 0), H3_FRAME_ERROR, 'readVarint refuses values it cannot represent');
  assert.equal(readVarintAt(big, 0, 8), Number(151288809941952652n), 'readVarintAt rounds instead');
  assert.equal(readVarintAt(fromHex('ffffffffffffffff'), 0, 8), 2 ** 62);
  assert.equal(hex(encodeStreamType(Number.MAX_SAFE_INTEGER)), 'c01fffffffffffff');
  throwsCode(() => writeVarint(new Uint8Array(8), 0, -1), 'MUXPOOL_ERR_INTERNAL', undefined, 'negative');
  throwsCode(() => writeVarint(new Uint8Array(8), 0, 1.5), 'MUXPOOL_ERR_INTERNAL', undefined, 'fraction');
  throwsCode(() => writeVarint(new Uint8Array(8), 0, 2 ** 53), 'MUXPOOL_ERR_INTERNAL', undefined, 'past 2^53 - 1');
});

// ---------------------------------------------------------------------------------------------
// Huffman
// ---------------------------------------------------------------------------------------------

/** RFC 7541 Appendix C.4 and C.6 strings and their Huffman encodings. */
const HUFFMAN_VECTORS: Array<[string, string]> = [
  ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
  ['no-cache', 'a8eb 1064 9cbf'],
  ['custom-key', '25a8 49e9 5ba9 7d7f'],
  ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
  ['302', '6402'],
  ['307', '640e ff'],
  ['private', 'aec3 771a 4b'],
  ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
  ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
  ['gzip', '9bd9 ab'],
  ['foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1', '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07'],
];

test('Huffman: the RFC 7541 Appendix C vectors encode and decode', () => {
  for (const [text, encoded] of HUFFMAN_VECTORS) {
    assert.equal(hex(huffmanEncode(text)), encoded.replace(/ /g, ''), `encode ${text}`);
    assert.equal(hex(huffmanEncode(latin1(text))), encoded.replace(/ /g, ''), `encode bytes of ${text}`);
    assert.equal(huffmanEncodedLength(latin1(text)), fromHex(encoded).length, `length of ${text}`);
    assert.equal(Buffer.from(huffmanDecode(fromHex(encoded))).toString('latin1'), text, `decode ${text}`);
  }
  assert.equal(huffmanDecode(new Uint8Array(0)).length, 0, 'the empty string');
});

test('Huffman: the typed-in table is the canonical, complete code of RFC 7541 Appendix B', () => {
  // Kraft equality: a complete prefix code (every bit string decodes) sums to exactly 1.
  let kraft = 0;
  for (let sym = 0; sym <= 256; sym++) kraft += 2 ** -(HUFFMAN_LENGTHS[sym] as number);
  assert.equal(kraft, 1);
  // Appendix B is canonical: sorted by (length, symbol), each code is the previous one plus one,
  // shifted to the new length. A mistyped code or length breaks the chain.
  const order = Array.from({ length: 257 }, (_, sym) => sym).sort((a, b) => (HUFFMAN_LENGTHS[a] as number) - (HUFFMAN_LENGTHS[b] as number) || a - b);
  let code = 0;
  let length = HUFFMAN_LENGTHS[order[0] as number] as number;
  for (const [i, sym] of order.entries()) {
    const symLength = HUFFMAN_LENGTHS[sym] as number;
    if (i > 0) code = (code + 1) * 2 ** (symLength - length);
    length = symLength;
    assert.equal(HUFFMAN_CODES[sym], code, `code of symbol ${sym}`);
  }
  assert.equal(HUFFMAN_CODES[256], 0x3fffffff, 'EOS is thirty ones');
  assert.equal(HUFFMAN_LENGTHS[48], 5, "'0' has one of the shortest codes");
});

test('Huffman: every byte value round-trips, alone and together', () => {
  const all = new Uint8Array(256).map((_, i) => i);
  assert.deepEqual(huffmanDecode(huffmanEncode(all)), all);
  const reversed = all.slice().reverse();
  assert.deepEqual(huffmanDecode(huffmanEncode(reversed)), reversed);
  for (let b = 0; b < 256; b++) {
    for (const input of [Uint8Array.of(b), Uint8Array.of(b, b, b)]) {
      const encoded = huffmanEncode(input);
      assert.equal(encoded.length, huffmanEncodedLength(input), `length for ${b}`);
      assert.deepEqual(huffmanDecode(encoded), input, `byte ${b} x${input.length}`);
    }
  }
  throwsCode(() => huffmanEncode('\u0100'), 'MUXPOOL_ERR_INVALID_HEADER', undefined, 'a character above latin1');
});

test('Huffman: EOS, long padding and padding that is not all ones are decoding errors', () => {
  qpack(() => huffmanDecode(fromHex('ffffffff')), 'EOS (30 ones) in the string');
  qpack(() => huffmanDecode(fromHex('ffff fffc 1f')), "EOS, then '0' and valid padding");
  qpack(() => huffmanDecode(fromHex('07ff ffff ff')), "'0', then EOS, then valid padding");
  qpack(() => huffmanDecode(fromHex('07ff')), "'0' then 11 bits of padding");
  qpack(() => huffmanDecode(fromHex('ff')), 'a whole byte of padding');
  qpack(() => huffmanDecode(fromHex('00')), "'0' padded with zeros");
  qpack(() => huffmanDecode(fromHex('18')), "'a' padded with zeros");
  qpack(() => huffmanDecode(fromHex('f1e3c2e5f23a6ba0ab90f4fe')), 'www.example.com with its last padding bit cleared');
  assert.deepEqual(huffmanDecode(fromHex('07')), latin1('0'), 'the same symbol with proper padding');
});

// ---------------------------------------------------------------------------------------------
// QPACK
// ---------------------------------------------------------------------------------------------

const LIMITS = { maxFieldSectionSize: 64 * 1024 };

test('QPACK static table: 99 entries at the RFC 9204 Appendix A indexes', () => {
  assert.equal(QPACK_STATIC_TABLE.length, 99);
  const spots: Array<[number, string, string]> = [
    [0, ':authority', ''],
    [1, ':path', '/'],
    [15, ':method', 'CONNECT'],
    [17, ':method', 'GET'],
    [23, ':scheme', 'https'],
    [25, ':status', '200'],
    [31, 'accept-encoding', 'gzip, deflate, br'],
    [46, 'content-type', 'application/json'],
    [52, 'content-type', 'text/html; charset=utf-8'],
    [63, ':status', '100'],
    [71, ':status', '500'],
    [85, 'content-security-policy', "script-src 'none'; object-src 'none'; base-uri 'none'"],
    [95, 'user-agent', ''],
    [98, 'x-frame-options', 'sameorigin'],
  ];
  for (const [index, name, value] of spots) {
    assert.deepEqual(QPACK_STATIC_TABLE[index], [name, value], `entry ${index}`);
    assert.equal(staticIndexOf(name, value), index, `lookup of ${name}: ${value}`);
  }
  assert.equal(staticNameIndexOf(':status'), 24, 'the first :status entry');
  assert.equal(staticNameIndexOf('content-type'), 44);
  assert.equal(staticNameIndexOf('x-custom'), -1);
  assert.equal(staticIndexOf(':status', '201'), -1);
});

test('QPACK: a realistic response round-trips, using the static table where it can', () => {
  const long = 'v'.repeat(300);
  const fields: Array<[string, string]> = [
    [':status', '200'],
    ['content-type', 'text/html; charset=utf-8'],
    ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['x-long', long],
    ['x-empty', ''],
    ['etag', ''],
    ['set-cookie', 'a=1; Path=/; HttpOnly'],
    ['set-cookie', 'b=2'],
    ['x-binary', '\u00ff\u00fe\u0080\u0001'],
  ];
  const block = encodeFieldSection(fields);
  assert.deepEqual(decodeFieldSection(block, LIMITS), fields);
  assert.equal(hex(block.subarray(0, 4)), '0000d9f4', 'prefix 0/0, then indexed static 25 and 52');
  // date: literal with static name ref 6 (0101 0110), Huffman value (C.6.1 vector).
  assert.equal(hex(block.subarray(4, 6)), '5696');
  assert.equal(hex(block.subarray(6, 6 + 22)), 'd07abe941054d444a8200595040b8166e082a62d1bff');
  // Bytes that Huffman would lengthen are sent raw (H bit clear, 4-byte length).
  assert.ok(Buffer.from(block).includes(Buffer.from('04fffe8001', 'hex')), 'raw latin1 value with H = 0');
  assert.ok(!Buffer.from(block).includes('vvvvvvvv'), 'the long value is Huffman-coded');
});

test('QPACK: a realistic request round-trips', () => {
  const fields: Array<[string, string]> = [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':authority', 'www.example.com'],
    [':path', '/index.html?q=1'],
    ['accept', '*/*'],
    ['user-agent', 'muxpool/0.1.0'],
    ['x-request-id', '0123456789abcdef'],
  ];
  const block = encodeFieldSection(fields);
  assert.equal(hex(block.subarray(0, 4)), '0000d1d7', ':method GET is 17, :scheme https 23');
  assert.equal(hex(block.subarray(4, 18)), '508cf1e3c2e5f23a6ba0ab90f4ff', ':authority by name ref 0, Huffman value');
  assert.deepEqual(decodeFieldSection(block, LIMITS), fields);
  assert.deepEqual(decodeFieldSection(encodeFieldSection([]), LIMITS), []);
  throwsCode(() => encodeFieldSection([['X-Upper', '1']]), 'MUXPOOL_ERR_INTERNAL', undefined, 'uppercase names are a caller bug');
  throwsCode(() => encodeFieldSection([['x', '\u2028']]), 'MUXPOOL_ERR_INVALID_HEADER', undefined, 'non-latin1 value');
});

test('QPACK: a hand-built block with every static and literal representation decodes', () => {
  const block = fromHex(
    [
      '0000', // Required Insert Count 0, Base 0
      'd1', // indexed static 17 :method GET
      'ff23', // indexed static 63 + 35 = 98, a multi-byte index
      '51 0b 2f696e6465782e68746d6c', // name ref static 1 :path, raw "/index.html"
      '50 8c f1e3c2e5f23a6ba0ab90f4ff', // name ref static 0 :authority, Huffman "www.example.com"
      '75 03 613d62', // name ref static 5 cookie with N = 1, raw "a=b"
      '23 782d61 01 62', // literal name "x-a", raw value "b"
      '2f01 25a849e95ba97d7f 89 25a849e95bb8e8b4bf', // Huffman name (length 7 + 1), Huffman value
      '30 00', // literal name, N = 1, empty name and empty value
    ].join(''),
  );
  assert.deepEqual(decodeFieldSection(block, LIMITS), [
    [':method', 'GET'],
    ['x-frame-options', 'sameorigin'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['cookie', 'a=b'],
    ['x-a', 'b'],
    ['custom-key', 'custom-value'],
    ['', ''],
  ]);
  // RFC 9204 Appendix B.1: a literal with a static name reference, value not Huffman-coded.
  assert.deepEqual(decodeFieldSection(fromHex('0000 510b 2f69 6e64 6578 2e68 746d 6c'), LIMITS), [[':path', '/index.html']]);
  assert.deepEqual(decodeFieldSection(fromHex('0005'), LIMITS), [], 'a positive Delta Base with no references is harmless');
  assert.deepEqual(decodeFieldSection(fromHex('0000 5f 808000 00'), LIMITS), [[':method', '']], 'a padded but short prefix integer');
});

test('QPACK: dynamic-table references, bad indexes, truncation and bad integers are QPACK_DECOMPRESSION_FAILED', () => {
  const bad: Array<[string, string]> = [
    ['0100', 'Required Insert Count 1'],
    ['0080', 'Sign bit 1 with Required Insert Count 0'],
    ['000080', 'indexed dynamic entry 0'],
    ['000040 00', 'name ref into the dynamic table'],
    ['000010', 'indexed post-base'],
    ['000000 00', 'name ref post-base'],
    ['0000 ff24', 'static index 99'],
    ['0000 5f54 00', 'static name ref index 99'],
    ['', 'empty block'],
    ['00', 'block without Delta Base'],
    ['0000 ff', 'index cut inside its continuation'],
    ['0000 51 0b 2f69', 'value shorter than its length'],
    ['0000 23 782d', 'name shorter than its length'],
    ['0000 23 782d61', 'value missing'],
    ['0000 5f ffffffffff7f', 'prefix integer with six continuation bytes'],
    ['0000 5f 808080808000 00', 'small prefix integer padded to six continuation bytes'],
    ['0000 5f ffffffff7f', 'prefix integer near 2^35'],
    ['0000 51 81 ff', 'Huffman value that is all padding'],
    ['0000 51 84 ffffffff', 'Huffman value containing EOS'],
  ];
  for (const [block, label] of bad) qpack(() => decodeFieldSection(fromHex(block), LIMITS), label);
  // Every cut inside a field line is truncation (a cut at the prefix end is an empty section).
  const whole = encodeFieldSection([['x-custom', 'some value here']]);
  for (let cut = 0; cut < whole.length; cut++) {
    if (cut === 2) assert.deepEqual(decodeFieldSection(whole.subarray(0, cut), LIMITS), []);
    else qpack(() => decodeFieldSection(whole.subarray(0, cut), LIMITS), `cut at ${cut}`);
  }
});

test('QPACK: an uppercase field name makes the message malformed (H3_MESSAGE_ERROR)', () => {
  h3(() => decodeFieldSection(fromHex('0000 23 582d61 01 62'), LIMITS), H3_MESSAGE_ERROR, 'raw "X-a"');
  h3(() => decodeFieldSection(concat(fromHex('0000 2b'), huffmanEncode('X-a'), fromHex('00')), LIMITS), H3_MESSAGE_ERROR, 'Huffman "X-a"');
});

test('QPACK: the RFC 9114 §4.2.2 size limit stops decoding with HEADERS_TOO_LARGE', () => {
  const fields: Array<[string, string]> = [
    [':status', '200'],
    ['x-a', 'bcd'],
    ['server', 'muxpool'],
    ['x-h', 'hello world hello world'],
  ];
  const size = fields.reduce((sum, [name, value]) => sum + name.length + value.length + 32, 0);
  const block = encodeFieldSection(fields);
  assert.deepEqual(decodeFieldSection(block, { maxFieldSectionSize: size }), fields, 'exactly at the limit');
  const err = throwsCode(() => decodeFieldSection(block, { maxFieldSectionSize: size - 1 }), 'MUXPOOL_ERR_HEADERS_TOO_LARGE', undefined, 'one byte over');
  assert.equal(err.origin, 'remote');
  // Past the limit, the rest of the block is never read: its dynamic reference goes unnoticed.
  const early = concat(encodeFieldSection([['x-big', 'z'.repeat(100)]]), fromHex('80'));
  throwsCode(() => decodeFieldSection(early, { maxFieldSectionSize: 100 }), 'MUXPOOL_ERR_HEADERS_TOO_LARGE', undefined, 'early stop');
  qpack(() => decodeFieldSection(early, LIMITS), 'the same block under a larger limit');
  throwsCode(() => decodeFieldSection(fromHex('0000 d1 d1 d1'), { maxFieldSectionSize: 2 * 42 }), 'MUXPOOL_ERR_HEADERS_TOO_LARGE', undefined, 'indexed lines count too');
  // Raw (not Huffman-coded) strings: RFC 9204 B.1's ":path /index.html" weighs 5 + 11 + 32.
  const rawValue = fromHex('0000 510b 2f69 6e64 6578 2e68 746d 6c');
  assert.equal(decodeFieldSection(rawValue, { maxFieldSectionSize: 48 }).length, 1);
  throwsCode(() => decodeFieldSection(rawValue, { maxFieldSectionSize: 47 }), 'MUXPOOL_ERR_HEADERS_TOO_LARGE', undefined, 'raw value');
  const rawName = fromHex('0000 23 782d61 00'); // "x-a" with an empty value: 3 + 32
  assert.equal(decodeFieldSection(rawName, { maxFieldSectionSize: 35 }).length, 1);
  throwsCode(() => decodeFieldSection(rawName, { maxFieldSectionSize: 34 }), 'MUXPOOL_ERR_HEADERS_TOO_LARGE', undefined, 'raw name');
});

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

test('frame encoders write Type, Length and payload as RFC 9114 §7.1 lays them out', () => {
  assert.equal(hex(encodeFrameHeader(0x21, 300)), '21412c');
  assert.equal(hex(encodeDataFrameHeader(5)), '0005');
  assert.equal(hex(encodeDataFrameHeader(70000)), '0080011170');
  assert.equal(hex(encodeHeadersFrame(fromHex('0000d9'))), '01030000d9');
  assert.equal(hex(encodeGoawayFrame(0)), '070100');
  assert.equal(hex(encodeGoawayFrame(2 ** 30)), '0708c000000040000000');
  assert.equal(hex(encodeStreamType(STREAM_TYPE_CONTROL)), '00');
  const settings = new Map([
    [SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0],
    [SETTINGS_MAX_FIELD_SECTION_SIZE, 65536],
    [SETTINGS_QPACK_BLOCKED_STREAMS, 0],
  ]);
  assert.equal(hex(encodeSettingsFrame(settings)), '0409' + '0100' + '0680010000' + '0700');
  assert.deepEqual(parseSettings(encodeSettingsFrame(settings).subarray(2)), settings);
  throwsCode(() => encodeSettingsFrame(new Map([[0x03, 100]])), 'MUXPOOL_ERR_INTERNAL', undefined, 'HTTP/2 setting');
});

test('SETTINGS and GOAWAY payloads: unknown ids kept, duplicates and HTTP/2 ids refused, exact lengths', () => {
  assert.deepEqual(
    parseSettings(fromHex('0100 21 05 4040 01 06 44 00 33 01')),
    new Map([
      [1, 0],
      [0x21, 5],
      [0x40, 1],
      [6, 0x400],
      [0x33, 1],
    ]),
  );
  // A reserved id past 2^53 (quiche sends these) is skipped; a huge value is clamped.
  assert.deepEqual(parseSettings(fromHex('ffffffffffffffff 01 06 ffffffffffffffff')), new Map([[6, Number.MAX_SAFE_INTEGER]]));
  h3(() => parseSettings(fromHex('0100 0101')), H3_SETTINGS_ERROR, 'duplicate id');
  for (const id of [2, 3, 4, 5]) h3(() => parseSettings(Uint8Array.of(id, 0)), H3_SETTINGS_ERROR, `HTTP/2 id ${id}`);
  h3(() => parseSettings(fromHex('01')), H3_FRAME_ERROR, 'id without value');
  h3(() => parseSettings(fromHex('06 40')), H3_FRAME_ERROR, 'value cut short');
  assert.deepEqual(parseSettings(new Uint8Array(0)), new Map(), 'an empty SETTINGS is valid');

  assert.equal(parseGoaway(fromHex('10')), 16);
  assert.equal(parseGoaway(fromHex('fffffffffffffffc')), 2 ** 62, '2^62 - 4, the graceful-shutdown value, rounded');
  h3(() => parseGoaway(new Uint8Array(0)), H3_FRAME_ERROR, 'empty');
  h3(() => parseGoaway(fromHex('1000')), H3_FRAME_ERROR, 'a byte after the varint');
  h3(() => parseGoaway(fromHex('4010 00')), H3_FRAME_ERROR, 'a byte after a 2-byte varint');
  h3(() => parseGoaway(fromHex('40')), H3_FRAME_ERROR, 'varint cut short');
});

test('reserved types and error descriptions', () => {
  for (const value of [0x21, 0x40, 0x5f, 0x1f * 1000 + 0x21]) assert.ok(isReservedType(value), `0x${value.toString(16)}`);
  for (const value of [0x00, 0x20, 0x22, 0x41, 0x1f * 1000 + 0x22]) assert.ok(!isReservedType(value), `0x${value.toString(16)}`);
  for (let code = 0x100; code <= 0x110; code++) assert.match(describeH3Error(code), new RegExp(`^H3_[A-Z_]+ \\(0x${code.toString(16)}\\): .+`));
  for (let code = 0x200; code <= 0x202; code++) assert.match(describeH3Error(code), /^QPACK_[A-Z_]+ \(0x20[0-2]\): .+/);
  assert.match(describeH3Error(H3_FRAME_UNEXPECTED), /^H3_FRAME_UNEXPECTED \(0x105\)/);
  assert.equal(describeH3Error(0x21), 'reserved error code (0x21)');
  assert.equal(describeH3Error(0x111), 'unknown error code (0x111)');
});

// ---------------------------------------------------------------------------------------------
// Stream decoders
// ---------------------------------------------------------------------------------------------

type Pushable<E> = { push(chunk: Uint8Array, out: E[]): void; finish(): void };

/** Normalised events: consecutive data merged into one latin1 string, so splits compare equal. */
type Seen = Array<['headers', Array<[string, string]>] | ['data', string] | ControlEvent>;

function normalise(events: Array<RequestStreamEvent | ControlEvent>): Seen {
  const seen: Seen = [];
  for (const event of events) {
    if (event.kind === 'data') {
      const last = seen[seen.length - 1];
      const text = Buffer.from(event.bytes).toString('latin1');
      if (Array.isArray(last) && last[0] === 'data') last[1] += text;
      else seen.push(['data', text]);
    } else if (event.kind === 'headers') {
      seen.push(['headers', event.fields]);
    } else {
      seen.push(event);
    }
  }
  return seen;
}

/**
 * Feeds `wire` to a fresh decoder whole, byte by byte, and cut once at every position; checks
 * all agree and returns the events, or the error (the same whatever the split).
 */
function decodeAllWays<E extends RequestStreamEvent | ControlEvent>(
  make: () => Pushable<E>,
  wire: Uint8Array,
  finish = true,
): { events: Seen; error: MuxpoolError | undefined } {
  const run = (cuts: number[]): { events: Seen; error: MuxpoolError | undefined } => {
    const decoder = make();
    const out: E[] = [];
    let from = 0;
    try {
      for (const cut of [...cuts, wire.length]) {
        if (cut > from) decoder.push(wire.subarray(from, cut), out);
        from = Math.max(from, cut);
      }
      if (finish) decoder.finish();
    } catch (err) {
      assert.ok(err instanceof MuxpoolError, String(err));
      return { events: normalise(out), error: err };
    }
    return { events: normalise(out), error: undefined };
  };
  const whole = run([]);
  const splits: number[][] = [Array.from({ length: wire.length }, (_, i) => i)];
  for (let cut = 1; cut < wire.length; cut++) splits.push([cut]);
  for (const cuts of splits) {
    const other = run(cuts);
    const label = cuts.length === 1 ? `cut at ${cuts[0]}` : 'byte by byte';
    assert.equal(other.error?.code, whole.error?.code, label);
    assert.equal(other.error?.wireCode, whole.error?.wireCode, label);
    if (whole.error === undefined) assert.deepEqual(other.events, whole.events, label);
  }
  return whole;
}

const requestDecoder = (role: 'client' | 'server' = 'client') => () => new RequestStreamDecoder(LIMITS, role);
const headersFrame = (fields: Array<[string, string]>): Uint8Array => encodeHeadersFrame(encodeFieldSection(fields));
const dataFrame = (text: string): Uint8Array => encodeFrame(FRAME_DATA, latin1(text));
/**
 * A reserved type past 2^53, as quiche's greasing sends them: 0x1f * N + 0x21 with N near 2^57,
 * as an 8-byte varint (built with BigInt, since a number cannot hold it exactly).
 */
const GREASE_TYPE_BYTES = (() => {
  const type = 0x1fn * (2n ** 57n + 12345n) + 0x21n;
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, type | (3n << 62n));
  return bytes;
})();

test('request stream: headers, data, unknown frames and trailers decode the same however the bytes are split', () => {
  const response: Array<[string, string]> = [
    [':status', '200'],
    ['content-type', 'text/plain'],
  ];
  const wire = concat(
    headersFrame([[':status', '103'], ['link', '</a.css>; rel=preload']]),
    encodeFrame(0x21, latin1('reserved frame payload')),
    headersFrame(response),
    dataFrame('hello, '),
    encodeFrame(0x2f, new Uint8Array(0)),
    concat(GREASE_TYPE_BYTES, fromHex('4100'), new Uint8Array(256).fill(7)),
    encodeFrame(FRAME_DATA, new Uint8Array(0)),
    dataFrame('world'),
    concat(fromHex('4000'), dataFrame('!').subarray(1)), // DATA with a non-minimal type varint
    headersFrame([['x-checksum', 'abc']]),
    encodeFrame(0x1234, latin1('after the trailers, unknown frames are still fine')),
  );
  const { events, error } = decodeAllWays(requestDecoder(), wire);
  assert.equal(error, undefined, error?.message);
  assert.deepEqual(events, [
    ['headers', [[':status', '103'], ['link', '</a.css>; rel=preload']]],
    ['headers', response],
    ['data', 'hello, world!'],
    ['headers', [['x-checksum', 'abc']]],
  ]);
});

test('request stream: the state follows the frames; DATA is passed on as views of the input, unbuffered', () => {
  const decoder = new RequestStreamDecoder(LIMITS);
  const out: RequestStreamEvent[] = [];
  assert.equal(decoder.state, 'start');
  decoder.push(headersFrame([[':status', '200']]), out);
  assert.equal(decoder.state, 'headers');
  const chunk = concat(encodeDataFrameHeader(10), latin1('01234'));
  decoder.push(chunk, out);
  assert.equal(decoder.state, 'body');
  const data = out[1];
  assert.ok(data?.kind === 'data');
  assert.equal(Buffer.from(data.bytes).toString(), '01234', 'half a DATA payload is passed on at once');
  assert.equal(data.bytes.buffer, chunk.buffer, 'a view of the input chunk, not a copy');
  assert.equal(data.bytes.byteOffset, chunk.byteOffset + 2);
  decoder.push(latin1('56789'), out);
  decoder.push(headersFrame([['x-t', '1']]), out);
  assert.equal(decoder.state, 'trailers');
  decoder.finish();
  assert.deepEqual(normalise(out), [['headers', [[':status', '200']]], ['data', '0123456789'], ['headers', [['x-t', '1']]]]);
  throwsCode(() => decoder.push(new Uint8Array(1), []), 'MUXPOOL_ERR_INTERNAL', undefined, 'push after finish');
});

test('request stream: unknown frames are skipped without buffering, however long they claim to be', () => {
  const decoder = new RequestStreamDecoder(LIMITS);
  const out: RequestStreamEvent[] = [];
  // 2^40 bytes: buffering would throw a RangeError on allocation.
  decoder.push(concat(fromHex('21 c000010000000000'), new Uint8Array(4096)), out);
  decoder.push(new Uint8Array(4096), out);
  assert.deepEqual(out, []);
  h3(() => decoder.finish(), H3_FRAME_ERROR, 'the stream ended inside the unknown frame');
});

test('request stream: frame-order and frame-type errors carry their RFC 9114 wire codes', () => {
  const headers = headersFrame([[':status', '200']]);
  const trailers = headersFrame([['x-t', '1']]);
  const cases: Array<[string, Uint8Array, number, ('client' | 'server')?]> = [
    ['DATA before HEADERS', dataFrame('x'), H3_FRAME_UNEXPECTED],
    ['empty DATA before HEADERS', dataFrame(''), H3_FRAME_UNEXPECTED],
    ['SETTINGS', concat(headers, encodeSettingsFrame(new Map())), H3_FRAME_UNEXPECTED],
    ['GOAWAY', concat(headers, encodeGoawayFrame(0)), H3_FRAME_UNEXPECTED],
    ['MAX_PUSH_ID', concat(headers, encodeFrame(FRAME_MAX_PUSH_ID, fromHex('00'))), H3_FRAME_UNEXPECTED],
    ['CANCEL_PUSH', encodeFrame(FRAME_CANCEL_PUSH, fromHex('00')), H3_FRAME_UNEXPECTED],
    ['HTTP/2 PRIORITY', encodeFrame(0x02, fromHex('00')), H3_FRAME_UNEXPECTED],
    ['HTTP/2 PING', concat(headers, encodeFrame(0x06, new Uint8Array(8))), H3_FRAME_UNEXPECTED],
    ['HTTP/2 WINDOW_UPDATE', encodeFrame(0x08, new Uint8Array(4)), H3_FRAME_UNEXPECTED],
    ['HTTP/2 CONTINUATION', concat(headers, encodeFrame(0x09, new Uint8Array(1))), H3_FRAME_UNEXPECTED],
    ['PUSH_PROMISE to a client that never sent MAX_PUSH_ID', concat(headers, encodeFrame(FRAME_PUSH_PROMISE, fromHex('000000d9'))), H3_ID_ERROR],
    ['PUSH_PROMISE to a server', encodeFrame(FRAME_PUSH_PROMISE, fromHex('000000d9')), H3_FRAME_UNEXPECTED, 'server'],
    ['DATA after trailers', concat(headers, dataFrame('a'), trailers, dataFrame('b')), H3_FRAME_UNEXPECTED],
    ['HEADERS after trailers', concat(headers, dataFrame('a'), trailers, trailers), H3_FRAME_UNEXPECTED],
    ['a frame header cut by FIN', concat(headers, fromHex('0040')), H3_FRAME_ERROR],
    ['a DATA payload cut by FIN', concat(headers, encodeDataFrameHeader(3), latin1('ab')), H3_FRAME_ERROR],
    ['a HEADERS payload cut by FIN', headers.subarray(0, headers.length - 1), H3_FRAME_ERROR],
    ['uppercase field name', concat(encodeHeadersFrame(fromHex('0000 23 582d61 01 62'))), H3_MESSAGE_ERROR],
  ];
  for (const [label, wire, wireCode, role] of cases) {
    const { error } = decodeAllWays(requestDecoder(role), wire);
    assert.ok(error, `${label}: no error`);
    assert.equal(error.code, 'MUXPOOL_ERR_H3_PROTOCOL', `${label}: ${error.message}`);
    assert.equal(error.wireCode, wireCode, `${label}: ${error.message}`);
    assert.equal(error.origin, 'remote', label);
  }
  const { error: qpackErr } = decodeAllWays(requestDecoder(), encodeHeadersFrame(fromHex('000080')));
  assert.equal(qpackErr?.code, 'MUXPOOL_ERR_QPACK');
  assert.equal(qpackErr?.wireCode, QPACK_DECOMPRESSION_FAILED);
  const { error: emptyHeaders } = decodeAllWays(requestDecoder(), encodeFrame(FRAME_HEADERS, new Uint8Array(0)));
  assert.equal(emptyHeaders?.code, 'MUXPOOL_ERR_QPACK', 'an empty HEADERS payload has no field section prefix');
});

test('request stream: a HEADERS frame longer than the limit is refused at its header, before buffering', () => {
  const decoder = new RequestStreamDecoder({ maxFieldSectionSize: 1000 });
  const err = throwsCode(() => decoder.push(encodeFrameHeader(FRAME_HEADERS, 1001), []), 'MUXPOOL_ERR_HEADERS_TOO_LARGE', undefined, 'declared length');
  assert.equal(err.origin, 'remote');
  throwsCode(() => decoder.push(new Uint8Array(1), []), 'MUXPOOL_ERR_INTERNAL', undefined, 'push after an error');
  const fresh = () => new RequestStreamDecoder({ maxFieldSectionSize: 60 });
  const { error } = decodeAllWays(fresh, headersFrame([['x-a', 'b'.repeat(40)]]), false);
  assert.equal(error?.code, 'MUXPOOL_ERR_HEADERS_TOO_LARGE', 'decoded size over the limit, encoded size under it');
  assert.equal(decodeAllWays(fresh, headersFrame([['x-a', 'b'.repeat(20)]])).error, undefined, 'under the limit');
});

test('control stream: SETTINGS first, then GOAWAY and unknown frames, split anywhere', () => {
  const settings = new Map([
    [SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0],
    [SETTINGS_MAX_FIELD_SECTION_SIZE, 16384],
    [0x21, 7],
  ]);
  const wire = concat(
    encodeSettingsFrame(settings),
    encodeFrame(0x21, latin1('grease')),
    concat(GREASE_TYPE_BYTES, fromHex('03 616263')),
    encodeFrame(FRAME_GOAWAY, fromHex('fffffffffffffffc')),
    encodeGoawayFrame(8),
    encodeGoawayFrame(8),
    encodeGoawayFrame(4),
  );
  const { events, error } = decodeAllWays(() => new ControlStreamDecoder(), wire, false);
  assert.equal(error, undefined, error?.message);
  assert.deepEqual(events, [
    { kind: 'settings', settings },
    { kind: 'goaway', id: 2 ** 62 },
    { kind: 'goaway', id: 8 },
    { kind: 'goaway', id: 8 },
    { kind: 'goaway', id: 4 },
  ]);
  const decoder = new ControlStreamDecoder();
  decoder.push(wire, []);
  assert.equal(decoder.goawayId, 4);
  h3(() => decoder.finish(), H3_CLOSED_CRITICAL_STREAM, 'closing the control stream');
});

test('control stream: errors carry their RFC 9114 wire codes', () => {
  const settings = encodeSettingsFrame(new Map([[SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0]]));
  const cases: Array<[string, Uint8Array, number, ('client' | 'server')?]> = [
    ['GOAWAY first', encodeGoawayFrame(0), H3_MISSING_SETTINGS],
    ['a reserved frame first', encodeFrame(0x21, new Uint8Array(0)), H3_MISSING_SETTINGS],
    ['DATA first', dataFrame('x'), H3_MISSING_SETTINGS],
    ['a second SETTINGS', concat(settings, settings), H3_FRAME_UNEXPECTED],
    ['DATA', concat(settings, dataFrame('x')), H3_FRAME_UNEXPECTED],
    ['HEADERS', concat(settings, headersFrame([[':status', '200']])), H3_FRAME_UNEXPECTED],
    ['PUSH_PROMISE', concat(settings, encodeFrame(FRAME_PUSH_PROMISE, fromHex('000000'))), H3_FRAME_UNEXPECTED],
    ['HTTP/2 PING', concat(settings, encodeFrame(0x06, new Uint8Array(8))), H3_FRAME_UNEXPECTED],
    ['MAX_PUSH_ID to a client', concat(settings, encodeFrame(FRAME_MAX_PUSH_ID, fromHex('05'))), H3_FRAME_UNEXPECTED],
    ['CANCEL_PUSH to a client that allowed no push', concat(settings, encodeFrame(FRAME_CANCEL_PUSH, fromHex('00'))), H3_ID_ERROR],
    ['GOAWAY rising', concat(settings, encodeGoawayFrame(4), encodeGoawayFrame(8)), H3_ID_ERROR],
    ['GOAWAY with a server-initiated stream ID', concat(settings, encodeGoawayFrame(1)), H3_ID_ERROR],
    ['GOAWAY with a unidirectional stream ID', concat(settings, encodeGoawayFrame(2)), H3_ID_ERROR],
    ['MAX_PUSH_ID falling', concat(settings, encodeFrame(FRAME_MAX_PUSH_ID, fromHex('05')), encodeFrame(FRAME_MAX_PUSH_ID, fromHex('04'))), H3_ID_ERROR, 'server'],
    ['GOAWAY with 9 bytes', concat(settings, encodeFrame(FRAME_GOAWAY, new Uint8Array(9))), H3_FRAME_ERROR],
    ['GOAWAY claiming 2^40 bytes (refused, not buffered)', concat(settings, encodeFrameHeader(FRAME_GOAWAY, 2 ** 40), new Uint8Array(1)), H3_FRAME_ERROR],
    ['GOAWAY with a byte after its varint', concat(settings, encodeFrame(FRAME_GOAWAY, fromHex('0400'))), H3_FRAME_ERROR],
    ['empty GOAWAY', concat(settings, encodeFrame(FRAME_GOAWAY, new Uint8Array(0))), H3_FRAME_ERROR],
    ['SETTINGS with a truncated pair', encodeFrame(FRAME_SETTINGS, fromHex('0640')), H3_FRAME_ERROR],
    ['SETTINGS with a duplicate', encodeFrame(FRAME_SETTINGS, fromHex('06010602')), H3_SETTINGS_ERROR],
    ['SETTINGS with an HTTP/2 id', encodeFrame(FRAME_SETTINGS, fromHex('0305')), H3_SETTINGS_ERROR],
    ['SETTINGS over 16 KiB', encodeFrame(FRAME_SETTINGS, new Uint8Array(16 * 1024 + 1)), H3_EXCESSIVE_LOAD],
    ['FIN inside a frame', concat(settings, encodeFrameHeader(FRAME_GOAWAY, 1)), H3_FRAME_ERROR],
    ['FIN on a frame boundary', settings, H3_CLOSED_CRITICAL_STREAM],
  ];
  for (const [label, wire, wireCode, role] of cases) {
    const { error } = decodeAllWays(() => new ControlStreamDecoder(role), wire);
    assert.ok(error, `${label}: no error`);
    assert.equal(error.code, 'MUXPOOL_ERR_H3_PROTOCOL', `${label}: ${error.message}`);
    assert.equal(error.wireCode, wireCode, `${label}: ${error.message}`);
  }
});

test('control stream on a server: MAX_PUSH_ID, CANCEL_PUSH and push-ID GOAWAYs are passed on', () => {
  const wire = concat(
    encodeSettingsFrame(new Map()),
    encodeFrame(FRAME_MAX_PUSH_ID, fromHex('05')),
    encodeFrame(FRAME_MAX_PUSH_ID, fromHex('05')),
    encodeFrame(FRAME_CANCEL_PUSH, fromHex('03')),
    encodeGoawayFrame(3),
  );
  const { events, error } = decodeAllWays(() => new ControlStreamDecoder('server'), wire, false);
  assert.equal(error, undefined, error?.message);
  assert.deepEqual(events, [
    { kind: 'settings', settings: new Map() },
    { kind: 'max_push_id', id: 5 },
    { kind: 'max_push_id', id: 5 },
    { kind: 'cancel_push', id: 3 },
    { kind: 'goaway', id: 3 },
  ]);
});

test('unidirectional stream types: read whole or across chunks, the rest handed back', () => {
  assert.deepEqual(readStreamType(fromHex('00 0400'), 0), { type: 0, length: 1 });
  assert.deepEqual(readStreamType(fromHex('4003'), 0), { type: 3, length: 2 });
  assert.equal(readStreamType(fromHex('40'), 0), undefined);
  assert.equal(readStreamType(new Uint8Array(0), 0), undefined);
  const grease = readStreamType(GREASE_TYPE_BYTES, 0);
  assert.ok(grease !== undefined && grease.type > Number.MAX_SAFE_INTEGER && grease.length === 8, 'a reserved type past 2^53');

  const whole = new UniStreamTypeReader().push(fromHex('02 aabb'));
  assert.equal(whole?.type, 2);
  assert.equal(hex(whole?.rest ?? new Uint8Array(1)), 'aabb');

  const wire = concat(fromHex('8000 0001'), fromHex('ccdd'));
  for (let cut = 0; cut < 4; cut++) {
    const reader = new UniStreamTypeReader();
    const first = reader.push(wire.subarray(0, cut));
    assert.equal(first, undefined, `cut at ${cut}`);
    const result = reader.push(wire.subarray(cut));
    assert.equal(result?.type, 1, `cut at ${cut}`);
    assert.equal(hex(result?.rest ?? new Uint8Array(1)), 'ccdd', `cut at ${cut}`);
  }
  const byteByByte = new UniStreamTypeReader();
  for (let i = 0; i < 7; i++) assert.equal(byteByByte.push(GREASE_TYPE_BYTES.subarray(i, i + 1)), undefined);
  assert.equal(byteByByte.push(GREASE_TYPE_BYTES.subarray(7))?.rest.length, 0);
  throwsCode(() => byteByByte.push(new Uint8Array(1)), 'MUXPOOL_ERR_INTERNAL', undefined, 'push after the type');
});

test('QPACK encoder and decoder streams: only what a zero-capacity table allows', () => {
  const encoderStream = new QpackEncoderStreamDecoder();
  encoderStream.push(fromHex('2020'));
  for (const [bytes, label] of [
    ['21', 'capacity 1'],
    ['3f00', 'capacity 31 (multi-byte)'],
    ['c0 01 61', 'insert with static name ref'],
    ['80 00', 'insert with dynamic name ref'],
    ['41 61 01 62', 'insert with literal name'],
    ['00', 'duplicate'],
  ] as const) {
    qpack(() => new QpackEncoderStreamDecoder().push(fromHex(bytes)), label, QPACK_ENCODER_STREAM_ERROR);
  }
  h3(() => encoderStream.finish(), H3_CLOSED_CRITICAL_STREAM, 'encoder stream closed');

  const cancellations = fromHex('44 7f ff ff 01 40 41');
  const decoderStream = new QpackDecoderStreamDecoder();
  decoderStream.push(cancellations);
  const split = new QpackDecoderStreamDecoder();
  for (let i = 0; i < cancellations.length; i++) split.push(cancellations.subarray(i, i + 1));
  qpack(() => split.push(fromHex('80')), 'after a split cancellation, the next byte is an instruction', QPACK_DECODER_STREAM_ERROR);
  qpack(() => new QpackDecoderStreamDecoder().push(fromHex('84')), 'section acknowledgment', QPACK_DECODER_STREAM_ERROR);
  qpack(() => new QpackDecoderStreamDecoder().push(fromHex('01')), 'insert count increment', QPACK_DECODER_STREAM_ERROR);
  qpack(() => new QpackDecoderStreamDecoder().push(fromHex('00')), 'insert count increment of 0', QPACK_DECODER_STREAM_ERROR);
  qpack(() => new QpackDecoderStreamDecoder().push(fromHex('7f ffffffffffffffffff 01')), 'a stream ID too long', QPACK_DECODER_STREAM_ERROR);
  h3(() => decoderStream.finish(), H3_CLOSED_CRITICAL_STREAM, 'decoder stream closed');
});
