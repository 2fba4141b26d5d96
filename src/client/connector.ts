/**
 * The pool's dialer: carries out a `DialPlan` — TCP or TLS with ALPN picking the protocol, QUIC,
 * or the two raced (race.ts) — and wraps the socket in the matching protocol driver. This is the
 * one place that knows every transport. HTTP/2 coalescing has its own index (coalescing.ts).
 */
import type { LookupFunction } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../core/clock.js';
import { channels } from '../core/diagnostics.js';
import { type DialOptions, type DialResult, dialTcp } from '../connect/dial.js';
import { forwardsHttp } from '../connect/proxy-config.js';
import { dialThroughProxy } from '../connect/proxy-dial.js';
import { type Resolver, resolveHost, systemResolver, toNodeLookup } from '../connect/resolve.js';
import type { OriginStore } from '../connect/origin-store.js';
import { TlsSessionCache } from '../connect/session-cache.js';
import { MuxpoolError } from '../errors.js';
import type { Connection } from '../protocol/connection.js';
import type { PoolKey, TlsIdentity } from '../pool/key.js';
import type { Dialer } from '../pool/demand.js';
import type { ConnectionProtocol } from '../protocol/version.js';
import { H1Connection, type H1ConnectionOptions } from '../protocol/h1/connection.js';
import { type H2Engine, startH2Connection } from '../protocol/h2/engine.js';
import { H3Connection } from '../protocol/h3/connection.js';
import { QuicDialer, type QuicRoute, quicRoute } from '../connect/quic-dial.js';
import type { H3Alternative } from './alt-svc-cache.js';
import { CoalescingIndex, verifiesOwnHost } from './coalescing.js';
import { recordConnectionFacts } from './connection-facts.js';
import type { DialPlan } from './dial-plan.js';
import type { OriginFacts } from './origin-facts.js';
import { raceQuicAndTcp } from './race.js';
import { ResolverCache } from '../connect/dns-cache.js';
import { DialRoutes } from '../connect/overrides.js';

/** Why HTTP/3 cannot serve a key, or undefined when it can. */
function h3UnavailableReason(key: PoolKey, identityProblem: string | undefined): string | undefined {
  if (!key.isHttps) return 'HTTP/3 needs an https: origin';
  // QUIC runs over UDP; a Unix domain socket is a stream (SOCK_STREAM) carrying TCP-style bytes.
  if (key.socketPath !== undefined) return `HTTP/3 cannot run over a Unix domain socket (${key.socketPath}): QUIC needs UDP`;
  return identityProblem;
}

export interface ConnectorOptions {
  clock: Clock;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  keepAliveMarginMs: number;
  maxHeaderBytes: number;
  maxHeaderCount: number;
  /** The pool's `maxStreams`: the most streams we open on one HTTP/2 session. */
  maxStreams: number;
  /** HTTP/2 health: ping a session silent this long; 0 turns it off. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
  /** Reuse an HTTP/2 connection for another host name it is authoritative for (RFC 9113 §9.1.1). */
  coalesce: boolean;
  /** The pool's TLS settings, used for keys that carry none of their own. */
  tls: TlsIdentity | undefined;
  /** TLS sessions kept for resumption (per key). */
  tlsSessionCacheSize: number;
  resolver: Resolver | undefined;
  /** Keep resolved addresses this long at most (their TTL when the resolver gives one); 0: no cache. */
  dnsCacheMs: number;
  /** curl's `--resolve` and `--connect-to` entries (overrides.ts). */
  resolve: readonly string[] | undefined;
  connectTo: readonly string[] | undefined;
  /** QUIC idle timeout we advertise; an idle HTTP/3 connection is retired a margin before it. */
  quicIdleTimeoutMs: number;
  /** With `Http3`, how long the QUIC handshake may take before the dial falls back to TCP. */
  quicHandshakeTimeoutMs: number;
  /** First pause after HTTP/3 failed for an origin (doubles per failure, capped at 30 min). */
  h3BrokenBackoffMs: number;
  /** Opt-in 0-RTT for resumed HTTP/3 connections (replay-safe requests only). */
  earlyData: boolean;
  /** Head start HTTP/3 gets over TCP when both may serve a request. */
  h3RaceDelayMs: number;
  /** Origin knowledge beyond the pool (tickets, broken marks), and the record of a key id. */
  store: OriginStore;
  recordFor(keyId: string): string;
  /** Where ALPN's answers are learned. */
  facts: OriginFacts;
  /** The origin's advertised HTTP/3 alternative (Alt-Svc), if any: where QUIC dials go. */
  alternativeFor(key: PoolKey): H3Alternative | undefined;
  /** A QUIC connection that lost a race but came up anyway (the pool takes it as a spare). */
  onSpare(key: PoolKey, connection: Connection): void;
  /** An HTTP/2 ALTSVC frame for the origin of `keyId` (learned like the header field). */
  onAltSvc(keyId: string, value: string): void;
  /** The pool this connector dials for: named in diagnostics messages, so a listener can tell pools apart. */
  owner?: object;
}

