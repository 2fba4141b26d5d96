/**
 * `dispatch()` on its lean path: a handler's abort reaches the request in every phase (waiting
 * for a connection, waiting for the head, before anything was sent) without an AbortController
 * per request; URLs parsed once are shared, so a `query` must never change the shared one; header
 * Buffers handed to legacy handlers; the dispatches of one turn start together.
 */
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { test } from 'node:test';
import { ConnectionPool } from '../../src/index.js';
import type { DispatchHandler, DispatchOptions } from '../../src/client/dispatcher.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpServer } from '../helpers/servers.js';

interface Outcome {
  error: Error | undefined;
  completed: boolean;
  /** Callbacks after the first end (must stay empty). */
  extra: string[];
}

/** A legacy (fetch-shaped) handler that aborts with `reason` at `when`; resolves at its end. */
function abortingHandler(when: 'connect' | 'later', reason: Error, later?: (abort: () => void) => void): { handler: DispatchHandler; done: Promise<Outcome> } {
  const outcome: Outcome = { error: undefined, completed: false, extra: [] };
  let ended = false;
  let resolveDone: (o: Outcome) => void = () => {};
  const done = new Promise<Outcome>((resolve) => (resolveDone = resolve));
  const end = (what: string): void => {
    if (ended) {
      outcome.extra.push(what);
      return;
    }
    ended = true;
    // A little later, so a second end would be seen.
    setTimeout(() => resolveDone(outcome), 30);
  };
  const handler: DispatchHandler = {
    onConnect(abort) {
      if (when === 'connect') abort(reason);
      else later?.(() => abort(reason));
    },
    onHeaders: () => true,
    onData: () => true,
    onComplete() {
      outcome.completed = true;
      end('complete');
    },
    onError(err) {
      outcome.error = err;
      end('error');
    },
  };
  return { handler, done };
}

