/**
 * DNS control over real loopback servers: curl-style `resolve` and `connectTo` overrides on
 * HTTP/1.1, HTTP/2 and HTTP/3 (the certificate still checked against the URL's host), the
 * origin store kept apart for pools with overrides, and the resolver cache honouring TTLs and
 * its cap on an injected clock.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ConnectionPool, HttpVersion, MemoryOriginStore } from '../../src/index.js';
import type { ResolvedAddress } from '../../src/index.js';
import { ManualClock } from '../../src/core/clock.js';
import { generateCertificates, type GeneratedCertificates } from '../../src/server/certs.js';
import { type EmbeddedServer, startEmbeddedServer } from '../../src/server/embedded.js';
import { rejectsWith } from '../helpers/assert.js';
import { leakCheck } from '../helpers/leaks.js';

const VERSIONS = [
  { version: HttpVersion.Http1_1, protocol: 'http/1.1' },
  { version: HttpVersion.Http2, protocol: 'h2' },
  { version: HttpVersion.Http3Only, protocol: 'h3' },
] as const;

let exampleCerts: Promise<GeneratedCertificates> | undefined;
function certsForExample(): Promise<GeneratedCertificates> {
  exampleCerts ??= generateCertificates({ names: ['example.test'], ips: [] });
  return exampleCerts;
}

async function exampleServer(): Promise<{ server: EmbeddedServer; port: number; c: GeneratedCertificates }> {
  const c = await certsForExample();
  const server = await startEmbeddedServer({ certificates: c });
  assert.equal(server.http3, true, server.http3Error);
  return { server, port: Number(new URL(server.httpsUrl).port), c };
}

test('resolve example.test:PORT:127.0.0.1 reaches the server over h1, h2 and h3; SNI and the certificate are example.test', async () => {
  const leaks = leakCheck();
  const { server, port, c } = await exampleServer();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, resolve: [`example.test:${port}:127.0.0.1`] });
  for (const { version, protocol } of VERSIONS) {
    const res = await pool.request(`https://example.test:${port}/`, { version });
    assert.equal(res.protocol, protocol);
    assert.match(await res.text(), /hello from muxpool/);
  }
  // The entry is for one port: another port of the name is looked up as usual (and fails).
  await rejectsWith(pool.request(`https://example.test:${port + 1 > 65535 ? port - 1 : port + 1}/`), 'MUXPOOL_ERR_DNS');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('an override changes where, never whom: a certificate that does not cover the URL host still fails', async () => {
  const leaks = leakCheck();
  const { server, port, c } = await exampleServer();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, resolve: [`other.test:${port}:127.0.0.1`] });
  await rejectsWith(pool.request(`https://other.test:${port}/`, { version: HttpVersion.Http1_1 }), 'MUXPOOL_ERR_TLS_HOSTNAME');
  await rejectsWith(pool.request(`https://other.test:${port}/`, { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_TLS_HOSTNAME', 'MUXPOOL_ERR_TLS_CERT');
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('connectTo example.test:443 to 127.0.0.1:PORT over h1, h2 and h3; an empty host2 keeps the name and resolve applies to it', async () => {
  const leaks = leakCheck();
  const { server, port, c } = await exampleServer();
  const direct = new ConnectionPool({ tls: { ca: c.caCert }, connectTo: [`example.test:443:127.0.0.1:${port}`] });
  for (const { version, protocol } of VERSIONS) {
    const res = await direct.request('https://example.test/', { version });
    assert.equal(res.protocol, protocol);
    await res.text();
  }
  const chained = new ConnectionPool({ tls: { ca: c.caCert }, connectTo: [`example.test:443::${port}`], resolve: [`example.test:${port}:[::ffff:127.0.0.1]`, `example.test:443:192.0.2.1`] });
  for (const { version, protocol } of VERSIONS) {
    const res = await chained.request('https://example.test/', { version });
    assert.equal(res.protocol, protocol);
    await res.text();
  }
  await direct.close();
  await chained.close();
  await server.close();
  await leaks.check(direct);
});

test('what a pool learns through overrides is kept apart in a shared origin store', async () => {
  const leaks = leakCheck();
  const { server, port, c } = await exampleServer();
  const written = new Set<string>();
  const store = new (class extends MemoryOriginStore {
    override update(origin: string, patch: Parameters<MemoryOriginStore['update']>[1]): void {
      written.add(origin);
      super.update(origin, patch);
    }
  })();
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, originStore: store, connectTo: [`example.test:443:127.0.0.1:${port}`] });
  const res = await pool.request('https://example.test/');
  await res.text();
  const plain = new ConnectionPool({ tls: { ca: c.caCert }, originStore: store });
  const plainRecord = (plain as unknown as { keyFor(u: string): { id: string } }).keyFor('https://example.test/').id;
  assert.ok(written.size > 0, 'the Alt-Svc answer was recorded');
  for (const name of written) {
    assert.ok(name.includes('~'), `${name} carries the overrides' mark`);
    assert.equal(name.startsWith(plainRecord) && name.length === plainRecord.length, false);
  }
  assert.equal(store.get(plainRecord), undefined);
  await pool.close();
  await plain.close();
  await server.close();
  await leaks.check(pool);
});

test('bad override entries are INVALID_ARGUMENT when the pool is made', () => {
  for (const resolve of [['example.test:443'], ['example.test:http:127.0.0.1'], ['example.test:443:not-an-ip'], ['example.test:70000:127.0.0.1']]) {
    assert.throws(() => new ConnectionPool({ resolve }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' }, resolve[0]);
  }
  for (const connectTo of [['a:1:b'], ['a:x:b:2'], ['a:1:b:99999']]) {
    assert.throws(() => new ConnectionPool({ connectTo }), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' }, connectTo[0]);
  }
});

/** A cleartext server that closes every connection after its response, so each request dials (and resolves). */
async function closingServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.setHeader('connection', 'close');
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('dnsCacheMs: a TTL from the resolver is honoured, capped by dnsCacheMs, on the pool clock', async () => {
  const leaks = leakCheck();
  const server = await closingServer();
  const clock = new ManualClock();
  let ttlSeconds: number | undefined = 5;
  let queries = 0;
  const resolver = async (): Promise<ResolvedAddress[]> => {
    queries++;
    return [{ address: '127.0.0.1', family: 4, ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) }];
  };
  const pool = new ConnectionPool({ clock, resolver, dnsCacheMs: 20_000 });
  const get = async (): Promise<void> => {
    await (await pool.request(`http://cached.test:${server.port}/`)).text();
  };
  await get();
  await get();
  assert.equal(queries, 1, 'the second dial used the cached answer');
  clock.advance(4_999);
  await get();
  assert.equal(queries, 1, 'still within the 5 s TTL');
  clock.advance(2);
  await get();
  assert.equal(queries, 2, 'the TTL ran out');
  // No TTL: kept dnsCacheMs.
  ttlSeconds = undefined;
  clock.advance(5_001);
  await get();
  assert.equal(queries, 3);
  clock.advance(19_999);
  await get();
  assert.equal(queries, 3, 'within the cap');
  clock.advance(2);
  await get();
  assert.equal(queries, 4, 'the cap ran out');
  // A TTL beyond the cap is cut to it.
  ttlSeconds = 3600;
  clock.advance(20_001);
  await get();
  assert.equal(queries, 5);
  clock.advance(20_001);
  await get();
  assert.equal(queries, 6, 'an hour TTL is kept only dnsCacheMs');
  const uncached = new ConnectionPool({ clock, resolver });
  await (await uncached.request(`http://cached.test:${server.port}/`)).text();
  await (await uncached.request(`http://cached.test:${server.port}/`)).text();
  assert.equal(queries, 8, 'without dnsCacheMs every dial asks');
  await pool.close();
  await uncached.close();
  await server.close();
  await leaks.check(pool);
});
