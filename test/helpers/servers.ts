/**
 * Loopback servers for tests: node:http (and https) with a handler, and raw TCP servers that
 * write whatever bytes a test wants, malformed or hostile on purpose.
 */
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

export interface TestServer {
  /** `http://127.0.0.1:PORT` (or https). */
  url: string;
  port: number;
  /** TCP connections accepted so far. */
  connections: number;
  /** Sockets currently open on the server side. */
  readonly sockets: Set<net.Socket>;
  close(): Promise<void>;
}

function track(server: net.Server, result: { connections: number; sockets: Set<net.Socket> }, event: string): void {
  server.on(event, (socket: net.Socket) => {
    result.connections++;
    result.sockets.add(socket);
    socket.on('close', () => result.sockets.delete(socket));
  });
}

async function listen(server: net.Server, host: string): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

function closer(server: net.Server, sockets: Set<net.Socket>): () => Promise<void> {
  return async () => {
    for (const socket of sockets) socket.destroy();
    if ('closeAllConnections' in server) (server as http.Server).closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

export async function startHttpServer(
  handler: http.RequestListener,
  options: http.ServerOptions & { keepAliveTimeout?: number; host?: string } = {},
): Promise<TestServer & { server: http.Server }> {
  const server = http.createServer(options, handler);
  if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout;
  const state = { connections: 0, sockets: new Set<net.Socket>() };
  track(server, state, 'connection');
  const host = options.host ?? '127.0.0.1';
  const port = await listen(server, host);
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const result = {
    server,
    url: `http://${hostPart}:${port}`,
    port,
    get connections() {
      return state.connections;
    },
    set connections(v: number) {
      state.connections = v;
    },
    sockets: state.sockets,
    close: closer(server, state.sockets),
  };
  return result;
}

export async function startHttpsServer(
  handler: http.RequestListener,
  options: https.ServerOptions & { host?: string },
): Promise<TestServer & { server: https.Server }> {
  const server = https.createServer(options, handler);
  const state = { connections: 0, sockets: new Set<net.Socket>() };
  track(server, state, 'secureConnection');
  const host = options.host ?? '127.0.0.1';
  const port = await listen(server, host);
  return {
    server,
    url: `https://localhost:${port}`,
    port,
    get connections() {
      return state.connections;
    },
    sockets: state.sockets,
    close: closer(server, state.sockets),
  };
}

/** A TCP server whose every connection is handed to `onConnection` to write raw bytes. */
export async function startRawServer(onConnection: (socket: net.Socket, index: number) => void): Promise<TestServer> {
  const state = { connections: 0, sockets: new Set<net.Socket>() };
  let accepted = 0;
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    onConnection(socket, accepted++);
  });
  track(server, state, 'connection');
  const port = await listen(server, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get connections() {
      return state.connections;
    },
    sockets: state.sockets,
    close: closer(server, state.sockets),
  };
}

/** Calls `fn` once per request head received on a raw socket (split at CRLFCRLF). */
export function onRequestHeads(socket: net.Socket, fn: (head: string, index: number) => void): void {
  let pending = '';
  let index = 0;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    pending += chunk;
    for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
      const head = pending.slice(0, end);
      pending = pending.slice(end + 4);
      fn(head, index++);
    }
  });
}
