/**
 * Per-request events on `node:diagnostics_channel`, and the timings every response carries.
 *
 * Nothing here runs while nobody listens: the pool asks `requestObserved()` (a few
 * `hasSubscribers` reads) once per request and builds an `ObservedRequest` only when it is true.
 * The same object is the `request` of every message of that request, on our channels and on
 * undici's (undici-channels.ts), so a tracer can key its span by it. The README lists the
 * channels and their messages.
 */
import diagnostics from 'node:diagnostics_channel';
import type { Clock } from '../core/clock.js';
import { channels } from '../core/diagnostics.js';
import { MuxpoolError } from '../errors.js';
import type { Connection } from '../protocol/connection.js';
import type { IncomingHeaders } from '../protocol/message.js';
import { validateHeaderName, validateHeaderValue } from '../protocol/fields.js';
import type { ConnectionProtocol } from '../protocol/version.js';
import { connectionFactsOf } from './connection-facts.js';
import type { Exchange } from './exchange.js';
import type { ConnectionPool } from './pool.js';
import { type PreparedRequest, isTransportField } from './prepare.js';
import { undiciChannels, undiciCreate, undiciError, undiciHeaders, undiciSendHeaders, undiciTrailers } from './undici-channels.js';

/**
 * Where a request's time went, in milliseconds, for one hop (a redirect starts a new one).
 * Phases of a dial count only for the request that waited for it; on a reused connection
 * they are 0.
 */
export interface RequestTimings {
  /** When the request (this hop) started, on the pool's clock (`performance.now()` unless a `clock` was given). */
  startedAt: number;
  /** Waiting for a connection: the queue, retries, and anything of a dial not below. */
  queuedMs: number;
  /** Name lookup of the dial this request waited for (0 for an IP literal or a reused connection). */
  dnsMs: number;
  /** TCP connect of that dial (0 over QUIC, whose handshake is its connect). */
  connectMs: number;
  /** TLS or QUIC handshake of that dial (0 over cleartext). */
  handshakeMs: number;
  /** From the connection being assigned (request sent) to the response head. */
  firstByteMs: number;
  /** From the start to the end of the response body; undefined while the body is still read. */
  totalMs: number | undefined;
}

/** The request of every per-request message: the same object from create to end or error. */
export interface RequestInfo {
  /** `https://host:port` as undici spells an origin (the port only when not the default). */
  readonly origin: string;
  readonly method: string;
  /** origin-form target: `/path?query`. */
  readonly path: string;
  /** Flat `[name, value, …]`, lower-case names, as they will be sent (`addHeader` included). */
  readonly headers: readonly string[];
  /** The pool sending it. */
  readonly pool: ConnectionPool;
  /** When it started, on the pool's clock (`performance.now()` unless a `clock` was given). */
  readonly startedAt: number;
  /** The HTTP version as OpenTelemetry names it (`1.1`, `2`, `3`), once a connection is assigned. */
  readonly httpVersion: string | undefined;
  /** Known once a connection is assigned. */
  readonly protocol: ConnectionProtocol | undefined;
  readonly connectionId: string | undefined;
  /**
   * Adds a field before the headers are sent (only from a `create` subscriber, as tracers
   * inject `traceparent`). Replaces any field of the same name, so a trace header copied
   * from the previous hop of a redirect, or set by the caller, is not sent twice (W3C Trace
   * Context §3.2: a second `traceparent` makes both invalid). Refused once sent, and for
   * fields the transport owns (`host`, `content-length`, `transfer-encoding`, `upgrade`).
   */
  addHeader(name: string, value: string): this;
}

/** `muxpool:request:create`: a request (one hop) starts; subscribers may `addHeader` now. */
export interface RequestCreateMessage {
  request: RequestInfo;
}
/** `muxpool:request:connection`: a connection was assigned to the request (every attempt). */
export interface RequestConnectionMessage {
  request: RequestInfo;
  connectionId: string;
  protocol: ConnectionProtocol;
  /** False when this request is the connection's first. */
  reused: boolean;
  /** Since the request started: queue and dial. */
  waitedMs: number;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  attempt: number;
}
/** `muxpool:request:headers-sent`: the request head was handed to the transport. */
export interface RequestHeadersSentMessage {
  request: RequestInfo;
}
/** `muxpool:request:response`: the response head arrived. */
export interface RequestResponseMessage {
  request: RequestInfo;
  status: number;
  statusText: string;
  headers: IncomingHeaders;
}
/** `muxpool:request:end`: the response body ended (trailers when the peer sent some). */
export interface RequestEndMessage {
  request: RequestInfo;
  status: number;
  trailers: IncomingHeaders | undefined;
  timings: RequestTimings;
}
/** `muxpool:request:error`: the request failed (before or after its head); nothing follows. */
export interface RequestErrorMessage {
  request: RequestInfo;
  error: Error;
  /** The response status when the failure came during the body. */
  status: number | undefined;
  /** From the start to the failure. */
  durationMs: number;
}

