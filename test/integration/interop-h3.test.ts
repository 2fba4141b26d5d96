/**
 * HTTP/3 interop against a server nobody here wrote: Caddy 2.6 (quic-go) with its internal CA,
 * HTTP/3 on the UDP port equal to its HTTPS port. Checks the protocol both sides agree on,
 * bodies byte for byte both ways, a burst of concurrent streams on one QUIC connection, session
 * resumption on a second connection, and that `Http3` (with its TCP fallback) picks HTTP/3.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { ConnectionPool, HttpVersion, type Response } from '../../src/index.js';
import type { H3Connection } from '../../src/protocol/h3/connection.js';
import { type CaddyServer, startCaddyFixture } from '../helpers/caddy.js';
import { leakCheck } from '../helpers/leaks.js';

const MiB = 1024 * 1024;
const H3 = { version: HttpVersion.Http3Only } as const;
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Waits, bounded in count and time, until `done()` holds. Polling here waits for a peer's
 * packet (a session ticket, a MAX_STREAMS frame); nothing is asserted about how long it took.
 */
async function until(done: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await done()) return;
    await sleep(10);
  }
  assert.fail(`gave up waiting for ${what}`);
}

describe('Caddy over HTTP/3 (tls internal)', () => {
  let caddy: CaddyServer;
  const big = randomBytes(MiB);
  const bigHash = sha256(big);

  before(async () => {
    caddy = await startCaddyFixture(big);
  });
  after(async () => {
    await caddy.stop();
  });

  test('Http3Only: small GETs go over h3 (the server agrees) and share one connection', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const proto = await pool.request(`${caddy.url}/proto`, H3);
    assert.equal(proto.status, 200);
    assert.equal(proto.protocol, 'h3');
    assert.equal(proto.reused, false);
    assert.equal(await proto.text(), 'HTTP/3.0');
    // Caddy advertises Alt-Svc on HTTP/1.1 and HTTP/2 responses only.
    assert.equal(proto.headers['alt-svc'], undefined);

    const hello = await pool.request(`${caddy.url}/hello.txt`, H3);
    assert.equal(hello.protocol, 'h3');
    assert.equal(hello.reused, true);
    assert.equal(hello.connectionId, proto.connectionId);
    assert.equal(hello.headers['content-length'], String('hello from caddy\n'.length));
    assert.equal(await hello.text(), 'hello from caddy\n');

    const missing = await pool.request(`${caddy.url}/missing.txt`, H3);
    assert.equal(missing.status, 404);
    await missing.dump();

    const stats = await pool.stats();
    assert.equal(stats.http3Connections, 1);
    assert.equal(stats.totalConnections, 1);
    assert.equal(stats.dialed, 1);
    assert.equal(stats.connections[0]?.protocol, 'h3');
    assert.equal(stats.connections[0]?.requests, 3);
    assert.equal(stats.connections[0]?.resumed, false, 'the first connection had no ticket to resume');
    await pool.close();
    await leaks.check(pool);
  });

  test('Http3Only: a 1 MiB file arrives byte for byte', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const res = await pool.request(`${caddy.url}/big.bin`, H3);
    assert.equal(res.status, 200);
    assert.equal(res.protocol, 'h3');
    assert.equal(res.headers['content-length'], String(MiB));
    const bytes = await res.bytes();
    assert.equal(bytes.length, MiB);
    assert.equal(sha256(bytes), bigHash);
    await pool.close();
    await leaks.check(pool);
  });

  test('Http3Only: uploads reach the server intact (echoed back through {http.request.body})', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const text = `muxpool upload ${randomBytes(8).toString('hex')}`;
    const small = await pool.request(`${caddy.url}/echo`, { ...H3, method: 'POST', body: text });
    assert.equal(small.protocol, 'h3');
    assert.equal(await small.text(), text);

    // Larger than the stream's initial flow-control window: the rest waits for credit.
    const payload = randomBytes(MiB);
    const whole = await pool.request(`${caddy.url}/echo`, { ...H3, method: 'PUT', body: payload });
    const echoed = await whole.bytes();
    assert.equal(echoed.length, payload.length);
    assert.equal(sha256(echoed), sha256(payload));

    // A streamed body without a length, in uneven chunks, 1 MiB + 7 bytes in all.
    const chunks = Array.from({ length: 17 }, (_, i) => randomBytes(i === 16 ? 7 : 64 * 1024));
    async function* stream(): AsyncGenerator<Uint8Array> {
      for (const chunk of chunks) yield chunk;
    }
    const streamed = await pool.request(`${caddy.url}/echo`, { ...H3, method: 'POST', body: stream() });
    const streamedBack = await streamed.bytes();
    assert.equal(streamedBack.length, MiB + 7);
    assert.equal(sha256(streamedBack), sha256(Buffer.concat(chunks)));
    assert.equal(streamed.connectionId, small.connectionId);

    const stats = await pool.stats();
    assert.equal(stats.http3Connections, 1);
    assert.equal(stats.dialed, 1);
    await pool.close();
    await leaks.check(pool);
  });

  test('Http3Only: 100 concurrent requests (every tenth a 1 MiB body) share one QUIC connection', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const warm = await pool.request(`${caddy.url}/proto`, H3);
    await warm.text();
    // quic-go grants 100 streams and gives a finished one back (MAX_STREAMS) once our ACK of
    // its FIN arrives: wait for that, so the burst finds all 100 slots.
    await until(async () => (await pool.stats()).connections[0]?.maxStreams === 100, 'stream credit back to 100');

    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const res = await pool.request(`${caddy.url}/${i % 10 === 0 ? 'big.bin' : 'hello.txt'}?i=${i}`, H3);
        return { res, body: await res.bytes() };
      }),
    );
    results.forEach(({ res, body }, i) => {
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal(res.protocol, 'h3', `request ${i}`);
      assert.equal(res.connectionId, warm.connectionId, `request ${i} on the first connection`);
      assert.equal(res.attempts, 1, `request ${i} needed no retry`);
      if (i % 10 === 0) assert.equal(sha256(body), bigHash, `request ${i} body`);
      else assert.equal(body.toString('utf8'), 'hello from caddy\n', `request ${i} body`);
    });
    const stats = await pool.stats();
    assert.equal(stats.http3Connections, 1);
    assert.equal(stats.totalConnections, 1);
    assert.equal(stats.dialed, 1);
    assert.equal(stats.connections[0]?.requests, 101);
    await pool.close();
    await leaks.check(pool);
  });

  // Regression: maxStreams once counted open streams plus the credit of the moment, which lags
  // the MAX_STREAMS round trip, so the pool saw 99 slots and dialed a connection serving nothing.
  test(
    'Http3Only: a burst right after a response waits for stream credit instead of dialing a second connection',
    async () => {
      const leaks = leakCheck();
      const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
      try {
        const warm = await pool.request(`${caddy.url}/proto`, H3);
        await warm.text();
        // No wait here: the credit of the stream just finished is still on its way back.
        const results = await Promise.all(
          Array.from({ length: 100 }, async (_, i) => {
            const res = await pool.request(`${caddy.url}/hello.txt?i=${i}`, H3);
            return { res, body: await res.text() };
          }),
        );
        for (const { res } of results) assert.equal(res.status, 200);
        assert.ok(results.every(({ res }) => res.connectionId === warm.connectionId));
        // Once the extra dial (if any) has settled.
        await until(async () => (await pool.stats()).pendingDials === 0, 'dials to settle');
        const stats = await pool.stats();
        assert.equal(stats.dialed, 1, 'one connection is enough for 100 streams');
        assert.equal(stats.http3Connections, 1);
      } finally {
        await pool.close();
        await leaks.check(pool);
      }
    },
  );

  test('a second connection of the same pool resumes the session of the first (stats().connections[].resumed)', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const key = pool.keyFor(caddy.url);
    const first = await pool.request(`${caddy.url}/proto`, H3);
    assert.equal(await first.text(), 'HTTP/3.0');
    assert.equal((await pool.stats()).connections[0]?.resumed, false);

    // The server's NewSessionTicket follows the handshake; the dialer keeps it per key.
    const entry = await pool.getOrCreate(key, HttpVersion.Http3Only);
    assert.ok(entry !== undefined);
    assert.equal(entry.connection.protocol, 'h3');
    const connection = entry.connection as H3Connection;
    await pool.release(entry);
    await until(() => connection.quic.session !== undefined, 'a session ticket from Caddy');

    // No new streams on the first connection: the next request must dial.
    await pool.invalidate(key);
    const second = await pool.request(`${caddy.url}/proto`, H3);
    assert.equal(await second.text(), 'HTTP/3.0');
    assert.equal(second.protocol, 'h3');
    assert.equal(second.reused, false);
    assert.notEqual(second.connectionId, first.connectionId);
    await until(async () => (await pool.stats()).totalConnections === 1, 'the first connection to close');
    const stats = await pool.stats();
    assert.equal(stats.dialed, 2);
    assert.equal(stats.connections[0]?.id, second.connectionId);
    assert.equal(stats.connections[0]?.resumed, true, 'the second handshake resumed the first session');
    await pool.close();
    await leaks.check(pool);
  });

  test('Http3 (QUIC first, TCP as fallback) uses h3 when the server speaks it', async () => {
    const leaks = leakCheck();
    const pool = new ConnectionPool({ tls: { ca: caddy.caCert } });
    const responses: Response[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await pool.request(`${caddy.url}/proto`, { version: HttpVersion.Http3 });
      assert.equal(res.protocol, 'h3');
      assert.equal(await res.text(), 'HTTP/3.0');
      responses.push(res);
    }
    assert.ok(responses.every((res) => res.connectionId === responses[0]?.connectionId));
    const stats = await pool.stats();
    assert.equal(stats.http3Connections, 1);
    assert.equal(stats.http2Connections, 0);
    assert.equal(stats.http1Connections, 0);
    assert.equal(stats.dialed, 1);
    await pool.close();
    await leaks.check(pool);
  });
});
