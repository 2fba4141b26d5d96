/**
 * The pool's default `Connector`: dials TCP or TLS, lets ALPN pick the protocol, and wraps the
 * socket in the matching protocol driver. This is the one place that knows every transport.
 */
import type { LookupFunction } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Clock } from '../core/clock.js';
import { channels } from '../core/diagnostics.js';
import { dialTcp } from '../connect/dial.js';
import { type ResolvedAddress, type Resolver, resolveHost, systemResolver, toNodeLookup } from '../connect/resolve.js';
import type { OriginStore } from '../connect/origin-store.js';
import { TlsSessionCache } from '../connect/session-cache.js';
import { MuxpoolError } from '../errors.js';
import type { Connection } from '../protocol/connection.js';
import type { PoolKey, TlsIdentity } from '../pool/key.js';
import type { Connector } from '../pool/pool.js';
import type { ConnectionProtocol } from '../protocol/version.js';
import { H1Connection, type H1ConnectionOptions } from '../protocol/h1/connection.js';
import { H2Session } from '../protocol/h2/session.js';
import { H3Connection } from '../protocol/h3/connection.js';
import { QuicDialer, type QuicRoute, quicRoute } from '../connect/quic-dial.js';
import type { H3Alternative } from './alt-svc-cache.js';
import { raceQuicAndTcp } from './race.js';

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
}

/**
 * The list `PoolCore.prepare` passes for a background HTTP/3 connection (after Alt-Svc): told
 * apart from `Http3Only`'s by identity, since it gets the short QUIC deadline (nobody waits on
 * it, and a path that does not answer soon should be marked broken soon).
 */
export const PREPARE_H3: readonly ConnectionProtocol[] = ['h3'];

/** Protocols this build can speak over TCP, in ALPN preference order. */
const TCP_PROTOCOLS: readonly ConnectionProtocol[] = ['h2', 'http/1.1'];

export class DefaultConnector implements Connector {
  private readonly options: ConnectorOptions;
  private readonly sessions: TlsSessionCache;
  private readonly h1Options: H1ConnectionOptions;
  private readonly resolver: Resolver;
  private readonly lookup: LookupFunction | undefined;
  /** Live HTTP/2 sessions over TLS, by `address|port|TLS identity`: candidates for coalescing. */
  private readonly coalescable = new Map<string, Set<H2Session>>();
  /** How many of those exist per `port|TLS identity`: skips the lookup when none could match. */
  private readonly coalescableByPort = new Map<string, number>();
  private readonly quic: QuicDialer;
  /** QUIC attempts that outlived a race TCP won: aborted when the pool closes. */
  private readonly lingering = new Set<AbortController>();
  /** Where a connection that lost a race but came up anyway goes (the pool, as a spare). */
  onSpare: ((key: PoolKey, connection: Connection) => void) | undefined;
  /** Where an HTTP/2 ALTSVC frame goes (the pool, which learns it like the header field). */
  onAltSvc: ((keyId: string, value: string) => void) | undefined;
  /** The origin's advertised HTTP/3 alternative (Alt-Svc), if any: where QUIC dials go. */
  alternativeFor: ((key: PoolKey) => H3Alternative | undefined) | undefined;

