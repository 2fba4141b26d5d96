/**
 * The pure HTTP/2 codecs: frames (every type, padding, limits, split input) and HPACK (RFC 7541
 * Appendix C, limits, and a cross-check both ways against Debian's python3-hpack).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { MuxpoolError } from '../../src/errors.js';
import {
  COMPRESSION_ERROR,
  ENHANCE_YOUR_CALM,
  FLOW_CONTROL_ERROR,
  FRAME_SIZE_ERROR,
  PROTOCOL_ERROR,
} from '../../src/protocol/h2/codes.js';
import {
  FLAG_END_HEADERS,
  FLAG_PADDED,
  FLAG_PRIORITY,
  FRAME_ALTSVC,
  FRAME_CONTINUATION,
  FRAME_DATA,
  FRAME_GOAWAY,
  FRAME_HEADERS,
  FRAME_PING,
  FRAME_PRIORITY,
  FRAME_RST_STREAM,
  FRAME_SETTINGS,
  FRAME_WINDOW_UPDATE,
  type Frame,
  FrameReader,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  SETTINGS_MAX_FRAME_SIZE,
  encodeAltSvc,
  encodeData,
  encodeFrame,
  encodeGoaway,
  encodeHeaders,
  encodePing,
  encodePriority,
  encodePushPromise,
  encodeRstStream,
  encodeSettings,
  encodeSettingsAck,
  encodeWindowUpdate,
} from '../../src/protocol/h2/frames.js';
import { HpackDecoder, HpackEncoder } from '../../src/protocol/h2/hpack.js';
import { type StreamEvent, type StreamState, streamTransition } from '../../src/protocol/h2/stream-state.js';
import { huffmanDecode } from '../../src/protocol/h3/huffman.js';
import { hpackCorpus } from './h2-corpus.js';
import { runH2Fuzz } from '../fuzz/h2.fuzz.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const LIMITS = { maxHeaderBytes: 65_536, maxHeaderCount: 1000 };

function readAll(bytes: Uint8Array, options = { maxFrameSize: 16_384, maxHeaderBlockBytes: 65_536 }): Frame[] {
  const reader = new FrameReader(options);
  reader.push(bytes);
  const out: Frame[] = [];
  for (let f = reader.next(); f !== undefined; f = reader.next()) out.push(f);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

const PREFACE = encodeSettings([[SETTINGS_MAX_CONCURRENT_STREAMS, 100]]);

function assertH2Error(fn: () => unknown, wireCode: number, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MuxpoolError, String(err));
    assert.equal(err.code, 'MUXPOOL_ERR_H2_PROTOCOL');
    assert.equal(err.wireCode, wireCode, err.message);
    assert.equal(err.origin, 'remote');
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  });
}

test('frames: every type round-trips through the reader, whole and split at every offset', () => {
  const block = new HpackEncoder().encode([':status', '200', 'content-type', 'text/plain']);
  const bytes = concat(
    PREFACE,
    encodeSettingsAck(),
    encodeData(1, hex('68656c6c6f'), false),
    encodeData(1, hex('21'), true, 10),
    encodeHeaders(3, block, true, 16_384),
    encodeHeaders(5, new Uint8Array(40_000).fill(0x82), false, 16_384), // HEADERS + 2 CONTINUATION
    encodePriority(3, 0, 16),
    encodeRstStream(3, 8),
    encodePing(hex('0102030405060708'), true),
    encodeGoaway(7, 0, hex('6279')),
    encodeWindowUpdate(0, 1000),
    encodeFrame(0x42, 0xff, 1, hex('deadbeef')), // unknown type: ignored
    encodeAltSvc(0, 'https://example.com', 'h3=":443"'),
    encodeFrame(FRAME_HEADERS, FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY, 9, concat(hex('03'), hex('0000000010'), block, hex('000000'))),
  );
  const expected = readAll(bytes);
  assert.deepEqual(
    expected.map((f) => f.type),
    [FRAME_SETTINGS, FRAME_SETTINGS, FRAME_DATA, FRAME_DATA, FRAME_HEADERS, FRAME_HEADERS, FRAME_PRIORITY, FRAME_RST_STREAM, FRAME_PING, FRAME_GOAWAY, FRAME_WINDOW_UPDATE, FRAME_ALTSVC, FRAME_HEADERS],
  );
  const padded = expected[3] as Extract<Frame, { type: 0 }>;
  assert.equal(toHex(padded.data), '21');
  assert.equal(padded.flowLength, 12, 'flow control counts the padding (RFC 9113 §6.9.1)');
  assert.equal(padded.endStream, true);
  assert.equal((expected[5] as Extract<Frame, { type: 1 }>).block.length, 40_000);
  assert.deepEqual(Array.from((expected[12] as Extract<Frame, { type: 1 }>).block), Array.from(block));
  assert.deepEqual(expected[11], { type: FRAME_ALTSVC, streamId: 0, origin: 'https://example.com', value: 'h3=":443"' });
  const summary = (frames: Frame[]): string => JSON.stringify(frames, (_k, v: unknown) => (v instanceof Uint8Array ? toHex(v) : v));
  for (let split = 1; split < bytes.length; split += split < 200 ? 1 : 97) {
    const reader = new FrameReader({ maxFrameSize: 16_384, maxHeaderBlockBytes: 65_536 });
    const out: Frame[] = [];
    reader.push(bytes.subarray(0, split));
    for (let f = reader.next(); f !== undefined; f = reader.next()) out.push(f);
    reader.push(bytes.subarray(split));
    for (let f = reader.next(); f !== undefined; f = reader.next()) out.push(f);
    assert.equal(summary(out), summary(expected), `split at ${split}`);
  }
});

test('frames: rules the layout decides are connection errors with the right wire code', () => {
  const cases: Array<[string, Uint8Array, number]> = [
    ['first frame not SETTINGS', encodePing(new Uint8Array(8), false), PROTOCOL_ERROR],
    ['DATA on stream 0', concat(PREFACE, encodeData(0, hex('00'), false)), PROTOCOL_ERROR],
    ['HEADERS on stream 0', concat(PREFACE, encodeFrame(FRAME_HEADERS, FLAG_END_HEADERS, 0, hex('82'))), PROTOCOL_ERROR],
    ['SETTINGS on a stream', concat(PREFACE, encodeFrame(FRAME_SETTINGS, 0, 1)), PROTOCOL_ERROR],
    ['SETTINGS length', concat(PREFACE, encodeFrame(FRAME_SETTINGS, 0, 0, hex('0001'))), FRAME_SIZE_ERROR],
    ['SETTINGS ACK with payload', concat(PREFACE, encodeFrame(FRAME_SETTINGS, 1, 0, hex('000100000000'))), FRAME_SIZE_ERROR],
    ['ENABLE_PUSH 1 from a server', concat(PREFACE, encodeSettings([[SETTINGS_ENABLE_PUSH, 1]])), PROTOCOL_ERROR],
    ['INITIAL_WINDOW_SIZE over 2^31-1', concat(PREFACE, encodeSettings([[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31]])), FLOW_CONTROL_ERROR],
    ['MAX_FRAME_SIZE too small', concat(PREFACE, encodeSettings([[SETTINGS_MAX_FRAME_SIZE, 100]])), PROTOCOL_ERROR],
    ['PING on a stream', concat(PREFACE, encodeFrame(FRAME_PING, 0, 1, new Uint8Array(8))), PROTOCOL_ERROR],
    ['PING length', concat(PREFACE, encodeFrame(FRAME_PING, 0, 0, new Uint8Array(7))), FRAME_SIZE_ERROR],
    ['GOAWAY on a stream', concat(PREFACE, encodeFrame(FRAME_GOAWAY, 0, 1, new Uint8Array(8))), PROTOCOL_ERROR],
    ['GOAWAY length', concat(PREFACE, encodeFrame(FRAME_GOAWAY, 0, 0, new Uint8Array(4))), FRAME_SIZE_ERROR],
    ['RST_STREAM on stream 0', concat(PREFACE, encodeRstStream(0, 0)), PROTOCOL_ERROR],
    ['RST_STREAM length', concat(PREFACE, encodeFrame(FRAME_RST_STREAM, 0, 1, new Uint8Array(3))), FRAME_SIZE_ERROR],
    ['WINDOW_UPDATE length', concat(PREFACE, encodeFrame(FRAME_WINDOW_UPDATE, 0, 0, new Uint8Array(5))), FRAME_SIZE_ERROR],
    ['WINDOW_UPDATE 0 on the connection', concat(PREFACE, encodeWindowUpdate(0, 0)), PROTOCOL_ERROR],
    ['PUSH_PROMISE with push disabled', concat(PREFACE, encodePushPromise(1, 2, hex('82'))), PROTOCOL_ERROR],
    ['CONTINUATION without HEADERS', concat(PREFACE, encodeFrame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, hex('82'))), PROTOCOL_ERROR],
    ['frame between HEADERS and CONTINUATION', concat(PREFACE, encodeFrame(FRAME_HEADERS, 0, 1, hex('82')), encodePing(new Uint8Array(8), false)), PROTOCOL_ERROR],
    ['CONTINUATION of another stream', concat(PREFACE, encodeFrame(FRAME_HEADERS, 0, 1, hex('82')), encodeFrame(FRAME_CONTINUATION, 4, 3, hex('82'))), PROTOCOL_ERROR],
    ['padding longer than the payload', concat(PREFACE, encodeFrame(FRAME_DATA, FLAG_PADDED, 1, hex('05aabb'))), PROTOCOL_ERROR],
    ['frame over our max frame size', concat(PREFACE, encodeData(1, new Uint8Array(16_385), false)), FRAME_SIZE_ERROR],
  ];
  for (const [name, bytes, code] of cases) {
    assertH2Error(() => readAll(bytes), code);
    void name;
  }
  // Stream-level rules come out as stream-error frames; the connection carries on.
  const frames = readAll(concat(PREFACE, encodeWindowUpdate(1, 0), encodeFrame(FRAME_PRIORITY, 0, 3, hex('00'))));
  assert.deepEqual(frames.slice(1).map((f) => [f.type, 'errorCode' in f ? f.errorCode : undefined]), [
    ['stream-error', PROTOCOL_ERROR],
    ['stream-error', FRAME_SIZE_ERROR],
  ]);
});

test('frames: a CONTINUATION flood is bounded by maxHeaderBlockBytes before it is buffered whole', () => {
  const reader = new FrameReader({ maxFrameSize: 16_384, maxHeaderBlockBytes: 8192 });
  reader.push(PREFACE);
  reader.next();
  reader.push(encodeFrame(FRAME_HEADERS, 0, 1, new Uint8Array(4000).fill(0x82)));
  assert.equal(reader.next(), undefined);
  reader.push(encodeFrame(FRAME_CONTINUATION, 0, 1, new Uint8Array(4000).fill(0x82)));
  assert.equal(reader.next(), undefined);
  reader.push(encodeFrame(FRAME_CONTINUATION, 0, 1, new Uint8Array(4000).fill(0x82)));
  assertH2Error(() => reader.next(), ENHANCE_YOUR_CALM, /field block/);
});

test('frames: with splitData a DATA frame comes in pieces as its bytes arrive, views of the chunks (never copied), END_STREAM on the last', () => {
  const reader = new FrameReader({ maxFrameSize: 16_384, maxHeaderBlockBytes: 8192, splitData: true });
  reader.push(PREFACE);
  reader.next();
  const payload = new Uint8Array(16_384).map((_, i) => i & 0xff);
  const frame = encodeFrame(FRAME_DATA, 0x1 /* END_STREAM */, 3, payload);
  // As a TLS socket delivers it: the header and 16 375 payload bytes, then the last 9.
  const first = frame.slice(0, 16_384);
  const second = frame.slice(16_384);
  reader.push(first);
  const a = reader.next() as Frame & { type: 0 };
  assert.equal(a.type, FRAME_DATA);
  assert.deepEqual([a.streamId, a.endStream, a.data.length, a.flowLength], [3, false, 16_375, 16_375]);
  assert.equal(a.data.buffer, first.buffer, 'a view of the chunk, not a copy');
  assert.equal(reader.next(), undefined);
  reader.push(second);
  const b = reader.next() as Frame & { type: 0 };
  assert.deepEqual([b.streamId, b.endStream, b.data.length, b.flowLength], [3, true, 9, 9]);
  assert.equal(b.data.buffer, second.buffer);
  assert.deepEqual(Buffer.concat([a.data, b.data]), Buffer.from(payload));
  assert.equal(reader.next(), undefined);
  // Padded DATA stays whole (its padding length comes first, its padding last), and the rules
  // the header decides still hold before any payload: DATA on stream 0.
  reader.push(encodeFrame(FRAME_DATA, FLAG_PADDED, 5, new Uint8Array([2, 7, 7, 0, 0])));
  const padded = reader.next() as Frame & { type: 0 };
  assert.deepEqual([Buffer.from(padded.data).toString('hex'), padded.flowLength], ['0707', 5]);
  reader.push(encodeFrame(FRAME_DATA, 0, 0, new Uint8Array(100)).subarray(0, 12));
  assertH2Error(() => reader.next(), PROTOCOL_ERROR, /stream 0/);
});

