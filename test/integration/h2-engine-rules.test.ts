/**
 * Our HTTP/2 engine against a hand-driven peer (raw frames over h2c): one test per rule a client
 * must enforce (RFC 9113 §4–§8, RFC 7541 §4–§6), each checking the error the caller sees (code,
 * wire code, who broke the rule) and the frames the engine answers with. docs/h2-engine.md
 * lists them.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, HttpVersion, MuxpoolError } from '../../src/index.js';
import type { H2EngineOptions } from '../../src/protocol/h2/engine.js';
import { startTestEngine } from '../helpers/h2-engine.js';
import type { H2EngineView } from '../../src/protocol/h2/engine-view.js';
import {
  CANCEL,
  COMPRESSION_ERROR,
  ENHANCE_YOUR_CALM,
  FLOW_CONTROL_ERROR,
  FRAME_SIZE_ERROR,
  INTERNAL_ERROR,
  NO_ERROR,
  PROTOCOL_ERROR,
  REFUSED_STREAM,
  SETTINGS_TIMEOUT,
} from '../../src/protocol/h2/codes.js';
import {
  FLAG_PADDED,
  FLAG_PRIORITY,
  FRAME_CONTINUATION,
  FRAME_GOAWAY,
  FRAME_HEADERS,
  FRAME_PING,
  FRAME_RST_STREAM,
  FRAME_SETTINGS,
  FRAME_WINDOW_UPDATE,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  SETTINGS_MAX_HEADER_LIST_SIZE,
  encodeData,
  encodeFrame,
  encodeGoaway,
  encodePing,
  encodePushPromise,
  encodeRstStream,
  encodeSettings,
  encodeWindowUpdate,
} from '../../src/protocol/h2/frames.js';
import type { IncomingHeaders, RequestBody, RequestHead, StreamHandler } from '../../src/protocol/message.js';
import { rejectsWith } from '../helpers/assert.js';
import { type RawPeer, type RawServer, rawHeaders, startRawH2Server } from '../helpers/h2-peer.js';
import { leakCheck } from '../helpers/leaks.js';

interface Outcome {
  status: number;
  headers: IncomingHeaders;
  body: Buffer;
  trailers: IncomingHeaders | undefined;
  error: MuxpoolError | undefined;
}

async function openEngine(server: RawServer, overrides: Partial<H2EngineOptions> = {}): Promise<{ view: H2EngineView; peer: RawPeer; socket: net.Socket }> {
  const socket = net.connect(server.port, '127.0.0.1');
  await once(socket, 'connect');
  const peerPromise = server.nextPeer();
  const view = await startTestEngine(socket, server.url, overrides);
  return { view, peer: await peerPromise, socket };
}

const GET: RequestHead = { method: 'GET', path: '/', authority: '127.0.0.1', scheme: 'http', headers: [], contentLength: null };

/** Opens a stream; `pause` makes onData ask for a pause (no credit goes back then). */
function exchange(view: H2EngineView, options: { head?: RequestHead; body?: RequestBody; pause?: boolean } = {}) {
  const chunks: Buffer[] = [];
  const outcome: Outcome = { status: 0, headers: {}, body: Buffer.alloc(0), trailers: undefined, error: undefined };
  let settle!: () => void;
  const done = new Promise<Outcome>((resolve) => {
    settle = () => {
      outcome.body = Buffer.concat(chunks);
      resolve(outcome);
    };
  });
  const handler: StreamHandler = {
    onResponse(status, headers) {
      outcome.status = status;
      outcome.headers = headers;
    },
    onData(chunk) {
      chunks.push(Buffer.from(chunk));
      return options.pause !== true;
    },
    onTrailers(trailers) {
      outcome.trailers = trailers;
    },
    onComplete: () => settle(),
    onError(err) {
      outcome.error = err;
      settle();
    },
  };
  const stream = view.openStream(options.head ?? GET, options.body ?? null, handler);
  return { stream, done };
}

