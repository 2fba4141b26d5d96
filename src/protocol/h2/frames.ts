/**
 * HTTP/2 frames (RFC 9113 §4 and §6, plus ALTSVC from RFC 7838 §4): a pure, incremental reader
 * (bytes in, frames out, or nothing until more bytes come) and encoders. No I/O, no timers.
 *
 * The reader applies every rule that the frame layout alone decides (sizes, stream 0 or not,
 * padding, SETTINGS values, header blocks continued only by CONTINUATION) and throws a
 * `MUXPOOL_ERR_H2_PROTOCOL` connection error with the wire code. What needs stream state (is
 * the stream open, is the window large enough) is the engine's job.
 */
import type { MuxpoolError } from '../../errors.js';
import {
  ENHANCE_YOUR_CALM,
  FLOW_CONTROL_ERROR,
  FRAME_SIZE_ERROR,
  PROTOCOL_ERROR,
  h2ConnectionError,
} from './codes.js';

export const FRAME_DATA = 0x0;
export const FRAME_HEADERS = 0x1;
export const FRAME_PRIORITY = 0x2;
export const FRAME_RST_STREAM = 0x3;
export const FRAME_SETTINGS = 0x4;
export const FRAME_PUSH_PROMISE = 0x5;
export const FRAME_PING = 0x6;
export const FRAME_GOAWAY = 0x7;
export const FRAME_WINDOW_UPDATE = 0x8;
export const FRAME_CONTINUATION = 0x9;
/** RFC 7838 §4: an extension frame; a peer that does not know it ignores it (RFC 9113 §5.5). */
export const FRAME_ALTSVC = 0xa;

export const FLAG_END_STREAM = 0x1;
export const FLAG_ACK = 0x1;
export const FLAG_END_HEADERS = 0x4;
export const FLAG_PADDED = 0x8;
export const FLAG_PRIORITY = 0x20;

export const SETTINGS_HEADER_TABLE_SIZE = 0x1;
export const SETTINGS_ENABLE_PUSH = 0x2;
export const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
export const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
export const SETTINGS_MAX_FRAME_SIZE = 0x5;
export const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

export const FRAME_HEADER_BYTES = 9;
/** RFC 9113 §4.2: the initial (and smallest) SETTINGS_MAX_FRAME_SIZE. */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
/** RFC 9113 §6.5.2: the largest allowed SETTINGS_MAX_FRAME_SIZE. */
export const MAX_ALLOWED_FRAME_SIZE = 16_777_215;
/** RFC 9113 §6.9.1: the largest flow-control window. */
export const MAX_WINDOW = 2 ** 31 - 1;
/** RFC 9113 §6.9.2: windows start at 65 535 until SETTINGS say otherwise. */
export const DEFAULT_WINDOW = 65_535;

