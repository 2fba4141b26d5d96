/**
 * `muxpool/otel`: OpenTelemetry metrics for a pool, after the HTTP client semantic conventions
 * (https://opentelemetry.io/docs/specs/semconv/http/http-metrics/), and the span attribute
 * `@opentelemetry/instrumentation-undici` cannot know for HTTP/3. This entry point imports
 * `@opentelemetry/api` (an optional peer dependency); the main `muxpool` entry never does.
 *
 * ```js
 * import { instrumentPool } from 'muxpool/otel';
 * const stop = instrumentPool(pool, { meterProvider }); // the global provider when omitted
 * // … stop() unsubscribes and removes the observers
 * ```
 *
 * Everything is read from the pool's diagnostics channels and its stats: nothing is measured
 * on the request path that the channels do not already carry.
 */
import type { Channel } from 'node:diagnostics_channel';
import { type Attributes, type MeterProvider, type ObservableResult, type Span, ValueType, metrics } from '@opentelemetry/api';
import { statsNow } from './client/pool.js';
import type { ConnectionPool } from './client/pool.js';
import { ObservedRequest, type RequestEndMessage, type RequestErrorMessage, httpVersionOf, requestChannels } from './client/request-events.js';
import { channels } from './core/diagnostics.js';
import { MuxpoolError } from './errors.js';
import type { ConnectionProtocol } from './protocol/version.js';

export interface PoolMetricsOptions {
  /** Where the instruments are created. Default: the global provider (`metrics.getMeterProvider()`). */
  meterProvider?: MeterProvider;
}

/** Seconds: what the HTTP semantic conventions recommend for request and connection durations. */
const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', 'QUERY']);
const METER_NAME = 'muxpool';
const MAX_ORIGINS = 1024;

/** The semantic-convention attributes of an origin (`https://host:port`), parsed once each. */
class OriginAttributes {
  private readonly cache = new Map<string, Attributes>();

  of(origin: string): Attributes {
    let attributes = this.cache.get(origin);
    if (attributes === undefined) {
      const url = new URL(origin);
      const scheme = url.protocol.slice(0, -1);
      attributes = {
        'server.address': url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        'server.port': url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port),
        'url.scheme': scheme,
      };
      if (this.cache.size >= MAX_ORIGINS) this.cache.clear();
      this.cache.set(origin, attributes);
    }
    return attributes;
  }
}

/** `error.type` (semantic conventions): our stable code, else the error's class name. */
function errorType(error: unknown): string {
  if (error instanceof MuxpoolError) return error.code;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && code !== '') return code;
  return error instanceof Error ? error.name : 'Error';
}

/**
 * Records the pool's metrics until the returned function is called:
 *
 * - `http.client.request.duration` (histogram, s): each request (one hop) from its start to the
 *   end of its body, or its failure; `http.request.method`, `http.response.status_code`,
 *   `server.address`, `server.port`, `url.scheme`, `network.protocol.version` (`1.1`, `2`,
 *   `3`), `error.type` (our error code, or the status for 4xx/5xx)
 * - `http.client.open_connections` (observable up-down counter, {connection}): open
 *   connections by `http.connection.state` (`idle`, `active`), protocol and origin
 * - `http.client.connection.duration` (histogram, s): how long each closed connection was open
 * - `muxpool.queue.duration` (histogram, s): how long requests waited for a connection slot
 *   (requests served at once are not recorded)
 * - `muxpool.dials` (counter, {dial}): dials by `outcome` (`success`, `failure`), with
 *   `network.protocol.version` or `error.type`
 * - `muxpool.h3.fallbacks` (counter, {fallback}): HTTP/3 preferred but TCP served, by `reason`
 *   (`broken`, `unsupported`, `race`)
 * - `muxpool.request.retries` (counter, {retry}): requests sent again, by `error.type`
 */
