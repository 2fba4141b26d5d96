/** The `muxpool` command through tinyproxy: -x, --noproxy, the environment as curl reads it, -v, exit codes. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { certs } from '../helpers/certs.js';
import { type RunOutcome, runCli } from '../helpers/cli.js';
import { freeTcpPort } from '../helpers/nghttpd.js';
import { startTinyproxy } from '../helpers/proxies.js';
import { startHttpServer, startHttpsServer } from '../helpers/servers.js';

const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'];

function run(args: string[], env: Record<string, string> = {}): Promise<RunOutcome> {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const name of PROXY_VARIABLES) delete clean[name];
  return runCli(args, { env: { ...clean, ...env } });
}

test('CLI: -x through tinyproxy, proxies from the environment as curl reads them, --noproxy, -x "" and -v', async () => {
  const c = await certs();
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-cli-proxy-'));
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, c.caCert);
  const tls = await startHttpsServer((req, res) => res.end(`tls ${req.url ?? ''}`), { key: c.leafKey, cert: c.leafCert });
  const plain = await startHttpServer((req, res) => res.end(`plain ${req.url ?? ''}`));
  const proxy = await startTinyproxy();
  try {
    const viaX = await run(['-v', '--cacert', caFile, '-x', proxy.url, `${tls.url}/x`]);
    assert.equal(viaX.code, 0, viaX.stderr);
    assert.equal(viaX.stdout, 'tls /x');
    assert.match(viaX.stderr, new RegExp(`\\* Using proxy ${proxy.url.replace(/\./g, '\\.')}\n\\* CONNECT tunnel established to localhost:${tls.port}\n`));
    assert.match(viaX.stderr, /ALPN http\/1\.1/);

    const viaEnv = await run(['-v', '--cacert', caFile, `${tls.url}/env`], { HTTPS_PROXY: proxy.url });
    assert.equal(viaEnv.stdout, 'tls /env');
    assert.match(viaEnv.stderr, /\* Using proxy http:\/\/127\.0\.0\.1:\d+\n\* CONNECT tunnel established/);

    const skipped = await run(['-v', '--cacert', caFile, '--noproxy', 'localhost', `${tls.url}/direct`], { HTTPS_PROXY: proxy.url });
    assert.equal(skipped.stdout, 'tls /direct');
    assert.doesNotMatch(skipped.stderr, /Using proxy/);
    const noProxyEnv = await run(['-v', '--cacert', caFile, `${tls.url}/direct`], { https_proxy: proxy.url, NO_PROXY: `.localhost:${tls.port}` });
    assert.doesNotMatch(noProxyEnv.stderr, /Using proxy/);
    const off = await run(['-v', '--cacert', caFile, '-x', '', `${tls.url}/off`], { HTTPS_PROXY: proxy.url });
    assert.equal(off.stdout, 'tls /off');
    assert.doesNotMatch(off.stderr, /Using proxy/);

    // curl reads http_proxy in lower case only.
    const upper = await run(['-v', `${plain.url}/u`], { HTTP_PROXY: proxy.url });
    assert.equal(upper.stdout, 'plain /u');
    assert.doesNotMatch(upper.stderr, /Using proxy/);
    const lower = await run(['-v', `${plain.url}/l`], { http_proxy: proxy.url });
    assert.equal(lower.stdout, 'plain /l');
    assert.match(lower.stderr, new RegExp(`\\* Using proxy http://127\\.0\\.0\\.1:${proxy.port}\n\\* forwarding the request to 127\\.0\\.0\\.1:${plain.port} in absolute form`));
    assert.match(proxy.log, new RegExp(`GET http://127\\.0\\.0\\.1:${plain.port}/l HTTP/1\\.1`));
  } finally {
    await proxy.stop();
    await tls.close();
    await plain.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('CLI exit codes through a proxy follow curl: 7 unreachable proxy, 56 tunnel refused (407), 2 for a bad -x', async () => {
  const dead = await freeTcpPort();
  const unreachable = await run(['-x', `http://127.0.0.1:${dead}`, 'https://localhost:1/']);
  assert.equal(unreachable.code, 7, unreachable.stderr);
  assert.match(unreachable.stderr, /MUXPOOL_ERR_PROXY_CONNECT|cannot reach the proxy/);
  const proxy = await startTinyproxy({ basicAuth: { user: 'u', password: 'p' } });
  try {
    const denied = await run(['-x', proxy.url, 'https://localhost:1/']);
    assert.equal(denied.code, 56, denied.stderr);
    assert.match(denied.stderr, /needs credentials/);
  } finally {
    await proxy.stop();
  }
  const bad = await run(['-x', 'ftp://x', 'https://localhost:1/']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /unsupported proxy scheme ftp/);
});
