/**
 * The stream helpers every driver shares (src/protocol/stream-support.ts), with a ManualClock:
 * the transition table, read deadlines, the body pump, the interim bound and per-stream errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { MuxpoolError } from '../../src/errors.js';
import {
  type BodySink,
  MAX_INTERIM_RESPONSES,
  MAX_TIMER_MS,
  ReadDeadlines,
  type ReadWatched,
  type StreamState,
  checkInterimBudget,
  errorForStream,
  pumpBody,
  streamTransition,
  timerDelay,
} from '../../src/protocol/stream-support.js';

test('streamTransition: legal moves return the new state; illegal ones throw INTERNAL', () => {
  const path: StreamState[] = ['held', 'sending', 'early', 'receiving', 'trailers', 'ended', 'closed'];
  let state: StreamState = 'held';
  for (const next of path.slice(1)) state = streamTransition(state, next, 'test');
  assert.equal(state, 'closed');
  for (const [from, to] of [
    ['closed', 'receiving'],
    ['waiting', 'sending'],
    ['receiving', 'early'],
    ['held', 'receiving'],
    ['ended', 'trailers'],
  ] as Array<[StreamState, StreamState]>) {
    assert.throws(
      () => streamTransition(from, to, 'stream 4'),
      (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_INTERNAL' && err.message.includes(`${from} → ${to}`),
    );
  }
});

test('timerDelay keeps delays within what Node timers take (1 ms to 2^31 - 1 ms)', () => {
  assert.equal(timerDelay(0), 1);
  assert.equal(timerDelay(250), 250);
  assert.equal(timerDelay(2 ** 31), MAX_TIMER_MS);
  assert.equal(timerDelay(Infinity), MAX_TIMER_MS);
});

function watched(lastActivityAt: number): ReadWatched & { expired: boolean } {
  return { lastActivityAt, awaitingSource: false, expired: false };
}

test('ReadDeadlines: one timer; a stream idle for the limit expires, active ones are re-checked at their own deadline', () => {
  const clock = new ManualClock();
  const streams = [watched(0), watched(0)];
  const deadlines = new ReadDeadlines(clock, 100, () => streams.filter((s) => !s.expired), (s) => (s.expired = true));
  deadlines.watch();
  deadlines.watch();
  assert.equal(clock.pendingTimers, 1, 'watch() arms at most one timer');
  clock.advance(60);
  (streams[1] as ReadWatched).lastActivityAt = clock.now(); // progress at 60
  clock.advance(40);
  assert.deepEqual(streams.map((s) => s.expired), [true, false]);
  clock.advance(59);
  assert.equal(streams[1]?.expired, false);
  clock.advance(1);
  assert.equal(streams[1]?.expired, true, 'expires 100 ms after its last progress');
  assert.equal(clock.pendingTimers, 0, 'nothing left to watch: the timer lapses');
});

test('ReadDeadlines: time spent waiting on the caller\'s body does not count; Infinity arms nothing', () => {
  const clock = new ManualClock();
  const stream = watched(0);
  stream.awaitingSource = true;
  const deadlines = new ReadDeadlines(clock, 100, () => (stream.expired ? [] : [stream]), (s) => (s.expired = true));
  deadlines.watch();
  clock.advance(1_000);
  assert.equal(stream.expired, false);
  stream.awaitingSource = false;
  clock.advance(100);
  assert.equal(stream.expired, true);
  deadlines.stop();

  const never = new ReadDeadlines(clock, Infinity, () => [watched(0)], () => assert.fail('no deadline'));
  never.watch();
  assert.equal(clock.pendingTimers, 0);
});

test('pumpBody: waits for drain when the sink refuses, ends the body, and reports a bad body once', async () => {
  const clock = new ManualClock();
  const written: string[] = [];
  let drainCalls = 0;
  let ended = false;
  let failure: MuxpoolError | undefined;
  const sink: BodySink = {
    lastActivityAt: 0,
    awaitingSource: false,
    acceptsBody: true,
    writeBody(chunk) {
      written.push(Buffer.from(chunk).toString());
      return written.length !== 1; // the first write asks to wait
    },
    bodyDrained() {
      drainCalls++;
      return Promise.resolve();
    },
    endBody() {
      ended = true;
    },
    failBody(err) {
      failure = err;
    },
  };
  await pumpBody(sink, [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')], 3, clock);
  assert.deepEqual(written, ['a', 'b', 'c']);
  assert.equal(drainCalls, 1);
  assert.equal(ended, true);
  assert.equal(failure, undefined);

  ended = false;
  written.length = 2; // no more waits
  await pumpBody(sink, [Buffer.from('toolong')], 3, clock);
  assert.equal(ended, false);
  assert.equal((failure as MuxpoolError | undefined)?.code, 'MUXPOOL_ERR_INVALID_BODY');
  assert.equal(sink.awaitingSource, false);
});

test('interim responses: bounded by count and by bytes', () => {
  checkInterimBudget(MAX_INTERIM_RESPONSES, 100, 16_384);
  assert.throws(() => checkInterimBudget(MAX_INTERIM_RESPONSES + 1, 100, 16_384), /interim/);
  assert.throws(() => checkInterimBudget(1, 16_385, 16_384), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_HEADERS_TOO_LARGE');
});

test('errorForStream: same code, message and wire facts, a new object chaining the shared one', () => {
  const shared = new MuxpoolError('MUXPOOL_ERR_H2_PROTOCOL', 'session failed', { maybeProcessed: true, wireCode: 1, origin: 'remote' });
  const a = errorForStream(shared);
  const b = errorForStream(shared, false);
  assert.notEqual(a, b);
  assert.equal(a.code, shared.code);
  assert.equal(a.message, shared.message);
  assert.equal(a.cause, shared);
  assert.equal(a.wireCode, 1);
  assert.equal(a.origin, 'remote');
  assert.equal(a.maybeProcessed, true);
  assert.equal(b.maybeProcessed, false);
});
