/**
 * A body being read is never collected under its reader. A consumer waiting in `for await` is
 * reachable only through the body stream's own listeners; while the response waits for the
 * server, nothing else may hold that stream, so garbage collection must not take it (and with
 * it the consumer and its caller, which would then wait forever). Over all three protocols.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { H3Server } from '../../src/server/h3.js';
import { startH2Server } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const PART = Buffer.alloc(100 * 1024, 'x');
const PAUSE_MS = 300;

/** Counts the body in a function of its own: nothing but the stream's listeners refers to it. */
async function countBody(pool: ConnectionPool, url: string, version: HttpVersion): Promise<number> {
  const res = await pool.request(url, { version });
  let received = 0;
  for await (const chunk of res.body) received += (chunk as Buffer).length;
  return received;
}

/** Collects garbage while the server pauses mid-body; fails (instead of hanging) after 5 s. */
async function readWhileCollecting(pool: ConnectionPool, url: string, version: HttpVersion): Promise<number | 'stuck'> {
  const counted = countBody(pool, url, version);
  let collecting = true;
  void (async () => {
    for (let i = 0; i < 40 && collecting; i++) {
      gc();
      await sleep(25);
    }
  })();
  const deadline = new AbortController();
  const stuck = sleep(5_000, 'stuck' as const, { signal: deadline.signal }).catch(() => 'stuck' as const);
  const result = await Promise.race([counted, stuck]);
  collecting = false;
  deadline.abort();
  return result;
}

test('a body read with for await survives garbage collection while the server pauses, over HTTP/1.1, HTTP/2 and HTTP/3', async () => {
  const certs = await generateCertificates();
  const respond = async (write: (b: Buffer) => void, end: () => void): Promise<void> => {
    write(PART);
    await sleep(PAUSE_MS);
    write(PART);
    end();
  };
  const h1 = http.createServer((_req, res) => void respond((b) => res.write(b), () => res.end()));
  h1.listen(0, '127.0.0.1');
  await once(h1, 'listening');
  const h2 = await startH2Server((stream) => {
    stream.respond({ ':status': 200 });
    void respond((b) => stream.write(b), () => stream.end());
  }, { certs });
  const h3 = await H3Server.listen({ cert: certs.leafCert, key: certs.leafKey, handler: (_req, res) => void respond((b) => res.write(b), () => res.end()) });
  const leaks = leakCheck();
  const cases: Array<[string, string, HttpVersion]> = [
    ['HTTP/1.1', `http://127.0.0.1:${(h1.address() as AddressInfo).port}/`, HttpVersion.Http1_1],
    ['HTTP/2', `${h2.url}/`, HttpVersion.Http2],
    ['HTTP/3', `https://localhost:${h3.port}/`, HttpVersion.Http3Only],
  ];
  for (const [name, url, version] of cases) {
    const pool = new ConnectionPool({ tls: { ca: certs.caCert } });
    assert.equal(await readWhileCollecting(pool, url, version), 2 * PART.length, `${name}: the whole body, not a reader lost to GC`);
    await pool.close();
    await leaks.check(pool);
  }
  h1.closeAllConnections();
  await new Promise<void>((resolve) => h1.close(() => resolve()));
  await h2.close();
  await h3.close();
});