/** The per-request channels (their names are `muxpool:request:<event>`). */
export const requestChannels = {
  create: diagnostics.channel('muxpool:request:create'),
  connection: diagnostics.channel('muxpool:request:connection'),
  headersSent: diagnostics.channel('muxpool:request:headers-sent'),
  response: diagnostics.channel('muxpool:request:response'),
  end: diagnostics.channel('muxpool:request:end'),
  error: diagnostics.channel('muxpool:request:error'),
} as const;

/** Whether a request should be observed: someone listens to our request channels or undici's. */
export function requestObserved(): boolean {
  return (
    requestChannels.create.hasSubscribers ||
    requestChannels.connection.hasSubscribers ||
    requestChannels.headersSent.hasSubscribers ||
    requestChannels.response.hasSubscribers ||
    requestChannels.end.hasSubscribers ||
    requestChannels.error.hasSubscribers ||
    undiciCreate.hasSubscribers
  );
}

const HTTP_VERSIONS: Record<ConnectionProtocol, string> = { 'http/1.1': '1.1', h2: '2', h3: '3' };

/** The HTTP version OpenTelemetry names (`network.protocol.version`): `1.1`, `2` or `3`. */
export function httpVersionOf(protocol: ConnectionProtocol): string {
  return HTTP_VERSIONS[protocol];
}

/**
 * One observed request (one hop). Also undici's request shape (`origin`, `method`, `path`,
 * `headers`, `addHeader`) for undici's channels.
 */
export class ObservedRequest implements RequestInfo {
  readonly origin: string;
  readonly method: string;
  readonly path: string;
  readonly pool: ConnectionPool;
  readonly startedAt: number;
  protocol: ConnectionProtocol | undefined;
  connectionId: string | undefined;
  /** The network.protocol.version, once known: what a tracer may read from the request. */
  httpVersion: string | undefined;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  private readonly prepared: PreparedRequest;
  private readonly clock: Clock;
  private sent = false;
  private finished = false;
  private status: number | undefined;

  constructor(pool: ConnectionPool, prepared: PreparedRequest, clock: Clock) {
    this.pool = pool;
    this.prepared = prepared;
    this.clock = clock;
    this.startedAt = clock.now();
    const url = prepared.url;
    this.origin = url.origin;
    this.method = prepared.head.method;
    this.path = prepared.head.path;
  }

  get headers(): readonly string[] {
    return this.prepared.head.headers;
  }

