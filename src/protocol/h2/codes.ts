/**
 * HTTP/2 error codes (RFC 9113 §7) and the typed errors the codecs and the engine raise. A
 * connection error carries the wire code and who broke the rule: `remote` when the peer's bytes
 * broke it, `local` when we did (or gave up on our side).
 */
import { type ErrorOrigin, MuxpoolError } from '../../errors.js';

export const NO_ERROR = 0x0;
export const PROTOCOL_ERROR = 0x1;
export const INTERNAL_ERROR = 0x2;
export const FLOW_CONTROL_ERROR = 0x3;
export const SETTINGS_TIMEOUT = 0x4;
export const STREAM_CLOSED = 0x5;
export const FRAME_SIZE_ERROR = 0x6;
export const REFUSED_STREAM = 0x7;
export const CANCEL = 0x8;
export const COMPRESSION_ERROR = 0x9;
export const CONNECT_ERROR = 0xa;
export const ENHANCE_YOUR_CALM = 0xb;
export const INADEQUATE_SECURITY = 0xc;
export const HTTP_1_1_REQUIRED = 0xd;

const NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

/** `PROTOCOL_ERROR (0x1)`; RFC 9113 §7: unknown codes have no special meaning, so only named. */
export function describeH2Error(code: number): string {
  return `${NAMES[code] ?? 'unknown error code'} (0x${code.toString(16)})`;
}

/**
 * A connection error (RFC 9113 §5.4.1): the whole connection ends with GOAWAY(`wireCode`).
 * `origin` says who broke the rule.
 */
export function h2ConnectionError(wireCode: number, message: string, origin: ErrorOrigin = 'remote'): MuxpoolError {
  const who = origin === 'remote' ? 'the peer' : 'we';
  return new MuxpoolError('MUXPOOL_ERR_H2_PROTOCOL', `HTTP/2 connection error ${describeH2Error(wireCode)}: ${message} (${who} broke the rule)`, {
    wireCode,
    origin,
    maybeProcessed: true,
  });
}
