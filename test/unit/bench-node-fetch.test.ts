/**
 * bench:fetch's "Node default" row must run on the undici bundled with Node. Regression: the
 * benchmark imported undici 7 statically, which set undici 7's Agent as the process-wide
 * dispatcher before Node's fetch first ran, so "Node's default fetch" was measured on undici 7.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { UndiciAgent, currentGlobalDispatcher, nodeDefaultDispatcher } from '../../bench/lib/node-fetch.js';

test("bench:fetch's default row uses Node's bundled undici, not undici 7's Agent", async () => {
  assert.ok(nodeDefaultDispatcher !== undefined);
  assert.ok(!(nodeDefaultDispatcher instanceof UndiciAgent), 'undici 7 must not have replaced Node default dispatcher');
  assert.equal(currentGlobalDispatcher(), nodeDefaultDispatcher);

  // A fetch without a dispatcher goes through it.
  const server = http.createServer((_req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const dispatcher = nodeDefaultDispatcher as { dispatch: (...args: unknown[]) => boolean };
  const original = dispatcher.dispatch;
  let calls = 0;
  dispatcher.dispatch = function (this: unknown, ...args: unknown[]) {
    calls++;
    return original.apply(this, args);
  };
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    assert.equal(await res.text(), 'ok');
    assert.equal(calls, 1);
  } finally {
    dispatcher.dispatch = original;
    await (nodeDefaultDispatcher as { close(): Promise<void> }).close();
    await new Promise((resolve) => server.close(resolve));
  }
});
