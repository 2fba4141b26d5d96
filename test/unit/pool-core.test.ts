/**
 * The pool core on its own: fake connections, a dialer the test answers by hand, and a
 * `ManualClock`, so every decision (single-flight dials, the overflow wait, priority classes,
 * eviction, expiry, deadlines, closing) is checked without sockets or sleeps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { MuxpoolError } from '../../src/errors.js';
import type { Demand, Dialer } from '../../src/pool/demand.js';
import type { PoolEntry } from '../../src/pool/entry.js';
import { PoolKey } from '../../src/pool/key.js';
import { PoolCore, type PoolCoreOptions } from '../../src/pool/pool.js';
import type { ConnectionObserver, ConnectionState, Poolable } from '../../src/pool/poolable.js';

type Kind = 'shared' | 'unique';
let nextId = 0;

class FakeConnection implements Poolable {
  readonly id = `fake-${++nextId}`;
  readonly shareable: boolean;
  state: ConnectionState = 'open';
  expiresAt: number | undefined;
  destroyed = false;
  private observer: ConnectionObserver | undefined;

  constructor(
    readonly protocol: Kind,
    public maxStreams = 1,
  ) {
    this.shareable = protocol === 'shared';
  }

  setObserver(observer: ConnectionObserver): void {
    this.observer = observer;
  }

  isUsable(): boolean {
    return this.state === 'open';
  }

  drain(): void {
    if (this.state !== 'open') return;
    this.state = 'draining';
    this.observer?.onCapacityChange(this);
  }

  destroy(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.destroyed = true;
    this.observer?.onClose(this, undefined);
  }

  /** The peer changes how many streams it allows (SETTINGS, MAX_STREAMS). */
  setMaxStreams(n: number): void {
    this.maxStreams = n;
    this.observer?.onCapacityChange(this);
  }
}

class FakeDemand implements Demand<FakeConnection> {
  constructor(
    readonly kind: Kind,
    readonly never?: MuxpoolError,
  ) {}
  accepts(c: FakeConnection): boolean {
    return c.protocol === this.kind;
  }
  prefers(c: FakeConnection): boolean {
    return c.protocol === this.kind;
  }
  dialsShared(): boolean {
    return this.kind === 'shared';
  }
  unavailable(): MuxpoolError | undefined {
    return this.never;
  }
  sameGoal(other: Demand<FakeConnection>): boolean {
    return other === this;
  }
}

interface PendingDial {
  demand: FakeDemand;
  signal: AbortSignal;
  resolve(c: FakeConnection): void;
  reject(err: unknown): void;
}

/** Dials only when the test says so. */
class ManualDialer implements Dialer<FakeConnection, FakeDemand> {
  readonly pending: PendingDial[] = [];
  dial(_key: PoolKey, demand: FakeDemand, signal: AbortSignal): Promise<FakeConnection> {
    return new Promise((resolve, reject) => this.pending.push({ demand, signal, resolve, reject }));
  }
  /** Answers the oldest dial with a new connection of its kind. */
  answer(maxStreams = 1): FakeConnection {
    const dial = this.pending.shift();
    assert.ok(dial !== undefined, 'a dial is pending');
    const connection = new FakeConnection(dial.demand.kind, maxStreams);
    dial.resolve(connection);
    return connection;
  }
}

const SHARED = new FakeDemand('shared');
const UNIQUE = new FakeDemand('unique');
const key = new PoolKey('example.test', 443, true);

function setup(options: PoolCoreOptions = {}) {
  const clock = new ManualClock();
  const dialer = new ManualDialer();
  const core = new PoolCore<FakeConnection, FakeDemand>(dialer, { clock, ...options });
  return { clock, dialer, core };
}

