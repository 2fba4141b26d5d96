/**
 * HTTP/3 peers that misbehave, on purpose: a raw QUIC server (our driver, no HTTP/3 layer) that
 * writes malformed frames, bad QPACK blocks and broken control streams; our HTTP/3 server with
 * oversized headers, no stream credit, GOAWAY; certificates that must not be accepted. Each
 * failure is a typed error (code, and the wire code where the protocol names one), the peer
 * hears that code, and nothing is left behind.
 */
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, type Resolver, type Response } from '../../src/index.js';
import { statsNow } from '../../src/testing.js';
import {
  FRAME_DATA,
  FRAME_HEADERS,
  STREAM_TYPE_CONTROL,
  encodeDataFrameHeader,
  encodeFieldSection,
  encodeFrame,
  encodeFrameHeader,
  encodeGoawayFrame,
  encodeHeadersFrame,
  encodeSettingsFrame,
  encodeStreamType,
} from '../../src/protocol/h3/index.js';
import { type GeneratedCertificates, generateCertificates } from '../../src/server/certs.js';
import { H3Server, type H3RequestHandler, type H3ServerOptions, type H3ServerResponse } from '../../src/server/h3.js';
import {
  QuicServer,
  createQuicServerConfig,
  type QuicCloseInfo,
  type QuicConnection,
  type QuicConnectionHandler,
} from '../../src/quic/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { leakCheck } from '../helpers/leaks.js';

let certsPromise: Promise<GeneratedCertificates> | undefined;
function certs(): Promise<GeneratedCertificates> {
  certsPromise ??= generateCertificates({ caName: 'muxpool h3-bad-input test CA' });
  return certsPromise;
}

/** `localhost` pinned to IPv4 loopback, where every server here listens. */
const loopback: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];

const WAIT_LIMIT_MS = 5_000;

/** Polls `condition` every few milliseconds; fails after WAIT_LIMIT_MS naming `what`. */
async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + WAIT_LIMIT_MS;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * Closes everything a test opened even when an assertion fails half-way, so a failure cannot
 * leave sockets that keep the run alive. On success it all is closed already: these are no-ops.
 */
function closeAfter(t: TestContext, ...closers: Array<() => Promise<unknown>>): void {
  t.after(async () => {
    await Promise.allSettled(closers.map((close) => close()));
  });
}

function newPool(ca: string, options: { maxHeaderBytes?: number } = {}): ConnectionPool {
  return new ConnectionPool({ tls: { ca }, resolver: loopback, connectTimeoutMs: 5_000, ...options });
}

// -------------------------------------------------------------------------------------------
// A raw HTTP/3 server: QUIC with ALPN h3, and whatever bytes a test wants on the streams.

/** The server's control stream as it should be: stream type, then SETTINGS. */
const GOOD_CONTROL = Buffer.concat([encodeStreamType(STREAM_TYPE_CONTROL), encodeSettingsFrame(new Map())]);

/** HEADERS (:status 200) and a DATA frame with `text`: a whole, valid response. */
function validResponse(text: string): Buffer {
  const body = Buffer.from(text);
  const fields: Array<[string, string]> = [
    [':status', '200'],
    ['content-length', String(body.length)],
  ];
  return Buffer.concat([encodeHeadersFrame(encodeFieldSection(fields)), encodeDataFrameHeader(body.length), body]);
}

interface RawBehaviour {
  /** Unidirectional streams opened once the handshake completes, with their bytes. Default: a good control stream. */
  uniStreams?: (connectionIndex: number) => Uint8Array[];
  /**
   * Called for each request stream once the client's FIN arrived. Return the bytes to answer
   * with (sent with a FIN), or undefined to leave the stream unanswered.
   */
  respond?: (request: RawRequest) => Uint8Array | undefined;
}

interface RawRequest {
  connection: RawConnection;
  connectionIndex: number;
  streamId: number;
}