test('a dispatch aborted while it waits for a connection leaves the queue at once and is never sent', async () => {
  const leaks = leakCheck();
  const seen: string[] = [];
  let releaseHang: () => void = () => {};
  const server = await startHttpServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/hang') {
      releaseHang = () => res.end('late');
      return;
    }
    res.end('ok');
  });
  const pool = new ConnectionPool({ maxPerHost: 1 });
  const origin = server.url;
  try {
    // The only connection is busy with /hang.
    const hang = pool.request({ origin, path: '/hang', method: 'GET' });
    await waitFor(() => seen.length === 1);

    const reason = new Error('caller gave up');
    let abortNow: () => void = () => {};
    const queued = abortingHandler('later', reason, (abort) => (abortNow = abort));
    pool.dispatch({ origin, path: '/queued', method: 'GET' }, queued.handler);
    await waitFor(async () => (await pool.stats()).waiters === 1);
    abortNow();
    const outcome = await queued.done;
    assert.equal(outcome.error, reason, 'the handler hears its own reason');
    assert.deepEqual(outcome.extra, []);
    assert.equal((await pool.stats()).waiters, 0, 'the waiter left the queue without a slot freeing');

    releaseHang();
    await (await hang).body.text();
    // The next request takes the connection; the aborted one was never written.
    const next = await pool.request({ origin, path: '/next', method: 'GET' });
    assert.equal(await next.body.text(), 'ok');
    assert.deepEqual(seen, ['/hang', '/next']);
  } finally {
    releaseHang();
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('a dispatch aborted before its response head, or from onConnect, ends once with its reason', async () => {
  const leaks = leakCheck();
  const seen: string[] = [];
  const server = await startHttpServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/slow-head') {
      setTimeout(() => res.end('late'), 300).unref();
      return;
    }
    res.end('ok');
  });
  const pool = new ConnectionPool();
  const origin = server.url;
  try {
    const headReason = new Error('no head in time');
    let abortNow: () => void = () => {};
    const slow = abortingHandler('later', headReason, (abort) => (abortNow = abort));
    pool.dispatch({ origin, path: '/slow-head', method: 'GET' }, slow.handler);
    await waitFor(() => seen.includes('/slow-head'));
    abortNow();
    const outcome = await slow.done;
    assert.equal(outcome.error, headReason);
    assert.equal(outcome.completed, false);
    assert.deepEqual(outcome.extra, []);
    assert.equal((await pool.stats()).activeStreams, 0);

    const connectReason = new Error('changed my mind');
    const early = abortingHandler('connect', connectReason);
    pool.dispatch({ origin, path: '/never', method: 'GET' }, early.handler);
    const earlyOutcome = await early.done;
    assert.equal(earlyOutcome.error, connectReason);
    assert.deepEqual(earlyOutcome.extra, []);
    assert.ok(!seen.includes('/never'), 'nothing was sent');

    // The pool still serves.
    const ok = await pool.request({ origin, path: '/after', method: 'GET' });
    assert.equal(await ok.body.text(), 'ok');
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('dispatches to one URL share its parsed form, and a query never changes it', async () => {
  const leaks = leakCheck();
  const seen: string[] = [];
  const server = await startHttpServer((req, res) => {
    seen.push(req.url ?? '');
    res.end('ok');
  });
  const pool = new ConnectionPool();
  const send = async (options: Partial<DispatchOptions>): Promise<void> => {
    const res = await pool.request({ origin: server.url, path: '/q', method: 'GET', ...options });
    await res.body.text();
  };
  try {
    await send({});
    await send({ query: { a: 1 } });
    await send({ query: { b: ['x', 'y'] } });
    await send({});
    // The origin as a URL object (String() gives it a trailing slash) names the same place.
    await send({ origin: new URL(server.url), query: { c: 'z' } });
    assert.deepEqual(seen, ['/q', '/q?a=1', '/q?b=x&b=y', '/q', '/q?c=z']);
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('legacy handlers get header and trailer fields as Buffers, values their own on every response', async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((_req, res) => {
    res.setHeader('x-value', 'same');
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.addTrailers({ 'x-trailer': 'end' });
    res.setHeader('trailer', 'x-trailer');
    res.end('body');
  });
  const pool = new ConnectionPool();
  const fields = (): Promise<{ headers: Buffer[]; trailers: unknown[] }> =>
    new Promise((resolve, reject) => {
      let headers: Buffer[] = [];
      pool.dispatch(
        { origin: server.url, path: '/', method: 'GET' },
        {
          onConnect() {},
          onHeaders(_status, raw) {
            headers = raw;
            return true;
          },
          onData: () => true,
          onComplete: (trailers) => resolve({ headers, trailers: trailers ?? [] }),
          onError: reject,
        },
      );
    });
  try {
    const first = await fields();
    assert.ok(first.headers.every((b) => Buffer.isBuffer(b)));
    const pairs = (raw: Buffer[]): string[] => raw.map((b) => b.toString('latin1'));
    const firstText = pairs(first.headers);
    assert.ok(firstText.includes('x-value'));
    assert.deepEqual(
      firstText.filter((_v, i) => i % 2 === 1 && firstText[i - 1] === 'set-cookie'),
      ['a=1', 'b=2'],
    );
    assert.deepEqual(pairs(first.trailers as Buffer[]), ['x-trailer', 'end']);
    // A handler that writes into a value Buffer it got changes nothing for the next response.
    const valueIndex = firstText.indexOf('x-value') + 1;
    (first.headers[valueIndex] as Buffer).fill(0x21);
    const second = await fields();
    const secondText = pairs(second.headers);
    assert.equal(secondText[secondText.indexOf('x-value') + 1], 'same');
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('dispatches of one turn start together, in order; close() right after dispatch() lets them finish', async () => {
  const leaks = leakCheck();
  const seen: string[] = [];
  const server = await startHttpServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/slow') setTimeout(() => res.end(`body of ${req.url}`), 50);
    else res.end(`body of ${req.url}`);
  });
  const pool = new ConnectionPool({ maxPerHost: 1 });
  const fetchText = (path: string, on: ConnectionPool = pool): Promise<string> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      on.dispatch(
        { origin: server.url, path, method: 'GET' },
        {
          onConnect() {},
          onHeaders: () => true,
          onData: (chunk) => {
            chunks.push(chunk);
            return true;
          },
          onComplete: () => resolve(Buffer.concat(chunks).toString()),
          onError: reject,
        },
      );
    });
  try {
    const texts = await Promise.all(['/1', '/2', '/3'].map((path) => fetchText(path)));
    assert.deepEqual(texts, ['body of /1', 'body of /2', 'body of /3']);
    assert.deepEqual(seen, ['/1', '/2', '/3']);
    // With another dispatch in flight, one is queued for the end of this turn; the pool closes
    // right then: it still runs to its end, as a request already in flight does (close() waits;
    // a connection of its own is free, so it is no waiter, which close() would fail).
    const closing = new ConnectionPool();
    // Two connections up and idle first.
    await Promise.all([fetchText('/w1', closing), fetchText('/w2', closing)]);
    const slow = fetchText('/slow', closing);
    const last = fetchText('/last', closing);
    const closed = closing.close();
    assert.deepEqual(await Promise.all([slow, last]), ['body of /slow', 'body of /last']);
    await closed;
    // Alone, a dispatch starts at once (nothing to batch with): its request is on the wire
    // before dispatch() returns to the event loop.
    const alone = new ConnectionPool();
    try {
      const before = seen.length;
      const text = new Promise<string>((resolve, reject) => {
        const chunks: Buffer[] = [];
        alone.dispatch(
          { origin: server.url, path: '/alone', method: 'GET' },
          { onConnect() {}, onHeaders: () => true, onData: (c) => (chunks.push(c), true), onComplete: () => resolve(Buffer.concat(chunks).toString()), onError: reject },
        );
      });
      assert.equal(await text, 'body of /alone');
      assert.equal(seen.length, before + 1);
    } finally {
      await alone.close();
    }
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test("dispatches batched in one turn each run in their caller's async context", async () => {
  const leaks = leakCheck();
  const server = await startHttpServer((_req, res) => res.end('ok'));
  const pool = new ConnectionPool();
  const als = new AsyncLocalStorage<string>();
  const seen: Array<[string, string | undefined, string | undefined]> = [];
  const send = (name: string): Promise<void> =>
    new Promise((resolve, reject) => {
      pool.dispatch(
        { origin: server.url, path: `/${name}`, method: 'GET' },
        {
          // Called as the request starts, from the batch.
          onConnect: () => seen.push([name, 'connect', als.getStore()]),
          onHeaders: () => true,
          onData: () => true,
          onComplete: () => resolve(),
          onError: reject,
        },
      );
    });
  try {
    // Three callers in one turn, each with its own store; the first one's would be the batch's.
    await Promise.all([als.run('a', () => send('a')), als.run('b', () => send('b')), send('none')]);
    assert.deepEqual(seen, [
      ['a', 'connect', 'a'],
      ['b', 'connect', 'b'],
      ['none', 'connect', undefined],
    ]);
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

/** Polls `condition` every 5 ms for up to 5 s. */
async function waitFor(condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
