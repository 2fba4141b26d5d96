/**
 * Coalesced QUIC packets (RFC 9000 §12.2): one UDP datagram can carry several long-header
 * packets (Initial, 0-RTT, Handshake, each with a Length field) and at most one short-header
 * packet, last. The receiver "MUST attempt to process the remaining packets" when one of them
 * cannot be decrypted, but quiche 0.18 drops the rest of the datagram once a packet fails
 * (`recv` returns the whole length after `Err(Done)`). A server closing a connection right after
 * the handshake (ngtcp2 refusing a client without a certificate) sends its CONNECTION_CLOSE in
 * an Initial, a Handshake and a 1-RTT packet of one datagram; the client has already discarded
 * its Initial keys (RFC 9001 §4.9.1), so quiche dropped the Initial, and with it the close the
 * other two carried, and the client waited for its idle timeout instead of reporting the alert.
 * The driver hands quiche such a datagram's packets one at a time.
 */

/** QUIC version 1 (RFC 9000 §15): the only version whose long-header layout we read here. */
const QUIC_V1 = 0x00000001;
/** Long-header packet types of version 1 (RFC 9000 §17.2, the type bits 0x30). */
const TYPE_INITIAL = 0;
const TYPE_RETRY = 3;
/** More packets than this in one datagram is not a datagram worth splitting. */
const MAX_PARTS = 8;

/** A variable-length integer (RFC 9000 §16) at `offset`: its value and encoded length, or undefined past the end. */
function readVarint(bytes: Uint8Array, offset: number): { value: number; length: number } | undefined {
  const first = bytes[offset];
  if (first === undefined) return undefined;
  const length = 1 << (first >> 6);
  if (offset + length > bytes.length) return undefined;
  let value = first & 0x3f;
  for (let i = 1; i < length; i++) value = value * 256 + (bytes[offset + i] ?? 0);
  return { value, length };
}

/**
 * The length of the long-header packet at `offset` (header included), or undefined when it
 * runs to the end of the datagram or cannot be read: a Retry, another version, a truncated
 * header. Only unprotected fields are read (the Length field is not header-protected,
 * RFC 9001 §5.4.1).
 */
function longPacketLength(bytes: Uint8Array, offset: number): number | undefined {
  const first = bytes[offset] ?? 0;
  let at = offset + 1;
  if (at + 4 > bytes.length) return undefined;
  const version = (((bytes[at] ?? 0) << 24) | ((bytes[at + 1] ?? 0) << 16) | ((bytes[at + 2] ?? 0) << 8) | (bytes[at + 3] ?? 0)) >>> 0;
  if (version !== QUIC_V1) return undefined;
  at += 4;
  const type = (first & 0x30) >> 4;
  if (type === TYPE_RETRY) return undefined;
  for (let id = 0; id < 2; id++) {
    // Destination, then source connection ID: a length byte and the ID.
    const idLength = bytes[at];
    if (idLength === undefined) return undefined;
    at += 1 + idLength;
  }
  if (type === TYPE_INITIAL) {
    const token = readVarint(bytes, at);
    if (token === undefined) return undefined;
    at += token.length + token.value;
  }
  const length = readVarint(bytes, at);
  if (length === undefined) return undefined;
  const end = at + length.length + length.value;
  return end <= bytes.length ? end - offset : undefined;
}

/**
 * The packets of a datagram that holds more than one, as views of it; undefined when it holds
 * one (every short-header datagram: the common case costs one bit test) or cannot be split.
 */
export function splitCoalesced(datagram: Uint8Array): Uint8Array[] | undefined {
  if (((datagram[0] ?? 0) & 0x80) === 0) return undefined;
  const parts: Uint8Array[] = [];
  let offset = 0;
  while (offset < datagram.length && parts.length < MAX_PARTS) {
    const long = ((datagram[offset] ?? 0) & 0x80) !== 0;
    const length = long ? longPacketLength(datagram, offset) : undefined;
    if (length === undefined || length === 0) {
      // A short-header packet, or one whose end we cannot tell: the rest of the datagram.
      parts.push(datagram.subarray(offset));
      offset = datagram.length;
      break;
    }
    parts.push(datagram.subarray(offset, offset + length));
    offset += length;
  }
  // Parts left over: let quiche have the datagram whole.
  if (offset < datagram.length) return undefined;
  return parts.length > 1 ? parts : undefined;
}

/**
 * A long-header packet of version 0: Version Negotiation (RFC 9000 §17.2.1). Its first byte's
 * other bits are arbitrary, so they can read as any long-header type (a Retry's 0xf0 included).
 */
export function isVersionNegotiation(packet: Uint8Array): boolean {
  return ((packet[0] ?? 0) & 0x80) !== 0 && packet.length >= 5 && packet[1] === 0 && packet[2] === 0 && packet[3] === 0 && packet[4] === 0;
}