/** RFC 9113 §3.4: the client connection preface, before its first SETTINGS. */
export const CLIENT_PREFACE = new Uint8Array(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'));

export interface DataFrame {
  readonly type: typeof FRAME_DATA;
  readonly streamId: number;
  readonly endStream: boolean;
  readonly data: Uint8Array;
  /** The whole payload, padding included: what flow control counts (§6.9.1). */
  readonly flowLength: number;
}
/** HEADERS with every CONTINUATION that followed it: one complete field block. */
export interface HeadersFrame {
  readonly type: typeof FRAME_HEADERS;
  readonly streamId: number;
  readonly endStream: boolean;
  readonly block: Uint8Array;
}
export interface PriorityFrame {
  readonly type: typeof FRAME_PRIORITY;
  readonly streamId: number;
}
export interface RstStreamFrame {
  readonly type: typeof FRAME_RST_STREAM;
  readonly streamId: number;
  readonly errorCode: number;
}
export interface SettingsFrame {
  readonly type: typeof FRAME_SETTINGS;
  readonly ack: boolean;
  /** Known settings only, in order (§6.5: "An endpoint MUST ignore a setting it does not understand"). */
  readonly settings: ReadonlyArray<readonly [id: number, value: number]>;
}
export interface PushPromiseFrame {
  readonly type: typeof FRAME_PUSH_PROMISE;
  readonly streamId: number;
  readonly promisedStreamId: number;
  readonly block: Uint8Array;
}
export interface PingFrame {
  readonly type: typeof FRAME_PING;
  readonly ack: boolean;
  readonly data: Uint8Array;
}
export interface GoawayFrame {
  readonly type: typeof FRAME_GOAWAY;
  readonly lastStreamId: number;
  readonly errorCode: number;
  readonly debug: Uint8Array;
}
export interface WindowUpdateFrame {
  readonly type: typeof FRAME_WINDOW_UPDATE;
  readonly streamId: number;
  readonly increment: number;
}
export interface AltSvcFrame {
  readonly type: typeof FRAME_ALTSVC;
  readonly streamId: number;
  readonly origin: string;
  readonly value: string;
}
/** A rule the frame alone breaks but that only ends its stream (RFC 9113 §5.4.2). */
export interface StreamErrorFrame {
  readonly type: 'stream-error';
  readonly streamId: number;
  readonly errorCode: number;
  readonly message: string;
}

export type Frame =
  | DataFrame
  | HeadersFrame
  | PriorityFrame
  | RstStreamFrame
  | SettingsFrame
  | PushPromiseFrame
  | PingFrame
  | GoawayFrame
  | WindowUpdateFrame
  | AltSvcFrame
  | StreamErrorFrame;

export interface FrameReaderOptions {
  /** Our SETTINGS_MAX_FRAME_SIZE: larger frames are FRAME_SIZE_ERROR (§4.2). */
  maxFrameSize: number;
  /**
   * The most bytes one field block may take across HEADERS and CONTINUATION frames: a peer
   * that sends more (a CONTINUATION flood) is closed with ENHANCE_YOUR_CALM (§10.5).
   */
  maxHeaderBlockBytes: number;
  /** We sent SETTINGS_ENABLE_PUSH 0 (a client that never takes pushes). */
  pushEnabled?: boolean;
  /**
   * Hand out an unpadded DATA frame's payload in pieces as its bytes arrive, each a view of
   * the chunk it came in (never a copy), the last piece carrying END_STREAM. A TLS socket
   * delivers at most 16 KiB at a time, so a 16 KiB frame (plus its 9-byte header) nearly
   * always spans two chunks, and assembling it whole would copy every body byte once more.
   * Each piece counts for flow control by its own length; the pieces add up to the frame.
   */
  splitData?: boolean;
}

function error(wireCode: number, message: string): MuxpoolError {
  return h2ConnectionError(wireCode, message, 'remote');
}

/** A field block being assembled from HEADERS or PUSH_PROMISE and its CONTINUATION frames. */
interface PendingBlock {
  type: typeof FRAME_HEADERS | typeof FRAME_PUSH_PROMISE;
  streamId: number;
  endStream: boolean;
  promisedStreamId: number;
  parts: Uint8Array[];
  bytes: number;
}

const EMPTY = new Uint8Array(0);

/**
 * The incremental frame reader. `push()` bytes as they arrive, then call `next()` until it
 * returns undefined (more bytes needed). Throws a connection error for a broken rule; after
 * that the reader must not be used again.
 */
export class FrameReader {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Offset into `chunks[0]` of the first unread byte. */
  private head = 0;
  private pending: PendingBlock | undefined;
  private sawPreface = false;
  maxFrameSize: number;
  readonly maxHeaderBlockBytes: number;
  private readonly pushEnabled: boolean;
  private readonly splitData: boolean;
  /** With `splitData`: payload bytes of the DATA frame being handed out in pieces, still to come. */
  private dataLeft = 0;
  private dataStreamId = 0;
  private dataEndStream = false;

  constructor(options: FrameReaderOptions) {
    this.maxFrameSize = options.maxFrameSize;
    this.maxHeaderBlockBytes = options.maxHeaderBlockBytes;
    this.pushEnabled = options.pushEnabled ?? false;
    this.splitData = options.splitData ?? false;
  }

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.chunks.push(bytes);
    this.buffered += bytes.length;
  }

  /** Bytes received and not yet consumed. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  next(): Frame | undefined {
    for (;;) {
      if (this.dataLeft > 0) return this.nextDataPiece();
      if (this.buffered < FRAME_HEADER_BYTES) return undefined;
      const header = this.peek(FRAME_HEADER_BYTES);
      const length = ((header[0] as number) << 16) | ((header[1] as number) << 8) | (header[2] as number);
      const type = header[3] as number;
      const flags = header[4] as number;
      const streamId = (((header[5] as number) & 0x7f) * 2 ** 24 + ((header[6] as number) << 16)) + (((header[7] as number) << 8) | (header[8] as number));
      // §3.4: "the server connection preface ... MUST be the first frame the server sends".
      if (!this.sawPreface) {
        if (type !== FRAME_SETTINGS || (flags & FLAG_ACK) !== 0) throw error(PROTOCOL_ERROR, 'the server preface is not a SETTINGS frame');
        this.sawPreface = true;
      }
      // §4.2: "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame exceeds the
      // size defined in SETTINGS_MAX_FRAME_SIZE". Treated as a connection error for every
      // type, which §4.2 allows, so the size is known before any payload is buffered.
      if (length > this.maxFrameSize) throw error(FRAME_SIZE_ERROR, `frame of type ${type} has ${length} bytes, over our SETTINGS_MAX_FRAME_SIZE ${this.maxFrameSize}`);
      if (this.splitData && type === FRAME_DATA && length > 0 && (flags & FLAG_PADDED) === 0) {
        // Pieces from here on; the rules parse() applies to DATA are decided by the header alone.
        if (this.pending !== undefined) throw error(PROTOCOL_ERROR, `frame of type ${type} on stream ${streamId} inside the field block of stream ${this.pending.streamId}`);
        if (streamId === 0) throw error(PROTOCOL_ERROR, 'DATA on stream 0');
        this.skip(FRAME_HEADER_BYTES);
        this.dataLeft = length;
        this.dataStreamId = streamId;
        this.dataEndStream = (flags & FLAG_END_STREAM) !== 0;
        if (this.buffered === 0) return undefined;
        return this.nextDataPiece();
      }
      if (this.buffered < FRAME_HEADER_BYTES + length) return undefined;
      this.skip(FRAME_HEADER_BYTES);
      const payload = length === 0 ? EMPTY : this.take(length);
      const frame = this.parse(type, flags, streamId, payload);
      if (frame !== undefined) return frame;
    }
  }

  private parse(type: number, flags: number, streamId: number, payload: Uint8Array): Frame | undefined {
    const pending = this.pending;
    if (pending !== undefined) {
      // §6.10: "A receiver MUST treat the receipt of any other type of frame or a frame on a
      // different stream as a connection error of type PROTOCOL_ERROR."
      if (type !== FRAME_CONTINUATION || streamId !== pending.streamId) {
        throw error(PROTOCOL_ERROR, `frame of type ${type} on stream ${streamId} inside the field block of stream ${pending.streamId}`);
      }
      return this.continueBlock(pending, flags, payload);
    }
    switch (type) {
      case FRAME_DATA: {
        // §6.1: "If a DATA frame is received whose Stream Identifier field is 0x00, the recipient
        // MUST respond with a connection error of type PROTOCOL_ERROR."
        if (streamId === 0) throw error(PROTOCOL_ERROR, 'DATA on stream 0');
        const data = (flags & FLAG_PADDED) !== 0 ? unpad(payload, 0, 'DATA') : payload;
        return { type: FRAME_DATA, streamId, endStream: (flags & FLAG_END_STREAM) !== 0, data, flowLength: payload.length };
      }
      case FRAME_HEADERS: {
        if (streamId === 0) throw error(PROTOCOL_ERROR, 'HEADERS on stream 0');
        // §6.2: the priority fields (5 bytes) are read and ignored (RFC 9113 §5.3.2 deprecates them).
        const priorityBytes = (flags & FLAG_PRIORITY) !== 0 ? 5 : 0;
        const block = (flags & FLAG_PADDED) !== 0 ? unpad(payload, priorityBytes, 'HEADERS') : sliceAfter(payload, priorityBytes, 'HEADERS');
        return this.startBlock(FRAME_HEADERS, streamId, flags, 0, block);
      }
      case FRAME_PRIORITY:
        if (streamId === 0) throw error(PROTOCOL_ERROR, 'PRIORITY on stream 0');
        // §6.3: "A PRIORITY frame with a length other than 5 octets MUST be treated as a stream
        // error of type FRAME_SIZE_ERROR."
        if (payload.length !== 5) return { type: 'stream-error', streamId, errorCode: FRAME_SIZE_ERROR, message: `PRIORITY frame of ${payload.length} bytes` };
        return { type: FRAME_PRIORITY, streamId };
      case FRAME_RST_STREAM:
        if (streamId === 0) throw error(PROTOCOL_ERROR, 'RST_STREAM on stream 0');
        if (payload.length !== 4) throw error(FRAME_SIZE_ERROR, `RST_STREAM frame of ${payload.length} bytes`);
        return { type: FRAME_RST_STREAM, streamId, errorCode: readUint32(payload, 0) };
      case FRAME_SETTINGS:
        return parseSettings(flags, streamId, payload);
      case FRAME_PUSH_PROMISE: {
        if (streamId === 0) throw error(PROTOCOL_ERROR, 'PUSH_PROMISE on stream 0');
        // §6.6: "A client cannot push. ... receipt of a PUSH_PROMISE frame [when push is
        // disabled] MUST [be treated] as a connection error of type PROTOCOL_ERROR."
        if (!this.pushEnabled) throw error(PROTOCOL_ERROR, 'PUSH_PROMISE although we sent SETTINGS_ENABLE_PUSH 0');
        const body = (flags & FLAG_PADDED) !== 0 ? unpad(payload, 0, 'PUSH_PROMISE') : payload;
        if (body.length < 4) throw error(FRAME_SIZE_ERROR, 'PUSH_PROMISE without a promised stream id');
        const promised = readUint32(body, 0) & 0x7fffffff;
        return this.startBlock(FRAME_PUSH_PROMISE, streamId, flags, promised, body.subarray(4));
      }
      case FRAME_PING:
        if (streamId !== 0) throw error(PROTOCOL_ERROR, `PING on stream ${streamId}`);
        if (payload.length !== 8) throw error(FRAME_SIZE_ERROR, `PING frame of ${payload.length} bytes`);
        return { type: FRAME_PING, ack: (flags & FLAG_ACK) !== 0, data: payload };
      case FRAME_GOAWAY:
        if (streamId !== 0) throw error(PROTOCOL_ERROR, `GOAWAY on stream ${streamId}`);
        if (payload.length < 8) throw error(FRAME_SIZE_ERROR, `GOAWAY frame of ${payload.length} bytes`);
        return { type: FRAME_GOAWAY, lastStreamId: readUint32(payload, 0) & 0x7fffffff, errorCode: readUint32(payload, 4), debug: payload.subarray(8) };
      case FRAME_WINDOW_UPDATE: {
        if (payload.length !== 4) throw error(FRAME_SIZE_ERROR, `WINDOW_UPDATE frame of ${payload.length} bytes`);
        const increment = readUint32(payload, 0) & 0x7fffffff;
        if (increment === 0) {
          // §6.9: "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a flow-control
          // window increment of 0 as a stream error of type PROTOCOL_ERROR; errors on the
          // connection flow-control window MUST be treated as a connection error."
          if (streamId === 0) throw error(PROTOCOL_ERROR, 'WINDOW_UPDATE with increment 0 on the connection');
          return { type: 'stream-error', streamId, errorCode: PROTOCOL_ERROR, message: 'WINDOW_UPDATE with increment 0' };
        }
        return { type: FRAME_WINDOW_UPDATE, streamId, increment };
      }
      case FRAME_CONTINUATION:
        // §6.10: a CONTINUATION not preceded by an open HEADERS, PUSH_PROMISE or CONTINUATION.
        throw error(PROTOCOL_ERROR, `CONTINUATION on stream ${streamId} without a field block to continue`);
      case FRAME_ALTSVC: {
        if (payload.length < 2) return undefined; // malformed extension frames are ignored
        const originLength = ((payload[0] as number) << 8) | (payload[1] as number);
        if (2 + originLength > payload.length) return undefined;
        const origin = Buffer.from(payload.buffer, payload.byteOffset + 2, originLength).toString('latin1');
        const value = Buffer.from(payload.buffer, payload.byteOffset + 2 + originLength, payload.length - 2 - originLength).toString('latin1');
        return { type: FRAME_ALTSVC, streamId, origin, value };
      }
      default:
        // §4.1: "Implementations MUST ignore and discard frames of unknown types."
        return undefined;
    }
  }

  private startBlock(type: PendingBlock['type'], streamId: number, flags: number, promisedStreamId: number, fragment: Uint8Array): Frame | undefined {
    if (fragment.length > this.maxHeaderBlockBytes) throw this.blockTooLarge(streamId, fragment.length);
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    if ((flags & FLAG_END_HEADERS) !== 0) return blockFrame(type, streamId, endStream, promisedStreamId, fragment);
    // Chunks pushed into the reader are never reused by the socket, so the view stays valid.
    this.pending = { type, streamId, endStream, promisedStreamId, parts: [fragment], bytes: fragment.length };
    return undefined;
  }

  private continueBlock(pending: PendingBlock, flags: number, fragment: Uint8Array): Frame | undefined {
    pending.bytes += fragment.length;
    // §10.5: a field block is bounded whatever number of CONTINUATION frames carries it.
    if (pending.bytes > this.maxHeaderBlockBytes) throw this.blockTooLarge(pending.streamId, pending.bytes);
    if (fragment.length > 0) pending.parts.push(fragment);
    if ((flags & FLAG_END_HEADERS) === 0) return undefined;
    this.pending = undefined;
    return blockFrame(pending.type, pending.streamId, pending.endStream, pending.promisedStreamId, concat(pending.parts, pending.bytes));
  }

  private blockTooLarge(streamId: number, bytes: number): MuxpoolError {
    return error(ENHANCE_YOUR_CALM, `field block on stream ${streamId} grew to ${bytes} bytes, over our limit ${this.maxHeaderBlockBytes}`);
  }

  /** The first `n` buffered bytes without consuming them (n ≤ 9: copies only across chunks). */
  private peek(n: number): Uint8Array {
    const first = this.chunks[0] as Uint8Array;
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = new Uint8Array(n);
    let filled = 0;
    let offset = this.head;
    for (const chunk of this.chunks) {
      const part = Math.min(n - filled, chunk.length - offset);
      out.set(chunk.subarray(offset, offset + part), filled);
      filled += part;
      offset = 0;
      if (filled === n) break;
    }
    return out;
  }

  private skip(n: number): void {
    this.take(n);
  }

  /** The next piece of a DATA frame in progress: what the first chunk holds of it (a view). */
  private nextDataPiece(): Frame | undefined {
    if (this.buffered === 0) return undefined;
    const first = this.chunks[0] as Uint8Array;
    const n = Math.min(this.dataLeft, first.length - this.head);
    const data = first.subarray(this.head, this.head + n);
    this.head += n;
    this.buffered -= n;
    if (this.head === first.length) {
      this.chunks.shift();
      this.head = 0;
    }
    this.dataLeft -= n;
    return { type: FRAME_DATA, streamId: this.dataStreamId, endStream: this.dataLeft === 0 && this.dataEndStream, data, flowLength: n };
  }

  /** Consumes `n` bytes: a view when they lie in one chunk, a copy otherwise. */
  private take(n: number): Uint8Array {
    this.buffered -= n;
    const first = this.chunks[0] as Uint8Array;
    const available = first.length - this.head;
    if (available >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0] as Uint8Array;
      const part = Math.min(n - filled, chunk.length - this.head);
      out.set(chunk.subarray(this.head, this.head + part), filled);
      filled += part;
      this.head += part;
      if (this.head === chunk.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    return out;
  }
}

function blockFrame(type: PendingBlock['type'], streamId: number, endStream: boolean, promisedStreamId: number, block: Uint8Array): Frame {
  if (type === FRAME_HEADERS) return { type, streamId, endStream, block };
  return { type, streamId, promisedStreamId, block };
}

function sliceAfter(payload: Uint8Array, skip: number, what: string): Uint8Array {
  if (payload.length < skip) throw error(FRAME_SIZE_ERROR, `${what} frame too short for its priority fields`);
  return payload.subarray(skip);
}

/** §6.1: strips the Pad Length byte, `extra` fixed bytes after it, and the padding. */
function unpad(payload: Uint8Array, extra: number, what: string): Uint8Array {
  if (payload.length < 1 + extra) throw error(FRAME_SIZE_ERROR, `padded ${what} frame too short`);
  const padLength = payload[0] as number;
  // §6.1: "If the length of the padding is the length of the frame payload or greater, the
  // recipient MUST treat this as a connection error of type PROTOCOL_ERROR."
  if (padLength > payload.length - 1 - extra) throw error(PROTOCOL_ERROR, `${what} padding of ${padLength} bytes does not fit its ${payload.length}-byte payload`);
  return payload.subarray(1 + extra, payload.length - padLength);
}

function parseSettings(flags: number, streamId: number, payload: Uint8Array): SettingsFrame {
  // §6.5: "If an endpoint receives a SETTINGS frame whose Stream Identifier field is anything
  // other than 0x00, the endpoint MUST respond with a connection error of type PROTOCOL_ERROR."
  if (streamId !== 0) throw error(PROTOCOL_ERROR, `SETTINGS on stream ${streamId}`);
  const ack = (flags & FLAG_ACK) !== 0;
  if (ack) {
    // §6.5: "Receipt of a SETTINGS frame with the ACK flag set and a length field value other
    // than 0 MUST be treated as a connection error of type FRAME_SIZE_ERROR."
    if (payload.length !== 0) throw error(FRAME_SIZE_ERROR, `SETTINGS ACK with ${payload.length} bytes of payload`);
    return { type: FRAME_SETTINGS, ack, settings: [] };
  }
  if (payload.length % 6 !== 0) throw error(FRAME_SIZE_ERROR, `SETTINGS frame of ${payload.length} bytes, not a multiple of 6`);
  const settings: Array<readonly [number, number]> = [];
  for (let i = 0; i < payload.length; i += 6) {
    const id = ((payload[i] as number) << 8) | (payload[i + 1] as number);
    const value = readUint32(payload, i + 2);
    switch (id) {
      case SETTINGS_ENABLE_PUSH:
        // §6.5.2: "A client MUST treat receipt of a SETTINGS frame with SETTINGS_ENABLE_PUSH
        // set to 1 as a connection error of type PROTOCOL_ERROR." (Any value other than 0 or 1
        // is one too.)
        if (value !== 0) throw error(PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value} from a server`);
        break;
      case SETTINGS_INITIAL_WINDOW_SIZE:
        // §6.5.2: "Values above the maximum flow-control window size of 2^31-1 MUST be treated
        // as a connection error of type FLOW_CONTROL_ERROR."
        if (value > MAX_WINDOW) throw error(FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} over 2^31-1`);
        break;
      case SETTINGS_MAX_FRAME_SIZE:
        // §6.5.2: "Values outside this range MUST be treated as a connection error of type PROTOCOL_ERROR."
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_ALLOWED_FRAME_SIZE) throw error(PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
        break;
      case SETTINGS_HEADER_TABLE_SIZE:
      case SETTINGS_MAX_CONCURRENT_STREAMS:
      case SETTINGS_MAX_HEADER_LIST_SIZE:
        break;
      default:
        continue; // §6.5.2: unknown settings are ignored
    }
    settings.push([id, value]);
  }
  return { type: FRAME_SETTINGS, ack, settings };
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset] as number) * 2 ** 24) +
    (((bytes[offset + 1] as number) << 16) | ((bytes[offset + 2] as number) << 8) | (bytes[offset + 3] as number))
  );
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

