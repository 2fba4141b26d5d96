/**
 * The embedded loopback server used by the CLI demo, `muxpool serve`, tests and benchmarks:
 * HTTP/1.1 and HTTP/2 over TLS on a TCP port (ALPN picks), HTTP/3 on the same port number over
 * UDP, and cleartext HTTP/1.1 (and HTTP/2 prior knowledge) on a second port. TCP responses
 * advertise the HTTP/3 endpoint in Alt-Svc (RFC 7838), as real servers do.
 *
 * Routes: `/` a short greeting naming the protocol, `/echo` the request body back, `/bytes/N`
 * N bytes, `/gzip/N` N bytes gzip-encoded, `/redirect/N` N redirects before `/`, `/delay/MS` an
 * answer after MS milliseconds (capped), `/status/CODE` an empty response, `/client-cert` the subject of the client's certificate.
 */
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { type GeneratedCertificates, generateCertificates } from './certs.js';
import { H3Server } from './h3.js';

export interface EmbeddedServerOptions {
  host?: string;
  /** TLS port (TCP, and UDP for HTTP/3); 0 picks a free one. The cleartext port is always picked freely. */
  port?: number;
  certificates?: GeneratedCertificates;
  /** Serve HTTP/3 too (default true). Without the QUIC binding it is left out with a warning. */
  http3?: boolean;
  /**
   * Require a client certificate issued by this CA (PEM) on HTTP/1.1, HTTP/2 and HTTP/3 alike:
   * a client without one, or with one this CA did not issue, fails the TLS handshake.
   * `/client-cert` answers with the subject of the certificate a client presented.
   */
  clientCa?: string;
}

export interface EmbeddedServer {
  /** `https://localhost:PORT`: HTTP/1.1 and HTTP/2 over TCP, HTTP/3 over UDP. */
  httpsUrl: string;
  /** `http://127.0.0.1:PORT` */
  httpUrl: string;
  /** The CA that signed the server's certificate: trust it to verify the server. */
  caCert: string;
  /** Whether HTTP/3 is served (UDP on the TLS port). */
  http3: boolean;
  /** Why HTTP/3 is not served, when it is not. */
  http3Error: string | undefined;
  close(): Promise<void>;
}

/** The parts of node:http, node:http2 compat and our HTTP/3 request the routes use. */
interface RequestLike extends Readable {
  url?: string | undefined;
  headers: http.IncomingHttpHeaders;
  httpVersion: string;
  /** HTTP/3 requests: the client's certificates (HTTP/1.1 and HTTP/2 have `socket`). */
  peerCertificates?: () => Buffer[];
  socket?: unknown;
}

/** The subject of the client certificate a request came with, or 'none'. */
function clientSubject(req: RequestLike): string {
  if (req.peerCertificates !== undefined) {
    const leaf = req.peerCertificates()[0];
    return leaf === undefined ? 'none' : new X509Certificate(leaf).subject;
  }
  const socket = req.socket as { getPeerX509Certificate?: () => X509Certificate | undefined } | undefined;
  return socket?.getPeerX509Certificate?.()?.subject ?? 'none';
}

interface ResponseLike {
  statusCode: number;
  setHeader(name: string, value: string | number): unknown;
  end(chunk?: string | Uint8Array): unknown;
}

const MAX_DELAY_MS = 10_000;
const MAX_BYTES = 64 * 1024 * 1024;

