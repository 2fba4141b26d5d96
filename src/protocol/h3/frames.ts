/**
 * HTTP/3 frames, stream types and settings (RFC 9114 §6, §7): constants, encoders, and parsers
 * for the frame payloads that carry fields (SETTINGS, GOAWAY).
 *
 * Every frame is Type (varint), Length (varint), Payload (§7.1).
 */
import { internalError } from '../../errors.js';
import { H3_FRAME_ERROR, H3_SETTINGS_ERROR, h3Error } from './codes.js';
import { readVarintAt, varintLength, varintLengthFromFirstByte, writeVarint } from './varint.js';

export * from './codes.js';

// Frame types (RFC 9114 §7.2, §11.2.1).
export const FRAME_DATA = 0x00;
export const FRAME_HEADERS = 0x01;
export const FRAME_CANCEL_PUSH = 0x03;
export const FRAME_SETTINGS = 0x04;
export const FRAME_PUSH_PROMISE = 0x05;
export const FRAME_GOAWAY = 0x07;
export const FRAME_MAX_PUSH_ID = 0x0d;

/**
 * Frame types HTTP/2 used that have no HTTP/3 equivalent (PRIORITY, PING, WINDOW_UPDATE,
 * CONTINUATION). RFC 9114 §7.2.8: "These frame types MUST NOT be sent, and their receipt MUST
 * be treated as a connection error of type H3_FRAME_UNEXPECTED."
 */
export function isHttp2OnlyFrameType(type: number): boolean {
  return type === 0x02 || type === 0x06 || type === 0x08 || type === 0x09;
}

// Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2).
export const STREAM_TYPE_CONTROL = 0x00;
export const STREAM_TYPE_PUSH = 0x01;
export const STREAM_TYPE_QPACK_ENCODER = 0x02;
export const STREAM_TYPE_QPACK_DECODER = 0x03;

// Setting identifiers (RFC 9114 §7.2.4.1, RFC 9204 §5).
export const SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0x01;
export const SETTINGS_MAX_FIELD_SECTION_SIZE = 0x06;
export const SETTINGS_QPACK_BLOCKED_STREAMS = 0x07;

/**
 * Setting identifiers HTTP/2 defined with no HTTP/3 counterpart (ENABLE_PUSH,
 * MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE). RFC 9114 §7.2.4.1: "These
 * reserved settings MUST NOT be sent, and their receipt MUST be treated as a connection error of
 * type H3_SETTINGS_ERROR."
 */
export function isHttp2OnlySetting(id: number): boolean {
  return id >= 0x02 && id <= 0x05;
}

/** A frame's Type and Length fields. */
export function encodeFrameHeader(type: number, length: number): Uint8Array {
  const out = new Uint8Array(varintLength(type) + varintLength(length));
  writeVarint(out, writeVarint(out, 0, type), length);
  return out;
}

/** A whole frame: header and payload in one buffer. */
export function encodeFrame(type: number, payload: Uint8Array): Uint8Array {
  const headerLength = varintLength(type) + varintLength(payload.length);
  const out = new Uint8Array(headerLength + payload.length);
  writeVarint(out, writeVarint(out, 0, type), payload.length);
  out.set(payload, headerLength);
  return out;
}

/**
 * What ends a request or response stream: an empty frame of a reserved type (0x21, RFC 9114
 * §7.2.8, which every peer must ignore), written with the FIN, instead of a FIN alone. A FIN
 * written after the last data goes out in an empty STREAM frame, and under packet loss quiche
 * 0.18 lost such FINs: the peer never saw the stream end, while the sender's quiche counted the
 * stream complete and collected it (an 8 MiB echo over a loaded loopback hung about once in 40
 * runs; with this frame, none in 270). quiche's `SendBuf::retransmit` skips a zero-length
 * range, and `is_complete` looks at acknowledged bytes, not at the FIN. Two bytes make the FIN
 * ride with data, and quiche retransmits lost data with its FIN.
 */
export const END_OF_STREAM_FRAME: Uint8Array = Uint8Array.of(0x21, 0x00);

/** A HEADERS frame around an encoded field section. */
export function encodeHeadersFrame(block: Uint8Array): Uint8Array {
  return encodeFrame(FRAME_HEADERS, block);
}

/** The header of a DATA frame; the caller writes `length` payload bytes after it, uncopied. */
export function encodeDataFrameHeader(length: number): Uint8Array {
  return encodeFrameHeader(FRAME_DATA, length);
}

