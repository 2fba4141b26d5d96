/**
 * Churn: thousands of connections opened and closed through one pool, over HTTP/1.1, HTTP/2 and
 * HTTP/3, with the server ending a third of them first (politely: `Connection: close`, GOAWAY;
 * or abruptly: socket destroyed, QUIC connection closed), the pool closing the rest when idle.
 * The server runs in a child process, so every socket and timer made in this process is the
 * pool's; an async_hooks tracker counts them from creation (idle sockets and the pool's timers
 * are unref'd, so process.getActiveResourcesInfo() alone would not see them) and none may be left
 * once the pool is closed. Every request must succeed: a connection the server closed is never
 * handed out again, or the request is retried. (`maxRetries: 3`: with a third of the requests
 * ending their connection, a request refused by one GOAWAY can be refused by the next
 * connection's too; a refused request is unprocessed, so retrying it is always safe.)
 *
 * `npm test` opens CHURN_CONNECTIONS (default 1 200) connections; the issue's figure is
 * `CHURN_CONNECTIONS=10000 node --test build/test/integration/churn.test.js`.
 */
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConnectionPool, HttpVersion, MuxpoolError, type Resolver } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { formatCounts, trackHandles } from '../helpers/handle-tracker.js';

const TARGET = Number(process.env['CHURN_CONNECTIONS'] ?? 1_200);
/** Requests in flight per protocol. */
const WORKERS = 4;
const PATHS = ['/keep', '/close', '/destroy'] as const;
const PROTOCOLS = [
  { name: 'http/1.1', version: HttpVersion.Http1_1 },
  { name: 'h2', version: HttpVersion.Http2 },
  { name: 'h3', version: HttpVersion.Http3Only },
] as const;

const loopback: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];

interface ChurnServer {
  origin: string;
  caCert: string;
  stop(): Promise<void>;
}

/** Forks the churn server and waits until it listens. */
async function startChurnServer(t: TestContext): Promise<ChurnServer> {
  const certificates = await generateCertificates({ caName: 'muxpool churn CA' });
  const child = fork(fileURLToPath(new URL('../helpers/churn-server.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  // 'exit', not 'close': after the parent's disconnect() Node does not always emit 'close'.
  const childExited = once(child, 'exit');
  child.send({ cmd: 'start', certificates });
  t.after(() => {
    if (child.connected) child.disconnect();
  });
  const [ready] = (await Promise.race([once(child, 'message'), childExited.then(() => assert.fail('churn server exited'))])) as [{ event: string; port: number; message?: string }];
  assert.equal(ready.event, 'ready', ready.message);
  return {
    origin: `https://localhost:${ready.port}`,
    caCert: certificates.caCert,
    async stop() {
      if (child.connected) child.disconnect();
      await childExited;
    },
  };
}

test('the handle tracker sees the idle, unref\'d connections of a live pool, and their end', async (t) => {
  const server = await startChurnServer(t);
  const tracker = trackHandles();
  const pool = new ConnectionPool({ tls: { ca: server.caCert }, resolver: loopback });
  for (const { version } of PROTOCOLS) await (await pool.request(`${server.origin}/keep`, { version })).text();
  // Three idle connections: the pool keeps them without holding the process open.
  const live = tracker.live();
  assert.ok((live['TCPWRAP'] ?? 0) >= 2 && (live['TLSWRAP'] ?? 0) >= 2 && (live['UDPWRAP'] ?? 0) >= 1, `tracked: ${formatCounts(live)}`);
  await pool.close();
  const left = await tracker.settle(5_000);
  tracker.stop();
  await server.stop();
  assert.deepEqual(left, {}, `left after close: ${formatCounts(left)}`);
});

test(`churn: ${TARGET} connections over three protocols, servers closing a third first: every request succeeds, no handle left`, { timeout: Math.max(60_000, TARGET * 30) }, async (t) => {
  const server = await startChurnServer(t);
  const origin = server.origin;

  const dialed = new Map<string, number>();
  const onDialEnd = (message: unknown): void => {
    const { protocol, error } = message as { protocol?: string; error?: unknown };
    if (protocol !== undefined && error === undefined) dialed.set(protocol, (dialed.get(protocol) ?? 0) + 1);
  };
  subscribe('muxpool:dial:end', onDialEnd);

  const tracker = trackHandles();
  // maxIdleMs 1: a connection the server keeps is closed by the pool as soon as it idles,
  // unless the next request takes it first (both happen).
  const pool = new ConnectionPool({ tls: { ca: server.caCert }, resolver: loopback, maxPerHost: 4, maxIdleMs: 1, maxRetries: 3, connectTimeoutMs: 10_000, readTimeoutMs: 10_000 });
  const failures = new Map<string, number>();
  let requests = 0;
  const perProtocol = Math.ceil(TARGET / PROTOCOLS.length);
  try {
    await Promise.all(
      PROTOCOLS.flatMap(({ name, version }) =>
        Array.from({ length: WORKERS }, async (_, worker) => {
          for (let i = worker; (dialed.get(name) ?? 0) < perProtocol; i += WORKERS) {
            const path = PATHS[i % PATHS.length] as string;
            requests++;
            try {
              const res = await pool.request(origin + path, { version, timeoutMs: 10_000 });
              const text = await res.text();
              if (res.status !== 200 || text !== 'churn\n' || res.protocol !== name) throw new Error(`${res.status} ${res.protocol} ${JSON.stringify(text)}`);
            } catch (err) {
              const key = `${name} ${path}: ${err instanceof MuxpoolError ? err.code : String(err)}`;
              failures.set(key, (failures.get(key) ?? 0) + 1);
            }
          }
        }),
      ),
    );
  } finally {
    unsubscribe('muxpool:dial:end', onDialEnd);
  }
  const stats = await pool.stats();
  await pool.close();
  const left = await tracker.settle(5_000);
  tracker.stop();
  await server.stop();

  const total = [...dialed.values()].reduce((sum, n) => sum + n, 0);
  t.diagnostic(`${requests} requests, ${total} connections (${[...dialed].map(([p, n]) => `${p} ${n}`).join(', ')}); pool dialed ${stats.dialed}, closed ${stats.closed} before close()`);
  t.diagnostic(`handles made: ${formatCounts(tracker.created())}; left: ${formatCounts(left)}`);
  assert.ok(total >= TARGET, `only ${total} connections opened`);
  for (const { name } of PROTOCOLS) assert.ok((dialed.get(name) ?? 0) >= perProtocol, `${name}: ${dialed.get(name) ?? 0} connections`);
  assert.deepEqual(Object.fromEntries(failures), {}, 'failed requests');
  assert.deepEqual(left, {}, `handles left behind: ${formatCounts(left)}`);
});
