/**
 * The load engine behind `muxpool bench`: one pool, a closed or open loop, latency in an HDR
 * histogram. The same engine runs in the main thread, or once in each worker thread with its
 * share of the load.
 *
 * Closed loop (default): `concurrency` lanes, each sends a request, waits for the end of its
 * body, and sends the next; latency counts from the send.
 *
 * Open loop (`ratePerSec`): request i is due at start + i / rate, whatever happened to the
 * others, and its latency counts from that due time, so a slow response that delays the next
 * ones shows in the percentiles (no coordinated omission). At most `concurrency` requests are
 * in flight; a due request that finds every slot busy waits for one in order and is counted as
 * `late` (its latency still includes the wait). The number of requests is fixed up front, so a
 * target that cannot keep up makes the run longer instead of losing requests; once the run is
 * as long again as its schedule (at least OVERRUN_MIN_MS more), the requests not yet sent are
 * given up and counted as `unsent`.
 */
import * as hdr from 'hdr-histogram-js';
import { performance } from 'node:perf_hooks';
import { ConnectionPool, type RequestOptions } from '../client/pool.js';
import { MuxpoolError } from '../errors.js';
import { HttpVersion } from '../protocol/version.js';

export interface LoadPlan {
  url: string;
  method: string;
  headers: Array<[string, string]>;
  version: HttpVersion;
  /**
   * Requests in flight at most: as many HTTP/1.1 connections (one request each), or as many
   * streams on one HTTP/2 or HTTP/3 connection.
   */
  concurrency: number;
  /** Exactly this many requests; undefined: run for `durationMs` (or `ratePerSec` × `durationMs`). */
  requests: number | undefined;
  durationMs: number | undefined;
  /** Open loop: requests per second on a fixed schedule. Undefined: closed loop. */
  ratePerSec: number | undefined;
  /** Extra trusted CA (PEM). */
  ca: string | undefined;
  insecure: boolean;
}

/** What a run produced; `histogram` holds latencies in microseconds. */
export interface LoadResult {
  requests: number;
  errors: number;
  late: number;
  unsent: number;
  /** Wall clock (ms since the epoch), comparable across worker threads. */
  startedAtMs: number;
  endedAtMs: number;
  statusCodes: Record<string, number>;
  errorCodes: Record<string, number>;
  /** Responses per protocol that served them ('http/1.1', 'h2', 'h3'). */
  protocols: Record<string, number>;
  /** Connections the pool dialed over the run. */
  connectionsOpened: number;
  histogram: hdr.Histogram;
  /** Set when the run was cut short because nothing completed for STALL_LIMIT_MS. */
  stalled: boolean;
}

/** A `LoadResult` as it crosses a thread boundary: the histogram in HDR's compressed encoding. */
export type SerializedLoadResult = Omit<LoadResult, 'histogram'> & { histogram: string };

/** A run where requests are in flight but none completes for this long is ended. */
export const STALL_LIMIT_MS = 30_000;
/** How often the stall watchdog looks. */
const WATCHDOG_INTERVAL_MS = 1_000;
/** Open loop: a request sent more than this after its due time is late. */
export const LATE_AFTER_MS = 1;
/** Open loop: the least time past the end of the schedule before unsent requests are given up. */
export const OVERRUN_MIN_MS = 10_000;
/** Latency range of the histogram, in microseconds: 1 µs to 1 h. Longer values are clamped. */
const HIGHEST_LATENCY_US = 3_600_000_000;

export function createLatencyHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_LATENCY_US, numberOfSignificantValueDigits: 3 });
}

export function serializeResult(result: LoadResult): SerializedLoadResult {
  return { ...result, histogram: hdr.encodeIntoCompressedBase64(result.histogram) };
}