function handle(req: RequestLike, res: ResponseLike & NodeJS.WritableStream): void {
  const url = req.url ?? '/';
  if (url === '/client-cert') {
    req.resume();
    res.setHeader('content-type', 'text/plain');
    res.end(`${clientSubject(req)}\n`);
    return;
  }
  if (url === '/echo') {
    res.setHeader('content-type', req.headers['content-type'] ?? 'application/octet-stream');
    req.pipe(res as NodeJS.WritableStream);
    return;
  }
  const bytes = /^\/bytes\/(\d+)$/.exec(url);
  if (bytes !== null) {
    const n = Math.min(Number(bytes[1]), MAX_BYTES);
    res.setHeader('content-length', n);
    res.end(Buffer.alloc(n, 120));
    return;
  }
  const gzip = /^\/gzip\/(\d+)$/.exec(url);
  if (gzip !== null) {
    const encoded = gzipSync(Buffer.alloc(Math.min(Number(gzip[1]), MAX_BYTES), 120));
    res.setHeader('content-encoding', 'gzip');
    res.setHeader('content-length', encoded.length);
    res.end(encoded);
    return;
  }
  const redirect = /^\/redirect\/(\d+)$/.exec(url);
  if (redirect !== null) {
    const left = Math.min(Number(redirect[1]), 50);
    res.statusCode = 302;
    res.setHeader('location', left > 1 ? `/redirect/${left - 1}` : '/');
    res.end();
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

/** Tries to bind HTTP/3 to the TCP port's number; reports why not instead of failing the server. */
async function listenH3(
  certs: GeneratedCertificates,
  host: string,
  port: number,
  clientCa: string | undefined,
): Promise<{ server?: H3Server; error?: string }> {
  try {
    const server = await H3Server.listen({
      cert: certs.leafCert,
      key: certs.leafKey,
      ...(clientCa !== undefined ? { clientCa } : {}),
      host,
      port,
      handler: (req, res) => handle(req, res as unknown as ResponseLike & NodeJS.WritableStream),
    });
    return { server };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

export async function startEmbeddedServer(options: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const host = options.host ?? '127.0.0.1';
  const certs = options.certificates ?? (await generateCertificates());
  const onRequest = (req: http2.Http2ServerRequest | http.IncomingMessage, res: http2.Http2ServerResponse | http.ServerResponse): void => {
    if (altSvc !== undefined) res.setHeader('alt-svc', altSvc);
    handle(req as RequestLike, res as unknown as ResponseLike & NodeJS.WritableStream);
  };
  let altSvc: string | undefined;
  // maxSessionMemory: /bytes/N answers with one buffer of up to 64 MiB; under Node's default
  // (10 MB) a few of those cancelled at once make the session refuse streams with
  // ENHANCE_YOUR_CALM (found by the soak), which is the server's limit, not the client's doing.
  const clientAuth = options.clientCa !== undefined ? { requestCert: true, rejectUnauthorized: true, ca: options.clientCa } : {};
  const tlsServer = http2.createSecureServer(
    { key: certs.leafKey, cert: certs.leafCert, allowHTTP1: true, maxSessionMemory: 256, ...clientAuth },
    onRequest,
  );
  const plainServer = http.createServer(onRequest);
  plainServer.keepAliveTimeout = 30_000;
  tlsServer.setTimeout(0);
  tlsServer.listen(options.port ?? 0, host);
  plainServer.listen(0, host);
  await Promise.all([once(tlsServer, 'listening'), once(plainServer, 'listening')]);
  const tlsPort = (tlsServer.address() as AddressInfo).port;
  const plainPort = (plainServer.address() as AddressInfo).port;
  const h3 = options.http3 === false ? { error: 'HTTP/3 turned off' } : await listenH3(certs, host, tlsPort, options.clientCa);
  if (h3.server !== undefined) altSvc = `h3=":${tlsPort}"; ma=86400`;
  // Sessions are tracked so close() does not wait for clients that keep theirs open.
  const sessions = new Set<http2.ServerHttp2Session>();
  tlsServer.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  const sockets = new Set<Socket>();
  tlsServer.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return {
    httpsUrl: `https://localhost:${tlsPort}`,
    httpUrl: `http://${host.includes(':') ? `[${host}]` : host}:${plainPort}`,
    caCert: certs.caCert,
    http3: h3.server !== undefined,
    http3Error: h3.error,
    async close() {
      plainServer.closeAllConnections();
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => tlsServer.close(() => resolve())),
        new Promise<void>((resolve) => plainServer.close(() => resolve())),
        h3.server?.close(),
      ]);
    },
  };
}