function assertFailed(outcome: Outcome, code: string, wireCode?: number, origin?: 'local' | 'remote'): MuxpoolError {
  const err = outcome.error;
  assert.ok(err instanceof MuxpoolError, `expected ${code}, the stream completed with status ${outcome.status}`);
  assert.equal(err.code, code, err.message);
  if (wireCode !== undefined) assert.equal(err.wireCode, wireCode, err.message);
  if (origin !== undefined) assert.equal(err.origin, origin, err.message);
  return err;
}

async function goawayCode(peer: RawPeer): Promise<number> {
  const frame = await peer.waitFor((f) => f.type === FRAME_GOAWAY);
  return (frame as { errorCode: number }).errorCode;
}

async function rstCode(peer: RawPeer, streamId: number): Promise<number> {
  const frame = await peer.waitFor((f) => f.type === FRAME_RST_STREAM && f.streamId === streamId);
  return (frame as { errorCode: number }).errorCode;
}

/** Runs `body` against a fresh raw server and checks that nothing leaks. */
async function withPeer(fn: (server: RawServer) => Promise<void>, options?: Parameters<typeof startRawH2Server>[1]): Promise<void> {
  const leaks = leakCheck();
  const server = await startRawH2Server(() => {}, options);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
  await leaks.check();
}

test('preface: our SETTINGS (push off, window, header list size), a wide connection window, and an ACK of theirs', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { streamWindowBytes: 2 * 1024 * 1024, connectionWindowBytes: 32 * 1024 * 1024 });
    const settings = (await peer.waitFor((f) => f.type === FRAME_SETTINGS && !f.ack)) as unknown as { settings: Array<[number, number]> };
    assert.deepEqual(new Map(settings.settings), new Map([[SETTINGS_ENABLE_PUSH, 0], [SETTINGS_INITIAL_WINDOW_SIZE, 2 * 1024 * 1024], [SETTINGS_MAX_HEADER_LIST_SIZE, 16_384]]));
    const update = (await peer.waitFor((f) => f.type === FRAME_WINDOW_UPDATE)) as { streamId: number; increment: number };
    assert.deepEqual([update.streamId, update.increment], [0, 32 * 1024 * 1024 - 65_535]);
    await peer.waitFor((f) => f.type === FRAME_SETTINGS && f.ack);
    view.destroy();
  }, { settings: [[SETTINGS_MAX_CONCURRENT_STREAMS, 7]] }));

test('SETTINGS: a peer that never sends its SETTINGS fails the dial with CONNECT_TIMEOUT', () =>
  withPeer(
    async (server) => {
      const err = await rejectsWith(openEngine(server, { settingsTimeoutMs: 200 }), 'MUXPOOL_ERR_CONNECT_TIMEOUT');
      assert.equal(err.maybeProcessed, false);
    },
    { sendSettings: false, ackSettings: false },
  ));

test('SETTINGS: our SETTINGS never acknowledged → GOAWAY(SETTINGS_TIMEOUT), open streams fail with H2_PROTOCOL at once', () =>
  withPeer(
    async (server) => {
      const { view, peer } = await openEngine(server, { settingsTimeoutMs: 300 });
      const { done } = exchange(view);
      await peer.nextRequest();
      const outcome = await done;
      assertFailed(outcome, 'MUXPOOL_ERR_H2_PROTOCOL', SETTINGS_TIMEOUT, 'remote');
      assert.equal(await goawayCode(peer), SETTINGS_TIMEOUT);
    },
    { ackSettings: false },
  ));

test('CONTINUATION flood: a field block that keeps growing is cut at the limit with ENHANCE_YOUR_CALM', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { maxHeaderBytes: 4096 });
    const { done } = exchange(view);
    const req = await peer.nextRequest();
    peer.send(rawHeaders(req.streamId, new Uint8Array([0x88]), false, false));
    for (let i = 0; i < 100; i++) peer.send(encodeFrame(FRAME_CONTINUATION, 0, req.streamId, new Uint8Array(1000).fill(0x88)));
    const err = assertFailed(await done, 'MUXPOOL_ERR_H2_PROTOCOL', ENHANCE_YOUR_CALM, 'remote');
    assert.match(err.message, /field block/);
    assert.equal(await goawayCode(peer), ENHANCE_YOUR_CALM);
  }));

