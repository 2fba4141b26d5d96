/**
 * What origins advertised in Alt-Svc (RFC 7838), per pool key, with expiry: the HTTP/3
 * alternative to use, if any. Only `h3` matters to this client.
 *
 * An alternative on the origin's own host and port is always usable. One on another host or
 * port needs what RFC 7838 §2.1 calls "reasonable assurances that the alternative service is
 * under control of and valid for the whole origin": TLS with the certificate checked against
 * the origin's host name (the QUIC handshake sends the origin's name, not the alternative's).
 * So it is kept only when the key checks certificates against its own host: not with
 * `rejectUnauthorized: false`, and not with a custom `servername` (the name checked would not
 * be the origin's). Otherwise one injected header could move every later request of the
 * origin elsewhere (§9.2).
 */
import type { OriginStore } from '../connect/origin-store.js';
import type { Clock } from '../core/clock.js';
import { type PoolKey, normalizeHost } from '../pool/key.js';
import { type AltService, parseAltSvc } from '../protocol/alt-svc.js';

const MAX_ORIGINS = 1024;

/** Where HTTP/3 for an origin is served. */
export interface H3Alternative {
  host: string;
  port: number;
  /** Not the origin's own host and port: requests carry `Alt-Used` (§5) and keep their own tickets. */
  elsewhere: boolean;
}

interface Entry {
  /** Clock ms. */
  until: number;
  alternative: H3Alternative;
  /** The field value it was learned from, when, and its `ma`: a repeat is not parsed again. */
  value?: string;
  learnedAt?: number;
  maxAgeMs?: number;
}

/** A repeated field refreshes the expiry at most this often (and at least twice per `ma`). */
const RELEARN_MS = 60_000;

export class AltSvcCache {
  private readonly h3 = new Map<string, Entry>();

  /**
   * @param verifies whether connections for the key check the server's certificate against
   *   the key's host: the condition for honouring an alternative on another host or port.
   * @param onDropped told when an alternative elsewhere is replaced or forgotten, so what was
   *   kept for it (tickets, broken marks) goes too: an origin that names a new alternative on
   *   every response must not crowd other origins out of the bounded stores.
   */
  constructor(
    private readonly clock: Clock,
    private readonly store: OriginStore,
    private readonly recordFor: (keyId: string) => string,
    private readonly verifies: (key: PoolKey) => boolean,
    private readonly onDropped: (key: PoolKey, alternative: H3Alternative) => void = () => {},
  ) {}

  /**
   * Takes a response's Alt-Svc field. Returns true when a new HTTP/3 alternative became known
   * for the key (none, or another one, was known before), so the caller can prepare a connection.
   */
  learn(key: PoolKey, value: string | string[] | undefined): boolean {
    // Servers repeat the same field on every response: only a new value, or one seen a while
    // ago (its expiry moves on), is parsed.
    const seen = typeof value === 'string' ? this.h3.get(key.id) : undefined;
    const now = this.clock.now();
    if (seen !== undefined && seen.value === value && now - (seen.learnedAt ?? 0) < Math.min(RELEARN_MS, (seen.maxAgeMs ?? 0) / 2)) return false;
    const field = parseAltSvc(value);
    if (field === undefined) return false;
    if (field.clear) {
      this.forget(key);
      return false;
    }
    // §3: alternatives come in the server's order of preference; the first usable h3 one wins.
    let chosen: AltService | undefined;
    for (const alt of field.alternatives) {
      if (alt.protocol === 'h3' && this.usable(key, alt.host, alt.port)) {
        chosen = alt;
        break;
      }
    }
    if (chosen === undefined) {
      // An advertisement without a usable h3 replaces the old one (§3: the newest field wins).
      this.forget(key);
      return false;
    }
    const alternative = this.alternative(key, chosen.host, chosen.port);
    const before = this.h3.get(key.id) ?? this.fromStore(key);
    const fresh = before === undefined || !sameAlternative(before.alternative, alternative);
    if (before !== undefined && fresh && before.alternative.elsewhere) this.onDropped(key, before.alternative);
    const until = now + chosen.maxAgeSeconds * 1000;
    this.h3.delete(key.id);
    if (this.h3.size >= MAX_ORIGINS) {
      const oldest = this.h3.keys().next().value;
      if (oldest !== undefined) this.h3.delete(oldest);
    }
    this.h3.set(key.id, {
      until,
      alternative,
      ...(typeof value === 'string' ? { value, learnedAt: now, maxAgeMs: chosen.maxAgeSeconds * 1000 } : {}),
    });
    // Written once per learning, not per response: the store sees it when it is new, moved, or
    // its expiry moved by more than a minute (renewed, or shortened by a smaller `ma`).
    const record = this.store.get(this.recordFor(key.id));
    const epochUntil = Date.now() + (until - this.clock.now());
    const host = alternative.elsewhere ? alternative.host : undefined;
    const port = alternative.elsewhere ? alternative.port : undefined;
    if (
      record?.altSvcH3Until === undefined ||
      Math.abs(epochUntil - record.altSvcH3Until) > 60_000 ||
      record.altSvcH3Host !== host ||
      record.altSvcH3Port !== port
    ) {
      this.store.update(this.recordFor(key.id), { altSvcH3Until: epochUntil, altSvcH3Host: host, altSvcH3Port: port });
    }
    return fresh;
  }

