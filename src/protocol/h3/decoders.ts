/**
 * Incremental decoders for the streams of an HTTP/3 connection (RFC 9114 §6, §7; RFC 9204 §4.2).
 * Bytes may arrive split anywhere, a varint included; each decoder keeps what it needs between
 * chunks and appends what it decoded to the caller's `out` array. No I/O, no timers.
 *
 * Frame types, stream types and setting identifiers above 2^53 - 1 are legal (the reserved
 * 0x1f * N + 0x21 values reach 2^62) and read rounded: they are unknown either way, and unknown
 * frames are skipped without being buffered (§9: "Implementations MUST ignore unknown or
 * unsupported values in all extensible protocol elements").
 */
import { MuxpoolError, internalError } from '../../errors.js';
import {
  H3_CLOSED_CRITICAL_STREAM,
  H3_EXCESSIVE_LOAD,
  H3_FRAME_ERROR,
  H3_FRAME_UNEXPECTED,
  H3_ID_ERROR,
  H3_MISSING_SETTINGS,
  QPACK_DECODER_STREAM_ERROR,
  QPACK_ENCODER_STREAM_ERROR,
  h3Error,
  qpackError,
} from './codes.js';
import {
  FRAME_CANCEL_PUSH,
  FRAME_DATA,
  FRAME_GOAWAY,
  FRAME_HEADERS,
  FRAME_MAX_PUSH_ID,
  FRAME_PUSH_PROMISE,
  FRAME_SETTINGS,
  isHttp2OnlyFrameType,
  parseGoaway,
  parsePushId,
  parseSettings,
} from './frames.js';
import { type FieldSectionLimits, decodeFieldSection } from './qpack.js';
import { readVarintAt, varintLengthFromFirstByte } from './varint.js';

/** Which side of the connection this endpoint is: it decides what the peer may send. */
export type LocalRole = 'client' | 'server';

/** The longest frame header: two 8-byte varints. */
const MAX_FRAME_HEADER_BYTES = 16;
/**
 * The largest control-frame payload we buffer. A SETTINGS frame is a few dozen bytes in
 * practice; a peer that sends more is generating excessive load (RFC 9114 §8.1).
 */
export const MAX_CONTROL_FRAME_PAYLOAD_BYTES = 16 * 1024;

const EMPTY = new Uint8Array(0);

// What the bytes after a frame header are, to the decoder.
const PHASE_FRAME_HEADER = 0;
/** Payload handed over as it arrives (DATA). */
const PHASE_STREAM = 1;
/** Payload collected until complete, then handled whole (HEADERS, SETTINGS, GOAWAY, ...). */
const PHASE_BUFFER = 2;
/** Payload dropped as it arrives (unknown and reserved frame types). */
const PHASE_SKIP = 3;

function unexpected(type: number, where: string): MuxpoolError {
  return h3Error(H3_FRAME_UNEXPECTED, `frame type 0x${type.toString(16)} is not allowed ${where}`);
}

/**
 * A frame's Type and Length fields, read across chunks. The common case (the whole header in
 * one chunk) reads straight from the chunk; a header split between chunks is collected in a
 * 16-byte buffer.
 */
class FrameHeaderReader {
  type = 0;
  length = 0;
  private readonly partial = new Uint8Array(MAX_FRAME_HEADER_BYTES);
  private filled = 0;

  /** Bytes of an unfinished header are held. */
  get pending(): boolean {
    return this.filled > 0;
  }

  /** Reads a header from `chunk` at `pos`: the position after it, or -1 if the chunk ended first. */
  read(chunk: Uint8Array, pos: number): number {
    if (this.filled === 0) {
      const available = chunk.length - pos;
      const typeLength = varintLengthFromFirstByte(chunk[pos] as number);
      if (typeLength < available) {
        const lengthLength = varintLengthFromFirstByte(chunk[pos + typeLength] as number);
        if (typeLength + lengthLength <= available) {
          this.type = readVarintAt(chunk, pos, typeLength);
          this.length = readVarintAt(chunk, pos + typeLength, lengthLength);
          return pos + typeLength + lengthLength;
        }
      }
      // An incomplete header is shorter than 16 bytes, so it fits.
      this.partial.set(chunk.subarray(pos), 0);
      this.filled = available;
      return -1;
    }
    const before = this.filled;
    const taken = Math.min(MAX_FRAME_HEADER_BYTES - before, chunk.length - pos);
    this.partial.set(chunk.subarray(pos, pos + taken), before);
    const total = before + taken;
    const typeLength = varintLengthFromFirstByte(this.partial[0] as number);
    if (typeLength < total) {
      const lengthLength = varintLengthFromFirstByte(this.partial[typeLength] as number);
      if (typeLength + lengthLength <= total) {
        this.type = readVarintAt(this.partial, 0, typeLength);
        this.length = readVarintAt(this.partial, typeLength, lengthLength);
        this.filled = 0;
        return pos + typeLength + lengthLength - before;
      }
    }
    // Still incomplete: then `taken` was the rest of the chunk (16 bytes always complete it).
    this.filled = total;
    return -1;
  }
}

