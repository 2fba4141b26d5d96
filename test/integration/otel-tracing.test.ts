/**
 * OpenTelemetry tracing as users run it: the real SDK, `@opentelemetry/instrumentation-undici`,
 * the W3C propagator and the async-hooks context manager, against loopback HTTP/1.1, HTTP/2 and
 * HTTP/3 servers that record the `traceparent` they receive. `pool.request()` and
 * `fetch(url, { dispatcher: pool })` each make exactly one client span, child of the active
 * span, with the semantic attributes, and the server sees that span's trace context — as
 * undici's own Agent does in the same setup.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import type http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Agent } from 'undici';
import { ConnectionPool, HttpVersion, MuxpoolError } from '../../src/index.js';
import { withMuxpoolSpanAttributes } from '../../src/otel.js';
import { statsNow } from '../../src/testing.js';
import { certs, startH3 } from '../helpers/certs.js';
import { recordChannel } from '../helpers/diagnostics.js';
import { startH2Server } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpServer } from '../helpers/servers.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(provider);
const instrumentation = new UndiciInstrumentation(withMuxpoolSpanAttributes({}));
const unregister = registerInstrumentations({ instrumentations: [instrumentation], tracerProvider: provider });
const tracer = provider.getTracer('test');

after(async () => {
  unregister();
  await provider.shutdown();
  contextManager.disable();
});

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

/** Runs `fn` inside a parent span; returns the client spans that ended as children of it. */
async function traced(fn: () => Promise<void>): Promise<{ parent: ReadableSpan; children: ReadableSpan[] }> {
  exporter.reset();
  await tracer.startActiveSpan('parent', async (span) => {
    try {
      await fn();
    } finally {
      span.end();
    }
  });
  const spans = exporter.getFinishedSpans();
  const parent = spans.find((s) => s.name === 'parent');
  assert.ok(parent !== undefined);
  const children = spans.filter((s) => s !== parent);
  for (const child of children) assert.equal(child.spanContext().traceId, parent.spanContext().traceId, 'the client span is in the parent trace');
  return { parent, children };
}

/** The one client span, checked against what the server recorded. */
function checkSpan(children: ReadableSpan[], seen: string[], expected: { method: string; url: string; status: number; version: string; port: number }): ReadableSpan {
  assert.equal(children.length, 1, `exactly one client span, got ${children.map((s) => s.name).join(', ')}`);
  const span = children[0] as ReadableSpan;
  assert.equal(span.kind, SpanKind.CLIENT);
  assert.equal(span.name, expected.method);
  assert.equal(span.attributes['http.request.method'], expected.method);
  assert.equal(span.attributes['url.full'], expected.url);
  assert.equal(span.attributes['http.response.status_code'], expected.status);
  assert.equal(span.attributes['network.protocol.version'], expected.version);
  assert.equal(span.attributes['server.port'], expected.port);
  assert.ok(['127.0.0.1', '::1'].includes(String(span.attributes['network.peer.address'])), String(span.attributes['network.peer.address']));
  assert.equal(span.attributes['network.peer.port'], expected.port);
  assert.equal(seen.length, 1, 'the server got one request');
  const match = TRACEPARENT.exec(seen[0] as string);
  assert.ok(match !== null, `traceparent ${seen[0]}`);
  assert.equal(match[1], span.spanContext().traceId);
  assert.equal(match[2], span.spanContext().spanId, 'the server sees the client span as its parent');
  seen.length = 0;
  return span;
}

