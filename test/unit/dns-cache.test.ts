import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { ResolverCache } from '../../src/connect/dns-cache.js';
import { parseConnectToEntry, parseResolveEntry, DialRoutes } from '../../src/connect/overrides.js';

test('concurrent lookups share one query; failures and TTL 0 are not cached', async () => {
  const clock = new ManualClock();
  let queries = 0;
  let fail = true;
  const cache = new ResolverCache(
    async () => {
      queries++;
      if (fail) throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
      return [{ address: '192.0.2.1', family: 4 as const, ttlSeconds: queries === 2 ? 0 : 60 }];
    },
    clock,
    10_000,
  );
  await assert.rejects(cache.resolve('a.test'));
  fail = false;
  const [x, y] = await Promise.all([cache.resolve('a.test'), cache.resolve('a.test')]);
  assert.equal(x, y);
  assert.equal(queries, 2);
  await cache.resolve('a.test');
  assert.equal(queries, 3, 'a TTL of 0 is not kept');
  await cache.resolve('a.test');
  assert.equal(queries, 3);
  assert.equal(cache.size, 1);
});

test('curl override syntax: IPv6 in brackets, empty parts of connect-to', async () => {
  assert.deepEqual(parseResolveEntry('[::1]:443:[::1],127.0.0.1').addresses, [
    { address: '::1', family: 6 },
    { address: '127.0.0.1', family: 4 },
  ]);
  assert.deepEqual(parseConnectToEntry('::backend:8443'), { host: undefined, port: undefined, toHost: 'backend', toPort: 8443 });
  assert.deepEqual(parseConnectToEntry('Example.TEST:443::'), { host: 'example.test', port: 443, toHost: undefined, toPort: undefined });
  const routes = new DialRoutes(['backend:8443:192.0.2.7'], ['example.test:443:backend:8443', '::other:1'], async () => []);
  assert.deepEqual(routes.target('example.test', 443), { host: 'backend', port: 8443 });
  assert.deepEqual(routes.target('example.test', 80), { host: 'other', port: 1 });
  assert.deepEqual(await routes.addresses('backend', 8443), [{ address: '192.0.2.7', family: 4 }]);
  assert.notEqual(routes.fingerprint, '');
  assert.equal(new DialRoutes(undefined, undefined, async () => []).fingerprint, '');
});
