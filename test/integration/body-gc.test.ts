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

test('a decoded (gzip) body: read with for await it survives garbage collection; taken and dropped unread it is collected and frees its stream', async () => {
  const zlib = await import('node:zlib');
  const gzipped = zlib.gzipSync(Buffer.alloc(2 * PART.length, 'y'));
  const half = Math.floor(gzipped.length / 2);
  const server = http.createServer((req, res) => {
    res.writeHead(200, req.url === '/hang-plain' ? {} : { 'content-encoding': 'gzip' });
    res.write(gzipped.subarray(0, half));
    if (req.url === '/hang-plain') return;
    if (req.url === '/hang') return; // the rest never comes: only collection frees this stream
    void sleep(PAUSE_MS).then(() => res.end(gzipped.subarray(half)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const leaks = leakCheck();
  const pool = new ConnectionPool();
  assert.equal(await readWhileCollecting(pool, `${base}/`, HttpVersion.Http1_1), 2 * PART.length, 'decoded, whole, not lost to GC');

  // Taken and dropped: a body holds its source until it is read, and nothing else holds the
  // body, so collection cancels the stream. Decoded or not.
  for (const path of ['/hang', '/hang-plain']) {
    await (async () => {
      const res = await pool.request(`${base}${path}`);
      void res.body;
    })();
    let active = 1;
    for (let i = 0; i < 100 && active > 0; i++) {
      gc();
      await sleep(20);
      active = (await pool.stats()).activeStreams;
    }
    assert.equal(active, 0, `${path}: the dropped body was collected and its stream freed`);
  }
  await pool.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await leaks.check(pool);
});