export class DefaultConnector implements Dialer<Connection, DialPlan> {
  private readonly options: ConnectorOptions;
  private readonly sessions: TlsSessionCache;
  private readonly h1Options: H1ConnectionOptions;
  private readonly resolver: Resolver;
  private readonly lookup: LookupFunction | undefined;
  /** Host overrides (`resolve`, `connectTo`), applied to TCP and QUIC alike. */
  readonly routes: DialRoutes;
  /** Live HTTP/2 sessions over TLS that may serve other origins. */
  private readonly coalescing = new CoalescingIndex<H2Engine>();
  private readonly quic: QuicDialer;
  /** QUIC attempts that outlived a race TCP won: aborted when the pool closes. */
  private readonly lingering = new Set<AbortController>();
  /** An `https://` proxy's certificate is checked with the pool's CAs and verification setting, against the proxy's own name. */
  private readonly proxyTls: TlsIdentity | undefined;

  constructor(options: ConnectorOptions) {
    this.options = options;
    this.sessions = new TlsSessionCache(options.tlsSessionCacheSize, { store: options.store, field: 'tlsSession', recordFor: options.recordFor });
    const resolver = options.resolver ?? systemResolver;
    this.resolver = options.dnsCacheMs > 0 ? new ResolverCache(resolver, options.clock, options.dnsCacheMs).resolve : resolver;
    // Without a resolver or cache of ours, Node's own lookup runs (and nothing is wrapped).
    this.lookup = this.resolver !== systemResolver ? toNodeLookup(this.resolver) : undefined;
    this.routes = new DialRoutes(options.resolve, options.connectTo, this.resolver);
    // An https:// proxy is checked with the pool's CAs, always: `rejectUnauthorized: false` is
    // for origins (a self-signed test server), not for the hop that receives the proxy's
    // credentials and sees every host we reach (curl keeps -k and --proxy-insecure apart too).
    this.proxyTls = options.tls?.ca === undefined ? undefined : { ca: options.tls.ca };
    this.quic = new QuicDialer({
      clock: options.clock,
      resolver: this.resolver,
      routes: this.routes,
      idleTimeoutMs: options.quicIdleTimeoutMs,
      sessionCacheSize: options.tlsSessionCacheSize,
      brokenBackoffMs: options.h3BrokenBackoffMs,
      maxBackoffMs: 30 * 60_000,
      earlyData: options.earlyData,
      store: options.store,
      recordFor: options.recordFor,
    });
    this.h1Options = {
      clock: options.clock,
      readTimeoutMs: options.readTimeoutMs,
      keepAliveMarginMs: options.keepAliveMarginMs,
      maxHeaderBytes: options.maxHeaderBytes,
      maxHeaderCount: options.maxHeaderCount,
    };
  }

  async dial(key: PoolKey, plan: DialPlan, signal: AbortSignal): Promise<Connection> {
    const connection = await this.dialPublished(key, plan, signal);
    if (plan.learnsAlpn(key) && connection.protocol !== 'h3') this.options.facts.learnTcpProtocol(key, connection.protocol);
    return connection;
  }

