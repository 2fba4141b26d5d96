/**
 * The load engine behind `muxpool bench`, in this process: its lean path (streams opened straight
 * on the pool's connections, heads encoded once, bodies counted) carries every request over each
 * protocol, with the body, method and header fields asked for, and leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LoadEngine, type LoadPlan } from '../../src/cli/bench-load.js';
import type { HeadEncodings, RequestHead } from '../../src/protocol/message.js';
import { HttpVersion } from '../../src/protocol/version.js';
import { type EmbeddedServer, startEmbeddedServer } from '../../src/server/embedded.js';
import { leakCheck } from '../helpers/leaks.js';

let server: EmbeddedServer;

before(async () => {
  server = await startEmbeddedServer();
});

after(async () => {
  await server.close();
});

function plan(overrides: Partial<LoadPlan>): LoadPlan {
  return {
    url: `${server.httpsUrl}/`,
    method: 'GET',
    headers: [],
    body: undefined,
    version: HttpVersion.Http1_1,
    concurrency: 8,
    requests: 300,
    durationMs: undefined,
    ratePerSec: undefined,
    ca: server.caCert,
    insecure: false,
    ...overrides,
  };
}

/** The engine's one request head (private: read here to see what the drivers kept on it). */
const headOf = (engine: LoadEngine): RequestHead & { encodings: HeadEncodings } =>
  (engine as unknown as { head: RequestHead & { encodings: HeadEncodings } }).head;

const VERSIONS = [
  ['h1', HttpVersion.Http1_1, 'http/1.1'],
  ['h2', HttpVersion.Http2, 'h2'],
  ['h3', HttpVersion.Http3Only, 'h3'],
] as const;

for (const [name, version, protocol] of VERSIONS) {
  test(`${name}: POST bodies to /echo, -n 300 -c 8: every request made once, echoed bytes counted, nothing left open`, async (t) => {
    if (name === 'h3' && !server.http3) {
      t.skip(`HTTP/3 unavailable: ${server.http3Error ?? ''}`);
      return;
    }
    const leaks = leakCheck();
    const body = Buffer.from('x'.repeat(1_000));
    const engine = new LoadEngine(plan({ url: `${server.httpsUrl}/echo`, method: 'POST', body, version, headers: [['content-type', 'text/plain']] }));
    const result = await engine.run();
    assert.equal(result.requests, 300);
    assert.equal(result.errors, 0, JSON.stringify(result.errorCodes));
    assert.deepEqual(result.statusCodes, { '200': 300 });
    assert.deepEqual(result.protocols, { [protocol]: 300 });
    // The body went out whole with every request (the server echoes it back).
    assert.equal(result.bodyBytes, 300 * body.length);
    assert.equal(result.histogram.totalCount, 300);
    // HTTP/1.1: a connection per lane at most; HTTP/2 and HTTP/3: one for all.
    if (name === 'h1') assert.ok(result.connectionsOpened >= 1 && result.connectionsOpened <= 8, `${result.connectionsOpened}`);
    else assert.equal(result.connectionsOpened, 1);
    // The head was encoded by this protocol's driver and kept for the next requests.
    const encodings = headOf(engine).encodings;
    const kept = { h1: encodings.h1, h2: encodings.h2Fields, h3: encodings.h3Frame }[name];
    assert.ok(kept !== undefined, `no ${name} encoding kept`);
    // The timeline adds up to the run.
    assert.equal(
      result.timeline.reduce((sum, s) => sum + s.requests, 0),
      300,
    );
    assert.ok(result.cpuUs > 0);
    await leaks.check();
  });
}

test('-H fields go into the head the HTTP/1.1 driver encodes once and keeps', async () => {
  // The engine keeps its head's encodings (HeadEncodings) on the head itself: run once, then
  // look at what the HTTP/1.1 driver stored.
  const leaks = leakCheck();
  const engine = new LoadEngine(plan({ url: `${server.httpUrl}/`, headers: [['x-one', '1'], ['x-two', '2']], requests: 20, concurrency: 2 }));
  const result = await engine.run();
  assert.equal(result.errors, 0);
  const text = headOf(engine).encodings.h1?.toString('latin1') ?? '';
  assert.match(text, /^GET \/ HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nx-one: 1\r\nx-two: 2\r\n\r\n$/);
  await leaks.check();
});

test('bad input fails before any connection: a method or header field request() would refuse', () => {
  assert.throws(() => new LoadEngine(plan({ method: 'GE T' })), { code: 'MUXPOOL_ERR_INVALID_METHOD' });
  assert.throws(() => new LoadEngine(plan({ headers: [['x-bad', 'a\r\nb']] })), { code: 'MUXPOOL_ERR_INVALID_HEADER' });
});
