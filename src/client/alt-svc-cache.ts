/**
 * What origins advertised in Alt-Svc (RFC 7838), per pool key, with expiry. Only HTTP/3 on the
 * origin's own host and port is kept: an alternative elsewhere needs the certificate checks of
 * RFC 7838 §2.1 against another address, which this client does not make yet, so it is ignored.
 */
import type { OriginStore } from '../connect/origin-store.js';
import type { Clock } from '../core/clock.js';
import type { PoolKey } from '../pool/key.js';
import { parseAltSvc } from '../protocol/alt-svc.js';

const MAX_ORIGINS = 1024;

export class AltSvcCache {
  /** Key id → when the h3 advertisement expires (clock ms). */
  private readonly h3 = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly store: OriginStore,
    private readonly recordFor: (keyId: string) => string,
  ) {}

  /**
   * Takes a response's Alt-Svc field. Returns true when HTTP/3 became known for the key (it was
   * not before), so the caller can prepare a connection.
   */
  learn(key: PoolKey, value: string | string[] | undefined): boolean {
    const field = parseAltSvc(value);
    if (field === undefined) return false;
    if (field.clear) {
      this.forget(key);
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
      this.forget(key);
      return false;
    }
    this.h3.delete(key.id);
    if (this.h3.size >= MAX_ORIGINS) {
      const oldest = this.h3.keys().next().value;
      if (oldest !== undefined) this.h3.delete(oldest);
    }
    this.h3.set(key.id, until);
    // Written once per learning, not per response: the store sees it when it is new or its
    // expiry moved by more than a minute (renewed, or shortened by a smaller `ma`).
    const record = this.store.get(this.recordFor(key.id));
    const epochUntil = Date.now() + (until - this.clock.now());
    if (record?.altSvcH3Until === undefined || Math.abs(epochUntil - record.altSvcH3Until) > 60_000) {
      this.store.update(this.recordFor(key.id), { altSvcH3Until: epochUntil });
    }
    return !known;
  }

  private forget(key: PoolKey): void {
    this.h3.delete(key.id);
    if (this.store.get(this.recordFor(key.id))?.altSvcH3Until !== undefined) {
      this.store.update(this.recordFor(key.id), { altSvcH3Until: undefined });
    }
  }

  /** A fresh HTTP/3 advertisement exists for the key. */
  has(key: PoolKey): boolean {
    let until = this.h3.get(key.id);
    if (until === undefined) {
      // Learned by an earlier process sharing the store.
      const stored = this.store.get(this.recordFor(key.id))?.altSvcH3Until;
      if (stored === undefined || stored <= Date.now()) return false;
      until = this.clock.now() + (stored - Date.now());
      this.h3.set(key.id, until);
    }
    if (this.clock.now() < until) return true;
    this.forget(key);
    return false;
  }
}
