/**
 * The embedded loopback server used by the CLI demo, `muxpool serve`, tests and benchmarks.
 * Today it speaks HTTP/1.1 over TLS (and cleartext on a second port); HTTP/2 and HTTP/3 join
 * it on the same port number as the pool learns them.
 *
 * Routes: `/` a short greeting, `/echo` the request body back, `/bytes/N` N bytes,
 * `/delay/MS` an answer after MS milliseconds (capped), `/status/CODE` an empty response.
 */
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { type GeneratedCertificates, generateCertificates } from './certs.js';

export interface EmbeddedServerOptions {
  host?: string;
  /** TLS port; 0 picks a free one. The cleartext port is always picked freely. */
  port?: number;
  certificates?: GeneratedCertificates;
}

export interface EmbeddedServer {
  /** `https://localhost:PORT` */
  httpsUrl: string;
  /** `http://127.0.0.1:PORT` */
  httpUrl: string;
  /** The CA that signed the server's certificate: trust it to verify the server. */
  caCert: string;
  close(): Promise<void>;
}

const MAX_DELAY_MS = 10_000;
const MAX_BYTES = 64 * 1024 * 1024;

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url ?? '/';
  if (url === '/echo') {
    res.setHeader('content-type', req.headers['content-type'] ?? 'application/octet-stream');
    req.pipe(res);
    return;
  }
  const bytes = /^\/bytes\/(\d+)$/.exec(url);
  if (bytes !== null) {
    const n = Math.min(Number(bytes[1]), MAX_BYTES);
    res.setHeader('content-length', n);
    res.end(Buffer.alloc(n, 120));
    return;
  }
  const delay = /^\/delay\/(\d+)$/.exec(url);
  if (delay !== null) {
    setTimeout(() => res.end('late hello\n'), Math.min(Number(delay[1]), MAX_DELAY_MS));
    return;
  }
  const status = /^\/status\/([1-5]\d\d)$/.exec(url);
  if (status !== null) {
    res.statusCode = Number(status[1]);
    res.end();
    return;
  }
  req.resume();
  res.setHeader('content-type', 'text/plain');
  res.end(`hello from muxpool's embedded server over HTTP/${req.httpVersion}\n`);
}

export async function startEmbeddedServer(options: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const host = options.host ?? '127.0.0.1';
  const certs = options.certificates ?? (await generateCertificates());
  const tlsServer = https.createServer({ key: certs.leafKey, cert: certs.leafCert, ALPNProtocols: ['http/1.1'] }, handle);
  const plainServer = http.createServer(handle);
  tlsServer.keepAliveTimeout = plainServer.keepAliveTimeout = 30_000;
  tlsServer.listen(options.port ?? 0, host);
  plainServer.listen(0, host);
  await Promise.all([once(tlsServer, 'listening'), once(plainServer, 'listening')]);
  const tlsPort = (tlsServer.address() as AddressInfo).port;
  const plainPort = (plainServer.address() as AddressInfo).port;
  return {
    httpsUrl: `https://localhost:${tlsPort}`,
    httpUrl: `http://${host.includes(':') ? `[${host}]` : host}:${plainPort}`,
    caCert: certs.caCert,
    async close() {
      tlsServer.closeAllConnections();
      plainServer.closeAllConnections();
      await Promise.all([
        new Promise<void>((resolve) => tlsServer.close(() => resolve())),
        new Promise<void>((resolve) => plainServer.close(() => resolve())),
      ]);
    },
  };
}