// -----------------------------------------------------------------------------------------
// Encoding

/** Writes a 9-byte frame header into `out` at `offset` (§4.1). */
export function writeFrameHeader(out: Uint8Array, offset: number, length: number, type: number, flags: number, streamId: number): void {
  out[offset] = (length >>> 16) & 0xff;
  out[offset + 1] = (length >>> 8) & 0xff;
  out[offset + 2] = length & 0xff;
  out[offset + 3] = type;
  out[offset + 4] = flags;
  out[offset + 5] = (streamId >>> 24) & 0x7f;
  out[offset + 6] = (streamId >>> 16) & 0xff;
  out[offset + 7] = (streamId >>> 8) & 0xff;
  out[offset + 8] = streamId & 0xff;
}

/** One whole frame: header and payload in a new buffer. */
export function encodeFrame(type: number, flags: number, streamId: number, payload: Uint8Array = EMPTY): Uint8Array {
  // Every byte is written below: no zero-fill, and small frames come from Buffer's pool (a
  // Buffer is also what the socket takes without wrapping it again).
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

function uint32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  writeUint32(out, 0, value);
  return out;
}

function writeUint32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = (value >>> 24) & 0xff;
  out[offset + 1] = (value >>> 16) & 0xff;
  out[offset + 2] = (value >>> 8) & 0xff;
  out[offset + 3] = value & 0xff;
}

