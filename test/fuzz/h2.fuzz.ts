/**
 * Property-based fuzz targets for the HTTP/2 decoders (frames and HPACK), with fast-check.
 * Each property holds for any input: the decoder returns or throws a typed `MuxpoolError`
 * (never another exception), ends (no hang), allocates in proportion to its input, and gives
 * the same result whole or split at any offset. `npm run fuzz` runs them among its targets;
 * the unit tests run them briefly.
 */
import fc from 'fast-check';
import { MuxpoolError } from '../../src/errors.js';
import { type Frame, FrameReader, encodeFrame, encodeSettings } from '../../src/protocol/h2/frames.js';
import { HpackDecoder, HpackEncoder } from '../../src/protocol/h2/hpack.js';

const READER = { maxFrameSize: 16_384, maxHeaderBlockBytes: 16_384 };

function typed(err: unknown): void {
  if (!(err instanceof MuxpoolError) || err.code !== 'MUXPOOL_ERR_H2_PROTOCOL' || err.wireCode === undefined) throw err;
}

const hexOf = (_k: string, v: unknown): unknown => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v);

/**
 * Frames out of `parts` fed one after another; a thrown error becomes its wire code. With
 * `splitData` (as the engine reads) a DATA frame may come in pieces, cut where the parts are:
 * consecutive DATA on one stream are joined, so that the result does not depend on the cuts.
 */
function readFrames(parts: readonly Uint8Array[], splitData = false): string {
  const reader = new FrameReader({ ...READER, splitData });
  const out: string[] = [];
  let data: { streamId: number; endStream: boolean; data: Uint8Array[]; flowLength: number } | undefined;
  const flushData = (): void => {
    if (data !== undefined) out.push(JSON.stringify({ type: 0, streamId: data.streamId, endStream: data.endStream, data: Buffer.concat(data.data), flowLength: data.flowLength }, hexOf));
    data = undefined;
  };
  try {
    for (const part of parts) {
      reader.push(part);
      for (let frame: Frame | undefined = reader.next(); frame !== undefined; frame = reader.next()) {
        if (!splitData) {
          out.push(JSON.stringify(frame, hexOf));
          continue;
        }
        if (frame.type === 0) {
          if (data !== undefined && data.streamId !== frame.streamId) flushData();
          data ??= { streamId: frame.streamId, endStream: false, data: [], flowLength: 0 };
          data.data.push(frame.data);
          data.flowLength += frame.flowLength;
          data.endStream = frame.endStream;
          if (frame.endStream) flushData();
        } else {
          flushData();
          out.push(JSON.stringify(frame, hexOf));
        }
      }
    }
  } catch (err) {
    typed(err);
    flushData();
    out.push(`error ${(err as MuxpoolError).wireCode}`);
  }
  flushData();
  return out.join('\n');
}

/** Random frames: a valid header with a random type, flags, stream and payload. */
const arbitraryFrame = fc
  .record({
    type: fc.integer({ min: 0, max: 12 }),
    flags: fc.integer({ min: 0, max: 255 }),
    streamId: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 9 })),
    payload: fc.uint8Array({ maxLength: 64 }),
  })
  .map(({ type, flags, streamId, payload }) => encodeFrame(type, flags, streamId, payload));

const frameStream = fc
  .tuple(fc.array(arbitraryFrame, { maxLength: 12 }), fc.uint8Array({ maxLength: 16 }))
  .map(([frames, tail]) => new Uint8Array(Buffer.concat([encodeSettings([]), ...frames, tail])));

/** The HPACK cases: two blocks of any bytes, and header lists for an encode/decode round trip. */
const hpackCase = fc.record({
  first: fc.uint8Array({ maxLength: 256 }),
  second: fc.uint8Array({ maxLength: 256 }),
  lists: fc.array(
    fc.array(fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,12}$/), fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 80 })), { maxLength: 8 }),
    { maxLength: 8 },
  ),
  tableSize: fc.integer({ min: 0, max: 4096 }),
});

/** Any bytes: frames or a typed error, the same whole and split at any offset; raw bytes after the preface: typed errors only. */
function checkFrames([bytes, at, raw]: [Uint8Array, number, Uint8Array]): void {
  const split = bytes.length === 0 ? 0 : at % bytes.length;
  const whole = readFrames([bytes]);
  const parts = readFrames([bytes.subarray(0, split), bytes.subarray(split)]);
  if (whole !== parts) throw new Error(`split at ${split} changes the result`);
  // As the engine reads: DATA in pieces, never copied; joined, the same whole or split.
  const wholeSplitData = readFrames([bytes], true);
  const partsSplitData = readFrames([bytes.subarray(0, split), bytes.subarray(split)], true);
  if (wholeSplitData !== partsSplitData) throw new Error(`split at ${split} changes the result with splitData`);
  readFrames([encodeSettings([]), raw]);
  readFrames([encodeSettings([]), raw], true);
}

/** Any block: a typed COMPRESSION_ERROR or a list within the limits; our encoder and decoder agree on any lists. */
function checkHpack({ first, second, lists, tableSize }: { first: Uint8Array; second: Uint8Array; lists: Array<Array<[string, string]>>; tableSize: number }): void {
  const decoder = new HpackDecoder();
  for (const block of [first, second]) {
    try {
      const out = decoder.decode(block, { maxHeaderBytes: 4096, maxHeaderCount: 50 });
      if (out.fields.length > 100) throw new Error('more fields than maxHeaderCount');
      let bytes = 0;
      for (let i = 0; i < out.fields.length; i += 2) bytes += (out.fields[i] as string).length + (out.fields[i + 1] as string).length + 32;
      if (bytes > 4096) throw new Error('decoded list over maxHeaderBytes');
    } catch (err) {
      typed(err);
      break;
    }
  }
  const encoder = new HpackEncoder();
  const roundTrip = new HpackDecoder();
  lists.forEach((list, i) => {
    if (i === 1) encoder.setPeerTableSize(tableSize);
    const flat = list.flat();
    const got = roundTrip.decode(encoder.encode(flat), { maxHeaderBytes: 1 << 20, maxHeaderCount: 1000 }).fields;
    if (JSON.stringify(got) !== JSON.stringify(flat)) throw new Error(`list ${i} differs`);
  });
}

/** The HTTP/2 targets as `npm run fuzz` runs them (test/fuzz/targets.ts lists them). */
export const H2_FUZZ_TARGETS = [
  {
    name: 'h2-frames',
    covers: 'HTTP/2 frame reader: random frames whole and split anywhere (DATA whole, and in pieces as the engine reads it), raw bytes after the preface',
    shortRuns: 2_000,
    arbitrary: fc.tuple(frameStream, fc.nat(), fc.uint8Array({ maxLength: 512 })),
    check: checkFrames,
  },
  {
    name: 'hpack',
    covers: 'HPACK: any blocks against every limit, and encoder/decoder round trips with table-size changes',
    shortRuns: 2_000,
    arbitrary: hpackCase,
    check: checkHpack,
  },
] as const;

/** Runs every HTTP/2 target `numRuns` times (seeded when `seed` is given). */
export function runH2Fuzz(numRuns: number, seed?: number): void {
  const options = { numRuns, ...(seed === undefined ? {} : { seed }) };
  fc.assert(fc.property(H2_FUZZ_TARGETS[0].arbitrary, (input) => checkFrames(input)), options);
  fc.assert(fc.property(H2_FUZZ_TARGETS[1].arbitrary, (input) => checkHpack(input)), options);
}
