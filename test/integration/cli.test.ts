/** The `muxpool` command, run as a child process against loopback servers. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateCertificates } from '../../src/server/certs.js';
import { startHttpServer, startHttpsServer, startRawServer } from '../helpers/servers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

test('with no URL: the demo runs against the embedded server over all three protocols, shows reuse, exits 0', async () => {
  const { code, stdout } = await run([]);
  assert.equal(code, 0);
  assert.match(stdout, /\| 2 \| https:\/\/localhost:\d+\/bytes\/65536 \| 200 \| http\/1\.1 \| h1-1 \| true \|/);
  assert.match(stdout, /\| 5 \| https:\/\/localhost:\d+\/bytes\/65536 \| 200 \| h2 \| h2-\d+ \| true \|/);
  assert.match(stdout, /\| 8 \| https:\/\/localhost:\d+\/bytes\/65536 \| 200 \| h3 \| h3-\d+ \| true \|/);
  assert.match(stdout, /HTTP\/1\.1 burst of 12 concurrent requests: [1-4] connection\(s\)/);
  // Multiplexed: the whole burst rides the one connection each protocol already has.
  assert.match(stdout, /HTTP\/2 burst of 12 concurrent requests: 1 connection\(s\), 12 reused/);
  assert.match(stdout, /HTTP\/3 burst of 12 concurrent requests: 1 connection\(s\), 12 reused/);
  assert.match(stdout, /\(\d HTTP\/1\.1, 1 HTTP\/2, 1 HTTP\/3\)/);
  assert.match(stdout, /\| h3-\d+ \| https:\/\/localhost:\d+ \| h3 \| idle \|/);
});

test('fetch: body to stdout, -i, -X/-H/-d, -v', async () => {
  const server = await startHttpServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => res.end(`${req.method} ${req.headers['x-test'] ?? '-'} ${body}`));
  });
  const plain = await run([`${server.url}/`]);
  assert.equal(plain.code, 0);
  assert.equal(plain.stdout, 'GET - ');
  const posted = await run(['-X', 'PUT', '-H', 'x-test: yes', '-d', 'payload', '-i', '-v', `${server.url}/`]);
  assert.equal(posted.code, 0);
  assert.match(posted.stdout, /^HTTP\/1\.1 200 OK\n/);
  assert.match(posted.stdout, /PUT yes payload$/);
  assert.match(posted.stderr, /new connection h1-\d+ \(http\/1\.1\)/);
  await server.close();
});

test('exit codes follow curl: 2 usage, 7 refused, 60 untrusted certificate, 6 DNS', async () => {
  assert.equal((await run(['--bogus'])).code, 2);
  assert.equal((await run(['-H'])).code, 2);
  const closed = await startRawServer(() => {});
  const port = closed.port;
  await closed.close();
  const refused = await run([`http://127.0.0.1:${port}/`]);
  assert.equal(refused.code, 7);
  assert.match(refused.stderr, /MUXPOOL_ERR_CONNECT_REFUSED/);
  assert.equal((await run(['http://no-such-host.invalid/'])).code, 6);

  const certs = await generateCertificates();
  const tls = await startHttpsServer((_req, res) => res.end('secret'), { key: certs.leafKey, cert: certs.leafCert });
  const untrusted = await run([`${tls.url}/`]);
  assert.equal(untrusted.code, 60);
  assert.match(untrusted.stderr, /--cacert/);
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-cli-'));
  const caPath = join(dir, 'ca.pem');
  await writeFile(caPath, certs.caCert);
  const trusted = await run(['--cacert', caPath, `${tls.url}/`]);
  assert.equal(trusted.code, 0);
  assert.equal(trusted.stdout, 'secret');
  assert.equal((await run(['-k', `${tls.url}/`])).stdout, 'secret');
  await tls.close();
  await rm(dir, { recursive: true, force: true });
});
