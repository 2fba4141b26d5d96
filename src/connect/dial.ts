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
import { setTimerSafe } from '../core/durations.js';
import { directReadOptions, markDirect } from '../core/direct-read.js';
import { parsePins, pinMismatch } from './pins.js';
import { clientSecureContext, userCaList } from './trust.js';

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
  /**
   * TLS on this already connected socket (a proxy tunnel) instead of dialing `host`; `host`
   * still gives SNI and the name the certificate is checked against.
   */
  socket?: net.Socket | undefined;
  /**
   * The URL's host when `host` is another one (a `connectTo` override): the TLS server name and
   * the name the certificate is checked against stay the URL's.
   */
  originHost?: string | undefined;
  /** Connect to this Unix domain socket instead of `host:port` (TLS still checks the URL's host). */
  socketPath?: string | undefined;
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

/**
 * OpenSSL's codes for certificate alerts received from the peer (RFC 8446 §6.2: bad_certificate,
 * unsupported_certificate, certificate_revoked, certificate_expired, certificate_unknown,
 * unknown_ca, access_denied, certificate_required).
 */
const PEER_CERTIFICATE_ALERTS =
  /^ERR_SSL_(SSLV3|TLSV1|TLSV13)_ALERT_(BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|CERTIFICATE_UNKNOWN|UNKNOWN_CA|ACCESS_DENIED|CERTIFICATE_REQUIRED)$/;

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
  if (PEER_CERTIFICATE_ALERTS.test(code)) {
    // An alert the server sent about a certificate can only be about ours (we verify its
    // certificate ourselves). In TLS 1.3 it may come after our handshake finished, while the
    // first request is written; the server reads no request before it accepts the client's
    // Finished (RFC 8446 §4.4.4), so nothing was processed.
    return new MuxpoolError('MUXPOOL_ERR_TLS_CLIENT_CERT', `the server refused our client certificate (${code}): ${message}`, {
      cause: err,
      maybeProcessed: false,
    });
  }
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
    // Thrown before any socket or timer exists: a bad pin rejects the dial with nothing to free.
    const originHost = options.originHost ?? host;
    const pins = options.isHttps ? parsePins(identity?.pins) : undefined;
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
        // A Unix socket has no address: its path names the peer in stats and messages.
        remoteAddress: options.socketPath ?? socket.remoteAddress,
        remotePort: socket.remotePort,
        handshakeMs: readyAt - started,
        phases: {
          dnsMs: resolvedAt === 0 ? 0 : resolvedAt - started,
          connectMs: connectedAt - connectStart,
          handshakeMs: readyAt - connectedAt,
        },
      });
    };
    // Pins are checked once the handshake is done and before the socket is handed out, so no
    // request byte is ever written on a connection whose keys match none.
    const onReady = (): void => {
      const mismatch = pins === undefined ? undefined : checkPins(socket as tls.TLSSocket, pins, identity, originHost);
      if (mismatch !== undefined) options.sessionCache?.delete(options.keyId);
      finish(mismatch);
    };
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
        const servername = identity?.servername ?? (isIP(originHost) === 0 ? originHost : undefined);
        // A resumed TLS session carries no certificate to check (Node reports none), so a pinned
        // connection always makes a full handshake: pins are checked on every connection.
        const session = pins === undefined ? options.sessionCache?.get(options.keyId) : undefined;
        // `onread` works on TLS sockets too (Node ≥ 15.1), though @types/node lists it for net only.
        const connectOptions: tls.ConnectionOptions & { onread?: net.OnReadOpts } = {
          ...(options.socketPath !== undefined ? { path: options.socketPath } : { host, port, autoSelectFamily: true }),
          // RFC 6066 §3: IP literals are not sent as SNI.
          ...(servername !== undefined && isIP(servername) === 0 ? { servername } : {}),
          ALPNProtocols: options.alpn,
          secureContext: clientSecureContext(options.keyId, identity),
          rejectUnauthorized: identity?.rejectUnauthorized !== false,
          ...(session !== undefined ? { session } : {}),
          // Always the URL's host (or the configured server name), whatever address or socket
          // the connection went to: an override changes where we connect, never whom we trust.
          checkServerIdentity: (_name: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(servername ?? originHost, cert),
          ...(options.socketPath === undefined ? { noDelay: true } : {}),
          ...(options.lookup !== undefined ? { lookup: options.lookup } : {}),
          ...(options.socket !== undefined ? { socket: options.socket } : {}),
        };
        // A socket that may carry HTTP/2 reads without the Readable stream once our engine
        // takes it (core/direct-read.ts); Node ignores `onread` on a socket it wraps.
        const direct = options.socket === undefined && options.alpn.includes('h2') ? directReadOptions() : undefined;
        if (direct !== undefined) connectOptions.onread = direct;
        socket = tls.connect(connectOptions);
        if (direct !== undefined) markDirect(socket, direct);
        const cache = pins === undefined ? options.sessionCache : undefined;
        if (cache !== undefined) {
          // TLS 1.3 tickets arrive after the handshake, possibly more than one: keep the latest.
          socket.on('session', (ticket: Buffer) => cache.set(options.keyId, ticket));
        }
      } else {
        socket = net.connect(
          options.socketPath !== undefined
            ? { path: options.socketPath }
            : { host, port, autoSelectFamily: true, noDelay: true, ...(options.lookup !== undefined ? { lookup: options.lookup } : {}) },
        );
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

/** The pin check of a TLS socket just connected: the chain it presented, leaf first. */
function checkPins(socket: tls.TLSSocket, pins: ReadonlySet<string>, identity: TlsIdentity | undefined, host: string): MuxpoolError | undefined {
  const chain: Buffer[] = [];
  let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  // Bounded: Node links the chain through issuerCertificate, ending on a self-issued one.
  for (let i = 0; i < 16 && cert !== undefined && cert.raw !== undefined; i++) {
    chain.push(cert.raw);
    const next: tls.DetailedPeerCertificate | undefined = cert.issuerCertificate;
    if (next === cert || next?.raw === undefined || next.raw.equals(cert.raw)) break;
    cert = next;
  }
  return pinMismatch(pins, chain, userCaList(identity?.ca), host);
}