test('HPACK bomb: references to one large entry stop at maxHeaderBytes (HEADERS_TOO_LARGE, RST_STREAM CANCEL); the connection carries on', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { maxHeaderBytes: 8192 });
    const first = exchange(view);
    const req = await peer.nextRequest();
    // One 1 900-byte entry, then 2 000 one-byte references to it: 3.9 MB decoded from 2 KB.
    const setup = peer.encoder.encode([':status', '200', 'x-big', 'y'.repeat(1900)]);
    const bomb = new Uint8Array(setup.length + 2000);
    bomb.set(setup);
    bomb.fill(0xbe, setup.length);
    peer.send(rawHeaders(req.streamId, bomb, false));
    assertFailed(await first.done, 'MUXPOOL_ERR_HEADERS_TOO_LARGE');
    assert.equal(await rstCode(peer, req.streamId), CANCEL);
    // The HPACK table stayed in step: the next response on the same connection decodes.
    const second = exchange(view);
    const req2 = await peer.nextRequest();
    peer.respond(req2.streamId, 200, 'fine', ['x-big', 'y'.repeat(3000)]);
    const outcome = await second.done;
    assert.equal(outcome.error, undefined);
    assert.equal(outcome.body.toString(), 'fine');
    assert.equal((outcome.headers['x-big'] as string).length, 3000);
    view.destroy();
  }));

test('header count over maxHeaderCount → HEADERS_TOO_LARGE (our limit, named as ours)', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { maxHeaderCount: 10 });
    const { done } = exchange(view);
    const req = await peer.nextRequest();
    const fields = [':status', '200'];
    for (let i = 0; i < 20; i++) fields.push(`x-${i}`, 'v');
    peer.send(peer.headers(req.streamId, fields, true));
    const err = assertFailed(await done, 'MUXPOOL_ERR_HEADERS_TOO_LARGE');
    assert.match(err.message, /maxHeaderCount 10/);
    view.destroy();
  }));

test('HPACK: a table-size update above our SETTINGS_HEADER_TABLE_SIZE is COMPRESSION_ERROR; every open stream fails at once', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server);
    const a = exchange(view);
    const b = exchange(view);
    const req = await peer.nextRequest();
    await peer.nextRequest();
    peer.send(rawHeaders(req.streamId, new Uint8Array([0x3f, 0xe2, 0x1f, 0x88]), true)); // size update to 4097
    for (const outcome of [await a.done, await b.done]) assertFailed(outcome, 'MUXPOOL_ERR_H2_PROTOCOL', COMPRESSION_ERROR, 'remote');
    assert.equal(await goawayCode(peer), COMPRESSION_ERROR);
    assert.equal(view.state, 'closed');
  }));

test('flow control: DATA beyond the stream window is FLOW_CONTROL_ERROR', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { streamWindowBytes: 1000 });
    const { done } = exchange(view, { pause: true });
    const req = await peer.nextRequest();
    peer.send(peer.headers(req.streamId, [':status', '200'], false), encodeData(req.streamId, new Uint8Array(600), false), encodeData(req.streamId, new Uint8Array(401), false));
    assertFailed(await done, 'MUXPOOL_ERR_H2_PROTOCOL', FLOW_CONTROL_ERROR, 'remote');
    assert.equal(await goawayCode(peer), FLOW_CONTROL_ERROR);
  }));

test('flow control: padding counts against the window (RFC 9113 §6.9.1)', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { streamWindowBytes: 1000 });
    const { done } = exchange(view, { pause: true });
    const req = await peer.nextRequest();
    peer.send(peer.headers(req.streamId, [':status', '200'], false), encodeData(req.streamId, new Uint8Array(500), false, 255), encodeData(req.streamId, new Uint8Array(240), false, 10));
    assertFailed(await done, 'MUXPOOL_ERR_H2_PROTOCOL', FLOW_CONTROL_ERROR);
  }));