  addHeader(name: string, value: string): this {
    if (this.sent) throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `addHeader(${JSON.stringify(String(name))}): the request headers were already sent`);
    if (typeof name !== 'string' || typeof value !== 'string') {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', 'addHeader() takes a name and a value, both strings');
    }
    validateHeaderName(name);
    const lower = name.toLowerCase();
    validateHeaderValue(lower, value);
    // Fields the transport decides (as prepareRequest does): a subscriber cannot add them.
    if (isTransportField(lower)) throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', `addHeader(): ${lower} is set by the transport`);
    // A new array: the caller's, or the previous hop's, is never changed under them.
    const before = this.prepared.head.headers;
    const headers: string[] = [];
    for (let i = 0; i < before.length; i += 2) {
      if (before[i] !== lower) headers.push(before[i] as string, before[i + 1] as string);
    }
    headers.push(lower, value);
    this.prepared.head = { ...this.prepared.head, headers };
    return this;
  }

  /** Publishes `create` on both families. */
  created(): void {
    if (requestChannels.create.hasSubscribers) requestChannels.create.publish({ request: this } satisfies RequestCreateMessage);
    if (undiciCreate.hasSubscribers) undiciCreate.publish({ request: this });
  }

  /** A connection is assigned: the exchange reports its head and end to this request from now on. */
  assigned(exchange: Exchange, attempt: number): void {
    exchange.observer = this;
    const connection = exchange.entry.connection;
    const facts = connectionFactsOf(connection);
    this.protocol = connection.protocol;
    this.httpVersion = HTTP_VERSIONS[connection.protocol];
    this.connectionId = connection.id;
    this.remoteAddress = facts?.remoteAddress ?? connection.remoteAddress;
    this.remotePort = facts?.remotePort;
    if (requestChannels.connection.hasSubscribers) {
      requestChannels.connection.publish({
        request: this,
        connectionId: connection.id,
        protocol: connection.protocol,
        reused: exchange.reused,
        waitedMs: exchange.assignedAt - this.startedAt,
        remoteAddress: this.remoteAddress,
        remotePort: this.remotePort,
        attempt,
      } satisfies RequestConnectionMessage);
    }
  }

  /** The head went to the transport: `addHeader` is closed. */
  headersSent(): void {
    this.sent = true;
    if (requestChannels.headersSent.hasSubscribers) requestChannels.headersSent.publish({ request: this } satisfies RequestHeadersSentMessage);
    if (undiciSendHeaders.hasSubscribers) undiciChannels.sendHeaders(this);
  }

  /** From the exchange, as the head arrives (before any body event). */
  responded(status: number, statusText: string, headers: IncomingHeaders): void {
    this.status = status;
    if (requestChannels.response.hasSubscribers) {
      requestChannels.response.publish({ request: this, status, statusText, headers } satisfies RequestResponseMessage);
    }
    if (undiciHeaders.hasSubscribers) undiciChannels.headers(this, status, statusText, headers);
  }

  /** From the exchange: the body ended, or failed after the head. */
  ended(exchange: Exchange): void {
    if (this.finished) return;
    if (exchange.error !== undefined) {
      this.failed(exchange.error);
      return;
    }
    this.finished = true;
    if (requestChannels.end.hasSubscribers) {
      requestChannels.end.publish({
        request: this,
        status: this.status ?? 0,
        trailers: exchange.trailers,
        timings: timingsOf(exchange),
      } satisfies RequestEndMessage);
    }
    if (undiciTrailers.hasSubscribers) undiciChannels.trailers(this, exchange.trailers);
  }

  /** The request failed: once, whether before its head (from the pool) or during its body. */
  failed(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    const err = error instanceof Error ? error : new Error(String(error));
    if (requestChannels.error.hasSubscribers) {
      requestChannels.error.publish({ request: this, error: err, status: this.status, durationMs: this.clock.now() - this.startedAt } satisfies RequestErrorMessage);
    }
    if (undiciError.hasSubscribers) undiciChannels.error(this, err);
  }
}

/**
 * An attempt that failed before its head is not the request's end (the pool may retry): only a
 * failure after the head, or the pool giving up, ends an observed request.
 */
export function exchangeEnded(observer: ObservedRequest, exchange: Exchange): void {
  if (exchange.error !== undefined && exchange.head === undefined) return;
  observer.ended(exchange);
}

/** The timings of an exchange (see `RequestTimings`). */
export function timingsOf(exchange: Exchange): RequestTimings {
  const startedAt = exchange.startedAt;
  const waited = Math.max(0, exchange.assignedAt - startedAt);
  let dnsMs = 0;
  let connectMs = 0;
  let handshakeMs = 0;
  if (!exchange.reused) {
    const facts = connectionFactsOf(exchange.entry.connection);
    // Only a dial that ended while this request waited is part of its time (a spare dialed
    // in the background earlier is not).
    if (facts !== undefined && facts.readyAt >= startedAt) {
      dnsMs = facts.dnsMs;
      connectMs = facts.connectMs;
      handshakeMs = facts.handshakeMs;
    }
  }
  const dialMs = dnsMs + connectMs + handshakeMs;
  return {
    startedAt,
    queuedMs: Math.max(0, waited - dialMs),
    dnsMs,
    connectMs,
    handshakeMs,
    firstByteMs: exchange.head === undefined ? 0 : Math.max(0, exchange.headAt - exchange.assignedAt),
    totalMs: exchange.finished ? Math.max(0, exchange.endAt - startedAt) : undefined,
  };
}

/**
 * Runs one observed send: `create` first (its subscribers may add headers), then the attempts;
 * a send that fails for good publishes `error` (a failure after the head comes from the exchange).
 */
export async function sendObserved(observer: ObservedRequest, send: () => Promise<Exchange>): Promise<Exchange> {
  observer.created();
  try {
    return await send();
  } catch (err) {
    observer.failed(err);
    throw err;
  }
}

/** `muxpool:connection:close`: called only when it has subscribers. */
export function publishConnectionClose(pool: ConnectionPool, origin: string, connection: Connection, error: Error | undefined, now: number): void {
  const facts = connectionFactsOf(connection);
  channels.connectionClose.publish({
    pool,
    origin,
    connectionId: connection.id,
    protocol: connection.protocol,
    durationMs: facts === undefined ? undefined : now - facts.readyAt,
    error,
  });
}
