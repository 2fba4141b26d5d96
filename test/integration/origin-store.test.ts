/**
 * The origin-knowledge store: a second pool (standing in for a new process) sharing a file store
 * skips discovery, resumes its session, respects broken marks, and never uses knowledge learned
 * under other TLS settings.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, FileOriginStore, HttpVersion, MuxpoolError } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { startEmbeddedServer } from '../../src/server/embedded.js';
import { H3Server } from '../../src/server/h3.js';
import { startH2Server } from '../helpers/h2.js';
import { startHttpsServer } from '../helpers/servers.js';
import { recordChannel } from '../helpers/diagnostics.js';
import { leakCheck } from '../helpers/leaks.js';
import { startUdpBlackHole } from '../helpers/udp-proxy.js';

async function until(done: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await done()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a new pool on the same file store starts on HTTP/3 and resumes; other TLS settings learn nothing from it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-store-'));
  const path = join(dir, 'origins.json');
  const server = await startEmbeddedServer();
  const leaks = leakCheck();

  const first = new ConnectionPool({ tls: { ca: server.caCert }, originStore: new FileOriginStore(path) });
  const discovery = await first.request(`${server.httpsUrl}/`);
  assert.equal(discovery.protocol, 'h2');
  await discovery.text();
  await until(async () => (await first.stats()).connections.some((c) => c.protocol === 'h3'), 'the prepared HTTP/3 connection');
  // A few HTTP/3 round trips so the session ticket arrives.
  for (let i = 0; i < 3; i++) {
    await sleep(10);
    const res = await first.request(`${server.httpsUrl}/`);
    assert.equal(res.protocol, 'h3');
    await res.text();
  }
  await first.close();
  await leaks.check(first);
  const saved = JSON.parse(await readFile(path, 'utf8')) as { origins: Record<string, Record<string, unknown>> };
  const record = Object.values(saved.origins)[0];
  assert.equal(typeof record?.['altSvcH3Until'], 'number');
  assert.equal(typeof record?.['quicSession'], 'string');
  assert.equal((await stat(path)).mode & 0o777, 0o600, 'tickets are secrets: the file is private');

  const second = new ConnectionPool({ tls: { ca: server.caCert }, originStore: new FileOriginStore(path) });
  const direct = await second.request(`${server.httpsUrl}/`);
  assert.equal(direct.protocol, 'h3', 'no discovery round over TCP');
  await direct.text();
  const snapshot = (await second.stats()).connections.find((c) => c.id === direct.connectionId);
  assert.equal(snapshot?.resumed, true);
  await second.close();

  // Other TLS settings (here: verification off) are another identity: nothing carries over.
  const other = new ConnectionPool({ tls: { rejectUnauthorized: false }, originStore: new FileOriginStore(path) });
  const fresh = await other.request(`${server.httpsUrl}/`);
  assert.equal(fresh.protocol, 'h2');
  await fresh.text();
  await other.close();
  await leaks.check(other);
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('a broken HTTP/3 mark carries over to the next pool; a damaged store file is ignored', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-store-'));
  const path = join(dir, 'origins.json');
  const certs = await generateCertificates();
  let port = 0;
  const server = await startH2Server((stream) => {
    stream.respond({ ':status': 200, 'alt-svc': `h3=":${port}"` });
    stream.end('tcp');
  }, { certs });
  port = server.port;
  const hole = await startUdpBlackHole(port);
  const leaks = leakCheck();

  const first = new ConnectionPool({ tls: { ca: certs.caCert }, originStore: new FileOriginStore(path), quicHandshakeTimeoutMs: 150 });
  await (await first.request(`${server.url}/`)).text();
  await until(() => hole.datagrams > 0, 'the QUIC attempt');
  await until(async () => (await first.stats()).pendingDials === 0, 'the QUIC attempt to fail');
  await first.close();
  const seen = hole.datagrams;

  const second = new ConnectionPool({ tls: { ca: certs.caCert }, originStore: new FileOriginStore(path) });
  const res = await second.request(`${server.url}/`);
  assert.equal(res.protocol, 'h2');
  await res.text();
  await sleep(50);
  assert.equal(hole.datagrams, seen, 'the broken mark from the first pool keeps the second off UDP');
  await second.close();
  await leaks.check(second);

  await writeFile(path, '{"version":1,"origins":');
  const third = new ConnectionPool({ tls: { ca: certs.caCert }, originStore: new FileOriginStore(path) });
  const after = await third.request(`${server.url}/`);
  assert.equal(after.protocol, 'h2');
  await after.text();
  await third.close();
  hole.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('learned ALPN and stream limits are kept: a new pool knows an origin has no HTTP/2 and how many streams another allows', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-store-'));
  const path = join(dir, 'origins.json');
  const certs = await generateCertificates();
  const h1Only = await startHttpsServer((_req, res) => res.end('h1'), { key: certs.leafKey, cert: certs.leafCert });
  const narrow = await startH2Server((stream) => {
    stream.respond({ ':status': 200 });
    stream.end('h2');
  }, { certs, settings: { maxConcurrentStreams: 4 } });
  const leaks = leakCheck();

  const first = new ConnectionPool({ tls: { ca: certs.caCert }, originStore: new FileOriginStore(path) });
  assert.equal((await first.request(`${h1Only.url}/`)).protocol, 'http/1.1');
  const res = await first.request(`${narrow.url}/`);
  assert.equal(res.protocol, 'h2');
  await res.text();
  await first.close();
  const saved = JSON.parse(await readFile(path, 'utf8')) as { origins: Record<string, { tcpProtocol?: string; streamLimit?: number }> };
  const records = Object.entries(saved.origins);
  assert.equal(records.find(([origin]) => origin.includes(`:${h1Only.port}`))?.[1].tcpProtocol, 'http/1.1');
  const narrowRecord = records.find(([origin]) => origin.includes(`:${narrow.port}`))?.[1];
  assert.equal(narrowRecord?.tcpProtocol, 'h2');
  assert.equal(narrowRecord?.streamLimit, 4);

  // The next pool knows at once that HTTP/2 is not spoken there: no connection is made to find out.
  const connectionsBefore = h1Only.connections;
  const second = new ConnectionPool({ tls: { ca: certs.caCert }, originStore: new FileOriginStore(path) });
  await assert.rejects(second.request(`${h1Only.url}/`, { version: HttpVersion.Http2 }), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE');
  assert.equal(h1Only.connections, connectionsBefore);
  await second.close();
  await leaks.check(second);
  await h1Only.close();
  await narrow.close();
  await rm(dir, { recursive: true, force: true });
});

test('alternatives elsewhere: a new one replaces the old one\'s ticket and mark in the store; a dead one leaves Http3Only the origin itself', async () => {
  const c = await generateCertificates();
  // Ports on 127.0.0.2 where nothing listens: each alternative fails at once (port unreachable).
  const deadPorts: number[] = [];
  for (let i = 0; i < 4; i++) {
    const probe = await startUdpBlackHole(0, '127.0.0.2');
    deadPorts.push(probe.port);
    probe.close();
  }
  let served = 0;
  const origin = await startH2Server((stream) => {
    // A different alternative on every response.
    const port = deadPorts[served++ % deadPorts.length] ?? 1;
    stream.respond({ ':status': 200, 'alt-svc': `h3="127.0.0.2:${port}"; ma=60` });
    stream.end('tcp');
  }, { certs: c });
  // The origin also serves HTTP/3 on its own host and port (UDP beside the TCP listener).
  const own = await H3Server.listen({ cert: c.leafCert, key: c.leafKey, port: origin.port, handler: (req, res) => res.end(`own ${String(req.headers['alt-used'])}`) });
  const leaks = leakCheck();
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-store-'));
  const path = join(dir, 'origins.json');
  const pool = new ConnectionPool({ tls: { ca: c.caCert }, originStore: new FileOriginStore(path) });
  const dialEnds = recordChannel('muxpool:dial:end');
  const failures = (): number => dialEnds.events.filter((d) => d['error'] !== undefined).length;
  for (let i = 0; i < deadPorts.length; i++) {
    await pool.invalidate(pool.keyFor(origin.url));
    const res = await pool.request(`${origin.url}/`);
    assert.equal(await res.text(), 'tcp');
    await until(() => failures() > i, `the HTTP/3 dial to alternative ${i} to fail`);
  }
  // Http3Only: the advertised alternative is dead, so the origin's own HTTP/3 serves.
  const strict = await pool.request(`${origin.url}/`, { version: HttpVersion.Http3Only });
  assert.equal(strict.protocol, 'h3');
  assert.equal(await strict.text(), 'own undefined', 'no Alt-Used: this is the origin itself');
  dialEnds.stop();
  await pool.close();
  await leaks.check(pool);
  const saved = JSON.parse(await readFile(path, 'utf8')) as { origins: Record<string, Record<string, unknown>> };
  const routes = Object.keys(saved.origins).filter((name) => name.includes('>'));
  assert.equal(routes.length, 1, `one alternative record, not one per alternative ever named: ${routes.join(', ')}`);
  assert.match(routes[0] ?? '', new RegExp(`>127\\.0\\.0\\.2:${deadPorts.at(-1) ?? 0}$`));
  await own.close();
  await origin.close();
  await rm(dir, { recursive: true, force: true });
});
