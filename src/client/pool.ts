/**
 * `ConnectionPool`: the public API. It holds the protocol-agnostic pool core, wired to the real
 * transports through dial plans and the connector, maps the seed API (getH1, getOrCreate, …)
 * onto it, and adds `request()`: protocol choice, retries and timeouts live here.
 */
import { EventEmitter } from 'node:events';
import type { Duplex, Readable, Writable } from 'node:stream';
import { type Clock, type Timer, systemClock } from '../core/clock.js';
import { durationOption } from '../core/durations.js';
import { countOption } from '../core/options.js';
import { MuxpoolError, causeBeneath, isMuxpoolError } from '../errors.js';
import { SOCKS_CONNECTION_REFUSED } from '../connect/proxy-socks.js';
import type { PoolEntry } from '../pool/entry.js';
import { PoolKey, type TlsIdentity, tlsFingerprint } from '../pool/key.js';
import { MemoryOriginStore, type OriginStore } from '../connect/origin-store.js';
import { type AcquireOptions, type CleanupTask, PoolCore, type PoolCoreOptions } from '../pool/pool.js';
import { type RequestPriority, priorityError } from '../pool/waiter.js';
import type { Connection } from '../protocol/connection.js';
import { HttpVersion, isHttpVersion } from '../protocol/version.js';
import type { Resolver } from '../connect/resolve.js';
import { channels } from '../core/diagnostics.js';
import { routesFingerprint } from '../connect/overrides.js';
import { parsePins } from '../connect/pins.js';
import { AltSvcCache } from './alt-svc-cache.js';
import { verifiesOwnHost } from './coalescing.js';
import { DefaultConnector } from './connector.js';
import { type DialPlan, type DialPlans, dialPlans } from './dial-plan.js';
import { ACCEPT_ENCODING, decodersFor } from './decode.js';
import {
  type DispatchBody,
  type DispatchResponseData,
  type ResponseStartData,
  type StreamResult,
  notSupported,
  pipelineVia,
  requestVia,
  settle,
  streamVia,
} from './dispatcher-api.js';
import { DispatchBatch } from './dispatch-batch.js';
import { type DispatchHandler, type DispatchOptions, DispatchSink, dispatchBody, dispatchHeaders, dispatchUrl } from './dispatcher.js';
import { Exchange, type ResponseHeadInfo } from './exchange.js';
import { OriginFacts } from './origin-facts.js';
import { type ProxyPerScheme, type ProxySelector, proxySelectorFor } from './proxy-env.js';
import { forwardedAuthFailure, proxiedRequest } from './proxy-request.js';
import { type BodyInit, type HeadersInit, type PreparedRequest, parseUrl, prepareRequest } from './prepare.js';
import { type RedirectMode, isRedirect, nextHop, redirectModeOf } from './redirect.js';
import { ObservedRequest, publishConnectionClose, requestObserved, sendObserved } from './request-events.js';
import { Response } from './response.js';
import { type PoolStats, poolStats } from './stats.js';

/** An HTTP connection as the pool holds it. */
export type HttpPoolEntry = PoolEntry<Connection>;

export interface ConnectionPoolOptions extends PoolCoreOptions {
  /** TCP connect plus TLS handshake. Default 10 000. */
  connectTimeoutMs?: number;
  /**
   * A request fails with READ_TIMEOUT when its stream makes no progress this long: nothing
   * received and none of the request body taken by the peer. `Infinity`: no read deadline. Default 300 000.
   */
  readTimeoutMs?: number;
  /** Retire idle HTTP/1.1 sockets this long before the server's Keep-Alive timeout, and idle HTTP/3 connections this long before the agreed QUIC idle timeout. Default 1 000. */
  keepAliveMarginMs?: number;
  /** Response header section limits. Defaults 16 384 bytes and 128 fields. */
  maxHeaderBytes?: number;
  maxHeaderCount?: number;
  /** TLS settings for every https origin: extra CAs, verification, SNI, client certificate. */
  tls?: TlsIdentity;
  /** TLS sessions kept for resumption, one per key. Default 256. */
  tlsSessionCacheSize?: number;
  /**
   * HTTP/2 health: a session silent for this long gets a PING before it is reused, and every
   * interval while requests wait on it. 0 turns it off. Default 15 000.
   */
  pingIntervalMs?: number;
  /** A PING unanswered for this long closes the session as dead. Default 5 000. */
  pingTimeoutMs?: number;
  /**
   * HTTP/2 connection coalescing (RFC 9113 §9.1.1): a host that resolves to the address of an
   * open connection whose certificate covers it reuses that connection. Default true.
   */
  coalesce?: boolean;
  /** Name resolution for every dial (default: the system's, as `dns.lookup`). */
  resolver?: Resolver;
  /**
   * Keep resolved addresses this long at most; 0 (default) asks the resolver on every dial. The
   * system resolver reports no TTL, so its answers are kept this long; a resolver that returns
   * `ttlSeconds` (such as `dnsTtlResolver`) has them kept for the TTL when it is shorter.
   */
  dnsCacheMs?: number;
  /**
   * curl's `--resolve`: `host:port:address[,address]…` entries giving the addresses of a host
   * for one port, without DNS. TCP and QUIC both use them; TLS still checks the URL's host.
   */
  resolve?: readonly string[];
  /**
   * curl's `--connect-to`: `host:port:host2:port2` entries sending connections for host:port to
   * host2:port2 (an empty part matches any, or keeps the original). TLS still checks the URL's host.
   */
  connectTo?: readonly string[];
  /**
   * Send every request through this Unix domain socket (undici's `socketPath`); the URL still
   * gives Host, the scheme and the TLS server name. A request's own `socketPath` wins.
   */
  socketPath?: string;
  /** undici's connector options, as `new Agent({ connect })` takes them: only `socketPath` is read. */
  connect?: { socketPath?: string | null };
  /** QUIC idle timeout we advertise (HTTP/3); the server's applies when smaller (RFC 9000 §10.1). Default 30 000. */
  quicIdleTimeoutMs?: number;
  /**
   * With `HttpVersion.Http3`, the QUIC handshake gets this long before the request falls back to
   * TCP (`Http3Only` waits `connectTimeoutMs`). Default 3 000.
   */
  quicHandshakeTimeoutMs?: number;
  /** After HTTP/3 failed for an origin, `Http3` skips it this long (doubling per failure, up to 30 min). Default 300 000. */
  h3BrokenBackoffMs?: number;
  /**
   * HTTP/3 0-RTT: a resumed connection sends GET and HEAD requests without a body before its
   * handshake completes (one round trip saved); other requests wait for the handshake, since
   * early data can be replayed by an attacker (RFC 8470). Default false.
   */
  earlyData?: boolean;
  /**
   * When HTTP/3 is preferred (`Http3`, or `Auto` once the origin advertised h3 in Alt-Svc), QUIC
   * gets this head start before TCP is tried in parallel; the first connection up serves.
   * Default 300.
   */
  h3RaceDelayMs?: number;
  /**
   * Where the pool keeps what it learns about origins (Alt-Svc, HTTP/3 failures, TLS and QUIC
   * session tickets). Default: in memory, for this pool. A `FileOriginStore` shared by processes
   * lets a new one go straight to HTTP/3 and resume its sessions.
   */
  originStore?: OriginStore;
  /**
   * How many times a failed request may be sent again, when that is safe: the server provably did
   * not process it (a refused connection, GOAWAY above its last stream, REFUSED_STREAM,
   * H3_REQUEST_REJECTED, a reused connection found dead before anything was written), or it is
   * replayable and idempotent and failed on a reused connection before any response. Default 1;
   * 0 turns retries off.
   */
  maxRetries?: number;
  /**
   * A proxy for every request: `http://`, `https://` (TLS to the proxy), `socks5://` (the name
   * resolved here) or `socks5h://` (resolved by the proxy), with optional `user:password@`
   * (percent-encoded); or `'env'` to follow `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
   * `NO_PROXY` (either case, read when the pool is built). https URLs go through a CONNECT
   * tunnel (or SOCKS5), http URLs are forwarded in absolute form (or tunnelled through SOCKS5).
   * HTTP/3 never goes through a proxy. `{ http, https }` names a proxy per URL scheme (a
   * missing one: direct). A bad URL fails here with `MUXPOOL_ERR_INVALID_ARGUMENT`.
   */
  proxy?: string | ProxyPerScheme;
  /**
   * Hosts that go direct despite `proxy`, as curl's `NO_PROXY` (replaces the environment's with
   * `'env'`): names (matching subdomains too), IP addresses, CIDR ranges, `host:port`, or `*`.
   */
  noProxy?: string | readonly string[];
}

