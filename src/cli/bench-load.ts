/**
 * The load engine behind `muxpool bench`: one pool, a closed or open loop, latency in an HDR
 * histogram. The same engine runs in the main thread, or once in each worker thread with its
 * share of the load.
 *
 * The lean path: requests go straight onto the pool's connections (`Connection.openStream`)
 * through a `ConnectionLender`, so dialing, `maxPerHost`, stream limits and protocol choice stay
 * the pool's, but there is no `request()` around them: the head is validated and built once
 * (each protocol keeps its encoding of it, `HeadEncodings`), nothing builds a `Response`, body
 * bytes are counted and dropped as they arrive, and one reusable handler per slot does the
 * bookkeeping. A request that failed before anything was sent (`maybeProcessed: false`, a stale
 * keep-alive socket) is sent once more, as `request()` would; anything else counts as an error.
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
 *
 * Over time: every completed second of the run keeps its own histogram (HDR's compressed
 * encoding), its request and error counts, for the HTML report's charts; worker threads' seconds
 * are added by index (each thread counts from its own start, within milliseconds of the others).
 */
import * as hdr from 'hdr-histogram-js';
import { performance } from 'node:perf_hooks';
import { ConnectionPool, type ConnectionLender, type HttpPoolEntry, connectionLender } from '../client/pool.js';
import { prepareRequest } from '../client/prepare.js';
import { MuxpoolError } from '../errors.js';
import { HeadEncodings, type IncomingHeaders, type RequestBody, type RequestHead, type StreamHandler } from '../protocol/message.js';
import { HttpVersion } from '../protocol/version.js';

export interface LoadPlan {
  url: string;
  method: string;
  headers: Array<[string, string]>;
  /** The request body sent with every request (bytes); undefined: none. */
  body: Uint8Array | undefined;
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

/** One second of a run: what completed in it, latencies in HDR's compressed encoding (µs). */
export interface LoadSecond {
  /** Seconds since the start of the run (0: the first second). */
  second: number;
  /** How much of that second the run lasted: 1000 but for the last one. */
  durationMs: number;
  requests: number;
  errors: number;
  /** Empty when no response completed in that second. */
  histogram: string;
}

/** What a run produced; `histogram` holds latencies in microseconds. */
export interface LoadResult {
  /** Requests in flight at most (the plan's concurrency; added up over worker threads). */
  concurrency: number;
  requests: number;
  errors: number;
  late: number;
  unsent: number;
  /** Response body bytes received (counted, never kept). */
  bodyBytes: number;
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
  /** The run second by second (the last, partial second included). */
  timeline: LoadSecond[];
  /** CPU time (user + system, µs) this thread's process used over the run; per thread, not per worker. */
  cpuUs: number;
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
/** A request that failed before anything of it was sent goes out once more (as request()'s default). */
const MAX_ATTEMPTS = 2;

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

/** Checks the plan's request as `request()` would (method, header fields, body); throws a `MuxpoolError`. */
export function checkPlan(plan: LoadPlan): void {
  prepareRequest(new URL(plan.url), plan.method, plan.headers, plan.body, undefined);
}

/** Milliseconds since the epoch, with performance.now()'s resolution. */
function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * One request slot: the `StreamHandler` of the stream it has open. Reused for request after
 * request, so the steady state allocates no handler, promise or closure per request.
 */
class Slot implements StreamHandler {
  private readonly engine: LoadEngine;
  entry: HttpPoolEntry | undefined;
  scheduledAt = 0;
  attempt = 1;
  status = 0;

  constructor(engine: LoadEngine) {
    this.engine = engine;
  }

  onResponse(status: number, _headers: IncomingHeaders, _statusText: string): void {
    this.status = status;
  }

  onData(chunk: Uint8Array): boolean {
    this.engine.bodyBytes += chunk.byteLength;
    return true;
  }

  onTrailers(_trailers: IncomingHeaders): void {}

  onComplete(): void {
    const entry = this.entry;
    this.entry = undefined;
    if (entry === undefined) return;
    this.engine.lender.release(entry);
    this.engine.succeeded(this, entry.connection.protocol);
  }

