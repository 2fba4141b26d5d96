/**
 * quiche configs: TLS identity plus transport parameters.
 *
 * A config holds a BoringSSL context, which is costly to build (parsing ~140 root
 * certificates takes milliseconds), so one config serves every connection with the same
 * settings: build it once with `createQuicClientConfig`, or let `sharedQuicClientConfig` cache
 * it. Certificates and keys are handed to BoringSSL from memory; no file is written.
 */
import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { MuxpoolError } from '../errors.js';
import { loadQuiche, type NativeConfig } from './native.js';

/** Transport parameters (RFC 9000 §18.2) and limits; every field has a default. */
export interface QuicTransportOptions {
  /** max_idle_timeout: the connection closes after this long without a packet; 0 = never. Default 30 000. */
  idleTimeoutMs?: number;
  /**
   * initial_max_data: bytes the peer may send on all streams before we extend it. Default: no
   * connection-level limit (2^53 - 1). Past this first credit, quiche 0.18 extends it by a window
   * of its own that starts at 48 KiB, so a single stream whose reader is paused (a response body
   * nobody reads yet) would hold all of it and stall every other stream. Per-stream windows still
   * bound what each stream can hold unread (`initialMaxStreamData*`, then quiche's stream window,
   * at most 16 MiB), so memory is bounded by streams open × that.
   */
  initialMaxData?: number;
  /** initial_max_stream_data_bidi_local (streams we open). Default 1 MiB. */
  initialMaxStreamDataBidiLocal?: number;
  /** initial_max_stream_data_bidi_remote (streams the peer opens). Default 1 MiB. */
  initialMaxStreamDataBidiRemote?: number;
  /** initial_max_stream_data_uni. Default 1 MiB. */
  initialMaxStreamDataUni?: number;
  /** initial_max_streams_bidi: bidirectional streams the peer may open. Default 100. */
  initialMaxStreamsBidi?: number;
  /** initial_max_streams_uni: unidirectional streams the peer may open. Default 100. */
  initialMaxStreamsUni?: number;
  /** The largest datagram we send. Default 1350, at least 1200. */
  maxUdpPayloadBytes?: number;
  /**
   * max_udp_payload_size, the largest datagram we accept (RFC 9000 §18.2). Default 65527, the
   * RFC's default: the limit is ours, not the path's, and the peer still keeps to the path MTU
   * (RFC 9000 §14), so advertising less only forbids it the larger datagrams its path MTU
   * discovery finds. Each datagram costs a receive callback and a quiche call whatever its size,
   * so on a bulk download 1452-byte datagrams take ~7% less CPU than 1350-byte ones. At least 1200.
   */
  maxRecvUdpPayloadBytes?: number;
}

export interface QuicClientConfigOptions extends QuicTransportOptions {
  /** ALPN protocols offered, most preferred first (`['h3']` for HTTP/3). */
  alpn: readonly string[];
  /**
   * Trusted CA certificates, PEM (an entry may hold several). quiche reads no system store, so
   * this is the whole trust store: Node's roots, NODE_EXTRA_CA_CERTS and the user's CAs.
   * Required while `verifyPeer` is on.
   */
  ca?: readonly string[];
  /** Verify the server's certificate chain and name. Default true. */
  verifyPeer?: boolean;
  /** Allow 0-RTT when resuming a session. Default false. */
  earlyData?: boolean;
  /** A client certificate chain (PEM, leaf first) to present when the server asks for one. */
  certChain?: string;
  /** The client certificate's private key, PEM, unencrypted (decrypt it first). */
  key?: string;
}

export interface QuicServerConfigOptions extends QuicTransportOptions {
  /** ALPN protocols accepted, most preferred first. */
  alpn: readonly string[];
  /** The certificate chain, PEM, leaf first. */
  certChain: string;
  /** The leaf's private key, PEM. */
  key: string;
  /** Accept 0-RTT data from resuming clients. Default false. */
  earlyData?: boolean;
  /**
   * Require a client certificate issued by one of these CAs (PEM): a client without one, or with
   * one these do not verify, fails the handshake (quiche's verify_peer on the server side).
   */
  clientCa?: readonly string[];
}

interface ResolvedTransport {
  idleTimeoutMs: number;
  initialMaxData: number;
  initialMaxStreamDataBidiLocal: number;
  initialMaxStreamDataBidiRemote: number;
  initialMaxStreamDataUni: number;
  initialMaxStreamsBidi: number;
  initialMaxStreamsUni: number;
  maxUdpPayloadBytes: number;
  maxRecvUdpPayloadBytes: number;
}

