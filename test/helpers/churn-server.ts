/**
 * The churn test's server, in a child process so the test's handle tracker sees only the
 * client's sockets: HTTP/1.1 and HTTP/2 over TLS (ALPN) and HTTP/3 on the same port number, like
 * the embedded server, with routes that end the connection from the server's side:
 *
 *   /keep      a short answer; the connection stays (the pool closes it when idle)
 *   /close     the server ends the connection politely: HTTP/1.1 `Connection: close`, HTTP/2
 *              GOAWAY (session.close()), HTTP/3 GOAWAY
 *   /destroy   the server drops the connection shortly after the answer: the TCP socket
 *              destroyed (HTTP/1.1, HTTP/2), the QUIC connection closed (HTTP/3)
 *
 * IPC: parent → child `{ cmd: 'start', certificates }`; child → parent `{ event: 'ready', port }`.
 * The child exits when the parent disconnects.
 */
import { once } from 'node:events';
import type http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { GeneratedCertificates } from '../../src/server/certs.js';
import { H3Server, type H3ServerRequest, type H3ServerResponse } from '../../src/server/h3.js';

/** Long enough for the answer's last bytes to leave before the connection goes. */
const DROP_AFTER_MS = 5;

const BODY = 'churn\n';

/** The server-side QUIC connection of an HTTP/3 response (not part of the server's public API). */
interface H3Internals {
  stream: { owner: { quic: { close(code?: number, reason?: string): Promise<unknown> }; sendGoaway(): void } };
}

function onTcpRequest(req: http2.Http2ServerRequest | http.IncomingMessage, res: http2.Http2ServerResponse | http.ServerResponse): void {
  req.resume();
  const url = req.url ?? '/';
  const h2Session = 'stream' in req ? req.stream.session : undefined;
  const socket: Socket | undefined = 'stream' in req ? undefined : (req.socket as Socket);
  if (url === '/close' && h2Session === undefined) res.setHeader('connection', 'close');
  res.setHeader('content-type', 'text/plain');
  res.end(BODY);
  if (url === '/close' && h2Session !== undefined) {
    // RFC 9113 §6.8: GOAWAY naming the last stream processed; streams below it finish.
    res.on('finish', () => h2Session.close());
  } else if (url === '/destroy') {
    res.on('finish', () => {
      setTimeout(() => {
        if (h2Session !== undefined) h2Session.destroy();
        else socket?.destroy();
      }, DROP_AFTER_MS);
    });
  }
}

function onH3Request(req: H3ServerRequest, res: H3ServerResponse): void {
  req.resume();
  const owner = (res as unknown as H3Internals).stream.owner;
  res.setHeader('content-type', 'text/plain');
  res.end(BODY);
  if (req.url === '/close') res.on('finish', () => owner.sendGoaway());
  else if (req.url === '/destroy') {
    // H3_NO_ERROR (0x100): the server closes the connection, RFC 9114 §5.2 / §8.1.
    res.on('finish', () => setTimeout(() => void owner.quic.close(0x100, 'churn'), DROP_AFTER_MS));
  }
}

async function start(certificates: GeneratedCertificates): Promise<void> {
  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<Socket>();
  const tcp = http2.createSecureServer({ key: certificates.leafKey, cert: certificates.leafCert, allowHTTP1: true }, onTcpRequest);
  tcp.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  tcp.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  tcp.setTimeout(0);
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const port = (tcp.address() as AddressInfo).port;
  const h3 = await H3Server.listen({ cert: certificates.leafCert, key: certificates.leafKey, host: '127.0.0.1', port, handler: onH3Request });
  process.send?.({ event: 'ready', port });
  process.on('disconnect', () => {
    for (const session of sessions) session.destroy();
    for (const socket of sockets) socket.destroy();
    tcp.close();
    void h3.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3_000).unref();
  });
}

process.once('message', (message: { cmd: 'start'; certificates: GeneratedCertificates }) => {
  void start(message.certificates).catch((err: unknown) => {
    process.send?.({ event: 'error', message: err instanceof Error ? err.stack : String(err) });
  });
});
