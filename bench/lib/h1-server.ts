/**
 * The benchmark's HTTP/1.1 server, run in its own process (pinned to one core when taskset
 * exists) so clients and server do not share a CPU. It answers every request with a small
 * fixed body and reports its port to the parent over IPC. With `KEY CERT` arguments it serves
 * HTTPS (HTTP/1.1 only: no h2 in ALPN).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

const body = Buffer.from('hello world\n');
const handler: http.RequestListener = (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
};
const [keyPath, certPath] = process.argv.slice(2);
const server =
  keyPath !== undefined && certPath !== undefined
    ? https.createServer({ key: readFileSync(keyPath), cert: readFileSync(certPath) }, handler)
    : http.createServer(handler);
server.keepAliveTimeout = 60_000;
server.maxRequestsPerSocket = 0;
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on('message', (msg) => {
  if (msg === 'stop') {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
