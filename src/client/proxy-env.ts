/**
 * Which proxy, if any, serves a URL: one fixed proxy, or the environment's (`HTTPS_PROXY`,
 * `HTTP_PROXY`, `ALL_PROXY`) minus the hosts `NO_PROXY` lists. `NO_PROXY` is read as curl reads
 * it: comma- or space-separated entries, each a host name that also matches its subdomains
 * (a leading dot is ignored, so `.example.com` and `example.com` both match `a.example.com`
 * and `example.com`), an IP address, a CIDR range (v4 or v6), any of these with `:port`, or `*`
 * for every host. Entries it cannot read are ignored, as curl does. No name is resolved:
 * an IP entry matches URLs with that IP literal.
 */
import { BlockList, isIP } from 'node:net';
import { MuxpoolError } from '../errors.js';
import { type ProxyEndpoint, normalizeHost } from '../pool/key.js';
import { parseProxyUrl } from '../connect/proxy-config.js';

interface NameEntry {
  /** Lower case, no leading or trailing dot. */
  readonly domain: string;
  readonly port: number | undefined;
}

interface AddressEntry {
  readonly block: BlockList;
  readonly port: number | undefined;
}

/** A parsed NO_PROXY list. */
export class NoProxyList {
  /** `*`: no host uses a proxy. */
  readonly matchesAll: boolean;
  private readonly names: readonly NameEntry[];
  private readonly addresses: readonly AddressEntry[];

  constructor(list: string | readonly string[] | undefined) {
    const entries = (typeof list === 'string' ? [list] : (list ?? []))
      .flatMap((part) => part.split(/[,\s]+/))
      .map((entry) => entry.trim())
      .filter((entry) => entry !== '');
    let all = false;
    const names: NameEntry[] = [];
    const addresses: AddressEntry[] = [];
    for (const entry of entries) {
      if (entry === '*') {
        all = true;
        continue;
      }
      const parsed = parseEntry(entry);
      if (parsed === undefined) continue;
      if ('block' in parsed) addresses.push(parsed);
      else names.push(parsed);
    }
    this.matchesAll = all;
    this.names = names;
    this.addresses = addresses;
  }

  get empty(): boolean {
    return !this.matchesAll && this.names.length === 0 && this.addresses.length === 0;
  }

  /** Whether a request to `host:port` goes direct. `host` as in a URL (IPv6 with or without brackets). */
  matches(host: string, port: number): boolean {
    if (this.matchesAll) return true;
    let h = normalizeHost(host);
    if (h.endsWith('.')) h = h.slice(0, -1);
    const family = isIP(h);
    if (family !== 0) {
      const type = family === 6 ? 'ipv6' : 'ipv4';
      for (const entry of this.addresses) {
        if ((entry.port === undefined || entry.port === port) && entry.block.check(h, type)) return true;
      }
      return false;
    }
    for (const entry of this.names) {
      if (entry.port !== undefined && entry.port !== port) continue;
      if (h === entry.domain || (h.endsWith(entry.domain) && h.charCodeAt(h.length - entry.domain.length - 1) === 0x2e)) return true;
    }
    return false;
  }
}

function portOf(text: string): number | undefined | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : null;
}

function addressEntry(address: string, prefix: number | undefined, port: number | undefined): AddressEntry | undefined {
  const family = isIP(address);
  if (family === 0) return undefined;
  const type = family === 6 ? 'ipv6' : 'ipv4';
  const block = new BlockList();
  if (prefix === undefined) block.addAddress(address, type);
  else {
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) return undefined;
    block.addSubnet(address, prefix, type);
  }
  return { block, port };
}

/** One NO_PROXY entry; undefined when it cannot be read. */
function parseEntry(entry: string): NameEntry | AddressEntry | undefined {
  let text = entry;
  let port: number | undefined;
  // [v6]:port, [v6], [v6/prefix]
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed !== null) {
    if (bracketed[2] !== undefined) {
      const p = portOf(bracketed[2]);
      if (p === null) return undefined;
      port = p;
    }
    text = bracketed[1] as string;
  } else if ((text.match(/:/g) ?? []).length === 1) {
    // host:port or v4:port (a bare IPv6 address has more than one colon).
    const colon = text.indexOf(':');
    const p = portOf(text.slice(colon + 1));
    if (p === null) return undefined;
    port = p;
    text = text.slice(0, colon);
  }
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText)) return undefined;
    return addressEntry(text.slice(0, slash), Number(prefixText), port);
  }
  if (isIP(text) !== 0) return addressEntry(text, undefined, port);
  let domain = text.toLowerCase();
  if (domain.startsWith('*.')) domain = domain.slice(2);
  while (domain.startsWith('.')) domain = domain.slice(1);
  if (domain.endsWith('.')) domain = domain.slice(0, -1);
  if (domain === '' || /[/\s]/.test(domain)) return undefined;
  return { domain, port };
}

