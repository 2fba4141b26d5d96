/**
 * Our HTTP/2 engine against h2o (Debian's h2o 2.2; TLS and cleartext with prior knowledge): 64 MiB
 * down, 64 MiB up through h2o to a hashing backend, 1 000 streams on one connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { BIG, BIG_SHA, download, sha256, startHashBackend, streamedBig, thousandStreams } from '../helpers/h2-interop.js';
import { leakCheck } from '../helpers/leaks.js';
import type http from 'node:http';
import { type H2oServer, startH2o } from '../helpers/h2o.js';

describe('h2o', () => {
  let server: H2oServer;
  let backend: { server: http.Server; port: number };
  before(async () => {
    backend = await startHashBackend();
    server = await startH2o({ files: { 'big64.bin': BIG, 'hello.txt': new Uint8Array(Buffer.from('hello from h2o\n')) }, backendPort: backend.port });
  });
  after(async () => {
    await server.stop();
    backend.server.closeAllConnections();
    await new Promise<void>((resolve) => backend.server.close(() => resolve()));
  });

  for (const tls of [true, false]) {
    test(`${tls ? 'TLS' : 'h2c'}: 64 MiB download, 64 MiB upload (hashed behind h2o), 1 000 streams on one connection`, async () => {
      const leaks = leakCheck();
      const base = tls ? server.tlsUrl : server.h2cUrl;
      const pool = new ConnectionPool({ tls: { ca: server.caCert }, maxPerHost: 1, maxWaiters: 2000 });
      const down = await download(pool, `${base}/big64.bin`);
      assert.equal(down.protocol, 'h2');
      assert.equal(sha256(down.bytes), BIG_SHA);
      const up = await pool.request(`${base}/up/`, { version: HttpVersion.Http2, method: 'POST', body: BIG });
      assert.equal(await up.text(), `${BIG.length} ${BIG_SHA}`);
      const streamed = await pool.request(`${base}/up/`, { version: HttpVersion.Http2, method: 'POST', body: streamedBig() });
      assert.equal(await streamed.text(), `${BIG.length} ${BIG_SHA}`);
      await thousandStreams(pool, () => `${base}/hello.txt`, (body) => assert.equal(body, 'hello from h2o\n'));
      await pool.close();
      await leaks.check(pool);
    });
  }
});

