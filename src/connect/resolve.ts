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
}

/** Every address of a host name, in the order the connection attempts should use. */
export type Resolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) => {
  const found = await dns.promises.lookup(hostname, { all: true, order: 'verbatim' });
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
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
