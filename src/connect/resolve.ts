/**
 * Name resolution, injectable. The default asks the operating system (`dns.lookup`, so
 * /etc/hosts and the local resolver apply, as for every Node socket); a pool can be given its
 * own resolver (service discovery, pinning names in tests). QUIC needs IP literals and HTTP/2
 * coalescing compares addresses, so both resolve through here.
 */
import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
  /**
   * How long the answer may be kept, in seconds (the DNS record's TTL). Only a pool with
   * `dnsCacheMs` reads it; an address without one is kept `dnsCacheMs`.
   */
  ttlSeconds?: number;
}

/** Every address of a host name, in the order the connection attempts should use. */
export type Resolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) => {
  const found = await dns.promises.lookup(hostname, { all: true, order: 'verbatim' });
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/**
 * A resolver that knows TTLs: asks DNS directly (`dns.resolve4`/`resolve6` with `ttl`) and, for
 * a name DNS does not know (one only in /etc/hosts, such as `localhost`), falls back to the
 * system's `lookup` (no TTL). It skips what `lookup` alone would apply (nsswitch, search
 * domains), which is why it is not the default. IPv6 answers come first, as `lookup`'s verbatim
 * order usually has them; Node's happy eyeballs races the families either way.
 */
export const dnsTtlResolver: Resolver = async (hostname) => {
  const [v6, v4] = await Promise.allSettled([dns.promises.resolve6(hostname, { ttl: true }), dns.promises.resolve4(hostname, { ttl: true })]);
  const found: ResolvedAddress[] = [];
  if (v6.status === 'fulfilled') for (const a of v6.value) found.push({ address: a.address, family: 6, ttlSeconds: a.ttl });
  if (v4.status === 'fulfilled') for (const a of v4.value) found.push({ address: a.address, family: 4, ttlSeconds: a.ttl });
  return found.length > 0 ? found : systemResolver(hostname);
};

/** An IP literal resolves to itself without a lookup. */
export async function resolveHost(resolver: Resolver, hostname: string): Promise<readonly ResolvedAddress[]> {
  const family = isIP(hostname);
  if (family !== 0) return [{ address: hostname, family: family === 6 ? 6 : 4 }];
  const addresses = await resolver(hostname);
  if (addresses.length === 0) throw notFound(hostname);
  return addresses;
}

function notFound(hostname: string, cause?: unknown): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`no address found for ${hostname}`, { cause });
  err.code = 'ENOTFOUND';
  return err;
}

/**
 * Node's callback-style `lookup` (what `net.connect` takes) over a `Resolver`. With
 * `autoSelectFamily` Node asks for every address and races them (happy eyeballs).
 */
export function toNodeLookup(resolver: Resolver): LookupFunction {
  return (hostname, options, callback) => {
    resolveHost(resolver, hostname).then(
      (addresses) => {
        if (options.all === true) {
          callback(null, addresses.map((a) => ({ address: a.address, family: a.family })));
          return;
        }
        const wanted = options.family === 4 || options.family === 6 ? addresses.find((a) => a.family === options.family) : addresses[0];
        if (wanted === undefined) callback(notFound(hostname), '', 0);
        else callback(null, wanted.address, wanted.family);
      },
      (err: unknown) => {
        const errno = err as NodeJS.ErrnoException | undefined;
        callback(errno?.code !== undefined ? errno : notFound(hostname, err), '', 0);
      },
    );
  };
}