/** One connection of the raw server: records requests, writes what the behaviour says. */
class RawConnection implements QuicConnectionHandler {
  readonly requests = new Map<number, Buffer[]>();
  readonly finished: number[] = [];
  /** The control stream we opened, when `uniStreams` opened one first. */
  controlStreamId: number | undefined;
  closeInfo: QuicCloseInfo | undefined;

  constructor(
    readonly quic: QuicConnection,
    readonly index: number,
    private readonly behaviour: RawBehaviour,
  ) {}

  onEstablished(): void {
    const streams = this.behaviour.uniStreams?.(this.index) ?? [GOOD_CONTROL];
    for (const bytes of streams) {
      const id = this.quic.openStream(false);
      this.controlStreamId ??= id;
      this.quic.write(id, bytes, false);
    }
  }

  onStreamData(streamId: number, chunk: Uint8Array, fin: boolean): void {
    // Client-initiated bidirectional streams only (RFC 9000 §2.1: low bits 00).
    if ((streamId & 3) !== 0) return;
    const list = this.requests.get(streamId) ?? [];
    list.push(Buffer.from(chunk));
    this.requests.set(streamId, list);
    if (!fin) return;
    this.finished.push(streamId);
    const answer = this.behaviour.respond?.({ connection: this, connectionIndex: this.index, streamId });
    if (answer !== undefined) this.quic.write(streamId, answer, true);
  }

  onClose(info: QuicCloseInfo): void {
    this.closeInfo = info;
  }
}

interface RawServer {
  port: number;
  connections: RawConnection[];
  close(): Promise<void>;
}

async function startRawH3Server(behaviour: RawBehaviour): Promise<RawServer> {
  const c = await certs();
  const config = createQuicServerConfig({ alpn: ['h3'], certChain: c.leafCert, key: c.leafKey });
  const connections: RawConnection[] = [];
  const server = await QuicServer.listen({
    config,
    onConnection(quic) {
      const connection = new RawConnection(quic, connections.length, behaviour);
      connections.push(connection);
      quic.setHandler(connection);
    },
  });
  return { port: server.address.port, connections, close: () => server.destroy() };
}

/** The first raw connection, once the client closed it: with what code did it close? */
async function closeCodeHeardBy(server: RawServer): Promise<QuicCloseInfo> {
  const connection = server.connections[0];
  assert.ok(connection !== undefined, 'the raw server saw no connection');
  return connection.quic.closed;
}

// -------------------------------------------------------------------------------------------
// (a) Malformed frames and field sections on a request stream: connection errors (RFC 9114 §7.1,
// §4.1; RFC 9204 §2.2.3), so the client closes the whole connection with the wire code.

const MALFORMED_RESPONSES: Array<{ name: string; bytes: () => Uint8Array; code: string; wireCode: number }> = [
  {
    name: 'a DATA frame before HEADERS',
    bytes: () => encodeFrame(FRAME_DATA, Buffer.from('body first')),
    code: 'MUXPOOL_ERR_H3_PROTOCOL',
    wireCode: 0x105, // H3_FRAME_UNEXPECTED
  },
  {
    name: 'a HEADERS frame whose length runs past the FIN',
    // Announces 100 payload bytes, carries 10, then the stream ends.
    bytes: () => Buffer.concat([encodeFrameHeader(FRAME_HEADERS, 100), Buffer.alloc(10)]),
    code: 'MUXPOOL_ERR_H3_PROTOCOL',
    wireCode: 0x106, // H3_FRAME_ERROR
  },
  {
    name: 'an HTTP/2-only frame type (PRIORITY, 0x02)',
    bytes: () => Buffer.concat([encodeFrame(0x02, Buffer.from([0, 0, 0, 0, 0])), validResponse('late')]),
    code: 'MUXPOOL_ERR_H3_PROTOCOL',
    wireCode: 0x105, // H3_FRAME_UNEXPECTED (§7.2.8)
  },
  {
    name: 'a QPACK block that references the dynamic table (capacity 0)',
    // Required Insert Count 1, Base 0, then an indexed dynamic entry.
    bytes: () => encodeHeadersFrame(Buffer.from([0x01, 0x00, 0x80])),
    code: 'MUXPOOL_ERR_QPACK',
    wireCode: 0x200, // QPACK_DECOMPRESSION_FAILED
  },
];