test('HTTP/1.1: pool.request() and fetch over the pool make one span each, with traceparent sent; undici Agent the same', async () => {
  const seen: string[] = [];
  const server = await startHttpServer((req, res) => {
    seen.push(String(req.headers.traceparent));
    res.statusCode = req.url === '/missing' ? 404 : 200;
    if (req.url === '/headers') res.setHeader('x-res', ['one', 'two']);
    res.end('ok');
  });
  // Started after the server: its connection-tracking timer lives until the Agent is done below.
  const leaks = leakCheck();
  const pool = new ConnectionPool();
  const url = `${server.url}/a?x=1`;
  const expected = { method: 'GET', url, status: 200, version: '1.1', port: server.port };

  let result = await traced(async () => {
    const res = await pool.request(url);
    assert.equal(await res.text(), 'ok');
  });
  checkSpan(result.children, seen, expected);

  result = await traced(async () => {
    const res = await fetch(url, { dispatcher: pool });
    assert.equal(await res.text(), 'ok');
  });
  checkSpan(result.children, seen, expected);

  // A 404 is an error span with error.type the status (the instrumentation's rule).
  result = await traced(async () => {
    const res = await pool.request(`${server.url}/missing`);
    await res.dump();
  });
  const failed = checkSpan(result.children, seen, { ...expected, url: `${server.url}/missing`, status: 404 });
  assert.equal(failed.status.code, SpanStatusCode.ERROR);
  assert.equal(failed.attributes['error.type'], '404');

  // Header values on spans, as the instrumentation records them when told to: it parses the
  // request's flat header array and the response's raw Buffers.
  instrumentation.setConfig(withMuxpoolSpanAttributes({ headersToSpanAttributes: { requestHeaders: ['x-req'], responseHeaders: ['x-res'] } }));
  try {
    result = await traced(async () => {
      const res = await pool.request(`${server.url}/headers`, { headers: { 'x-req': 'sent' } });
      await res.dump();
    });
  } finally {
    instrumentation.setConfig(withMuxpoolSpanAttributes({}));
  }
  const withHeaders = checkSpan(result.children, seen, { ...expected, url: `${server.url}/headers` });
  assert.deepEqual(withHeaders.attributes['http.request.header.x-req'], ['sent']);
  // Repeated fields arrive combined (RFC 9110 §5.3), as res.headers has them.
  assert.deepEqual(withHeaders.attributes['http.response.header.x-res'], ['one, two']);

  await pool.close();
  await leaks.check(pool);

  // The comparison: undici's own Agent in the same setup (after the leak check: its timers
  // outlive close()).
  const agent = new Agent();
  result = await traced(async () => {
    const res = await fetch(url, { dispatcher: agent as unknown as RequestInit['dispatcher'] });
    assert.equal(await res.text(), 'ok');
  });
  checkSpan(result.children, seen, expected);
  await agent.destroy();
  await server.close();
});

test('HTTP/2: one span per request, network.protocol.version 2, traceparent in the HEADERS', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const seen: string[] = [];
  const server = await startH2Server(
    (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      seen.push(String(headers.traceparent));
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end('h2 ok');
    },
    { certs: c },
  );
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const url = `${server.url}/h2`;
  const expected = { method: 'GET', url, status: 200, version: '2', port: server.port };
  let result = await traced(async () => {
    const res = await pool.request(url, { version: HttpVersion.Http2 });
    assert.equal(res.protocol, 'h2');
    assert.equal(await res.text(), 'h2 ok');
  });
  checkSpan(result.children, seen, expected);

  // A POST with a body, through fetch: the method and the same propagation.
  result = await traced(async () => {
    const res = await fetch(url, { dispatcher: pool, method: 'POST', body: 'data' });
    assert.equal(await res.text(), 'h2 ok');
  });
  checkSpan(result.children, seen, { ...expected, method: 'POST' });

  await pool.close();
  await leaks.check(pool);

  const agent = new Agent({ allowH2: true, connect: { ca: c.caCert } });
  result = await traced(async () => {
    const res = await fetch(url, { dispatcher: agent as unknown as RequestInit['dispatcher'] });
    assert.equal(await res.text(), 'h2 ok');
  });
  checkSpan(result.children, seen, expected);
  await agent.destroy();
  await server.close();
});

