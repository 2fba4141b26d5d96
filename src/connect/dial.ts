/**
 * Dialing TCP and TLS: Node's happy eyeballs (`autoSelectFamily`), a deadline that covers the
 * TCP connect and the TLS handshake, ALPN, SNI, TLS session resumption, and errors mapped to
 * stable codes. Nothing leaks on failure: the socket is destroyed and the timer cleared.
 */
import { isIP } from 'node:net';
import net from 'node:net';
import tls from 'node:tls';
import { MuxpoolError } from '../errors.js';
import type { TlsIdentity } from '../pool/key.js';
import type { TlsSessionCache } from './session-cache.js';
import { clientSecureContext } from './trust.js';
import { setTimerSafe } from '../core/durations.js';

export interface DialOptions {
  host: string;
  port: number;
  isHttps: boolean;
  tls: TlsIdentity | undefined;
  /** ALPN protocols to offer, best first. */
  alpn: string[];
  connectTimeoutMs: number;
  signal?: AbortSignal | undefined;
  sessionCache?: TlsSessionCache | undefined;
  /** The pool key's id: the session cache and secure context are per key. */
  keyId: string;
  /** Resolves the host; the system resolver when absent. */
  lookup?: net.LookupFunction | undefined;
}

export interface DialResult {
  socket: net.Socket | tls.TLSSocket;
  alpn: 'h2' | 'http/1.1' | undefined;
  resumed: boolean;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  handshakeMs: number;
  /** Where the dial's time went (`res.timings`, `-w`): name lookup, TCP connect, TLS handshake. */
  phases: DialPhases;
}

/** A dial's phases in milliseconds; 0 for a phase that did not happen (an IP literal needs no lookup). */
export interface DialPhases {
  dnsMs: number;
  connectMs: number;
  /** TLS, or the QUIC handshake (which includes its connect); 0 over cleartext TCP. */
  handshakeMs: number;
}

const CERT_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REJECTED',
]);

/** Maps a Node socket/TLS error to our codes. `phase` tells connect failures from later ones. */
export function mapSocketError(err: unknown, phase: 'connect' | 'request'): MuxpoolError {
  if (err instanceof MuxpoolError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const message = err instanceof Error ? err.message : String(err);
  const maybeProcessed = phase === 'request';
  const make = (ours: ConstructorParameters<typeof MuxpoolError>[0], text: string): MuxpoolError =>
    new MuxpoolError(ours, text, { cause: err, maybeProcessed });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NONAME' || code === 'EAI_NODATA') {
    return make('MUXPOOL_ERR_DNS', `cannot resolve the host: ${message}`);
  }
  if (code === 'ECONNREFUSED') return make('MUXPOOL_ERR_CONNECT_REFUSED', `connection refused: ${message}`);
  if (code === 'ECONNRESET') return make('MUXPOOL_ERR_CONNECTION_RESET', `connection reset by peer: ${message}`);
  if (code === 'EPIPE') return make('MUXPOOL_ERR_CONNECTION_CLOSED', `connection closed by peer: ${message}`);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return make('MUXPOOL_ERR_TLS_HOSTNAME', message);
  if (CERT_ERRORS.has(code)) return make('MUXPOOL_ERR_TLS_CERT', `certificate not trusted (${code}): ${message}`);
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || /SSL|TLS/.test(message)) {
    return make('MUXPOOL_ERR_TLS', `TLS failed: ${message}`);
  }
  return make(phase === 'connect' ? 'MUXPOOL_ERR_CONNECT' : 'MUXPOOL_ERR_CONNECTION_CLOSED', message);
}

