/**
 * Mutual TLS against an independent peer: Caddy with `client_auth { mode require_and_verify }`
 * over HTTP/1.1, HTTP/2 and HTTP/3 (Go's crypto/tls and quic-go). Caddy names the subject it
 * verified; a pool without a certificate, or with one from a CA Caddy does not trust, gets the
 * server's alert as MUXPOOL_ERR_TLS_CLIENT_CERT on every protocol.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { rejectsWith } from '../helpers/assert.js';
import { type CaddyServer, startCaddy } from '../helpers/caddy.js';
import { certs } from '../helpers/certs.js';
import { issueClientCertificate } from '../helpers/client-certs.js';
import { leakCheck } from '../helpers/leaks.js';

const VERSIONS = [
  { version: HttpVersion.Http1_1, protocol: 'http/1.1', proto: 'HTTP/1.1' },
  { version: HttpVersion.Http2, protocol: 'h2', proto: 'HTTP/2.0' },
  { version: HttpVersion.Http3Only, protocol: 'h3', proto: 'HTTP/3.0' },
] as const;

let caddy: CaddyServer;
before(async () => {
  const c = await certs();
  caddy = await startCaddy({
    clientCa: c.caCert,
    directives: () => '\trespond "{http.request.tls.client.subject} {http.request.proto}"',
  });
});
after(async () => {
  await caddy.stop();
});

test('Caddy verifies our client certificate over HTTP/1.1, HTTP/2 and HTTP/3', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const client = await issueClientCertificate(c, 'caddy client');
  const pool = new ConnectionPool({ tls: { ca: caddy.caCert, cert: client.cert, key: client.key } });
  for (const { version, protocol, proto } of VERSIONS) {
    const res = await pool.request(`${caddy.url}/`, { version });
    assert.equal(res.protocol, protocol);
    // Caddy 2.6 exposes no TLS state to HTTP/3 handlers (its placeholder stays unreplaced, the
    // same gap as caddyserver/caddy#5078); the answer itself proves the certificate was
    // required and verified.
    const subject = protocol === 'h3' ? '{http.request.tls.client.subject}' : client.subject;
    assert.equal(await res.text(), `${subject} ${proto}`);
  }
  await pool.close();
  await leaks.check(pool);
});

test('Caddy refuses a pool without a certificate, and one from an untrusted CA: TLS_CLIENT_CERT on every protocol', async () => {
  const leaks = leakCheck();
  const stranger = await generateCertificates({ caName: 'not trusted by caddy' });
  const impostor = await issueClientCertificate(stranger, 'impostor');
  for (const tls of [{ ca: caddy.caCert }, { ca: caddy.caCert, cert: impostor.cert, key: impostor.key }]) {
    const pool = new ConnectionPool({ tls });
    for (const { version, protocol } of VERSIONS) {
      const err = await rejectsWith(pool.request(`${caddy.url}/`, { version }), 'MUXPOOL_ERR_TLS_CLIENT_CERT');
      assert.equal(err.maybeProcessed, false, protocol);
    }
    await pool.close();
    await leaks.check(pool);
  }
});
