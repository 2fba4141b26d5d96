/**
 * The fetch command's network options, as curl spells them, against loopback servers:
 * --unix-socket, --cert/--key (and FILE:PASS), --resolve, --connect-to, --pinnedpubkey.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pinOf } from '../../src/connect/pins.js';
import { generateCertificates } from '../../src/server/certs.js';
import { startEmbeddedServer } from '../../src/server/embedded.js';
import { splitCertArg } from '../../src/cli/net-args.js';
import { runCli as run } from '../helpers/cli.js';
import { issueClientCertificate } from '../helpers/client-certs.js';


let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'muxpool-cli-net-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('--cert splits FILE:PASS as curl does (\\: is a colon of the file name)', () => {
  assert.deepEqual(splitCertArg('client.pem'), { file: 'client.pem', passphrase: undefined });
  assert.deepEqual(splitCertArg('client.pem:s3cret:x'), { file: 'client.pem', passphrase: 's3cret:x' });
  assert.deepEqual(splitCertArg('C\\:/certs/c.pem:pw'), { file: 'C:/certs/c.pem', passphrase: 'pw' });
});

test('--unix-socket: the request goes to the socket, Host from the URL; -v says so', async () => {
  const path = join(dir, 'cli.sock');
  const server = http.createServer((req, res) => res.end(`via socket for ${req.headers.host ?? ''}`));
  server.listen(path);
  await once(server, 'listening');
  const out = await run(['--unix-socket', path, '-v', 'http://docker.local/info']);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, 'via socket for docker.local');
  assert.match(out.stderr, new RegExp(`dialed connection h1-\\d+ to ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} over a Unix socket`));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('--cert/--key over h1, h2 and h3 against a server requiring client certificates; FILE:PASS unlocks a key; none: exit 35', async () => {
  const c = await generateCertificates();
  const server = await startEmbeddedServer({ certificates: c, clientCa: c.caCert });
  const client = await issueClientCertificate(c, 'cli client');
  const ca = join(dir, 'ca.pem');
  const cert = join(dir, 'client.pem');
  const key = join(dir, 'client.key');
  const both = join(dir, 'both.pem');
  const locked = join(dir, 'locked.pem');
  await writeFile(ca, c.caCert);
  await writeFile(cert, client.cert);
  await writeFile(key, client.key);
  await writeFile(both, `${client.cert}\n${client.key}`);
  const encrypted = createPrivateKey(client.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw:1' }) as string;
  await writeFile(locked, `${client.cert}\n${encrypted}`);
  for (const flag of ['--http1.1', '--http2', '--http3-only']) {
    const out = await run(['--cacert', ca, '--cert', cert, '--key', key, flag, `${server.httpsUrl}/client-cert`]);
    assert.equal(out.code, 0, `${flag}: ${out.stderr}`);
    assert.equal(out.stdout.trim(), client.subject, flag);
  }
  const combined = await run(['--cacert', ca, '--cert', both, '--http3-only', `${server.httpsUrl}/client-cert`]);
  assert.equal(combined.stdout.trim(), client.subject, combined.stderr);
  const unlocked = await run(['--cacert', ca, '--cert', `${locked}:pw:1`, '--http2', `${server.httpsUrl}/client-cert`]);
  assert.equal(unlocked.stdout.trim(), client.subject, unlocked.stderr);
  const none = await run(['--cacert', ca, '--http2', `${server.httpsUrl}/client-cert`]);
  assert.equal(none.code, 35);
  assert.match(none.stderr, /MUXPOOL_ERR_TLS_CLIENT_CERT/);
  await server.close();
});

test('--resolve and --connect-to reach the server under its certificate name over h1, h2 and h3', async () => {
  const c = await generateCertificates({ names: ['example.test'], ips: [] });
  const server = await startEmbeddedServer({ certificates: c });
  const port = new URL(server.httpsUrl).port;
  const ca = join(dir, 'example-ca.pem');
  await writeFile(ca, c.caCert);
  for (const flag of ['--http1.1', '--http2', '--http3-only']) {
    const resolved = await run(['--cacert', ca, '--resolve', `example.test:${port}:127.0.0.1`, flag, `https://example.test:${port}/`]);
    assert.equal(resolved.code, 0, `${flag}: ${resolved.stderr}`);
    assert.match(resolved.stdout, /hello from muxpool/);
    const redirected = await run(['--cacert', ca, '--connect-to', `example.test:443:127.0.0.1:${port}`, flag, 'https://example.test/']);
    assert.equal(redirected.code, 0, `${flag}: ${redirected.stderr}`);
    assert.match(redirected.stdout, /hello from muxpool/);
  }
  const unresolved = await run(['--cacert', ca, '--resolve', 'example.test:1:127.0.0.1', 'https://example.test:9/']);
  assert.equal(unresolved.code, 6);
  const bad = await run(['--resolve', 'nonsense', 'https://example.test/']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /MUXPOOL_ERR_INVALID_ARGUMENT/);
  await server.close();
});

test('--pinnedpubkey: the right pin (or key file) passes over h1, h2 and h3; a wrong one exits 90', async () => {
  const c = await generateCertificates();
  const server = await startEmbeddedServer({ certificates: c });
  const ca = join(dir, 'pin-ca.pem');
  await writeFile(ca, c.caCert);
  const leaf = new X509Certificate(c.leafCert);
  const pin = pinOf(leaf).replace('sha256/', 'sha256//');
  const wrong = `sha256//${Buffer.alloc(32, 9).toString('base64')}`;
  const keyFile = join(dir, 'leaf-pub.pem');
  await writeFile(keyFile, leaf.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  for (const flag of ['--http1.1', '--http2', '--http3-only']) {
    const ok = await run(['--cacert', ca, '--pinnedpubkey', `${wrong};${pin}`, flag, `${server.httpsUrl}/`]);
    assert.equal(ok.code, 0, `${flag}: ${ok.stderr}`);
    const byFile = await run(['--cacert', ca, '--pinnedpubkey', keyFile, flag, `${server.httpsUrl}/`]);
    assert.equal(byFile.code, 0, `${flag}: ${byFile.stderr}`);
    const refused = await run(['--cacert', ca, '--pinnedpubkey', wrong, flag, `${server.httpsUrl}/`]);
    assert.equal(refused.code, 90, flag);
    assert.match(refused.stderr, /MUXPOOL_ERR_TLS_PIN/);
  }
  await server.close();
});
