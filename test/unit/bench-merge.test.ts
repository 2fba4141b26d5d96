/** `muxpool bench --workers`: the threads' results are merged as histograms, never as averaged percentiles. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type LoadResult,
  type LoadSecond,
  createLatencyHistogram,
  deserializeResult,
  mergeResults,
  serializeResult,
} from '../../src/cli/bench-load.js';
import { buildReport } from '../../src/cli/bench-report.js';
import * as hdr from 'hdr-histogram-js';

/** A worker's result with these latencies (µs), each second's share recorded in its own histogram. */
function workerResult(latenciesUs: readonly number[], concurrency: number, startMs: number): LoadResult {
  const histogram = createLatencyHistogram();
  for (const value of latenciesUs) histogram.recordValue(value);
  // Two seconds: the first half of the values in second 0, the rest in second 1.
  const half = Math.floor(latenciesUs.length / 2);
  const timeline: LoadSecond[] = [latenciesUs.slice(0, half), latenciesUs.slice(half)].map((values, second) => {
    const h = createLatencyHistogram();
    for (const value of values) h.recordValue(value);
    return { second, durationMs: 1000, requests: values.length, errors: 0, histogram: hdr.encodeIntoCompressedBase64(h) };
  });
  return {
    concurrency,
    requests: latenciesUs.length,
    errors: 0,
    late: 0,
    unsent: 0,
    bodyBytes: latenciesUs.length * 12,
    startedAtMs: startMs,
    endedAtMs: startMs + 2_000,
    statusCodes: { '200': latenciesUs.length },
    errorCodes: {},
    protocols: { 'http/1.1': latenciesUs.length },
    connectionsOpened: concurrency,
    histogram,
    stalled: false,
    timeline,
    cpuUs: 1_000_000,
  };
}

test('--workers: merged percentiles are those of one histogram fed both workers\u2019 latencies, not averages of theirs', () => {
  // Worker 1 is fast (1–2 ms), worker 2 slow (40–50 ms) and makes a quarter as many requests.
  const fast = Array.from({ length: 4_000 }, (_, i) => 1_000 + (i % 1_000));
  const slow = Array.from({ length: 1_000 }, (_, i) => 40_000 + (i % 100) * 100);
  // Through the thread boundary's encoding, as the workers send them.
  const parts = [workerResult(fast, 8, 1_000), workerResult(slow, 8, 1_010)].map((r) => deserializeResult(serializeResult(r)));
  const merged = mergeResults(parts);

  const single = createLatencyHistogram();
  for (const value of [...fast, ...slow]) single.recordValue(value);
  for (const percentile of [50, 75, 90, 99, 99.9]) {
    assert.equal(merged.histogram.getValueAtPercentile(percentile), single.getValueAtPercentile(percentile), `p${percentile}`);
  }
  assert.equal(merged.histogram.totalCount, 5_000);
  // The encoding keeps values to HDR's precision (3 digits): the maximum comes back within it.
  assert.ok(Math.abs(merged.histogram.maxValue - single.maxValue) <= single.maxValue / 1000, `max ${merged.histogram.maxValue}`);

  const report = buildReport({ url: 'http://127.0.0.1/', method: 'GET', requestedProtocol: 'h1', connections: 16, workers: 2, rate: undefined }, merged, parts);
  // p90 of the whole is in the slow worker's range; the average of the workers' p90s is not.
  const p90s = report.perWorker.map((w) => w.latencyMs.p90 as number);
  assert.ok((report.latencyMs.p90 as number) >= 40, `merged p90 ${report.latencyMs.p90}`);
  const averaged = ((p90s[0] ?? 0) + (p90s[1] ?? 0)) / 2;
  assert.ok(averaged < 40 * 0.8, `averaging would give ${averaged}`);
  // Per-worker and total figures.
  assert.deepEqual(
    report.perWorker.map((w) => [w.worker, w.connections, w.requests]),
    [
      [1, 8, 4_000],
      [2, 8, 1_000],
    ],
  );
  assert.ok((report.perWorker[0]?.latencyMs.p99 as number) < 2.1);
  assert.ok((report.perWorker[1]?.latencyMs.p50 as number) >= 40);
  assert.equal(report.requests, 5_000);
  assert.equal(report.connections, 16);
  assert.equal(report.bodyBytes, 60_000);
  assert.deepEqual(report.statusCodes, { '200': 5_000 });
  assert.equal(report.durationMs, 2_010);

  // Seconds merge by index, histograms added: second 1 holds the fast worker's upper half and the slow one's.
  assert.deepEqual(
    report.timeline.map((s) => [s.second, s.requests]),
    [
      [0, 2_500],
      [1, 2_500],
    ],
  );
  const second1 = createLatencyHistogram();
  for (const value of [...fast.slice(2_000), ...slow.slice(500)]) second1.recordValue(value);
  assert.equal(report.timeline[1]?.p99Ms, Math.round((Math.min(second1.getValueAtPercentile(99), second1.maxValue) / 1000) * 1000) / 1000);
});