/** The Dispatcher events the pool emits: the origin, the dispatchers involved (the pool), and the error. */
export interface PoolEventMap {
  connect: [origin: URL, targets: readonly ConnectionPool[]];
  disconnect: [origin: URL, targets: readonly ConnectionPool[], error: Error | null];
  connectionError: [origin: URL, targets: readonly ConnectionPool[], error: Error];
}

/** undici's `dispatch(options, handler)`, as interceptors take and return it. */
export type DispatchFunction = (options: DispatchOptions, handler: DispatchHandler) => boolean;
/** An undici interceptor: takes a dispatch function, returns one that wraps it. */
export type DispatchInterceptor = (dispatch: DispatchFunction) => DispatchFunction;

/** What one send (one hop, every attempt) needs of the request's options. */
type SendOptions = Pick<RequestOptions, 'version' | 'acquireTimeoutMs' | 'priority' | 'socketPath'> & {
  /** Keep the head's raw fields on the exchange (the Dispatcher hands them to undici's `onHeaders`). */
  rawFields?: boolean;
};

/** What `dispatch()` sends with: the pool's defaults, raw fields kept. */
const DISPATCH_SEND: SendOptions = { rawFields: true };

export interface RequestOptions {
  method?: string;
  headers?: HeadersInit;
  body?: BodyInit;
  /** Default `Auto`: http → HTTP/1.1, https → ALPN. */
  version?: HttpVersion;
  /**
   * Connect through this Unix domain socket (every hop, redirects included, as curl's
   * `--unix-socket`); the URL still gives Host, the scheme and the TLS server name. HTTP/3
   * cannot run over it: `Auto` and `Http3` use TCP-style HTTP/1.1 or HTTP/2, `Http3Only` fails.
   */
  socketPath?: string;
  signal?: AbortSignal;
  /** The whole request, from acquiring a connection to the end of the body. */
  timeoutMs?: number;
  /** How long to wait for a connection slot when every cap is reached. */
  acquireTimeoutMs?: number;
  /** When callers must wait for a slot, higher classes go first (FIFO within one, no starvation). Default `'normal'`. */
  priority?: RequestPriority;
  /**
   * What a redirect (301, 302, 303, 307, 308 with a Location) does: `'follow'` it (default, as
   * fetch does), hand it back as the response (`'manual'`), or fail (`'error'`). 303, and 301/302
   * after POST, become GET without a body; 307/308 keep method and body. A redirect to another
   * origin drops `authorization`, `cookie` and `proxy-authorization`.
   */
  redirect?: 'follow' | 'manual' | 'error';
  /** Redirects followed before `MUXPOOL_ERR_TOO_MANY_REDIRECTS`. Default 20. */
  maxRedirects?: number;
  /**
   * Send `accept-encoding` (unless set) and decode a gzip, deflate, br (or zstd) body as it is
   * read. Default true; false hands the body over as it was sent.
   */
  decompress?: boolean;
}

const MAX_CACHED_KEYS = 1024;
const MAX_CACHED_URLS = 256;

/** Failures that a retry cannot fix or that the caller asked for. */
const NEVER_RETRIED = new Set<string>([
  'MUXPOOL_ERR_ABORTED',
  'MUXPOOL_ERR_REQUEST_TIMEOUT',
  'MUXPOOL_ERR_INVALID_BODY',
  'MUXPOOL_ERR_POOL_CLOSED',
  'MUXPOOL_ERR_HEADERS_TOO_LARGE',
  'MUXPOOL_ERR_H1_PARSE',
  'MUXPOOL_ERR_H1_CONTENT_LENGTH',
  'MUXPOOL_ERR_TLS_PIN',
  'MUXPOOL_ERR_TLS_CLIENT_CERT',
]);

/**
 * Whether a request that failed before its response head may be sent again: when the server
 * cannot have processed it, or when it came on a reused connection (the classic stale
 * keep-alive race) and replaying it is harmless.
 */
function isRetryable(err: MuxpoolError, exchange: Exchange, prepared: PreparedRequest): boolean {
  if (exchange.head !== undefined || NEVER_RETRIED.has(err.code) || !prepared.replayable) return false;
  if (err.maybeProcessed === false) return true;
  return exchange.reused && prepared.idempotent;
}

/**
 * A dial the peer refused: nothing was sent, so any request may try again. The retry dials
 * afresh (resolving again, so a name that moved to a live address is followed; another address
 * of the name may answer). Not a dial that timed out (the retry would spend the caller's time
 * twice) nor one that failed TLS or DNS (the same answer would come back). Each attempt has its
 * own `acquireTimeoutMs`; `timeoutMs` covers them all.
 */
function isRetryableDialFailure(err: MuxpoolError): boolean {
  if (err.maybeProcessed !== false) return false;
  if (err.code === 'MUXPOOL_ERR_CONNECT_REFUSED') return true;
  // Through a proxy, the same two refusals: the proxy's port, or (SOCKS5 reply 5) the target's.
  // A tunnel the proxy refused by status, or a 407, would get the same answer again.
  // A copy made for one request has the shared error as its cause: the socket's error is below it.
  if (err.code === 'MUXPOOL_ERR_PROXY_CONNECT') return isMuxpoolError(causeBeneath(err), 'MUXPOOL_ERR_CONNECT_REFUSED');
  return err.code === 'MUXPOOL_ERR_SOCKS' && err.replyCode === SOCKS_CONNECTION_REFUSED;
}

/**
 * The error a request throws, with its attempt count. An error object may reach several
 * requests (a connection that failed them all): the first to throw it annotates it, any later
 * one throws a copy of its own, so no request's `attempts` overwrites another's.
 */
function ownError(err: MuxpoolError, attempt: number): MuxpoolError {
  const own = err.attempts === undefined ? err : err.forRequest();
  own.attempts = attempt;
  return own;
}