/**
 * The frame layer shared by the stream decoders: splits a stream into frames and, per frame,
 * streams, buffers or skips the payload as `startFrame` decides.
 */
abstract class FrameStreamDecoder<Event> {
  private phase = PHASE_FRAME_HEADER;
  /** Payload bytes of the current frame not yet seen. */
  private remaining = 0;
  private frameType = 0;
  private readonly header = new FrameHeaderReader();
  /** A buffered payload that arrived in pieces. */
  private payload: Uint8Array | undefined;
  private payloadFilled = 0;
  private failed = false;
  private ended = false;

  /** Feeds the next bytes of the stream; decoded items are appended to `out`. */
  push(chunk: Uint8Array, out: Event[]): void {
    this.checkUsable();
    try {
      this.consume(chunk, out);
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  /** The stream ended cleanly (FIN). */
  finish(): void {
    this.checkUsable();
    this.ended = true;
    if (this.phase !== PHASE_FRAME_HEADER || this.header.pending) {
      this.failed = true;
      // RFC 9114 §7.1: "When a stream terminates cleanly, if the last frame on the stream was
      // truncated, this MUST be treated as a connection error of type H3_FRAME_ERROR."
      throw h3Error(H3_FRAME_ERROR, `stream ended inside a frame of type 0x${this.frameType.toString(16)}`);
    }
    try {
      this.onEnd();
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  /** Called with each frame header; must call one of `streamPayload`, `bufferPayload`, `skipPayload`. */
  protected abstract startFrame(type: number, length: number, out: Event[]): void;
  /** A piece of a streamed payload (never empty). */
  protected abstract onPayloadChunk(bytes: Uint8Array, out: Event[]): void;
  /** A complete buffered payload. */
  protected abstract onPayload(type: number, payload: Uint8Array, out: Event[]): void;
  /** The stream ended on a frame boundary. */
  protected abstract onEnd(): void;

  protected streamPayload(length: number): void {
    if (length > 0) this.enter(PHASE_STREAM, length);
  }

  protected bufferPayload(type: number, length: number, out: Event[]): void {
    if (length === 0) this.onPayload(type, EMPTY, out);
    else this.enter(PHASE_BUFFER, length);
  }

  protected skipPayload(length: number): void {
    if (length > 0) this.enter(PHASE_SKIP, length);
  }

  private enter(phase: number, length: number): void {
    this.phase = phase;
    this.remaining = length;
  }

  private checkUsable(): void {
    if (this.failed) throw internalError('HTTP/3 stream decoder used after an error');
    if (this.ended) throw internalError('HTTP/3 stream decoder used after the stream ended');
  }

  private consume(chunk: Uint8Array, out: Event[]): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.phase === PHASE_FRAME_HEADER) {
        const next = this.header.read(chunk, pos);
        if (next < 0) return;
        pos = next;
        this.frameType = this.header.type;
        this.startFrame(this.header.type, this.header.length, out);
        continue;
      }
      const available = end - pos;
      const taken = available < this.remaining ? available : this.remaining;
      const stop = pos + taken;
      this.remaining -= taken;
      if (this.phase === PHASE_STREAM) {
        if (this.remaining === 0) this.phase = PHASE_FRAME_HEADER;
        this.onPayloadChunk(chunk.subarray(pos, stop), out);
      } else if (this.phase === PHASE_BUFFER) {
        if (this.payload === undefined && this.remaining === 0) {
          // The whole payload is in this chunk: no copy.
          this.phase = PHASE_FRAME_HEADER;
          this.onPayload(this.frameType, chunk.subarray(pos, stop), out);
        } else {
          if (this.payload === undefined) {
            this.payload = new Uint8Array(taken + this.remaining);
            this.payloadFilled = 0;
          }
          this.payload.set(chunk.subarray(pos, stop), this.payloadFilled);
          this.payloadFilled += taken;
          if (this.remaining === 0) {
            const payload = this.payload;
            this.payload = undefined;
            this.phase = PHASE_FRAME_HEADER;
            this.onPayload(this.frameType, payload, out);
          }
        }
      } else if (this.remaining === 0) {
        this.phase = PHASE_FRAME_HEADER;
      }
      pos = stop;
    }
  }
}

/** Where a request stream is in its frame sequence (RFC 9114 §4.1). */
export type RequestStreamState =
  /** Nothing yet: the first frame must be HEADERS. */
  | 'start'
  /** One or more header sections (interim 1xx ones, then the final one), no DATA yet. */
  | 'headers'
  /** DATA has begun. */
  | 'body'
  /** The trailer section arrived: nothing but unknown frames may follow. */
  | 'trailers';

export type RequestStreamEvent = { kind: 'headers'; fields: Array<[string, string]> } | { kind: 'data'; bytes: Uint8Array };

/**
 * A bidirectional request stream as either side sees it: HEADERS, DATA, trailing HEADERS
 * (RFC 9114 §4.1). DATA payloads are passed on as they arrive, as views of the input chunks;
 * HEADERS payloads are collected, then QPACK-decoded. Which header section is interim, final
 * or trailing is the caller's to interpret; this decoder enforces the frame order.
 */
export class RequestStreamDecoder extends FrameStreamDecoder<RequestStreamEvent> {
  private currentState: RequestStreamState = 'start';
  private readonly limits: FieldSectionLimits;
  private readonly localRole: LocalRole;

