/**
 * HTTP CONNECT tunnels (RFC 9110 §9.3.6): the request, a bounded parser for the proxy's reply
 * head, and the handshake on a socket connected to the proxy. The request carries the target's
 * authority and, when the proxy URL has credentials, Proxy-Authorization — never anything of
 * the origin's request (its Authorization or cookies stay inside the tunnel).
 */
import type { Duplex } from 'node:stream';
import { MuxpoolError } from '../errors.js';
import type { ProxyEndpoint } from '../pool/key.js';
import { proxyAuthorization } from './proxy-config.js';
import { HandshakeReader, ReaderClosedError } from './proxy-reader.js';

/** The most a proxy's reply head to CONNECT may take before it counts as malformed. */
export const MAX_CONNECT_REPLY_BYTES = 16 * 1024;

export interface ConnectReply {
  status: number;
  reason: string;
  /** Lower-case names; repeated fields joined with ", ". */
  headers: Map<string, string>;
}

function malformed(why: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_PROXY_TUNNEL', `the proxy's reply to CONNECT is malformed: ${why}`, { maybeProcessed: false });
}

/** The CONNECT request for `authority` (`host:port`, brackets around IPv6). */
export function connectRequest(authority: string, authorization: string | undefined): string {
  // RFC 9110 §9.3.6: the target is host:port, and Host carries the same authority.
  return `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n${authorization !== undefined ? `proxy-authorization: ${authorization}\r\n` : ''}\r\n`;
}

const HTTP_PREFIX = Buffer.from('HTTP/');

/**
 * How many bytes of `buffered` are the reply head (through the empty line); -1 while it is
 * incomplete. Throws when it cannot be an HTTP response or grows past `maxBytes`. A bare LF ends
 * lines too (RFC 9112 §2.2 lets a recipient accept it).
 */
export function connectReplyLength(buffered: Buffer, maxBytes = MAX_CONNECT_REPLY_BYTES): number {
  const prefix = Math.min(buffered.length, HTTP_PREFIX.length);
  if (buffered.subarray(0, prefix).compare(HTTP_PREFIX, 0, prefix) !== 0) throw malformed('it does not start with HTTP/');
  const limit = Math.min(buffered.length, maxBytes);
  for (let i = 0; i < limit; i++) {
    if (buffered[i] !== 0x0a) continue;
    if (buffered[i + 1] === 0x0a) return i + 2;
    if (buffered[i + 1] === 0x0d && buffered[i + 2] === 0x0a) return i + 3;
  }
  if (buffered.length >= maxBytes) throw malformed(`its head exceeds ${maxBytes} bytes`);
  return -1;
}

/** Parses a complete reply head (as `connectReplyLength` delimited it). */
export function parseConnectReply(head: Buffer): ConnectReply {
  const lines = head.toString('latin1').split(/\r?\n/);
  const statusLine = lines[0] ?? '';
  const match = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?$/.exec(statusLine);
  if (match === null) throw malformed(`bad status line ${JSON.stringify(statusLine.slice(0, 80))}`);
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) throw malformed(`bad header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const before = headers.get(name);
    headers.set(name, before === undefined ? value : `${before}, ${value}`);
  }
  return { status: Number(match[1]), reason: match[2] ?? '', headers };
}

/**
 * Opens a tunnel to `authority` through the HTTP proxy `socket` is connected to. Resolves with
 * the bytes that followed the proxy's 2xx head (the tunnel's first bytes). Fails typed; the
 * caller destroys the socket on failure and bounds the time.
 */
export async function openConnectTunnel(socket: Duplex, proxy: ProxyEndpoint, authority: string): Promise<Buffer> {
  const reader = new HandshakeReader(socket);
  let head: Buffer;
  try {
    socket.write(connectRequest(authority, proxyAuthorization(proxy)));
    head = await reader.read((buffered) => connectReplyLength(buffered));
  } catch (err) {
    reader.release();
    if (err instanceof ReaderClosedError) {
      throw new MuxpoolError('MUXPOOL_ERR_PROXY_TUNNEL', `CONNECT ${authority} through ${proxy.display} failed: ${err.message}`, {
        cause: err.cause ?? err,
        maybeProcessed: false,
      });
    }
    throw err;
  }
  const rest = reader.release();
  const reply = parseConnectReply(head);
  // RFC 9110 §9.3.6: any 2xx means the tunnel is up; its Content-Length or Transfer-Encoding must be ignored.
  if (reply.status >= 200 && reply.status < 300) return rest;
  const statusText = `${reply.status}${reply.reason === '' ? '' : ` ${reply.reason}`}`;
  if (reply.status === 407) {
    const challenge = reply.headers.get('proxy-authenticate');
    const asks = challenge === undefined ? '' : `; it asks for ${challenge.split(/[\s,]/)[0] ?? ''}`;
    throw new MuxpoolError(
      'MUXPOOL_ERR_PROXY_AUTH',
      proxy.username === undefined
        ? `the proxy ${proxy.display} needs credentials (${statusText}${asks}): put user:password@ in the proxy URL`
        : `the proxy ${proxy.display} refused the credentials given (${statusText}${asks})`,
      { status: 407, maybeProcessed: false },
    );
  }
  throw new MuxpoolError('MUXPOOL_ERR_PROXY_TUNNEL', `the proxy ${proxy.display} refused the tunnel to ${authority}: ${statusText}`, {
    status: reply.status,
    maybeProcessed: false,
  });
}
