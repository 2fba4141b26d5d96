/**
 * The client side of the interop cases: pools aimed at one server (or the proxy in front of it),
 * requests whose bodies are checked by hash, and the QUIC connection behind a pool for the facts
 * no public API reports (Retry packets seen, 0-RTT used, the peer's stream limit).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool, type ConnectionPoolOptions, HttpVersion, type Response } from '../../src/index.js';
import type { H3Connection } from '../../src/protocol/h3/connection.js';
import type { QuicConnection } from '../../src/quic/index.js';
import { type Fixture, sha256 } from './targets.js';

/** Thrown by a case whose peer cannot do what it tests: the cell says why instead of pass or fail. */
export class Unsupported extends Error {}

/** A failed pass rule. */
export class CheckFailed extends Error {}

export function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new CheckFailed(what);
}

export interface Endpoint {
  /** The IP the client sends to (the server, or the proxy in front of it). */
  host: string;
  port: number;
  caCert: string;
}

/**
 * A pool that reaches `endpoint` for `https://localhost:PORT`: every server's certificate covers
 * localhost, and Caddy answers a handshake without SNI (an IP-literal URL) with an alert.
 */
export function poolFor(endpoint: Endpoint, extra: ConnectionPoolOptions = {}): ConnectionPool {
  const family = endpoint.host.includes(':') ? 6 : 4;
  return new ConnectionPool({
    tls: { ca: endpoint.caCert },
    resolver: () => Promise.resolve([{ address: endpoint.host, family }]),
    ...extra,
  });
}

/** Runs `use` with `pool` and closes the pool afterwards, whatever `use` did. */
export async function withPool<T>(pool: ConnectionPool, use: (pool: ConnectionPool) => Promise<T>): Promise<T> {
  try {
    return await use(pool);
  } finally {
    await pool.close();
  }
}

export function urlFor(endpoint: Endpoint, path: string): string {
  return `https://localhost:${endpoint.port}/${path}`;
}

export interface Fetched {
  res: Response;
  bytes: Buffer;
  ms: number;
}

/** GETs a fixture file and checks status, protocol, length and hash. */
export async function fetchChecked(
  pool: ConnectionPool,
  endpoint: Endpoint,
  fixture: Fixture,
  name: string,
  version: HttpVersion = HttpVersion.Http3Only,
): Promise<Fetched> {
  const started = performance.now();
  const res = await pool.request(urlFor(endpoint, name), { version });
  const bytes = Buffer.from(await res.bytes());
  const ms = performance.now() - started;
  checkBody(res, bytes, fixture, name, version);
  return { res, bytes, ms };
}

export function checkBody(res: Response, bytes: Uint8Array, fixture: Fixture, name: string, version: HttpVersion): void {
  check(res.status === 200, `${name}: status ${res.status}`);
  const protocol = version === HttpVersion.Http3Only ? 'h3' : 'h2';
  check(res.protocol === protocol, `${name}: protocol ${res.protocol}, expected ${protocol}`);
  const expected = fixture.files.get(name);
  check(expected !== undefined, `${name} is not in the fixture`);
  check(bytes.length === expected.length, `${name}: ${bytes.length} bytes, expected ${expected.length}`);
  check(sha256(bytes) === fixture.hashes.get(name), `${name}: the body's SHA-256 differs`);
}

/** The QUIC connection the pool holds for an endpoint (dials one if there is none). */
export async function quicOf(pool: ConnectionPool, endpoint: Endpoint): Promise<QuicConnection> {
  const key = pool.keyFor(urlFor(endpoint, ''));
  const entry = await pool.getOrCreate(key, HttpVersion.Http3Only);
  check(entry !== undefined, 'no HTTP/3 connection in the pool');
  check(entry.connection.protocol === 'h3', `the pooled connection speaks ${entry.connection.protocol}`);
  const quic = (entry.connection as H3Connection).quic;
  await pool.release(entry);
  return quic;
}

/** Polls, bounded in count and time, for a peer's packet (a ticket, a close). */
export async function until(done: () => boolean | Promise<boolean>, what: string, limitMs = 5000): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (await done()) return;
    await sleep(10);
  }
  throw new CheckFailed(`gave up waiting for ${what}`);
}

/**
 * Reads a response body chunk by chunk, calling `onFirstChunk` once the first bytes arrived (to
 * break or move the path mid-transfer). Rejects with what the body stream failed with.
 */
export async function readWithHook(res: Response, onFirstChunk: () => void): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let first = true;
  for await (const chunk of res.body) {
    chunks.push(Buffer.from(chunk as Uint8Array));
    if (first) {
      first = false;
      onFirstChunk();
    }
  }
  return Buffer.concat(chunks);
}