  constructor(options: ConnectorOptions) {
    this.options = options;
    this.sessions = new TlsSessionCache(options.tlsSessionCacheSize, { store: options.store, field: 'tlsSession', recordFor: options.recordFor });
    this.resolver = options.resolver ?? systemResolver;
    this.lookup = options.resolver !== undefined ? toNodeLookup(options.resolver) : undefined;
    this.quic = new QuicDialer({
      clock: options.clock,
      resolver: this.resolver,
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

  /** The TCP protocols a request may ask for, best first: what ALPN will offer. */
  tcpProtocols(): readonly ConnectionProtocol[] {
    return TCP_PROTOCOLS;
  }

  async dial(key: PoolKey, protocols: readonly ConnectionProtocol[], signal: AbortSignal): Promise<Connection> {
    if (!channels.dialStart.hasSubscribers && !channels.dialEnd.hasSubscribers) return this.dialAny(key, protocols, signal);
    const started = this.options.clock.now();
    channels.dialStart.publish({ origin: key.origin, protocols });
    try {
      const connection = await this.dialAny(key, protocols, signal);
      channels.dialEnd.publish({
        origin: key.origin,
        protocols,
        durationMs: this.options.clock.now() - started,
        connectionId: connection.id,
        protocol: connection.protocol,
      });
      return connection;
    } catch (error) {
      channels.dialEnd.publish({ origin: key.origin, protocols, durationMs: this.options.clock.now() - started, error });
      throw error;
    }
  }

  private async dialAny(key: PoolKey, protocols: readonly ConnectionProtocol[], signal: AbortSignal): Promise<Connection> {
    if (!protocols.includes('h3')) return this.dialTcp(key, protocols, signal);
    const tcp = protocols.filter((p) => p !== 'h3');
    const identity = key.tls ?? this.options.tls;
    const h3Possible = key.isHttps && this.quic.supports(identity);
    const route = this.routeFor(key);
    if (tcp.length === 0) {
      if (!h3Possible) {
        throw new MuxpoolError(
          'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE',
          key.isHttps ? 'HTTP/3 cannot present a TLS client certificate yet' : 'HTTP/3 needs an https: origin',
          { maybeProcessed: false },
        );
      }
      const deadline = protocols === PREPARE_H3 ? Math.min(this.options.quicHandshakeTimeoutMs, this.options.connectTimeoutMs) : this.options.connectTimeoutMs;
      if (protocols !== PREPARE_H3 && route.alternative === undefined) return this.dialH3(key, route, identity, deadline, signal);
      try {
        return await this.dialH3(key, route, identity, deadline, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        if (protocols === PREPARE_H3) {
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
        channels.fallback.publish({ origin: key.origin, from: 'h3', to: tcp, reason: h3Possible ? 'broken' : 'unsupported' });
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
      onLateQuic: (connection) => {
        if (this.onSpare !== undefined) this.onSpare(key, connection);
        else connection.destroy();
      },
      onLinger: (controller, done) => {
        this.lingering.add(controller);
        void done.finally(() => this.lingering.delete(controller));
      },
    });
    if (connection.protocol !== 'h3' && channels.fallback.hasSubscribers) {
      channels.fallback.publish({ origin: key.origin, from: 'h3', to: connection.protocol, reason: 'race' });
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
    return quicRoute(key, this.alternativeFor?.(key));
  }

  private async dialH3(
    key: PoolKey,
    route: QuicRoute,
    identity: TlsIdentity | undefined,
    handshakeTimeoutMs: number,
    signal: AbortSignal,
  ): Promise<Connection> {
    let quic;
    try {
      quic = await this.quic.dial(key, route, identity, handshakeTimeoutMs, signal);
    } catch (err) {
      // Remembered even for Http3Only (which ignores the mark): Auto and Http3 skip QUIC a while.
      if (!signal.aborted) this.quic.markBroken(route);
      throw err;
    }
    this.quic.markWorking(route);
    return new H3Connection(quic, {
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
  }

  private async dialTcp(key: PoolKey, protocols: readonly ConnectionProtocol[], signal: AbortSignal): Promise<Connection> {
    const wantsH2 = protocols.includes('h2');
    if (!wantsH2 && !protocols.includes('http/1.1')) {
      throw new MuxpoolError('MUXPOOL_ERR_PROTOCOL_UNAVAILABLE', `this build of muxpool cannot speak ${protocols.join(' or ')} yet`, {
        maybeProcessed: false,
      });
    }
    const identity = key.tls ?? this.options.tls;
    let lookup = this.lookup;
    if (wantsH2 && key.isHttps && this.canCoalesce(identity)) {
      const group = this.groupOf(key);
      if ((this.coalescableByPort.get(`${key.port}|${group}`) ?? 0) > 0) {
        const addresses = await resolveHost(this.resolver, key.host);
        const shared = this.findCoalescable(key, addresses, group);
        if (shared !== undefined) return shared.addView(key.id);
        // Connect to the addresses just resolved instead of asking again.
        lookup = toNodeLookup(() => Promise.resolve(addresses));
      }
    }
    // Over TLS one handshake offers both and ALPN decides; only an explicit HTTP/1.1 request
    // leaves h2 out. Cleartext has no ALPN: h2 there means prior knowledge (RFC 9113 §3.3).
    const priorKnowledge = !key.isHttps && wantsH2 && !protocols.includes('http/1.1');
    const alpn = key.isHttps ? (wantsH2 ? ['h2', 'http/1.1'] : ['http/1.1']) : [];
    const result = await dialTcp({
      host: key.host,
      port: key.port,
      isHttps: key.isHttps,
      tls: identity,
      alpn,
      connectTimeoutMs: this.options.connectTimeoutMs,
      signal,
      sessionCache: this.sessions,
      keyId: key.id,
      lookup,
    });
    if (result.alpn !== 'h2' && !priorKnowledge) {
      return new H1Connection(result.socket, {
        ...this.h1Options,
        remoteAddress: result.remoteAddress,
        resumed: key.isHttps ? result.resumed : undefined,
      });
    }
    let view;
    try {
      view = await H2Session.start(
        result.socket,
        `${key.isHttps ? 'https' : 'http'}://${key.authority}`,
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
          onClose: (session) => this.forget(session),
          onAltSvc: this.onAltSvc,
        },
        signal,
      );
    } catch (err) {
      result.socket.destroy();
      throw err;
    }
    if (key.isHttps && this.canCoalesce(identity)) this.remember(view.session, key);
    return view;
  }

  adopt(_key: PoolKey, socket: Duplex): Connection {
    return new H1Connection(socket, this.h1Options);
  }

  // ---------------------------------------------------------------------------------------
  // Coalescing (RFC 9113 §9.1.1): a connection "is reusable for requests to any origin whose
  // host resolves to the same IP address as the connection's, and for which the certificate
  // presented by the server is valid". Never across TLS identities, never when certificate
  // checks are off (then nothing proves the server is authoritative), never with an explicit
  // servername (the name checked is not the URL's host).

  private canCoalesce(identity: TlsIdentity | undefined): boolean {
    return this.options.coalesce && identity?.rejectUnauthorized !== false && identity?.servername === undefined;
  }

  /** Keys without TLS settings of their own use the pool's: one group for them all. */
  private groupOf(key: PoolKey): string {
    return key.tls !== undefined ? key.tlsId : '(pool)';
  }

  private findCoalescable(key: PoolKey, addresses: readonly ResolvedAddress[], group: string): H2Session | undefined {
    for (const { address } of addresses) {
      const candidates = this.coalescable.get(`${address}|${key.port}|${group}`);
      if (candidates === undefined) continue;
      for (const session of candidates) {
        // A full session would make the new origin wait; it gets a connection of its own.
        // The pool dials for a key only when the connections it has cannot take the stream.
        if (!session.acceptsStreams || session.active >= session.limit || session.serves(key.id)) continue;
        const cert = session.peerCertificate();
        if (cert !== undefined && tls.checkServerIdentity(key.host, cert) === undefined) return session;
      }
    }
    return undefined;
  }

  private remember(session: H2Session, key: PoolKey): void {
    const address = session.remoteAddress;
    if (address === undefined) return;
    const group = this.groupOf(key);
    const slot = `${address}|${key.port}|${group}`;
    let set = this.coalescable.get(slot);
    if (set === undefined) {
      set = new Set();
      this.coalescable.set(slot, set);
    }
    set.add(session);
    session.coalesceSlot = slot;
    session.coalescePortGroup = `${key.port}|${group}`;
    this.coalescableByPort.set(session.coalescePortGroup, (this.coalescableByPort.get(session.coalescePortGroup) ?? 0) + 1);
  }

  private forget(session: H2Session): void {
    const slot = session.coalesceSlot;
    const portGroup = session.coalescePortGroup;
    if (slot === undefined || portGroup === undefined) return;
    session.coalesceSlot = session.coalescePortGroup = undefined;
    const set = this.coalescable.get(slot);
    set?.delete(session);
    if (set !== undefined && set.size === 0) this.coalescable.delete(slot);
    const count = (this.coalescableByPort.get(portGroup) ?? 1) - 1;
    if (count <= 0) this.coalescableByPort.delete(portGroup);
    else this.coalescableByPort.set(portGroup, count);
  }
}
