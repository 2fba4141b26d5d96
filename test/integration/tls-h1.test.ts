/**
 * HTTP/1.1 over TLS against real loopback servers: the trust story (root store +
 * NODE_EXTRA_CA_CERTS + tls.ca), verification failures, SNI, resumption, IPv6.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConnectionPool } from '../../src/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpsServer } from '../helpers/servers.js';
import { type GeneratedCertificates, generateCertificates } from '../../src/server/certs.js';
import { certs } from '../helpers/certs.js';


async function helloServer(c: GeneratedCertificates, host = '127.0.0.1') {
  const reused: boolean[] = [];
  const server = await startHttpsServer((req, res) => res.end(`hello ${req.headers.host}`), {
    key: c.leafKey,
    cert: c.leafCert,
    host,
  });
  server.server.on('secureConnection', (socket: TLSSocket) => reused.push(socket.isSessionReused()));
  return { server, reused };
}

test('https with tls.ca: verified, reused, ALPN http/1.1', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const { server } = await helloServer(c);
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const a = await pool.request(`https://localhost:${server.port}/`);
  assert.equal(await a.text(), `hello localhost:${server.port}`);
  assert.equal(a.protocol, 'http/1.1');
  const b = await pool.request(`https://localhost:${server.port}/`);
  await b.text();
  assert.equal(b.reused, true);
  assert.equal(b.connectionId, a.connectionId);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('verification is on by default: an unknown CA is TLS_CERT, a wrong name is TLS_HOSTNAME', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const { server } = await helloServer(c);
  const untrusting = new ConnectionPool();
  const err = await rejectsWith(untrusting.request(`https://localhost:${server.port}/`), 'MUXPOOL_ERR_TLS_CERT');
  assert.equal(err.maybeProcessed, false);
  const other = await generateCertificates({ names: ['other.example'], ips: [] });
  const { server: wrongName } = await helloServer(other);
  const trusting = new ConnectionPool({ tls: { ca: other.caCert } });
  await rejectsWith(trusting.request(`https://localhost:${wrongName.port}/`), 'MUXPOOL_ERR_TLS_HOSTNAME');
  // The same server is fine when the name we check is the one it has (SNI + verification).
  const byName = new ConnectionPool({ tls: { ca: other.caCert, servername: 'other.example' } });
  assert.equal((await byName.request(`https://127.0.0.1:${wrongName.port}/`)).status, 200);
  const insecure = new ConnectionPool({ tls: { rejectUnauthorized: false } });
  assert.equal((await insecure.request(`https://localhost:${server.port}/`)).status, 200);
  for (const pool of [untrusting, trusting, byName, insecure]) await pool.destroy();
  await server.close();
  await wrongName.close();
  await leaks.check();
});

test('an expired certificate is TLS_CERT', async () => {
  const now = Date.now();
  const expired = await generateCertificates({ notBefore: new Date(now - 10 * 86_400_000), notAfter: new Date(now - 86_400_000) });
  const { server } = await helloServer(expired);
  const pool = new ConnectionPool({ tls: { ca: expired.caCert } });
  const err = await rejectsWith(pool.request(`https://localhost:${server.port}/`), 'MUXPOOL_ERR_TLS_CERT');
  assert.match(err.message, /CERT_HAS_EXPIRED/);
  await pool.close();
  await server.close();
});

test('a garbage CA is INVALID_CA, not silently ignored', async () => {
  const pool = new ConnectionPool({ tls: { ca: 'not a certificate' } });
  await rejectsWith(pool.request('https://localhost:1/'), 'MUXPOOL_ERR_INVALID_CA');
  await pool.close();
});

test('TLS sessions are resumed on the next connection to the same key', async () => {
  const leaks = leakCheck();
  const c = await certs();
  const { server, reused } = await helloServer(c);
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const url = `https://localhost:${server.port}/`;
  await (await pool.request(url)).text();
  await pool.invalidate(pool.keyFor(url));
  await (await pool.request(url)).text();
  assert.deepEqual(reused, [false, true]);
  await pool.close();
  await server.close();
  await leaks.check(pool);
});

test('IPv6 loopback literals work over TLS', async () => {
  const c = await certs();
  const { server } = await helloServer(c, '::1');
  const pool = new ConnectionPool({ tls: { ca: c.caCert } });
  const res = await pool.request(`https://[::1]:${server.port}/`);
  assert.equal(await res.text(), `hello [::1]:${server.port}`);
  const stats = await pool.stats();
  assert.equal(stats.connections[0]?.origin, `https://[::1]:${server.port}`);
  await pool.close();
  await server.close();
});

test('NODE_EXTRA_CA_CERTS is part of the trust store', async () => {
  const c = await certs();
  const { server } = await helloServer(c);
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-ca-'));
  const caPath = join(dir, 'ca.pem');
  await writeFile(caPath, c.caCert);
  const index = fileURLToPath(new URL('../../src/index.js', import.meta.url));
  const script = `
    const { ConnectionPool } = await import(${JSON.stringify(index)});
    const pool = new ConnectionPool();
    const res = await pool.request('https://localhost:${server.port}/');
    console.log(res.status, await res.text());
    await pool.close();`;
  const output = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: caPath }, timeout: 20_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
  assert.equal(output.trim(), `200 hello localhost:${server.port}`);
  await server.close();
  await rm(dir, { recursive: true, force: true });
});
