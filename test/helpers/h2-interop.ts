/**
 * What the HTTP/2 engine's interop tests share: a 64 MiB payload and its hash, a streamed form of
 * it, a download helper, 1 000 requests on one connection, a hashing upload backend, and the
 * soak with cancellations mixed in.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { Readable } from 'node:stream';
import { type ConnectionPool, HttpVersion, MuxpoolError } from '../../src/index.js';
import { rejectsWith } from './assert.js';
import { recordChannel } from './diagnostics.js';

export const MiB = 1024 * 1024;
export const BIG = randomBytes(64 * MiB);
export const BIG_SHA = createHash('sha256').update(BIG).digest('hex');

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** 64 MiB in chunks of odd sizes, with no declared length. */
export function streamedBig(): AsyncIterable<Uint8Array> {
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < BIG.length; ) {
        const size = Math.min(BIG.length - offset, 100_003);
        yield BIG.subarray(offset, offset + size);
        offset += size;
      }
    })(),
  );
}

export async function download(pool: ConnectionPool, url: string): Promise<{ bytes: Buffer; protocol: string; connectionId: string }> {
  const res = await pool.request(url, { version: HttpVersion.Http2 });
  assert.equal(res.status, 200);
  return { bytes: Buffer.from(await res.arrayBuffer()), protocol: res.protocol, connectionId: res.connectionId };
}

export async function thousandStreams(pool: ConnectionPool, url: (i: number) => string, check: (body: string, i: number) => void): Promise<void> {
  const ids = new Set<string>();
  await Promise.all(
    Array.from({ length: 1000 }, async (_, i) => {
      const res = await pool.request(url(i), { version: HttpVersion.Http2 });
      assert.equal(res.status, 200);
      check(await res.text(), i);
      ids.add(res.connectionId);
    }),
  );
  assert.equal(ids.size, 1, `1 000 requests used ${ids.size} connections`);
}

/** An HTTP/1.1 backend that answers every upload with `<length> <sha256>`. */
export async function startHashBackend(): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
    });
    // No keep-alive towards h2o: its connection to us must not outlive the test (leak check).
    req.on('end', () => res.writeHead(200, { connection: 'close' }).end(`${length} ${hash.digest('hex')}`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

/**
 * Ordinary traffic with cancellations mixed in (1 ms deadlines on 1 MiB responses, aborts
 * mid-body): every request settles as asked, and the server never takes us for an attacker
 * (no GOAWAY, no ENHANCE_YOUR_CALM, one connection throughout).
 */
export async function soak(pool: ConnectionPool, base: string, bigPath: string, smallPath: string, check: (body: string) => void): Promise<void> {
  const goaways = recordChannel('muxpool:goaway');
  const outcomes = { ok: 0, timedOut: 0, aborted: 0 };
  const ids = new Set<string>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < 600) {
      const i = next++;
      if (i % 50 === 7) {
        // A 1 ms deadline: usually it cuts the response; a loaded machine may read the whole of
        // it in one turn of the event loop before the timer runs, and then it is a success.
        try {
          const res = await pool.request(`${base}${bigPath}`, { version: HttpVersion.Http2, timeoutMs: 1 });
          assert.equal((await res.arrayBuffer()).byteLength, MiB);
          outcomes.ok++;
        } catch (err) {
          assert.ok(err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_REQUEST_TIMEOUT', String(err));
          outcomes.timedOut++;
        }
      } else if (i % 37 === 5) {
        const controller = new AbortController();
        const res = await pool.request(`${base}${bigPath}`, { version: HttpVersion.Http2, signal: controller.signal });
        ids.add(res.connectionId);
        const chunks = res.body[Symbol.asyncIterator]();
        await chunks.next();
        controller.abort();
        await rejectsWith(
          (async () => {
            for (let r = await chunks.next(); r.done !== true; r = await chunks.next());
          })(),
          'MUXPOOL_ERR_ABORTED',
        );
        outcomes.aborted++;
      } else {
        const res = await pool.request(`${base}${smallPath}`, { version: HttpVersion.Http2 });
        ids.add(res.connectionId);
        check(await res.text());
        outcomes.ok++;
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  goaways.stop();
  assert.equal(outcomes.ok + outcomes.timedOut + outcomes.aborted, 600);
  assert.ok(outcomes.timedOut >= 1 && outcomes.aborted >= 10, JSON.stringify(outcomes));
  assert.deepEqual(goaways.events, [], 'the server sent GOAWAY');
  assert.equal(ids.size, 1, `served by ${ids.size} connections`);
}