/** A DATA frame; `padding` bytes of padding when given (§6.1). */
export function encodeData(streamId: number, data: Uint8Array, endStream: boolean, padding?: number): Uint8Array {
  const flags = endStream ? FLAG_END_STREAM : 0;
  if (padding === undefined) return encodeFrame(FRAME_DATA, flags, streamId, data);
  return encodeFrame(FRAME_DATA, flags | FLAG_PADDED, streamId, padded(data, padding));
}

function padded(body: Uint8Array, padding: number): Uint8Array {
  const out = new Uint8Array(1 + body.length + padding);
  out[0] = padding;
  out.set(body, 1);
  return out;
}

/**
 * A field block as HEADERS followed by as many CONTINUATION frames as `maxFrameSize` requires
 * (§4.3: a field block is a contiguous sequence of frames), concatenated.
 */
export function encodeHeaders(streamId: number, block: Uint8Array, endStream: boolean, maxFrameSize: number): Uint8Array {
  const frames = block.length <= maxFrameSize ? 1 : Math.ceil(block.length / maxFrameSize);
  // Every byte is written below (see encodeFrame).
  const out = Buffer.allocUnsafe(block.length + frames * FRAME_HEADER_BYTES);
  let offset = 0;
  for (let i = 0; i < frames; i++) {
    const start = i * maxFrameSize;
    const end = Math.min(block.length, start + maxFrameSize);
    const last = i === frames - 1;
    const type = i === 0 ? FRAME_HEADERS : FRAME_CONTINUATION;
    const flags = (last ? FLAG_END_HEADERS : 0) | (i === 0 && endStream ? FLAG_END_STREAM : 0);
    writeFrameHeader(out, offset, end - start, type, flags, streamId);
    out.set(block.subarray(start, end), offset + FRAME_HEADER_BYTES);
    offset += FRAME_HEADER_BYTES + end - start;
  }
  return out;
}