test('flow control: WINDOW_UPDATE overflowing a stream window resets that stream; overflowing the connection window ends the connection', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { done } = exchange(view, { body: (async function* () { await gate; yield new Uint8Array(1); })() });
    const req = await peer.nextRequest();
    peer.send(encodeWindowUpdate(req.streamId, 2 ** 31 - 1));
    assertFailed(await done, 'MUXPOOL_ERR_H2_PROTOCOL', FLOW_CONTROL_ERROR, 'remote');
    assert.equal(await rstCode(peer, req.streamId), FLOW_CONTROL_ERROR);
    const other = exchange(view);
    await peer.nextRequest();
    peer.send(encodeWindowUpdate(0, 2 ** 31 - 1));
    assertFailed(await other.done, 'MUXPOOL_ERR_H2_PROTOCOL', FLOW_CONTROL_ERROR);
    assert.equal(await goawayCode(peer), FLOW_CONTROL_ERROR);
    release();
  }));

test('frame size: DATA larger than our SETTINGS_MAX_FRAME_SIZE is FRAME_SIZE_ERROR at once, not a read timeout', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server);
    const { done } = exchange(view);
    const req = await peer.nextRequest();
    peer.send(peer.headers(req.streamId, [':status', '200'], false), encodeData(req.streamId, new Uint8Array(16_385), true));
    assertFailed(await done, 'MUXPOOL_ERR_H2_PROTOCOL', FRAME_SIZE_ERROR, 'remote');
    assert.equal(await goawayCode(peer), FRAME_SIZE_ERROR);
  }));

for (const [name, frame] of [
  ['DATA on stream 0', encodeData(0, new Uint8Array(1), false)],
  ['PING on a stream', encodeFrame(FRAME_PING, 0, 1, new Uint8Array(8))],
  ['SETTINGS on a stream', encodeFrame(FRAME_SETTINGS, 0, 1)],
  ['DATA on a stream we never opened', encodeData(7, new Uint8Array(1), false)],
  ['HEADERS on a server-initiated (even) stream', encodeFrame(FRAME_HEADERS, 4, 2, new Uint8Array([0x88]))],
  ['WINDOW_UPDATE on an idle stream', encodeWindowUpdate(9, 1)],
  ['PUSH_PROMISE although push is disabled', encodePushPromise(1, 2, new Uint8Array([0x82]))],
] as const) {
  test(`stream ids: ${name} is a connection error PROTOCOL_ERROR; open streams fail with it`, () =>
    withPeer(async (server) => {
      const { view, peer } = await openEngine(server);
      const { done } = exchange(view);
      await peer.nextRequest();
      peer.send(frame);
      assertFailed(await done, 'MUXPOOL_ERR_H2_PROTOCOL', PROTOCOL_ERROR, 'remote');
      assert.equal(await goawayCode(peer), PROTOCOL_ERROR);
    }));
}

