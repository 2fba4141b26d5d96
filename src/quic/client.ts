/**
 * `connectQuic`: one UDP socket and one driver per client connection.
 *
 * The socket is connected to the peer, so the kernel drops datagrams from anyone else and
 * sends skip the per-packet address lookup. It is referenced only while the connection has
 * work (handshake, open streams): an idle pooled connection does not keep the process alive.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { systemClock, type Clock } from '../core/clock.js';
import { MuxpoolError } from '../errors.js';
import { peerAddress, type PeerAddress } from './address.js';
import { sharedQuicClientConfig, type QuicConfig, type QuicTransportOptions } from './config.js';
import { QuicConnection, type DatagramTransport, type QuicConnectionHandler } from './connection.js';
import { nativeError } from './error-map.js';
import { loadQuiche, type HostPort, type NativeConnection } from './native.js';

/** Bytes of the connection ids we choose (RFC 9000 §17.2 allows up to 20). */
export const CONNECTION_ID_BYTES = 16;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface QuicConnectOptions {
  /** The server's IP address (resolve names first); IPv4, IPv6, or IPv4-mapped IPv6. */
  host: string;
  port: number;
  /**
   * The name sent as SNI and checked against the certificate. Default: `host`, which is then
   * checked against the certificate's IP addresses and sends no SNI (RFC 6066 §3).
   */
  servername?: string;
  /** A config from `createQuicClientConfig`; otherwise one is built (and shared) from the fields below. */
  config?: QuicConfig;
  /** ALPN protocols, e.g. `['h3']`. Required without `config`. */
  alpn?: readonly string[];
  /** Trusted CAs, PEM. Required without `config` while `verifyPeer` is on. */
  ca?: readonly string[];
  verifyPeer?: boolean;
  idleTimeoutMs?: number;
  transport?: Omit<QuicTransportOptions, 'idleTimeoutMs'>;
  /** The handshake must complete within this. Default 10 000. */
  handshakeTimeoutMs?: number;
  /** A session from an earlier connection's `onSessionTicket`, to resume it. */
  session?: Uint8Array;
  /**
   * Resolve as soon as 0-RTT data may be sent (when `session` allows it) rather than when the
   * handshake completes. Requires a config built with `earlyData`.
   */
  earlyData?: boolean;
  signal?: AbortSignal;
  /** Set before the first packet, so no event is missed. */
  handler?: QuicConnectionHandler;
  clock?: Clock;
}

class ClientSocket implements DatagramTransport {
  private connection: QuicConnection | undefined;
  private heardFromPeer = false;

  constructor(private readonly socket: dgram.Socket) {
    socket.on('message', (packet: Buffer) => {
      this.heardFromPeer = true;
      this.connection?.onDatagram(packet);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') {
        // ICMP port unreachable on the connected socket. Before the peer ever answered it most
        // likely means nothing listens there (an origin without HTTP/3, or a stale Alt-Svc):
        // failing now lets `Http3` fall back and mark the route at once instead of at the
        // handshake deadline. ICMP is spoofable: a forged one costs what a forged TCP reset
        // costs (a fallback to TCP, still TLS, or a typed failure for Http3Only), never data.
        // Once the peer has answered, or requests ride 0-RTT on the connection, it is ignored
        // (transient on a live path): the idle timeout decides.
        const connection = this.connection;
        if (!this.heardFromPeer && connection?.state === 'handshaking' && !connection.isInEarlyData) {
          connection.onTransportError(
            new MuxpoolError('MUXPOOL_ERR_CONNECT_REFUSED', `QUIC: ${this.peer()} is unreachable (nothing listens on UDP there)`, {
              cause: err,
              maybeProcessed: false,
            }),
          );
        }
        return;
      }
      this.connection?.onTransportError(new MuxpoolError('MUXPOOL_ERR_CONNECT', `QUIC socket error: ${err.message}`, { cause: err }));
    });
  }

  private peer(): string {
    try {
      const { address, port } = this.socket.remoteAddress();
      return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    } catch {
      return 'the peer';
    }
  }

  attach(connection: QuicConnection): void {
    this.connection = connection;
  }

  send(packet: Uint8Array, length: number): void {
    this.socket.send(packet, 0, length);
  }

  setActive(active: boolean): void {
    if (active) this.socket.ref();
    else this.socket.unref();
  }

  release(): void {
    this.connection = undefined;
    this.socket.removeAllListeners('message');
    try {
      this.socket.close();
    } catch {
      // Already closed.
    }
  }
}