  onError(err: MuxpoolError): void {
    const entry = this.entry;
    this.entry = undefined;
    if (entry === undefined) return;
    this.engine.lender.release(entry);
    this.engine.failed(this, err);
  }
}

export class LoadEngine {
  /** Requests finished (response body read, or failed). Read by the progress display. */
  completed = 0;
  errors = 0;
  inFlight = 0;
  bodyBytes = 0;
  readonly lender: ConnectionLender;
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
  private readonly pool: ConnectionPool;
  private readonly head: RequestHead;
  private readonly body: RequestBody;
  private readonly histogram = createLatencyHistogram();
  private readonly statusCodes = new Map<string, number>();
  private readonly errorCodes = new Map<string, number>();
  private readonly protocols = new Map<string, number>();
  /** Slots not carrying a request. */
  private readonly freeSlots: Slot[] = [];
  /** Requests finished whose lane goes on in the next microtask (never inside a transport's callback). */
  private finished = 0;
  private readonly flushBound = (): void => this.flushFinished();
  /** What comes after a request finished: the closed loop's next request, or the open loop's pump. */
  private afterFinish: () => void = () => {};
  private onIdle: (() => void) | undefined;
  // The current second of the timeline.
  private startedAt = 0;
  private secondIndex = 0;
  private secondRequests = 0;
  private secondErrors = 0;
  private readonly secondHistogram = createLatencyHistogram();
  private readonly timeline: LoadSecond[] = [];

  constructor(plan: LoadPlan) {
    this.plan = plan;
    const url = new URL(plan.url);
    const multiplexed = plan.version === HttpVersion.Http2 || plan.version === HttpVersion.Http3 || plan.version === HttpVersion.Http3Only;
    this.pool = new ConnectionPool({
      // HTTP/1.1: one connection per lane. HTTP/2 and HTTP/3: every lane on one connection.
      // Auto may end up with either, so it allows both.
      maxPerHost: multiplexed ? 1 : plan.concurrency,
      maxStreams: plan.concurrency,
      maxWaiters: Math.max(plan.concurrency, 1),
      tls: { ...(plan.ca !== undefined ? { ca: plan.ca } : {}), ...(plan.insecure ? { rejectUnauthorized: false } : {}) },
    });
    // Validated as request() validates; bad input fails here, before any connection.
    const prepared = prepareRequest(url, plan.method, plan.headers, plan.body, undefined);
    this.head = { ...prepared.head, encodings: new HeadEncodings() };
    this.body = prepared.body;
    this.lender = connectionLender(this.pool, url, plan.version);
  }

  /** Stops sending; requests in flight finish (bounded by the stall watchdog). */
  stop(): void {
    this.stopped = true;
    this.afterFinish();
  }