/** [name, frames, whether the peer's frames ended the stream (then nothing is sent back on it)] */
const MALFORMED: Array<[string, (peer: RawPeer, id: number) => void, boolean]> = [
  ['an upper-case field name', (peer, id) => peer.send(rawHeaders(id, new Uint8Array([0x88, 0x00, 0x01, 0x58, 0x01, 0x61]), true)), true],
  ['a connection-specific field', (peer, id) => peer.send(peer.headers(id, [':status', '200', 'connection', 'close'], false)), false],
  ['no :status', (peer, id) => peer.send(peer.headers(id, ['content-type', 'text/plain'], true)), true],
  ['two :status', (peer, id) => peer.send(peer.headers(id, [':status', '200', ':status', '204'], false)), false],
  ['a request pseudo-header', (peer, id) => peer.send(peer.headers(id, [':status', '200', ':path', '/'], false)), false],
  ['a pseudo-header after a regular field', (peer, id) => peer.send(peer.headers(id, ['x', 'y', ':status', '200'], true)), true],
  ['a pseudo-header in the trailers', (peer, id) => peer.send(peer.headers(id, [':status', '200'], false), encodeData(id, new Uint8Array(1), false), peer.headers(id, [':status', '200'], true)), true],
  ['trailers without END_STREAM', (peer, id) => peer.send(peer.headers(id, [':status', '200'], false), peer.headers(id, ['x', 'y'], false)), false],
  ['DATA before HEADERS', (peer, id) => peer.send(encodeData(id, new Uint8Array(5), false)), false],
  ['a field value with a NUL', (peer, id) => peer.send(peer.headers(id, [':status', '200', 'x', 'a\0b'], false)), false],
  ['101 Switching Protocols', (peer, id) => peer.send(peer.headers(id, [':status', '101'], false)), false],
];
for (const [name, send, ended] of MALFORMED) {
  test(`malformed response: ${name} → H2_PROTOCOL stream error${ended ? '' : ', RST_STREAM(PROTOCOL_ERROR)'}; the connection carries on`, () =>
    withPeer(async (server) => {
      const { view, peer } = await openEngine(server);
      const { done } = exchange(view);
      const req = await peer.nextRequest();
      send(peer, req.streamId);
      const err = assertFailed(await done, 'MUXPOOL_ERR_H2_PROTOCOL', PROTOCOL_ERROR, 'remote');
      assert.match(err.message, /malformed/);
      if (!ended) assert.equal(await rstCode(peer, req.streamId), PROTOCOL_ERROR);
      const next = exchange(view);
      const req2 = await peer.nextRequest();
      peer.respond(req2.streamId, 200, 'ok');
      assert.equal((await next.done).body.toString(), 'ok');
      // §5.1: a stream both sides ended is closed; nothing, not even RST_STREAM, goes on it.
      if (ended) assert.equal(peer.frames.filter((f) => f.type === FRAME_RST_STREAM).length, 0);
      view.destroy();
    }));
}

for (const [name, send, ended] of [
  ['less DATA than content-length', (peer: RawPeer, id: number) => peer.send(peer.headers(id, [':status', '200', 'content-length', '10'], false), encodeData(id, new Uint8Array(5), true)), true],
  ['more DATA than content-length', (peer: RawPeer, id: number) => peer.send(peer.headers(id, [':status', '200', 'content-length', '2'], false), encodeData(id, new Uint8Array(5), false)), false],
] as const) {
  test(`content-length (RFC 9113 §8.1.1): ${name} → BODY_TRUNCATED naming content-length (wire: PROTOCOL_ERROR)${ended ? '' : ', RST_STREAM'}`, () =>
    withPeer(async (server) => {
      const { view, peer } = await openEngine(server);
      const { done } = exchange(view);
      const req = await peer.nextRequest();
      send(peer, req.streamId);
      const err = assertFailed(await done, 'MUXPOOL_ERR_BODY_TRUNCATED', PROTOCOL_ERROR, 'remote');
      assert.match(err.message, /content-length/);
      if (!ended) assert.equal(await rstCode(peer, req.streamId), PROTOCOL_ERROR);
      view.destroy();
    }));
}

test('interim responses are bounded: an endless run of 103s fails with HEADERS_TOO_LARGE', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server);
    const { done } = exchange(view);
    const req = await peer.nextRequest();
    for (let i = 0; i < 40; i++) peer.send(peer.headers(req.streamId, [':status', '103', 'link', `</s${i}.css>; rel=preload`], false));
    const err = assertFailed(await done, 'MUXPOOL_ERR_HEADERS_TOO_LARGE');
    assert.match(err.message, /interim/);
    assert.equal(await rstCode(peer, req.streamId), CANCEL);
    view.destroy();
  }));

test('RST_STREAM(NO_ERROR) after END_STREAM while the consumer holds the body paused: the response is whole (RFC 9113 §8.1)', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server);
    const events: string[] = [];
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const stream = view.openStream(GET, null, {
      onResponse: () => events.push('response'),
      onData: (chunk) => (events.push(`data ${chunk.length}`), false),
      onTrailers: () => events.push('trailers'),
      onComplete: () => (events.push('complete'), resolveDone()),
      onError: (err) => (events.push(`error ${err.code}`), resolveDone()),
    });
    const req = await peer.nextRequest();
    peer.send(peer.headers(req.streamId, [':status', '200'], false), encodeData(req.streamId, new Uint8Array(100), false), encodeData(req.streamId, new Uint8Array(50), true), encodeRstStream(req.streamId, NO_ERROR));
    await sleep(100);
    assert.deepEqual(events, ['response', 'data 100']);
    stream.resume();
    stream.resume();
    await done;
    assert.deepEqual(events, ['response', 'data 100', 'data 50', 'complete']);
    view.destroy();
  }));

