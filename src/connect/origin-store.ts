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
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fstatSync, openSync, readSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
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
 * The largest store file read, and written: a bigger file is ignored with a warning, unread (a
 * file we wrote never is one: writes drop the oldest records to stay under it).
 */
export const MAX_STORE_FILE_BYTES = 4 * 1024 * 1024;
/** Longer record keys, tickets and host names than these are damage, not knowledge. */
const MAX_KEY_CHARS = 2_048;
const MAX_TICKET_CHARS = 64 * 1024;
const MAX_HOST_CHARS = 255;
/** Alt-Svc advertisements are honoured at most this far ahead across processes (`ma` beyond is clamped). */
const MAX_ALT_SVC_AHEAD_MS = 30 * 24 * 3_600_000;
/** Broken marks and backoffs longer than this were not written by a pool: they are dropped. */
const MAX_BROKEN_MS = 24 * 3_600_000;
/** Records serialised per turn of the event loop when writing in the background. */
const RECORDS_PER_TURN = 256;

function positiveUntil(value: unknown, now: number): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > now;
}

/** A host name or address literal: no space, control character or slash, of DNS length. */
function plausibleHost(value: unknown): value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_HOST_CHARS) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c === 0x2f) return false;
  }
  return true;
}

/** Decoded with `Buffer.from(…, 'base64')` and judged by the TLS stack: only the size matters here. */
function ticket(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TICKET_CHARS;
}

/**
 * One record as read from a file, kept only for what a pool could have written: known fields
 * of the right type and range. Expired advertisements and marks are dropped; an advertisement
 * far ahead is clamped to `MAX_ALT_SVC_AHEAD_MS` (an origin may say `ma` of years; a new
 * process checks again sooner); a broken mark beyond `MAX_BROKEN_MS` is dropped (no pool
 * writes one: `brokenUntil: 1e15` would keep HTTP/3 off an origin for ever). Tickets are the
 * TLS stack's to judge, once they are strings of a sane size.
 */
function cleanRecord(raw: unknown, now: number): OriginRecord | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const r = raw as Record<string, unknown>;
  const clean: OriginRecord = {};
  const host = r['altSvcH3Host'];
  const port = r['altSvcH3Port'];
  if (
    positiveUntil(r['altSvcH3Until'], now) &&
    (host === undefined || plausibleHost(host)) &&
    (port === undefined || (typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65_535))
  ) {
    clean.altSvcH3Until = Math.min(r['altSvcH3Until'], now + MAX_ALT_SVC_AHEAD_MS);
    if (host !== undefined) clean.altSvcH3Host = host;
    if (port !== undefined) clean.altSvcH3Port = port;
  }
  const backoff = r['brokenBackoffMs'];
  if (
    positiveUntil(r['brokenUntil'], now) &&
    r['brokenUntil'] <= now + MAX_BROKEN_MS &&
    typeof backoff === 'number' &&
    Number.isFinite(backoff) &&
    backoff > 0 &&
    backoff <= MAX_BROKEN_MS
  ) {
    clean.brokenUntil = r['brokenUntil'];
    clean.brokenBackoffMs = backoff;
  }
  if (r['tcpProtocol'] === 'h2' || r['tcpProtocol'] === 'http/1.1') clean.tcpProtocol = r['tcpProtocol'];
  const limit = r['streamLimit'];
  if (typeof limit === 'number' && Number.isInteger(limit) && limit >= 0 && limit <= 0xffff_ffff) clean.streamLimit = limit;
  if (ticket(r['tlsSession'])) clean.tlsSession = r['tlsSession'];
  if (ticket(r['quicSession'])) clean.quicSession = r['quicSession'];
  return Object.keys(clean).length > 0 ? clean : undefined;
}

/**
 * Decodes a store file's text into its records (pure: no I/O, `now` is epoch milliseconds).
 * Anything malformed yields fewer records, never an exception: a damaged file is as good as
 * none, since knowledge is rebuilt and never trusted blindly. At most `MAX_RECORDS` are kept,
 * the newest (files list records oldest first).
 */
export function parseOriginStore(text: string, now: number): Map<string, OriginRecord> {
  const records = new Map<string, OriginRecord>();
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return records;
  }
  if (typeof data !== 'object' || data === null) return records;
  const { version, origins } = data as { version?: unknown; origins?: unknown };
  if (version !== FILE_VERSION || typeof origins !== 'object' || origins === null || Array.isArray(origins)) return records;
  const entries = Object.entries(origins as Record<string, unknown>);
  for (let i = Math.max(0, entries.length - MAX_RECORDS); i < entries.length; i++) {
    const [origin, raw] = entries[i] as [string, unknown];
    if (origin.length === 0 || origin.length > MAX_KEY_CHARS) continue;
    const record = cleanRecord(raw, now);
    if (record !== undefined) records.set(origin, record);
  }
  return records;
}

