/**
 * The quiche binding, typed for what muxpool uses and loaded lazily.
 *
 * The binding is the prebuilt N-API module that `@matrixai/quic` ships per platform
 * (`@matrixai/quic-linux-x64`: quiche 0.18 over BoringSSL). We load that module directly and
 * never its high-level wrapper, so none of the wrapper's own connection logic runs. Loading is
 * lazy: a process that never speaks HTTP/3 never touches native code, and a platform without
 * the prebuilt module fails with a typed error only when QUIC is asked for.
 */
import { createRequire } from 'node:module';
import { MuxpoolError } from '../errors.js';

/** An address as the binding takes it: an IP literal (never a host name) and a port. */
export interface HostPort {
  host: string;
  port: number;
}

export interface RecvInfo {
  from: HostPort;
  to: HostPort;
}

export interface SendInfo {
  from: HostPort;
  to: HostPort;
}

/** `Connection.stats()`: quiche's `Stats`, fields camel-cased. */
export interface NativeStats {
  /** The peer's max_idle_timeout transport parameter in ms (RFC 9000 §18.2); 0 when it has none. */
  peerMaxIdleTimeout: number;
  /** Packets received, sent, declared lost and retransmitted (the interop runner reads them). */
  recv: number;
  sent: number;
  lost: number;
  retrans: number;
  /** The peer's initial_max_streams_bidi transport parameter (RFC 9000 §18.2). */
  peerInitialMaxStreamsBidi: number;
}

/** A CONNECTION_CLOSE as quiche reports it (RFC 9000 §19.19). */
export interface NativeConnectionError {
  isApp: boolean;
  errorCode: number;
  reason: Uint8Array;
}

export interface NativeConfig {
  enableEarlyData(): void;
  grease(grease: boolean): void;
  setApplicationProtos(protos: string[]): void;
  setMaxIdleTimeout(ms: number): void;
  setMaxRecvUdpPayloadSize(bytes: number): void;
  setMaxSendUdpPayloadSize(bytes: number): void;
  setInitialMaxData(bytes: number): void;
  setInitialMaxStreamDataBidiLocal(bytes: number): void;
  setInitialMaxStreamDataBidiRemote(bytes: number): void;
  setInitialMaxStreamDataUni(bytes: number): void;
  setInitialMaxStreamsBidi(count: number): void;
  setInitialMaxStreamsUni(count: number): void;
  setDisableActiveMigration(disable: boolean): void;
}

/**
 * One quiche connection. Methods that quiche answers with `Err(Done)` return null here; every
 * other error is thrown as `Error` whose message is quiche's error name (see error-map.ts).
 */
export interface NativeConnection {
  setSession(session: Uint8Array): void;
  /** Decrypts `data` in place: never pass a buffer that is still needed afterwards. */
  recv(data: Uint8Array, info: RecvInfo): number;
  /** Writes one packet into `out`; null when there is nothing to send. */
  send(out: Uint8Array): [number, SendInfo] | null;
  /** `[bytes read, fin]`, or null when the stream has nothing to read right now. */
  streamRecv(streamId: number, out: Uint8Array): [number, boolean] | null;
  /** Bytes accepted (may be fewer than given), or null when the stream has no capacity. */
  streamSend(streamId: number, data: Uint8Array, fin: boolean): number | null;
  streamPriority(streamId: number, urgency: number, incremental: boolean): void;
  /** null when the stream is unknown or that direction is already done. */
  streamShutdown(streamId: number, direction: number, appErrorCode: number): void | null;
  streamCapacity(streamId: number): number;
  /** Registers a low-water mark: the stream shows in `writable()` once `bytes` fit. */
  streamWritable(streamId: number, bytes: number): boolean;
  peerStreamsLeftBidi(): number;
  peerStreamsLeftUni(): number;
  /**
   * Streams with data (or a reset) to read, and streams that can take bytes (or were stopped).
   * Each call builds an iterator object in the binding, costing tens of microseconds: the
   * per-stream questions below are far cheaper when few streams are tracked.
   */
  readable(): Iterable<number>;
  writable(): Iterable<number>;
  /** Some stream has data (or a reset) to read. */
  isReadable(): boolean;
  /** This stream has data (or a reset) to read; false for an unknown stream. */
  streamReadable(streamId: number): boolean;
  /** Milliseconds until `onTimeout()` is due; null when no timer is armed. */
  timeout(): number | null;
  onTimeout(): void;
  close(isApp: boolean, errorCode: number, reason: Uint8Array): void | null;
  traceId(): string;
  /** Counters, and the peer's transport parameters once the handshake has them (only what we use). */
  stats(): NativeStats;
  applicationProto(): Uint8Array;
  peerCertChain(): Uint8Array[] | null;
  /** The serialized TLS session once the peer sent a ticket, for `setSession` later. */
  session(): Uint8Array | null;
  isEstablished(): boolean;
  isResumed(): boolean;
  isInEarlyData(): boolean;
  isDraining(): boolean;
  isClosed(): boolean;
  isTimedOut(): boolean;
  peerError(): NativeConnectionError | null;
  localError(): NativeConnectionError | null;
}