test('accepted shapes: 1xx before the final response, padded HEADERS with priority fields, PRIORITY frames, trailers', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server);
    const { done } = exchange(view);
    const req = await peer.nextRequest();
    const block = peer.encoder.encode([':status', '200', 'content-length', '3']);
    const padded = new Uint8Array(1 + 5 + block.length + 4);
    padded[0] = 4;
    padded.set(block, 6);
    peer.send(
      peer.headers(req.streamId, [':status', '103', 'link', '</a>; rel=preload'], false),
      encodeFrame(2 /* PRIORITY */, 0, req.streamId, new Uint8Array(5)),
      encodeFrame(FRAME_HEADERS, 0x4 | FLAG_PADDED | FLAG_PRIORITY, req.streamId, padded),
      encodeData(req.streamId, new Uint8Array([1, 2, 3]), false, 7),
      peer.headers(req.streamId, ['x-checksum', 'abc'], true),
    );
    const outcome = await done;
    assert.equal(outcome.error, undefined, outcome.error?.message);
    assert.equal(outcome.status, 200);
    assert.deepEqual([...outcome.body], [1, 2, 3]);
    assert.deepEqual({ ...outcome.trailers }, { 'x-checksum': 'abc' });
    view.destroy();
  }));

test('backpressure: a paused consumer gets the held DATA, then the trailers, then completion, in that order; no credit while paused', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { streamWindowBytes: 64 * 1024 });
    const events: string[] = [];
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const stream = view.openStream(GET, null, {
      onResponse: () => events.push('response'),
      onData: (chunk) => (events.push(`data ${chunk.length}`), false),
      onTrailers: (t) => events.push(`trailers ${String(t['x-sum'])}`),
      onComplete: () => (events.push('complete'), resolveDone()),
      onError: (err) => (events.push(`error ${err.code}`), resolveDone()),
    });
    const req = await peer.nextRequest();
    peer.send(
      peer.headers(req.streamId, [':status', '200'], false),
      encodeData(req.streamId, new Uint8Array(16_000), false),
      encodeData(req.streamId, new Uint8Array(16_001), false),
      encodeData(req.streamId, new Uint8Array(16_002), false),
      peer.headers(req.streamId, ['x-sum', '48003'], true),
    );
    await peer.waitFor(() => false, 200).catch(() => undefined);
    assert.deepEqual(events, ['response', 'data 16000']);
    for (let i = 0; i < 3; i++) stream.resume();
    await done;
    assert.deepEqual(events, ['response', 'data 16000', 'data 16001', 'data 16002', 'trailers 48003', 'complete']);
    assert.equal(peer.frames.filter((f) => f.type === FRAME_WINDOW_UPDATE && f.streamId === req.streamId).length, 0, 'no stream credit for a paused or finished stream');
    view.destroy();
  }));

test('PING: each PING gets its ACK with the same payload; a flood beyond the ACK queue (peer not reading) is ENHANCE_YOUR_CALM', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { maxQueuedControlFrames: 100 });
    const pings = [];
    for (let i = 0; i < 50; i++) pings.push(encodePing(new Uint8Array([0, 0, 0, 0, 0, 0, 0, i]), false));
    peer.send(...pings);
    const last = (await peer.waitFor((f) => f.type === FRAME_PING && f.ack && f.data[7] === 49)) as { data: Uint8Array };
    assert.equal(last.data[7], 49);
    assert.equal(peer.frames.filter((f) => f.type === FRAME_PING && f.ack).length, 50);
    const { done } = exchange(view);
    await peer.nextRequest();
    const flood = [];
    for (let i = 0; i < 500; i++) flood.push(encodePing(new Uint8Array(8), false));
    peer.send(...flood);
    assertFailed(await done, 'MUXPOOL_ERR_H2_PROTOCOL', ENHANCE_YOUR_CALM, 'remote');
    assert.equal(await goawayCode(peer), ENHANCE_YOUR_CALM);
  }));