for (const bad of MALFORMED_RESPONSES) {
  test(`a response with ${bad.name} fails with ${bad.code} (0x${bad.wireCode.toString(16)}) and closes the connection with that code`, async (t) => {
    const leaks = leakCheck();
    const c = await certs();
    const server = await startRawH3Server({ respond: () => bad.bytes() });
    const pool = newPool(c.caCert);
    closeAfter(t, () => pool.destroy(), () => server.close());
    const err = await rejectsWith(
      pool.request(`https://localhost:${server.port}/`, { version: HttpVersion.Http3Only, timeoutMs: 10_000 }),
      bad.code,
    );
    assert.equal(err.wireCode, bad.wireCode, err.message);
    assert.equal(err.origin, 'remote');
    assert.equal(err.maybeProcessed, true, 'the server answered: it saw the request');
    assert.equal(err.attempts, 1, 'a request the server may have processed is not replayed on a fresh connection');
    // The peer hears why: an application CONNECTION_CLOSE with the same code.
    const heard = await closeCodeHeardBy(server);
    assert.equal(heard.cause, 'peer-close');
    assert.equal(heard.isApp, true);
    assert.equal(heard.errorCode, bad.wireCode);
    await pool.close();
    await server.close();
    await leaks.check(pool);
  });
}

// -------------------------------------------------------------------------------------------
// (b) A response header section over maxHeaderBytes: a stream error only.

