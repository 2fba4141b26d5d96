/**
 * SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): the client side of the
 * handshake on a socket connected to the proxy, and pure encoders/decoders for its messages.
 * `socks5h` hands the host name to the proxy (ATYP domain name), `socks5` resolves it here and
 * sends an address.
 */
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { MuxpoolError } from '../errors.js';
import type { ProxyEndpoint } from '../pool/key.js';
import { HandshakeReader, ReaderClosedError } from './proxy-reader.js';
import { type Resolver, resolveHost } from './resolve.js';

const VERSION = 0x05;
const METHOD_NONE = 0x00;
const METHOD_USERPASS = 0x02;
const NO_ACCEPTABLE_METHOD = 0xff;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

/** RFC 1928 §6 reply codes. */
export const SOCKS_REPLIES: Readonly<Record<number, string>> = {
  1: 'general SOCKS server failure',
  2: 'connection not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

/** Reply code 5: the target refused, as a direct dial's ECONNREFUSED (so as retryable). */
export const SOCKS_CONNECTION_REFUSED = 5;

function protocolError(proxy: ProxyEndpoint, why: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_SOCKS', `the SOCKS5 proxy ${proxy.display} broke the protocol: ${why}`, { maybeProcessed: false });
}

/** The method-selection message (RFC 1928 §3): no authentication, and username/password when we have credentials. */
export function greeting(withCredentials: boolean): Buffer {
  return Buffer.from(withCredentials ? [VERSION, 2, METHOD_NONE, METHOD_USERPASS] : [VERSION, 1, METHOD_NONE]);
}

/** RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD. */
export function userPassRequest(username: string, password: string): Buffer {
  const user = Buffer.from(username, 'utf8');
  const pass = Buffer.from(password, 'utf8');
  return Buffer.concat([Buffer.from([0x01, user.length]), user, Buffer.from([pass.length]), pass]);
}

/** RFC 1928 §4: CONNECT to an IPv4/IPv6 address or a domain name, port in network order. */
export function connectRequest(host: string, port: number): Buffer {
  const family = isIP(host);
  let address: Buffer;
  if (family === 4) {
    address = Buffer.from([ATYP_IPV4, ...host.split('.').map(Number)]);
  } else if (family === 6) {
    address = Buffer.concat([Buffer.from([ATYP_IPV6]), ipv6Bytes(host)]);
  } else {
    const name = Buffer.from(host, 'utf8');
    if (name.length > 255) throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', `a host name sent to a SOCKS5 proxy is at most 255 bytes: ${host.slice(0, 40)}…`);
    address = Buffer.concat([Buffer.from([ATYP_DOMAIN, name.length]), name]);
  }
  const portBytes = Buffer.from([port >> 8, port & 0xff]);
  return Buffer.concat([Buffer.from([VERSION, CMD_CONNECT, 0x00]), address, portBytes]);
}

/** The 16 bytes of an IPv6 address (`::` expanded, an embedded IPv4 tail converted). */
export function ipv6Bytes(address: string): Buffer {
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const parts = (v4[1] as string).split('.').map(Number);
    text = `${text.slice(0, -(v4[1] as string).length)}${(((parts[0] as number) << 8) | (parts[1] as number)).toString(16)}:${(((parts[2] as number) << 8) | (parts[3] as number)).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...new Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(Number.parseInt(group, 16), i * 2));
  return bytes;
}

/** The size of a CONNECT reply (RFC 1928 §6) once its address type is known; -1 before. */
export function replyLength(buffered: Buffer): number {
  // A failure needs no more than its code: the proxy closes after it anyway.
  if (buffered.length >= 2 && buffered[1] !== 0x00) return 2;
  if (buffered.length < 5) return -1;
  const atyp = buffered[3];
  if (atyp === ATYP_IPV4) return buffered.length >= 10 ? 10 : -1;
  if (atyp === ATYP_IPV6) return buffered.length >= 22 ? 22 : -1;
  if (atyp === ATYP_DOMAIN) {
    const total = 4 + 1 + (buffered[4] as number) + 2;
    return buffered.length >= total ? total : -1;
  }
  return 4; // unknown address type: handed to the caller, who reports it
}

const exactly = (n: number) => (buffered: Buffer): number => (buffered.length >= n ? n : -1);

/**
 * The SOCKS5 handshake for `host:port` on a socket connected to the proxy. Resolves with the
 * bytes that followed the proxy's reply (the tunnel's first bytes). The caller destroys the
 * socket on failure and bounds the time.
 */
export async function openSocksTunnel(socket: Duplex, proxy: ProxyEndpoint, host: string, port: number, resolver: Resolver): Promise<Buffer> {
  // Listening from the start: while the name below resolves, the socket may fail, or the dial's
  // deadline destroy it; the reader keeps that (and an 'error' never goes unheard) for its read.
  const reader = new HandshakeReader(socket);
  try {
    // socks5: the name is resolved here, through the pool's resolver, before the proxy is asked.
    let target = host;
    if (proxy.scheme === 'socks5' && isIP(host) === 0) {
      const addresses = await resolveHost(resolver, host);
      target = (addresses[0] as { address: string }).address;
    }
    const request = connectRequest(target, port);
    const withCredentials = proxy.username !== undefined;
    socket.write(greeting(withCredentials));
    const choice = await reader.read(exactly(2));
    if (choice[0] !== VERSION) throw protocolError(proxy, `version ${choice[0] ?? '?'} in its method selection (not a SOCKS5 proxy?)`);
    const method = choice[1];
    if (method === NO_ACCEPTABLE_METHOD) {
      throw new MuxpoolError(
        'MUXPOOL_ERR_PROXY_AUTH',
        withCredentials
          ? `the SOCKS5 proxy ${proxy.display} accepts neither no authentication nor username/password`
          : `the SOCKS5 proxy ${proxy.display} needs credentials: put user:password@ in the proxy URL`,
        { maybeProcessed: false },
      );
    }
    if (method === METHOD_USERPASS && withCredentials) {
      socket.write(userPassRequest(proxy.username as string, proxy.password ?? ''));
      const status = await reader.read(exactly(2));
      // RFC 1929 §2: STATUS 0 is success; anything else and the server closes the connection.
      if (status[1] !== 0x00) {
        throw new MuxpoolError('MUXPOOL_ERR_PROXY_AUTH', `the SOCKS5 proxy ${proxy.display} refused the user name and password`, {
          maybeProcessed: false,
        });
      }
    } else if (method !== METHOD_NONE) {
      throw protocolError(proxy, `it chose authentication method ${method ?? '?'}, which was not offered`);
    }
    socket.write(request);
    const reply = await reader.read(replyLength);
    if (reply[0] !== VERSION) throw protocolError(proxy, `version ${reply[0] ?? '?'} in its reply`);
    const code = reply[1] as number;
    if (code !== 0x00) {
      const meaning = SOCKS_REPLIES[code] ?? 'unassigned reply code';
      throw new MuxpoolError('MUXPOOL_ERR_SOCKS', `the SOCKS5 proxy ${proxy.display} could not connect to ${host}:${port}: ${meaning} (reply ${code})`, {
        replyCode: code,
        maybeProcessed: false,
      });
    }
    if (reply.length === 4) throw protocolError(proxy, `unknown address type ${reply[3] ?? '?'} in its reply`);
  } catch (err) {
    reader.release();
    if (err instanceof ReaderClosedError) {
      throw new MuxpoolError('MUXPOOL_ERR_SOCKS', `the SOCKS5 handshake with ${proxy.display} failed: ${err.message}`, {
        cause: err.cause ?? err,
        maybeProcessed: false,
      });
    }
    throw err;
  }
  return reader.release();
}
