/**
 * `muxpool bench --report FILE.html`: the run as one self-contained HTML page. Charts are drawn
 * by uPlot (a runtime dependency), whose script and stylesheet are read from the installed
 * package and inlined, with the run's data as JSON, so the file opens anywhere without a network
 * and loads nothing from elsewhere (a strict Content-Security-Policy says so to the browser).
 *
 * Charts: the latency histogram (log-spaced buckets from the HDR histogram), throughput and
 * errors per second, p50 and p99 per second. Tables: the summary, per-worker figures, status
 * codes, error codes, the command and the environment. When every chart is drawn the page sets
 * `data-charts="rendered"` on <html> (and `data-chart-error` if drawing failed), for tests.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as hdr from 'hdr-histogram-js';
import type { LoadResult } from './bench-load.js';
import type { BenchReport } from './bench-report.js';

export interface ReportSetting {
  /** The command line as typed. */
  command: string;
  environment: Record<string, string>;
}

/** Buckets of the latency chart. */
const HISTOGRAM_BUCKETS = 40;

/** Latencies in log-spaced buckets between the fastest and slowest response: [bucket start ms], [count]. */
export function latencyBuckets(histogram: hdr.Histogram, buckets = HISTOGRAM_BUCKETS): { fromMs: number[]; counts: number[] } {
  if (histogram.totalCount === 0 || !(histogram instanceof hdr.JsHistogram)) return { fromMs: [], counts: [] };
  const lowUs = Math.max(1, histogram.minNonZeroValue);
  const highUs = Math.max(lowUs * 1.01, histogram.maxValue);
  const span = Math.log(highUs / lowUs);
  const counts = new Array<number>(buckets).fill(0);
  const iterator = histogram.recordedValuesIterator;
  iterator.reset();
  // Bounded: one step per distinct recorded value.
  while (iterator.hasNext()) {
    const step = iterator.next();
    const value = Math.min(Math.max(histogram.medianEquivalentValue(step.valueIteratedTo), lowUs), highUs);
    const index = Math.min(buckets - 1, Math.floor((Math.log(value / lowUs) / span) * buckets));
    counts[index] = (counts[index] ?? 0) + step.countAtValueIteratedTo;
  }
  const fromMs = counts.map((_, k) => Math.round(lowUs * Math.exp((span * k) / buckets)) / 1000);
  return { fromMs, counts };
}

/** JSON safe inside a <script> element: no `</script>`, no `<!--`, no U+2028/2029 surprises. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Text inlined into a <script> or <style> element must not close it early. */
function inlineSafe(text: string, tag: 'script' | 'style'): string {
  return text.replace(new RegExp(`</${tag}`, 'gi'), `<\\/${tag}`);
}

const uplotFiles = (): { script: string; style: string } => {
  const require = createRequire(import.meta.url);
  return { script: require.resolve('uplot/dist/uPlot.iife.min.js'), style: require.resolve('uplot/dist/uPlot.min.css') };
};

/**
 * uPlot's own banner names its home page; the page keeps the notice (MIT) without a link, so the
 * file holds no address of anything else at all.
 */