  constructor(limits: FieldSectionLimits, localRole: LocalRole = 'client') {
    super();
    this.limits = limits;
    this.localRole = localRole;
  }

  get state(): RequestStreamState {
    return this.currentState;
  }

  protected startFrame(type: number, length: number, out: RequestStreamEvent[]): void {
    switch (type) {
      case FRAME_DATA:
        // §4.1: "Receipt of an invalid sequence of frames MUST be treated as a connection error
        // of type H3_FRAME_UNEXPECTED": DATA before any HEADERS, or after the trailers.
        if (this.currentState === 'start') throw unexpected(type, 'before HEADERS on a request stream');
        if (this.currentState === 'trailers') throw unexpected(type, 'after the trailer section');
        this.currentState = 'body';
        this.streamPayload(length);
        return;
      case FRAME_HEADERS:
        if (this.currentState === 'trailers') throw unexpected(type, 'after the trailer section');
        if (length > this.limits.maxFieldSectionSize) {
          // Refused before a byte is buffered: the encoded section alone is over the limit.
          throw new MuxpoolError(
            'MUXPOOL_ERR_HEADERS_TOO_LARGE',
            `HTTP/3 HEADERS frame of ${length} bytes is over the ${this.limits.maxFieldSectionSize}-byte field section limit`,
            { origin: 'remote' },
          );
        }
        this.bufferPayload(type, length, out);
        return;
      case FRAME_PUSH_PROMISE:
        if (this.localRole === 'server') {
          // §7.2.5: "A server MUST treat the receipt of a PUSH_PROMISE frame as a connection
          // error of type H3_FRAME_UNEXPECTED."
          throw unexpected(type, 'from a client');
        }
        // §7.2.5: a push ID above the maximum the client allowed is an H3_ID_ERROR; we never
        // send MAX_PUSH_ID, so every push ID is above it.
        throw h3Error(H3_ID_ERROR, 'PUSH_PROMISE received, but server push was never allowed (no MAX_PUSH_ID sent)');
      case FRAME_CANCEL_PUSH:
      case FRAME_SETTINGS:
      case FRAME_GOAWAY:
      case FRAME_MAX_PUSH_ID:
        // §7.2.3, §7.2.4, §7.2.6, §7.2.7: these belong on the control stream only; receipt on
        // any other stream is a connection error of type H3_FRAME_UNEXPECTED.
        throw unexpected(type, 'on a request stream');
      default:
        if (isHttp2OnlyFrameType(type)) throw unexpected(type, '(HTTP/2 only, RFC 9114 §7.2.8)');
        this.skipPayload(length);
    }
  }