const MIB = 1024 * 1024;
/** RFC 9000 §18.2: max_udp_payload_size values above 65527 are treated as 65527. */
const MAX_UDP_PAYLOAD_BYTES = 65527;
const DEFAULT_TRANSPORT: ResolvedTransport = {
  idleTimeoutMs: 30_000,
  // Varints go up to 2^62 - 1 (RFC 9000 §16); this is the largest a number holds exactly.
  initialMaxData: Number.MAX_SAFE_INTEGER,
  initialMaxStreamDataBidiLocal: MIB,
  initialMaxStreamDataBidiRemote: MIB,
  initialMaxStreamDataUni: MIB,
  initialMaxStreamsBidi: 100,
  initialMaxStreamsUni: 100,
  maxUdpPayloadBytes: 1350,
  maxRecvUdpPayloadBytes: MAX_UDP_PAYLOAD_BYTES,
};

/** RFC 9000 §18.2: max_udp_payload_size values below 1200 are invalid. */
const MIN_UDP_PAYLOAD_BYTES = 1200;
/** RFC 9114 §6.2: control stream plus the two QPACK streams. */
const H3_MIN_PEER_UNI_STREAMS = 3;
/** Varint ceiling (RFC 9000 §16), far above anything sensible. */
const MAX_VARINT = 2 ** 53 - 1;

/** A built config and the settings a connection needs to know about it. */
export class QuicConfig {
  /** @internal the quiche config; shared by every connection made with it. */
  readonly native: NativeConfig;
  readonly role: 'client' | 'server';
  readonly alpn: readonly string[];
  readonly verifyPeer: boolean;
  readonly earlyData: boolean;
  readonly idleTimeoutMs: number;
  readonly maxUdpPayloadBytes: number;

  /** @internal use createQuicClientConfig / createQuicServerConfig. */
  constructor(
    native: NativeConfig,
    settings: { role: 'client' | 'server'; alpn: readonly string[]; verifyPeer: boolean; earlyData: boolean } & ResolvedTransport,
  ) {
    this.native = native;
    this.role = settings.role;
    this.alpn = Object.freeze([...settings.alpn]);
    this.verifyPeer = settings.verifyPeer;
    this.earlyData = settings.earlyData;
    this.idleTimeoutMs = settings.idleTimeoutMs;
    this.maxUdpPayloadBytes = settings.maxUdpPayloadBytes;
  }
}

function invalid(message: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', message);
}

function checkAlpn(alpn: readonly string[] | undefined): readonly string[] {
  if (!Array.isArray(alpn) || alpn.length === 0) throw invalid('alpn must be a non-empty list of protocol names');
  for (const proto of alpn) {
    // RFC 7301 §3.1: protocol names are 1 to 255 bytes.
    if (typeof proto !== 'string' || proto.length === 0 || Buffer.byteLength(proto) > 255) {
      throw invalid(`alpn entry ${JSON.stringify(proto)} must be 1 to 255 bytes`);
    }
  }
  return alpn;
}

function checkCount(name: string, value: number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > MAX_VARINT) {
    throw invalid(`${name} must be an integer of at least ${min}`);
  }
  return value;
}

