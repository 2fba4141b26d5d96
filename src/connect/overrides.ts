/**
 * Per-pool host overrides in the manner of curl: `resolve` (`--resolve host:port:addr[,addr]`)
 * gives the addresses of a host name for one port without asking DNS, and `connectTo`
 * (`--connect-to host:port:host2:port2`) sends connections for one host and port to another.
 * They change where a connection goes, never whom it must reach: the TLS server name and the
 * certificate check stay the URL's host, and TCP and QUIC both follow them.
 *
 * As in curl, `connectTo` applies first, then `resolve` to the host it produced, and the first
 * matching entry wins.
 */
import { createHash } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import { MuxpoolError } from '../errors.js';
import { normalizeHost } from '../pool/key.js';
import { type ResolvedAddress, type Resolver, resolveHost, toNodeLookup } from './resolve.js';

interface ResolveEntry {
  host: string;
  port: number;
  addresses: readonly ResolvedAddress[];
}

interface ConnectToEntry {
  /** Undefined: any host (curl's empty HOST1). */
  host: string | undefined;
  /** Undefined: any port (curl's empty PORT1). */
  port: number | undefined;
  /** Undefined: keep the host (empty HOST2). */
  toHost: string | undefined;
  /** Undefined: keep the port (empty PORT2). */
  toPort: number | undefined;
}

/** Where a connection goes: a host name or address, and a port. */
export interface DialTarget {
  host: string;
  port: number;
}

const HOST = String.raw`(\[[^\]]*\]|[^:\[\]]*)`;
const PORT = String.raw`(\d{0,5})`;
const CONNECT_TO = new RegExp(`^${HOST}:${PORT}:${HOST}:${PORT}$`);
const RESOLVE = new RegExp(`^${HOST}:(\\d{1,5}):(.+)$`);

function invalid(message: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', message);
}

function portOf(text: string, entry: string, optional: boolean): number | undefined {
  if (text === '') {
    if (optional) return undefined;
    throw invalid(`${entry}: a port is required`);
  }
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw invalid(`${entry}: ${text} is not a port (1..65535)`);
  return port;
}

function hostOf(text: string, entry: string, optional: boolean): string | undefined {
  if (text === '' || text === '[]') {
    if (optional) return undefined;
    throw invalid(`${entry}: a host is required`);
  }
  return normalizeHost(text);
}

/** `host:port:addr[,addr]…` (addresses IPv4, or IPv6 with or without brackets). */
export function parseResolveEntry(entry: string): ResolveEntry {
  const match = typeof entry === 'string' ? RESOLVE.exec(entry) : null;
  if (match === null) throw invalid(`resolve entry ${JSON.stringify(entry)} must read host:port:address[,address]…`);
  const host = hostOf(match[1] as string, entry, false) as string;
  const port = portOf(match[2] as string, entry, false) as number;
  const addresses: ResolvedAddress[] = [];
  for (const raw of (match[3] as string).split(',')) {
    const address = raw.trim().replace(/^\[(.*)\]$/, '$1');
    const family = isIP(address);
    if (family === 0) throw invalid(`resolve entry ${JSON.stringify(entry)}: ${JSON.stringify(raw)} is not an IP address`);
    addresses.push({ address: family === 6 ? normalizeHost(address) : address, family: family === 6 ? 6 : 4 });
  }
  return { host, port, addresses };
}

/** `host:port:host2:port2`, each part may be empty (any host or port; keep host or port). */
export function parseConnectToEntry(entry: string): ConnectToEntry {
  const match = typeof entry === 'string' ? CONNECT_TO.exec(entry) : null;
  if (match === null) throw invalid(`connectTo entry ${JSON.stringify(entry)} must read host:port:host2:port2`);
  return {
    host: hostOf(match[1] as string, entry, true),
    port: portOf(match[2] as string, entry, true),
    toHost: hostOf(match[3] as string, entry, true),
    toPort: portOf(match[4] as string, entry, true),
  };
}

function list(name: string, value: readonly string[] | undefined): readonly string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(`${name} must be an array of strings`);
  return value;
}

function overridesFingerprint(resolve: readonly ResolveEntry[], connectTo: readonly ConnectToEntry[]): string {
  if (resolve.length === 0 && connectTo.length === 0) return '';
  return createHash('sha256').update(JSON.stringify([resolve, connectTo])).digest('base64url').slice(0, 16);
}

/** The `fingerprint` a `DialRoutes` with these entries has ('' without any); throws on a bad entry. */
export function routesFingerprint(resolve: readonly string[] | undefined, connectTo: readonly string[] | undefined): string {
  return overridesFingerprint(list('resolve', resolve).map(parseResolveEntry), list('connectTo', connectTo).map(parseConnectToEntry));
}

export class DialRoutes {
  private readonly resolveEntries: readonly ResolveEntry[];
  private readonly connectToEntries: readonly ConnectToEntry[];
  private readonly resolver: Resolver;
  /** True when any override is set: dials go through `target` and `addresses`. */
  readonly active: boolean;
  /**
   * A digest of the overrides ('' without): what a pool learns about an origin through them
   * (Alt-Svc, tickets, broken marks) is recorded apart from what it learns going direct, so a
   * shared origin store is never poisoned across pools with different overrides.
   */
  readonly fingerprint: string;

  constructor(resolve: readonly string[] | undefined, connectTo: readonly string[] | undefined, resolver: Resolver) {
    this.resolveEntries = list('resolve', resolve).map(parseResolveEntry);
    this.connectToEntries = list('connectTo', connectTo).map(parseConnectToEntry);
    this.resolver = resolver;
    this.active = this.resolveEntries.length > 0 || this.connectToEntries.length > 0;
    this.fingerprint = overridesFingerprint(this.resolveEntries, this.connectToEntries);
  }

  /** Where a connection for `host:port` goes once `connectTo` applied. */
  target(host: string, port: number): DialTarget {
    for (const entry of this.connectToEntries) {
      if ((entry.host === undefined || entry.host === host) && (entry.port === undefined || entry.port === port)) {
        return { host: entry.toHost ?? host, port: entry.toPort ?? port };
      }
    }
    return { host, port };
  }

  /** The addresses for a target: a `resolve` entry's, else the resolver's (IP literals as they are). */
  addresses(host: string, port: number): Promise<readonly ResolvedAddress[]> {
    for (const entry of this.resolveEntries) {
      if (entry.host === host && entry.port === port) return Promise.resolve(entry.addresses);
    }
    return resolveHost(this.resolver, host);
  }

  /** Node's `lookup` for a dial to `port` (a `resolve` entry is per port). */
  lookupFor(port: number): LookupFunction {
    return toNodeLookup((hostname) => this.addresses(normalizeHost(hostname), port));
  }
}