  protected onPayloadChunk(bytes: Uint8Array, out: RequestStreamEvent[]): void {
    out.push({ kind: 'data', bytes });
  }

  protected onPayload(_type: number, payload: Uint8Array, out: RequestStreamEvent[]): void {
    const fields = decodeFieldSection(payload, this.limits);
    this.currentState = this.currentState === 'body' ? 'trailers' : 'headers';
    out.push({ kind: 'headers', fields });
  }

  protected onEnd(): void {
    // Whether the message is complete (a final header section arrived) is the caller's call.
  }
}

export type ControlEvent =
  | { kind: 'settings'; settings: Map<number, number> }
  | { kind: 'goaway'; id: number }
  | { kind: 'max_push_id' | 'cancel_push'; id: number };

/**
 * The peer's control stream (RFC 9114 §6.2.1): SETTINGS first and once, then GOAWAY,
 * MAX_PUSH_ID, CANCEL_PUSH and unknown frames. `localRole` is this endpoint's role: a client
 * (the default) refuses MAX_PUSH_ID and CANCEL_PUSH, since it never enables server push.
 */
export class ControlStreamDecoder extends FrameStreamDecoder<ControlEvent> {
  private settingsReceived = false;
  /** The identifier of the last GOAWAY, or -1 before the first. */
  private lastGoawayId = -1;
  private lastMaxPushId = -1;
  private readonly localRole: LocalRole;

  constructor(localRole: LocalRole = 'client') {
    super();
    this.localRole = localRole;
  }

  /** The identifier of the last GOAWAY received, or undefined if none was. */
  get goawayId(): number | undefined {
    return this.lastGoawayId < 0 ? undefined : this.lastGoawayId;
  }

  protected startFrame(type: number, length: number, out: ControlEvent[]): void {
    if (!this.settingsReceived && type !== FRAME_SETTINGS) {
      // §6.2.1: "If the first frame of the control stream is any other frame type, this MUST be
      // treated as a connection error of type H3_MISSING_SETTINGS."
      throw h3Error(H3_MISSING_SETTINGS, `control stream starts with frame type 0x${type.toString(16)}, not SETTINGS`);
    }
    switch (type) {
      case FRAME_SETTINGS:
        // §7.2.4: "If an endpoint receives a second SETTINGS frame on the control stream, the
        // endpoint MUST respond with a connection error of type H3_FRAME_UNEXPECTED."
        if (this.settingsReceived) throw unexpected(type, 'twice on the control stream');
        if (length > MAX_CONTROL_FRAME_PAYLOAD_BYTES) {
          throw h3Error(H3_EXCESSIVE_LOAD, `SETTINGS frame of ${length} bytes is over ${MAX_CONTROL_FRAME_PAYLOAD_BYTES}`);
        }
        this.settingsReceived = true;
        this.bufferPayload(type, length, out);
        return;
      case FRAME_MAX_PUSH_ID:
        // §7.2.7: "A client MUST treat the receipt of a MAX_PUSH_ID frame as a connection error
        // of type H3_FRAME_UNEXPECTED."
        if (this.localRole === 'client') throw unexpected(type, 'from a server');
        this.bufferSingleVarint(type, length, out);
        return;
      case FRAME_GOAWAY:
      case FRAME_CANCEL_PUSH:
        this.bufferSingleVarint(type, length, out);
        return;
      case FRAME_DATA:
      case FRAME_HEADERS:
      case FRAME_PUSH_PROMISE:
        // §7.2.1, §7.2.2, §7.2.5: received on a control stream, a connection error of type
        // H3_FRAME_UNEXPECTED.
        throw unexpected(type, 'on the control stream');
      default:
        if (isHttp2OnlyFrameType(type)) throw unexpected(type, '(HTTP/2 only, RFC 9114 §7.2.8)');
        this.skipPayload(length);
    }
  }

  /** GOAWAY, MAX_PUSH_ID and CANCEL_PUSH carry one varint: at most 8 bytes. */
  private bufferSingleVarint(type: number, length: number, out: ControlEvent[]): void {
    // §7.1: a payload with bytes beyond its fields is an H3_FRAME_ERROR; refuse it unbuffered.
    if (length > 8) throw h3Error(H3_FRAME_ERROR, `frame type 0x${type.toString(16)} has a ${length}-byte payload, over one varint`);
    this.bufferPayload(type, length, out);
  }

