/**
 * Peer addresses for the binding: IP literals only, in the family the socket must have.
 *
 * quiche silently drops packets for an IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`), so such an
 * address is turned back into plain IPv4 and sent from a `udp4` socket.
 */
import { isIP } from 'node:net';
import { MuxpoolError } from '../errors.js';

export interface PeerAddress {
  /** Canonical IP literal, no brackets. */
  host: string;
  port: number;
  family: 4 | 6;
}

const MAPPED_DOTTED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;
const MAPPED_HEX = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i;

function unmapIPv4(v6: string): string | undefined {
  const dotted = MAPPED_DOTTED.exec(v6);
  if (dotted !== null) return dotted[1];
  const hex = MAPPED_HEX.exec(v6);
  if (hex === null) return undefined;
  const high = parseInt(hex[1] as string, 16);
  const low = parseInt(hex[2] as string, 16);
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/** Validates and normalises a peer; INVALID_ARGUMENT for a host name or a bad port. */
export function peerAddress(host: string, port: number): PeerAddress {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `QUIC port must be an integer from 1 to 65535, got ${String(port)}`);
  }
  const bare = typeof host === 'string' && host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = typeof bare === 'string' ? isIP(bare) : 0;
  if (family === 4) return { host: bare, port, family: 4 };
  if (family === 6) {
    // The WHATWG URL parser prints IPv6 in RFC 5952 canonical form (and drops zone ids, which
    // the URL form cannot carry; link-local peers are not supported).
    const canonical = new URL(`http://[${bare.replace(/%.*$/, '')}]/`).hostname.slice(1, -1);
    const v4 = unmapIPv4(canonical);
    return v4 === undefined ? { host: canonical, port, family: 6 } : { host: v4, port, family: 4 };
  }
  throw new MuxpoolError(
    'MUXPOOL_ERR_INVALID_ARGUMENT',
    `QUIC needs an IP address, got ${JSON.stringify(host)}: resolve host names before connecting`,
  );
}
