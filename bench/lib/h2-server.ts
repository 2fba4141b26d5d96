/**
 * The benchmark's HTTP/2 server: `node:http2` over TLS (ALPN h2 only), run in its own process
 * (pinned to one core when taskset exists) so clients and server do not share a CPU. It reads
 * its key and certificate from the paths given as arguments, answers every stream with a small
 * fixed body, and reports its port to the parent over IPC.
 */
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

const [keyPath, certPath] = process.argv.slice(2);
if (keyPath === undefined || certPath === undefined) throw new Error('usage: h2-server.js KEY CERT');

const body = Buffer.from('hello world\n');
const responseHeaders = { ':status': 200, 'content-type': 'text/plain', 'content-length': body.length };
const server = http2.createSecureServer({
  key: readFileSync(keyPath),
  cert: readFileSync(certPath),
  // More streams than the highest concurrency any client runs on its one session.
  settings: { maxConcurrentStreams: 1000 },
});
const sessions = new Set<http2.ServerHttp2Session>();
server.on('session', (session: http2.ServerHttp2Session) => {
  sessions.add(session);
  session.on('error', () => {});
  session.on('close', () => sessions.delete(session));
});
server.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.resume();
  stream.respond(responseHeaders);
  stream.end(body);
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