// RFC 7541 Appendix C.
test('hpack: RFC 7541 C.1 integers and C.2 literal fields', () => {
  const dec = new HpackDecoder();
  assert.deepEqual(dec.decode(hex('400a637573746f6d2d6b65790d637573746f6d2d686561646572'), LIMITS).fields, ['custom-key', 'custom-header']);
  assert.equal(dec.tableSize, 55);
  assert.deepEqual(new HpackDecoder().decode(hex('040c2f73616d706c652f70617468'), LIMITS).fields, [':path', '/sample/path']);
  const never = new HpackDecoder();
  assert.deepEqual(never.decode(hex('100870617373776f726406736563726574'), LIMITS).fields, ['password', 'secret']);
  assert.equal(never.tableSize, 0);
  assert.deepEqual(new HpackDecoder().decode(hex('82'), LIMITS).fields, [':method', 'GET']);
  // C.1.2: 1337 with a 5-bit prefix, as the index of a literal without indexing (4-bit prefix differs; use a size update).
  const tiny = new HpackDecoder(2000);
  assertH2Error(() => tiny.decode(hex('3fe11f'), LIMITS), COMPRESSION_ERROR, /over our SETTINGS_HEADER_TABLE_SIZE/);
  assert.deepEqual(new HpackDecoder(2000).decode(hex('3f9a0a82'), LIMITS).fields, [':method', 'GET'], '1337 = 31 + 0x1a + 10*128 (C.1.2)');
});

