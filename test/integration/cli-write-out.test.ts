/**
 * `muxpool URL -w FORMAT` as curl's --write-out, and the timings `-v` prints, run as a child
 * process against loopback servers; the format renderer's escapes and edge cases as data.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type TransferFacts, renderWriteOut } from '../../src/cli/write-out.js';
import { certs, startH3 } from '../helpers/certs.js';
import { runCli as run } from '../helpers/cli.js';
import { startHttpServer, startHttpsServer } from '../helpers/servers.js';

const TIME = /^\d+\.\d{6}$/;

test('-w: status, version, sizes, peer, content type, connects; times cumulative seconds with 6 decimals', async () => {
  const server = await startHttpServer((req, res) => {
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.setHeader('x-tag', 'seen');
    setTimeout(() => res.end('0123456789'), 30);
  });
  const format = [
    '%{http_code}',
    '%{http_version}',
    '%{size_download}',
    '%{size_header}',
    '%{remote_ip}',
    '%{remote_port}',
    '%{content_type}',
    '%{num_connects}',
    '%{num_redirects}',
    '%{url_effective}',
    '%{exitcode}',
    '%header{X-Tag}',
    '%{time_namelookup}',
    '%{time_connect}',
    '%{time_appconnect}',
    '%{time_pretransfer}',
    '%{time_starttransfer}',
    '%{time_total}',
  ].join('|');
  const url = `${server.url.replace('127.0.0.1', 'localhost')}/x`;
  const { code, stdout, stderr } = await run(['-w', `${format}\\n100%% done\\tok`, url]);
  assert.equal(code, 0, stderr);
  assert.ok(stdout.startsWith('0123456789'), 'the body first, then the write-out');
  const [line, rest] = stdout.slice(10).split('\n');
  assert.equal(rest, '100% done\tok');
  const fields = (line as string).split('|');
  assert.deepEqual(fields.slice(0, 12), ['200', '1.1', '10', fields[3], fields[4], String(server.port), 'text/plain; charset=utf-8', '1', '0', url, '0', 'seen']);
  assert.ok(Number(fields[3]) > 60, `header size ${fields[3]}`);
  assert.ok(['127.0.0.1', '::1'].includes(fields[4] as string));
  const times = fields.slice(12).map((t) => {
    assert.match(t, TIME);
    return Number(t);
  });
  const [namelookup, connect, appconnect, pretransfer, starttransfer, total] = times as [number, number, number, number, number, number];
  assert.ok(namelookup > 0, 'localhost was looked up');
  assert.ok(connect >= namelookup);
  assert.equal(appconnect, 0, 'no TLS: appconnect is 0, as curl reports it');
  assert.ok(pretransfer >= connect);
  assert.ok(starttransfer >= pretransfer + 0.025, 'the server waited 30 ms before answering');
  assert.ok(total >= starttransfer);
  await server.close();
});

test('-w over TLS and HTTP/3: appconnect after connect, http_version 2 and 3; %{json}; -L counts redirects; @file; -v prints timings', async () => {
  const c = await certs();
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-w-'));
  const caPath = join(dir, 'ca.pem');
  await writeFile(caPath, c.caCert);
  const server = await startHttpsServer(
    (req, res) => {
      if (req.url === '/hop') {
        res.statusCode = 302;
        res.setHeader('location', '/end');
        res.end();
        return;
      }
      res.end('landed');
    },
    { key: c.leafKey, cert: c.leafCert },
  );
  try {
    const tls = await run(['--cacert', caPath, '--http1.1', '-L', '-w', '%{json}', `${server.url}/hop`]);
    assert.equal(tls.code, 0, tls.stderr);
    const json = JSON.parse(tls.stdout.slice('landed'.length)) as Record<string, number | string>;
    assert.equal(json.http_code, 200);
    assert.equal(json.num_redirects, 1);
    assert.equal(json.num_connects, 1, 'the redirect reused the connection');
    assert.equal(json.url_effective, `${server.url}/end`);
    assert.equal(json.scheme, 'HTTPS');
    assert.ok((json.time_appconnect as number) > (json.time_connect as number), 'the TLS handshake comes after the connect');
    assert.ok((json.time_redirect as number) > 0);
    assert.ok((json.time_total as number) >= (json.time_starttransfer as number));

    const formatFile = join(dir, 'format.txt');
    await writeFile(formatFile, 'v=%{http_version} code=%{response_code}\\n');
    const { server: h3, url } = await startH3((req, res) => {
      req.resume();
      res.end('three');
    });
    const viaH3 = await run(['--cacert', caPath, '--http3-only', '-v', '-w', `@${formatFile}`, `${url}/`]);
    assert.equal(viaH3.code, 0, viaH3.stderr);
    assert.equal(viaH3.stdout, 'threev=3 code=200\n');
    assert.match(viaH3.stderr, /\* timings: queued [\d.]+ ms, dns [\d.]+ ms, connect 0\.0 ms, QUIC handshake [\d.]+ ms, first byte [\d.]+ ms, total [\d.]+ ms/);
    await h3.close();
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('-w on failure: http_code 000, exitcode and errormsg as curl, written to stderr with %{stderr}; unknown variables warned about', async () => {
  const closed = await startHttpServer((_req, res) => res.end());
  const url = `${closed.url}/`;
  await closed.close();
  const { code, stdout, stderr } = await run(['-w', '%{http_code} %{exitcode} %{num_connects}%{stderr}err=%{errormsg}%{nope}', url]);
  assert.equal(code, 7);
  assert.equal(stdout, '000 7 0');
  assert.match(stderr, /err=connection refused/);
  assert.match(stderr, /unknown --write-out variable: 'nope'/);
});

test('renderWriteOut: escapes, %%, a lone % or backslash, an unclosed %{ kept as text', () => {
  const facts: TransferFacts = {
    status: 204,
    statusText: 'No Content',
    protocol: 'h2',
    headers: Object.assign(Object.create(null) as Record<string, string | string[]>, { 'set-cookie': ['a=1', 'b=2'] }),
    timings: { startedAt: 10, queuedMs: 1, dnsMs: 2, connectMs: 3, handshakeMs: 4, firstByteMs: 5, totalMs: 20 },
    dialTimings: undefined,
    startedAt: 10,
    endedAt: 30,
    sizeDownload: 0,
    urlEffective: 'https://example.test/',
    method: 'GET',
    exitcode: 0,
    errormsg: '',
    hops: 1,
    connects: 1,
    remoteIp: '::1',
    remotePort: 443,
  };
  const cases: Array<[string, string]> = [
    ['%{http_code}', '204'],
    ['%{http_version}', '2'],
    ['a\\nb\\tc\\\\d\\q', 'a\nb\tc\\d\\q'],
    ['100%%', '100%'],
    ['50% off', '50% off'],
    ['%{time_namelookup} %{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total}', '0.003000 0.006000 0.010000 0.015000 0.020000'],
    ['%header{set-cookie}', 'a=1, b=2'],
    ['%{http_code', '%{http_code'],
    ['%{remote_ip}:%{remote_port}', '::1:443'],
  ];
  for (const [format, expected] of cases) assert.equal(renderWriteOut(format, facts).stdout, expected, format);
});