function resolveTransport(options: QuicTransportOptions, alpn: readonly string[]): ResolvedTransport {
  const d = DEFAULT_TRANSPORT;
  const resolved: ResolvedTransport = {
    idleTimeoutMs: checkCount('idleTimeoutMs', options.idleTimeoutMs, d.idleTimeoutMs),
    initialMaxData: checkCount('initialMaxData', options.initialMaxData, d.initialMaxData),
    initialMaxStreamDataBidiLocal: checkCount(
      'initialMaxStreamDataBidiLocal',
      options.initialMaxStreamDataBidiLocal,
      d.initialMaxStreamDataBidiLocal,
    ),
    initialMaxStreamDataBidiRemote: checkCount(
      'initialMaxStreamDataBidiRemote',
      options.initialMaxStreamDataBidiRemote,
      d.initialMaxStreamDataBidiRemote,
    ),
    initialMaxStreamDataUni: checkCount('initialMaxStreamDataUni', options.initialMaxStreamDataUni, d.initialMaxStreamDataUni),
    initialMaxStreamsBidi: checkCount('initialMaxStreamsBidi', options.initialMaxStreamsBidi, d.initialMaxStreamsBidi),
    initialMaxStreamsUni: checkCount('initialMaxStreamsUni', options.initialMaxStreamsUni, d.initialMaxStreamsUni),
    maxUdpPayloadBytes: checkCount('maxUdpPayloadBytes', options.maxUdpPayloadBytes, d.maxUdpPayloadBytes, MIN_UDP_PAYLOAD_BYTES),
    maxRecvUdpPayloadBytes: checkCount(
      'maxRecvUdpPayloadBytes',
      options.maxRecvUdpPayloadBytes,
      d.maxRecvUdpPayloadBytes,
      MIN_UDP_PAYLOAD_BYTES,
    ),
  };
  if (resolved.maxUdpPayloadBytes > MAX_UDP_PAYLOAD_BYTES) throw invalid(`maxUdpPayloadBytes must be at most ${MAX_UDP_PAYLOAD_BYTES}`);
  if (resolved.maxRecvUdpPayloadBytes > MAX_UDP_PAYLOAD_BYTES) {
    throw invalid(`maxRecvUdpPayloadBytes must be at most ${MAX_UDP_PAYLOAD_BYTES}`);
  }
  // RFC 9114 §6.2: "the transport parameters sent by both clients and servers MUST allow the
  // peer to create at least three unidirectional streams".
  if (alpn.includes('h3') && resolved.initialMaxStreamsUni < H3_MIN_PEER_UNI_STREAMS) {
    throw invalid(`HTTP/3 needs initialMaxStreamsUni of at least ${H3_MIN_PEER_UNI_STREAMS} (RFC 9114 §6.2)`);
  }
  return resolved;
}

