/**
 * The soak, short: half a minute of `npm run soak` (one pool, HTTP/1.1, HTTP/2 and HTTP/3 mixed,
 * against the embedded server in a child process, with aborts, 1 ms deadlines, dropped bodies,
 * GOAWAYs, a restart in place and one by SIGKILL). What must hold on every run: no request is
 * lost (each settles, one way or another), no body arrives altered or short while reported as a
 * success, every failure is a typed MuxpoolError, close() resolves, and no socket or timer made
 * during the soak is left once the pool is closed. Outcomes that differ from the plan are printed
 * as diagnostics, by protocol, kind and code: the long soak's report is where they are judged.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { H3Server } from '../../src/server/h3.js';
import { formatCounts } from '../helpers/handle-tracker.js';
import { formatReport, runSoak } from '../helpers/soak.js';

/** Outcomes that mean data was lost or altered, or that an error escaped untyped. */
const INTEGRITY = /body bytes differ|body length|succeeded \(|wrong protocol|status \d|non-muxpool|non-error|threw/;

test('soak, short: nothing lost, no body altered, every failure typed, no handle left', { timeout: 90_000 }, async (t) => {
  const report = await runSoak({
    requests: 200_000,
    seconds: 30,
    concurrency: 32,
    seed: 16,
    goawayEveryMs: 7_000,
    restartEveryMs: 10_000,
    sampleEveryMs: 5_000,
    requestTimeoutMs: 8_000,
  });
  for (const line of formatReport(report).split('\n')) t.diagnostic(line);

  assert.ok(report.issued > 1_000, `only ${report.issued} requests issued in 30 s`);
  assert.equal(report.lostTotal, 0, `lost: ${JSON.stringify(report.lost)}`);
  const broken = Object.entries(report.unexpected).filter(([key]) => INTEGRITY.test(key));
  assert.deepEqual(broken, [], 'altered bodies or untyped errors');
  assert.ok(report.events.restartsInPlace >= 1 && report.events.restartsByKill >= 1, 'both kinds of restart ran');
  assert.ok(report.events.goaways >= 2, 'GOAWAY rounds ran');
  assert.equal(report.closeHung, false, 'close() did not resolve');
  assert.deepEqual(report.activeHandlesLeft, {}, `ref'd handles left: ${formatCounts(report.activeHandlesLeft)}`);
  assert.deepEqual(report.trackedHandlesLeft, {}, `handles left (tracked from creation): ${formatCounts(report.trackedHandlesLeft ?? {})}`);
  // Most requests must settle as planned: a soak where everything fails proves nothing. (Half, not
  // more: on main the HTTP/3 GOAWAY defect below can fail every HTTP/3 request after a GOAWAY.)
  assert.ok(report.settledAsAsked > report.issued * 0.5, `${report.settledAsAsked} of ${report.issued} settled as asked`);
});

// Found by the soak: our HTTP/3 server's GOAWAY, sent while the connection could take no more
// bytes (its send window full of response bodies the client had not read yet), was dropped
// (QuicConnection.write accepted 0 of its 4 bytes and nobody kept the rest), while the server
// went on rejecting every new request as after a GOAWAY: a client that never hears the GOAWAY
// keeps sending on that connection, and every request fails with H3_REQUEST_REJECTED. RFC 9114
// §5.2: the GOAWAY must reach the client. Fails on main today.
test('our HTTP/3 server: a GOAWAY sent while the send window is full still reaches the client; later requests succeed', async (t) => {
  const certificates = await generateCertificates({ caName: 'muxpool soak GOAWAY test CA' });
  const big = Buffer.alloc(256 * 1024, 120);
  const server = await H3Server.listen({
    cert: certificates.leafCert,
    key: certificates.leafKey,
    handler: (req, res) => {
      req.resume();
      res.end(req.url === '/big' ? big : 'ok');
    },
  });
  const pool = new ConnectionPool({ tls: { ca: certificates.caCert }, resolver: async () => [{ address: '127.0.0.1', family: 4 }] });
  t.after(async () => {
    await pool.destroy();
    await server.close();
  });
  const url = `https://localhost:${server.port}`;
  const h3 = { version: HttpVersion.Http3Only };
  assert.equal(await (await pool.request(`${url}/`, h3)).text(), 'ok');
  // 8 MiB of responses in flight, unread: the connection's send window is full.
  const unread = await Promise.all(Array.from({ length: 32 }, () => pool.request(`${url}/big`, h3)));
  server.goaway();
  const later = await Promise.allSettled(Array.from({ length: 8 }, async () => (await pool.request(`${url}/`, { ...h3, timeoutMs: 10_000 })).text()));
  await Promise.all(unread.map((res) => res.dump()));
  const outcomes = later.map((result) => (result.status === 'fulfilled' ? result.value : (result.reason as { code?: string }).code));
  assert.deepEqual(outcomes, Array.from({ length: 8 }, () => 'ok'));
  await pool.close();
  await server.close();
});
