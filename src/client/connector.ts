/**
 * The pool's default `Connector`: dials TCP or TLS, lets ALPN pick the protocol, and wraps the
 * socket in the matching protocol driver. This is the one place that knows every transport.
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../core/clock.js';
import { dialTcp } from '../connect/dial.js';
import { TlsSessionCache } from '../connect/session-cache.js';
import { MuxpoolError } from '../errors.js';
import type { Connection } from '../pool/connection.js';
import type { PoolKey, TlsIdentity } from '../pool/key.js';
import type { Connector } from '../pool/pool.js';
import type { ConnectionProtocol } from '../pool/version.js';
import { H1Connection, type H1ConnectionOptions } from '../protocol/h1/connection.js';

export interface ConnectorOptions {
  clock: Clock;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  keepAliveMarginMs: number;
  maxHeaderBytes: number;
  maxHeaderCount: number;
  /** The pool's TLS settings, used for keys that carry none of their own. */
  tls: TlsIdentity | undefined;
  /** TLS sessions kept for resumption (per key). */
  tlsSessionCacheSize: number;
}

/** Protocols this build can speak over TCP, in ALPN preference order. */
const TCP_PROTOCOLS: readonly ConnectionProtocol[] = ['http/1.1'];

export class DefaultConnector implements Connector {
  private readonly options: ConnectorOptions;
  private readonly sessions: TlsSessionCache;
  private readonly h1Options: H1ConnectionOptions;

  constructor(options: ConnectorOptions) {
    this.options = options;
    this.sessions = new TlsSessionCache(options.tlsSessionCacheSize);
    this.h1Options = {
      clock: options.clock,
      readTimeoutMs: options.readTimeoutMs,
      keepAliveMarginMs: options.keepAliveMarginMs,
      maxHeaderBytes: options.maxHeaderBytes,
      maxHeaderCount: options.maxHeaderCount,
    };
  }

  /** The TCP protocols a request may ask for, best first: what ALPN will offer. */
  tcpProtocols(): readonly ConnectionProtocol[] {
    return TCP_PROTOCOLS;
  }

  async dial(key: PoolKey, protocols: readonly ConnectionProtocol[], signal: AbortSignal): Promise<Connection> {
    const alpn = TCP_PROTOCOLS.filter((p) => protocols.includes(p));
    if (alpn.length === 0) {
      throw new MuxpoolError(
        'MUXPOOL_ERR_PROTOCOL_UNAVAILABLE',
        `this build of muxpool cannot speak ${protocols.join(' or ')} yet`,
        { maybeProcessed: false },
      );
    }
    const result = await dialTcp({
      host: key.host,
      port: key.port,
      isHttps: key.isHttps,
      tls: key.tls ?? this.options.tls,
      alpn: [...alpn],
      connectTimeoutMs: this.options.connectTimeoutMs,
      signal,
      sessionCache: this.sessions,
      keyId: key.id,
    });
    return new H1Connection(result.socket, { ...this.h1Options, remoteAddress: result.remoteAddress });
  }

  adopt(_key: PoolKey, socket: Duplex): Connection {
    return new H1Connection(socket, this.h1Options);
  }
}