function applyTransport(config: NativeConfig, alpn: readonly string[], t: ResolvedTransport, earlyData: boolean): void {
  config.setApplicationProtos([...alpn]);
  config.setMaxIdleTimeout(t.idleTimeoutMs);
  config.setMaxRecvUdpPayloadSize(t.maxRecvUdpPayloadBytes);
  config.setMaxSendUdpPayloadSize(t.maxUdpPayloadBytes);
  config.setInitialMaxData(t.initialMaxData);
  config.setInitialMaxStreamDataBidiLocal(t.initialMaxStreamDataBidiLocal);
  config.setInitialMaxStreamDataBidiRemote(t.initialMaxStreamDataBidiRemote);
  config.setInitialMaxStreamDataUni(t.initialMaxStreamDataUni);
  config.setInitialMaxStreamsBidi(t.initialMaxStreamsBidi);
  config.setInitialMaxStreamsUni(t.initialMaxStreamsUni);
  // The driver binds one socket per connection and never moves it.
  config.setDisableActiveMigration(true);
  if (earlyData) config.enableEarlyData();
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Splits PEM text into certificates and checks that each parses. BoringSSL silently skips a
 * block it cannot read, which would turn a typo into "unknown CA" at handshake time.
 */
export function parseCertificates(text: string, what: string, code: 'MUXPOOL_ERR_INVALID_CA' | 'MUXPOOL_ERR_INVALID_ARGUMENT'): string[] {
  if (typeof text !== 'string') throw new MuxpoolError(code, `${what} must be a PEM string`);
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new MuxpoolError(code, `${what} holds no PEM certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (cause) {
      throw new MuxpoolError(code, `${what} holds a certificate that does not parse`, { cause });
    }
  }
  return blocks;
}

function nativeConfigError(cause: unknown): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `quiche rejected the TLS settings: ${String(cause)}`, { cause });
}

/**
 * A certificate chain and its key, checked to belong together, as the binding takes them: a key
 * BoringSSL would refuse later is refused here with a message that says why.
 */
function clientIdentity(certChain: string | undefined, key: string | undefined): { chain: Uint8Array; key: Uint8Array } | undefined {
  if (certChain === undefined && key === undefined) return undefined;
  if (certChain === undefined || key === undefined) throw invalid('a client certificate needs both certChain and key');
  const chain = parseCertificates(certChain, 'the client certificate', 'MUXPOOL_ERR_INVALID_ARGUMENT');
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch (cause) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'the client key is not a readable, unencrypted PEM private key', { cause });
  }
  if (!new X509Certificate(chain[0] as string).checkPrivateKey(keyObject)) {
    throw invalid('the client key does not belong to the client certificate');
  }
  return {
    chain: new Uint8Array(Buffer.from(chain.join('\n'), 'latin1')),
    key: new Uint8Array(Buffer.from(keyObject.export({ type: 'pkcs8', format: 'pem' }) as string, 'latin1')),
  };
}

/** Builds a client config. Throws INVALID_CA for a CA that is not valid PEM. */
export function createQuicClientConfig(options: QuicClientConfigOptions): QuicConfig {
  const alpn = checkAlpn(options.alpn);
  const transport = resolveTransport(options, alpn);
  const verifyPeer = options.verifyPeer !== false;
  const earlyData = options.earlyData === true;
  const cas: string[] = [];
  for (const [i, entry] of (options.ca ?? []).entries()) cas.push(...parseCertificates(entry, `ca[${i}]`, 'MUXPOOL_ERR_INVALID_CA'));
  if (verifyPeer && cas.length === 0) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_CA', 'verifying the server needs at least one CA certificate (quiche reads no system store)');
  }
  const identity = clientIdentity(options.certChain, options.key);
  const quiche = loadQuiche();
  let native: NativeConfig;
  try {
    const bundle = cas.length === 0 ? null : new Uint8Array(Buffer.from(cas.join('\n'), 'latin1'));
    native = quiche.Config.withBoringSslCtx(
      verifyPeer,
      false,
      bundle,
      identity === undefined ? null : [identity.key],
      identity === undefined ? null : [identity.chain],
      null,
    );
  } catch (cause) {
    throw nativeConfigError(cause);
  }
  applyTransport(native, alpn, transport, earlyData);
  return new QuicConfig(native, { role: 'client', alpn, verifyPeer, earlyData, ...transport });
}

/** Builds a server config from an in-memory certificate chain and key. */
export function createQuicServerConfig(options: QuicServerConfigOptions): QuicConfig {
  const alpn = checkAlpn(options.alpn);
  const transport = resolveTransport(options, alpn);
  const earlyData = options.earlyData === true;
  const chain = parseCertificates(options.certChain, 'certChain', 'MUXPOOL_ERR_INVALID_ARGUMENT');
  let key: KeyObject;
  try {
    key = createPrivateKey(options.key);
  } catch (cause) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'key is not a readable PEM private key', { cause });
  }
  if (!new X509Certificate(chain[0] as string).checkPrivateKey(key)) {
    throw invalid('key does not belong to the first certificate of certChain');
  }
  const clientCas: string[] = [];
  for (const [i, entry] of (options.clientCa ?? []).entries()) {
    clientCas.push(...parseCertificates(entry, `clientCa[${i}]`, 'MUXPOOL_ERR_INVALID_CA'));
  }
  const verifyClients = options.clientCa !== undefined;
  if (verifyClients && clientCas.length === 0) throw new MuxpoolError('MUXPOOL_ERR_INVALID_CA', 'clientCa holds no certificate');
  const quiche = loadQuiche();
  let native: NativeConfig;
  try {
    // verify_peer on a server: PEER | FAIL_IF_NO_PEER_CERT in the binding, so a client without
    // a certificate is refused with certificate_required (RFC 8446 §4.4.2.4).
    native = quiche.Config.withBoringSslCtx(
      verifyClients,
      false,
      verifyClients ? new Uint8Array(Buffer.from(clientCas.join('\n'), 'latin1')) : null,
      [new Uint8Array(Buffer.from(options.key, 'latin1'))],
      [new Uint8Array(Buffer.from(chain.join('\n'), 'latin1'))],
      null,
    );
  } catch (cause) {
    throw nativeConfigError(cause);
  }
  applyTransport(native, alpn, transport, earlyData);
  return new QuicConfig(native, { role: 'server', alpn, verifyPeer: verifyClients, earlyData, ...transport });
}

/** Configs by digest of their options; bounded, oldest dropped first. */
const shared = new Map<string, QuicConfig>();
const MAX_SHARED = 64;

function digestClientOptions(options: QuicClientConfigOptions): string {
  const hash = createHash('sha256');
  const { ca, alpn, ...rest } = options;
  hash.update(JSON.stringify([alpn, Object.entries(rest).filter(([, v]) => v !== undefined).sort()]));
  for (const entry of ca ?? []) hash.update(`\0${typeof entry === 'string' ? entry : String(entry)}`);
  return hash.digest('base64url');
}

/** `createQuicClientConfig`, cached: equal options give the same config. */
export function sharedQuicClientConfig(options: QuicClientConfigOptions): QuicConfig {
  const key = digestClientOptions(options);
  const cached = shared.get(key);
  if (cached !== undefined) return cached;
  const config = createQuicClientConfig(options);
  if (shared.size >= MAX_SHARED) {
    const oldest = shared.keys().next().value;
    if (oldest !== undefined) shared.delete(oldest);
  }
  shared.set(key, config);
  return config;
}
