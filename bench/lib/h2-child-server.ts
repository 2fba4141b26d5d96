/**
 * What the benchmarks' HTTP/2 server processes share: `node:http2` over TLS (ALPN h2 only) with
 * the key and certificate read from the paths given as arguments, every session tracked, the
 * port reported to the parent over IPC once listening on loopback, and a clean exit on the
 * parent's `stop` message (sessions destroyed first, so close() does not wait on open ones).
 */
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

/** Starts the server; `usage` is the script's name for the error when the arguments are missing. */
export function serveH2ChildProcess(
  usage: string,
  options: Omit<http2.SecureServerOptions, 'key' | 'cert'>,
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): void {
  const [keyPath, certPath] = process.argv.slice(2);
  if (keyPath === undefined || certPath === undefined) throw new Error(`usage: ${usage} KEY CERT`);
  const server = http2.createSecureServer({ ...options, key: readFileSync(keyPath), cert: readFileSync(certPath) });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on('error', () => {});
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.resume();
    onStream(stream, headers);
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
}
