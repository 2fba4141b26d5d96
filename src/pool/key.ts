import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { MuxpoolError } from '../errors.js';

/**
 * TLS settings that make two connections to the same host and port not interchangeable: a
 * connection verified against one trust store, or presenting one client certificate, must never
 * serve a request made with another.
 */
export interface TlsIdentity {
  /** SNI and the name checked against the certificate; defaults to the host (none for IP literals). */
  servername?: string;
  /** Extra trusted CA certificates (PEM), added to Node's root store and NODE_EXTRA_CA_CERTS. */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Certificate verification; on unless explicitly false. */
  rejectUnauthorized?: boolean;
  /** Client certificate and key (PEM) for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  passphrase?: string;
  /**
   * Client certificate and key as PKCS#12 (`.pfx`/`.p12`), unlocked with `passphrase`. Used over
   * TCP (Node's TLS reads it); the QUIC stack takes PEM only, so such keys stay on TCP.
   */
  pfx?: string | Buffer;
  /**
   * Public-key pins, `sha256/BASE64` (OkHttp's form; curl's `sha256//BASE64` is accepted too):
   * the SHA-256 of a certificate's DER SubjectPublicKeyInfo. The connection is used only when
   * the server's leaf, or a certificate that provably signed the chain above it, matches one.
   */
  pins?: readonly string[];
}

function pemText(value: string | Buffer): string {
  return typeof value === 'string' ? value : value.toString('latin1');
}

/** Digest of the identity-bearing TLS settings, so equal settings give equal keys. */
export function tlsFingerprint(tls: TlsIdentity): string {
  const hash = createHash('sha256');
  hash.update(`sni=${tls.servername ?? ''}\0verify=${tls.rejectUnauthorized !== false}\0`);
  const cas = tls.ca === undefined ? [] : Array.isArray(tls.ca) ? tls.ca : [tls.ca as string | Buffer];
  for (const ca of cas) hash.update(`ca=${pemText(ca)}\0`);
  if (tls.cert !== undefined) hash.update(`cert=${pemText(tls.cert)}\0`);
  if (tls.key !== undefined) hash.update(`key=${pemText(tls.key)}\0`);
  if (tls.passphrase !== undefined) hash.update(`pass=${tls.passphrase}\0`);
  if (tls.pfx !== undefined) hash.update(`pfx=${typeof tls.pfx === 'string' ? tls.pfx : tls.pfx.toString('base64')}\0`);
  // Sorted: the same set of pins in another order is the same identity.
  if (tls.pins !== undefined && tls.pins.length > 0) hash.update(`pins=${[...tls.pins].sort().join(',')}\0`);
  return hash.digest('base64url').slice(0, 22);
}

/**
 * Normalises a host: lower case (host names compare case-insensitively, RFC 3986 §3.2.2) and
 * IPv6 literals without brackets in their canonical compressed form, so `[0:0::1]` and `::1`
 * find the same connections.
 */
export function normalizeHost(host: string): string {
  if (typeof host !== 'string' || host.length === 0) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'PoolKey host must be a non-empty string');
  }
  let h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(h) === 6) {
    // The WHATWG URL parser prints IPv6 addresses in RFC 5952 canonical form.
    h = new URL(`http://[${h}]/`).hostname.slice(1, -1);
  }
  return h.toLowerCase();
}

/**
 * A proxy that connections of a key go through (parsed and validated by `connect/proxy-config`).
 * Pure data: the pool only compares `id`; the connector dials through it.
 */
export interface ProxyEndpoint {
  readonly scheme: 'http' | 'https' | 'socks5' | 'socks5h';
  /** Lower case, IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  /**
   * `scheme://host:port`, plus a digest of the credentials when there are any: two proxies, or
   * one proxy under two accounts, never share a connection. The password never appears in it.
   */
  readonly id: string;
  /** For people (logs, `-v`): `scheme://user@host:port`, no password. */
  readonly display: string;
}

/** Where a key's connections go instead of a TCP or UDP port: fields that change the route. */
export interface PoolKeyRoute {
  /**
   * A Unix domain socket: connections go there, while the URL still gives Host, the scheme and
   * the TLS server name. HTTP/3 cannot run over it (QUIC needs UDP).
   */
  socketPath?: string;
  /** A proxy the connections go through (not used with `socketPath`, which is already a route). */
  proxy?: ProxyEndpoint;
}

/** Identifies an origin plus its TLS identity; keys with equal fields find the same connections. */
export class PoolKey {
  readonly host: string;
  readonly port: number;
  readonly isHttps: boolean;
  readonly tls: Readonly<TlsIdentity> | undefined;
  /** The value the pool compares: equal ids ⇔ interchangeable connections. */
  readonly id: string;
  /** Digest of `tls` (empty without): connections are only ever shared within one TLS identity. */
  readonly tlsId: string;
  /** The proxy connections of this key go through; undefined: direct. Part of `id`. */
  readonly proxy: ProxyEndpoint | undefined;
  /** The Unix domain socket this key's connections use, if any (part of `id`). */
  readonly socketPath: string | undefined;

  constructor(host: string, port: number, isHttps: boolean, tls?: TlsIdentity, route?: PoolKeyRoute) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `PoolKey port must be an integer in 1..65535, got ${String(port)}`);
    }
    this.host = normalizeHost(host);
    this.port = port;
    this.isHttps = isHttps === true;
    this.tls = this.isHttps && tls !== undefined ? Object.freeze({ ...tls }) : undefined;
    const hostPart = isIP(this.host) === 6 ? `[${this.host}]` : this.host;
    const base = `${this.isHttps ? 'https' : 'http'}://${hostPart}:${this.port}`;
    this.tlsId = this.tls === undefined ? '' : tlsFingerprint(this.tls);
    const socketPath = route?.socketPath;
    if (socketPath !== undefined && (typeof socketPath !== 'string' || socketPath.length === 0 || socketPath.includes('\0'))) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'socketPath must be a non-empty path without NUL');
    }
    this.socketPath = socketPath;
    // A Unix socket is already the route: a proxy does not apply to it (as curl's --unix-socket).
    const proxy = socketPath === undefined ? route?.proxy : undefined;
    this.proxy = proxy;
    // The socket path goes before the TLS part: `#` stays the separator the origin store's
    // record names rely on, and a connection to /a.sock never serves /b.sock or TCP.
    const routed = socketPath === undefined ? base : `${base}@unix:${encodeURIComponent(socketPath)}`;
    const direct = this.tls === undefined ? routed : `${routed}#${this.tlsId}`;
    // Nothing is shared between direct and proxied connections, nor between proxies.
    this.id = proxy === undefined ? direct : `${direct} via ${proxy.id}`;
  }

  /** `host:port` as it goes in a Host header or :authority (brackets around IPv6). */
  get authority(): string {
    return isIP(this.host) === 6 ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  /** The scheme://host:port this key serves, without the TLS identity. */
  get origin(): string {
    const hostPart = isIP(this.host) === 6 ? `[${this.host}]` : this.host;
    return `${this.isHttps ? 'https' : 'http'}://${hostPart}:${this.port}`;
  }

  equals(other: PoolKey): boolean {
    return other instanceof PoolKey && other.id === this.id;
  }

  toString(): string {
    return this.id;
  }
}