/** Environment variables as `process.env` holds them. */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Which spellings count. `'either'` (the library's `'env'`): lower case first, then upper case,
 * for every variable. `'curl'` (the CLI): as curl, `http_proxy` in lower case only (an upper-case
 * `HTTP_PROXY` can be set by a web server's CGI environment from a request's `Proxy:` header),
 * the others in either case, lower case first.
 */
export type EnvCase = 'either' | 'curl';

function envValue(env: Environment, name: string, cases: EnvCase): { name: string; value: string } | undefined {
  const lower = name.toLowerCase();
  const upper = name.toUpperCase();
  const spellings = cases === 'curl' && lower === 'http_proxy' ? [lower] : [lower, upper];
  for (const spelling of spellings) {
    const value = env[spelling];
    if (value !== undefined && value.trim() !== '') return { name: spelling, value };
  }
  return undefined;
}

/** What the pool's `proxy` option says, resolved once at construction. */
export class ProxySelector {
  private readonly forHttp: ProxyEndpoint | undefined;
  private readonly forHttps: ProxyEndpoint | undefined;
  readonly noProxy: NoProxyList;

  constructor(forHttp: ProxyEndpoint | undefined, forHttps: ProxyEndpoint | undefined, noProxy: NoProxyList) {
    this.forHttp = forHttp;
    this.forHttps = forHttps;
    this.noProxy = noProxy;
  }

  /** The proxy for a URL, or undefined to go direct. */
  select(url: URL): ProxyEndpoint | undefined {
    const https = url.protocol === 'https:';
    const proxy = https ? this.forHttps : this.forHttp;
    if (proxy === undefined) return undefined;
    const port = url.port === '' ? (https ? 443 : 80) : Number(url.port);
    return this.noProxy.matches(url.hostname, port) ? undefined : proxy;
  }

  /** True when no URL can go through a proxy (nothing configured, or NO_PROXY=*). */
  get none(): boolean {
    return (this.forHttp === undefined && this.forHttps === undefined) || this.noProxy.matchesAll;
  }
}

/**
 * The proxies the environment names: `https_proxy` for https URLs, `http_proxy` for http URLs,
 * `all_proxy` for either when its own is unset; `no_proxy` for the exceptions (unless `noProxy`
 * replaces it). A value that is not a valid proxy URL fails here, typed, naming the variable.
 */
export function proxyFromEnvironment(env: Environment, cases: EnvCase, noProxy?: string | readonly string[]): ProxySelector {
  const all = envValue(env, 'all_proxy', cases);
  const http = envValue(env, 'http_proxy', cases) ?? all;
  const https = envValue(env, 'https_proxy', cases) ?? all;
  const exceptions = noProxy ?? envValue(env, 'no_proxy', cases)?.value;
  return new ProxySelector(
    http === undefined ? undefined : parseProxyUrl(http.value, http.name),
    https === undefined ? undefined : parseProxyUrl(https.value, https.name),
    new NoProxyList(exceptions),
  );
}

/** Proxies per URL scheme: `http` serves `http:` URLs, `https` serves `https:` URLs; a missing one means direct. */
export interface ProxyPerScheme {
  http?: string | undefined;
  https?: string | undefined;
}

/** The pool's `proxy` and `noProxy` options; undefined when every request goes direct. */
export function proxySelectorFor(proxy: string | ProxyPerScheme | undefined, noProxy: string | readonly string[] | undefined): ProxySelector | undefined {
  if (noProxy !== undefined && typeof noProxy !== 'string' && !(Array.isArray(noProxy) && noProxy.every((e) => typeof e === 'string'))) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'noProxy must be a string or an array of strings');
  }
  if (proxy === undefined) return undefined;
  let selector: ProxySelector;
  if (proxy === 'env') selector = proxyFromEnvironment(process.env, 'either', noProxy);
  else if (typeof proxy === 'string') {
    const endpoint = parseProxyUrl(proxy, 'proxy');
    selector = new ProxySelector(endpoint, endpoint, new NoProxyList(noProxy));
  } else if (typeof proxy === 'object' && proxy !== null) {
    const one = (value: unknown, name: string): ProxyEndpoint | undefined => {
      if (value === undefined || value === '') return undefined;
      if (typeof value !== 'string') throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `${name} must be a URL string, got ${typeof value}`);
      return parseProxyUrl(value, name);
    };
    selector = new ProxySelector(one(proxy.http, 'proxy.http'), one(proxy.https, 'proxy.https'), new NoProxyList(noProxy));
  } else {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `proxy must be a URL string, { http, https } or 'env', got ${typeof proxy}`);
  }
  return selector.none ? undefined : selector;
}

/**
 * The proxies curl would use for `env` when no `-x` is given: `http_proxy` (lower case only)
 * for http URLs, `HTTPS_PROXY` for https URLs (either case), `ALL_PROXY` for both when theirs is
 * unset; and `NO_PROXY` unless `--noproxy` replaces it.
 */
export function curlEnvironmentProxies(env: Environment): { proxy: ProxyPerScheme; noProxy: string | undefined } {
  const all = envValue(env, 'all_proxy', 'curl')?.value;
  return {
    proxy: { http: envValue(env, 'http_proxy', 'curl')?.value ?? all, https: envValue(env, 'https_proxy', 'curl')?.value ?? all },
    noProxy: envValue(env, 'no_proxy', 'curl')?.value,
  };
}
