/**
 * Dialing QUIC for HTTP/3: the address (QUIC takes IP literals only), one client config per TLS
 * identity (the CA bundle is parsed once, not per connection), session tickets per key for
 * resumption, and the memory of origins whose HTTP/3 failed, with an exponential backoff, so
 * `Http3` does not pay a doomed handshake on every dial.
 */
import type { Clock } from '../core/clock.js';
import { MuxpoolError } from '../errors.js';
import { type PoolKey, type TlsIdentity, tlsFingerprint } from '../pool/key.js';
import { type QuicConfig, type QuicConnection, connectQuic, createQuicClientConfig } from '../quic/index.js';
import { type Resolver, resolveHost } from './resolve.js';
import type { OriginStore } from './origin-store.js';
import { TlsSessionCache } from './session-cache.js';
import { trustedCaList } from './trust.js';

export interface QuicDialerOptions {
  clock: Clock;
  resolver: Resolver;
  /** QUIC idle timeout we advertise (max_idle_timeout). */
  idleTimeoutMs: number;
  /** Session tickets kept, one per key. */
  sessionCacheSize: number;
  /** First backoff after an HTTP/3 failure; doubles on each further failure, up to `maxBackoffMs`. */
  brokenBackoffMs: number;
  maxBackoffMs: number;
  /**
   * Resume with 0-RTT when a ticket is cached: the connection is handed out before the handshake
   * completes, and only replay-safe requests (GET/HEAD without body) use the early data.
   */
  earlyData: boolean;
  /** Where tickets and broken marks are kept beyond the process, and the record of a key id. */
  store: OriginStore;
  recordFor(keyId: string): string;
}

interface BrokenMark {
  until: number;
  backoffMs: number;
}

/**
 * Client configs, process-wide, by TLS identity and transport settings: building one parses
 * every trusted CA (hundreds with a system bundle, ~150 ms), so it happens once per identity,
 * not per pool or per connection. Bounded, oldest dropped first.
 */
const configs = new Map<string, QuicConfig>();
const MAX_CONFIGS = 32;
const MAX_BROKEN = 1024;

export class QuicDialer {
  private readonly options: QuicDialerOptions;
  private readonly tickets: TlsSessionCache;
  private readonly broken = new Map<string, BrokenMark>();

  constructor(options: QuicDialerOptions) {
    this.options = options;
    this.tickets = new TlsSessionCache(options.sessionCacheSize, { store: options.store, field: 'quicSession', recordFor: options.recordFor });
  }

  /**
   * Whether HTTP/3 can carry requests for this identity at all: a client certificate cannot be
   * presented over our QUIC stack yet, so such keys stay on TCP.
   */
  supports(identity: TlsIdentity | undefined): boolean {
    return identity?.cert === undefined && identity?.key === undefined;
  }

  /** Resolves, connects and completes the handshake (resuming when a ticket is cached). */
  async dial(key: PoolKey, identity: TlsIdentity | undefined, handshakeTimeoutMs: number, signal: AbortSignal): Promise<QuicConnection> {
    let addresses;
    try {
      addresses = await resolveHost(this.options.resolver, key.host);
    } catch (cause) {
      throw new MuxpoolError('MUXPOOL_ERR_DNS', `cannot resolve ${key.host}: ${(cause as Error).message}`, { cause, maybeProcessed: false });
    }
    const address = addresses[0];
    if (address === undefined) throw new MuxpoolError('MUXPOOL_ERR_DNS', `no address for ${key.host}`, { maybeProcessed: false });
    const session = this.tickets.get(key.id);
    try {
      return await connectQuic({
      host: address.address,
      port: key.port,
      servername: identity?.servername ?? key.host,
      config: this.configFor(identity),
      handshakeTimeoutMs,
      signal,
      clock: this.options.clock,
        ...(session !== undefined ? { session, earlyData: this.options.earlyData } : {}),
      });
    } catch (err) {
      // No request was sent on a connection that never came up.
      if (err instanceof MuxpoolError) err.maybeProcessed ??= false;
      throw err;
    }
  }

  /** Keeps the latest session ticket of a connection made for `key`. */
  rememberTicket(key: PoolKey, ticket: Uint8Array): void {
    this.tickets.set(key.id, Buffer.from(ticket));
  }

  isBroken(key: PoolKey): boolean {
    const mark = this.markOf(key);
    return mark !== undefined && this.options.clock.now() < mark.until;
  }

  /** The local mark, or one another process left in the store (turned into this clock's time). */
  private markOf(key: PoolKey): BrokenMark | undefined {
    const mark = this.broken.get(key.id);
    if (mark !== undefined) return mark;
    const record = this.options.store.get(this.options.recordFor(key.id));
    if (record?.brokenUntil === undefined || record.brokenBackoffMs === undefined) return undefined;
    const stored = { until: this.options.clock.now() + (record.brokenUntil - Date.now()), backoffMs: record.brokenBackoffMs };
    this.broken.set(key.id, stored);
    return stored;
  }

  /** HTTP/3 failed for this origin: skip it until the backoff expires (then try once more). */
  markBroken(key: PoolKey): void {
    const previous = this.markOf(key);
    const backoffMs = previous === undefined ? this.options.brokenBackoffMs : Math.min(previous.backoffMs * 2, this.options.maxBackoffMs);
    this.broken.delete(key.id);
    if (this.broken.size >= MAX_BROKEN) {
      const oldest = this.broken.keys().next().value;
      if (oldest !== undefined) this.broken.delete(oldest);
    }
    this.broken.set(key.id, { until: this.options.clock.now() + backoffMs, backoffMs });
    this.options.store.update(this.options.recordFor(key.id), { brokenUntil: Date.now() + backoffMs, brokenBackoffMs: backoffMs });
  }

  markWorking(key: PoolKey): void {
    if (this.markOf(key) === undefined) return;
    this.broken.delete(key.id);
    this.options.store.update(this.options.recordFor(key.id), { brokenUntil: undefined, brokenBackoffMs: undefined });
  }

  private configFor(identity: TlsIdentity | undefined): QuicConfig {
    const cacheKey = `${identity === undefined ? '' : tlsFingerprint(identity)}|${this.options.idleTimeoutMs}|${this.options.earlyData}`;
    let config = configs.get(cacheKey);
    if (config !== undefined) return config;
    const verifyPeer = identity?.rejectUnauthorized !== false;
    config = createQuicClientConfig({
      alpn: ['h3'],
      verifyPeer,
      ...(verifyPeer ? { ca: trustedCaList(identity?.ca) } : {}),
      idleTimeoutMs: this.options.idleTimeoutMs,
      earlyData: this.options.earlyData,
    });
    if (configs.size >= MAX_CONFIGS) {
      const oldest = configs.keys().next().value;
      if (oldest !== undefined) configs.delete(oldest);
    }
    configs.set(cacheKey, config);
    return config;
  }
}
