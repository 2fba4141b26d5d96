/**
 * Property-based fuzz targets for the HTTP/2 decoders (frames and HPACK), with fast-check.
 * Each property holds for any input: the decoder returns or throws a typed `MuxpoolError`
 * (never another exception), ends (no hang), allocates in proportion to its input, and gives
 * the same result whole or split at any offset. `h2FuzzProperties` is what a fuzz runner
 * (`npm run fuzz`) plugs in with a large `numRuns`; the unit tests run them briefly.
 */
import fc from 'fast-check';
import { MuxpoolError } from '../../src/errors.js';
import { type Frame, FrameReader, encodeFrame, encodeSettings } from '../../src/protocol/h2/frames.js';
import { HpackDecoder, HpackEncoder } from '../../src/protocol/h2/hpack.js';

const READER = { maxFrameSize: 16_384, maxHeaderBlockBytes: 16_384 };

function typed(err: unknown): void {
  if (!(err instanceof MuxpoolError) || err.code !== 'MUXPOOL_ERR_H2_PROTOCOL' || err.wireCode === undefined) throw err;
}

/** Frames out of `parts` fed one after another; a thrown error becomes its wire code. */
function readFrames(parts: readonly Uint8Array[]): string {
  const reader = new FrameReader(READER);
  const out: string[] = [];
  try {
    for (const part of parts) {
      reader.push(part);
      for (let frame: Frame | undefined = reader.next(); frame !== undefined; frame = reader.next()) {
        out.push(JSON.stringify(frame, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)));
      }
    }
  } catch (err) {
    typed(err);
    out.push(`error ${(err as MuxpoolError).wireCode}`);
  }
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

export const h2FuzzProperties = {
  /** Any bytes: frames or a typed error, the same whole and split at any offset. */
  framesSplitAnywhere: fc.property(frameStream, fc.nat(), (bytes, at) => {
    const split = bytes.length === 0 ? 0 : at % bytes.length;
    const whole = readFrames([bytes]);
    const parts = readFrames([bytes.subarray(0, split), bytes.subarray(split)]);
    if (whole !== parts) throw new Error(`split at ${split} changes the result`);
  }),
  /** Raw random bytes after the preface: only typed errors. */
  framesRawBytes: fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
    readFrames([encodeSettings([]), bytes]);
  }),
  /** Any block: a typed COMPRESSION_ERROR or a list within the limits. */
  hpackAnyBlock: fc.property(fc.uint8Array({ maxLength: 256 }), fc.uint8Array({ maxLength: 256 }), (first, second) => {
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
        return;
      }
    }
  }),
  /** Our encoder and decoder agree on any sequence of latin1 header lists. */
  hpackRoundTrip: fc.property(
    fc.array(fc.array(fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,12}$/), fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 80 })), { maxLength: 8 }), {
      maxLength: 8,
    }),
    fc.integer({ min: 0, max: 4096 }),
    (lists, tableSize) => {
      const encoder = new HpackEncoder();
      const decoder = new HpackDecoder();
      lists.forEach((list, i) => {
        if (i === 1) encoder.setPeerTableSize(tableSize);
        const flat = list.flat();
        const got = decoder.decode(encoder.encode(flat), { maxHeaderBytes: 1 << 20, maxHeaderCount: 1000 }).fields;
        if (JSON.stringify(got) !== JSON.stringify(flat)) throw new Error(`list ${i} differs`);
      });
    },
  ),
};

/** Runs every property `numRuns` times (seeded when `seed` is given). */
export function runH2Fuzz(numRuns: number, seed?: number): void {
  for (const property of Object.values(h2FuzzProperties)) fc.assert(property as fc.IProperty<unknown>, { numRuns, ...(seed === undefined ? {} : { seed }) });
}
