/**
 * From quiche's failures to muxpool's error codes.
 *
 * The binding throws `Error` whose message is the name of quiche's `Error` variant, with the
 * stream error code in parentheses where it has one: `StreamLimit`, `TlsFail`,
 * `StreamStopped(77)`, `StreamReset(8)`, `InvalidStreamState(4)`. A connection's
 * CONNECTION_CLOSE comes separately, as `{ isApp, errorCode, reason }`.
 */
import { MuxpoolError, type ErrorOrigin } from '../errors.js';
import type { NativeConnectionError } from './native.js';

export interface NativeFailure {
  /** quiche's error name, e.g. `StreamStopped`. */
  name: string;
  /** The number in parentheses (an application error code or a stream id), if any. */
  arg: number | undefined;
}

const NATIVE_ERROR = /^([A-Za-z]+)(?:\((\d+)\))?$/;

/** The quiche error inside a thrown binding error, or undefined for anything else. */
export function nativeFailure(err: unknown): NativeFailure | undefined {
  if (!(err instanceof Error)) return undefined;
  const match = NATIVE_ERROR.exec(err.message);
  if (match === null) return undefined;
  return { name: match[1] as string, arg: match[2] === undefined ? undefined : Number(match[2]) };
}

/** True when `err` is the quiche error `name`. */
export function isNativeFailure(err: unknown, name: string): boolean {
  return nativeFailure(err)?.name === name;
}

/** RFC 9000 §20.1 transport error names, by code. */
const TRANSPORT_ERRORS = [
  'NO_ERROR',
  'INTERNAL_ERROR',
  'CONNECTION_REFUSED',
  'FLOW_CONTROL_ERROR',
  'STREAM_LIMIT_ERROR',
  'STREAM_STATE_ERROR',
  'FINAL_SIZE_ERROR',
  'FRAME_ENCODING_ERROR',
  'TRANSPORT_PARAMETER_ERROR',
  'CONNECTION_ID_LIMIT_ERROR',
  'PROTOCOL_VIOLATION',
  'INVALID_TOKEN',
  'APPLICATION_ERROR',
  'CRYPTO_BUFFER_EXCEEDED',
  'KEY_UPDATE_ERROR',
  'AEAD_LIMIT_REACHED',
  'NO_VIABLE_PATH',
] as const;

/** RFC 9001 §4.8: a TLS alert is carried as the transport error 0x0100 + alert. */
export const CRYPTO_ERROR_BASE = 0x100;
const CRYPTO_ERROR_END = 0x1ff;

/** RFC 8446 §6.2 alerts that mean "the certificate was not accepted". */
const CERTIFICATE_ALERTS = new Set([
  42, // bad_certificate (BoringSSL's answer to a host name mismatch, among others)
  43, // unsupported_certificate
  44, // certificate_revoked
  45, // certificate_expired
  46, // certificate_unknown
  48, // unknown_ca
]);

/**
 * Alerts a server sends about the client's certificate: the certificate ones, access_denied
 * (49) and certificate_required (116, RFC 8446 §4.4.2.4: the client sent none).
 */
const CLIENT_CERTIFICATE_ALERTS = new Set([...CERTIFICATE_ALERTS, 49, 116]);

export const TLS_ALERT_NO_APPLICATION_PROTOCOL = 120;

/** The TLS alert inside a crypto error code, or undefined when it is not one. */
export function tlsAlertOf(errorCode: number): number | undefined {
  return errorCode >= CRYPTO_ERROR_BASE && errorCode <= CRYPTO_ERROR_END ? errorCode - CRYPTO_ERROR_BASE : undefined;
}

/** `PROTOCOL_VIOLATION (0xa)`, `TLS alert 48 (0x130)`, `application error 0x10c`. */
export function describeCloseCode(err: Pick<NativeConnectionError, 'isApp' | 'errorCode'>): string {
  const hex = `0x${err.errorCode.toString(16)}`;
  if (err.isApp) return `application error ${hex}`;
  const alert = tlsAlertOf(err.errorCode);
  if (alert !== undefined) return `TLS alert ${alert} (${hex})`;
  return `${TRANSPORT_ERRORS[err.errorCode] ?? 'unknown transport error'} (${hex})`;
}

export function reasonText(reason: Uint8Array): string {
  return Buffer.from(reason.buffer, reason.byteOffset, reason.byteLength).toString('utf8');
}

export interface CloseErrorContext {
  origin: ErrorOrigin;
  /** The host name or IP the certificate was checked against, for messages. */
  serverName: string | undefined;
  /** True when our own check found that the peer's certificate does not cover `serverName`. */
  nameMismatch: boolean;
  /** Our side of the connection: a client's certificate is the one a server's alert judges. */
  role?: 'client' | 'server';
}

/**
 * The error a CONNECTION_CLOSE stands for. The caller decides whether a close is a failure at
 * all (an application close after the handshake usually is not).
 */
export function closeError(err: NativeConnectionError, context: CloseErrorContext): MuxpoolError {
  const described = describeCloseCode(err);
  const reason = reasonText(err.reason);
  const suffix = reason === '' ? '' : `: ${reason}`;
  const options = { wireCode: err.errorCode, origin: context.origin };
  const alert = err.isApp ? undefined : tlsAlertOf(err.errorCode);
  if (alert !== undefined) {
    // Only our own certificate alerts are about the server's certificate; the same alert from
    // the peer means it refused something of ours.
    if (context.origin === 'local' && CERTIFICATE_ALERTS.has(alert)) {
      if (context.nameMismatch) {
        return new MuxpoolError(
          'MUXPOOL_ERR_TLS_HOSTNAME',
          `the server certificate does not cover ${context.serverName ?? 'the host'} (${described})`,
          options,
        );
      }
      return new MuxpoolError('MUXPOOL_ERR_TLS_CERT', `the server certificate is not trusted (${described})`, options);
    }
    if (context.origin === 'remote' && context.role === 'client' && CLIENT_CERTIFICATE_ALERTS.has(alert)) {
      return new MuxpoolError('MUXPOOL_ERR_TLS_CLIENT_CERT', `the server refused our client certificate (${described}${suffix})`, {
        ...options,
        maybeProcessed: false,
      });
    }
    const who = context.origin === 'local' ? 'we aborted' : 'the peer aborted';
    return new MuxpoolError('MUXPOOL_ERR_TLS', `${who} the QUIC TLS handshake with ${described}${suffix}`, options);
  }
  const who = context.origin === 'local' ? 'we' : 'the peer';
  return new MuxpoolError('MUXPOOL_ERR_QUIC', `${who} closed the QUIC connection with ${described}${suffix}`, options);
}

/** Wraps an unexpected binding error (never a peer's fault we could name) as MUXPOOL_ERR_QUIC. */
export function nativeError(action: string, cause: unknown): MuxpoolError {
  const failure = nativeFailure(cause);
  const name = failure === undefined ? String(cause) : failure.name;
  return new MuxpoolError('MUXPOOL_ERR_QUIC', `quiche failed to ${action}: ${name}`, { cause });
}
