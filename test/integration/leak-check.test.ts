/**
 * The leak check itself: it must see what the pool keeps open even when nothing holds the
 * process. The pool unrefs idle sockets and its timers, so the old check (ref'd handles from
 * `process.getActiveResourcesInfo()`) passed with an idle HTTP/1.1 and HTTP/2 connection open.
 * The server runs in another process, as a real one would: its own sockets must not be what
 * gives the client's away.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpsServer } from '../helpers/servers.js';

const SERVER = `
const http = require('node:http');
const http2 = require('node:http2');
const h1 = http.createServer((req, res) => res.end('h1'));
const h2 = http2.createServer((req, res) => res.end('h2'));
h1.listen(0, '127.0.0.1', () => h2.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ h1: h1.address().port, h2: h2.address().port }) + '\\n');
}));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

async function startServerProcess(): Promise<{ h1: number; h2: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return { ...(JSON.parse(line.toString()) as { h1: number; h2: number }), child };
}

/** The check as it was: counts of ref'd handles only. */
function refdOnlyCheck(): { check(): Promise<string[]> } {
  const watched = ['TCPSocketWrap', 'TCPWrap', 'TLSWrap', 'UDPWrap', 'Timeout'];
  const counts = (): Record<string, number> => {
    const c: Record<string, number> = {};
    for (const name of process.getActiveResourcesInfo()) c[name] = (c[name] ?? 0) + 1;
    return c;
  };
  const before = counts();
  return {
    async check(): Promise<string[]> {
      for (let i = 0; i < 20; i++) await tick();
      const after = counts();
      return watched.filter((name) => (after[name] ?? 0) > (before[name] ?? 0));
    },
  };
}

test('the leak check sees an idle, unref\'d HTTP/1.1 and HTTP/2 connection that the ref\'d-handle check missed', async () => {
  const server = await startServerProcess();
  const leaks = leakCheck();
  const old = refdOnlyCheck();
  const pool = new ConnectionPool({ maxIdleMs: 60_000 });
  try {
    const one = await pool.request(`http://127.0.0.1:${server.h1}/`, { version: HttpVersion.Http1_1 });
    assert.equal(await one.text(), 'h1');
    const two = await pool.request(`http://127.0.0.1:${server.h2}/`, { version: HttpVersion.Http2 });
    assert.equal(two.protocol, 'h2');
    assert.equal(await two.text(), 'h2');
    assert.equal((await pool.stats()).totalConnections, 2, 'both connections stay idle in the pool');

    assert.deepEqual(await old.check(), [], 'the old check passes: the idle sockets and the expiry timer are unref\'d');
    await assert.rejects(leaks.check(), (err: Error) => {
      // Both TCP connections are reported (with the pool's and the connections' timers).
      assert.equal(err.message.match(/TCPWRAP #/g)?.length, 2, err.message);
      return true;
    });

    await pool.close();
    await leaks.check(pool);
  } finally {
    await pool.close();
    server.child.stdin?.end();
    await once(server.child, 'exit');
  }
});

test('the leak check sees an unref\'d timer left armed, and not one that was cleared', async () => {
  const leaks = leakCheck();
  const timer = setTimeout(() => undefined, 60_000);
  timer.unref();
  const cleared = setTimeout(() => undefined, 60_000);
  clearTimeout(cleared);
  await assert.rejects(leaks.check(), (err: Error) => {
    assert.match(err.message, /handles left open since the test began:\n {2}Timeout #\d+ \(\d+ ms old\)/);
    assert.equal(err.message.match(/ #\d+ /g)?.length, 1, 'only the armed one');
    return true;
  });
  clearTimeout(timer);
  await leaks.check();
});

test('a TLS connection left open is reported, and counts as closed with its socket (no garbage collection needed)', async () => {
  const certs = await generateCertificates();
  const server = await startHttpsServer((_req, res) => res.end('tls'), { key: certs.leafKey, cert: certs.leafCert });
  const leaks = leakCheck();
  const pool = new ConnectionPool({ tls: { ca: certs.caCert } });
  try {
    const res = await pool.request(`${server.url}/`, { version: HttpVersion.Http1_1 });
    assert.equal(await res.text(), 'tls');
    await assert.rejects(leaks.check(), (err: Error) => {
      assert.match(err.message, /TLSWRAP #/);
      assert.match(err.message, /TCPWRAP #/);
      return true;
    });
  } finally {
    await pool.close();
  }
  // Node emits a TLS wrapper's destroy hook only when it is collected; the socket beneath
  // closing is what counts, so this passes without a GC.
  await leaks.check(pool);
  await server.close();
});