export interface NativeHeader {
  /** Packet type: see `PacketType`. */
  ty: number;
  version: number;
  dcid: Uint8Array;
  scid: Uint8Array;
}

export interface Quiche {
  MAX_CONN_ID_LEN: number;
  MIN_CLIENT_INITIAL_LEN: number;
  MAX_DATAGRAM_SIZE: number;
  PROTOCOL_VERSION: number;
  Config: {
    /**
     * A config over a BoringSSL context built from memory: `ca` is a concatenated PEM bundle,
     * `keys[i]` and `certChains[i]` are PEM. `verifyAllowFail` lets the handshake go on after a
     * failed verification (for custom verification); muxpool always passes false.
     */
    withBoringSslCtx(
      verifyPeer: boolean,
      verifyAllowFail: boolean,
      ca: Uint8Array | null,
      keys: Uint8Array[] | null,
      certChains: Uint8Array[] | null,
      sigalgs: string | null,
    ): NativeConfig;
  };
  Connection: {
    connect(
      serverName: string | null,
      scid: Uint8Array,
      local: HostPort,
      peer: HostPort,
      config: NativeConfig,
    ): NativeConnection;
    accept(
      scid: Uint8Array,
      odcid: Uint8Array | null,
      local: HostPort,
      peer: HostPort,
      config: NativeConfig,
    ): NativeConnection;
  };
  Header: {
    /** Parses a packet header; short headers carry no DCID length, so it is given. */
    fromSlice(data: Uint8Array, dcidLength: number): NativeHeader;
  };
  versionIsSupported(version: number): boolean;
  /** Writes a Version Negotiation packet into `out`; returns its length. */
  negotiateVersion(scid: Uint8Array, dcid: Uint8Array, out: Uint8Array): number;
}

/** quiche's `Shutdown` enum. */
export const Shutdown = { Read: 0, Write: 1 } as const;

/** quiche's packet `Type` enum, as `NativeHeader.ty` reports it. */
export const PacketType = { Initial: 0, Retry: 1, Handshake: 2, ZeroRTT: 3, VersionNegotiation: 4, Short: 5 } as const;

/** The prebuilt module for this platform, named as `@matrixai/quic` publishes them. */
export function bindingPackageName(platform: string = process.platform, arch: string = process.arch): string {
  return `@matrixai/quic-${platform}-${arch}`;
}

let loaded: Quiche | undefined;

/** The binding, loaded on first use; PROTOCOL_UNAVAILABLE when this platform has none. */
export function loadQuiche(): Quiche {
  if (loaded !== undefined) return loaded;
  const name = bindingPackageName();
  let binding: unknown;
  try {
    binding = createRequire(import.meta.url)(name);
  } catch (cause) {
    throw new MuxpoolError(
      'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE',
      `HTTP/3 needs the QUIC binding ${name}, which is not installed or cannot be loaded here`,
      { cause },
    );
  }
  const candidate = binding as Partial<Quiche> | null;
  if (
    candidate === null ||
    typeof candidate.Config?.withBoringSslCtx !== 'function' ||
    typeof candidate.Connection?.connect !== 'function' ||
    typeof candidate.Header?.fromSlice !== 'function'
  ) {
    throw new MuxpoolError('MUXPOOL_ERR_PROTOCOL_UNAVAILABLE', `${name} does not have the expected quiche API`);
  }
  loaded = candidate as Quiche;
  return loaded;
}