export function encodeSettings(settings: ReadonlyArray<readonly [number, number]>): Uint8Array {
  const payload = new Uint8Array(settings.length * 6);
  settings.forEach(([id, value], i) => {
    payload[i * 6] = id >>> 8;
    payload[i * 6 + 1] = id & 0xff;
    writeUint32(payload, i * 6 + 2, value);
  });
  return encodeFrame(FRAME_SETTINGS, 0, 0, payload);
}

export function encodeSettingsAck(): Uint8Array {
  return encodeFrame(FRAME_SETTINGS, FLAG_ACK, 0);
}

export function encodePing(data: Uint8Array, ack: boolean): Uint8Array {
  return encodeFrame(FRAME_PING, ack ? FLAG_ACK : 0, 0, data);
}

export function encodeGoaway(lastStreamId: number, errorCode: number, debug: Uint8Array = EMPTY): Uint8Array {
  const payload = new Uint8Array(8 + debug.length);
  writeUint32(payload, 0, lastStreamId & 0x7fffffff);
  writeUint32(payload, 4, errorCode);
  payload.set(debug, 8);
  return encodeFrame(FRAME_GOAWAY, 0, 0, payload);
}

export function encodeRstStream(streamId: number, errorCode: number): Uint8Array {
  return encodeFrame(FRAME_RST_STREAM, 0, streamId, uint32(errorCode));
}