/** One `"origin":{...}` member per record, in order. */
function encodeRecord(origin: string, record: OriginRecord): string {
  return `${JSON.stringify(origin)}:${JSON.stringify(record)}`;
}

const FILE_PREFIX = `{"version":${FILE_VERSION},"origins":{`;
const FILE_SUFFIX = '}}';

/** The index of the oldest member kept: the newest members that fit under `MAX_STORE_FILE_BYTES`. */
function firstFitting(sizes: readonly number[]): number {
  let bytes = FILE_PREFIX.length + FILE_SUFFIX.length;
  let first = sizes.length;
  while (first > 0) {
    const size = (sizes[first - 1] as number) + 1; // and its comma
    if (bytes + size > MAX_STORE_FILE_BYTES) break;
    bytes += size;
    first--;
  }
  return first;
}

/** The file's text: every record when they fit (the usual case, one `stringify`), else the newest that fit. */
function assemble(records: Map<string, OriginRecord>): string {
  const whole = JSON.stringify({ version: FILE_VERSION, origins: Object.fromEntries(records) });
  if (whole.length <= MAX_STORE_FILE_BYTES / 3 || Buffer.byteLength(whole) <= MAX_STORE_FILE_BYTES) return whole;
  const members = [...records].map(([origin, record]) => encodeRecord(origin, record));
  const first = firstFitting(members.map((member) => Buffer.byteLength(member)));
  return FILE_PREFIX + members.slice(first).join(',') + FILE_SUFFIX;
}

function warn(message: string): void {
  process.emitWarning(message, { type: 'MuxpoolWarning', code: 'MUXPOOL_ORIGIN_STORE' });
}

/**
 * The temp file must be private before secrets go in: created 0600 (a umask can only narrow
 * that), checked anyway, and refused if a repair did not take (a file system ignoring modes).
 */
function notPrivate(mode: number): void {
  if ((mode & 0o077) !== 0) throw new Error(`temp file mode ${(mode & 0o777).toString(8)} cannot be made private`);
}

/** POSIX file owners and modes mean something here (not on Windows). */
const POSIX = process.platform !== 'win32' && typeof process.getuid === 'function';

/**
 * A JSON file shared by processes: read once when created, written (atomically: a private temp
 * file renamed over it) at most once a second while things change, and on `flush()`. Concurrent
 * writers do not merge: the last one wins, which only costs some rediscovery.
 *
 * The file holds session tickets, which are secrets, and steers where requests go, so:
 * - a store file owned by another user is refused (`MUXPOOL_ERR_INVALID_ARGUMENT` from the
 *   constructor); one the group or others can write is repaired (made 0600) but its content is
 *   not trusted (ignored, with a warning); one they can only read is made 0600 and used;
 * - writes go to a temp file with an unpredictable name, created exclusively (`O_CREAT|O_EXCL`:
 *   never through a planted file or symlink) with mode 0600 (checked), then renamed over the
 *   store (a symlink at the store's path is replaced, not followed);
 * - what is loaded is bounded: a file over `MAX_STORE_FILE_BYTES` (4 MiB) is ignored with a
 *   warning, unread; at most 4 096 records are kept; each value is checked (`parseOriginStore`).
 *
 * The writes the pool triggers happen in the background, serialised a few records per turn of
 * the event loop with asynchronous file I/O; `flush()` (which the pool calls when it closes)
 * writes synchronously whatever is pending, so nothing learned is lost at exit.
 */
export class FileOriginStore extends MemoryOriginStore {
  private readonly path: string;
  private timer: NodeJS.Timeout | undefined;
  /** Changes not yet captured by a write. */
  private dirty = false;
  /** Background writes under way (each captured its records when it started). */
  private writing = 0;
  /** Bumped by every write: an older background write that finds it moved does not rename. */
  private generation = 0;
  private warnedWrite = false;