  async run(): Promise<LoadResult> {
    const startedAtMs = wallClockMs();
    const cpuStart = process.cpuUsage();
    this.startedAt = performance.now();
    this.lastCompletionAt = this.startedAt;
    const watchdog = setInterval(() => this.checkStall(), WATCHDOG_INTERVAL_MS);
    watchdog.unref();
    // The timeline's seconds end on this timer; a busy loop makes it late, which only moves
    // completions into the second they were counted in.
    const ticker = setInterval(() => this.closeSecond(), 1000);
    ticker.unref();
    let connectionsOpened: number;
    let endedAtMs: number;
    try {
      await new Promise<void>((resolve) => {
        this.onIdle = resolve;
        if (this.plan.ratePerSec !== undefined) this.openLoop(this.plan.ratePerSec);
        else this.closedLoop();
      });
      endedAtMs = wallClockMs();
      connectionsOpened = (await this.pool.stats()).dialed;
    } finally {
      clearInterval(watchdog);
      clearInterval(ticker);
      await this.pool.destroy();
    }
    this.closeSecond(true);
    const cpu = process.cpuUsage(cpuStart);
    return {
      concurrency: this.plan.concurrency,
      requests: this.completed,
      errors: this.errors,
      late: this.late,
      unsent: this.unsent,
      bodyBytes: this.bodyBytes,
      startedAtMs,
      endedAtMs,
      statusCodes: Object.fromEntries(this.statusCodes),
      errorCodes: Object.fromEntries(this.errorCodes),
      protocols: Object.fromEntries(this.protocols),
      connectionsOpened,
      histogram: this.histogram,
      stalled: this.stalled,
      timeline: this.timeline,
      cpuUs: cpu.user + cpu.system,
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

  /** Ends the current second of the timeline once it is over (or at the end of the run). */
  private closeSecond(final = false): void {
    const elapsedMs = performance.now() - this.startedAt;
    const index = Math.floor(elapsedMs / 1000);
    if (index <= this.secondIndex && !final) return;
    const histogram = this.secondHistogram;
    this.histogram.add(histogram);
    this.timeline.push({
      second: this.secondIndex,
      durationMs: index > this.secondIndex ? 1000 : Math.max(1, Math.round(elapsedMs - this.secondIndex * 1000)),
      requests: this.secondRequests,
      errors: this.secondErrors,
      histogram: histogram.totalCount === 0 ? '' : hdr.encodeIntoCompressedBase64(histogram),
    });
    histogram.reset();
    this.secondRequests = 0;
    this.secondErrors = 0;
    // Seconds in which no tick ran (a blocked loop) are there, empty: the charts keep time.
    // Bounded by the length of the run in seconds.
    for (let second = this.secondIndex + 1; second < index; second++) this.timeline.push({ second, durationMs: 1000, requests: 0, errors: 0, histogram: '' });
    this.secondIndex = Math.max(this.secondIndex + 1, index);
  }

  // ---------------------------------------------------------------------------------------
  // One request

  /** Sends one request due at `scheduledAt` (performance.now()). */
  private launch(scheduledAt: number): void {
    const slot = this.freeSlots.pop() ?? new Slot(this);
    slot.scheduledAt = scheduledAt;
    slot.attempt = 1;
    slot.status = 0;
    this.inFlight++;
    this.attempt(slot);
  }

  private attempt(slot: Slot): void {
    const entry = this.lender.tryAcquire();
    if (entry !== undefined) {
      this.open(slot, entry);
      return;
    }
    this.lender.acquire().then(
      (acquired) => this.open(slot, acquired),
      (err: unknown) => this.failed(slot, err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_INTERNAL', String(err))),
    );
  }

  private open(slot: Slot, entry: HttpPoolEntry): void {
    slot.entry = entry;
    try {
      entry.connection.openStream(this.head, this.body, slot);
    } catch (err) {
      slot.onError(err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'opening a stream failed', { cause: err }));
    }
  }

  /** @internal the slot's response ended. */
  succeeded(slot: Slot, protocol: string): void {
    const latencyUs = Math.round((performance.now() - slot.scheduledAt) * 1000);
    const value = latencyUs < 1 ? 1 : latencyUs > HIGHEST_LATENCY_US ? HIGHEST_LATENCY_US : latencyUs;
    // Into this second's histogram only: it is added to the whole run's when the second ends.
    this.secondHistogram.recordValue(value);
    this.secondRequests++;
    increment(this.statusCodes, String(slot.status));
    increment(this.protocols, protocol);
    this.finish(slot);
  }

  /** @internal the slot's request failed. */
  failed(slot: Slot, err: MuxpoolError): void {
    if (err.maybeProcessed === false && slot.attempt < MAX_ATTEMPTS && !this.stopped) {
      // Nothing reached the server (a keep-alive socket the server had closed): once more, on
      // the next turn so that a connection failing synchronously cannot recurse.
      slot.attempt++;
      queueMicrotask(() => this.attempt(slot));
      return;
    }
    this.errors++;
    this.secondErrors++;
    increment(this.errorCodes, errorCode(err));
    this.finish(slot);
  }

  private finish(slot: Slot): void {
    this.inFlight--;
    this.completed++;
    this.lastCompletionAt = performance.now();
    this.freeSlots.push(slot);
    // The next request leaves once the transport's callback has returned: a new request must
    // not be written from inside the parser that is still finishing the last response.
    if (++this.finished === 1) queueMicrotask(this.flushBound);
  }

  private flushFinished(): void {
    // Bounded: the requests that finished before this microtask, each handled once.
    const count = this.finished;
    this.finished = 0;
    for (let i = 0; i < count; i++) this.afterFinish();
  }

  // ---------------------------------------------------------------------------------------
  // Loops

  private closedLoop(): void {
    this.remaining = this.plan.requests;
    if (this.plan.requests === undefined) this.deadline = performance.now() + (this.plan.durationMs ?? 0);
    this.afterFinish = () => this.next();
    // Bounded: one request per lane.
    for (let i = 0; i < this.plan.concurrency; i++) this.next();
    if (this.inFlight === 0) this.onIdle?.();
  }

  /** A lane's next request, unless the count, the deadline or stop() says no. */
  private next(): void {
    let send = !this.stopped;
    const now = performance.now();
    if (send && this.remaining !== undefined) {
      if (this.remaining === 0) send = false;
      else this.remaining--;
    }
    if (send && this.deadline !== undefined && now >= this.deadline) send = false;
    if (send) this.launch(now);
    else if (this.inFlight === 0) this.onIdle?.();
  }

  private openLoop(ratePerSec: number): void {
    const total = this.plan.requests ?? Math.round((ratePerSec * (this.plan.durationMs ?? 0)) / 1000);
    const intervalMs = 1000 / ratePerSec;
    const start = performance.now();
    const scheduleMs = total * intervalMs;
    const giveUpAt = start + scheduleMs + Math.max(OVERRUN_MIN_MS, scheduleMs);
    const concurrency = this.plan.concurrency;
    let next = 0;
    let timer: NodeJS.Timeout | undefined;
    // Runs on the schedule's timer and after every completion; each call sends what is due and
    // has a free slot, so the loop is bounded by `total`.
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
        this.launch(due);
      }
      if (next >= total) {
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        if (this.inFlight === 0) this.onIdle?.();
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
    this.afterFinish = pump;
    pump();
  }
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, count] of Object.entries(from)) into[key] = (into[key] ?? 0) + count;
}

/** Worker threads' seconds added by index: counts summed, histograms added (never percentiles averaged). */
function mergeTimelines(timelines: ReadonlyArray<readonly LoadSecond[]>): LoadSecond[] {
  const bySecond = new Map<number, { durationMs: number; requests: number; errors: number; histogram: hdr.Histogram | undefined }>();
  for (const timeline of timelines) {
    for (const second of timeline) {
      let merged = bySecond.get(second.second);
      if (merged === undefined) {
        merged = { durationMs: 0, requests: 0, errors: 0, histogram: undefined };
        bySecond.set(second.second, merged);
      }
      merged.durationMs = Math.max(merged.durationMs, second.durationMs);
      merged.requests += second.requests;
      merged.errors += second.errors;
      if (second.histogram !== '') {
        merged.histogram ??= createLatencyHistogram();
        merged.histogram.add(hdr.decodeFromCompressedBase64(second.histogram));
      }
    }
  }
  return [...bySecond.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([second, merged]) => ({
      second,
      durationMs: merged.durationMs,
      requests: merged.requests,
      errors: merged.errors,
      histogram: merged.histogram === undefined ? '' : hdr.encodeIntoCompressedBase64(merged.histogram),
    }));
}

/** One result from the results of several worker threads: counts and histograms added. */
export function mergeResults(results: readonly LoadResult[]): LoadResult {
  const merged: LoadResult = {
    concurrency: 0,
    requests: 0,
    errors: 0,
    late: 0,
    unsent: 0,
    bodyBytes: 0,
    startedAtMs: Infinity,
    endedAtMs: -Infinity,
    statusCodes: {},
    errorCodes: {},
    protocols: {},
    connectionsOpened: 0,
    histogram: createLatencyHistogram(),
    stalled: false,
    timeline: mergeTimelines(results.map((result) => result.timeline)),
    // Worker threads share one process: each reports the process's CPU time, so the largest is it.
    cpuUs: 0,
  };
  for (const result of results) {
    merged.concurrency += result.concurrency;
    merged.requests += result.requests;
    merged.errors += result.errors;
    merged.late += result.late;
    merged.unsent += result.unsent;
    merged.bodyBytes += result.bodyBytes;
    merged.startedAtMs = Math.min(merged.startedAtMs, result.startedAtMs);
    merged.endedAtMs = Math.max(merged.endedAtMs, result.endedAtMs);
    addCounts(merged.statusCodes, result.statusCodes);
    addCounts(merged.errorCodes, result.errorCodes);
    addCounts(merged.protocols, result.protocols);
    merged.connectionsOpened += result.connectionsOpened;
    merged.histogram.add(result.histogram);
    merged.stalled ||= result.stalled;
    merged.cpuUs = Math.max(merged.cpuUs, result.cpuUs);
  }
  return merged;
}