test('SETTINGS flood: many SETTINGS frames in one burst are answered up to the queue bound, then ENHANCE_YOUR_CALM', () =>
  withPeer(async (server) => {
    const { peer } = await openEngine(server, { maxQueuedControlFrames: 100 });
    const flood = [];
    for (let i = 0; i < 300; i++) flood.push(encodeSettings([[SETTINGS_MAX_CONCURRENT_STREAMS, 100]]));
    peer.send(...flood);
    assert.equal(await goawayCode(peer), ENHANCE_YOUR_CALM);
  }));

for (const [how, finish, code] of [
  ['RST_STREAM(NO_ERROR)', (peer: RawPeer, id: number) => peer.send(encodeRstStream(id, NO_ERROR)), 'MUXPOOL_ERR_BODY_TRUNCATED'],
  ['RST_STREAM(CANCEL)', (peer: RawPeer, id: number) => peer.send(encodeRstStream(id, CANCEL)), 'MUXPOOL_ERR_STREAM_RESET'],
  ['RST_STREAM(INTERNAL_ERROR)', (peer: RawPeer, id: number) => peer.send(encodeRstStream(id, INTERNAL_ERROR)), 'MUXPOOL_ERR_STREAM_RESET'],
  ['a closed TCP connection', (peer: RawPeer) => peer.socket.end(), 'MUXPOOL_ERR_BODY_TRUNCATED'],
  ['a destroyed TCP connection', (peer: RawPeer) => peer.socket.destroy(), 'MUXPOOL_ERR_BODY_TRUNCATED'],
] as const) {
  test(`truncation: HEADERS and half a body, then ${how} → request() body fails with ${code}, never a success`, async () => {
    const leaks = leakCheck();
    const server = await startRawH2Server(async (peer) => {
      const req = await peer.nextRequest();
      peer.send(peer.headers(req.streamId, [':status', '200', 'content-type', 'application/json'], false), encodeData(req.streamId, new Uint8Array(Buffer.from('{"items": [1, 2')), false));
      await sleep(20);
      finish(peer, req.streamId);
    });
    const pool = new ConnectionPool({ maxRetries: 0 });
    const res = await pool.request(`${server.url}/doc.json`, { version: HttpVersion.Http2 });
    assert.equal(res.status, 200);
    const err = await rejectsWith(res.text(), code);
    assert.equal(err.maybeProcessed, true);
    await pool.close();
    await server.close();
    await leaks.check(pool);
  });
}

