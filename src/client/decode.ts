/**
 * Response body decoding (`content-encoding`, RFC 9110 §8.4): gzip, deflate, br, and zstd where
 * the running Node's zlib has it, stacked codings undone in reverse order, as a stream with
 * backpressure. A coding we do not know leaves the body as it came.
 */
import { Readable, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { MuxpoolError } from '../errors.js';

/** Makes one decoding stage. */
export type Decoder = () => Transform;

// Z_SYNC_FLUSH: servers often end a stream without a final flush; node:http and undici accept
// that, so we do too (the data is all there, only the trailer flush is missing).
const FLUSH = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
const zstd = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;

const DECODERS = new Map<string, Decoder>([
  ['gzip', () => zlib.createGunzip(FLUSH)],
  ['x-gzip', () => zlib.createGunzip(FLUSH)],
  // "deflate" is the zlib format (RFC 9110 §8.4.1.2).
  ['deflate', () => zlib.createInflate(FLUSH)],
  ['br', () => zlib.createBrotliDecompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH })],
  ...(zstd !== undefined ? ([['zstd', () => zstd()]] as Array<[string, Decoder]>) : []),
]);

/** What we send in `accept-encoding` when the caller did not set it. */
export const ACCEPT_ENCODING = ['gzip', 'deflate', 'br', ...(zstd !== undefined ? ['zstd'] : [])].join(', ');

/**
 * The decoders for a `content-encoding` value, in the order to apply them (the last coding
 * applied is undone first); undefined when there is nothing to undo or a coding is unknown
 * (then the body is handed over as it came, as fetch does).
 */
export function decodersFor(contentEncoding: string | string[] | undefined): Decoder[] | undefined {
  if (contentEncoding === undefined) return undefined;
  const value = Array.isArray(contentEncoding) ? contentEncoding.join(',') : contentEncoding;
  if (value === '' || value === 'identity') return undefined;
  const decoders: Decoder[] = [];
  const codings = value.split(',');
  for (let i = codings.length - 1; i >= 0; i--) {
    const coding = (codings[i] as string).trim().toLowerCase();
    if (coding === '' || coding === 'identity') continue;
    const decoder = DECODERS.get(coding);
    if (decoder === undefined) return undefined;
    decoders.push(decoder);
  }
  return decoders.length === 0 ? undefined : decoders;
}

/**
 * `source` decoded through `decoders`, with backpressure. A corrupt body fails the result with
 * MUXPOOL_ERR_DECODE (the codec's own error as the cause); destroying the result early destroys
 * the source, which frees the stream. Nothing flows until the result is read: until then it is
 * the only holder of the source, so a decoded body nobody reads is collected, and its stream
 * cancelled, like a plain one (lifetime.ts).
 */
export function decodeBody(source: Readable, decoders: readonly Decoder[], url: string): Readable {
  let last: Transform | undefined;
  let stages: Transform[] = [];
  let failed = false;
  const fail = (err: Error | null | undefined): void => {
    if (failed) return;
    failed = true;
    for (const stage of stages) stage.destroy();
    if (!source.destroyed) source.destroy();
    if (!output.destroyed) {
      output.destroy(
        err instanceof MuxpoolError || err === null || err === undefined
          ? (err ?? undefined)
          : new MuxpoolError('MUXPOOL_ERR_DECODE', `the response body of ${url} could not be decoded (content-encoding): ${err.message}`, {
              cause: err,
              maybeProcessed: true,
            }),
      );
    }
  };
  const wire = (): Transform => {
    stages = decoders.map((make) => make());
    let previous: Readable = source;
    for (const stage of stages) {
      stage.on('error', fail);
      previous.pipe(stage);
      previous = stage;
    }
    const end = previous as Transform;
    end.on('data', (chunk: Buffer) => {
      if (!output.push(chunk)) end.pause();
    });
    end.on('end', () => output.push(null));
    return end;
  };
  // From the start: a source cancelled before anyone read (the response dropped) must not
  // raise an unheard 'error'.
  source.on('error', fail);
  const output: Readable = new Readable({
    read() {
      if (last === undefined) last = wire();
      else last.resume();
    },
    destroy(err, callback) {
      // The consumer gave up (or the decode failed): everything upstream goes too.
      if (!failed) fail(undefined);
      callback(err);
    },
  });
  return output;
}