async function openSocket(peer: PeerAddress, signal: AbortSignal | undefined): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: peer.family === 4 ? 'udp4' : 'udp6' });
  let onAbort: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onAbort = () => reject(abortError(signal as AbortSignal));
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', reject);
      socket.connect(peer.port, peer.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  } catch (cause) {
    socket.close();
    if (cause instanceof MuxpoolError) throw cause;
    throw new MuxpoolError('MUXPOOL_ERR_CONNECT', `cannot open a UDP socket to ${peer.host}:${peer.port}: ${String(cause)}`, { cause });
  } finally {
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
  return socket;
}

function abortError(signal: AbortSignal): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the QUIC connect was aborted', { cause: signal.reason });
}

function resolveConfig(options: QuicConnectOptions): QuicConfig {
  if (options.config !== undefined) {
    if (options.config.role !== 'client') {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'connectQuic needs a client config');
    }
    if (options.earlyData === true && !options.config.earlyData) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'earlyData needs a config built with earlyData: true');
    }
    return options.config;
  }
  if (options.alpn === undefined) throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'connectQuic needs alpn or config');
  return sharedQuicClientConfig({
    ...options.transport,
    alpn: options.alpn,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    ...(options.verifyPeer !== undefined ? { verifyPeer: options.verifyPeer } : {}),
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    earlyData: options.earlyData === true,
  });
}

/**
 * Opens a QUIC connection and resolves once the handshake completed (or 0-RTT may start, with
 * `earlyData`). Rejects with TLS_CERT / TLS_HOSTNAME for a certificate that fails, TLS for
 * another handshake failure, QUIC_HANDSHAKE_TIMEOUT at the deadline, ABORTED on `signal`.
 */
export async function connectQuic(options: QuicConnectOptions): Promise<QuicConnection> {
  const peer = peerAddress(options.host, options.port);
  const config = resolveConfig(options);
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  if (!Number.isFinite(handshakeTimeoutMs) || handshakeTimeoutMs <= 0) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'handshakeTimeoutMs must be a positive number');
  }
  const serverName = options.servername ?? peer.host;
  const quiche = loadQuiche();
  const signal = options.signal;
  if (signal?.aborted === true) throw abortError(signal);

  const socket = await openSocket(peer, signal);
  const bound = socket.address();
  const local: HostPort = { host: bound.address, port: bound.port };
  const remote: HostPort = { host: peer.host, port: peer.port };
  let native: NativeConnection;
  try {
    // quiche verifies DNS names only, and an IP literal must not be sent as SNI: for an IP the
    // driver checks the certificate's IP addresses itself.
    native = quiche.Connection.connect(isIP(serverName) === 0 ? serverName : null, randomBytes(CONNECTION_ID_BYTES), local, remote, config.native);
  } catch (cause) {
    socket.close();
    throw nativeError('create a connection', cause);
  }
  if (options.session !== undefined) {
    try {
      native.setSession(options.session);
    } catch {
      // A session from another build or a corrupt cache entry: a full handshake it is.
    }
  }
  const transport = new ClientSocket(socket);
  const connection = new QuicConnection({
    native,
    config,
    transport,
    local,
    peer: remote,
    clock: options.clock ?? systemClock,
    handler: options.handler,
    handshakeTimeoutMs,
    serverName: config.verifyPeer ? serverName : undefined,
  });
  transport.attach(connection);
  const established = connection.waitEstablished(options.earlyData === true);
  const onAbort = (): void => connection.destroy(abortError(signal as AbortSignal));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    connection.start();
    await established;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return connection;
}
