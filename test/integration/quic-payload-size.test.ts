// The datagram size we accept (max_udp_payload_size, RFC 9000 §18.2) against ngtcp2's
// gtlsserver, which probes the path MTU (RFC 9000 §14.3) and then sends up to its own 1452-byte
// limit, but never more than we advertise. A proxy in between sees the datagram sizes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HttpVersion } from '../../src/index.js';
import { leakCheck } from '../helpers/leaks.js';
import { startUdpProxy } from '../helpers/udp-proxy.js';
import { poolFor, urlFor } from '../interop/client.js';
import { Fixture, type H3Target, MiB, PROFILES, sha256, startH3Target } from '../interop/targets.js';

/** What we sent before: the largest datagram we send was also the largest we accepted. */
const OLD_LIMIT = 1350;

describe('max_udp_payload_size against gtlsserver', () => {
  const fixture = new Fixture({ ...PROFILES.ci, transferSizes: [], lossySize: 0, streams: 0, goodputSize: 4 * MiB });
  let target: H3Target;

  before(async () => {
    target = await startH3Target('ngtcp2', fixture, {});
  });

  after(async () => {
    await target?.stop();
  });

  test('a bulk download arrives in datagrams larger than 1350 bytes once the server found the path MTU', async () => {
    const leaks = leakCheck();
    // The proxy's sockets are the test's own: it is closed before the leak check.
    const proxy = await startUdpProxy({ host: target.host, target: { host: target.host, port: target.port } });
    const endpoint = { host: proxy.host, port: proxy.port, caCert: target.caCert };
    const pool = poolFor(endpoint);
    try {
      const res = await pool.request(urlFor(endpoint, 'goodput.bin'), { version: HttpVersion.Http3Only });
      const bytes = await res.bytes();
      assert.equal(sha256(bytes), fixture.hashes.get('goodput.bin'));
    } finally {
      await pool.close();
      await proxy.close();
    }
    await leaks.check(pool);
    // gtlsserver keeps to max_udp_payload_size: with the old 1350 it never sent more.
    assert.ok(
      proxy.stats.largestFromTarget > OLD_LIMIT,
      `largest datagram from gtlsserver: ${proxy.stats.largestFromTarget} bytes (${proxy.stats.receivedFromTarget} datagrams)`,
    );
    assert.ok(proxy.stats.largestFromTarget <= 65527);
  });
});
