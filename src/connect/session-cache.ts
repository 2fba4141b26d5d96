/** TLS sessions (TLS 1.3 tickets) per key, for resumption: a bounded LRU. */
export class TlsSessionCache {
  private readonly max: number;
  private readonly sessions = new Map<string, Buffer>();

  constructor(max = 256) {
    this.max = max;
  }

  get(id: string): Buffer | undefined {
    return this.sessions.get(id);
  }

  set(id: string, session: Buffer): void {
    if (this.max <= 0) return;
    this.sessions.delete(id);
    this.sessions.set(id, session);
    if (this.sessions.size > this.max) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }
}