test("undici's message shapes: sendHeaders' header text and socket, raw response headers, raw trailers (HTTP/2)", async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await startH2Server(
    (stream: http2.ServerHttp2Stream) => {
      stream.respond({ ':status': 200, 'x-res': 'r' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-sum': 'abc' }));
      stream.end('body');
    },
    { certs: c },
  );
  const names = ['undici:client:sendHeaders', 'undici:request:headers', 'undici:request:trailers'];
  const recordings = names.map((name) => recordChannel(name));
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  try {
    const res = await pool.request(`${server.url}/shape`, { version: HttpVersion.Http2, headers: { 'x-req': 'q' } });
    assert.equal(await res.text(), 'body');
    const [sent, head, trailers] = recordings.map((r) => r.events[0] as Record<string, unknown>);
    assert.match(String(sent?.headers), /(^|\r\n)x-req: q\r\n/);
    const socket = sent?.socket as { remoteAddress: string; remotePort: number; alpnProtocol: string };
    assert.equal(socket.alpnProtocol, 'h2');
    assert.equal(socket.remotePort, server.port);
    const response = head?.response as { statusCode: number; headers: Buffer[] };
    assert.equal(response.statusCode, 200);
    const raw = response.headers.map((b) => b.toString('latin1'));
    assert.ok(raw.some((v, i) => v === 'x-res' && raw[i + 1] === 'r'), raw.join(' '));
    assert.deepEqual((trailers?.trailers as Buffer[]).map((b) => b.toString('latin1')), ['x-sum', 'abc']);
    assert.equal(sent?.request, head?.request);
    assert.equal(head?.request, trailers?.request);
  } finally {
    for (const r of recordings) r.stop();
  }
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('HTTP/3: one span per request, network.protocol.version 3 (withMuxpoolSpanAttributes), traceparent sent; fetch too once Alt-Svc moved it to HTTP/3', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const seen: string[] = [];
  const { server, url: base } = await startH3((req, res) => {
    req.resume();
    seen.push(String(req.headers.traceparent));
    res.end('h3 ok');
  });
  // The same port over TCP (HTTP/1.1), advertising HTTP/3 there: how fetch, which cannot ask
  // for a version, reaches HTTP/3 through the pool.
  const tcp = https.createServer({ key: c.leafKey, cert: c.leafCert }, (req, res) => {
    seen.push(String(req.headers.traceparent));
    res.setHeader('alt-svc', `h3=":${server.port}"`);
    res.end('tcp ok');
  });
  tcp.listen(server.port, '127.0.0.1');
  await once(tcp, 'listening');
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const url = `${base}/h3`;
  const expected = { method: 'GET', url, status: 200, version: '3', port: server.port };
  let result = await traced(async () => {
    const res = await pool.request(url, { version: HttpVersion.Http3Only });
    assert.equal(res.protocol, 'h3');
    assert.equal(await res.text(), 'h3 ok');
  });
  checkSpan(result.children, seen, expected);

  const fetchPool = new ConnectionPool({ tls: { ca: c.caCert } });
  result = await traced(async () => {
    const res = await fetch(url, { dispatcher: fetchPool });
    assert.equal(await res.text(), 'tcp ok');
  });
  checkSpan(result.children, seen, { ...expected, version: '1.1' });
  // The Alt-Svc of that response prepares an HTTP/3 connection in the background.
  for (let i = 0; i < 300 && statsNow(fetchPool).http3Connections === 0; i++) await sleep(10);
  result = await traced(async () => {
    const res = await fetch(url, { dispatcher: fetchPool });
    assert.equal(await res.text(), 'h3 ok');
  });
  const span = checkSpan(result.children, seen, expected);
  assert.equal(span.attributes['url.scheme'], 'https');

  await fetchPool.close();
  await pool.close();
  tcp.closeAllConnections();
  await new Promise((resolve) => tcp.close(resolve));
  await server.close();
  await leaks.check(pool);
});

test('a request that fails (connection refused) ends its span with the error, an aborted one without; a redirect makes one span per hop, one traceparent each', async () => {
  const leaks = leakCheck();
  const seen: string[] = [];
  const server = await startHttpServer((req, res) => {
    seen.push(String(req.headers.traceparent));
    if (req.url === '/from') {
      res.statusCode = 302;
      res.setHeader('location', '/to');
      res.end();
      return;
    }
    res.end('landed');
  });
  const pool = new ConnectionPool({ maxRetries: 0 });
  let result = await traced(async () => {
    const res = await pool.request(`${server.url}/from`, { headers: { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' } });
    assert.equal(await res.text(), 'landed');
  });
  assert.equal(result.children.length, 2, 'one span per hop');
  assert.equal(seen.length, 2);
  const spanIds = new Set(result.children.map((s) => s.spanContext().spanId));
  for (const header of seen) {
    const match = TRACEPARENT.exec(header);
    assert.ok(match !== null && spanIds.has(match[2] as string), `each hop carries its own span as parent, once: ${header}`);
  }

  // Aborted by the caller mid-body: the span ends without an error status (a cancelled request
  // is no failure in OpenTelemetry's HTTP conventions), as with undici.
  const slow = await startHttpServer((_req, res) => {
    res.write('part');
  });
  result = await traced(async () => {
    const controller = new AbortController();
    const res = await pool.request(`${slow.url}/slow`, { signal: controller.signal });
    const reading = res.text();
    controller.abort();
    await assert.rejects(reading);
  });
  assert.equal(result.children.length, 1);
  assert.equal(result.children[0]?.status.code, SpanStatusCode.UNSET);
  assert.equal(result.children[0]?.attributes['error.type'], undefined);
  await slow.close();

  const closed = await startHttpServer((_req, res) => res.end());
  const deadUrl = `${closed.url}/gone`;
  await closed.close();
  result = await traced(async () => {
    await assert.rejects(pool.request(deadUrl), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_CONNECT_REFUSED');
  });
  assert.equal(result.children.length, 1);
  const failed = result.children[0] as ReadableSpan;
  assert.equal(failed.status.code, SpanStatusCode.ERROR);
  assert.equal(failed.attributes['error.type'], 'MUXPOOL_ERR_CONNECT_REFUSED');

  await pool.close();
  await server.close();
  await leaks.check(pool);
});
