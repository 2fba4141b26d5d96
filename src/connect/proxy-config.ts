/**
 * Proxy URLs: `http://`, `https://`, `socks5://` and `socks5h://`, with optional `user:pass@`
 * (percent-decoded). Parsed and checked once, when the pool is built, so a typo fails at once
 * with a typed error instead of at the first request.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { MuxpoolError } from '../errors.js';
import { type ProxyEndpoint, normalizeHost } from '../pool/key.js';

const DEFAULT_PORTS: Record<ProxyEndpoint['scheme'], number> = { http: 80, https: 443, socks5: 1080, socks5h: 1080 };

function invalid(source: string, why: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `${source}: ${why}`);
}

function decode(part: string, source: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch (cause) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `${source}: the proxy ${what} is not valid percent-encoding`, { cause });
  }
}

/**
 * Parses a proxy URL. `source` names where it came from (`proxy`, `HTTPS_PROXY`, `-x`) for the
 * error message. A value without a scheme (`proxy.corp:3128`, common in environment variables)
 * is an HTTP proxy, as curl reads it. The password never appears in an error message.
 */
export function parseProxyUrl(input: string, source: string): ProxyEndpoint {
  if (typeof input !== 'string' || input.trim() === '') throw invalid(source, 'the proxy URL is empty');
  const text = input.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch (cause) {
    // The input may hold a password: the message shows the scheme only.
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `${source}: not a valid proxy URL (${withScheme.split('://')[0]}://…)`, { cause });
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'socks5' && scheme !== 'socks5h') {
    throw invalid(source, `unsupported proxy scheme ${scheme}: (use http, https, socks5 or socks5h)`);
  }
  if (url.hostname === '') throw invalid(source, 'the proxy URL has no host');
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw invalid(source, 'a proxy URL has no path, query or fragment');
  }
  const port = url.port === '' ? DEFAULT_PORTS[scheme] : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(source, `proxy port out of range: ${url.port}`);
  const host = normalizeHost(url.hostname);
  const username = url.username === '' ? undefined : decode(url.username, source, 'user name');
  const password = url.username === '' && url.password === '' ? undefined : decode(url.password, source, 'password');
  if (scheme.startsWith('socks') && username !== undefined) {
    // RFC 1929 §2: one length octet each.
    if (Buffer.byteLength(username) > 255 || Buffer.byteLength(password ?? '') > 255) {
      throw invalid(source, 'SOCKS5 user name and password are at most 255 bytes each (RFC 1929)');
    }
  }
  const hostPart = isIP(host) === 6 ? `[${host}]` : host;
  const base = `${scheme}://${hostPart}:${port}`;
  const credentials =
    username === undefined ? '' : `;auth=${createHash('sha256').update(`${username}\0${password ?? ''}`).digest('base64url').slice(0, 16)}`;
  return Object.freeze({
    scheme,
    host,
    port,
    username,
    password,
    id: `${base}${credentials}`,
    display: username === undefined ? base : `${scheme}://${encodeURIComponent(username)}@${hostPart}:${port}`,
  });
}

/** `Proxy-Authorization` for an HTTP proxy with credentials (Basic, RFC 7617), else undefined. */
export function proxyAuthorization(proxy: ProxyEndpoint): string | undefined {
  if (proxy.username === undefined) return undefined;
  return `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`, 'utf8').toString('base64')}`;
}

/** Whether requests for `http:` URLs are forwarded in absolute form (HTTP proxies) rather than tunnelled (SOCKS). */
export function forwardsHttp(proxy: ProxyEndpoint): boolean {
  return proxy.scheme === 'http' || proxy.scheme === 'https';
}
