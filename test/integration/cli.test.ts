/** The `muxpool` command, run as a child process against loopback servers. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateCertificates } from '../../src/server/certs.js';
import { startEmbeddedServer } from '../../src/server/embedded.js';
import { CLI_MAIN as MAIN, runCli as run } from '../helpers/cli.js';
import { startHttpServer, startHttpsServer, startRawServer } from '../helpers/servers.js';
import { startUdpBlackHole } from '../helpers/udp-proxy.js';


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
  assert.match(posted.stderr, /dialed connection h1-\d+ to 127\.0\.0\.1 over TCP, ALPN http\/1\.1/);
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

test('--http1.1, --http2, --http3, --http3-only pick the protocol; -v shows the transport, ALPN and handshake', async () => {
  const server = await startEmbeddedServer();
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-cli-'));
  const caPath = join(dir, 'ca.pem');
  await writeFile(caPath, server.caCert);
  const cases: Array<[string, RegExp, RegExp]> = [
    ['--http1.1', /over HTTP\/1\.1/, /over TCP, ALPN http\/1\.1\n\* TLS handshake: full/],
    ['--http2', /over HTTP\/2\.0/, /over TCP, ALPN h2\n\* TLS handshake: full/],
    ['--http3', /over HTTP\/3/, /over QUIC, ALPN h3\n\* QUIC handshake: full/],
    ['--http3-only', /over HTTP\/3/, /over QUIC, ALPN h3/],
  ];
  for (const [flag, body, verbose] of cases) {
    const out = await run(['--cacert', caPath, flag, '-v', `${server.httpsUrl}/`]);
    assert.equal(out.code, 0, `${flag}: ${out.stderr}`);
    assert.match(out.stdout, body, flag);
    assert.match(out.stderr, verbose, flag);
  }
  // No HTTP/3 where nothing listens on UDP: --http3-only is refused (curl's 7) and says what to try.
  const other = await generateCertificates();
  const tcpOnly = await startHttpsServer((_req, res) => res.end('tcp'), { key: other.leafKey, cert: other.leafCert });
  const refused = await run(['-k', '--http3-only', '--max-time', '5', `${tcpOnly.url}/`]);
  assert.equal(refused.code, 7, refused.stderr);
  assert.match(refused.stderr, /try --http3/);
  // Where UDP is silently dropped it runs into its deadline (curl's 28).
  const hole = await startUdpBlackHole(tcpOnly.port);
  const strict = await run(['-k', '--http3-only', '--max-time', '1', `${tcpOnly.url}/`]);
  assert.equal(strict.code, 28, strict.stderr);
  hole.close();
  await tcpOnly.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('-d @file uploads a file, -o writes the body to a file, a bad URL exits 3, a missing value 2', async () => {
  const server = await startHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(`got ${Buffer.concat(chunks).length} bytes: ${Buffer.concat(chunks).subarray(0, 5).toString('utf8')}`));
  });
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-cli-'));
  const input = join(dir, 'in.txt');
  const output = join(dir, 'out.txt');
  await writeFile(input, 'hello file body');
  const out = await run(['-d', `@${input}`, '-o', output, `${server.url}/`]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, '');
  assert.equal(await readFile(output, 'utf8'), 'got 15 bytes: hello');
  const missing = await run(['-d', `@${join(dir, 'nope.txt')}`, `${server.url}/`]);
  assert.notEqual(missing.code, 0);
  assert.equal((await run(['http://'])).code, 3);
  assert.equal((await run(['ftp://example.test/'])).code, 3);
  const noValue = await run([`${server.url}/`, '-o']);
  assert.equal(noValue.code, 2);
  assert.match(noValue.stderr, /-o needs a value/);
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('serve: prints its URL and CA path, answers over HTTP/3 with that CA, stops on SIGTERM', async () => {
  const child = spawn(process.execPath, [MAIN, 'serve'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  for (let i = 0; i < 200 && !/CA certificate: \S+/.test(stdout); i++) await sleep(25);
  const url = /serving (https:\/\/\S+)/.exec(stdout)?.[1];
  const caPath = /CA certificate: (\S+)/.exec(stdout)?.[1];
  assert.ok(url !== undefined && caPath !== undefined, stdout);
  const fetched = await run(['--cacert', caPath, '--http3-only', `${url}/`]);
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.match(fetched.stdout, /over HTTP\/3/);
  child.kill('SIGTERM');
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  assert.ok(code === 0 || signal === 'SIGTERM', `exit ${code} ${signal}`);
});

test('fetch: status lines as curl prints them (HTTP/2 200, HTTP/3 200); -L and --max-redirs; --compressed', async () => {
  const embedded = await startEmbeddedServer();
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-cli-'));
  const caPath = join(dir, 'ca.pem');
  await writeFile(caPath, embedded.caCert);
  try {
    const h2 = await run(['--cacert', caPath, '--http2', '-i', `${embedded.httpsUrl}/`]);
    assert.match(h2.stdout, /^HTTP\/2 200\n/);
    const h3 = await run(['--cacert', caPath, '--http3-only', '-i', `${embedded.httpsUrl}/`]);
    assert.match(h3.stdout, /^HTTP\/3 200\n/);
    // curl's defaults: redirects are not followed, bodies are not decoded.
    const noFollow = await run(['--cacert', caPath, '-i', `${embedded.httpsUrl}/redirect/2`]);
    assert.match(noFollow.stdout, /^HTTP\/2 302\n/);
    const followed = await run(['--cacert', caPath, '-L', `${embedded.httpsUrl}/redirect/2`]);
    assert.match(followed.stdout, /^hello from muxpool/);
    const tooMany = await run(['--cacert', caPath, '-L', '--max-redirs', '1', `${embedded.httpsUrl}/redirect/3`]);
    assert.equal(tooMany.code, 47, "curl's exit code for too many redirects");
    assert.match(tooMany.stderr, /MUXPOOL_ERR_TOO_MANY_REDIRECTS/);
    const raw = await run(['--cacert', caPath, '-o', join(dir, 'raw'), `${embedded.httpsUrl}/gzip/1000`]);
    assert.equal(raw.code, 0);
    assert.notEqual((await readFile(join(dir, 'raw'))).length, 1000, 'without --compressed the gzip bytes are kept');
    const decoded = await run(['--cacert', caPath, '--compressed', '-o', join(dir, 'decoded'), `${embedded.httpsUrl}/gzip/1000`]);
    assert.equal(decoded.code, 0);
    assert.deepEqual(await readFile(join(dir, 'decoded')), Buffer.alloc(1000, 120));
  } finally {
    await rm(dir, { recursive: true, force: true });
    await embedded.close();
  }
});