export function deserializeResult(result: SerializedLoadResult): LoadResult {
  return { ...result, histogram: hdr.decodeFromCompressedBase64(result.histogram) };
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function errorCode(err: unknown): string {
  if (err instanceof MuxpoolError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.name : 'UNKNOWN';
}

/** Milliseconds since the epoch, with performance.now()'s resolution. */
function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export class LoadEngine {
  /** Requests finished (response body read, or failed). Read by the progress display. */
  completed = 0;
  errors = 0;
  inFlight = 0;
  private late = 0;
  private unsent = 0;
  private stopped = false;
  private stalled = false;
  private lastCompletionAt = 0;
  /** Closed loop with a request count: requests not yet handed to a lane. */
  private remaining: number | undefined;
  /** Closed loop with a duration: no lane starts a request after this (performance.now()). */
  private deadline: number | undefined;
  private readonly plan: LoadPlan;
  private readonly url: URL;
  private readonly pool: ConnectionPool;
  /** One options object for every request: the hot path allocates nothing it can share. */
  private readonly requestOptions: RequestOptions;
  private readonly histogram = createLatencyHistogram();
  private readonly statusCodes = new Map<string, number>();
  private readonly errorCodes = new Map<string, number>();
  private readonly protocols = new Map<string, number>();
  private readonly laneBound = (): Promise<void> => this.lane();
  /** Open loop: looks at the schedule now (stop() uses it so a slow schedule stops at once). */
  private wake: (() => void) | undefined;

  constructor(plan: LoadPlan) {
    this.plan = plan;
    this.url = new URL(plan.url);
    const multiplexed = plan.version === HttpVersion.Http2 || plan.version === HttpVersion.Http3 || plan.version === HttpVersion.Http3Only;
    this.pool = new ConnectionPool({
      // HTTP/1.1: one connection per lane. HTTP/2 and HTTP/3: every lane on one connection.
      // Auto may end up with either, so it allows both.
      maxPerHost: multiplexed ? 1 : plan.concurrency,
      maxStreams: plan.concurrency,
      maxWaiters: Math.max(plan.concurrency, 1),
      tls: { ...(plan.ca !== undefined ? { ca: plan.ca } : {}), ...(plan.insecure ? { rejectUnauthorized: false } : {}) },
    });
    this.requestOptions = { method: plan.method, headers: plan.headers, version: plan.version };
  }

  /** Stops sending; requests in flight finish (bounded by the stall watchdog). */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  async run(): Promise<LoadResult> {
    const startedAtMs = wallClockMs();
    this.lastCompletionAt = performance.now();
    const watchdog = setInterval(() => this.checkStall(), WATCHDOG_INTERVAL_MS);
    watchdog.unref();
    let connectionsOpened: number;
    let endedAtMs: number;
    try {
      if (this.plan.ratePerSec !== undefined) await this.openLoop(this.plan.ratePerSec);
      else await this.closedLoop();
      endedAtMs = wallClockMs();
      connectionsOpened = (await this.pool.stats()).dialed;
    } finally {
      clearInterval(watchdog);
      await this.pool.destroy();
    }
    return {
      requests: this.completed,
      errors: this.errors,
      late: this.late,
      unsent: this.unsent,
      startedAtMs,
      endedAtMs,
      statusCodes: Object.fromEntries(this.statusCodes),
      errorCodes: Object.fromEntries(this.errorCodes),
      protocols: Object.fromEntries(this.protocols),
      connectionsOpened,
      histogram: this.histogram,
      stalled: this.stalled,
    };
  }

  private checkStall(): void {
    if (this.inFlight === 0 || performance.now() - this.lastCompletionAt < STALL_LIMIT_MS) return;
    this.stalled = true;
    this.stop();
    void this.pool.destroy(
      new MuxpoolError('MUXPOOL_ERR_REQUEST_TIMEOUT', `no response completed for ${STALL_LIMIT_MS} ms`, { maybeProcessed: true }),
    );
  }

  /** One request, from `scheduledAt` (performance.now()) to the end of its body. Never rejects. */
  private async send(scheduledAt: number): Promise<void> {
    this.inFlight++;
    try {
      const res = await this.pool.request(this.url, this.requestOptions);
      await res.dump();
      const latencyUs = Math.round((performance.now() - scheduledAt) * 1000);
      this.histogram.recordValue(Math.min(Math.max(latencyUs, 1), HIGHEST_LATENCY_US));
      increment(this.statusCodes, String(res.status));
      increment(this.protocols, res.protocol);
    } catch (err) {
      this.errors++;
      increment(this.errorCodes, errorCode(err));
    }
    this.inFlight--;
    this.completed++;
    this.lastCompletionAt = performance.now();
  }

  private async closedLoop(): Promise<void> {
    this.remaining = this.plan.requests;
    if (this.plan.requests === undefined) this.deadline = performance.now() + (this.plan.durationMs ?? 0);
    await Promise.all(Array.from({ length: this.plan.concurrency }, this.laneBound));
  }

  /** Bounded by the request count or the deadline, and by stop(). */
  private async lane(): Promise<void> {
    while (!this.stopped) {
      if (this.remaining !== undefined) {
        if (this.remaining === 0) return;
        this.remaining--;
      }
      const now = performance.now();
      if (this.deadline !== undefined && now >= this.deadline) return;
      await this.send(now);
    }
  }

  private openLoop(ratePerSec: number): Promise<void> {
    const total = this.plan.requests ?? Math.round((ratePerSec * (this.plan.durationMs ?? 0)) / 1000);
    const intervalMs = 1000 / ratePerSec;
    const start = performance.now();
    const scheduleMs = total * intervalMs;
    const giveUpAt = start + scheduleMs + Math.max(OVERRUN_MIN_MS, scheduleMs);
    const concurrency = this.plan.concurrency;
    let next = 0;
    let timer: NodeJS.Timeout | undefined;
    return new Promise<void>((resolve) => {
      // Runs on the schedule's timer and after every completion; each call sends what is due
      // and has a free slot, so the loop is bounded by `total`.
      const pump = (): void => {
        const now = performance.now();
        if (next < total && (this.stopped || now > giveUpAt)) {
          this.unsent += total - next;
          next = total;
        }
        while (next < total && this.inFlight < concurrency) {
          const due = start + next * intervalMs;
          if (due > now) break;
          if (now - due > LATE_AFTER_MS) this.late++;
          next++;
          void this.send(due).then(pump);
        }
        if (next >= total) {
          if (timer !== undefined) clearTimeout(timer);
          timer = undefined;
          if (this.inFlight === 0) resolve();
          return;
        }
        // With every slot busy, the next completion calls pump; otherwise wake at the next due time.
        if (this.inFlight < concurrency && timer === undefined) {
          timer = setTimeout(onTimer, Math.max(0, start + next * intervalMs - now));
        }
      };
      const onTimer = (): void => {
        timer = undefined;
        pump();
      };
      this.wake = pump;
      pump();
    });
  }
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, count] of Object.entries(from)) into[key] = (into[key] ?? 0) + count;
}

/** One result from the results of several worker threads: counts and histograms added. */
export function mergeResults(results: readonly LoadResult[]): LoadResult {
  const merged: LoadResult = {
    requests: 0,
    errors: 0,
    late: 0,
    unsent: 0,
    startedAtMs: Infinity,
    endedAtMs: -Infinity,
    statusCodes: {},
    errorCodes: {},
    protocols: {},
    connectionsOpened: 0,
    histogram: createLatencyHistogram(),
    stalled: false,
  };
  for (const result of results) {
    merged.requests += result.requests;
    merged.errors += result.errors;
    merged.late += result.late;
    merged.unsent += result.unsent;
    merged.startedAtMs = Math.min(merged.startedAtMs, result.startedAtMs);
    merged.endedAtMs = Math.max(merged.endedAtMs, result.endedAtMs);
    addCounts(merged.statusCodes, result.statusCodes);
    addCounts(merged.errorCodes, result.errorCodes);
    addCounts(merged.protocols, result.protocols);
    merged.connectionsOpened += result.connectionsOpened;
    merged.histogram.add(result.histogram);
    merged.stalled ||= result.stalled;
  }
  return merged;
}
