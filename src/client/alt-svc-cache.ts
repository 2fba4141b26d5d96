/**
 * What origins advertised in Alt-Svc (RFC 7838), per pool key, with expiry. Only HTTP/3 on the
 * origin's own host and port is kept: an alternative elsewhere needs the certificate checks of
 * RFC 7838 §2.1 against another address, which this client does not make yet, so it is ignored.
 */
import type { Clock } from '../core/clock.js';
import type { PoolKey } from '../pool/key.js';
import { parseAltSvc } from '../protocol/alt-svc.js';

const MAX_ORIGINS = 1024;

export class AltSvcCache {
  /** Key id → when the h3 advertisement expires (clock ms). */
  private readonly h3 = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  /**
   * Takes a response's Alt-Svc field. Returns true when HTTP/3 became known for the key (it was
   * not before), so the caller can prepare a connection.
   */
  learn(key: PoolKey, value: string | string[] | undefined): boolean {
    const field = parseAltSvc(value);
    if (field === undefined) return false;
    if (field.clear) {
      this.h3.delete(key.id);
      return false;
    }
    const known = this.has(key);
    let until: number | undefined;
    for (const alt of field.alternatives) {
      if (alt.protocol !== 'h3' || alt.port !== key.port || (alt.host !== '' && alt.host !== key.host)) continue;
      const expires = this.clock.now() + alt.maxAgeSeconds * 1000;
      until = Math.max(until ?? 0, expires);
    }
    if (until === undefined) {
      // An advertisement without h3 here replaces the old one (§3: the newest field wins).
      this.h3.delete(key.id);
      return false;
    }
    this.h3.delete(key.id);
    if (this.h3.size >= MAX_ORIGINS) {
      const oldest = this.h3.keys().next().value;
      if (oldest !== undefined) this.h3.delete(oldest);
    }
    this.h3.set(key.id, until);
    return !known;
  }

  /** A fresh HTTP/3 advertisement exists for the key. */
  has(key: PoolKey): boolean {
    const until = this.h3.get(key.id);
    if (until === undefined) return false;
    if (this.clock.now() < until) return true;
    this.h3.delete(key.id);
    return false;
  }
}