  /** The fresh HTTP/3 alternative of the key, if one was advertised. */
  get(key: PoolKey): H3Alternative | undefined {
    let entry = this.h3.get(key.id);
    if (entry === undefined) {
      entry = this.fromStore(key);
      if (entry === undefined) return undefined;
      this.h3.set(key.id, entry);
    }
    if (this.clock.now() < entry.until) return entry.alternative;
    this.forget(key);
    return undefined;
  }

  /** A fresh HTTP/3 advertisement exists for the key. */
  has(key: PoolKey): boolean {
    return this.get(key) !== undefined;
  }

  /** Learned by an earlier process sharing the store; checked again, as a header would be. */
  private fromStore(key: PoolKey): Entry | undefined {
    const record = this.store.get(this.recordFor(key.id));
    const stored = record?.altSvcH3Until;
    if (typeof stored !== 'number' || stored <= Date.now()) return undefined;
    const host = record?.altSvcH3Host ?? '';
    const port = record?.altSvcH3Port ?? key.port;
    if (typeof host !== 'string' || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
    if (!this.usable(key, host, port)) return undefined;
    return { until: this.clock.now() + (stored - Date.now()), alternative: this.alternative(key, host, port) };
  }

  private usable(key: PoolKey, host: string, port: number): boolean {
    return !this.alternative(key, host, port).elsewhere || this.verifies(key);
  }

  private alternative(key: PoolKey, host: string, port: number): H3Alternative {
    const target = host === '' ? key.host : sameHostName(host, key.host) ? key.host : host;
    return { host: target, port, elsewhere: target !== key.host || port !== key.port };
  }

  private forget(key: PoolKey): void {
    const before = this.h3.get(key.id);
    if (before?.alternative.elsewhere === true) this.onDropped(key, before.alternative);
    this.h3.delete(key.id);
    if (this.store.get(this.recordFor(key.id))?.altSvcH3Until !== undefined) {
      this.store.update(this.recordFor(key.id), { altSvcH3Until: undefined, altSvcH3Host: undefined, altSvcH3Port: undefined });
    }
  }
}

/** Names compare as normalised hosts (IPv6 spellings, case) and without a root dot. */
function sameHostName(a: string, b: string): boolean {
  try {
    return normalizeHost(a).replace(/\.$/, '') === normalizeHost(b).replace(/\.$/, '');
  } catch {
    return false;
  }
}

function sameAlternative(a: H3Alternative, b: H3Alternative): boolean {
  return a.host === b.host && a.port === b.port;
}