  protected onPayloadChunk(): void {
    throw internalError('the control stream streams no payload');
  }

  protected onPayload(type: number, payload: Uint8Array, out: ControlEvent[]): void {
    switch (type) {
      case FRAME_SETTINGS:
        out.push({ kind: 'settings', settings: parseSettings(payload) });
        return;
      case FRAME_GOAWAY: {
        const id = parseGoaway(payload);
        // §5.2: "A client MUST treat receipt of a GOAWAY frame containing a stream ID of any
        // other type [than client-initiated bidirectional] as a connection error of type
        // H3_ID_ERROR."
        if (this.localRole === 'client' && id % 4 !== 0) throw h3Error(H3_ID_ERROR, `GOAWAY stream ID ${id} is not a client-initiated bidirectional stream`);
        // §5.2: "Receiving a GOAWAY containing a larger identifier than previously received MUST
        // be treated as a connection error of type H3_ID_ERROR."
        if (this.lastGoawayId >= 0 && id > this.lastGoawayId) {
          throw h3Error(H3_ID_ERROR, `GOAWAY identifier rose from ${this.lastGoawayId} to ${id}`);
        }
        this.lastGoawayId = id;
        out.push({ kind: 'goaway', id });
        return;
      }
      case FRAME_MAX_PUSH_ID: {
        const id = parsePushId(payload, 'MAX_PUSH_ID');
        // §7.2.7: "receipt of a MAX_PUSH_ID frame that contains a smaller value than previously
        // received MUST be treated as a connection error of type H3_ID_ERROR."
        if (id < this.lastMaxPushId) throw h3Error(H3_ID_ERROR, `MAX_PUSH_ID fell from ${this.lastMaxPushId} to ${id}`);
        this.lastMaxPushId = id;
        out.push({ kind: 'max_push_id', id });
        return;
      }
      case FRAME_CANCEL_PUSH: {
        const id = parsePushId(payload, 'CANCEL_PUSH');
        // §7.2.3: a CANCEL_PUSH that "references a push ID greater than currently allowed on
        // the connection ... MUST be treated as a connection error of type H3_ID_ERROR"; a
        // client that never sent MAX_PUSH_ID allows none.
        if (this.localRole === 'client') throw h3Error(H3_ID_ERROR, `CANCEL_PUSH for push ID ${id}, but server push was never allowed`);
        out.push({ kind: 'cancel_push', id });
        return;
      }
      default:
        throw internalError(`control frame 0x${type.toString(16)} was buffered but has no handler`);
    }
  }

  protected onEnd(): void {
    // §6.2.1: "If either control stream is closed at any point, this MUST be treated as a
    // connection error of type H3_CLOSED_CRITICAL_STREAM."
    throw h3Error(H3_CLOSED_CRITICAL_STREAM, 'the peer closed its control stream');
  }
}

/**
 * The stream type at `offset` in a peer's unidirectional stream (§6.2), and its encoded length;
 * undefined when the bytes end first. Types above 2^53 - 1 come back rounded: they are
 * reserved or unknown either way, and such streams are to be ignored (§6.2.3).
 */
export function readStreamType(buf: Uint8Array, offset: number): { type: number; length: number } | undefined {
  if (offset >= buf.length) return undefined;
  const length = varintLengthFromFirstByte(buf[offset] as number);
  if (offset + length > buf.length) return undefined;
  return { type: readVarintAt(buf, offset, length), length };
}

/** Reads the leading stream type of a peer's unidirectional stream across chunks. */
export class UniStreamTypeReader {
  private readonly partial = new Uint8Array(8);
  private filled = 0;
  private done = false;

