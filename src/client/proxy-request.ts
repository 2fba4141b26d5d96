/**
 * What a request looks like on the wire when it goes through a proxy. Forwarded (an `http:`
 * URL through an HTTP proxy): the target in absolute form (RFC 9112 §3.2.2) and the proxy's
 * credentials in Proxy-Authorization. Tunnelled (CONNECT or SOCKS5): as it would go direct,
 * minus any Proxy-Authorization — the origin is not the proxy, and proxy credentials never
 * reach it.
 */
import { forwardsHttp, proxyAuthorization } from '../connect/proxy-config.js';
import { MuxpoolError } from '../errors.js';
import type { PoolKey, ProxyEndpoint } from '../pool/key.js';
import type { PreparedRequest } from './prepare.js';

function without(headers: readonly string[], name: string): string[] {
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i] !== name) kept.push(headers[i] as string, headers[i + 1] as string);
  return kept;
}

function has(headers: readonly string[], name: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return true;
  return false;
}

/** The request as sent through `proxy` (a new object; `prepared` is left as it is). */
export function proxiedRequest(prepared: PreparedRequest, proxy: ProxyEndpoint): PreparedRequest {
  const head = prepared.head;
  if (prepared.url.protocol === 'http:' && forwardsHttp(proxy)) {
    // A caller's own Proxy-Authorization is for this proxy too, and wins.
    const authorization = proxyAuthorization(proxy);
    const headers = authorization === undefined || has(head.headers, 'proxy-authorization') ? head.headers : [...head.headers, 'proxy-authorization', authorization];
    return { ...prepared, head: { ...head, path: `http://${prepared.url.host}${head.path}`, headers } };
  }
  if (!has(head.headers, 'proxy-authorization')) return prepared;
  return { ...prepared, head: { ...head, headers: without(head.headers, 'proxy-authorization') } };
}

/**
 * A 407 to a forwarded request is the proxy's answer, not the origin's (RFC 9110 §15.5.8): the
 * same typed error a CONNECT tunnel refused with 407 gives. Undefined for any other response.
 */
export function forwardedAuthFailure(key: PoolKey, status: number): MuxpoolError | undefined {
  const proxy = key.proxy;
  if (status !== 407 || proxy === undefined || key.isHttps || !forwardsHttp(proxy)) return undefined;
  return new MuxpoolError(
    'MUXPOOL_ERR_PROXY_AUTH',
    proxy.username === undefined
      ? `the proxy ${proxy.display} needs credentials (407): put user:password@ in the proxy URL`
      : `the proxy ${proxy.display} refused the credentials given (407)`,
    { status: 407, maybeProcessed: false },
  );
}