export function instrumentPool(pool: ConnectionPool, options: PoolMetricsOptions = {}): () => void {
  const provider = options.meterProvider ?? metrics.getMeterProvider();
  const meter = provider.getMeter(METER_NAME);
  const origins = new OriginAttributes();
  const requestDuration = meter.createHistogram('http.client.request.duration', {
    description: 'Duration of HTTP client requests.',
    unit: 's',
    valueType: ValueType.DOUBLE,
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
  });
  const connectionDuration = meter.createHistogram('http.client.connection.duration', {
    description: 'The duration of the successfully established outbound HTTP connections.',
    unit: 's',
    valueType: ValueType.DOUBLE,
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
  });
  const openConnections = meter.createObservableUpDownCounter('http.client.open_connections', {
    description: 'Number of outbound HTTP connections that are currently active or idle on the client.',
    unit: '{connection}',
  });
  const queueDuration = meter.createHistogram('muxpool.queue.duration', {
    description: 'How long requests waited for a connection slot (the queue and any dial).',
    unit: 's',
    valueType: ValueType.DOUBLE,
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
  });
  const dials = meter.createCounter('muxpool.dials', { description: 'Connections dialed, by outcome.', unit: '{dial}' });
  const fallbacks = meter.createCounter('muxpool.h3.fallbacks', {
    description: 'Requests that preferred HTTP/3 but were served over TCP.',
    unit: '{fallback}',
  });
  const retries = meter.createCounter('muxpool.request.retries', { description: 'Requests sent again after a safe failure.', unit: '{retry}' });

  // A service talks to a handful of origins with a handful of methods and statuses: the
  // attribute sets are built once each (bounded, cleared when full), not per request.
  const attributeSets = new Map<string, Attributes>();
  const requestAttributes = (request: ObservedRequest, status: number | undefined): Attributes => {
    const id = `${request.origin} ${request.method} ${status ?? 0} ${request.httpVersion ?? ''}`;
    let attributes = attributeSets.get(id);
    if (attributes === undefined) {
      attributes = {
        ...origins.of(request.origin),
        'http.request.method': KNOWN_METHODS.has(request.method) ? request.method : '_OTHER',
      };
      if (request.httpVersion !== undefined) attributes['network.protocol.version'] = request.httpVersion;
      if (status !== undefined && status > 0) {
        attributes['http.response.status_code'] = status;
        if (status >= 400) attributes['error.type'] = String(status);
      }
      if (attributeSets.size >= MAX_ORIGINS) attributeSets.clear();
      attributeSets.set(id, attributes);
    }
    return attributes;
  };

  const onEnd = (message: unknown): void => {
    const { request, status, timings } = message as RequestEndMessage;
    if (!(request instanceof ObservedRequest) || request.pool !== pool) return;
    requestDuration.record((timings.totalMs ?? 0) / 1000, requestAttributes(request, status));
  };
  const onError = (message: unknown): void => {
    const { request, error, status, durationMs } = message as RequestErrorMessage;
    if (!(request instanceof ObservedRequest) || request.pool !== pool) return;
    const attributes = { ...requestAttributes(request, status), 'error.type': errorType(error) };
    requestDuration.record(durationMs / 1000, attributes);
  };
  const onClose = (message: unknown): void => {
    const m = message as { pool: unknown; origin: string; protocol: ConnectionProtocol; durationMs: number | undefined };
    if (m.pool !== pool || m.durationMs === undefined) return;
    connectionDuration.record(m.durationMs / 1000, { ...origins.of(m.origin), 'network.protocol.version': httpVersionOf(m.protocol) });
  };
  const onQueueWait = (message: unknown): void => {
    const m = message as { pool: unknown; origin: string; waitedMs: number };
    if (m.pool !== pool) return;
    queueDuration.record(m.waitedMs / 1000, origins.of(m.origin));
  };
  const onDialEnd = (message: unknown): void => {
    const m = message as { pool: unknown; origin: string; protocol?: ConnectionProtocol; error?: unknown };
    if (m.pool !== pool) return;
    if (m.error !== undefined) dials.add(1, { ...origins.of(m.origin), outcome: 'failure', 'error.type': errorType(m.error) });
    else dials.add(1, { ...origins.of(m.origin), outcome: 'success', 'network.protocol.version': httpVersionOf(m.protocol ?? 'http/1.1') });
  };
  const onFallback = (message: unknown): void => {
    const m = message as { pool: unknown; origin: string; reason: string };
    if (m.pool !== pool) return;
    fallbacks.add(1, { ...origins.of(m.origin), reason: m.reason });
  };
  const onRetry = (message: unknown): void => {
    const m = message as { pool: unknown; origin: string; method: string; error: unknown };
    if (m.pool !== pool) return;
    retries.add(1, { ...origins.of(m.origin), 'error.type': errorType(m.error) });
  };
  // Series reported last time: one that has no connection now reports 0 once (an SDK keeps a
  // series' last value while it is not observed, so a closed pool would show its connections).
  let reported = new Map<string, Attributes>();
  const observeConnections = (result: ObservableResult): void => {
    const counts = new Map<string, { attributes: Attributes; count: number }>();
    for (const c of pool.closed ? [] : statsNow(pool).connections) {
      // A draining connection still carrying streams is active; a lent HTTP/1.1 socket too.
      const state = c.state === 'idle' || (c.state === 'draining' && c.activeStreams === 0) ? 'idle' : 'active';
      const id = `${c.origin} ${c.protocol} ${state}`;
      const seen = counts.get(id);
      if (seen !== undefined) seen.count++;
      else {
        counts.set(id, {
          attributes: { ...origins.of(c.origin), 'network.protocol.version': httpVersionOf(c.protocol), 'http.connection.state': state },
          count: 1,
        });
      }
    }
    for (const { attributes, count } of counts.values()) result.observe(count, attributes);
    for (const [id, attributes] of reported) if (!counts.has(id)) result.observe(0, attributes);
    reported = new Map();
    for (const [id, { attributes }] of counts) reported.set(id, attributes);
  };

  const subscriptions: Array<[Channel, (message: unknown) => void]> = [
    [requestChannels.end, onEnd],
    [requestChannels.error, onError],
    [channels.connectionClose, onClose],
    [channels.queueWait, onQueueWait],
    [channels.dialEnd, onDialEnd],
    [channels.fallback, onFallback],
    [channels.retry, onRetry],
  ];
  for (const [channel, listener] of subscriptions) channel.subscribe(listener);
  openConnections.addCallback(observeConnections);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    for (const [channel, listener] of subscriptions) channel.unsubscribe(listener);
    openConnections.removeCallback(observeConnections);
  };
}

/**
 * For `@opentelemetry/instrumentation-undici`'s config: it learns `network.protocol.version`
 * from the socket's ALPN and knows only `h2` (else `1.1`), so an HTTP/3 span would say `1.1`.
 * This hook sets the version muxpool used (`1.1`, `2`, `3`) on spans of muxpool requests, then
 * calls the config's own `responseHook`:
 * `new UndiciInstrumentation(withMuxpoolSpanAttributes({ ... }))`.
 * (The instrumentation's own duration metric keeps its `1.1`; `instrumentPool` records the right one.)
 */
export function withMuxpoolSpanAttributes<C extends object>(
  config?: C,
): C & { responseHook(span: Span, info: { request: unknown; response: unknown }): void } {
  const own = (config as { responseHook?: (span: Span, info: { request: unknown; response: unknown }) => void } | undefined)?.responseHook;
  return {
    ...(config ?? ({} as C)),
    responseHook(span: Span, info: { request: unknown; response: unknown }): void {
      const request = info.request;
      if (request instanceof ObservedRequest && request.httpVersion !== undefined) {
        span.setAttribute('network.protocol.version', request.httpVersion);
      }
      own?.(span, info);
    },
  };
}