  /**
   * Feeds the next chunk: once the type is complete, returns it with the rest of this chunk (a
   * view, possibly empty), and then must not be called again. Undefined means: need more bytes.
   */
  push(chunk: Uint8Array): { type: number; rest: Uint8Array } | undefined {
    if (this.done) throw internalError('UniStreamTypeReader used after it read the type');
    if (this.filled === 0) {
      const read = readStreamType(chunk, 0);
      if (read !== undefined) {
        this.done = true;
        return { type: read.type, rest: chunk.subarray(read.length) };
      }
      this.partial.set(chunk, 0);
      this.filled = chunk.length;
      return undefined;
    }
    const before = this.filled;
    const needed = varintLengthFromFirstByte(this.partial[0] as number);
    const taken = Math.min(needed - before, chunk.length);
    this.partial.set(chunk.subarray(0, taken), before);
    this.filled = before + taken;
    if (this.filled < needed) return undefined;
    this.done = true;
    return { type: readVarintAt(this.partial, 0, needed), rest: chunk.subarray(taken) };
  }
}

/**
 * The peer's QPACK encoder stream (RFC 9204 §4.3), when our decoder allows a dynamic table of
 * capacity 0. The only instruction the peer can send is Set Dynamic Table Capacity with 0:
 * the single byte 0x20. Anything else inserts into, duplicates from, or enlarges a table that
 * cannot hold an entry.
 */
export class QpackEncoderStreamDecoder {
  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] as number;
      if (byte === 0x20) continue;
      if ((byte & 0xe0) === 0x20) {
        // §4.3.1: "The decoder MUST treat a new dynamic table capacity value that exceeds this
        // limit as a connection error of type QPACK_ENCODER_STREAM_ERROR."
        throw qpackError('encoder stream sets a dynamic table capacity above our limit of 0', QPACK_ENCODER_STREAM_ERROR);
      }
      // §3.2.2: "It is an error if the encoder attempts to add an entry that is larger than the
      // dynamic table capacity; the decoder MUST treat this as a connection error of type
      // QPACK_ENCODER_STREAM_ERROR." Every entry is larger than 0; Duplicate (§4.3.4) refers to
      // an entry that cannot exist.
      throw qpackError(`encoder stream instruction 0x${byte.toString(16)} needs a dynamic table, whose capacity is 0`, QPACK_ENCODER_STREAM_ERROR);
    }
  }

  finish(): void {
    // RFC 9204 §4.2: "Closure of either unidirectional stream type MUST be treated as a
    // connection error of type H3_CLOSED_CRITICAL_STREAM."
    throw h3Error(H3_CLOSED_CRITICAL_STREAM, 'the peer closed its QPACK encoder stream');
  }
}

/** Continuation bytes a 62-bit stream ID can need after a 6-bit prefix. */
const MAX_STREAM_ID_CONTINUATION_BYTES = 9;

/**
 * The peer's QPACK decoder stream (RFC 9204 §4.4), when our encoder never uses the dynamic
 * table. Stream Cancellation is allowed and needs no action; Section Acknowledgment and Insert
 * Count Increment can only refer to dynamic-table state we never created.
 */
export class QpackDecoderStreamDecoder {
  /** -1 between instructions; else continuation bytes read of a Stream Cancellation's ID. */
  private continuation = -1;

  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] as number;
      if (this.continuation >= 0) {
        if (++this.continuation > MAX_STREAM_ID_CONTINUATION_BYTES) throw qpackError('stream ID in a Stream Cancellation is too long', QPACK_DECODER_STREAM_ERROR);
        if ((byte & 0x80) === 0) this.continuation = -1;
        continue;
      }
      if ((byte & 0x80) !== 0) {
        // §4.4.1: a Section Acknowledgment "referring to a stream on which every encoded field
        // section with a non-zero Required Insert Count has already been acknowledged ... MUST
        // be treated as a connection error of type QPACK_DECODER_STREAM_ERROR"; all of ours
        // have Required Insert Count 0.
        throw qpackError('decoder stream acknowledges a section, but none used the dynamic table', QPACK_DECODER_STREAM_ERROR);
      }
      if ((byte & 0x40) === 0) {
        // §4.4.3: an Insert Count Increment of zero, or beyond what the encoder sent, "MUST
        // [be treated] as a connection error of type QPACK_DECODER_STREAM_ERROR"; we sent none.
        throw qpackError('decoder stream increments the insert count, but nothing was inserted', QPACK_DECODER_STREAM_ERROR);
      }
      // §4.4.2 Stream Cancellation: 01, stream ID as a 6-bit prefix integer.
      if ((byte & 0x3f) === 0x3f) this.continuation = 0;
    }
  }

  finish(): void {
    // RFC 9204 §4.2: closing a QPACK stream is a connection error of type
    // H3_CLOSED_CRITICAL_STREAM.
    throw h3Error(H3_CLOSED_CRITICAL_STREAM, 'the peer closed its QPACK decoder stream');
  }
}