  constructor(path: string) {
    super();
    if (typeof path !== 'string' || path === '') {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'FileOriginStore needs a file path');
    }
    this.path = path;
    this.load();
  }

  private load(): void {
    let fd: number;
    try {
      // Non-blocking open: a FIFO planted at the path must not hang the constructor.
      fd = openSync(this.path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    } catch {
      return; // No file yet: nothing learned.
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) {
        warn(`origin store ${this.path} is not a regular file: ignored`);
        return;
      }
      if (POSIX) {
        if (stat.uid !== process.getuid?.()) {
          throw new MuxpoolError(
            'MUXPOOL_ERR_INVALID_ARGUMENT',
            `origin store ${this.path} belongs to another user (uid ${stat.uid}): refused, since whoever owns it decides where requests go and could read session tickets`,
          );
        }
        if ((stat.mode & 0o077) !== 0) {
          // Ours: made private at once; others could have written it, so its content is not trusted.
          fchmodSync(fd, 0o600);
          if ((stat.mode & 0o022) !== 0) {
            warn(`origin store ${this.path} was writable by others (mode ${(stat.mode & 0o777).toString(8)}): made 0600, its content ignored`);
            return;
          }
        }
      }
      if (stat.size > MAX_STORE_FILE_BYTES) {
        warn(`origin store ${this.path} is ${stat.size} bytes, over the ${MAX_STORE_FILE_BYTES}-byte limit: ignored, and replaced at the next write`);
        return;
      }
      // Read at most one byte past the limit: a file that grew since fstat is not read whole either.
      const buffer = Buffer.allocUnsafe(Math.min(stat.size, MAX_STORE_FILE_BYTES) + 1);
      let length = 0;
      for (;;) {
        const n = readSync(fd, buffer, length, buffer.length - length, null);
        if (n === 0) break;
        length += n;
        if (length === buffer.length) break;
      }
      if (length > MAX_STORE_FILE_BYTES) {
        warn(`origin store ${this.path} grew over the ${MAX_STORE_FILE_BYTES}-byte limit while read: ignored`);
        return;
      }
      for (const [origin, record] of parseOriginStore(buffer.toString('utf8', 0, length), Date.now())) this.records.set(origin, record);
    } catch (err) {
      if (err instanceof MuxpoolError) throw err;
      // Unreadable: as good as no file.
    } finally {
      closeSync(fd);
    }
  }

  protected override changed(): void {
    this.dirty = true;
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.writeInBackground();
    }, WRITE_DELAY_MS);
    this.timer.unref();
  }

  override flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // A background write under way may not finish before the process exits: write now instead.
    if (!this.dirty && this.writing === 0) return;
    this.dirty = false;
    ++this.generation;
    const text = assemble(this.records);
    const temp = this.tempPath();
    let fd: number | undefined;
    let created = false;
    try {
      fd = openSync(temp, 'wx', 0o600);
      created = true;
      if (POSIX && (fstatSync(fd).mode & 0o077) !== 0) {
        fchmodSync(fd, 0o600);
        notPrivate(fstatSync(fd).mode);
      }
      writeFileSync(fd, text);
      closeSync(fd);
      fd = undefined;
      renameSync(temp, this.path);
    } catch (err) {
      this.failed(err, fd, created ? temp : undefined);
    }
  }

  /** The debounced write: serialised a slice at a time, file I/O off the event loop. */
  private async writeInBackground(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    this.writing++;
    const generation = ++this.generation;
    const temp = this.tempPath();
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    let created = false;
    try {
      // Records are replaced, never changed in place, so this snapshot stays as it was taken.
      // Encoding is sliced, a few hundred records per turn, so no turn holds the loop for long.
      const entries = [...this.records];
      const members: string[] = [];
      const sizes: number[] = [];
      for (let i = 0; i < entries.length; i++) {
        if (i > 0 && i % RECORDS_PER_TURN === 0) await nextTurn();
        const [origin, record] = entries[i] as [string, OriginRecord];
        const member = encodeRecord(origin, record);
        members.push(member);
        sizes.push(Buffer.byteLength(member));
      }
      const chunks: Buffer[] = [Buffer.from(FILE_PREFIX)];
      for (let i = firstFitting(sizes); i < members.length; i += RECORDS_PER_TURN) {
        await nextTurn();
        const slice = members.slice(i, i + RECORDS_PER_TURN).join(',');
        chunks.push(Buffer.from(i + RECORDS_PER_TURN < members.length ? `${slice},` : slice));
      }
      chunks.push(Buffer.from(FILE_SUFFIX));
      if (generation !== this.generation) return;
      handle = await open(temp, 'wx', 0o600);
      created = true;
      if (POSIX && ((await handle.stat()).mode & 0o077) !== 0) {
        await handle.chmod(0o600);
        notPrivate((await handle.stat()).mode);
      }
      await handle.writeFile(Buffer.concat(chunks));
      await handle.close();
      handle = undefined;
      // Renamed synchronously: a `flush()` that ran meanwhile wrote newer records, and no
      // rename of ours may land after its rename.
      if (generation === this.generation) renameSync(temp, this.path);
      else unlinkSync(temp);
    } catch (err) {
      this.dirty = true;
      await handle?.close().catch(() => undefined);
      this.failed(err, undefined, created ? temp : undefined);
    } finally {
      this.writing--;
    }
  }

  /** `<path>.<random>.tmp`: a name no one can plant ahead of us (and two processes never share). */
  private tempPath(): string {
    return `${this.path}.${randomBytes(8).toString('hex')}.tmp`;
  }

  /** Persisting is best effort (a read-only disk must not fail requests): clean up, warn once. */
  private failed(err: unknown, fd: number | undefined, temp: string | undefined): void {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // Already closed.
      }
    }
    // Only a temp file we created is removed: an existing name (EEXIST) is someone else's.
    if (temp !== undefined) {
      try {
        unlinkSync(temp);
      } catch {
        // Never created, or gone.
      }
    }
    if (!this.warnedWrite) {
      this.warnedWrite = true;
      warn(`origin store ${this.path} could not be written: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