/** Lets promise callbacks (dial answers, waiter settlements) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
  await new Promise((resolve) => setImmediate(resolve));
}

function track<T>(promise: Promise<T>): { promise: Promise<T>; value?: T; error?: unknown; done: boolean } {
  const state: { promise: Promise<T>; value?: T; error?: unknown; done: boolean } = { promise, done: false };
  promise.then(
    (value) => Object.assign(state, { value, done: true }),
    (error: unknown) => Object.assign(state, { error, done: true }),
  );
  return state;
}

test('single flight: concurrent callers of a shared demand share one dial and one connection', async () => {
  const { dialer, core } = setup({ maxStreams: 50 });
  const callers = Array.from({ length: 30 }, () => track(core.acquire(key, SHARED, false)));
  assert.equal(dialer.pending.length, 1, 'one dial covers 30 callers (capacity = maxStreams)');
  const connection = dialer.answer(100);
  await settle();
  const entries = callers.map((c) => c.value as PoolEntry<FakeConnection>);
  assert.ok(entries.every((e) => e === entries[0]));
  assert.equal(entries[0]?.connection, connection);
  assert.equal(entries[0]?.activeStreams, 30);
  assert.equal(entries[0]?.maxStreams, 50, 'min(configured, peer)');
  for (const e of entries) core.release(e);
  await core.close();
  assert.ok(connection.destroyed);
});

test('a learned stream limit sizes the next dial: callers beyond it get dials of their own', async () => {
  const { dialer, core } = setup({ maxStreams: 100, overflowWaitMs: 0 });
  const first = track(core.acquire(key, SHARED, false));
  dialer.answer(2);
  await settle();
  const a = first.value as PoolEntry<FakeConnection>;
  const b = core.tryAcquire(key, SHARED);
  assert.equal(b, a, 'the second stream fits');
  // Three more callers: the connection is full; each new dial is expected to carry 2.
  const more = Array.from({ length: 3 }, () => track(core.acquire(key, SHARED, false)));
  assert.equal(dialer.pending.length, 2, 'ceil(3 / 2) dials');
  dialer.answer(2);
  dialer.answer(2);
  await settle();
  assert.ok(more.every((m) => m.done && m.value !== undefined));
  await core.destroy();
});

test('overflow wait: a caller finding every shared stream busy waits overflowWaitMs before a second connection is dialed', async () => {
  const { clock, dialer, core } = setup({ overflowWaitMs: 50 });
  const first = track(core.acquire(key, SHARED, false));
  dialer.answer(1);
  await settle();
  const second = track(core.acquire(key, SHARED, false));
  assert.equal(dialer.pending.length, 0, 'no dial within overflowWaitMs');
  clock.advance(49);
  assert.equal(dialer.pending.length, 0);
  clock.advance(1);
  assert.equal(dialer.pending.length, 1, 'overflowWaitMs passed: a second connection is dialed');
  dialer.answer(1);
  await settle();
  assert.notEqual(second.value, first.value);
  await core.destroy();
});

test('overflow wait: a stream freed in time serves the waiter and nothing is dialed', async () => {
  const { clock, dialer, core } = setup({ overflowWaitMs: 50 });
  const first = track(core.acquire(key, SHARED, false));
  dialer.answer(1);
  await settle();
  const entry = first.value as PoolEntry<FakeConnection>;
  const second = track(core.acquire(key, SHARED, false));
  clock.advance(20);
  core.release(entry);
  await settle();
  assert.equal(second.value, entry);
  clock.advance(100);
  assert.equal(dialer.pending.length, 0);
  assert.equal(clock.pendingTimers > 0, true, 'only the idle timer is left');
  core.release(entry);
  await core.close();
});

test('priority classes: a freed slot goes to the highest class, FIFO within it', async () => {
  const { dialer, core } = setup({ maxPerHost: 1 });
  const holder = track(core.acquire(key, UNIQUE, false));
  dialer.answer();
  await settle();
  const entry = holder.value as PoolEntry<FakeConnection>;
  const order: string[] = [];
  (['low', 'normal', 'high', 'normal'] as const).forEach((priority, i) => {
    void core.acquire(key, UNIQUE, false, { priority }).then(() => order.push(`${priority}${i}`));
  });
  // One connection: each release hands its slot to the next waiter.
  for (let i = 0; i < 4; i++) {
    core.release(entry);
    await settle();
  }
  assert.deepEqual(order, ['high2', 'normal1', 'normal3', 'low0']);
  core.release(entry);
  await core.close();
});

test('no starvation: a low caller is served after 8 grants to higher classes', async () => {
  const { dialer, core } = setup({ maxPerHost: 1 });
  const holder = track(core.acquire(key, UNIQUE, false));
  dialer.answer();
  await settle();
  const entry = holder.value as PoolEntry<FakeConnection>;
  const served: string[] = [];
  void core.acquire(key, UNIQUE, false, { priority: 'low' }).then(() => served.push('low'));
  // A steady stream of high callers: a new one waits at every release.
  for (let i = 0; i < 10; i++) {
    void core.acquire(key, UNIQUE, false, { priority: 'high' }).then(
      () => served.push('high'),
      () => {},
    );
    core.release(entry);
    await settle();
  }
  assert.equal(served.length, 10);
  assert.equal(served.indexOf('low'), 8, 'the low caller is served right after 8 high ones');
  await core.destroy();
});

test('eviction: at maxPerHost, an idle connection nobody waiting can use is closed to make room', async () => {
  const { dialer, core } = setup({ maxPerHost: 1 });
  const unique = track(core.acquire(key, UNIQUE, false));
  const idle = dialer.answer();
  await settle();
  core.release(unique.value as PoolEntry<FakeConnection>);
  assert.equal(idle.destroyed, false, 'kept idle');
  const shared = track(core.acquire(key, SHARED, false));
  assert.equal(idle.destroyed, true, 'the idle unique connection made room');
  assert.equal(dialer.pending.length, 1);
  dialer.answer(10);
  await settle();
  assert.ok(shared.value !== undefined);
  await core.destroy();
});

test('expiry on the injected clock: cleanup() says when the next idle connection expires; the pool timer closes it', async () => {
  const { clock, dialer, core } = setup({ maxIdleMs: 1_000 });
  const got = track(core.acquire(key, UNIQUE, false));
  const connection = dialer.answer();
  await settle();
  core.release(got.value as PoolEntry<FakeConnection>);
  clock.advance(400);
  assert.equal(core.cleanup(), 600);
  assert.equal(connection.destroyed, false);
  clock.advance(601);
  assert.equal(connection.destroyed, true, 'closed by the pool timer, no cleanup() call');
  assert.equal(core.snapshot().entries.length, 0);
  // The peer's keep-alive deadline comes first when it is earlier.
  const again = track(core.acquire(key, UNIQUE, false));
  const short = dialer.answer();
  short.expiresAt = clock.now() + 100;
  await settle();
  core.release(again.value as PoolEntry<FakeConnection>);
  assert.equal(core.cleanup(), 100);
  await core.close();
});

test('acquireTimeoutMs on the injected clock: a waiter gives up with a reason, and leaves no trace', async () => {
  const { clock, dialer, core } = setup({ maxPerHost: 1, acquireTimeoutMs: 5_000 });
  const holder = track(core.acquire(key, UNIQUE, false));
  dialer.answer();
  await settle();
  const waiter = track(core.acquire(key, UNIQUE, false));
  clock.advance(4_999);
  await settle();
  assert.equal(waiter.done, false);
  clock.advance(1);
  await settle();
  assert.ok(waiter.error instanceof MuxpoolError);
  assert.equal(waiter.error.code, 'MUXPOOL_ERR_ACQUIRE_TIMEOUT');
  assert.match(waiter.error.message, /all busy \(maxPerHost 1\)/);
  assert.equal(core.snapshot().waiters, 0);
  core.release(holder.value as PoolEntry<FakeConnection>);
  await core.close();
});

test('an unavailable demand settles at once: undefined for getOrCreate callers, an error for others', async () => {
  const { core } = setup();
  const never = new FakeDemand('shared', new MuxpoolError('MUXPOOL_ERR_PROTOCOL_UNAVAILABLE', 'never'));
  assert.equal(await core.acquire(key, never, true), undefined);
  await assert.rejects(core.acquire(key, never, false), { code: 'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE' });
  assert.equal(core.snapshot().entries.length + core.snapshot().pendingDials, 0);
  await core.close();
});

test('a failed dial fails the callers it was for, each with an error object of its own', async () => {
  const { dialer, core } = setup({ maxStreams: 4 });
  const callers = Array.from({ length: 3 }, () => track(core.acquire(key, SHARED, false)));
  const dial = dialer.pending.shift();
  dial?.reject(new MuxpoolError('MUXPOOL_ERR_CONNECT_REFUSED', 'refused', { maybeProcessed: false }));
  await settle();
  const errors = callers.map((c) => c.error as MuxpoolError);
  assert.ok(errors.every((e) => e.code === 'MUXPOOL_ERR_CONNECT_REFUSED' && e.maybeProcessed === false));
  assert.equal(new Set(errors).size, 3, 'no error object is shared');
  await core.close();
});

test('close() fails waiters (each its own error), closes idle connections, drains busy ones, and does not wait for lent ones', async () => {
  const { dialer, core } = setup({ maxPerHost: 2 });
  const lent = track(core.acquire(key, UNIQUE, false));
  const busy = track(core.acquire(key, UNIQUE, false));
  const a = dialer.answer();
  const b = dialer.answer();
  await settle();
  core.lend(lent.value as PoolEntry<FakeConnection>);
  const waiters = [track(core.acquire(key, UNIQUE, false)), track(core.acquire(key, UNIQUE, false))];
  let closed = false;
  const closing = core.close().then(() => (closed = true));
  await settle();
  assert.ok(waiters.every((w) => (w.error as MuxpoolError).code === 'MUXPOOL_ERR_POOL_CLOSED'));
  assert.notEqual(waiters[0]?.error, waiters[1]?.error);
  assert.equal(closed, false, 'waits for the busy connection');
  core.release(busy.value as PoolEntry<FakeConnection>);
  await closing;
  const busyConnection = (busy.value as PoolEntry<FakeConnection>).connection;
  assert.ok(busyConnection.destroyed);
  const lentConnection = (lent.value as PoolEntry<FakeConnection>).connection;
  assert.equal(lentConnection.destroyed, false, 'the lent connection is its borrower\'s');
  assert.equal(core.takeBack(lent.value as PoolEntry<FakeConnection>), false, 'given back after close: not kept');
  assert.ok([a, b].includes(lentConnection));
  await assert.rejects(core.acquire(key, UNIQUE, false), { code: 'MUXPOOL_ERR_POOL_CLOSED' });
});

test('a peer allowing 0 streams is waited on, not dialed around; raising the limit serves the waiters', async () => {
  const { dialer, core } = setup({ overflowWaitMs: 0 });
  const first = track(core.acquire(key, SHARED, false));
  const connection = dialer.answer(0);
  await settle();
  assert.equal(first.done, false);
  const second = track(core.acquire(key, SHARED, false));
  assert.equal(dialer.pending.length, 0, 'no dial storm towards a peer that allows 0 streams');
  connection.setMaxStreams(5);
  await settle();
  assert.equal(first.value, second.value);
  await core.destroy();
});

test('adopt(): a connection opened outside a dial joins idle, within maxPerHost, and counts as dialed', async () => {
  const { core } = setup({ maxPerHost: 1 });
  const kept = new FakeConnection('unique');
  const extra = new FakeConnection('unique');
  assert.equal(core.adopt(key, kept), true);
  assert.equal(core.adopt(key, extra), false);
  assert.equal(extra.destroyed, true, 'over maxPerHost: closed, not leaked');
  const snapshot = core.snapshot();
  assert.equal(snapshot.dialed, 1);
  assert.equal(core.tryAcquire(key, UNIQUE)?.connection, kept);
  await core.destroy();
  assert.ok(core.snapshot().closed <= core.snapshot().dialed);
});

test('a dial covers only callers of its own demand: a pending shared dial neither holds up nor fails a unique caller', async () => {
  const { dialer, core } = setup({ overflowWaitMs: 0 });
  const shared = track(core.acquire(key, SHARED, false));
  assert.equal(dialer.pending.length, 1);
  const unique = track(core.acquire(key, UNIQUE, false));
  assert.equal(dialer.pending.length, 2, 'the unique caller gets a dial of its own at once');
  // The shared dial fails: only its own caller hears of it.
  const sharedDial = dialer.pending.shift();
  sharedDial?.reject(new MuxpoolError('MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT', 'no QUIC', { maybeProcessed: false }));
  await settle();
  assert.equal((shared.error as MuxpoolError).code, 'MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT');
  assert.equal(unique.done, false, 'the unique caller still waits for its own dial');
  dialer.answer();
  await settle();
  assert.ok(unique.value !== undefined);
  await core.destroy();
});

test('maxPerHost 0: a background dial leaves no bucket behind and close() resolves; shared connections are not kept after use', async () => {
  const { dialer, core } = setup({ maxPerHost: 0 });
  core.dialInBackground(key, SHARED);
  assert.equal(dialer.pending.length, 0, 'nothing may be kept, so nothing is prepared');
  const got = track(core.acquire(key, SHARED, false));
  const connection = dialer.answer(10);
  await settle();
  core.release(got.value as PoolEntry<FakeConnection>);
  assert.equal(connection.destroyed, true, 'closed after use, as for unique connections');
  await core.close();
});

test('a connection lent just as close() begins is handed over: close() does not wait for it', async () => {
  const { dialer, core } = setup();
  const got = track(core.acquire(key, UNIQUE, false));
  dialer.answer();
  await settle();
  const closing = core.close();
  core.lend(got.value as PoolEntry<FakeConnection>);
  await closing;
  assert.equal((got.value as PoolEntry<FakeConnection>).connection.destroyed, false, "the borrower's now");
});

test('destroy(): waiting callers fail as not processed (they sent nothing); dials the pool called off raise no connection event', async () => {
  const events: string[] = [];
  const clock = new ManualClock();
  const dialer = new ManualDialer();
  const core = new PoolCore<FakeConnection, FakeDemand>(dialer, { clock, maxPerHost: 1 }, undefined, {
    connected: () => events.push('connected'),
    disconnected: () => events.push('disconnected'),
    dialFailed: () => events.push('dialFailed'),
  });
  const waiting = track(core.acquire(key, UNIQUE, false));
  const dial = dialer.pending[0];
  void core.destroy(new Error('shutting down'));
  dial?.reject(dial.signal.reason);
  await settle();
  assert.equal((waiting.error as MuxpoolError).code, 'MUXPOOL_ERR_POOL_CLOSED');
  assert.equal((waiting.error as MuxpoolError).maybeProcessed, false);
  assert.deepEqual(events, [], 'an aborted dial is not a connection error');
});