const C3 = [
  ['828684410f7777772e6578616d706c652e636f6d', [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com']],
  ['828684be58086e6f2d6361636865', [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com', 'cache-control', 'no-cache']],
  ['828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565', [':method', 'GET', ':scheme', 'https', ':path', '/index.html', ':authority', 'www.example.com', 'custom-key', 'custom-value']],
] as const;
const C4 = [
  ['828684418cf1e3c2e5f23a6ba0ab90f4ff', C3[0][1]],
  ['828684be5886a8eb10649cbf', C3[1][1]],
  ['828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf', C3[2][1]],
] as const;
const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOC = 'https://www.example.com';
const C5 = [
  [
    '4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d',
    [':status', '302', 'cache-control', 'private', 'date', DATE1, 'location', LOC],
  ],
  ['4803333037c1c0bf', [':status', '307', 'cache-control', 'private', 'date', DATE1, 'location', LOC]],
  [
    '88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a697077386' +
      '66f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31',
    [':status', '200', 'cache-control', 'private', 'date', DATE2, 'location', LOC, 'content-encoding', 'gzip', 'set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
  ],
] as const;
const C6 = [
  ['488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3', C5[0][1]],
  ['4883640effc1c0bf', C5[1][1]],
  [
    '88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007',
    C5[2][1],
  ],
] as const;

test('hpack: RFC 7541 C.3–C.6 request and response sequences decode, and our encoder reproduces C.4', () => {
  for (const [vectors, tableSize] of [[C3, 4096], [C4, 4096], [C5, 256], [C6, 256]] as const) {
    const dec = new HpackDecoder(tableSize);
    for (const [bytes, fields] of vectors) assert.deepEqual(dec.decode(hex(bytes), LIMITS).fields, [...fields]);
  }
  assert.equal(new HpackDecoder(256).decode(hex(C5[0][0]), LIMITS).bytes, 222, 'C.5.1 leaves 222 bytes in the table');
  const enc = new HpackEncoder();
  for (const [bytes, fields] of C4) assert.equal(toHex(enc.encode([...fields])), bytes);
});

test('hpack: decoder limits (index 0, out of range, integer overflow, truncation, Huffman EOS/padding, late size update)', () => {
  const bad: Array<[string, string]> = [
    ['80', 'index 0'],
    ['be', 'beyond the tables'],
    ['ff8080808080808001', 'integer overflow'],
    ['ffffffffff0f', 'integer overflow'],
    ['ff', 'runs past the end'],
    ['400a6375', 'runs past the end'],
    ['4085ffffffffff00', 'EOS'], // 30 one bits: EOS inside the string
    ['408100', 'padding'],
    ['8220', 'size update after a field'],
    ['3fe21f', 'over our SETTINGS_HEADER_TABLE_SIZE'], // 4097
  ];
  for (const [bytes, pattern] of bad) assertH2Error(() => new HpackDecoder().decode(hex(bytes), LIMITS), COMPRESSION_ERROR, new RegExp(pattern));
});

test('hpack: an HPACK bomb (one large entry referenced again and again) stops collecting at the limit and keeps the table in step', () => {
  const enc = new HpackEncoder();
  const dec = new HpackDecoder();
  const big = 'x'.repeat(1900);
  const setup = enc.encode(['x-big', big]);
  assert.deepEqual(dec.decode(setup, LIMITS).fields, ['x-big', big]);
  const bomb = new Uint8Array(16_000).fill(0xbe); // 16 000 one-byte references to dynamic entry 62
  const out = dec.decode(bomb, { maxHeaderBytes: 65_536, maxHeaderCount: 100_000 });
  assert.equal(out.overLimit, true);
  assert.equal(out.fields.length, 0, 'nothing collected past the limit');
  assert.equal(out.count, 16_000);
  // The table is still in step: the next block decodes.
  assert.deepEqual(dec.decode(enc.encode(['x-big', big, 'a', 'b']), LIMITS).fields, ['x-big', big, 'a', 'b']);
  // maxHeaderCount too.
  const many = dec.decode(new Uint8Array(50).fill(0x82), { maxHeaderBytes: 65_536, maxHeaderCount: 10 });
  assert.equal(many.overLimit, true);
});

test('hpack: the encoder indexes repeated fields, replays cached blocks, follows table-size changes and never indexes secrets', () => {
  const enc = new HpackEncoder();
  const dec = new HpackDecoder();
  const fields = [':method', 'GET', ':scheme', 'https', ':authority', 'api.example:8443', ':path', '/v1/items', 'user-agent', 'muxpool', 'authorization', 'Bearer abc'];
  const first = enc.encode(fields);
  const second = enc.encode(fields);
  const third = enc.encode(fields);
  assert.ok(second.length < first.length / 2, `second ${second.length} < first ${first.length}`);
  assert.equal(third, second, 'the third send replays the cached bytes of the second');
  for (const block of [first, second, third]) assert.deepEqual(dec.decode(block, LIMITS).fields, fields);
  assert.ok(toHex(second).includes('1f08'), 'authorization goes as a never-indexed literal with static name 23 (RFC 7541 §6.2.3)');
  enc.setPeerTableSize(0);
  const afterZero = enc.encode(fields);
  assert.equal(afterZero[0], 0x20, 'a size update opens the next block (RFC 7541 §4.2)');
  assert.deepEqual(dec.decode(afterZero, LIMITS).fields, fields);
  assert.equal(dec.tableSize, 0);
  enc.setPeerTableSize(100);
  enc.setPeerTableSize(50);
  enc.setPeerTableSize(4096);
  const grown = enc.encode(fields);
  assert.equal(toHex(grown.subarray(0, 5)), '3f133fe11f', 'the smallest size (50), then the final one (4096)');
  assert.deepEqual(dec.decode(grown, LIMITS).fields, fields);
  assert.deepEqual(Array.from(huffmanDecode(hex('f1e3c2e5f23a6ba0ab90f4ff'))), Array.from(Buffer.from('www.example.com')));
});

test('hpack: cross-checked both ways with python3-hpack over 10 000 header lists', { skip: !existsSync('/usr/bin/python3') }, () => {
  const corpus = hpackCorpus(10_000, 20260612);
  const enc = new HpackEncoder();
  const ours = corpus.map((fields) => toHex(enc.encode(fields)));
  const script = `
import sys, json, hpack
data = json.load(sys.stdin)
dec = hpack.Decoder()
dec.max_header_list_size = 1 << 30
bad = []
for i, (blk, fields) in enumerate(zip(data['ours'], data['corpus'])):
    got = [x for kv in dec.decode(bytes.fromhex(blk), raw=True) for x in kv]
    want = [f.encode('latin1') for f in fields]
    if got != want:
        bad.append(i)
        if len(bad) > 3: break
enc = hpack.Encoder()
theirs = [enc.encode([(fields[j].encode('latin1'), fields[j+1].encode('latin1')) for j in range(0, len(fields), 2)]).hex() for fields in data['corpus']]
json.dump({'bad': bad, 'theirs': theirs}, sys.stdout)
`;
  const run = spawnSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify({ ours, corpus }), maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' });
  if (run.status !== 0 && /No module named 'hpack'/.test(run.stderr)) {
    assert.fail('python3-hpack is not installed: apt-get install -y python3-hpack');
  }
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { bad: number[]; theirs: string[] };
  assert.deepEqual(result.bad, [], `python3-hpack decoded our blocks differently at ${result.bad.join(', ')}`);
  const dec = new HpackDecoder();
  result.theirs.forEach((block, i) => {
    assert.deepEqual(dec.decode(hex(block), { maxHeaderBytes: 1 << 30, maxHeaderCount: 1 << 20 }).fields, corpus[i], `list ${i}`);
  });
});

test('fuzz: frame and HPACK decoders, briefly (npm run fuzz runs the same properties at length)', () => {
  runH2Fuzz(300);
});

test('stream states (RFC 9113 §5.1): every legal transition, and every other one an internal error', () => {
  const states: StreamState[] = ['idle', 'open', 'half-closed-local', 'half-closed-remote', 'closed'];
  const events: StreamEvent[] = ['send-headers', 'send-headers-end-stream', 'send-end-stream', 'recv-end-stream', 'send-rst', 'recv-rst'];
  const legal: Record<string, StreamState> = {
    'idle send-headers': 'open',
    'idle send-headers-end-stream': 'half-closed-local',
    'open send-end-stream': 'half-closed-local',
    'open recv-end-stream': 'half-closed-remote',
    'half-closed-local recv-end-stream': 'closed',
    'half-closed-remote send-end-stream': 'closed',
    'open send-rst': 'closed',
    'open recv-rst': 'closed',
    'half-closed-local send-rst': 'closed',
    'half-closed-local recv-rst': 'closed',
    'half-closed-remote send-rst': 'closed',
    'half-closed-remote recv-rst': 'closed',
  };
  for (const state of states) {
    for (const event of events) {
      const expected = legal[`${state} ${event}`];
      if (expected !== undefined) assert.equal(streamTransition(state, event), expected, `${state} ${event}`);
      else assert.throws(() => streamTransition(state, event), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_INTERNAL', `${state} ${event}`);
    }
  }
});