/** Timeout and abort for one request: cancels whatever phase the request is in. */
class RequestControl {
  /**
   * What an acquire that has to wait listens to. Made only then: an AbortController costs
   * several microseconds in Node 20 (a transferable object), a visible share of a small request
   * that finds an idle connection at once.
   */
  private controller: AbortController | undefined;
  /** Why the request ended early, for a signal asked for after it did. */
  private firedWith: MuxpoolError | undefined;
  exchange: Exchange | undefined;
  private timer: Timer | undefined;
  private readonly callerSignal: AbortSignal | undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(clock: Clock, signal: AbortSignal | undefined, timeoutMs: number | undefined) {
    if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
      this.timer = clock.setTimer(
        () =>
          this.fire(
            new MuxpoolError('MUXPOOL_ERR_REQUEST_TIMEOUT', `request did not complete within ${timeoutMs} ms`, {
              maybeProcessed: true,
            }),
          ),
        timeoutMs,
      );
    }
    if (signal !== undefined) {
      this.callerSignal = signal;
      this.onAbort = () =>
        this.fire(new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the request was aborted', { cause: signal.reason, maybeProcessed: true }));
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  /**
   * Ends the request in whatever phase it is: the live exchange is cancelled, and the signal of
   * any acquire under way (a retry, the next redirect hop) fires too.
   */
  private fire(err: MuxpoolError): void {
    const exchange = this.exchange;
    if (exchange !== undefined && !exchange.finished) {
      err.maybeProcessed = exchange.head !== undefined || exchange.stream !== undefined;
      exchange.cancel(err);
    } else {
      err.maybeProcessed = false;
    }
    this.firedWith = err;
    this.controller?.abort(err);
    this.dispose();
  }

  /** Ends the request now (a dispatch handler's abort): as a fired signal would. */
  abort(err: MuxpoolError): void {
    if (this.firedWith === undefined) this.fire(err);
  }

  /** The signal for an acquire that waits: aborted already when the request ended before. */
  get acquireSignal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.firedWith !== undefined) this.controller.abort(this.firedWith);
    }
    return this.controller.signal;
  }

  dispose(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.callerSignal !== undefined && this.onAbort !== undefined) this.callerSignal.removeEventListener('abort', this.onAbort);
  }
}

/** Each pool's core, for `muxpool/testing` (kept off the public type). */
const cores = new WeakMap<ConnectionPool, PoolCore<Connection, DialPlan>>();

/** `stats()` at once, without a promise: for tests that poll (`muxpool/testing`). */
export function statsNow(pool: ConnectionPool): PoolStats {
  const core = cores.get(pool);
  if (core === undefined) throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'not a muxpool ConnectionPool');
  return poolStats(core.snapshot(), core.clock.now());
}

/**
 * Stream slots on a pool's connections for one URL, taken and given back directly: what the load
 * generator (`muxpool bench`) drives its requests through instead of `request()`. Dialing,
 * `maxPerHost`, `maxStreams`, waiting and protocol choice stay the pool's; retries, redirects and
 * the `Response` are left out. Internal: not part of the public API.
 */
export interface ConnectionLender {
  /** A slot now without dialing or waiting, or undefined. */
  tryAcquire(): HttpPoolEntry | undefined;
  /** A slot: now, on a connection the pool dials, or after waiting (bounded like `request()`'s). */
  acquire(options?: AcquireOptions): Promise<HttpPoolEntry>;
  /** Gives the slot back once its stream ended (completed or failed). */
  release(entry: HttpPoolEntry): void;
}

const lenders = new WeakMap<ConnectionPool, (url: URL, version: HttpVersion | undefined) => ConnectionLender>();

/** The `ConnectionLender` of `pool` for `url`, with `version` chosen as `request()` would. */
export function connectionLender(pool: ConnectionPool, url: URL, version: HttpVersion | undefined): ConnectionLender {
  const lender = lenders.get(pool);
  if (lender === undefined) throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'not a muxpool ConnectionPool');
  return lender(parseUrl(url), version);
}

/**
 * The pool. Also an undici `Dispatcher` (an EventEmitter with `dispatch`, `close`, `destroy` and
 * the `connect`, `disconnect` and `connectionError` events), so `fetch(url, { dispatcher: pool })`
 * and undici's APIs run on it.
 */
export class ConnectionPool extends EventEmitter<PoolEventMap> {
  private readonly core: PoolCore<Connection, DialPlan>;
  private readonly plans: DialPlans;
  private readonly keys = new Map<string, PoolKey>();
  /** Hand-built keys given the pool's TLS settings where `keyFor` would pick another proxy. */
  private readonly tlsKeys = new Map<string, PoolKey>();
  private readonly urls = new Map<string, URL>();
  /** `dispatch()` calls of this turn, started together after its I/O (dispatch-batch.ts). */
  private readonly dispatches = new DispatchBatch((options, sink) => void this.dispatchNow(options, sink));
  /** Dispatched requests not yet ended: alone, a request starts at once (nothing to batch with). */
  private dispatchesInFlight = 0;
  private readonly dispatchSettled = (): void => {
    this.dispatchesInFlight--;
  };
  private readonly transports: DefaultConnector;
  private readonly altSvc: AltSvcCache;
  private readonly store: OriginStore;
  private readonly maxRetries: number;
  private readonly tls: TlsIdentity | undefined;
  /** Which requests go through which proxy (undefined: all direct). */
  private readonly proxies: ProxySelector | undefined;
  private readonly socketPath: string | undefined;
  /** Sockets out with getH1()/acquireH1() callers, to recognise them in putH1(). */
  private readonly lentSockets = new WeakMap<Duplex, HttpPoolEntry>();
  private readonly releaseBound = (entry: HttpPoolEntry): void => this.core.release(entry);

  /** The seed's constructor with its three settings. */
  static withConfig(maxIdleMs: number, maxPerHost: number, maxStreams: number): ConnectionPool {
    return new ConnectionPool({ maxIdleMs, maxPerHost, maxStreams });
  }

