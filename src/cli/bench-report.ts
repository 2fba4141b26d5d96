/**
 * What `muxpool bench` prints at the end: the JSON report (`--json`) and the human summary
 * with percentiles, a text histogram of latencies, status codes and errors.
 */
import * as hdr from 'hdr-histogram-js';
import { type LoadResult, LATE_AFTER_MS, STALL_LIMIT_MS } from './bench-load.js';

export type ProtocolName = 'h1' | 'h2' | 'h3';

export interface LatencySummaryMs {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  mean: number | null;
}

/** One worker thread's share of a `--workers` run. */
export interface WorkerReport {
  /** 1-based. */
  worker: number;
  connections: number;
  requests: number;
  errors: number;
  reqPerSec: number;
  latencyMs: LatencySummaryMs;
}

/** One second of the run (counted from its start): what completed in it. */
export interface SecondReport {
  second: number;
  /** Responses in that second; the last second's count is over its own length (`durationMs`). */
  requests: number;
  errors: number;
  /** Responses per second over that second (the last one is usually shorter). */
  reqPerSec: number;
  durationMs: number;
  /** Latency of the responses that completed in that second; null when none did. */
  p50Ms: number | null;
  p99Ms: number | null;
}

/**
 * The `--json` output (the README's table lists every field; names are stable). Latencies are
 * null when no response arrived.
 */
export interface BenchReport {
  url: string;
  method: string;
  /** What served the responses (h1, h2, h3; several joined with '+'); null when none arrived. */
  protocol: string | null;
  /** What --protocol asked for ('auto' without it). */
  requestedProtocol: ProtocolName | 'auto';
  /** -c: requests in flight at most. */
  connections: number;
  /** Connections the pools dialed (HTTP/1.1: up to `connections`; HTTP/2, HTTP/3: one per thread). */
  connectionsOpened: number;
  workers: number;
  mode: 'closed-loop' | 'open-loop';
  /** Open loop: the scheduled rate, requests per second. */
  rate: number | null;
  /** Requests made: responses plus errors. */
  requests: number;
  /** Requests that failed without a complete response (status codes of any kind are not errors). */
  errors: number;
  /** Open loop: requests sent more than LATE_AFTER_MS after their scheduled time. */
  late: number;
  /** Open loop: scheduled requests never sent because the run overran its schedule too far. */
  unsent: number;
  /** Set when the run was ended because no response completed for a long time. */
  stalled: boolean;
  durationMs: number;
  reqPerSec: number;
  latencyMs: LatencySummaryMs;
  statusCodes: Record<string, number>;
  errorCodes: Record<string, number>;
  /** Response body bytes received (counted, not kept). */
  bodyBytes: number;
  /** CPU time (user + system) of the load generator's process per request, µs; null when none was made. */
  cpuUsPerRequest: number | null;
  /** Per worker thread with --workers; empty without. */
  perWorker: WorkerReport[];
  /** The run second by second. */
  timeline: SecondReport[];
}

export interface ReportContext {
  url: string;
  method: string;
  requestedProtocol: ProtocolName | 'auto';
  connections: number;
  workers: number;
  rate: number | undefined;
}

const PROTOCOL_NAMES: Record<string, ProtocolName> = { 'http/1.1': 'h1', h2: 'h2', h3: 'h3' };

const round3 = (value: number): number => Math.round(value * 1000) / 1000;

