/**
 * bench:otel — what observability costs per request: muxpool request() over HTTP/1.1 and
 * HTTP/2 with nobody listening (`off`), with a no-op subscriber on one request channel
 * (`channels`: the cost of building the per-request events), with OpenTelemetry tracing
 * through `@opentelemetry/instrumentation-undici` (`tracing`: the SDK, the W3C propagator,
 * spans handed to a no-op exporter), and with `muxpool/otel` metrics (`metrics`). Reported as
 * CPU µs per request (process.cpuUsage, client side; the server runs in its own process) and
 * the µs each mode adds to `off` (undici's: to `undici-off`) from the same run. Usage:
 *   npm run bench:otel -- [--duration S] [--warmup S] [--concurrency 16] [--rounds N]
 *                         [--clients off,channels,tracing,metrics,undici-off,undici-tracing] [--protocols h1,h2]
 * The modes take turns (a different one first in each round); the table shows each mode's
 * median round, and its best.
 */
import diagnostics from 'node:diagnostics_channel';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Client, Pool } from 'undici';
import { ConnectionPool, HttpVersion } from '../src/index.js';
import { instrumentPool, withMuxpoolSpanAttributes } from '../src/otel.js';
import { benchCertificates } from './lib/h2-bench.js';
import { HAS_TASKSET, type Result, closedLoop, parseArgs, runRounds, saveResults, startServerProcess } from './lib/run.js';

const args = parseArgs(process.argv.slice(2));
const modes = args.clients ?? ['off', 'channels', 'tracing', 'metrics', 'undici-off', 'undici-tracing'];
const protocolsArg = process.argv.indexOf('--protocols');
const protocols = (protocolsArg >= 0 ? (process.argv[protocolsArg + 1] ?? '') : 'h1,h2').split(',');
const concurrency = process.argv.includes('--concurrency') ? args.concurrency : [16];

/** Spans are built and ended, then dropped: the exporter is not what is measured. */
const dropSpans: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: () => Promise.resolve(),
};
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(dropSpans)] });
const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(tracerProvider);
const instrumentation = new UndiciInstrumentation(withMuxpoolSpanAttributes({}));
registerInstrumentations({ instrumentations: [instrumentation], tracerProvider });
instrumentation.disable();

class IdleReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}
const meterProvider = new MeterProvider({ readers: [new IdleReader()] });