  constructor(options: ConnectionPoolOptions = {}) {
    super();
    const clock = options.clock ?? systemClock;
    // First: a bad proxy URL fails before anything is built.
    this.proxies = proxySelectorFor(options.proxy, options.noProxy);
    const store = options.originStore ?? new MemoryOriginStore();
    // Keys without TLS settings of their own use the pool's: their records carry its fingerprint,
    // so nothing learned under one trust configuration serves another.
    const poolTls = options.tls !== undefined ? tlsFingerprint(options.tls) : 'default';
    // Host overrides change where an origin's connections go: what is learned through them is
    // kept apart from what is learned going direct (routesFingerprint is '' without overrides).
    const routes = routesFingerprint(options.resolve, options.connectTo);
    const routed = routes === '' ? '' : `~${routes}`;
    const recordFor = (keyId: string): string => (keyId.includes('#') ? `${keyId}${routed}` : `${keyId}#${poolTls}${routed}`);
    // A malformed pin fails here, not at the first https request.
    parsePins(options.tls?.pins);
    const facts = new OriginFacts(store, recordFor);
    this.plans = dialPlans(facts);
    this.store = store;
    this.tls = options.tls;
    this.socketPath = options.socketPath ?? options.connect?.socketPath ?? undefined;
    this.maxRetries = countOption('maxRetries', options.maxRetries, 1, 0);
    this.transports = new DefaultConnector({
      clock,
      connectTimeoutMs: durationOption('connectTimeoutMs', options.connectTimeoutMs, 10_000, { min: 1, allowInfinity: true }),
      readTimeoutMs: durationOption('readTimeoutMs', options.readTimeoutMs, 300_000, { min: 1, allowInfinity: true }),
      keepAliveMarginMs: durationOption('keepAliveMarginMs', options.keepAliveMarginMs, 1_000, { min: 0 }),
      maxHeaderBytes: countOption('maxHeaderBytes', options.maxHeaderBytes, 16_384, 256),
      maxHeaderCount: countOption('maxHeaderCount', options.maxHeaderCount, 128, 1),
      maxStreams: countOption('maxStreams', options.maxStreams, 100, 1, true),
      pingIntervalMs: durationOption('pingIntervalMs', options.pingIntervalMs, 15_000, { min: 0, allowInfinity: true }),
      pingTimeoutMs: durationOption('pingTimeoutMs', options.pingTimeoutMs, 5_000, { min: 1, allowInfinity: true }),
      coalesce: options.coalesce !== false,
      tls: options.tls,
      tlsSessionCacheSize: countOption('tlsSessionCacheSize', options.tlsSessionCacheSize, 256, 0),
      resolver: options.resolver,
      dnsCacheMs: durationOption('dnsCacheMs', options.dnsCacheMs, 0, { min: 0 }),
      resolve: options.resolve,
      connectTo: options.connectTo,
      quicIdleTimeoutMs: durationOption('quicIdleTimeoutMs', options.quicIdleTimeoutMs, 30_000, { min: 1 }),
      quicHandshakeTimeoutMs: durationOption('quicHandshakeTimeoutMs', options.quicHandshakeTimeoutMs, 3_000, { min: 1 }),
      h3BrokenBackoffMs: durationOption('h3BrokenBackoffMs', options.h3BrokenBackoffMs, 300_000, { min: 0 }),
      earlyData: options.earlyData === true,
      h3RaceDelayMs: durationOption('h3RaceDelayMs', options.h3RaceDelayMs, 300, { min: 0 }),
      store,
      recordFor,
      facts,
      // These run only once connections exist, long after the fields below are set.
      alternativeFor: (key) => this.altSvc.get(key),
      // A QUIC connection that lost its race but came up anyway joins the pool as a spare.
      onSpare: (key, connection) => this.core.adopt(key, connection),
      // An ALTSVC frame is learned like the header field of an `Auto` response.
      onAltSvc: (keyId, value) => {
        const key = this.core.keyById(keyId);
        if (key?.isHttps === true) this.learnAltSvc(key, value, HttpVersion.Auto);
      },
      owner: this,
    });
    this.core = new PoolCore<Connection, DialPlan>(this.transports, { ...options, clock }, facts, {
      // undici's Dispatcher events: (origin URL, [dispatchers], error?). Nothing is built unheard.
      connected: (key) => {
        if (this.listenerCount('connect') > 0) this.emit('connect', new URL(key.origin), [this]);
      },
      disconnected: (key, connection, err) => {
        if (channels.connectionClose.hasSubscribers) publishConnectionClose(this, key.origin, connection, err, this.core.clock.now());
        if (this.listenerCount('disconnect') > 0) this.emit('disconnect', new URL(key.origin), [this], err ?? null);
      },
      dialFailed: (key, err) => {
        if (this.listenerCount('connectionError') > 0) this.emit('connectionError', new URL(key.origin), [this], err);
      },
    });
    cores.set(this, this.core);
    lenders.set(this, (url, version) => this.lender(url, version));
    this.altSvc = new AltSvcCache(
      clock,
      store,
      recordFor,
      // Certificates checked against the key's own host: what makes an alternative elsewhere safe.
      (key) => verifiesOwnHost(key.tls ?? options.tls),
      (key, alternative) => this.transports.forgetAlternative(key, alternative),
    );
  }

  // ---------------------------------------------------------------------------------------
  // Configuration, as given (or defaulted)

  get maxIdleMs(): number {
    return this.core.maxIdleMs;
  }

  get maxPerHost(): number {
    return this.core.maxPerHost;
  }

  get maxStreams(): number {
    return this.core.maxStreams;
  }

  get acquireTimeoutMs(): number {
    return this.core.acquireTimeoutMs;
  }

  get maxWaiters(): number {
    return this.core.maxWaiters;
  }

  get overflowWaitMs(): number {
    return this.core.overflowWaitMs;
  }

  /** True once `close()` or `destroy()` was called: the pool takes no new work. */
  get closed(): boolean {
    return this.core.closed;
  }

  // ---------------------------------------------------------------------------------------
  // The seed API

  /** An idle HTTP/1.1 socket for `key`, most recently returned first; undefined if none. */
  async getH1(key: PoolKey): Promise<Duplex | undefined> {
    const entry = this.core.lendIdle(this.withPoolTls(key));
    return entry === undefined ? undefined : this.lendSocket(entry);
  }

