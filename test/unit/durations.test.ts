import assert from 'node:assert/strict';
import net from 'node:net';
import { mock, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ManualClock, systemClock } from '../../src/core/clock.js';
import { MAX_TIMER_MS, durationOption, setTimerSafe, socketTimeoutMs } from '../../src/core/durations.js';
import { MuxpoolError } from '../../src/errors.js';

function refused(fn: () => unknown, mentions: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MuxpoolError);
    assert.equal(err.code, 'MUXPOOL_ERR_INVALID_ARGUMENT');
    assert.match(err.message, mentions);
    return true;
  });
}

test('durationOption: undefined takes the fallback; numbers in [min, 2^31 - 1] are kept', () => {
  assert.equal(durationOption('timeoutMs', undefined, 5_000), 5_000);
  assert.equal(durationOption('timeoutMs', undefined, Infinity, { allowInfinity: true }), Infinity);
  assert.equal(durationOption('timeoutMs', 0, 5_000), 0);
  assert.equal(durationOption('timeoutMs', 1.5, 5_000), 1.5);
  assert.equal(durationOption('timeoutMs', MAX_TIMER_MS, 5_000), MAX_TIMER_MS);
  assert.equal(durationOption('timeoutMs', 1, 5_000, { min: 1 }), 1);
  assert.equal(MAX_TIMER_MS, 2_147_483_647);
});

test('durationOption: Infinity means no limit only where allowed', () => {
  assert.equal(durationOption('acquireTimeoutMs', Infinity, 1_000, { allowInfinity: true }), Infinity);
  refused(() => durationOption('pingTimeoutMs', Infinity, 1_000), /pingTimeoutMs .*cannot be Infinity/);
  refused(() => durationOption('pingTimeoutMs', -Infinity, 1_000, { allowInfinity: true }), /pingTimeoutMs/);
});

test('durationOption: values Node would fire after 1 ms (2^31 and more) are refused, pointing at Infinity', () => {
  refused(() => durationOption('timeoutMs', 2 ** 31, 1_000, { allowInfinity: true }), /timeoutMs .*2147483648 \(use Infinity for no limit\)/);
  refused(() => durationOption('timeoutMs', Number.MAX_SAFE_INTEGER, 1_000, { allowInfinity: true }), /use Infinity/);
  refused(() => durationOption('maxIdleMs', 1e300, 1_000), /maxIdleMs must be a number of milliseconds from 0 to 2147483647, got 1e\+300$/);
});

test('durationOption: NaN, negative, below min and non-numbers are refused', () => {
  refused(() => durationOption('acquireTimeoutMs', Number.NaN, 1_000, { allowInfinity: true }), /acquireTimeoutMs .*got NaN/);
  refused(() => durationOption('acquireTimeoutMs', -1, 1_000), /got -1/);
  refused(() => durationOption('acquireTimeoutMs', -0.5, 1_000), /got -0.5/);
  refused(() => durationOption('connectTimeoutMs', 0, 1_000, { min: 1 }), /from 1 to/);
  refused(() => durationOption('timeoutMs', '100', 1_000), /got "100"/);
  refused(() => durationOption('timeoutMs', null, 1_000), /got null/);
  refused(() => durationOption('timeoutMs', 10n, 1_000), /got 10n/);
  refused(() => durationOption('timeoutMs', {}, 1_000), /timeoutMs/);
  refused(() => durationOption('timeoutMs', Symbol('x'), 1_000), /got symbol/);
});

test('setTimerSafe and the system clock: a delay of 2^31 ms or more does not fire after 1 ms (plain setTimeout does)', async () => {
  let fired = 0;
  const long = setTimerSafe(() => fired++, 2 ** 31);
  const viaClock = systemClock.setTimer(() => fired++, 2 ** 40);
  await sleep(50);
  assert.equal(fired, 0);
  long.cancel();
  viaClock.cancel();
});

test('setTimerSafe: Infinity arms nothing; a long delay is re-armed until the whole delay passed', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let fired = 0;
    const never = setTimerSafe(() => fired++, Infinity);
    mock.timers.tick(MAX_TIMER_MS);
    mock.timers.tick(MAX_TIMER_MS);
    assert.equal(fired, 0);
    never.cancel();

    setTimerSafe(() => fired++, MAX_TIMER_MS + 1_000);
    mock.timers.tick(MAX_TIMER_MS);
    assert.equal(fired, 0, 'not at the first 2^31 - 1 ms');
    mock.timers.tick(999);
    assert.equal(fired, 0);
    mock.timers.tick(1);
    assert.equal(fired, 1);
    mock.timers.tick(MAX_TIMER_MS);
    assert.equal(fired, 1, 'once');

    const cancelled = setTimerSafe(() => fired++, 3 * MAX_TIMER_MS);
    mock.timers.tick(MAX_TIMER_MS);
    cancelled.cancel();
    mock.timers.tick(3 * MAX_TIMER_MS);
    assert.equal(fired, 1, 'cancelled between two re-arms');

    setTimerSafe(() => fired++, -5);
    setTimerSafe(() => fired++, Number.NaN);
    mock.timers.tick(0);
    assert.equal(fired, 3, 'negative and NaN delays fire at once, never lost');
  } finally {
    mock.timers.reset();
  }
});

test('setTimerSafe: unref\'d by default, ref\'d on request', () => {
  const handles = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
  const before = handles();
  const unrefd = setTimerSafe(() => undefined, 60_000);
  assert.equal(handles(), before);
  const refd = setTimerSafe(() => undefined, 60_000, true);
  assert.equal(handles(), before + 1);
  unrefd.cancel();
  refd.cancel();
  assert.equal(handles(), before);
});

test('ManualClock: Infinity never falls due', () => {
  const clock = new ManualClock();
  let fired = 0;
  clock.setTimer(() => fired++, Infinity);
  clock.advance(Number.MAX_SAFE_INTEGER);
  assert.equal(fired, 0);
});

test('socketTimeoutMs: Infinity becomes 0 (no timeout) for socket.setTimeout, which throws on Infinity', () => {
  const socket = new net.Socket();
  assert.throws(() => socket.setTimeout(Infinity), { code: 'ERR_OUT_OF_RANGE' });
  assert.equal(socketTimeoutMs(Infinity), 0);
  socket.setTimeout(socketTimeoutMs(Infinity));
  assert.equal(socketTimeoutMs(5_000), 5_000);
  assert.equal(socketTimeoutMs(0), 1, '0 would mean no timeout to a socket');
  assert.equal(socketTimeoutMs(2 ** 40), MAX_TIMER_MS);
  socket.destroy();
});
