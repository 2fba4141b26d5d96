/**
 * Mutual TLS on every protocol: the embedded server requires a client certificate issued by its
 * CA on HTTP/1.1, HTTP/2 and HTTP/3; the pool presents `tls.cert`/`tls.key` on each, and the
 * failures (no certificate, one from an untrusted CA) are typed on each.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { type EmbeddedServer, startEmbeddedServer } from '../../src/server/embedded.js';
import { generateCertificates } from '../../src/server/certs.js';
import { rejectsWith } from '../helpers/assert.js';
import { certs } from '../helpers/certs.js';
import { issueClientCertificate } from '../helpers/client-certs.js';
import { leakCheck } from '../helpers/leaks.js';

const VERSIONS = [
  { version: HttpVersion.Http1_1, protocol: 'http/1.1' },
  { version: HttpVersion.Http2, protocol: 'h2' },
  { version: HttpVersion.Http3Only, protocol: 'h3' },
] as const;

async function mtlsServer(): Promise<EmbeddedServer> {
  const c = await certs();
  const server = await startEmbeddedServer({ certificates: c, clientCa: c.caCert });
  assert.equal(server.http3, true, `HTTP/3 must be served: ${server.http3Error ?? ''}`);
  return server;
}

test('a client certificate is presented over HTTP/1.1, HTTP/2 and HTTP/3; the server sees its subject', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await mtlsServer();
  const client = await issueClientCertificate(c, 'muxpool test client');
  const pool = new ConnectionPool({ tls: { ca: c.caCert, cert: client.cert, key: client.key } });
  for (const { version, protocol } of VERSIONS) {
    const res = await pool.request(`${server.httpsUrl}/client-cert`, { version });
    assert.equal(res.protocol, protocol);
    assert.equal((await res.text()).trim(), client.subject, `subject seen over ${protocol}`);
  }
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('an encrypted client key is unlocked with tls.passphrase on every protocol (HTTP/3 included)', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await mtlsServer();
  const client = await issueClientCertificate(c, 'locked client');
  const { createPrivateKey } = await import('node:crypto');
  const encrypted = createPrivateKey(client.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'sesame' }) as string;
  const pool = new ConnectionPool({ tls: { ca: c.caCert, cert: client.cert, key: encrypted, passphrase: 'sesame' } });
  for (const { version, protocol } of VERSIONS) {
    const res = await pool.request(`${server.httpsUrl}/client-cert`, { version });
    assert.equal(res.protocol, protocol);
    assert.equal((await res.text()).trim(), client.subject);
  }
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('without a client certificate the server refuses the connection: TLS_CLIENT_CERT on every protocol', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await mtlsServer();
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  for (const { version, protocol } of VERSIONS) {
    const err = await rejectsWith(pool.request(`${server.httpsUrl}/client-cert`, { version }), 'MUXPOOL_ERR_TLS_CLIENT_CERT');
    assert.equal(err.maybeProcessed, false, protocol);
    assert.equal(err.attempts, 1, `not retried over ${protocol}`);
  }
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a client certificate from a CA the server does not trust is refused on every protocol', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await mtlsServer();
  const stranger = await generateCertificates({ caName: 'a CA the server never heard of' });
  const client = await issueClientCertificate(stranger, 'impostor');
  const pool = new ConnectionPool({ tls: { ca: c.caCert, cert: client.cert, key: client.key } });
  // quiche answers with the unknown_ca alert (48): typed. Node's TLS server checks the client
  // certificate after its handshake and, when it fails, closes the socket without an alert, so
  // over TCP the client sees a closed connection and nothing more (Caddy's alert is typed: see
  // the Caddy test); no request reached the handler either way.
  await rejectsWith(pool.request(`${server.httpsUrl}/client-cert`, { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_TLS_CLIENT_CERT');
  for (const version of [HttpVersion.Http1_1, HttpVersion.Http2]) {
    await rejectsWith(pool.request(`${server.httpsUrl}/client-cert`, { version }), 'MUXPOOL_ERR_CONNECTION_CLOSED');
  }
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('a PKCS#12 client certificate works over TCP; Http3Only says why HTTP/3 cannot present it; Http3 uses TCP', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const server = await mtlsServer();
  const client = await issueClientCertificate(c, 'pfx client');
  const pfx = await toPkcs12(client.cert, client.key, 'pw');
  const pool = new ConnectionPool({ tls: { ca: c.caCert, pfx, passphrase: 'pw' } });
  const h2 = await pool.request(`${server.httpsUrl}/client-cert`, { version: HttpVersion.Http2 });
  assert.equal((await h2.text()).trim(), client.subject);
  const err = await rejectsWith(pool.request(`${server.httpsUrl}/client-cert`, { version: HttpVersion.Http3Only }), 'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE');
  assert.match(err.message, /PKCS#12/);
  const h3 = await pool.request(`${server.httpsUrl}/client-cert`, { version: HttpVersion.Http3 });
  assert.notEqual(h3.protocol, 'h3');
  assert.equal((await h3.text()).trim(), client.subject);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

/** PKCS#12 from PEM with the openssl CLI (test-only: the library never runs it). */
async function toPkcs12(cert: string, key: string, passphrase: string): Promise<Buffer> {
  const { mkdtemp, writeFile, readFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { execFileSync } = await import('node:child_process');
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-p12-'));
  try {
    await writeFile(join(dir, 'c.pem'), cert);
    await writeFile(join(dir, 'k.pem'), key);
    execFileSync('openssl', ['pkcs12', '-export', '-in', join(dir, 'c.pem'), '-inkey', join(dir, 'k.pem'), '-out', join(dir, 'c.p12'), '-passout', `pass:${passphrase}`]);
    return await readFile(join(dir, 'c.p12'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