/** Sorted by count, largest first. */
function byCount(counts: Record<string, number>): Array<[string, number]> {
  return Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/** p50, p90, p99, p99.9, max and mean of a histogram of µs, in ms; nulls when it is empty. */
export function latencySummary(histogram: hdr.Histogram): LatencySummaryMs {
  const empty = histogram.totalCount === 0;
  // Percentiles come back as the top of their HDR bucket (within 0.1 %), the maximum exactly:
  // capped at the maximum so that p99.9 never reads above it.
  const at = (percentile: number): number | null =>
    empty ? null : round3(Math.min(histogram.getValueAtPercentile(percentile), histogram.maxValue) / 1000);
  return {
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: empty ? null : round3(histogram.maxValue / 1000),
    mean: empty ? null : round3(histogram.mean / 1000),
  };
}

function perSecond(requests: number, durationMs: number): number {
  return durationMs <= 0 ? 0 : Math.round((requests / durationMs) * 1000 * 10) / 10;
}

export function buildReport(context: ReportContext, result: LoadResult, parts: readonly LoadResult[] = []): BenchReport {
  const durationMs = Math.max(0, result.endedAtMs - result.startedAtMs);
  const protocols = byCount(result.protocols).map(([name]) => PROTOCOL_NAMES[name] ?? name);
  return {
    url: context.url,
    method: context.method,
    protocol: protocols.length === 0 ? null : protocols.join('+'),
    requestedProtocol: context.requestedProtocol,
    connections: context.connections,
    connectionsOpened: result.connectionsOpened,
    workers: context.workers,
    mode: context.rate === undefined ? 'closed-loop' : 'open-loop',
    rate: context.rate ?? null,
    requests: result.requests,
    errors: result.errors,
    late: result.late,
    unsent: result.unsent,
    stalled: result.stalled,
    durationMs: round3(durationMs),
    reqPerSec: perSecond(result.requests, durationMs),
    latencyMs: latencySummary(result.histogram),
    statusCodes: Object.fromEntries(byCount(result.statusCodes)),
    errorCodes: Object.fromEntries(byCount(result.errorCodes)),
    bodyBytes: result.bodyBytes,
    cpuUsPerRequest: result.requests === 0 ? null : round3(result.cpuUs / result.requests),
    perWorker: parts.map((part, i) => ({
      worker: i + 1,
      connections: part.concurrency,
      requests: part.requests,
      errors: part.errors,
      reqPerSec: perSecond(part.requests, part.endedAtMs - part.startedAtMs),
      latencyMs: latencySummary(part.histogram),
    })),
    timeline: result.timeline.map((second) => {
      const histogram = second.histogram === '' ? undefined : hdr.decodeFromCompressedBase64(second.histogram);
      const at = (percentile: number): number | null =>
        histogram === undefined ? null : round3(Math.min(histogram.getValueAtPercentile(percentile), histogram.maxValue) / 1000);
      return {
        second: second.second,
        requests: second.requests,
        errors: second.errors,
        reqPerSec: perSecond(second.requests, second.durationMs),
        durationMs: second.durationMs,
        p50Ms: at(50),
        p99Ms: at(99),
      };
    }),
  };
}

const ms = (value: number | null): string => (value === null ? '—' : value.toFixed(3));

/**
 * Latencies in `buckets` log-spaced ranges between the fastest and the slowest response, one
 * bar each, from the histogram's recorded values (log spacing keeps a long tail from squashing
 * every other response into the first bar).
 */
export function textHistogram(histogram: hdr.Histogram, buckets = 10, barWidth = 40): string[] {
  if (histogram.totalCount === 0 || !(histogram instanceof hdr.JsHistogram)) return [];
  const lowUs = Math.max(1, histogram.minNonZeroValue);
  const highUs = Math.max(lowUs, histogram.maxValue);
  const counts = new Array<number>(buckets).fill(0);
  const span = Math.log(highUs / lowUs);
  const iterator = histogram.recordedValuesIterator;
  iterator.reset();
  // Bounded: one step per distinct recorded value.
  while (iterator.hasNext()) {
    const step = iterator.next();
    const value = Math.min(Math.max(histogram.medianEquivalentValue(step.valueIteratedTo), lowUs), highUs);
    const index = span === 0 ? 0 : Math.min(buckets - 1, Math.floor((Math.log(value / lowUs) / span) * buckets));
    counts[index] = (counts[index] ?? 0) + step.countAtValueIteratedTo;
  }
  const edgeMs = (k: number): number => (lowUs * Math.exp((span * k) / buckets)) / 1000;
  const most = Math.max(...counts);
  const labels = counts.map((_, k) => [edgeMs(k).toFixed(3), edgeMs(k + 1).toFixed(3)] as const);
  const width = Math.max(...labels.map(([from, to]) => Math.max(from.length, to.length)));
  const countWidth = String(most).length;
  return counts.map((count, k) => {
    const [from, to] = labels[k] as readonly [string, string];
    const bar = '#'.repeat(count === 0 ? 0 : Math.max(1, Math.round((count / most) * barWidth)));
    return `  ${from.padStart(width)} – ${to.padStart(width)}  ${String(count).padStart(countWidth)} ${bar}`;
  });
}

export function formatSummary(report: BenchReport, histogram: hdr.Histogram): string {
  const out: string[] = [];
  const served = report.protocol ?? 'no responses';
  out.push(`muxpool bench ${report.url}`);
  const opened = `${report.connectionsOpened} ${report.connectionsOpened === 1 ? 'connection' : 'connections'}`;
  const threads = `${report.workers} ${report.workers === 1 ? 'thread' : 'worker threads'}`;
  const rate = report.rate !== null ? ` at ${report.rate} req/s` : '';
  out.push(`  ${served} (asked: ${report.requestedProtocol}), concurrency ${report.connections} over ${opened}, ${report.mode}${rate}, ${threads}`);
  out.push(
    `  ${report.requests} requests in ${(report.durationMs / 1000).toFixed(2)} s: ` +
      `${report.reqPerSec.toFixed(1)} req/s, ${report.errors} errors`,
  );
  if (report.cpuUsPerRequest !== null) out.push(`  ${report.cpuUsPerRequest.toFixed(1)} µs of CPU per request (load generator, user + system)`);
  for (const w of report.perWorker) {
    out.push(
      `  worker ${w.worker}: ${w.connections} in flight, ${w.requests} requests, ${w.reqPerSec.toFixed(1)} req/s, ` +
        `${w.errors} errors, p50 ${ms(w.latencyMs.p50)} ms, p99 ${ms(w.latencyMs.p99)} ms`,
    );
  }
  if (report.mode === 'open-loop') {
    out.push(`  ${report.late} late (sent > ${LATE_AFTER_MS} ms after their scheduled time), ${report.unsent} never sent`);
  }
  if (report.stalled) out.push(`  stopped early: no response completed for ${STALL_LIMIT_MS / 1000} s`);
  out.push('');
  out.push(report.mode === 'open-loop' ? 'latency (ms, from the scheduled send time)' : 'latency (ms)');
  const latency = report.latencyMs;
  const rows: Array<[string, number | null]> = [
    ['p50', latency.p50],
    ['p90', latency.p90],
    ['p99', latency.p99],
    ['p99.9', latency.p999],
    ['max', latency.max],
    ['mean', latency.mean],
  ];
  const valueWidth = Math.max(...rows.map(([, v]) => ms(v).length));
  for (const [label, value] of rows) out.push(`  ${label.padEnd(6)} ${ms(value).padStart(valueWidth)}`);
  const bars = textHistogram(histogram);
  if (bars.length > 0) {
    out.push('');
    out.push('histogram (ms)');
    out.push(...bars);
  }
  const statuses = Object.entries(report.statusCodes);
  if (statuses.length > 0) {
    out.push('');
    out.push('status codes');
    for (const [status, count] of statuses) out.push(`  ${status}  ${count}`);
  }
  const errors = Object.entries(report.errorCodes);
  if (errors.length > 0) {
    out.push('');
    out.push('errors');
    const width = Math.max(...errors.map(([code]) => code.length));
    for (const [code, count] of errors) out.push(`  ${code.padEnd(width)}  ${count}`);
  }
  return `${out.join('\n')}\n`;
}
