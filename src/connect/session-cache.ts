import type { OriginStore } from './origin-store.js';

/** Where a cache keeps its sessions beyond the process: a store, and the record name for a key. */
export interface SessionPersistence {
  store: OriginStore;
  field: 'tlsSession' | 'quicSession';
  recordFor(id: string): string;
}

/** TLS sessions (TLS 1.3 tickets) or QUIC sessions per key, for resumption: a bounded LRU. */
export class TlsSessionCache {
  private readonly max: number;
  private readonly sessions = new Map<string, Buffer>();
  private readonly persistence: SessionPersistence | undefined;

  constructor(max = 256, persistence?: SessionPersistence) {
    this.max = max;
    this.persistence = max > 0 ? persistence : undefined;
  }

  get(id: string): Buffer | undefined {
    const cached = this.sessions.get(id);
    if (cached !== undefined || this.persistence === undefined) return cached;
    const { store, field, recordFor } = this.persistence;
    const stored = store.get(recordFor(id))?.[field];
    if (typeof stored !== 'string') return undefined;
    const session = Buffer.from(stored, 'base64');
    this.remember(id, session);
    return session;
  }

  set(id: string, session: Buffer): void {
    if (this.max <= 0) return;
    this.remember(id, session);
    this.persistence?.store.update(this.persistence.recordFor(id), { [this.persistence.field]: session.toString('base64') });
  }

  private remember(id: string, session: Buffer): void {
    this.sessions.delete(id);
    this.sessions.set(id, session);
    if (this.sessions.size > this.max) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
  }

  delete(id: string): void {
    this.sessions.delete(id);
    if (this.persistence !== undefined) this.persistence.store.update(this.persistence.recordFor(id), { [this.persistence.field]: undefined });
  }

  get size(): number {
    return this.sessions.size;
  }
}
