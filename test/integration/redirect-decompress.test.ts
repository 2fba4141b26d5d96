/**
 * request() defaults that fetch, got, OkHttp and Go users expect: redirects followed (with the
 * method, body and credential rules), compressed bodies decoded as they stream. Real servers
 * on loopback, two origins for the cross-origin rules.
 */
import assert from 'node:assert/strict';
import events from 'node:events';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { ConnectionPool, HttpVersion } from '../../src/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { leakCheck } from '../helpers/leaks.js';
import { startHttpServer } from '../helpers/servers.js';

interface Seen {
  method: string;
  url: string;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

async function startRecorder(route: (seen: Seen, res: ServerResponse) => void) {
  const seen: Seen[] = [];
  const server = await startHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString(), headers: req.headers };
      seen.push(s);
      route(s, res);
    });
  });
  return { server, seen };
}

test('redirects: followed by default; 303 and 301/302 after POST become GET without a body; 307/308 keep method and body; res.url and res.redirected', async () => {
  const leaks = leakCheck();
  const { server, seen } = await startRecorder((s, res) => {
    const m = /^\/(\d{3})(\/.*)?$/.exec(s.url);
    if (m !== null) {
      res.writeHead(Number(m[1]), { location: m[2] ?? '/final', 'content-type': 'text/plain' });
      res.end('moved');
      return;
    }
    res.end(`${s.method} ${s.url} body=${s.body} type=${String(s.headers['content-type'] ?? '')}`);
  });
  const pool = new ConnectionPool();
  try {
    const cases: Array<[number, string, string]> = [
      [301, 'POST', 'GET /final body= type='],
      [302, 'POST', 'GET /final body= type='],
      [303, 'PUT', 'GET /final body= type='],
      [307, 'POST', 'POST /final body=payload type=text/x-test'],
      [308, 'PUT', 'PUT /final body=payload type=text/x-test'],
      [302, 'PUT', 'PUT /final body=payload type=text/x-test'],
    ];
    for (const [status, method, expected] of cases) {
      const res = await pool.request(`${server.url}/${status}`, { method, body: 'payload', headers: { 'content-type': 'text/x-test' } });
      assert.equal(await res.text(), expected, `${status} after ${method}`);
      assert.equal(res.redirected, true);
      assert.equal(res.url, `${server.url}/final`);
    }
    const manual = await pool.request(`${server.url}/302`, { redirect: 'manual' });
    assert.equal(manual.status, 302);
    assert.equal(manual.headers.location, '/final');
    assert.equal(manual.redirected, false);
    await manual.dump();
    await rejectsWith(pool.request(`${server.url}/302`, { redirect: 'error' }), 'MUXPOOL_ERR_REDIRECT');
    const plain = await pool.request(`${server.url}/final`);
    assert.equal(plain.redirected, false);
    await plain.dump();
    assert.ok(seen.length >= 14);
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('redirects: too many hops and loops end typed; a one-shot stream body is not sent twice; relative and chained Locations', async () => {
  const leaks = leakCheck();
  const { server } = await startRecorder((s, res) => {
    const hop = /^\/hop\/(\d+)$/.exec(s.url);
    if (hop !== null) {
      const n = Number(hop[1]);
      res.writeHead(302, { location: n > 0 ? `/hop/${n - 1}` : 'final?q=1' });
      res.end();
      return;
    }
    if (s.url === '/loop') {
      res.writeHead(307, { location: '/loop' });
      res.end();
      return;
    }
    if (s.url === '/307') {
      res.writeHead(307, { location: '/final' });
      res.end();
      return;
    }
    res.end(`${s.method} ${s.url}`);
  });
  const pool = new ConnectionPool();
  try {
    const chained = await pool.request(`${server.url}/hop/5`);
    assert.equal(await chained.text(), 'GET /hop/final?q=1', 'a relative Location resolves against the last URL');
    await rejectsWith(pool.request(`${server.url}/hop/5`, { maxRedirects: 3 }), 'MUXPOOL_ERR_TOO_MANY_REDIRECTS');
    await rejectsWith(pool.request(`${server.url}/loop`), 'MUXPOOL_ERR_TOO_MANY_REDIRECTS');
    await rejectsWith(pool.request(`${server.url}/307`, { method: 'POST', body: Readable.from(['one-shot']) }), 'MUXPOOL_ERR_REDIRECT');
    await rejectsWith(pool.request(`${server.url}/`, { redirect: 'sideways' as never }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
    await rejectsWith(pool.request(`${server.url}/`, { maxRedirects: -1 }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
    assert.equal((await pool.stats()).activeStreams, 0, 'every redirect body was freed');
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('a redirect to another origin drops authorization, cookie, proxy-authorization and a custom Host; the same origin keeps them', async () => {
  const leaks = leakCheck();
  const other = await startRecorder((s, res) => res.end(JSON.stringify(s.headers)));
  const first = await startRecorder((s, res) => {
    if (s.url === '/away') res.writeHead(302, { location: `${other.server.url}/landed` });
    else if (s.url === '/here') res.writeHead(302, { location: '/landed' });
    else {
      res.end(JSON.stringify(s.headers));
      return;
    }
    res.end();
  });
  const pool = new ConnectionPool();
  const secrets = { authorization: 'Bearer s3cret', cookie: 'sid=1', 'proxy-authorization': 'Basic eA==', 'x-keep': 'yes' };
  try {
    const away = await (await pool.request(`${first.server.url}/away`, { headers: secrets })).json<Record<string, string>>();
    assert.equal(away.authorization, undefined);
    assert.equal(away.cookie, undefined);
    assert.equal(away['proxy-authorization'], undefined);
    assert.equal(away['x-keep'], 'yes');
    const here = await (await pool.request(`${first.server.url}/here`, { headers: secrets })).json<Record<string, string>>();
    assert.equal(here.authorization, 'Bearer s3cret');
    assert.equal(here.cookie, 'sid=1');
    // A caller's own Host (a virtual host) follows hops on the origin, never to another one.
    const vhost = { ...secrets, host: 'vhost.example' };
    const hereHost = await (await pool.request(`${first.server.url}/here`, { headers: vhost })).json<Record<string, string>>();
    assert.equal(hereHost.host, 'vhost.example');
    const awayHost = await (await pool.request(`${first.server.url}/away`, { headers: vhost })).json<Record<string, string>>();
    assert.equal(awayHost.host, new URL(other.server.url).host);
  } finally {
    await pool.close();
    await first.server.close();
    await other.server.close();
  }
  await leaks.check(pool);
});

test('decompression: accept-encoding sent unless set; gzip, deflate, br and stacked codings decoded as a stream; unknown left alone; corrupt fails typed; decompress: false gives the bytes as sent', async () => {
  const leaks = leakCheck();
  const text = 'muxpool '.repeat(20_000);
  const encoded: Record<string, Buffer> = {
    gzip: zlib.gzipSync(text),
    deflate: zlib.deflateSync(text),
    br: zlib.brotliCompressSync(text),
    'gzip, br': zlib.brotliCompressSync(zlib.gzipSync(text)),
  };
  let lastAcceptEncoding: string | undefined;
  const server = await startHttpServer((req, res) => {
    lastAcceptEncoding = req.headers['accept-encoding'];
    const coding = decodeURIComponent((req.url ?? '/').slice(1));
    if (coding === 'corrupt') {
      res.writeHead(200, { 'content-encoding': 'gzip' });
      // A damaged gzip header: not a gzip stream at all.
      const damaged = Buffer.from(encoded.gzip as Buffer);
      damaged[0] = 0x00;
      res.end(damaged);
      return;
    }
    if (coding === 'unknown') {
      res.writeHead(200, { 'content-encoding': 'x-custom' });
      res.end('raw bytes');
      return;
    }
    res.writeHead(200, { 'content-encoding': coding });
    res.end(encoded[coding]);
  });
  const pool = new ConnectionPool();
  try {
    for (const coding of Object.keys(encoded)) {
      const res = await pool.request(`${server.url}/${encodeURIComponent(coding)}`);
      assert.equal(await res.text(), text, coding);
      assert.match(lastAcceptEncoding ?? '', /^gzip, deflate, br/);
    }
    // As a stream with backpressure: read in pieces.
    const streamed = await pool.request(`${server.url}/gzip`);
    let length = 0;
    for await (const chunk of streamed.body) length += (chunk as Buffer).length;
    assert.equal(length, text.length);

    const unknown = await pool.request(`${server.url}/unknown`);
    assert.equal(await unknown.text(), 'raw bytes');
    await rejectsWith(pool.request(`${server.url}/corrupt`).then((r) => r.text()), 'MUXPOOL_ERR_DECODE');

    const raw = await pool.request(`${server.url}/gzip`, { decompress: false });
    assert.deepEqual(await raw.bytes(), encoded.gzip);
    assert.equal(lastAcceptEncoding, undefined, 'decompress: false sends no accept-encoding');
    const own = await pool.request(`${server.url}/br`, { headers: { 'accept-encoding': 'br' } });
    assert.equal(lastAcceptEncoding, 'br', "the caller's accept-encoding is kept");
    assert.equal(await own.text(), text);
    assert.equal((await pool.stats()).activeStreams, 0);
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('decompression and redirects over HTTP/2 and HTTP/3 too (the embedded server)', async () => {
  const { startEmbeddedServer } = await import('../../src/server/embedded.js');
  const leaks = leakCheck();
  const embedded = await startEmbeddedServer();
  const pool = new ConnectionPool({ tls: { ca: embedded.caCert } });
  try {
    for (const version of [HttpVersion.Http2, HttpVersion.Http3Only]) {
      const res = await pool.request(`${embedded.httpsUrl}/gzip/100000`, { version });
      assert.equal(res.headers['content-encoding'], 'gzip');
      assert.equal(res.statusText, 'OK', 'HTTP/2 and HTTP/3 report the standard status text, as HTTP/1.1 servers send it');
      const body = await res.bytes();
      assert.equal(body.length, 100_000, version);
      assert.ok(body.every((b) => b === 120));
      const moved = await pool.request(`${embedded.httpsUrl}/redirect/3`, { version });
      assert.equal(moved.redirected, true);
      assert.equal(moved.url, `${embedded.httpsUrl}/`);
      assert.match(await moved.text(), version === HttpVersion.Http2 ? /HTTP\/2/ : /HTTP\/3/);
    }
  } finally {
    await pool.close();
    await embedded.close();
  }
  await leaks.check(pool);
});

test('a timeout that fires while the next hop waits for a connection ends the request at once', async () => {
  const leaks = leakCheck();
  // Regression: the timer cancelled the previous hop's finished exchange only, then went away;
  // the next hop waited out acquireTimeoutMs with no deadline at all.
  const busy = await startHttpServer(() => {
    /* never answers: holds the only connection to this origin */
  });
  const { server } = await startRecorder((_s, res) => {
    res.writeHead(302, { location: `${busy.url}/next` });
    res.end();
  });
  const pool = new ConnectionPool({ maxPerHost: 1, acquireTimeoutMs: 20_000 });
  try {
    const hog = pool.request(`${busy.url}/hog`).catch((err: unknown) => err);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    await rejectsWith(pool.request(`${server.url}/start`, { timeoutMs: 300 }), 'MUXPOOL_ERR_REQUEST_TIMEOUT');
    assert.ok(performance.now() - started < 5_000, 'ended by timeoutMs, not acquireTimeoutMs');
    await pool.destroy();
    await hog;
  } finally {
    await pool.destroy();
    await busy.close();
    await server.close();
  }
  await leaks.check(pool);
});

test('a body dropped by a 303 is not sent again by a later 307; a bad Location leaves no listener on the caller\'s signal', async () => {
  const leaks = leakCheck();
  const { server } = await startRecorder((s, res) => {
    if (s.url === '/a') res.writeHead(303, { location: '/b' });
    else if (s.url === '/b') res.writeHead(307, { location: '/c' });
    else if (s.url === '/bad') res.writeHead(302, { location: 'ftp://elsewhere/x' });
    else {
      res.end(`${s.method} ${s.url} ${s.body.length} ${String(s.headers['content-type'] ?? '-')}`);
      return;
    }
    res.end();
  });
  const pool = new ConnectionPool();
  try {
    const res = await pool.request(`${server.url}/a`, { method: 'POST', body: 'form=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(await res.text(), 'GET /c 0 -');
    const controller = new AbortController();
    await rejectsWith(pool.request(`${server.url}/bad`, { signal: controller.signal }), 'MUXPOOL_ERR_REDIRECT');
    assert.equal(events.getEventListeners(controller.signal, 'abort').length, 0, 'the request let go of the signal');
  } finally {
    await pool.close();
    await server.close();
  }
  await leaks.check(pool);
});
