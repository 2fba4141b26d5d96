/**
 * The soak's server process: the embedded server (HTTP/1.1 + HTTP/2 over TLS, HTTP/3 on the same
 * port) in a child process of its own, so the soak's client measures only itself (heap, handles,
 * CPU) and the server can be killed outright. Driven over the IPC channel:
 *
 *   parent → child  { cmd: 'start', port, certificates }   listen (port 0 picks one)
 *                   { cmd: 'goaway' }                      GOAWAY on every HTTP/2 session and HTTP/3 connection
 *                   { cmd: 'restart' }                     close the server, listen again on the same port
 *                   { cmd: 'exit' }                        close and exit
 *   child → parent  { event: 'ready', port, http3, http3Error }  after start and after each restart
 *                   { event: 'done', cmd }                  after goaway
 *
 * The embedded server does not expose its `node:http2` server or its HTTP/3 server, so this
 * script wraps their two factories to keep the instances it needs for GOAWAY.
 */
import http2 from 'node:http2';
import type { GeneratedCertificates } from '../../src/server/certs.js';
import { type EmbeddedServer, startEmbeddedServer } from '../../src/server/embedded.js';
import { H3Server, type H3ServerOptions } from '../../src/server/h3.js';

type Command =
  | { cmd: 'start'; port: number; certificates: GeneratedCertificates }
  | { cmd: 'goaway' }
  | { cmd: 'restart' }
  | { cmd: 'exit' };

const sessions = new Set<http2.ServerHttp2Session>();
let h3Server: H3Server | undefined;

const createSecureServer = http2.createSecureServer.bind(http2);
(http2 as { createSecureServer: typeof http2.createSecureServer }).createSecureServer = ((...args: Parameters<typeof http2.createSecureServer>) => {
  if (process.env["SOAK_H2_SESSION_MEMORY_MB"] !== undefined && typeof args[0] === "object") (args[0] as http2.SecureServerOptions).maxSessionMemory = Number(process.env["SOAK_H2_SESSION_MEMORY_MB"]);
  const server = createSecureServer(...args);
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  return server;
}) as typeof http2.createSecureServer;

const listenH3 = H3Server.listen.bind(H3Server);
(H3Server as { listen: typeof H3Server.listen }).listen = async (options: H3ServerOptions) => {
  h3Server = await listenH3(options);
  return h3Server;
};

let server: EmbeddedServer | undefined;
let port = 0;
let certificates: GeneratedCertificates | undefined;
let exiting = false;

function send(message: object): void {
  process.send?.(message);
}

async function listen(): Promise<void> {
  h3Server = undefined;
  server = await startEmbeddedServer({ port, ...(certificates !== undefined ? { certificates } : {}) });
  port = Number(new URL(server.httpsUrl).port);
  send({ event: 'ready', port, http3: server.http3, http3Error: server.http3Error });
}

async function onCommand(command: Command): Promise<void> {
  switch (command.cmd) {
    case 'start':
      port = command.port;
      certificates = command.certificates;
      await listen();
      return;
    case 'goaway':
      // RFC 9113 §6.8: close() sends GOAWAY naming the last stream processed and lets the
      // streams below it finish; RFC 9114 §5.2 likewise for HTTP/3.
      for (const session of sessions) session.close();
      h3Server?.goaway();
      send({ event: 'done', cmd: 'goaway' });
      return;
    case 'restart':
      await server?.close();
      await listen();
      return;
    case 'exit':
      exiting = true;
      await server?.close();
      process.disconnect?.();
      // Nothing else should hold the loop; exit anyway so a stuck handle cannot keep a zombie.
      setTimeout(() => process.exit(0), 3_000).unref();
      return;
  }
}

// Commands run one at a time, in order.
let queue: Promise<void> = Promise.resolve();
process.on('message', (command: Command) => {
  queue = queue.then(() => onCommand(command)).catch((err: unknown) => {
    send({ event: 'error', message: err instanceof Error ? err.stack : String(err) });
  });
});
// The parent went away (killed, or done): do not outlive it.
process.on('disconnect', () => {
  if (exiting) return;
  void server?.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3_000).unref();
});
