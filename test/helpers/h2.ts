/**
 * `node:http2` servers for tests (TLS with ALPN h2, or cleartext for prior knowledge), and a TCP
 * proxy that can go silent on demand: a peer that stops answering without closing anything.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import type { GeneratedCertificates } from '../../src/server/certs.js';

export type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, session: http2.ServerHttp2Session) => void;

export interface H2TestServer {
  server: http2.Http2SecureServer | http2.Http2Server;
  port: number;
  /** `https://localhost:PORT` (or `http://127.0.0.1:PORT` in cleartext). */
  url: string;
  /** Sessions accepted so far. */
  readonly sessionCount: number;
  /** Streams received so far. */
  readonly streamCount: number;
  readonly sessions: Set<http2.ServerHttp2Session>;
  close(): Promise<void>;
}

export interface H2ServerOptions {
  certs?: GeneratedCertificates;
  settings?: http2.Settings;
  /** Serve HTTP/1.1 too on the TLS port (ALPN picks). */
  allowHTTP1?: boolean;
  host?: string;
}

export async function startH2Server(onStream: StreamListener, options: H2ServerOptions = {}): Promise<H2TestServer> {
  const serverOptions = { settings: options.settings ?? {}, allowHTTP1: options.allowHTTP1 ?? false };
  const server =
    options.certs !== undefined
      ? http2.createSecureServer({ ...serverOptions, key: options.certs.leafKey, cert: options.certs.leafCert })
      : http2.createServer(serverOptions);
  const state = { sessions: 0, streams: 0 };
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session: http2.ServerHttp2Session) => {
    state.sessions++;
    sessions.add(session);
    session.on('error', () => {});
    session.on('close', () => sessions.delete(session));
  });
  if (options.allowHTTP1 === true) {
    // HTTP/1.1 requests reach only the compatibility 'request' event (h2 streams also do, so
    // answer just the HTTP/1.x ones): say which protocol served them.
    server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      if (req.httpVersionMajor !== 1) return;
      state.streams++;
      res.setHeader('content-type', 'text/plain');
      res.end(`http/1.1 ${req.headers.host ?? ''}`);
    });
  }
  server.on('stream', (stream, headers) => {
    state.streams++;
    stream.on('error', () => {});
    onStream(stream, headers, stream.session as http2.ServerHttp2Session);
  });
  const host = options.host ?? '127.0.0.1';
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    url: options.certs !== undefined ? `https://localhost:${port}` : `http://127.0.0.1:${port}`,
    get sessionCount() {
      return state.sessions;
    },
    get streamCount() {
      return state.streams;
    },
    sessions,
    async close() {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Answers 200 with `body` (default: the path). */
export function respondText(stream: http2.ServerHttp2Stream, body: string, status = 200): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond({ ':status': status, 'content-type': 'text/plain' });
  stream.end(body);
}

export interface SilentProxy {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** From now on, connections open at this moment forward nothing in either direction. */
  silenceExisting(): void;
  close(): Promise<void>;
}

/** A TCP proxy to `targetPort` on loopback. */
export async function startSilentProxy(targetPort: number): Promise<SilentProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; silent: boolean }>();
  let connections = 0;
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream, silent: false };
    pairs.add(pair);
    client.on('data', (chunk) => {
      if (!pair.silent) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!pair.silent) client.write(chunk);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    silenceExisting() {
      for (const pair of pairs) pair.silent = true;
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