/** Turns one mode on for `pool`; returns what turns it off. */
function enable(mode: string, pool: ConnectionPool): () => void {
  switch (mode) {
    case 'off':
      return () => {};
    case 'channels': {
      const listener = (): void => {};
      diagnostics.subscribe('muxpool:request:end', listener);
      return () => diagnostics.unsubscribe('muxpool:request:end', listener);
    }
    case 'tracing':
      instrumentation.enable();
      return () => instrumentation.disable();
    case 'metrics':
      return instrumentPool(pool, { meterProvider });
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

/**
 * The reference: undici's own Pool (h1) or Client with allowH2 (h2) with nobody listening
 * (`undici-off`) and traced by the same instrumentation (`undici-tracing`): what tracing costs
 * a client that publishes these channels natively.
 */
async function runUndici(protocol: string, mode: string, url: string, c: number): Promise<Result> {
  const origin = new URL(url).origin;
  const client =
    protocol === 'h2'
      ? new Client(origin, { allowH2: true, pipelining: c, connect: { ca: files.certs.caCert } })
      : new Pool(origin, { connections: c, pipelining: 1 });
  if (mode === 'undici-tracing') instrumentation.enable();
  else if (mode !== 'undici-off') throw new Error(`unknown mode ${mode}`);
  try {
    return await closedLoop(`${protocol} ${mode}`, c, async () => {
      const { body } = await client.request({ path: '/', method: 'GET' });
      await body.text();
    }, args.durationMs, args.warmupMs);
  } finally {
    instrumentation.disable();
    await client.close();
  }
}

const files = await benchCertificates('otel');
const h1 = await startServerProcess('./h1-server.js');
const h2 = await startServerProcess('./h2-server.js', [files.keyPath, files.certPath]);
const results: Result[] = [];
/** Per protocol and mode: CPU µs/request (median of rounds), and what it adds to `off`. */
const added: Array<{ protocol: string; mode: string; medianUs: number; bestUs: number; cpuMedianUs: number }> = [];
try {
  for (const protocol of protocols) {
    const url = protocol === 'h2' ? `https://127.0.0.1:${h2.port}/` : `http://127.0.0.1:${h1.port}/`;
    const version = protocol === 'h2' ? HttpVersion.Http2 : HttpVersion.Http1_1;
    const cpuByMode = new Map<string, number[]>();
    const rows = await runRounds(modes, concurrency, args.rounds, async (mode, c) => {
      if (mode.startsWith('undici-')) {
        const result = await runUndici(protocol, mode, url, c);
        cpuByMode.set(mode, [...(cpuByMode.get(mode) ?? []), result.cpuUsPerReq ?? Infinity]);
        return result;
      }
      const pool = new ConnectionPool({ maxPerHost: protocol === 'h2' ? 1 : c, tls: { ca: files.certs.caCert } });
      const disable = enable(mode, pool);
      try {
        const result = await closedLoop(`${protocol} ${mode}`, c, async () => {
          const res = await pool.request(url, { version });
          await res.text();
        }, args.durationMs, args.warmupMs);
        cpuByMode.set(mode, [...(cpuByMode.get(mode) ?? []), result.cpuUsPerReq ?? Infinity]);
        return result;
      } finally {
        disable();
        await pool.close();
      }
    });
    results.push(...rows);
    const median = (mode: string): number => {
      const sorted = [...(cpuByMode.get(mode) ?? [])].sort((a, b) => a - b);
      return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
    };
    const best = (mode: string): number => Math.min(...(cpuByMode.get(mode) ?? [NaN]));
    for (const mode of modes) {
      // undici's modes against undici's own baseline, ours against `off`.
      const base = mode.startsWith('undici-') ? 'undici-off' : 'off';
      if (mode === base || !modes.includes(base)) continue;
      added.push({ protocol, mode, medianUs: median(mode) - median(base), bestUs: best(mode) - best(base), cpuMedianUs: median(mode) });
    }
    if (modes.includes('undici-off')) added.push({ protocol, mode: 'undici-off', medianUs: 0, bestUs: 0, cpuMedianUs: median('undici-off') });
    if (modes.includes('off')) added.push({ protocol, mode: 'off', medianUs: 0, bestUs: 0, cpuMedianUs: median('off') });
  }
} finally {
  await h1.stop();
  await h2.stop();
  await files.remove();
  await tracerProvider.shutdown();
  await meterProvider.shutdown();
  contextManager.disable();
}

const lines = [
  `## bench:otel (${process.version}, ${HAS_TASKSET ? 'server on core 0, clients on core 1' : 'no taskset'}, c=${concurrency.join(',')}, ${args.rounds} round(s))`,
  '',
  '| protocol / mode | req/s (median round) | CPU µs/req (median of rounds) | added µs/req (medians) | added µs/req (best rounds) |',
  '|---|---|---|---|---|',
  ...results.map((r) => {
    const [protocol, mode] = r.client.split(' ') as [string, string];
    const extra = added.find((a) => a.protocol === protocol && a.mode === mode);
    const delta = (value: number | undefined): string =>
      value === undefined || mode === 'off' || mode === 'undici-off' ? '—' : `${value >= 0 ? '+' : ''}${value.toFixed(1)}`;
    return `| ${r.client} | ${r.reqPerSec.toFixed(0)} | ${(extra?.cpuMedianUs ?? r.cpuUsPerReq ?? 0).toFixed(1)} | ${delta(extra?.medianUs)} | ${delta(extra?.bestUs)} |`;
  }),
];
const markdown = lines.join('\n');
console.log(markdown);
console.log(`\nresults: ${await saveResults('otel', results, markdown, { added })}`);