/** A SETTINGS frame: identifier and value pairs (§7.2.4.1), in the map's order. */
export function encodeSettingsFrame(settings: Map<number, number>): Uint8Array {
  let payloadLength = 0;
  for (const [id, value] of settings) payloadLength += varintLength(id) + varintLength(value);
  const out = new Uint8Array(varintLength(FRAME_SETTINGS) + varintLength(payloadLength) + payloadLength);
  let pos = writeVarint(out, writeVarint(out, 0, FRAME_SETTINGS), payloadLength);
  for (const [id, value] of settings) {
    if (isHttp2OnlySetting(id)) throw internalError(`setting 0x${id.toString(16)} is reserved in HTTP/3`);
    pos = writeVarint(out, writeVarint(out, pos, id), value);
  }
  return out;
}

/** A GOAWAY frame (§7.2.6): a stream ID from a server, a push ID from a client. */
export function encodeGoawayFrame(id: number): Uint8Array {
  return encodeSingleVarintFrame(FRAME_GOAWAY, id);
}

/** A MAX_PUSH_ID frame (§7.2.7). */
export function encodeMaxPushIdFrame(pushId: number): Uint8Array {
  return encodeSingleVarintFrame(FRAME_MAX_PUSH_ID, pushId);
}

/** A CANCEL_PUSH frame (§7.2.3). */
export function encodeCancelPushFrame(pushId: number): Uint8Array {
  return encodeSingleVarintFrame(FRAME_CANCEL_PUSH, pushId);
}

function encodeSingleVarintFrame(type: number, value: number): Uint8Array {
  const length = varintLength(value);
  const out = new Uint8Array(varintLength(type) + varintLength(length) + length);
  writeVarint(out, writeVarint(out, writeVarint(out, 0, type), length), value);
  return out;
}

/** The stream type that opens a unidirectional stream (§6.2). */
export function encodeStreamType(type: number): Uint8Array {
  const out = new Uint8Array(varintLength(type));
  writeVarint(out, 0, type);
  return out;
}

function frameError(message: string): never {
  // RFC 9114 §7.1: "A frame payload that contains additional bytes after the identified fields
  // or a frame payload that terminates before the end of the identified fields MUST be treated
  // as a connection error of type H3_FRAME_ERROR."
  throw h3Error(H3_FRAME_ERROR, message);
}

/**
 * The pairs of a SETTINGS payload. Unknown identifiers are kept (the caller ignores them,
 * §7.2.4); identifiers above 2^53 - 1 (only reserved ones can be that large) are skipped, and
 * values above 2^53 - 1 are read as Number.MAX_SAFE_INTEGER, which is as good as unlimited.
 */
export function parseSettings(payload: Uint8Array): Map<number, number> {
  const settings = new Map<number, number>();
  let pos = 0;
  while (pos < payload.length) {
    const idLength = varintLengthFromFirstByte(payload[pos] as number);
    if (pos + idLength >= payload.length) frameError('SETTINGS payload ends inside a setting');
    const id = readVarintAt(payload, pos, idLength);
    pos += idLength;
    const valueLength = varintLengthFromFirstByte(payload[pos] as number);
    if (pos + valueLength > payload.length) frameError('SETTINGS payload ends inside a setting value');
    const value = Math.min(readVarintAt(payload, pos, valueLength), Number.MAX_SAFE_INTEGER);
    pos += valueLength;
    if (id > Number.MAX_SAFE_INTEGER) continue;
    if (isHttp2OnlySetting(id)) {
      // §7.2.4.1: HTTP/2 settings with no HTTP/3 meaning are a connection error.
      throw h3Error(H3_SETTINGS_ERROR, `SETTINGS carries the HTTP/2 setting 0x${id.toString(16)}`);
    }
    if (settings.has(id)) {
      // §7.2.4: "The same setting identifier MUST NOT occur more than once in the SETTINGS
      // frame. A receiver MAY treat the presence of duplicate setting identifiers as a
      // connection error of type H3_SETTINGS_ERROR."
      throw h3Error(H3_SETTINGS_ERROR, `SETTINGS carries setting 0x${id.toString(16)} twice`);
    }
    settings.set(id, value);
  }
  return settings;
}

/**
 * The identifier in a GOAWAY payload (§7.2.6): exactly one varint. Values above 2^53 - 1 are
 * legal (a graceful shutdown may announce 2^62 - 4, §5.2) and come back rounded.
 */
export function parseGoaway(payload: Uint8Array): number {
  return parseSingleVarint(payload, 'GOAWAY');
}

/** The push ID in a MAX_PUSH_ID or CANCEL_PUSH payload (§7.2.7, §7.2.3). */
export function parsePushId(payload: Uint8Array, frameName: string): number {
  return parseSingleVarint(payload, frameName);
}

function parseSingleVarint(payload: Uint8Array, frameName: string): number {
  if (payload.length === 0) frameError(`${frameName} payload is empty`);
  const length = varintLengthFromFirstByte(payload[0] as number);
  if (length !== payload.length) frameError(`${frameName} payload is ${payload.length} bytes, its varint ${length}`);
  return readVarintAt(payload, 0, length);
}