  /**
   * An HTTP/1.1 socket for `key`: an idle one, or a new one dialed within `maxPerHost`; waits
   * (FIFO, bounded) when the cap is reached. Give it back with `putH1()`. Until then it is the
   * caller's: `close()` does not wait for it, and closes it if it comes back afterwards.
   */
  async acquireH1(key: PoolKey, options: AcquireOptions = {}): Promise<Duplex> {
    const entry = await this.core.acquire(this.withPoolTls(key), this.plans.h1, false, options);
    if (entry === undefined) throw new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'HTTP/1.1 acquire settled without a connection');
    this.core.lend(entry);
    return this.lendSocket(entry);
  }

  /** Returns an HTTP/1.1 socket; it is closed instead when the pool keeps nothing for it. */
  async putH1(key: PoolKey, socket: Duplex): Promise<void> {
    const own = this.withPoolTls(key);
    const entry = this.lentSockets.get(socket);
    if (entry !== undefined) {
      if (entry.key.id !== own.id) {
        throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `putH1: this socket belongs to ${entry.key.id}, not ${own.id}`);
      }
      this.lentSockets.delete(socket);
      entry.connection.reattachSocket?.();
      // Closed meanwhile (the pool closed, or dropped it): the socket goes with it.
      if (!this.core.takeBack(entry)) entry.connection.destroy();
      return;
    }
    if (this.core.closed || socket.destroyed || !socket.readable) {
      socket.destroy();
      return;
    }
    this.core.adopt(own, this.transports.adoptSocket(socket));
  }

  /**
   * A stream slot on an HTTP/2 or HTTP/3 connection for `key`: on an open connection with room,
   * or on one the pool dials (one dial for many callers). `undefined` for `Http1_1`, and when
   * the origin turns out to speak only HTTP/1.1 (use `acquireH1` then). Waits when every cap is
   * reached; rejects at the deadline or on abort.
   */
  async getOrCreate(key: PoolKey, version: HttpVersion, options: AcquireOptions = {}): Promise<HttpPoolEntry | undefined> {
    const own = this.withPoolTls(key);
    switch (version) {
      case HttpVersion.Http1_1:
        return undefined;
      case HttpVersion.Http2:
      case HttpVersion.Auto:
        return this.core.acquire(own, this.plans.h2, true, options);
      case HttpVersion.Http3:
        return this.core.acquire(own, this.plans.h3OrH2, true, options);
      case HttpVersion.Http3Only:
        return this.core.acquire(own, this.plans.h3Only, false, options);
      default:
        throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `unknown HTTP version ${String(version)}`);
    }
  }

  /** Gives a stream slot back: by entry, or by key (the most recently used busy entry). */
  async release(entryOrKey: PoolEntry | PoolKey): Promise<void> {
    // Entries come from getOrCreate() of this pool: they hold its connections.
    const entry = entryOrKey instanceof PoolKey ? this.core.busyEntryOf(this.withPoolTls(entryOrKey)) : (entryOrKey as HttpPoolEntry);
    if (entry !== undefined) this.core.release(entry);
  }

  /** No new streams go to this connection (or to every connection of a key); open ones finish. */
  async invalidate(entryOrKey: PoolEntry | PoolKey): Promise<void> {
    this.core.invalidate(entryOrKey instanceof PoolKey ? this.withPoolTls(entryOrKey) : (entryOrKey as HttpPoolEntry));
  }

  /**
   * Closes expired (idle longer than maxIdleMs or past the peer's keep-alive deadline), dead and
   * invalid idle connections. Returns milliseconds until the next one expires, if any is idle.
   */
  async cleanup(): Promise<number | undefined> {
    return this.core.cleanup();
  }

  /** Runs `cleanup()` every `intervalMs` until `stop()`; never keeps the process alive. */
  spawnCleanupTask(intervalMs: number): CleanupTask {
    return this.core.spawnCleanupTask(intervalMs);
  }

  async stats(): Promise<PoolStats> {
    return statsNow(this);
  }

  /**
   * Stops new work: waiters fail, idle connections close, busy ones close when their requests
   * end. Resolves once every connection the pool owns is closed — after the requests in flight
   * and the bodies still being read; bound it with the requests' `timeoutMs` or `signal`, or use
   * `destroy()`. Sockets lent out with `getH1()`/`acquireH1()` are their borrowers'.
   */
  close(): Promise<void>;
  /** undici's callback form. */
  close(callback: (err: Error | null) => void): void;
  close(callback?: (err: Error | null) => void): Promise<void> | void {
    const closing = this.closeNow();
    if (callback === undefined) return closing;
    closing.then(() => callback(null), (err: unknown) => callback(err as Error));
  }

  /** Ends everything now: waiters fail, dials abort, connections are destroyed with `err`. */
  destroy(err?: Error | null): Promise<void>;
  /** undici's callback forms. */
  destroy(callback: (err: Error | null) => void): void;
  destroy(err: Error | null, callback: (err: Error | null) => void): void;
  destroy(
    errOrCallback?: Error | null | ((err: Error | null) => void),
    callback?: (err: Error | null) => void,
  ): Promise<void> | void {
    const done = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const err = typeof errOrCallback === 'function' || errOrCallback === null ? undefined : errOrCallback;
    const destroying = this.destroyNow(err);
    if (done === undefined) return destroying;
    destroying.then(() => done(null), (e: unknown) => done(e as Error));
  }

  private async closeNow(): Promise<void> {
    this.dispatches.flush();
    this.transports.abortPending();
    await this.core.close();
    this.store.flush();
  }

  private async destroyNow(err: Error | undefined): Promise<void> {
    this.dispatches.flush();
    this.transports.abortPending();
    await this.core.destroy(err);
    this.store.flush();
  }

  /**
   * undici's Dispatcher contract: sends `options` and drives `handler` (either handler shape)
   * with the raw response — no redirects followed, nothing decoded (fetch does both itself).
   * Errors, bad options included, reach the handler's error callback. Returns true: the pool
   * queues what it cannot serve at once, so callers never need to wait for 'drain'. While other
   * dispatches are in flight, a request starts with the others of this event-loop turn, once
   * its I/O callbacks ran (the handler's `onConnect` comes then), so their writes leave together.
   */
  dispatch(options: DispatchOptions, handler: DispatchHandler): boolean {
    const sink = new DispatchSink(handler);
    sink.onSettled = this.dispatchSettled;
    // Batching pays when several requests' I/O interleaves; one alone would only wait for it.
    if (++this.dispatchesInFlight === 1 && this.dispatches.isEmpty) void this.dispatchNow(options, sink);
    else this.dispatches.add(options, sink);
    return true;
  }

  /** undici's `stream()`: the response body goes into the Writable `factory` returns. */
  stream<TOpaque = null>(options: DispatchOptions & { opaque?: TOpaque }, factory: (data: ResponseStartData<TOpaque>) => Writable): Promise<StreamResult<TOpaque>>;
  stream<TOpaque = null>(
    options: DispatchOptions & { opaque?: TOpaque },
    factory: (data: ResponseStartData<TOpaque>) => Writable,
    callback: (err: Error | null, data: StreamResult<TOpaque>) => void,
  ): void;
  stream<TOpaque = null>(
    options: DispatchOptions & { opaque?: TOpaque },
    factory: (data: ResponseStartData<TOpaque>) => Writable,
    callback?: (err: Error | null, data: StreamResult<TOpaque>) => void,
  ): Promise<StreamResult<TOpaque>> | void {
    return settle(
      streamVia((o, h) => this.dispatch(o, h), options, factory),
      callback,
    );
  }

  /** undici's `pipeline()`: write the request body in, read what `handler` makes of the response out. */
  pipeline<TOpaque = null>(
    options: DispatchOptions & { opaque?: TOpaque },
    handler: (data: ResponseStartData<TOpaque> & { body: DispatchBody }) => Readable,
  ): Duplex {
    return pipelineVia((o, h) => this.dispatch(o, h), options, handler);
  }

  /**
   * undici's `compose()`: a view of this pool whose `dispatch` runs through `interceptors`
   * (each takes a dispatch function and returns one); everything else is the pool's.
   */
  compose(...interceptors: unknown[]): this {
    // Typed loosely so undici's own interceptor types (of any undici version) fit; each one is
    // a `DispatchInterceptor`, checked here at run time.
    let dispatch: DispatchFunction = (o, h) => this.dispatch(o, h);
    for (const interceptor of interceptors.flat()) {
      if (typeof interceptor !== 'function') {
        throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `an interceptor must be a function, got ${typeof interceptor}`);
      }
      dispatch = (interceptor as DispatchInterceptor)(dispatch);
    }
    return new Proxy(this, { get: (target, name, receiver) => (name === 'dispatch' ? dispatch : Reflect.get(target, name, receiver)) });
  }

  /** undici's `connect()`: refused, typed (`MUXPOOL_ERR_NOT_SUPPORTED`): muxpool opens no CONNECT tunnels. */
  connect(options: object): Promise<never>;
  connect(options: object, callback: (err: Error | null, data: never) => void): void;
  connect(_options: object, callback?: (err: Error | null, data: never) => void): Promise<never> | void {
    return settle(notSupported('CONNECT tunnels (connect())'), callback);
  }

  /** undici's `upgrade()`: refused, typed (`MUXPOOL_ERR_NOT_SUPPORTED`): muxpool switches no protocols. */
  upgrade(options: object): Promise<never>;
  upgrade(options: object, callback: (err: Error | null, data: never) => void): void;
  upgrade(_options: object, callback?: (err: Error | null, data: never) => void): Promise<never> | void {
    return settle(notSupported('HTTP upgrades (upgrade())'), callback);
  }

  private async dispatchNow(options: DispatchOptions, sink: DispatchSink): Promise<void> {
    let exchange: Exchange | undefined;
    try {
      const url = dispatchUrl(options);
      // The handler's abort goes straight to the request's control: no AbortController and
      // listener per dispatch (the control makes a signal only for an acquire that waits).
      const control = new RequestControl(this.core.clock, undefined, undefined);
      sink.start(control);
      if (sink.aborted) throw new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the dispatch was aborted', { cause: sink.reason, maybeProcessed: false });
      const prepared = prepareRequest(url, options.method, dispatchHeaders(options.headers), dispatchBody(options.body), undefined);
      exchange = await this.send(prepared, DISPATCH_SEND, control);
      const settled = exchange;
      // A dispatch's control has no timer and no signal (it was made without either), so nothing
      // is left to dispose when the exchange ends: no onFinish closure per dispatch.
      const head = settled.head as ResponseHeadInfo;
      sink.body = settled;
      const flowing = sink.head(head.status, head.headers, head.statusText, settled.rawHead);
      settled.rawHead = undefined;
      if (sink.aborted) {
        // Aborted (or threw) from its head callback: the request ends; the sink says why.
        if (!settled.finished) settled.cancel(new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the dispatch was aborted', { cause: sink.reason, maybeProcessed: true }));
        return;
      }
      settled.forward(sink, flowing);
    } catch (err) {
      const failure = err instanceof Error ? err : new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'dispatch failed', { cause: err });
      if (exchange !== undefined && !exchange.finished) exchange.cancel(failure instanceof MuxpoolError ? failure : new MuxpoolError('MUXPOOL_ERR_INTERNAL', failure.message, { cause: failure }));
      sink.onBodyError(failure);
    }
  }

  /**
   * A key built by a caller without TLS settings of its own takes the pool's, so it finds the
   * same connections as `request()` to that origin (and `maxPerHost` counts them together).
   */
  private withPoolTls(key: PoolKey): PoolKey {
    if (!key.isHttps || key.tls !== undefined || this.tls === undefined) return key;
    const own = this.keyFor(`https://${key.authority}/`, key.socketPath);
    if (own.proxy === key.proxy) return own;
    // The key's own proxy (or none) is kept: a hand-built key says itself whether it is proxied.
    // Cached: a key's TLS fingerprint costs a hash of the CAs.
    let withTls = this.tlsKeys.get(key.id);
    if (withTls === undefined) {
      withTls = new PoolKey(key.host, key.port, true, this.tls, { proxy: key.proxy, socketPath: key.socketPath });
      if (this.tlsKeys.size >= MAX_CACHED_KEYS) this.tlsKeys.clear();
      this.tlsKeys.set(key.id, withTls);
    }
    return withTls;
  }

  private lendSocket(entry: HttpPoolEntry): Duplex {
    const connection = entry.connection;
    if (connection.detachSocket === undefined) {
      throw new MuxpoolError('MUXPOOL_ERR_INTERNAL', `connection ${connection.id} (${connection.protocol}) has no socket to hand out`);
    }
    const socket = connection.detachSocket();
    this.lentSockets.set(socket, entry);
    return socket;
  }

  // ---------------------------------------------------------------------------------------
  // Requests
  /**
   * String URLs parsed once: most programs call a handful of URLs over and over, and `new URL`
   * is a visible share of a small request's cost. The URL objects never leave the pool (callers
   * get strings), so sharing them is safe. Bounded; cleared when full.
   */
  private parsedUrl(input: string): URL {
    let url = this.urls.get(input);
    if (url === undefined) {
      url = parseUrl(input);
      if (this.urls.size >= MAX_CACHED_URLS) this.urls.clear();
      this.urls.set(input, url);
    }
    return url;
  }

  /**
   * The key `request()` uses for a URL: its origin plus the pool's TLS settings, the proxy that
   * serves it, and the Unix socket its connections go through (the pool's `socketPath` unless
   * one is given; a socket is a route of its own, so no proxy applies to it).
   */
  keyFor(input: string | URL, socketPath: string | undefined = this.socketPath): PoolKey {
    const url = typeof input === 'string' ? parseUrl(input) : input;
    const cacheKey = socketPath === undefined ? url.protocol + url.host : `${url.protocol}${url.host}\0${socketPath}`;
    let key = this.keys.get(cacheKey);
    if (key === undefined) {
      const isHttps = url.protocol === 'https:';
      const port = url.port === '' ? (isHttps ? 443 : 80) : Number(url.port);
      const route = socketPath === undefined ? { proxy: this.proxies?.select(url) } : { socketPath };
      key = new PoolKey(url.hostname, port, isHttps, isHttps ? this.tls : undefined, route);
      if (this.keys.size >= MAX_CACHED_KEYS) this.keys.clear();
      this.keys.set(cacheKey, key);
    }
    return key;
  }

  /**
   * Sends a request and resolves at the response head. The body is read from the `Response`.
   * Redirects are followed (`redirect`, `maxRedirects`), and a compressed body is decoded
   * (`decompress`), as fetch does. A request that failed before its head is sent again (up to
   * `maxRetries` times) when that is safe; the error says whether the server may have
   * processed it and how many attempts it took.
   */
  request(input: string | URL, options?: RequestOptions): Promise<Response>;
  /**
   * undici's `request(options)` (with `origin`, `path`, `method`, …), so code written against an
   * undici Dispatcher runs on the pool: the raw response, `{ statusCode, headers, body, … }`.
   */
  request<TOpaque = null>(options: DispatchOptions & { opaque?: TOpaque }): Promise<DispatchResponseData<TOpaque>>;
  request<TOpaque = null>(
    options: DispatchOptions & { opaque?: TOpaque },
    callback: (err: Error | null, data: DispatchResponseData<TOpaque>) => void,
  ): void;
  request(
    input: string | URL | DispatchOptions,
    options?: RequestOptions | ((err: Error | null, data: DispatchResponseData) => void),
  ): Promise<Response> | Promise<DispatchResponseData> | void {
    if (typeof input === 'string' || input instanceof URL) return this.fetchResponse(input, (options ?? {}) as RequestOptions);
    return settle(
      requestVia((o, h) => this.dispatch(o, h), input),
      options as ((err: Error | null, data: DispatchResponseData) => void) | undefined,
    );
  }

  private async fetchResponse(input: string | URL, options: RequestOptions): Promise<Response> {
    const url = typeof input === 'string' ? this.parsedUrl(input) : parseUrl(input);
    const redirect = redirectModeOf(options.redirect);
    const maxRedirects = countOption('maxRedirects', options.maxRedirects, 20, 0);
    const decompress = options.decompress !== false;
    let prepared = prepareRequest(url, options.method, options.headers, options.body, decompress ? ACCEPT_ENCODING : undefined);
    const control = this.controlFor(options);
    let hops = 0;
    // The body the next hop may send again: gone for good once a redirect turned it into a GET.
    let body = options.body;
    // Bounded: each turn follows one redirect, and at most maxRedirects are followed.
    for (;;) {
      const exchange = await this.send(prepared, options, control);
      const head = exchange.head as ResponseHeadInfo;
      const location = redirect !== 'manual' && isRedirect(head.status) ? head.headers.location : undefined;
      if (typeof location === 'string') {
        if (control !== undefined) control.exchange = undefined;
        const next = this.followRedirect(prepared, exchange, head.status, location, redirect, hops, maxRedirects, body, control);
        if (!next.keepBody) body = undefined;
        prepared = next.prepared;
        hops++;
        continue;
      }
      if (control !== undefined) {
        if (exchange.finished) control.dispose();
        else exchange.onFinish = () => control.dispose();
      }
      const encoding = decompress ? head.headers['content-encoding'] : undefined;
      const decoders = encoding === undefined || prepared.head.method === 'HEAD' ? undefined : decodersFor(encoding);
      return new Response(exchange, prepared.url.href, exchange.attempt, hops > 0, decoders);
    }
  }

  /** The request after a redirect, or a typed error (the redirect's body is freed either way). */
  private followRedirect(
    prepared: PreparedRequest,
    exchange: Exchange,
    status: number,
    location: string,
    redirect: RedirectMode,
    hops: number,
    maxRedirects: number,
    body: BodyInit,
    control: RequestControl | undefined,
  ): { prepared: PreparedRequest; keepBody: boolean } {
    // The redirect's own body is read and dropped (or the stream reset if it is large), so the
    // connection can serve the next hop.
    void exchange.dump();
    try {
      return this.nextRequest(prepared, status, location, redirect, hops, maxRedirects, body);
    } catch (err) {
      control?.dispose();
      throw err;
    }
  }

  private nextRequest(
    prepared: PreparedRequest,
    status: number,
    location: string,
    redirect: RedirectMode,
    hops: number,
    maxRedirects: number,
    body: BodyInit,
  ): { prepared: PreparedRequest; keepBody: boolean } {
    const refuse = (code: 'MUXPOOL_ERR_REDIRECT' | 'MUXPOOL_ERR_TOO_MANY_REDIRECTS', message: string): never => {
      throw new MuxpoolError(code, message, { maybeProcessed: true });
    };
    if (redirect === 'error') refuse('MUXPOOL_ERR_REDIRECT', `${prepared.url.href} redirected (${status}) and redirect is 'error'`);
    if (hops >= maxRedirects) refuse('MUXPOOL_ERR_TOO_MANY_REDIRECTS', `more than ${maxRedirects} redirects, the last from ${prepared.url.href}`);
    const hop = nextHop(status, location, prepared.url, prepared.head.method, prepared.head.headers);
    if (hop.url.href === prepared.url.href && hop.method === prepared.head.method && hop.keepBody) {
      refuse('MUXPOOL_ERR_TOO_MANY_REDIRECTS', `${prepared.url.href} redirects to itself`);
    }
    // 307 and 308 send the body again: only a body that can be (not a one-shot stream).
    if (hop.keepBody && prepared.body !== null && !prepared.replayable) {
      refuse('MUXPOOL_ERR_REDIRECT', `${prepared.url.href} redirected (${status}) a request whose body is a one-shot stream: it cannot be sent again`);
    }
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i < hop.headers.length; i += 2) pairs.push([hop.headers[i] as string, hop.headers[i + 1] as string]);
    // A caller's own Host names a virtual host on this origin: it goes along while the hops stay
    // on the origin, and never elsewhere (another origin has its own names, as curl does it).
    if (prepared.head.authority !== prepared.url.host && hop.url.origin === prepared.url.origin) {
      pairs.push(['host', prepared.head.authority]);
    }
    return { prepared: prepareRequest(hop.url, hop.method, pairs, hop.keepBody ? body : undefined, undefined), keepBody: hop.keepBody };
  }

  /** Timeout and signal for a whole request (every attempt and hop), if it has either. */
  private controlFor(options: RequestOptions): RequestControl | undefined {
    const timeoutMs = options.timeoutMs === undefined ? undefined : durationOption('timeoutMs', options.timeoutMs, 0, { min: 1, allowInfinity: true });
    // Checked here too: the fast path of send() never reaches the queue that would refuse it.
    const badPriority = priorityError(options.priority);
    if (badPriority !== undefined) throw badPriority;
    if (options.acquireTimeoutMs !== undefined) durationOption('acquireTimeoutMs', options.acquireTimeoutMs, 0, { min: 1, allowInfinity: true });
    if (options.signal?.aborted === true) {
      throw new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the request was aborted', { cause: options.signal.reason, maybeProcessed: false });
    }
    return options.signal !== undefined || timeoutMs !== undefined ? new RequestControl(this.core.clock, options.signal, timeoutMs) : undefined;
  }

  /**
   * One request, retried when safe, up to its response head: the exchange whose body is still
   * to be read. Fails typed, with `control` disposed.
   */
  private send(prepared: PreparedRequest, options: SendOptions, control: RequestControl | undefined): Promise<Exchange> {
    if (!requestObserved()) return this.sendAttempts(prepared, options, control, undefined);
    const observer = new ObservedRequest(this, prepared, this.core.clock);
    return sendObserved(observer, () => this.sendAttempts(prepared, options, control, observer));
  }

  private async sendAttempts(
    prepared: PreparedRequest,
    options: SendOptions,
    control: RequestControl | undefined,
    observer: ObservedRequest | undefined,
  ): Promise<Exchange> {
    const url = prepared.url;
    let key: PoolKey;
    let plan: DialPlan;
    try {
      key = this.keyFor(url, options.socketPath ?? this.socketPath);
      plan = this.planFor(url, key, options.version);
    } catch (err) {
      control?.dispose();
      throw err;
    }
    // Through a proxy the request changes on the wire (absolute form, or no Proxy-Authorization).
    const wire = key.proxy === undefined ? prepared : proxiedRequest(prepared, key.proxy);
    // Built only for an acquire that may wait (the fast path takes an idle connection without).
    const acquireOptions = (): AcquireOptions => ({ signal: control?.acquireSignal, acquireTimeoutMs: options.acquireTimeoutMs, priority: options.priority });
    // A retry after a stale HTTP/1.1 socket needs a connection of its own (the next idle one may
    // be stale too); after GOAWAY or REFUSED_STREAM the failed connection is already out of
    // the running, so any open one will do.
    let freshConnection = false;
    // Bounded: maxRetries + 1 attempts at most.
    const lastAttempt = this.maxRetries + 1;
    // res.timings, on the core's clock: a request served at once starts when the core hands it
    // its slot (the core stamps `lastUsed` then), so the fast path reads no clock of its own.
    let startedAt = observer === undefined ? -1 : observer.startedAt;
    for (let attempt = 1; attempt <= lastAttempt; attempt++) {
      let entry: HttpPoolEntry | undefined;
      let assignedAt = -1;
      try {
        if (attempt === 1) {
          entry = this.core.tryAcquire(key, plan);
          if (entry === undefined) {
            if (startedAt < 0) startedAt = this.core.clock.now();
            const waitStart = channels.queueWait.hasSubscribers ? performance.now() : 0;
            entry = await this.core.acquire(key, plan, false, acquireOptions());
            assignedAt = this.core.clock.now();
            if (channels.queueWait.hasSubscribers) channels.queueWait.publish({ pool: this, origin: key.origin, waitedMs: performance.now() - waitStart });
          }
        } else {
          entry = freshConnection
            ? await this.core.acquireFresh(key, plan, acquireOptions())
            : await this.core.acquire(key, plan, false, acquireOptions());
          assignedAt = this.core.clock.now();
        }
      } catch (err) {
        if (err instanceof MuxpoolError && attempt < lastAttempt && isRetryableDialFailure(err)) {
          if (channels.retry.hasSubscribers) {
            channels.retry.publish({ pool: this, origin: key.origin, method: prepared.head.method, attempt: attempt + 1, error: err });
          }
          continue;
        }
        control?.dispose();
        throw err instanceof MuxpoolError ? ownError(err, attempt) : err;
      }
      if (entry === undefined) {
        control?.dispose();
        throw new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'acquire settled without a connection');
      }
      const exchange = new Exchange(entry, this.releaseBound);
      if (options.rawFields === true) exchange.keepRawFields = true;
      if (assignedAt < 0) assignedAt = entry.lastUsed;
      if (startedAt < 0) startedAt = assignedAt;
      exchange.startedAt = startedAt;
      exchange.assignedAt = assignedAt;
      if (observer !== undefined) observer.assigned(exchange, attempt);
      if (exchange.reused && channels.reuse.hasSubscribers) {
        channels.reuse.publish({ pool: this, origin: key.origin, connectionId: entry.connection.id, protocol: entry.connection.protocol });
      }
      // The timeout and signal cover every attempt: they are disposed when the request ends
      // (below), not when one attempt fails.
      if (control !== undefined) control.exchange = exchange;
      try {
        exchange.stream = entry.connection.openStream(wire.head, wire.body, exchange);
        if (observer !== undefined) observer.headersSent();
      } catch (err) {
        exchange.onError(
          err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'opening a stream failed', { cause: err }),
        );
      }
      try {
        await exchange.waitForHead();
      } catch (err) {
        if (!(err instanceof MuxpoolError)) {
          control?.dispose();
          throw err;
        }
        if (attempt < lastAttempt && isRetryable(err, exchange, prepared)) {
          if (control !== undefined) control.exchange = undefined;
          if (channels.retry.hasSubscribers) {
            channels.retry.publish({ pool: this, origin: key.origin, method: prepared.head.method, attempt: attempt + 1, error: err });
          }
          freshConnection = !entry.connection.shareable;
          continue;
        }
        control?.dispose();
        throw ownError(err, attempt);
      }
      const head = exchange.head;
      if (key.proxy !== undefined && head !== undefined) {
        const refused = forwardedAuthFailure(key, head.status);
        if (refused !== undefined) {
          void exchange.dump();
          control?.dispose();
          throw ownError(refused, attempt);
        }
      }
      if (head !== undefined && key.isHttps && head.headers['alt-svc'] !== undefined) this.learnAltSvc(key, head.headers['alt-svc'], options.version);
      exchange.attempt = attempt;
      return exchange;
    }
    control?.dispose();
    throw new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'request retry loop ended without a result');
  }

  /**
   * RFC 7838: an origin that advertises h3 gets an HTTP/3 connection prepared in the background
   * (for `Auto` and `Http3`), so the requests after this one can use it.
   */
  private learnAltSvc(key: PoolKey, value: string | string[], version: HttpVersion | undefined): void {
    // Through a proxy HTTP/3 is never used, so an advertisement prepares nothing.
    if (key.proxy !== undefined) return;
    // A service behind a Unix socket has no UDP side: its Alt-Svc must not send QUIC anywhere.
    if (key.socketPath !== undefined) return;
    if (!this.altSvc.learn(key, value)) return;
    if (version !== undefined && version !== HttpVersion.Auto && version !== HttpVersion.Http3) return;
    if (!this.transports.isH3Broken(key)) this.core.dialInBackground(key, this.plans.h3Background);
  }

  private lender(url: URL, version: HttpVersion | undefined): ConnectionLender {
    const key = this.keyFor(url);
    // Checked once up front, so a bad version fails before any load. Auto and Http3 choose again
    // per acquire, as `request()` does (an Alt-Svc that `request()` learned moves them to HTTP/3).
    const fixed = this.planFor(url, key, version);
    const dynamic = version === undefined || version === HttpVersion.Auto || version === HttpVersion.Http3;
    const plan = (): DialPlan => (dynamic ? this.planFor(url, key, version) : fixed);
    return {
      tryAcquire: () => this.core.tryAcquire(key, plan()),
      acquire: async (options) => {
        const entry = await this.core.acquire(key, plan(), false, options);
        if (entry === undefined) throw new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'acquire settled without a connection');
        return entry;
      },
      release: this.releaseBound,
    };
  }

  private planFor(url: URL, key: PoolKey, version: HttpVersion | undefined): DialPlan {
    if (version !== undefined && !isHttpVersion(version)) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `unknown HTTP version ${String(version)}`);
    }
    const https = url.protocol === 'https:';
    if (key.proxy !== undefined) return this.proxiedPlan(https, version, key);
    switch (version) {
      case undefined:
      case HttpVersion.Auto:
        if (!https) return this.plans.h1;
        // Once the origin advertised HTTP/3 (and it has not failed here lately), prefer it.
        return this.altSvc.has(key) && !this.transports.isH3Broken(key) ? this.plans.h3OrTcp : this.plans.tcp;
      case HttpVersion.Http1_1:
        return this.plans.h1;
      case HttpVersion.Http2:
        return this.plans.h2;
      case HttpVersion.Http3:
        return https ? this.plans.h3OrTcp : this.plans.h1;
      case HttpVersion.Http3Only:
        if (!https) throw new MuxpoolError('MUXPOOL_ERR_PROTOCOL_UNAVAILABLE', 'HTTP/3 needs an https: URL');
        return this.plans.h3Only;
    }
  }

  /**
   * Through a proxy only TCP serves (CONNECT and SOCKS5 carry no UDP): `Auto` and `Http3` use
   * HTTP/2 or HTTP/1.1 as ALPN picks inside the tunnel; `Http3Only` cannot be served.
   */
  private proxiedPlan(https: boolean, version: HttpVersion | undefined, key: PoolKey): DialPlan {
    switch (version) {
      case HttpVersion.Http1_1:
        return this.plans.h1;
      case HttpVersion.Http2:
        return this.plans.h2;
      case HttpVersion.Http3Only:
        throw new MuxpoolError(
          'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE',
          `HTTP/3 cannot go through the proxy ${key.proxy?.display ?? ''} (proxies carry TCP only): use Auto or Http3 to get HTTP/2 or HTTP/1.1 through it, or noProxy for this host`,
          { maybeProcessed: false },
        );
      default:
        return https ? this.plans.tcp : this.plans.h1;
    }
  }
}

let defaultPool: ConnectionPool | undefined;

/** The process-wide pool behind the top-level `request()`. */
export function getDefaultPool(): ConnectionPool {
  defaultPool ??= new ConnectionPool();
  return defaultPool;
}

/** `pool.request()` on the process-wide default pool. */
export function request(input: string | URL, options?: RequestOptions): Promise<Response> {
  return getDefaultPool().request(input, options);
}
