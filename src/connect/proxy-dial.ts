/**
 * Dialing through a proxy: TCP (or TLS, for an `https://` proxy) to the proxy, then a CONNECT
 * tunnel or a SOCKS5 handshake to the target, then TLS with ALPN to the origin inside it. An
 * `http:` target through an HTTP proxy gets the proxy connection itself (requests are forwarded
 * in absolute form). One deadline, `connectTimeoutMs`, covers every step. Failures reaching
 * the proxy become `MUXPOOL_ERR_PROXY_CONNECT` with the socket error as `cause`; the socket is
 * destroyed on any failure.
 */
import type net from 'node:net';
import { channels } from '../core/diagnostics.js';
import { setTimerSafe } from '../core/durations.js';
import { MuxpoolError, isMuxpoolError } from '../errors.js';
import { type ProxyEndpoint, type TlsIdentity, tlsFingerprint } from '../pool/key.js';
import { type DialOptions, type DialResult, dialTcp, mapSocketError } from './dial.js';
import { forwardsHttp } from './proxy-config.js';
import { openConnectTunnel } from './proxy-http.js';
import { openSocksTunnel } from './proxy-socks.js';
import type { Resolver } from './resolve.js';

export interface ProxyDialOptions {
  proxy: ProxyEndpoint;
  /** The origin's dial, as it would be made directly. */
  target: DialOptions;
  /** Checks an `https://` proxy's certificate (the pool's CAs and verification; SNI is the proxy's host). */
  proxyTls: TlsIdentity | undefined;
  /** For `socks5`, which resolves the target's name here. */
  resolver: Resolver;
}

/** How the request reaches the origin: inside a tunnel, or forwarded by the proxy. */
export type ProxyMode = 'tunnel' | 'forward';

export interface ProxyDialResult extends DialResult {
  mode: ProxyMode;
}

/** The authority a tunnel is opened to: `host:port`, brackets around IPv6. */
function authorityOf(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function aborted(signal: AbortSignal | undefined): MuxpoolError {
  return signal?.reason instanceof MuxpoolError
    ? signal.reason
    : new MuxpoolError('MUXPOOL_ERR_ABORTED', 'dial aborted', { cause: signal?.reason, maybeProcessed: false });
}

export async function dialThroughProxy(options: ProxyDialOptions): Promise<ProxyDialResult> {
  const { proxy, target } = options;
  const started = performance.now();
  const deadline = started + target.connectTimeoutMs;
  const mode: ProxyMode = !target.isHttps && forwardsHttp(proxy) ? 'forward' : 'tunnel';
  let toProxy: DialResult;
  try {
    toProxy = await dialTcp({
      host: proxy.host,
      port: proxy.port,
      isHttps: proxy.scheme === 'https',
      tls: options.proxyTls,
      alpn: ['http/1.1'],
      connectTimeoutMs: target.connectTimeoutMs,
      signal: target.signal,
      // Secure contexts are cached by this id: it names the proxy and the trust it is checked with.
      keyId: `proxy ${proxy.id}#${options.proxyTls === undefined ? 'default' : tlsFingerprint(options.proxyTls)}`,
      lookup: target.lookup,
    });
  } catch (err) {
    if (isMuxpoolError(err, 'MUXPOOL_ERR_ABORTED')) throw err;
    const cause = err instanceof MuxpoolError ? err : mapSocketError(err, 'connect');
    throw new MuxpoolError('MUXPOOL_ERR_PROXY_CONNECT', `cannot reach the proxy ${proxy.display}: ${cause.message}`, {
      cause,
      maybeProcessed: false,
    });
  }
  const socket = toProxy.socket;
  if (mode === 'forward') {
    publish(proxy, target, mode, started);
    return { ...toProxy, mode, handshakeMs: performance.now() - started };
  }
  const authority = authorityOf(target.host, target.port);
  let rest: Buffer;
  // The handshake with the proxy gets what is left of the deadline; abort and timeout destroy
  // the socket, which ends the handshake's read.
  let failure: MuxpoolError | undefined;
  const stop = (err: MuxpoolError): void => {
    failure ??= err;
    socket.destroy();
  };
  const onAbort = (): void => stop(aborted(target.signal));
  const timer = setTimerSafe(
    () =>
      stop(
        new MuxpoolError('MUXPOOL_ERR_CONNECT_TIMEOUT', `connecting to ${authority} through ${proxy.display} took longer than ${target.connectTimeoutMs} ms`, {
          maybeProcessed: false,
        }),
      ),
    Math.max(1, deadline - performance.now()),
    true,
  );
  target.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    rest =
      proxy.scheme === 'socks5' || proxy.scheme === 'socks5h'
        ? await openSocksTunnel(socket, proxy, target.host, target.port, options.resolver)
        : await openConnectTunnel(socket, proxy, authority);
  } catch (err) {
    socket.destroy();
    if (failure !== undefined) throw failure;
    throw err instanceof MuxpoolError ? err : mapSocketError(err, 'connect');
  } finally {
    timer.cancel();
    target.signal?.removeEventListener('abort', onAbort);
  }
  // For res.timings: reaching the proxy and opening the tunnel count as the connect; TLS with
  // the origin inside it as the handshake.
  const tunnelAt = performance.now();
  const dnsMs = toProxy.phases.dnsMs;
  const connectMs = tunnelAt - started - dnsMs;
  if (!target.isHttps) {
    // Plain HTTP inside the tunnel: whatever the proxy relayed early is the origin's.
    if (rest.length > 0) socket.unshift(rest);
    publish(proxy, target, mode, started);
    return {
      socket,
      alpn: undefined,
      resumed: false,
      remoteAddress: toProxy.remoteAddress,
      remotePort: toProxy.remotePort,
      handshakeMs: tunnelAt - started,
      phases: { dnsMs, connectMs, handshakeMs: 0 },
      mode,
    };
  }
  if (rest.length > 0) {
    // The client speaks first in TLS (RFC 8446 §4.1.2): bytes before our ClientHello cannot be the origin's.
    socket.destroy();
    throw new MuxpoolError('MUXPOOL_ERR_PROXY_TUNNEL', `the proxy ${proxy.display} sent ${rest.length} bytes into the tunnel before TLS began`, {
      maybeProcessed: false,
    });
  }
  try {
    const inner = await dialTcp({
      ...target,
      socket: socket as net.Socket,
      connectTimeoutMs: Math.max(1, deadline - performance.now()),
    });
    publish(proxy, target, mode, started);
    const readyAt = performance.now();
    return {
      ...inner,
      remoteAddress: toProxy.remoteAddress,
      remotePort: toProxy.remotePort,
      handshakeMs: readyAt - started,
      phases: { dnsMs, connectMs, handshakeMs: readyAt - tunnelAt },
      mode,
    };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

function publish(proxy: ProxyEndpoint, target: DialOptions, mode: ProxyMode, started: number): void {
  if (!channels.proxy.hasSubscribers) return;
  channels.proxy.publish({
    target: authorityOf(target.host, target.port),
    proxy: proxy.display,
    mode,
    durationMs: performance.now() - started,
  });
}
