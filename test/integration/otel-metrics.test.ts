/**
 * `muxpool/otel` metrics read back through the real `@opentelemetry/sdk-metrics` with an
 * in-memory reader: request durations with their semantic attributes, open connections by
 * state, connection durations, queue waits, dials by outcome, HTTP/3 fallbacks; another pool's
 * traffic is not counted, and nothing is after the disposer ran.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Attributes } from '@opentelemetry/api';
import { type DataPoint, type Histogram, MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { ConnectionPool, HttpVersion, MuxpoolError } from '../../src/index.js';
import { instrumentPool } from '../../src/otel.js';
import { certs } from '../helpers/certs.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpServer, startHttpsServer } from '../helpers/servers.js';

class TestReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

async function collect(reader: TestReader): Promise<Map<string, MetricData>> {
  const { resourceMetrics, errors } = await reader.collect();
  assert.deepEqual(errors, []);
  const byName = new Map<string, MetricData>();
  for (const scope of resourceMetrics.scopeMetrics) for (const metric of scope.metrics) byName.set(metric.descriptor.name, metric);
  return byName;
}

function points<T>(metric: MetricData | undefined): Array<DataPoint<T>> {
  assert.ok(metric !== undefined, 'the metric was recorded');
  return metric.dataPoints as Array<DataPoint<T>>;
}

function find<T>(list: Array<DataPoint<T>>, match: Attributes): DataPoint<T> | undefined {
  return list.find((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v));
}

test('http.client.request.duration, open_connections, connection.duration and dials for one pool, after the semantic conventions', async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((req, res) => {
    res.statusCode = req.url === '/missing' ? 404 : 200;
    setTimeout(() => res.end('ok'), 20);
  });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const pool = new ConnectionPool({ maxPerHost: 1 });
  const other = new ConnectionPool();
  const stop = instrumentPool(pool, { meterProvider });

  const responses = await Promise.all([pool.request(`${server.url}/a`), pool.request(`${server.url}/b`, { method: 'POST', body: 'x' })]);
  for (const res of responses) await res.dump();
  await (await pool.request(`${server.url}/missing`)).dump();
  await (await pool.request(`${server.url}/c`, { method: 'PURGE' })).dump();
  await (await other.request(`${server.url}/not-counted`)).dump();

  let metrics = await collect(reader);
  const durations = points<Histogram>(metrics.get('http.client.request.duration'));
  assert.equal(metrics.get('http.client.request.duration')?.descriptor.unit, 's');
  const base = { 'server.address': '127.0.0.1', 'server.port': server.port, 'url.scheme': 'http', 'network.protocol.version': '1.1' };
  const get = find(durations, { ...base, 'http.request.method': 'GET', 'http.response.status_code': 200 });
  assert.equal(get?.value.count, 1, 'the other pool is not counted');
  assert.ok((get?.value.sum ?? 0) >= 0.015, `seconds, not ms: ${get?.value.sum}`);
  assert.ok((get?.value.sum ?? 0) < 5);
  assert.equal(find(durations, { 'http.request.method': 'POST' })?.value.count, 1);
  assert.equal(find(durations, { 'http.request.method': '_OTHER' })?.value.count, 1, 'an unknown method is _OTHER');
  const missing = find(durations, { 'http.response.status_code': 404 });
  assert.equal(missing?.attributes['error.type'], '404');
  assert.equal(get?.attributes['error.type'], undefined);

  const open = points<number>(metrics.get('http.client.open_connections'));
  assert.deepEqual(
    open.map((p) => [p.attributes['http.connection.state'], p.attributes['network.protocol.version'], p.value]),
    [['idle', '1.1', 1]],
  );
  const dials = points<number>(metrics.get('muxpool.dials'));
  assert.equal(find(dials, { outcome: 'success', 'network.protocol.version': '1.1' })?.value, 1);
  const queue = points<Histogram>(metrics.get('muxpool.queue.duration'));
  assert.ok((queue[0]?.value.count ?? 0) >= 1, 'the second request queued behind maxPerHost 1');

  // A refused connection: a failed dial and an errored request with our code as error.type.
  const closed = await startHttpServer((_req, res) => res.end());
  const dead = `${closed.url}/`;
  await closed.close();
  await assert.rejects(pool.request(dead), (err: unknown) => err instanceof MuxpoolError);
  await pool.close();
  metrics = await collect(reader);
  const failed = find(points<Histogram>(metrics.get('http.client.request.duration')), { 'error.type': 'MUXPOOL_ERR_CONNECT_REFUSED' });
  assert.equal(failed?.value.count, 1);
  assert.equal(failed?.attributes['http.response.status_code'], undefined);
  assert.ok((find(points<number>(metrics.get('muxpool.dials')), { outcome: 'failure', 'error.type': 'MUXPOOL_ERR_CONNECT_REFUSED' })?.value ?? 0) >= 1);
  const lived = points<Histogram>(metrics.get('http.client.connection.duration'));
  assert.equal(find(lived, { 'server.port': server.port })?.value.count, 1, 'the closed connection has its duration');
  assert.deepEqual(points<number>(metrics.get('http.client.open_connections')).filter((p) => p.value !== 0), [], 'no open connection after close');

  // After the disposer, nothing more is recorded.
  stop();
  const after = new ConnectionPool();
  await (await after.request(`${server.url}/a`)).dump();
  metrics = await collect(reader);
  assert.equal(find(points<Histogram>(metrics.get('http.client.request.duration')), { ...base, 'http.request.method': 'GET', 'http.response.status_code': 200 })?.value.count, 1);
  await after.close();
  await other.close();
  await meterProvider.shutdown();
  await server.close();
  await leaks.check(pool);
});

test('muxpool.h3.fallbacks: HTTP/3 preferred against an origin without it, TCP served, and the attributes of an https request', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await startHttpsServer((_req, res) => res.end('tcp'), { key: c.leafKey, cert: c.leafCert });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, h3RaceDelayMs: 0, quicHandshakeTimeoutMs: 300 });
  const stop = instrumentPool(pool, { meterProvider });
  const res = await pool.request(`${server.url}/`, { version: HttpVersion.Http3 });
  assert.equal(await res.text(), 'tcp');
  assert.notEqual(res.protocol, 'h3');
  const metrics = await collect(reader);
  const fallbacks = points<number>(metrics.get('muxpool.h3.fallbacks'));
  assert.equal(fallbacks.reduce((n, p) => n + p.value, 0), 1);
  assert.ok(['race', 'broken'].includes(String(fallbacks[0]?.attributes.reason)));
  const durations = points<Histogram>(metrics.get('http.client.request.duration'));
  assert.equal(durations[0]?.attributes['url.scheme'], 'https');
  assert.equal(durations[0]?.attributes['server.address'], 'localhost');
  stop();
  await pool.close();
  await meterProvider.shutdown();
  await server.close();
  await leaks.check(pool);
});
