/**
 * The QUIC/TCP race on its own: its transition table, and what it reports when both fail
 * (the first failure as the error, the other attached), on a manual clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { MuxpoolError } from '../../src/errors.js';
import type { Connection } from '../../src/protocol/connection.js';
import { type RaceState, nextRaceState, raceQuicAndTcp } from '../../src/client/race.js';

interface Attempt {
  started: boolean;
  signal?: AbortSignal;
  resolve?: (c: Connection) => void;
  reject?: (e: unknown) => void;
}

function attempt(a: Attempt) {
  return (signal: AbortSignal): Promise<Connection> => {
    a.started = true;
    a.signal = signal;
    return new Promise((resolve, reject) => Object.assign(a, { resolve, reject }));
  };
}

function fakeConnection(protocol: 'h3' | 'h2'): Connection & { destroyed: boolean } {
  const fake = {
    protocol,
    destroyed: false,
    destroy(): void {
      fake.destroyed = true;
    },
  };
  return fake as unknown as Connection & { destroyed: boolean };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function race(clock: ManualClock, quic: Attempt, tcp: Attempt, late: Connection[] = []) {
  return raceQuicAndTcp({
    clock,
    headStartMs: 300,
    signal: new AbortController().signal,
    quic: attempt(quic),
    tcp: attempt(tcp),
    onLateQuic: (c) => late.push(c),
    onLinger: () => {},
  });
}

test('transition table: every state answers the events it can meet, and an impossible one is an internal error', () => {
  const decided: RaceState[] = ['won', 'lost'];
  assert.equal(nextRaceState('quic-ahead', 'head-start-over'), 'racing');
  assert.equal(nextRaceState('quic-ahead', 'quic-failed'), 'tcp-left');
  assert.equal(nextRaceState('racing', 'tcp-failed'), 'quic-left');
  assert.equal(nextRaceState('quic-left', 'quic-failed'), 'lost');
  assert.equal(nextRaceState('tcp-left', 'tcp-up'), 'won');
  for (const s of decided) assert.equal(nextRaceState(s, 'quic-up'), undefined, 'a late loser changes nothing');
  assert.throws(() => nextRaceState('quic-ahead', 'tcp-up'), { code: 'MUXPOOL_ERR_INTERNAL' });
});

test('QUIC fails during its head start: TCP starts at once; when TCP fails too, the QUIC error comes with the TCP one attached', async () => {
  const clock = new ManualClock();
  const quic: Attempt = { started: false };
  const tcp: Attempt = { started: false };
  const result = race(clock, quic, tcp).then(
    () => assert.fail('both failed'),
    (err: unknown) => err,
  );
  assert.equal(quic.started, true);
  assert.equal(tcp.started, false, 'TCP waits for the head start');
  const quicError = new MuxpoolError('MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT', 'quic timed out', { maybeProcessed: false });
  quic.reject?.(quicError);
  await tick();
  assert.equal(tcp.started, true, 'QUIC failed: TCP starts without waiting for the head start');
  const tcpError = new MuxpoolError('MUXPOOL_ERR_CONNECT_REFUSED', 'refused', { maybeProcessed: false });
  tcp.reject?.(tcpError);
  const err = (await result) as MuxpoolError;
  assert.equal(err.code, 'MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT', 'the first failure is the error');
  assert.deepEqual(err.related, [tcpError], 'the other failure is kept');
  assert.equal(clock.pendingTimers, 0, 'the head-start timer is gone');
});

test('TCP wins after the head start; QUIC coming up later becomes a spare', async () => {
  const clock = new ManualClock();
  const quic: Attempt = { started: false };
  const tcp: Attempt = { started: false };
  const late: Connection[] = [];
  const result = race(clock, quic, tcp, late);
  clock.advance(300);
  assert.equal(tcp.started, true);
  const h2 = fakeConnection('h2');
  tcp.resolve?.(h2);
  assert.equal(await result, h2);
  const h3 = fakeConnection('h3');
  quic.resolve?.(h3);
  await tick();
  assert.deepEqual(late, [h3]);
});

test('QUIC wins while TCP runs: TCP is aborted, and a TCP connection that completes anyway is destroyed', async () => {
  const clock = new ManualClock();
  const quic: Attempt = { started: false };
  const tcp: Attempt = { started: false };
  const result = race(clock, quic, tcp);
  clock.advance(300);
  const h3 = fakeConnection('h3');
  quic.resolve?.(h3);
  assert.equal(await result, h3);
  assert.equal(tcp.signal?.aborted, true);
  const h2 = fakeConnection('h2');
  tcp.resolve?.(h2);
  await tick();
  assert.equal(h2.destroyed, true);
});