export function encodeWindowUpdate(streamId: number, increment: number): Uint8Array {
  return encodeFrame(FRAME_WINDOW_UPDATE, 0, streamId, uint32(increment & 0x7fffffff));
}

export function encodePriority(streamId: number, dependency: number, weight: number): Uint8Array {
  const payload = new Uint8Array(5);
  writeUint32(payload, 0, dependency);
  payload[4] = weight;
  return encodeFrame(FRAME_PRIORITY, 0, streamId, payload);
}

export function encodePushPromise(streamId: number, promisedStreamId: number, block: Uint8Array): Uint8Array {
  const payload = new Uint8Array(4 + block.length);
  writeUint32(payload, 0, promisedStreamId);
  payload.set(block, 4);
  return encodeFrame(FRAME_PUSH_PROMISE, FLAG_END_HEADERS, streamId, payload);
}

export function encodeAltSvc(streamId: number, origin: string, value: string): Uint8Array {
  const originBytes = Buffer.from(origin, 'latin1');
  const valueBytes = Buffer.from(value, 'latin1');
  const payload = new Uint8Array(2 + originBytes.length + valueBytes.length);
  payload[0] = originBytes.length >>> 8;
  payload[1] = originBytes.length & 0xff;
  payload.set(originBytes, 2);
  payload.set(valueBytes, 2 + originBytes.length);
  return encodeFrame(FRAME_ALTSVC, 0, streamId, payload);
}