test('REFUSED_STREAM and GOAWAY above the stream are "not processed" and retried on a new stream or connection', async () => {
  const leaks = leakCheck();
  let served = 0;
  const server = await startRawH2Server(async (peer) => {
    const first = await peer.nextRequest();
    if (served++ === 0) {
      peer.send(encodeRstStream(first.streamId, REFUSED_STREAM));
      const second = await peer.nextRequest();
      peer.send(encodeGoaway(second.streamId - 2, NO_ERROR));
      return;
    }
    peer.respond(first.streamId, 200, 'third time');
  });
  const pool = new ConnectionPool({ maxRetries: 2 });
  const res = await pool.request(`${server.url}/`, { version: HttpVersion.Http2 });
  assert.equal(await res.text(), 'third time');
  assert.equal(server.peers.length, 2);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('read timeout: an upload the peer never grants credit for fails with READ_TIMEOUT, not at timeoutMs', () =>
  withPeer(
    async (server) => {
      const { view, peer } = await openEngine(server, { readTimeoutMs: 300 });
      const started = Date.now();
      const { done } = exchange(view, { head: { ...GET, method: 'POST', contentLength: 100_000 }, body: new Uint8Array(100_000) });
      await peer.nextRequest();
      const err = assertFailed(await done, 'MUXPOOL_ERR_READ_TIMEOUT');
      assert.match(err.message, /could neither send/);
      assert.ok(Date.now() - started < 5000);
      assert.equal(await rstCode(peer, 1), CANCEL);
      view.destroy();
    },
    { settings: [[SETTINGS_INITIAL_WINDOW_SIZE, 0]] },
  ));

test('cancel: one RST_STREAM(CANCEL) and nothing more on that stream, even as the peer keeps sending', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { streamWindowBytes: 65_535 });
    const { stream, done } = exchange(view);
    const req = await peer.nextRequest();
    peer.send(peer.headers(req.streamId, [':status', '200'], false), encodeData(req.streamId, new Uint8Array(16_000), false), encodeData(req.streamId, new Uint8Array(16_000), false));
    await sleep(20);
    stream.cancel(new MuxpoolError('MUXPOOL_ERR_ABORTED', 'user abort'));
    assertFailed(await done, 'MUXPOOL_ERR_ABORTED');
    assert.equal(await rstCode(peer, req.streamId), CANCEL);
    // Late frames on the reset stream are ignored (§5.1), and the stream gets nothing more.
    peer.send(encodeData(req.streamId, new Uint8Array(16_000), false), peer.headers(req.streamId, ['x', 'y'], true));
    const next = exchange(view);
    const req2 = await peer.nextRequest();
    peer.respond(req2.streamId, 200, 'still fine');
    assert.equal((await next.done).body.toString(), 'still fine');
    const onCancelled = peer.frames.filter((f) => 'streamId' in f && f.streamId === req.streamId && f.type !== FRAME_HEADERS);
    assert.deepEqual(onCancelled.map((f) => f.type), [FRAME_RST_STREAM]);
    view.destroy();
  }));

test('good citizen: WINDOW_UPDATE batched (a few per MiB, none per DATA frame) and many requests in one socket write', () =>
  withPeer(async (server) => {
    const { view, peer } = await openEngine(server, { streamWindowBytes: 1024 * 1024 });
    const readsBefore = peer.reads;
    const exchanges = Array.from({ length: 50 }, () => exchange(view));
    await peer.waitFor((f) => f.type === FRAME_HEADERS && f.streamId === 99);
    assert.ok(peer.reads - readsBefore <= 2, `50 requests took ${peer.reads - readsBefore} reads`);
    for (let id = 1; id <= 99; id += 2) peer.respond(id, 200, 'x');
    await Promise.all(exchanges.map((e) => e.done));
    const big = exchange(view);
    const id = 101;
    await peer.waitFor((f) => f.type === FRAME_HEADERS && f.streamId === id);
    const body = new Uint8Array(4 * 1024 * 1024);
    // The peer honours the window: sends what the client granted, then waits for more.
    peer.send(peer.headers(id, [':status', '200'], false));
    const updates = (): Array<{ increment: number }> => peer.frames.filter((f) => f.type === FRAME_WINDOW_UPDATE && f.streamId === id) as Array<{ increment: number }>;
    let granted = 1024 * 1024;
    let sent = 0;
    let seen = 0;
    while (sent < body.length) {
      while (sent < granted && sent < body.length) {
        const n = Math.min(16_384, granted - sent, body.length - sent);
        sent += n;
        peer.send(encodeData(id, body.subarray(sent - n, sent), sent === body.length));
      }
      if (sent === body.length) break;
      await peer.waitFor((f) => f.type === FRAME_WINDOW_UPDATE && f.streamId === id && updates().length > seen);
      const all = updates();
      for (const update of all.slice(seen)) granted += update.increment;
      seen = all.length;
    }
    const outcome = await big.done;
    assert.equal(outcome.body.length, body.length);
    const streamUpdates = peer.frames.filter((f) => f.type === FRAME_WINDOW_UPDATE && f.streamId === id).length;
    const dataFrames = body.length / 16_384;
    assert.ok(streamUpdates <= 10, `${streamUpdates} WINDOW_UPDATE frames for ${dataFrames} DATA frames`);
    view.destroy();
  }));