test('response headers over maxHeaderBytes fail that request with HEADERS_TOO_LARGE; the connection serves the next one', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await H3Server.listen({
    cert: c.leafCert,
    key: c.leafKey,
    handler: (req, res) => {
      req.resume();
      // Random letters, so Huffman coding cannot shrink the block under the limit either.
      if (req.url === '/big') res.setHeader('x-big', Buffer.from(Array.from({ length: 6_000 }, (_, i) => 97 + ((i * 7) % 26))).toString());
      res.end(`answer to ${req.url}`);
    },
  });
  const pool = newPool(c.caCert, { maxHeaderBytes: 4_096 });
  closeAfter(t, () => pool.destroy(), () => server.close());
  const url = `https://localhost:${server.port}`;
  const first = await pool.request(`${url}/small`, { version: HttpVersion.Http3Only });
  assert.equal(await first.text(), 'answer to /small');

  const err = await rejectsWith(pool.request(`${url}/big`, { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_HEADERS_TOO_LARGE');
  assert.equal(err.origin, 'remote');
  assert.equal(err.maybeProcessed, true);
  assert.equal(err.attempts, 1);

  const next = await pool.request(`${url}/small`, { version: HttpVersion.Http3Only });
  assert.equal(next.connectionId, first.connectionId, 'the connection did not survive a stream error');
  assert.equal(next.reused, true);
  assert.equal(await next.text(), 'answer to /small');
  assert.equal(statsNow(pool).http3Connections, 1);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

// -------------------------------------------------------------------------------------------
// (c) No stream credit at all.

test('a server granting 0 bidirectional streams: the request waits and fails at acquireTimeoutMs, saying why', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  let requests = 0;
  const server = await H3Server.listen({
    cert: c.leafCert,
    key: c.leafKey,
    maxConcurrentStreams: 0,
    handler: (req, res) => {
      requests++;
      req.resume();
      res.end();
    },
  });
  const pool = newPool(c.caCert);
  closeAfter(t, () => pool.destroy(), () => server.close());
  const err = await rejectsWith(
    pool.request(`https://localhost:${server.port}/`, { version: HttpVersion.Http3Only, acquireTimeoutMs: 500 }),
    'MUXPOOL_ERR_ACQUIRE_TIMEOUT',
  );
  assert.match(err.message, /allows 0 concurrent streams/);
  assert.equal(err.maybeProcessed, false);
  // One connection was made and kept (it may raise its limit later); no dial storm.
  const stats = statsNow(pool);
  assert.equal(stats.dialed, 1);
  assert.equal(stats.http3Connections, 1);
  assert.equal(stats.connections[0]?.maxStreams, 0);
  assert.equal(requests, 0);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

// -------------------------------------------------------------------------------------------
// (d), (e) Certificates that must be refused.

async function h3ServerWith(certificates: GeneratedCertificates, handler?: H3RequestHandler): Promise<H3Server> {
  const options: H3ServerOptions = {
    cert: certificates.leafCert,
    key: certificates.leafKey,
    handler:
      handler ??
      ((req, res) => {
        req.resume();
        res.end('should not be reached');
      }),
  };
  return H3Server.listen(options);
}

test('a certificate for another host name fails with TLS_HOSTNAME', async (t) => {
  const leaks = leakCheck();
  const other = await generateCertificates({ names: ['other.test'], ips: [], caName: 'muxpool other-name CA' });
  const server = await h3ServerWith(other);
  const pool = newPool(other.caCert);
  closeAfter(t, () => pool.destroy(), () => server.close());
  const err = await rejectsWith(pool.request(`https://localhost:${server.port}/`, { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_TLS_HOSTNAME');
  assert.equal(err.origin, 'local');
  assert.equal(err.wireCode, 0x100 + 42, 'TLS alert bad_certificate');
  assert.match(err.message, /localhost/);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a certificate from a CA nobody trusts (no tls.ca) fails with TLS_CERT', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await h3ServerWith(c);
  const pool = new ConnectionPool({ resolver: loopback, connectTimeoutMs: 5_000 });
  closeAfter(t, () => pool.destroy(), () => server.close());
  const err = await rejectsWith(pool.request(`https://localhost:${server.port}/`, { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_TLS_CERT');
  assert.equal(err.origin, 'local');
  assert.equal(err.wireCode, 0x100 + 48, 'TLS alert unknown_ca');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

// -------------------------------------------------------------------------------------------
// (f) Broken control streams (RFC 9114 §6.2.1): connection errors.

const BAD_CONTROL: Array<{ name: string; uniStreams: () => Uint8Array[]; wireCode: number }> = [
  {
    name: 'a control stream whose first frame is not SETTINGS',
    uniStreams: () => [Buffer.concat([encodeStreamType(STREAM_TYPE_CONTROL), encodeGoawayFrame(0)])],
    wireCode: 0x10a, // H3_MISSING_SETTINGS
  },
  {
    name: 'a second control stream',
    uniStreams: () => [GOOD_CONTROL, GOOD_CONTROL],
    wireCode: 0x103, // H3_STREAM_CREATION_ERROR
  },
  {
    name: 'a second SETTINGS frame',
    uniStreams: () => [Buffer.concat([GOOD_CONTROL, encodeSettingsFrame(new Map())])],
    wireCode: 0x105, // H3_FRAME_UNEXPECTED (§7.2.4)
  },
];

for (const bad of BAD_CONTROL) {
  test(`${bad.name} fails the request in flight with H3_PROTOCOL (0x${bad.wireCode.toString(16)})`, async (t) => {
    const leaks = leakCheck();
    const c = await certs();
    // The request is never answered: only the connection error can end it.
    const server = await startRawH3Server({ uniStreams: bad.uniStreams });
    const pool = newPool(c.caCert);
    closeAfter(t, () => pool.destroy(), () => server.close());
    const err = await rejectsWith(
      pool.request(`https://localhost:${server.port}/`, { version: HttpVersion.Http3Only, timeoutMs: 10_000 }),
      'MUXPOOL_ERR_H3_PROTOCOL',
    );
    assert.equal(err.wireCode, bad.wireCode, err.message);
    assert.equal(err.origin, 'remote');
    const heard = await closeCodeHeardBy(server);
    assert.equal(heard.isApp, true);
    assert.equal(heard.errorCode, bad.wireCode);
    await pool.close();
    await server.close();
    await leaks.check(pool);
  });
}

// -------------------------------------------------------------------------------------------
// (g) GOAWAY (RFC 9114 §5.2).

test('server GOAWAY with requests in flight: they complete on the old connection, new requests go to a new one', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  const held: H3ServerResponse[] = [];
  let released = false;
  const server = await H3Server.listen({
    cert: c.leafCert,
    key: c.leafKey,
    handler: (req, res) => {
      req.resume();
      // A response the client abandons is destroyed with an error; a test of its own covers that.
      res.on('error', () => {});
      if (req.url.startsWith('/slow/') && !released) held.push(res);
      else res.end(`${req.url.startsWith('/slow/') ? 'slow' : 'fast'} ${req.url}`);
    },
  });
  const pool = newPool(c.caCert);
  closeAfter(t, () => pool.destroy(), () => server.close());
  const url = `https://localhost:${server.port}`;
  const slow = [1, 2, 3].map((n) => pool.request(`${url}/slow/${n}`, { version: HttpVersion.Http3Only, timeoutMs: 10_000 }));
  await waitFor(() => held.length === 3, 'three requests at the server');
  assert.equal(statsNow(pool).http3Connections, 1);

  server.goaway();
  await waitFor(() => statsNow(pool).connections[0]?.state === 'draining', 'the client to see GOAWAY');

  // A new request while the old ones are still in flight: a new connection.
  const fresh = await pool.request(`${url}/fast`, { version: HttpVersion.Http3Only });
  assert.equal(await fresh.text(), 'fast /fast');
  assert.equal(fresh.reused, false);
  assert.equal(statsNow(pool).http3Connections, 2);

  released = true;
  for (const res of held) res.end('slow');
  const settled = await Promise.allSettled(slow);
  const outcomes = settled.map((s) => (s.status === 'fulfilled' ? `ok, attempt ${s.value.attempts}` : `${s.reason.code}: ${s.reason.message}`));
  assert.deepEqual(outcomes, ['ok, attempt 1', 'ok, attempt 1', 'ok, attempt 1'], 'the requests below the GOAWAY id must complete where they are');
  const done = settled.map((s) => (s as PromiseFulfilledResult<Response>).value);
  assert.deepEqual(await Promise.all(done.map((r) => r.text())), ['slow', 'slow', 'slow']);
  assert.equal(new Set(done.map((r) => r.connectionId)).size, 1, 'the in-flight requests moved');
  assert.notEqual(done[0]?.connectionId, fresh.connectionId);
  // The old connection closes once its last stream is done.
  await waitFor(() => statsNow(pool).http3Connections === 1, 'the drained connection to close');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a GOAWAY below a request in flight: that request was not processed and is retried on a new connection', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  // Connection 0 answers stream 0 only, after a GOAWAY(4): stream 4 is refused by omission.
  // Later connections answer everything.
  const server = await startRawH3Server({
    respond: ({ connection, connectionIndex, streamId }) => {
      if (connectionIndex > 0) return validResponse(`answer ${connectionIndex}/${streamId}`);
      if (connection.finished.length < 2) return undefined;
      connection.quic.write(connection.controlStreamId as number, encodeGoawayFrame(4), false);
      connection.quic.write(0, validResponse('answer 0/0'), true);
      return undefined;
    },
  });
  const pool = newPool(c.caCert);
  closeAfter(t, () => pool.destroy(), () => server.close());
  const url = `https://localhost:${server.port}`;
  const [below, above] = await Promise.all([
    pool.request(`${url}/a`, { version: HttpVersion.Http3Only }),
    pool.request(`${url}/b`, { version: HttpVersion.Http3Only }),
  ]);
  assert.ok(below !== undefined && above !== undefined);
  assert.equal(await below.text(), 'answer 0/0');
  assert.equal(below.attempts, 1);
  assert.equal(await above.text(), 'answer 1/0');
  assert.equal(above.attempts, 2, 'the request above the GOAWAY id was replayed');
  assert.notEqual(above.connectionId, below.connectionId);
  assert.equal(server.connections.length, 2);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

// -------------------------------------------------------------------------------------------
// Our server when its client goes away.

/**
 * Records, instead of throwing, each 'error' that `emitter` emits while nobody listens for it:
 * EventEmitter throws those, which would end the test process.
 */
function recordUnheardErrors(emitter: EventEmitter, label: string, unheard: string[]): void {
  const emit = emitter.emit.bind(emitter);
  emitter.emit = (name: string | symbol, ...args: unknown[]): boolean => {
    if (name === 'error' && emitter.listenerCount('error') === 0) {
      unheard.push(`${label}: ${args[0] instanceof Error ? args[0].message : String(args[0])}`);
      return false;
    }
    return emit(name, ...args);
  };
}

test('a client that goes away mid-response: our HTTP/3 server emits no error that nobody listens for', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  // Like the embedded server's handler (and most node:http handlers), this one listens for no
  // 'error'. node:http stays quiet then when the client goes away (IncomingMessage emits
  // 'error' only when someone listens, ServerResponse none): an 'error' with no listener
  // throws, and a server process would end.
  const unheard: string[] = [];
  let closed = 0;
  const server = await H3Server.listen({
    cert: c.leafCert,
    key: c.leafKey,
    handler: (req, res) => {
      recordUnheardErrors(req, 'request', unheard);
      recordUnheardErrors(res, 'response', unheard);
      res.on('close', () => closed++);
      // The head goes out; the body never comes.
      res.flushHeaders();
    },
  });
  const pool = newPool(c.caCert);
  closeAfter(t, () => pool.destroy(), () => server.close());
  const res = await pool.request(`https://localhost:${server.port}/`, { version: HttpVersion.Http3Only });
  assert.equal(res.status, 200);
  await pool.destroy();
  await waitFor(() => closed === 1, 'the response to close');
  await server.close();
  await leaks.check(pool);
  assert.deepEqual(unheard, [], "'error' events with no listener (each would have thrown)");
});

// -------------------------------------------------------------------------------------------
// Interim responses are bounded (RFC 9110 §15.2 sets no limit; stream-support.ts does, for every
// protocol).

test('an endless stream of interim (1xx) responses fails with HEADERS_TOO_LARGE at the bound, not at timeoutMs', async (t) => {
  // Regression: each interim response counted as activity and their number was unbounded, so a
  // server sending 103s forever defeated readTimeoutMs: the request waited for timeoutMs.
  const leaks = leakCheck();
  const c = await certs();
  const interim = encodeHeadersFrame(encodeFieldSection([[':status', '103'], ['link', '</style.css>; rel=preload']]));
  const timers = new Set<NodeJS.Timeout>();
  const server = await startRawH3Server({
    respond: ({ connection, streamId }) => {
      const timer = setInterval(() => {
        try {
          connection.quic.write(streamId, interim, false);
        } catch {
          clearInterval(timer); // the client reset the stream, or the connection is gone
        }
      }, 30);
      timers.add(timer);
      return undefined;
    },
  });
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, resolver: loopback, connectTimeoutMs: 5_000, readTimeoutMs: 300 });
  closeAfter(t, () => pool.destroy(), () => server.close(), async () => timers.forEach((timer) => clearInterval(timer)));
  const started = performance.now();
  const err = await rejectsWith(
    pool.request(`https://localhost:${server.port}/`, { version: HttpVersion.Http3Only, timeoutMs: 8_000 }),
    'MUXPOOL_ERR_HEADERS_TOO_LARGE',
  );
  assert.match(err.message, /interim/);
  assert.equal(err.maybeProcessed, true);
  assert.ok(performance.now() - started < 5_000, 'failed at the bound, long before timeoutMs');
  for (const timer of timers) clearInterval(timer);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

// -------------------------------------------------------------------------------------------
// (f) Response fields that break RFC 9114 §4.1.2 (invalid characters in names or values): a
// malformed response, so a stream error (H3_MESSAGE_ERROR) for that request only. And names
// that shadow Object.prototype members read back as sent.

const MALFORMED_FIELDS: Array<[string, string, string]> = [
  ['an empty field name', '', 'v'],
  ['a field name with a space', 'x bad', 'v'],
  ['a field name with a colon', 'x:bad', 'v'],
  ['a field name with CR LF', 'x\r\nbad', 'v'],
  ['a CR in a value', 'x-bad', 'a\rb'],
  ['an LF in a value', 'x-bad', 'a\nb'],
  ['a NUL in a value', 'x-bad', 'a\0b'],
];

for (const [name, fieldName, fieldValue] of MALFORMED_FIELDS) {
  test(`a response with ${name} fails that request with H3_MESSAGE_ERROR; the connection serves the next one`, async (t) => {
    const leaks = leakCheck();
    const c = await certs();
    const server = await startRawH3Server({
      respond: ({ streamId }) =>
        streamId === 0
          ? encodeHeadersFrame(
              encodeFieldSection([
                [':status', '200'],
                [fieldName, fieldValue],
              ]),
            )
          : validResponse('fine'),
    });
    const pool = newPool(c.caCert);
    closeAfter(t, () => pool.destroy(), () => server.close());
    const url = `https://localhost:${server.port}/`;
    const err = await rejectsWith(pool.request(url, { version: HttpVersion.Http3Only, timeoutMs: 10_000 }), 'MUXPOOL_ERR_H3_PROTOCOL');
    assert.equal(err.wireCode, 0x10e, err.message); // H3_MESSAGE_ERROR
    assert.equal(err.origin, 'remote');
    assert.equal(err.maybeProcessed, true);
    const next = await pool.request(url, { version: HttpVersion.Http3Only, timeoutMs: 10_000 });
    assert.equal(await next.text(), 'fine');
    assert.equal(next.reused, true, 'a stream error leaves the connection open');
    assert.equal(server.connections.length, 1);
    await pool.close();
    await server.close();
    await leaks.check(pool);
  });
}

test('response headers and trailers named after Object.prototype members read back as sent over HTTP/3', async (t) => {
  const leaks = leakCheck();
  const c = await certs();
  const named: Array<[string, string]> = [
    ['constructor', 'foo'],
    ['__proto__', 'bar'],
    ['tostring', 'baz'],
  ];
  const server = await startRawH3Server({
    respond: () =>
      Buffer.concat([
        encodeHeadersFrame(encodeFieldSection([[':status', '200'], ...named])),
        encodeDataFrameHeader(2),
        Buffer.from('ok'),
        encodeHeadersFrame(encodeFieldSection(named)),
      ]),
  });
  const pool = newPool(c.caCert);
  closeAfter(t, () => pool.destroy(), () => server.close());
  const res: Response = await pool.request(`https://localhost:${server.port}/`, { version: HttpVersion.Http3Only, timeoutMs: 10_000 });
  assert.equal(await res.text(), 'ok');
  for (const [section, record] of [['headers', res.headers], ['trailers', res.trailers]] as const) {
    assert.ok(record !== undefined, section);
    for (const [name, value] of named) assert.equal(record[name], value, `${section}: ${name}`);
    assert.equal(Object.getPrototypeOf(record), null, `${section}: the record inherits nothing`);
  }
  await pool.close();
  await server.close();
  await leaks.check(pool);
});
