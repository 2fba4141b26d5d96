/**
 * Dialing QUIC for HTTP/3: the address (QUIC takes IP literals only), one client config per TLS
 * identity (the CA bundle is parsed once, not per connection), session tickets per key for
 * resumption, and the memory of origins whose HTTP/3 failed, with an exponential backoff, so
 * `Http3` does not pay a doomed handshake on every dial.
 */
import { createPrivateKey } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { MuxpoolError } from '../errors.js';
import { type PoolKey, type TlsIdentity, tlsFingerprint } from '../pool/key.js';
import { type QuicConfig, type QuicConnection, connectQuic, createQuicClientConfig } from '../quic/index.js';
import type { DialPhases } from './dial.js';
import { type Resolver, resolveHost } from './resolve.js';
import type { OriginStore } from './origin-store.js';
import type { DialRoutes } from './overrides.js';
import { TlsSessionCache } from './session-cache.js';
import { parsePins, pinMismatch } from './pins.js';
import { trustedCaList, userCaList } from './trust.js';

/** A QUIC dial's phases, and the address it reached. */
export interface QuicDialPhases extends DialPhases {
  remoteAddress?: string;
  remotePort?: number;
}

export interface QuicDialerOptions {
  clock: Clock;
  resolver: Resolver;
  /** Host overrides (`resolve`, `connectTo`): QUIC goes where TCP would. */
  routes?: DialRoutes;
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

/**
 * Where a QUIC connection for a key goes: the origin's own host and port (id: the key's id), or
 * an Alt-Svc alternative elsewhere, which has tickets and broken marks of its own (a failure or
 * ticket of one address says nothing about another).
 */
export interface QuicRoute {
  id: string;
  host: string;
  port: number;
  /** For an alternative elsewhere: its authority, as `Alt-Used` names it (RFC 7838 §5). */
  alternative?: string;
}

export function quicRoute(key: PoolKey, alternative?: { host: string; port: number; elsewhere: boolean }): QuicRoute {
  if (alternative === undefined || !alternative.elsewhere) return { id: key.id, host: key.host, port: key.port };
  const authority = `${alternative.host.includes(':') ? `[${alternative.host}]` : alternative.host}:${alternative.port}`;
  return { id: `${key.id}>${authority}`, host: alternative.host, port: alternative.port, alternative: authority };
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
   * Why HTTP/3 cannot carry requests for this identity, or undefined when it can. A client
   * certificate given as PKCS#12 cannot reach the QUIC stack: node:crypto reads no PKCS#12 and
   * the binding takes PEM only (Node's TLS reads it, so TCP can present it).
   */
  unsupported(identity: TlsIdentity | undefined): string | undefined {
    if (identity?.pfx !== undefined) {
      return 'HTTP/3 cannot present a PKCS#12 (tls.pfx) client certificate: give it as tls.cert and tls.key (PEM) for HTTP/3';
    }
    return undefined;
  }

  /**
   * Resolves, connects and completes the handshake (resuming when a ticket is cached). The
   * route may lead elsewhere than the origin (an Alt-Svc alternative): the server name sent and
   * checked is still the origin's, which is what makes that address authoritative for it.
   */
  async dial(
    key: PoolKey,
    route: QuicRoute,
    identity: TlsIdentity | undefined,
    handshakeTimeoutMs: number,
    signal: AbortSignal,
    /** Filled in with the name lookup and handshake times (`res.timings`), when given. */
    phases?: QuicDialPhases,
  ): Promise<QuicConnection> {
    const routes = this.options.routes;
    const target = routes?.active === true ? routes.target(route.host, route.port) : route;
    const started = phases === undefined ? 0 : performance.now();
    let addresses;
    try {
      addresses = routes?.active === true ? await routes.addresses(target.host, target.port) : await resolveHost(this.options.resolver, target.host);
    } catch (cause) {
      throw new MuxpoolError('MUXPOOL_ERR_DNS', `cannot resolve ${target.host}: ${(cause as Error).message}`, { cause, maybeProcessed: false });
    }
    const address = addresses[0];
    if (address === undefined) throw new MuxpoolError('MUXPOOL_ERR_DNS', `no address for ${target.host}`, { maybeProcessed: false });
    const pins = parsePins(identity?.pins);
    // As over TCP, a pinned connection is never resumed: every handshake shows its certificates.
    const session = pins === undefined ? this.tickets.get(route.id) : undefined;
    const resolvedAt = phases === undefined ? 0 : performance.now();
    let connection: QuicConnection;
    try {
      connection = await connectQuic({
        host: address.address,
        port: target.port,
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
    if (pins !== undefined) {
      // Checked before the HTTP/3 layer exists: not even its control stream has been sent.
      const mismatch = pinMismatch(pins, connection.peerCertificates(), userCaList(identity?.ca), key.host);
      if (mismatch !== undefined) {
        this.tickets.delete(route.id);
        connection.destroy(mismatch);
        throw mismatch;
      }
    }
    if (phases !== undefined) {
      // QUIC has no separate connect: its handshake is the connect (RFC 9000 §7).
      phases.dnsMs = resolvedAt - started;
      phases.connectMs = 0;
      phases.handshakeMs = performance.now() - resolvedAt;
      phases.remoteAddress = address.address;
      phases.remotePort = target.port;
    }
    return connection;
  }

  /** Keeps the latest session ticket of a connection made over `route`. */
  rememberTicket(route: QuicRoute, ticket: Uint8Array): void {
    this.tickets.set(route.id, Buffer.from(ticket));
  }

  /** Drops what was kept for a route that is no longer advertised (its ticket and broken mark). */
  forgetRoute(route: QuicRoute): void {
    this.tickets.delete(route.id);
    this.broken.delete(route.id);
    this.options.store.update(this.options.recordFor(route.id), { brokenUntil: undefined, brokenBackoffMs: undefined });
  }

  isBroken(route: QuicRoute): boolean {
    const mark = this.markOf(route);
    return mark !== undefined && this.options.clock.now() < mark.until;
  }

  /** The local mark, or one another process left in the store (turned into this clock's time). */
  private markOf(route: QuicRoute): BrokenMark | undefined {
    const mark = this.broken.get(route.id);
    if (mark !== undefined) return mark;
    const record = this.options.store.get(this.options.recordFor(route.id));
    if (record?.brokenUntil === undefined || record.brokenBackoffMs === undefined) return undefined;
    const stored = { until: this.options.clock.now() + (record.brokenUntil - Date.now()), backoffMs: record.brokenBackoffMs };
    this.broken.set(route.id, stored);
    return stored;
  }

  /** HTTP/3 failed over this route: skip it until the backoff expires (then try once more). */
  markBroken(route: QuicRoute): void {
    const previous = this.markOf(route);
    const backoffMs = previous === undefined ? this.options.brokenBackoffMs : Math.min(previous.backoffMs * 2, this.options.maxBackoffMs);
    this.broken.delete(route.id);
    if (this.broken.size >= MAX_BROKEN) {
      const oldest = this.broken.keys().next().value;
      if (oldest !== undefined) this.broken.delete(oldest);
    }
    this.broken.set(route.id, { until: this.options.clock.now() + backoffMs, backoffMs });
    this.options.store.update(this.options.recordFor(route.id), { brokenUntil: Date.now() + backoffMs, brokenBackoffMs: backoffMs });
  }

  markWorking(route: QuicRoute): void {
    if (this.markOf(route) === undefined) return;
    this.broken.delete(route.id);
    this.options.store.update(this.options.recordFor(route.id), { brokenUntil: undefined, brokenBackoffMs: undefined });
  }

  private configFor(identity: TlsIdentity | undefined): QuicConfig {
    const cacheKey = `${identity === undefined ? '' : tlsFingerprint(identity)}|${this.options.idleTimeoutMs}|${this.options.earlyData}`;
    let config = configs.get(cacheKey);
    if (config !== undefined) return config;
    const verifyPeer = identity?.rejectUnauthorized !== false;
    config = createQuicClientConfig({
      alpn: ['h3'],
      verifyPeer,
      ...clientCertificate(identity),
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

/**
 * `tls.cert`/`tls.key` as the QUIC stack takes them: PEM text, the key decrypted in memory with
 * `tls.passphrase` (BoringSSL gets no passphrase callback through the binding).
 */
function clientCertificate(identity: TlsIdentity | undefined): { certChain?: string; key?: string } {
  if (identity?.cert === undefined && identity?.key === undefined) return {};
  if (identity.cert === undefined || identity.key === undefined) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'a client certificate needs both tls.cert and tls.key');
  }
  let key;
  try {
    key = createPrivateKey({ key: identity.key, format: 'pem', ...(identity.passphrase !== undefined ? { passphrase: identity.passphrase } : {}) });
  } catch (cause) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'tls.key cannot be read (not PEM, or a wrong or missing passphrase)', { cause });
  }
  const pem = (value: string | Buffer): string => (typeof value === 'string' ? value : value.toString('latin1'));
  return { certChain: pem(identity.cert), key: key.export({ type: 'pkcs8', format: 'pem' }) as string };
}
