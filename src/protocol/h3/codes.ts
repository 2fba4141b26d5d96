/**
 * HTTP/3 and QPACK error codes (RFC 9114 §8.1, RFC 9204 §6) and the errors the codecs raise.
 * Every error a codec raises while reading the peer's bytes has `origin: 'remote'` and the wire
 * code the connection (or stream) must be closed with.
 */
import { MuxpoolError } from '../../errors.js';

/** No error: closing the connection or stream without a problem. */
export const H3_NO_ERROR = 0x100;
export const H3_GENERAL_PROTOCOL_ERROR = 0x101;
export const H3_INTERNAL_ERROR = 0x102;
export const H3_STREAM_CREATION_ERROR = 0x103;
export const H3_CLOSED_CRITICAL_STREAM = 0x104;
export const H3_FRAME_UNEXPECTED = 0x105;
export const H3_FRAME_ERROR = 0x106;
export const H3_EXCESSIVE_LOAD = 0x107;
export const H3_ID_ERROR = 0x108;
export const H3_SETTINGS_ERROR = 0x109;
export const H3_MISSING_SETTINGS = 0x10a;
export const H3_REQUEST_REJECTED = 0x10b;
export const H3_REQUEST_CANCELLED = 0x10c;
export const H3_REQUEST_INCOMPLETE = 0x10d;
export const H3_MESSAGE_ERROR = 0x10e;
export const H3_CONNECT_ERROR = 0x10f;
export const H3_VERSION_FALLBACK = 0x110;
export const QPACK_DECOMPRESSION_FAILED = 0x200;
export const QPACK_ENCODER_STREAM_ERROR = 0x201;
export const QPACK_DECODER_STREAM_ERROR = 0x202;

const ERROR_DESCRIPTIONS = new Map<number, string>([
  [H3_NO_ERROR, 'H3_NO_ERROR: no error'],
  [H3_GENERAL_PROTOCOL_ERROR, 'H3_GENERAL_PROTOCOL_ERROR: the peer violated the protocol'],
  [H3_INTERNAL_ERROR, 'H3_INTERNAL_ERROR: an internal error in the HTTP stack'],
  [H3_STREAM_CREATION_ERROR, 'H3_STREAM_CREATION_ERROR: the peer created a stream that will not be accepted'],
  [H3_CLOSED_CRITICAL_STREAM, 'H3_CLOSED_CRITICAL_STREAM: a stream required by the connection was closed or reset'],
  [H3_FRAME_UNEXPECTED, 'H3_FRAME_UNEXPECTED: a frame not permitted in the current state or on the current stream'],
  [H3_FRAME_ERROR, 'H3_FRAME_ERROR: a frame that fails its layout requirements or has an invalid size'],
  [H3_EXCESSIVE_LOAD, 'H3_EXCESSIVE_LOAD: the peer exhibits behaviour that might generate excessive load'],
  [H3_ID_ERROR, 'H3_ID_ERROR: a stream ID or push ID was used incorrectly'],
  [H3_SETTINGS_ERROR, 'H3_SETTINGS_ERROR: an error in the payload of a SETTINGS frame'],
  [H3_MISSING_SETTINGS, 'H3_MISSING_SETTINGS: no SETTINGS frame at the beginning of the control stream'],
  [H3_REQUEST_REJECTED, 'H3_REQUEST_REJECTED: the server rejected the request without any application processing'],
  [H3_REQUEST_CANCELLED, 'H3_REQUEST_CANCELLED: the request or its response was cancelled'],
  [H3_REQUEST_INCOMPLETE, 'H3_REQUEST_INCOMPLETE: the stream terminated without a fully formed request'],
  [H3_MESSAGE_ERROR, 'H3_MESSAGE_ERROR: a malformed HTTP message'],
  [H3_CONNECT_ERROR, 'H3_CONNECT_ERROR: the CONNECT tunnel was reset or abnormally closed'],
  [H3_VERSION_FALLBACK, 'H3_VERSION_FALLBACK: the request should be retried over HTTP/1.1'],
  [QPACK_DECOMPRESSION_FAILED, 'QPACK_DECOMPRESSION_FAILED: a field section could not be interpreted'],
  [QPACK_ENCODER_STREAM_ERROR, 'QPACK_ENCODER_STREAM_ERROR: an encoder instruction could not be interpreted'],
  [QPACK_DECODER_STREAM_ERROR, 'QPACK_DECODER_STREAM_ERROR: a decoder instruction could not be interpreted'],
]);

/**
 * True for the reserved "greasing" values 0x1f * N + 0x21 (RFC 9114 §7.2.8 frame types, §6.2.3
 * stream types, §7.2.4.1 setting ids, §8.1 error codes). They carry no meaning and are ignored.
 */
export function isReservedType(value: number): boolean {
  return value >= 0x21 && Number.isSafeInteger(value) && (value - 0x21) % 0x1f === 0;
}

/** `H3_FRAME_UNEXPECTED (0x105): a frame not permitted …`, for error messages and logs. */
export function describeH3Error(code: number): string {
  const hex = `0x${code.toString(16)}`;
  const known = ERROR_DESCRIPTIONS.get(code);
  if (known !== undefined) {
    const colon = known.indexOf(':');
    return `${known.slice(0, colon)} (${hex})${known.slice(colon)}`;
  }
  // RFC 9114 §8.1, §9: unknown codes (the reserved ones exercise this) are equivalent to
  // H3_NO_ERROR; we only name them here and leave the meaning to the caller.
  if (isReservedType(code)) return `reserved error code (${hex})`;
  return `unknown error code (${hex})`;
}

/** A connection (or stream) error the peer caused, carrying the HTTP/3 wire code. */
export function h3Error(wireCode: number, message: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_H3_PROTOCOL', `HTTP/3 ${message}`, { wireCode, origin: 'remote' });
}

/** A QPACK error the peer caused; QPACK_DECOMPRESSION_FAILED unless told otherwise. */
export function qpackError(message: string, wireCode: number = QPACK_DECOMPRESSION_FAILED): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_QPACK', `QPACK ${message}`, { wireCode, origin: 'remote' });
}