export function dialTcp(options: DialOptions): Promise<DialResult> {
  const { host, port, signal } = options;
  if (signal?.aborted === true) {
    return Promise.reject(
      signal.reason instanceof MuxpoolError
        ? signal.reason
        : new MuxpoolError('MUXPOOL_ERR_ABORTED', 'dial aborted', { cause: signal.reason, maybeProcessed: false }),
    );
  }
  const started = performance.now();
  return new Promise<DialResult>((resolve, reject) => {
    let socket: net.Socket | tls.TLSSocket;
    let settled = false;
    // When the name was resolved and the TCP connection came up: 0 until they happen.
    let resolvedAt = 0;
    let connectedAt = 0;
    const identity = options.tls;
    const readyEvent = options.isHttps ? 'secureConnect' : 'connect';
    const finish = (err: MuxpoolError | undefined): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      signal?.removeEventListener('abort', onAbort);
      socket.off(readyEvent, onReady);
      socket.off('error', onError);
      if (err !== undefined) {
        socket.destroy();
        reject(err);
        return;
      }
      const tlsSocket = options.isHttps ? (socket as tls.TLSSocket) : undefined;
      const alpn = tlsSocket?.alpnProtocol;
      const readyAt = performance.now();
      if (connectedAt === 0) connectedAt = readyAt;
      const connectStart = resolvedAt === 0 ? started : resolvedAt;
      resolve({
        socket,
        alpn: alpn === 'h2' || alpn === 'http/1.1' ? alpn : undefined,
        resumed: tlsSocket?.isSessionReused() ?? false,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        handshakeMs: readyAt - started,
        phases: {
          dnsMs: resolvedAt === 0 ? 0 : resolvedAt - started,
          connectMs: connectedAt - connectStart,
          handshakeMs: readyAt - connectedAt,
        },
      });
    };
    const onReady = (): void => finish(undefined);
    const onError = (err: Error): void => {
      if (options.isHttps && options.sessionCache !== undefined) options.sessionCache.delete(options.keyId);
      finish(mapSocketError(err, 'connect'));
    };
    const onAbort = (): void =>
      finish(
        signal?.reason instanceof MuxpoolError
          ? signal.reason
          : new MuxpoolError('MUXPOOL_ERR_ABORTED', 'dial aborted', { cause: signal?.reason, maybeProcessed: false }),
      );
    // setTimerSafe: connectTimeoutMs may be Infinity (no deadline).
    const timer = setTimerSafe(
      () =>
        finish(
          new MuxpoolError(
            'MUXPOOL_ERR_CONNECT_TIMEOUT',
            `connecting to ${host}:${port} took longer than ${options.connectTimeoutMs} ms`,
            { maybeProcessed: false },
          ),
        ),
      options.connectTimeoutMs,
      true,
    );
    try {
      if (options.isHttps) {
        const servername = identity?.servername ?? (isIP(host) === 0 ? host : undefined);
        const session = options.sessionCache?.get(options.keyId);
        const connectOptions: tls.ConnectionOptions & net.TcpSocketConnectOpts = {
          host,
          port,
          // RFC 6066 §3: IP literals are not sent as SNI.
          ...(servername !== undefined && isIP(servername) === 0 ? { servername } : {}),
          ALPNProtocols: options.alpn,
          secureContext: clientSecureContext(options.keyId, identity),
          rejectUnauthorized: identity?.rejectUnauthorized !== false,
          ...(session !== undefined ? { session } : {}),
          ...(servername !== undefined
            ? { checkServerIdentity: (_name: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(servername, cert) }
            : {}),
          autoSelectFamily: true,
          noDelay: true,
          ...(options.lookup !== undefined ? { lookup: options.lookup } : {}),
        };
        socket = tls.connect(connectOptions);
        const cache = options.sessionCache;
        if (cache !== undefined) {
          // TLS 1.3 tickets arrive after the handshake, possibly more than one: keep the latest.
          socket.on('session', (ticket: Buffer) => cache.set(options.keyId, ticket));
        }
      } else {
        socket = net.connect({
          host,
          port,
          autoSelectFamily: true,
          noDelay: true,
          ...(options.lookup !== undefined ? { lookup: options.lookup } : {}),
        });
      }
    } catch (err) {
      timer.cancel();
      reject(err instanceof MuxpoolError ? err : mapSocketError(err, 'connect'));
      return;
    }
    socket.once(readyEvent, onReady);
    socket.on('error', onError);
    // Phase marks (the dial's own cost, not a request's): 'lookup' fires once per resolved
    // name (not at all for an IP literal), 'connect' when TCP is up (before any TLS).
    socket.once('lookup', () => {
      resolvedAt = performance.now();
    });
    if (options.isHttps) {
      socket.once('connect', () => {
        connectedAt = performance.now();
      });
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
