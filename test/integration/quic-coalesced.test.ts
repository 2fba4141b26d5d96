// ngtcp2's gtlsserver with --verify-client refuses a client without a certificate right after the
// handshake: CONNECTION_CLOSE (CRYPTO_ERROR 0x174, alert 116 certificate_required) in an Initial,
// a Handshake and a 1-RTT packet of one datagram. Our client has discarded its Initial keys by
// then, and quiche used to drop the rest of the datagram with the undecryptable Initial: the
// request waited for the idle timeout. src/quic/coalesced.ts hands quiche the packets one by one.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MuxpoolError } from '../../src/errors.js';
import { HttpVersion } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { issueClientCertificate } from '../helpers/client-certs.js';
import { leakCheck } from '../helpers/leaks.js';
import { poolFor, urlFor } from '../interop/client.js';
import { Fixture, type H3Target, PROFILES, startH3Target } from '../interop/targets.js';

const IDLE_MS = 8_000;

describe('a refusal in coalesced packets (gtlsserver --verify-client)', () => {
  const fixture = new Fixture({ ...PROFILES.ci, transferSizes: [], lossySize: 0, streams: 0, goodputSize: 0 });
  let target: H3Target;

  before(async () => {
    target = await startH3Target('ngtcp2', fixture, { requestClientCert: true, verbose: true });
  });

  after(async () => {
    await target?.stop();
  });

  test('without a client certificate the refusal is typed at once (TLS_CLIENT_CERT), not an idle timeout', async () => {
    const leaks = leakCheck();
    const endpoint = { host: target.host, port: target.port, caCert: target.caCert };
    const pool = poolFor(endpoint, { quicIdleTimeoutMs: IDLE_MS });
    const started = performance.now();
    let error: unknown;
    try {
      await pool.request(urlFor(endpoint, 'hello.txt'), { version: HttpVersion.Http3Only });
    } catch (err) {
      error = err;
    } finally {
      await pool.close();
    }
    const ms = performance.now() - started;
    assert.ok(error instanceof MuxpoolError, `expected a MuxpoolError, got ${String(error)}`);
    assert.equal(error.code, 'MUXPOOL_ERR_TLS_CLIENT_CERT', error.message);
    assert.equal(error.maybeProcessed, false);
    assert.ok(ms < IDLE_MS / 2, `the refusal took ${ms.toFixed(0)} ms`);
    // The server did send it coalesced: its log has the close in all three packet types.
    const log = target.log();
    for (const type of ['Initial', 'Handshake', '1RTT']) {
      assert.match(log, new RegExp(`frm tx \\d+ ${type} CONNECTION_CLOSE\\(0x1c\\) error_code=CRYPTO_ERROR\\(0x174\\)`));
    }
    await leaks.check(pool);
  });

  test('with a client certificate (any: gtlsserver verifies none) the request is answered', async () => {
    const leaks = leakCheck();
    const client = await issueClientCertificate(await generateCertificates({ caName: 'gtlsserver never saw this CA' }), 'any client');
    const endpoint = { host: target.host, port: target.port, caCert: target.caCert };
    const pool = poolFor(endpoint, { tls: { ca: target.caCert, cert: client.cert, key: client.key } });
    try {
      const res = await pool.request(urlFor(endpoint, 'hello.txt'), { version: HttpVersion.Http3Only });
      assert.equal(res.status, 200);
      assert.equal(res.protocol, 'h3');
      assert.equal(await res.text(), 'hello from the interop matrix\n');
    } finally {
      await pool.close();
    }
    await leaks.check(pool);
  });
});
