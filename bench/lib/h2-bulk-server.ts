/**
 * The bulk benchmark's HTTP/2 server: `node:http2` over TLS (ALPN h2 only) in its own process
 * (pinned to core 0 when taskset exists), answering `/bulk/N` with the first N bytes of one
 * buffer allocated at start (256 MiB), so no request costs a file read or an allocation. Its
 * receive windows are large (it only receives requests; they matter for nothing else), and it
 * sends whatever the client's windows allow. Reads its key and certificate from the paths
 * given as arguments and reports its port to the parent over IPC.
 */
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

const [keyPath, certPath] = process.argv.slice(2);
if (keyPath === undefined || certPath === undefined) throw new Error('usage: h2-bulk-server.js KEY CERT');

const BULK_MAX_BYTES = 256 * 1024 * 1024;
// Random-looking but cheap: a repeating pattern is as costly to encrypt as random bytes.
const payload = Buffer.allocUnsafe(BULK_MAX_BYTES);
for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);

const server = http2.createSecureServer({
  key: readFileSync(keyPath),
  cert: readFileSync(certPath),
  settings: { maxConcurrentStreams: 1000, initialWindowSize: 16 * 1024 * 1024, maxFrameSize: 1024 * 1024 - 1 },
  // node:http2 counts the body bytes queued for sending against this (10 MB by default) and
  // refuses streams beyond it (RST_STREAM ENHANCE_YOUR_CALM): 16 queued 16 MiB bodies need more.
  maxSessionMemory: 1024,
});
const sessions = new Set<http2.ServerHttp2Session>();
server.on('session', (session: http2.ServerHttp2Session) => {
  sessions.add(session);
  session.on('error', () => {});
  session.on('close', () => sessions.delete(session));
});
server.on('stream', (stream, headers) => {
  stream.on('error', () => {});
  stream.resume();
  const match = /^\/bulk\/(\d+)$/.exec(headers[':path'] ?? '');
  const length = match === null ? 0 : Math.min(Number(match[1]), BULK_MAX_BYTES);
  stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'content-length': length });
  stream.end(payload.subarray(0, length));
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on('message', (msg) => {
  if (msg === 'stop') {
    for (const session of sessions) session.destroy();
    server.close(() => process.exit(0));
  }
});