function withoutBannerLink(script: string): string {
  return script.replace(/^\/\*! https?:\/\/github\.com\/leeoniya\/uPlot \((v[\d.]+)\) \*\//, '/*! uPlot $1, (c) Leon Sorokin, MIT License: github.com/leeoniya/uPlot */');
}

function table(rows: Array<[string, string]>, headers?: [string, string]): string {
  const head = headers === undefined ? '' : `<thead><tr><th>${escapeHtml(headers[0])}</th><th>${escapeHtml(headers[1])}</th></tr></thead>`;
  return `<table>${head}<tbody>${rows.map(([a, b]) => `<tr><th>${escapeHtml(a)}</th><td>${escapeHtml(b)}</td></tr>`).join('')}</tbody></table>`;
}

const fmt = (value: number | null, unit: string): string => (value === null ? '—' : `${value.toFixed(3)} ${unit}`);

/** The page's own script: draws the three charts from the embedded data, then sets the marker. */
const PAGE_SCRIPT = `
(function () {
  var root = document.documentElement;
  try {
    var data = JSON.parse(document.getElementById('bench-data').textContent);
    var width = Math.max(320, Math.min(960, document.body.clientWidth - 40));
    var drawn = 0;
    var fmtMs = function (v) { return v == null ? '' : (v < 1 ? v.toFixed(3) : v < 100 ? v.toFixed(2) : v.toFixed(0)) + ' ms'; };
    var bars = uPlot.paths.bars({ size: [0.9, 60], align: 1 });
    var hist = data.histogram;
    if (hist.fromMs.length > 0) {
      new uPlot({
        title: 'Latency histogram (' + (data.mode === 'open-loop' ? 'from each request\\u2019s scheduled time' : 'from each send') + ')',
        width: width, height: 280,
        scales: { x: { time: false, distr: 3 }, y: { range: function (u, min, max) { return [0, Math.max(1, max) * 1.05]; } } },
        axes: [{ label: 'latency (ms, log scale)', values: function (u, vals) { return vals.map(fmtMs); } }, { label: 'responses', size: 70 }],
        series: [{ label: 'from', value: function (u, v) { return fmtMs(v); } }, { label: 'responses', fill: 'rgba(54,110,180,0.55)', stroke: '#2c5f9e', paths: bars, points: { show: false } }]
      }, [hist.fromMs, hist.counts], document.getElementById('chart-histogram'));
      drawn++;
    }
    var t = data.timeline;
    var secs = t.map(function (s) { return s.second; });
    if (secs.length > 0) {
      new uPlot({
        title: 'Throughput per second', width: width, height: 240,
        scales: { x: { time: false } },
        axes: [{ label: 'second of the run' }, { label: 'per second', size: 70 }],
        series: [{ label: 'second' }, { label: 'responses/s', stroke: '#2c5f9e', width: 2 }, { label: 'errors/s', stroke: '#c0392b', width: 2 }]
      }, [secs, t.map(function (s) { return s.reqPerSec; }), t.map(function (s) { return Math.round(s.errors * 10000 / s.durationMs) / 10; })], document.getElementById('chart-throughput'));
      drawn++;
      new uPlot({
        title: 'Latency per second', width: width, height: 240,
        scales: { x: { time: false } },
        axes: [{ label: 'second of the run' }, { label: 'latency', size: 80, values: function (u, vals) { return vals.map(fmtMs); } }],
        series: [{ label: 'second' }, { label: 'p50', stroke: '#27ae60', width: 2, value: function (u, v) { return fmtMs(v); } }, { label: 'p99', stroke: '#d35400', width: 2, value: function (u, v) { return fmtMs(v); } }]
      }, [secs, t.map(function (s) { return s.p50Ms; }), t.map(function (s) { return s.p99Ms; })], document.getElementById('chart-latency'));
      drawn++;
    }
    root.setAttribute('data-charts-drawn', String(drawn));
    root.setAttribute('data-charts', 'rendered');
  } catch (err) {
    root.setAttribute('data-chart-error', String(err && err.message || err));
    throw err;
  }
})();
`;

const PAGE_STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 20px; color: #222; background: #fff; max-width: 1000px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.mode { display: inline-block; padding: 2px 8px; border-radius: 4px; background: #eef3fa; border: 1px solid #c9d7ea; }
table { border-collapse: collapse; margin: 4px 0 12px; } th, td { text-align: left; padding: 3px 12px 3px 0; vertical-align: top; }
tbody th { font-weight: 600; } code { background: #f4f4f4; padding: 2px 4px; border-radius: 3px; word-break: break-all; }
.chart { margin: 12px 0; } .note { color: #555; }
`;

export async function renderHtmlReport(report: BenchReport, result: LoadResult, setting: ReportSetting): Promise<string> {
  const files = uplotFiles();
  const [script, style] = await Promise.all([readFile(files.script, 'utf8'), readFile(files.style, 'utf8')]);
  const data = {
    mode: report.mode,
    histogram: latencyBuckets(result.histogram),
    timeline: report.timeline,
  };
  const l = report.latencyMs;
  const modeText =
    report.mode === 'open-loop'
      ? `open loop at ${report.rate ?? 0} req/s: latency counts from each request's scheduled time (coordinated omission corrected)`
      : 'closed loop: each of the in-flight lanes sends its next request when the last one ended; latency counts from the send';
  const summary: Array<[string, string]> = [
    ['URL', `${report.method} ${report.url}`],
    ['protocol', `${report.protocol ?? 'no responses'} (asked: ${report.requestedProtocol})`],
    ['in flight', `${report.connections} over ${report.connectionsOpened} connection(s), ${report.workers} thread(s)`],
    ['requests', `${report.requests} in ${(report.durationMs / 1000).toFixed(2)} s: ${report.reqPerSec.toFixed(1)} req/s`],
    ['errors', String(report.errors)],
    ...(report.mode === 'open-loop' ? ([['late / never sent', `${report.late} / ${report.unsent}`]] as Array<[string, string]>) : []),
    ['latency p50 / p90 / p99', `${fmt(l.p50, 'ms')} / ${fmt(l.p90, 'ms')} / ${fmt(l.p99, 'ms')}`],
    ['latency p99.9 / max / mean', `${fmt(l.p999, 'ms')} / ${fmt(l.max, 'ms')} / ${fmt(l.mean, 'ms')}`],
    ['body bytes received', String(report.bodyBytes)],
    ['CPU per request', report.cpuUsPerRequest === null ? '—' : `${report.cpuUsPerRequest.toFixed(1)} µs`],
  ];
  if (report.stalled) summary.push(['stopped early', 'no response completed for a long time']);
  const workers =
    report.perWorker.length === 0
      ? ''
      : `<h2>Worker threads</h2><table><thead><tr><th>worker</th><th>in flight</th><th>requests</th><th>req/s</th><th>errors</th><th>p50</th><th>p99</th></tr></thead><tbody>${report.perWorker
        .map(
          (w) =>
            `<tr><td>${w.worker}</td><td>${w.connections}</td><td>${w.requests}</td><td>${w.reqPerSec.toFixed(1)}</td><td>${w.errors}</td><td>${fmt(w.latencyMs.p50, 'ms')}</td><td>${fmt(w.latencyMs.p99, 'ms')}</td></tr>`,
        )
        .join('')}</tbody></table><p class="note">The total's percentiles come from the threads' histograms added together, not from these rows.</p>`;
  const statuses = Object.entries(report.statusCodes).map(([k, v]) => [k, String(v)] as [string, string]);
  const errors = Object.entries(report.errorCodes).map(([k, v]) => [k, String(v)] as [string, string]);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>muxpool bench: ${escapeHtml(report.url)}</title>
<style>${inlineSafe(style, 'style')}</style>
<style>${PAGE_STYLE}</style>
</head>
<body>
<h1>muxpool bench</h1>
<p><span class="mode">${escapeHtml(report.mode)}</span> ${escapeHtml(modeText)}</p>
${table(summary)}
<div class="chart" id="chart-histogram"></div>
<div class="chart" id="chart-throughput"></div>
<div class="chart" id="chart-latency"></div>
<p class="note">Per-second figures count the responses that completed in that second${report.workers > 1 ? ', every thread\u2019s seconds added by index' : ''}.</p>
${workers}
<h2>Status codes</h2>
${statuses.length === 0 ? '<p>none</p>' : table(statuses, ['status', 'responses'])}
<h2>Errors</h2>
${errors.length === 0 ? '<p>none</p>' : table(errors, ['code', 'requests'])}
<h2>Command</h2>
<p><code>${escapeHtml(setting.command)}</code></p>
<h2>Environment</h2>
${table(Object.entries(setting.environment))}
<script id="bench-data" type="application/json">${scriptJson(data)}</script>
<script>${inlineSafe(withoutBannerLink(script), 'script')}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