  private async dialPublished(key: PoolKey, plan: DialPlan, signal: AbortSignal): Promise<Connection> {
    if (!channels.dialStart.hasSubscribers && !channels.dialEnd.hasSubscribers) return this.dialAny(key, plan, signal);
    const started = this.options.clock.now();
    const protocols = plan.protocols;
    channels.dialStart.publish({ pool: this.options.owner, origin: key.origin, protocols });
    try {
      const connection = await this.dialAny(key, plan, signal);
      channels.dialEnd.publish({
        pool: this.options.owner,
        origin: key.origin,
        protocols,
        durationMs: this.options.clock.now() - started,
        connectionId: connection.id,
        protocol: connection.protocol,
      });
      return connection;
    } catch (error) {
      channels.dialEnd.publish({ pool: this.options.owner, origin: key.origin, protocols, durationMs: this.options.clock.now() - started, error });
      throw error;
    }
  }

  private async dialAny(key: PoolKey, plan: DialPlan, signal: AbortSignal): Promise<Connection> {
    if (!plan.wantsH3) return this.dialTcp(key, plan.protocols, signal);
    if (key.proxy !== undefined) {
      // CONNECT tunnels and SOCKS5 carry TCP only: HTTP/3 never goes through a proxy, and QUIC
      // straight to the origin would bypass the proxy the caller asked for.
      if (plan.tcpProtocols.length === 0) {
        throw new MuxpoolError(
          'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE',
          `HTTP/3 cannot go through the proxy ${key.proxy.display} (proxies carry TCP only); use Auto or Http3 to get HTTP/2 or HTTP/1.1 through it`,
          { maybeProcessed: false },
        );
      }
      return this.dialTcp(key, plan.tcpProtocols, signal);
    }
    const tcp = plan.tcpProtocols;
    const identity = key.tls ?? this.options.tls;
    const h3Unavailable = h3UnavailableReason(key, this.quic.unsupported(identity));
    const h3Possible = h3Unavailable === undefined;
    const route = this.routeFor(key);
    if (tcp.length === 0) {
      if (!h3Possible) throw new MuxpoolError('MUXPOOL_ERR_PROTOCOL_UNAVAILABLE', h3Unavailable, { maybeProcessed: false });
      const deadline = plan.background ? Math.min(this.options.quicHandshakeTimeoutMs, this.options.connectTimeoutMs) : this.options.connectTimeoutMs;
      if (!plan.background && route.alternative === undefined) return this.dialH3(key, route, identity, deadline, signal);
      try {
        return await this.dialH3(key, route, identity, deadline, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        if (plan.background) {
          // The origin may have advertised another alternative while this dial ran (the pool
          // prepares one HTTP/3 dial at a time): that one gets its try now, once.
          const now = this.routeFor(key);
          if (now.id === route.id || this.quic.isBroken(now)) throw err;
          return this.dialH3(key, now, identity, deadline, signal);
        }
        // Http3Only has no TCP to fall back to; a dead alternative must not make the origin
        // unreachable while the advertisement lasts (up to `ma`): the origin itself is tried
        // (RFC 7838 §2.4 lets a client fall back to it).
        return this.dialH3(key, quicRoute(key), identity, deadline, signal);
      }
    }
    // HTTP/3 preferred (Http3, or Auto after Alt-Svc): QUIC and TCP race, QUIC with a head
    // start, unless QUIC failed here recently. A QUIC failure is remembered with a backoff.
    if (!h3Possible || this.quic.isBroken(route)) {
      if (channels.fallback.hasSubscribers) {
        channels.fallback.publish({ pool: this.options.owner, origin: key.origin, from: 'h3', to: tcp, reason: h3Possible ? 'broken' : 'unsupported' });
      }
      return this.dialTcp(key, tcp, signal);
    }
    const quicTimeoutMs = Math.min(this.options.quicHandshakeTimeoutMs, this.options.connectTimeoutMs);
    const connection = await raceQuicAndTcp({
      clock: this.options.clock,
      headStartMs: this.options.h3RaceDelayMs,
      signal,
      quic: (quicSignal) => this.dialH3(key, route, identity, quicTimeoutMs, quicSignal),
      tcp: (tcpSignal) => this.dialTcp(key, tcp, tcpSignal),
      onLateQuic: (connection) => this.options.onSpare(key, connection),
      onLinger: (controller, done) => {
        this.lingering.add(controller);
        void done.finally(() => this.lingering.delete(controller));
      },
    });
    if (connection.protocol !== 'h3' && channels.fallback.hasSubscribers) {
      channels.fallback.publish({ pool: this.options.owner, origin: key.origin, from: 'h3', to: connection.protocol, reason: 'race' });
    }
    return connection;
  }

  /** Aborts QUIC attempts still running after their race (the pool is closing). */
  abortPending(): void {
    for (const controller of this.lingering) controller.abort();
    this.lingering.clear();
  }

  /** Origins whose HTTP/3 failed recently (`Http3` goes straight to TCP for them). */
  isH3Broken(key: PoolKey): boolean {
    return this.quic.isBroken(this.routeFor(key));
  }

  /** An alternative elsewhere is no longer advertised: its ticket and broken mark go. */
  forgetAlternative(key: PoolKey, alternative: H3Alternative): void {
    this.quic.forgetRoute(quicRoute(key, alternative));
  }

  /** Where HTTP/3 for the key is dialed: its advertised alternative, else the origin itself. */
  private routeFor(key: PoolKey): QuicRoute {
    return quicRoute(key, this.options.alternativeFor(key));
  }

  private async dialH3(
    key: PoolKey,
    route: QuicRoute,
    identity: TlsIdentity | undefined,
    handshakeTimeoutMs: number,
    signal: AbortSignal,
  ): Promise<Connection> {
    let quic;
    const phases = { dnsMs: 0, connectMs: 0, handshakeMs: 0, remoteAddress: undefined as string | undefined, remotePort: undefined as number | undefined };
    try {
      quic = await this.quic.dial(key, route, identity, handshakeTimeoutMs, signal, phases);
    } catch (err) {
      // Remembered even for Http3Only (which ignores the mark): Auto and Http3 skip QUIC a while.
      if (!signal.aborted) this.quic.markBroken(route);
      throw err;
    }
    this.quic.markWorking(route);
    const connection = new H3Connection(quic, {
      clock: this.options.clock,
      maxStreams: this.options.maxStreams,
      readTimeoutMs: this.options.readTimeoutMs,
      maxHeaderBytes: this.options.maxHeaderBytes,
      maxHeaderCount: this.options.maxHeaderCount,
      idleTimeoutMs: this.options.quicIdleTimeoutMs,
      keepAliveMarginMs: this.options.keepAliveMarginMs,
      onSessionTicket: (ticket) => this.quic.rememberTicket(route, ticket),
      altUsed: route.alternative,
    });
    recordConnectionFacts(connection, phases, this.options.clock.now());
    return connection;
  }

  private async dialTcp(key: PoolKey, protocols: readonly ConnectionProtocol[], signal: AbortSignal): Promise<Connection> {
    const wantsH2 = protocols.includes('h2');
    if (!wantsH2 && !protocols.includes('http/1.1')) {
      throw new MuxpoolError('MUXPOOL_ERR_PROTOCOL_UNAVAILABLE', `this build of muxpool cannot speak ${protocols.join(' or ')} yet`, {
        maybeProcessed: false,
      });
    }
    const identity = key.tls ?? this.options.tls;
    // A connectTo override changes where the connection (or the proxy's tunnel) goes; the URL's
    // host stays the TLS name.
    const target = this.routes.active ? this.routes.target(key.host, key.port) : key;
    let lookup = this.routes.active ? this.routes.lookupFor(target.port) : this.lookup;
    // Never coalesced through a proxy: the address the proxy reached is unknown here, and a
    // proxied session must not serve a direct request (nor the reverse).
    const proxy = key.proxy;
    if (proxy !== undefined && !key.isHttps && forwardsHttp(proxy) && !protocols.includes('http/1.1')) {
      throw new MuxpoolError('MUXPOOL_ERR_PROTOCOL_UNAVAILABLE', `HTTP/2 with prior knowledge cannot be forwarded by the HTTP proxy ${proxy.display}`, {
        maybeProcessed: false,
      });
    }
    // Over a Unix socket there is no address to compare either: no coalescing.
    const coalescable = proxy === undefined && key.isHttps && key.socketPath === undefined && this.canCoalesce(identity);
    if (coalescable && wantsH2 && this.coalescing.hasCandidates(key)) {
      const addresses = this.routes.active ? await this.routes.addresses(target.host, target.port) : await resolveHost(this.resolver, key.host);
      const shared = this.coalescing.find(key, addresses);
      if (shared !== undefined) return shared.addView(key.id);
      // Connect to the addresses just resolved instead of asking again.
      lookup = toNodeLookup(() => Promise.resolve(addresses));
    }
    // Over TLS one handshake offers both and ALPN decides; only an explicit HTTP/1.1 request
    // leaves h2 out. Cleartext has no ALPN: h2 there means prior knowledge (RFC 9113 §3.3).
    const priorKnowledge = !key.isHttps && wantsH2 && !protocols.includes('http/1.1');
    const alpn = key.isHttps ? (wantsH2 ? ['h2', 'http/1.1'] : ['http/1.1']) : [];
    const dialOptions: DialOptions = {
      host: target.host,
      port: target.port,
      originHost: key.host,
      socketPath: key.socketPath,
      isHttps: key.isHttps,
      tls: identity,
      alpn,
      connectTimeoutMs: this.options.connectTimeoutMs,
      signal,
      sessionCache: this.sessions,
      keyId: key.id,
      lookup,
    };
    const result: DialResult =
      proxy === undefined
        ? await dialTcp(dialOptions)
        : await dialThroughProxy({ proxy, target: dialOptions, proxyTls: this.proxyTls, resolver: this.resolver });
    if (result.alpn !== 'h2' && !priorKnowledge) {
      // Built inside the try: a driver that refuses its options must not leave the socket open.
      try {
        const connection = new H1Connection(result.socket, {
          ...this.h1Options,
          remoteAddress: result.remoteAddress,
          resumed: key.isHttps ? result.resumed : undefined,
        });
        recordConnectionFacts(connection, { ...result.phases, remoteAddress: result.remoteAddress, remotePort: result.remotePort }, this.options.clock.now());
        return connection;
      } catch (err) {
        result.socket.destroy();
        throw err;
      }
    }
    let view;
    try {
      view = await startH2Connection(
        result.socket,
        key.id,
        {
          clock: this.options.clock,
          maxStreams: this.options.maxStreams,
          readTimeoutMs: this.options.readTimeoutMs,
          pingIntervalMs: this.options.pingIntervalMs,
          pingTimeoutMs: this.options.pingTimeoutMs,
          settingsTimeoutMs: this.options.connectTimeoutMs,
          maxHeaderBytes: this.options.maxHeaderBytes,
          maxHeaderCount: this.options.maxHeaderCount,
          remoteAddress: result.remoteAddress,
          resumed: key.isHttps ? result.resumed : undefined,
          onClose: (session) => this.coalescing.remove(session),
          onAltSvc: this.options.onAltSvc,
        },
        signal,
      );
    } catch (err) {
      result.socket.destroy();
      throw err;
    }
    if (coalescable) this.coalescing.add(view.session, key);
    recordConnectionFacts(view, { ...result.phases, remoteAddress: result.remoteAddress, remotePort: result.remotePort }, this.options.clock.now());
    return view;
  }

  /** Wraps a socket a `putH1()` caller returns that the pool did not dial. */
  adoptSocket(socket: Duplex): Connection {
    return new H1Connection(socket, this.h1Options);
  }

  private canCoalesce(identity: TlsIdentity | undefined): boolean {
    return this.options.coalesce && verifiesOwnHost(identity);
  }
}
