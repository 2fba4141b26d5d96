/**
 * What the pool decided, on `node:diagnostics_channel`, so users can trace it without patching
 * anything. Publishing costs nothing while nobody subscribes (`hasSubscribers` is checked first).
 * The README lists every channel and its message. Every message carries `pool` (the
 * `ConnectionPool` it comes from) except GOAWAY's, which the transport publishes. Per-request
 * channels are in client/request-events.ts.
 */
import diagnostics from 'node:diagnostics_channel';

export const channels = {
  /** `{ origin, protocols }`: a new connection is being dialed. */
  dialStart: diagnostics.channel('muxpool:dial:start'),
  /** `{ origin, protocols, durationMs, connectionId?, protocol?, error? }`: the dial ended. */
  dialEnd: diagnostics.channel('muxpool:dial:end'),
  /** `{ origin, connectionId, protocol }`: a request got a connection that had served before. */
  reuse: diagnostics.channel('muxpool:reuse'),
  /** `{ origin, method, attempt, error }`: a failed request is sent again (attempt is the next one). */
  retry: diagnostics.channel('muxpool:retry'),
  /** `{ origin, from, to, reason }`: HTTP/3 was preferred but TCP serves (broken mark or lost race). */
  fallback: diagnostics.channel('muxpool:fallback'),
  /** `{ connectionId, protocol, lastStreamId }`: the server sent GOAWAY. */
  goaway: diagnostics.channel('muxpool:goaway'),
  /** `{ origin, waitedMs }`: a request waited for a connection slot (queue and dial). */
  queueWait: diagnostics.channel('muxpool:queue:wait'),
  /** `{ target, proxy, mode, durationMs }`: a connection through a proxy is up (mode `'tunnel'` or `'forward'`). */
  proxy: diagnostics.channel('muxpool:proxy'),
  /** `{ origin, connectionId, protocol, durationMs?, error? }`: a pooled connection closed (`durationMs` since its dial, when the pool dialed it). */
  connectionClose: diagnostics.channel('muxpool:connection:close'),
} as const;
