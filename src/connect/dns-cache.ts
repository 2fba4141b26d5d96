/**
 * A resolver cache for `dnsCacheMs`. The default resolver is the system's `lookup`
 * (getaddrinfo: /etc/hosts, nsswitch, search domains), which reports no TTL, so its answers are
 * kept `dnsCacheMs`. A resolver that reports TTLs (`dnsTtlResolver`, or a custom one returning
 * `ttlSeconds`) has its answers kept for the smallest TTL of the answer, at most `dnsCacheMs`
 * (RFC 1035 §3.2.1: TTL is how long a record may be cached; 0 means not at all). Failures are
 * not cached, and concurrent lookups of one name share one query.
 */
import type { Clock } from '../core/clock.js';
import type { ResolvedAddress, Resolver } from './resolve.js';

interface CachedAnswer {
  addresses: readonly ResolvedAddress[];
  expiresAt: number;
}

/** Names kept at most; the oldest goes first. */
const MAX_NAMES = 1024;

export class ResolverCache {
  private readonly answers = new Map<string, CachedAnswer>();
  private readonly pending = new Map<string, Promise<readonly ResolvedAddress[]>>();
  readonly resolve: Resolver;

  constructor(
    private readonly resolver: Resolver,
    private readonly clock: Clock,
    private readonly capMs: number,
  ) {
    this.resolve = (hostname) => this.lookup(hostname);
  }

  private lookup(hostname: string): Promise<readonly ResolvedAddress[]> {
    const now = this.clock.now();
    const cached = this.answers.get(hostname);
    if (cached !== undefined) {
      if (now < cached.expiresAt) return Promise.resolve(cached.addresses);
      this.answers.delete(hostname);
    }
    const running = this.pending.get(hostname);
    if (running !== undefined) return running;
    const query = this.resolver(hostname).then(
      (addresses) => {
        this.pending.delete(hostname);
        this.remember(hostname, addresses);
        return addresses;
      },
      (err: unknown) => {
        this.pending.delete(hostname);
        throw err;
      },
    );
    this.pending.set(hostname, query);
    return query;
  }

  private remember(hostname: string, addresses: readonly ResolvedAddress[]): void {
    let keepMs = this.capMs;
    for (const a of addresses) {
      if (a.ttlSeconds !== undefined && Number.isFinite(a.ttlSeconds) && a.ttlSeconds >= 0) keepMs = Math.min(keepMs, a.ttlSeconds * 1000);
    }
    if (addresses.length === 0 || keepMs <= 0) return;
    if (this.answers.size >= MAX_NAMES) {
      const oldest = this.answers.keys().next().value;
      if (oldest !== undefined) this.answers.delete(oldest);
    }
    this.answers.set(hostname, { addresses, expiresAt: this.clock.now() + keepMs });
  }

  /** Names with an answer kept (expired ones included until asked for again). */
  get size(): number {
    return this.answers.size;
  }
}
