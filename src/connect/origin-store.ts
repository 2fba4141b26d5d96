/**
 * What the pool learned about origins, behind one small interface so it can outlive the process:
 * Alt-Svc advertisements, HTTP/3 failures (broken marks with their backoff), the protocol ALPN
 * chose, the peer's stream limit, and TLS and QUIC session tickets. With a shared file store a
 * new process skips discovery (it goes to HTTP/3 at once) and resumes its sessions.
 *
 * Times are wall-clock epoch milliseconds (`Date.now()`), since they must mean the same in the
 * next process; the pool's own clock is monotonic and per process.
 *
 * Records are keyed by the pool key id plus the TLS identity's fingerprint, so a ticket or
 * advertisement learned under one trust configuration is never used under another.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { MuxpoolError } from '../errors.js';

export interface OriginRecord {
  /** Alt-Svc advertised h3 until this time: on the origin's own host and port, or on these. */
  altSvcH3Until?: number;
  altSvcH3Host?: string;
  altSvcH3Port?: number;
  /** HTTP/3 failed here: skip it until this time; the next failure doubles `brokenBackoffMs`. */
  brokenUntil?: number;
  brokenBackoffMs?: number;
  /** What ALPN chose when offered h2 and http/1.1. */
  tcpProtocol?: 'h2' | 'http/1.1';
  /** The peer's concurrent stream limit last seen (HTTP/2 SETTINGS or QUIC credit). */
  streamLimit?: number;
  /** Session tickets, base64. */
  tlsSession?: string;
  quicSession?: string;
}

export interface OriginStore {
  get(origin: string): OriginRecord | undefined;
  /** Merges `patch` into the record; `undefined` fields are removed. */
  update(origin: string, patch: Partial<Record<keyof OriginRecord, unknown>>): void;
  /** Writes out what is pending (file stores); the pool calls it when it closes. */
  flush(): void;
}

const MAX_RECORDS = 4096;

/** The default: knowledge lives as long as the pool. Bounded, oldest records dropped first. */
export class MemoryOriginStore implements OriginStore {
  protected readonly records = new Map<string, OriginRecord>();

  get(origin: string): OriginRecord | undefined {
    return this.records.get(origin);
  }

  update(origin: string, patch: Partial<Record<keyof OriginRecord, unknown>>): void {
    const record: Record<string, unknown> = { ...this.records.get(origin) };
    for (const [name, value] of Object.entries(patch)) {
      if (value === undefined) delete record[name];
      else record[name] = value;
    }
    this.records.delete(origin);
    if (this.records.size >= MAX_RECORDS) {
      const oldest = this.records.keys().next().value;
      if (oldest !== undefined) this.records.delete(oldest);
    }
    if (Object.keys(record).length > 0) this.records.set(origin, record as OriginRecord);
    this.changed();
  }

  flush(): void {
    // Nothing to write.
  }

  /** Subclasses persist here. */
  protected changed(): void {
    // In memory only.
  }
}

const FILE_VERSION = 1;
const WRITE_DELAY_MS = 1_000;

/**
 * A JSON file shared by processes: read once when created, written (atomically: a temp file
 * renamed over it) at most once a second while things change, and on `flush()`. Concurrent
 * writers do not merge: the last one wins, which only costs some rediscovery.
 */
export class FileOriginStore extends MemoryOriginStore {
  private readonly path: string;
  private timer: NodeJS.Timeout | undefined;

  constructor(path: string) {
    super();
    if (typeof path !== 'string' || path === '') {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'FileOriginStore needs a file path');
    }
    this.path = path;
    this.load();
  }

  private load(): void {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return; // No file yet: nothing learned.
    }
    try {
      const data = JSON.parse(text) as { version?: unknown; origins?: unknown };
      if (data.version !== FILE_VERSION || typeof data.origins !== 'object' || data.origins === null) return;
      const now = Date.now();
      for (const [origin, record] of Object.entries(data.origins as Record<string, OriginRecord>)) {
        if (typeof record !== 'object' || record === null) continue;
        // Expired advertisements and marks are dropped on load; tickets are the TLS stack's to judge.
        const clean: Record<string, unknown> = { ...record };
        if (typeof clean['altSvcH3Until'] !== 'number' || (clean['altSvcH3Until'] as number) <= now) {
          delete clean['altSvcH3Until'];
          delete clean['altSvcH3Host'];
          delete clean['altSvcH3Port'];
        }
        if (typeof clean['brokenUntil'] !== 'number' || (clean['brokenUntil'] as number) <= now) {
          delete clean['brokenUntil'];
          delete clean['brokenBackoffMs'];
        }
        if (Object.keys(clean).length > 0) this.records.set(origin, clean as OriginRecord);
      }
    } catch {
      // A damaged file is as good as none: knowledge is rebuilt, never trusted blindly.
    }
  }

  protected override changed(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.write();
    }, WRITE_DELAY_MS);
    this.timer.unref();
  }

  override flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.write();
  }

  private write(): void {
    const temp = `${this.path}.${process.pid}.tmp`;
    try {
      writeFileSync(temp, JSON.stringify({ version: FILE_VERSION, origins: Object.fromEntries(this.records) }), { mode: 0o600 });
      renameSync(temp, this.path);
    } catch {
      // Persisting is best effort: a read-only disk must not fail requests.
    }
  }
}
