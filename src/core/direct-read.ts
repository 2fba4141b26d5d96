/**
 * Socket reads that skip the Readable stream: a socket dialed with `directReadOptions()` as its
 * `onread` hands every read to this module's callback instead of pushing it through
 * `stream.push()` → `'data'`. While no reader is attached (the TLS handshake, an HTTP/1.1
 * connection, a socket lent to a user), the callback pushes the bytes into the socket's own
 * Readable, so the socket behaves as any other (`'data'`, `pause()`, `read()`, backpressure).
 * A driver that attaches a reader (our HTTP/2 engine) gets each read as a plain call.
 *
 * Why: per read, the Readable path costs a Buffer view, `addChunk`, an `'data'` emit and a
 * `maybeReadMore` tick, and a fresh allocation that the collector then has to reclaim; a bulk
 * TLS download makes one read per 16 KiB record, a request at
 * c = 1 one read per response. Measured (bench/h2-cpu.ts) in the README's HTTP/2 section.
 *
 * Where reads land: small ones (a response at c = 1) in one buffer all sockets share (Node
 * calls the callback synchronously after each read, before any other read), copied out at once
 * (Buffer's pool makes that cheap); after a large read, the next ones land in a slab of this
 * socket's and are handed on as views of it, with no copy and one allocation per slab instead
 * of one per read. A connection that only does small requests holds no buffer of its own while
 * idle; one whose last read was large holds one slab (64 KiB) until a small read, when it drops
 * it. A body chunk kept from a slab read keeps that slab alive, as any view of a larger buffer.
 */
import type { Socket } from 'node:net';

/** What takes a socket's reads once attached. `bytes` is the caller's to keep. */
export interface DirectReader {
  onSocketRead(bytes: Buffer): void;
}

/** A TLS record's plaintext at most (RFC 8446 §5.1): Node hands over one record per read. */
const RECORD_BYTES = 16 * 1024;
/** Reads this large suggest more of them (a bulk body): the next ones go to the slab. */
const LARGE_READ_BYTES = 8 * 1024;
const SLAB_BYTES = 64 * 1024;
let sharedBuffer: Buffer | undefined;

/** Each socket made with `directReadOptions()`, and its buffers (which hold its reader). */
const directSockets = new WeakMap<Socket, ReadBuffers>();

/** One socket's read buffers (the `onread` option's `buffer` function and callback). */
class ReadBuffers {
  /** Who takes the reads once attached; until then they go into the socket's own stream. */
  reader: DirectReader | undefined;
  private slab: Buffer | undefined;
  private slabUsed = 0;
  private slabNext = false;

  /** The buffer Node reads into next. */
  readonly next = (): Uint8Array => {
    if (!this.slabNext) return (sharedBuffer ??= Buffer.allocUnsafeSlow(RECORD_BYTES));
    if (this.slab === undefined || SLAB_BYTES - this.slabUsed < RECORD_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.slabUsed = 0;
    }
    return this.slab.subarray(this.slabUsed);
  };

  /** `length` bytes just read into `buffer` (the last `next()`), as a Buffer the caller keeps. */
  take(length: number, buffer: Uint8Array): Buffer {
    let bytes: Buffer;
    if (buffer === sharedBuffer) {
      // Overwritten by the next read of any socket: copied.
      bytes = Buffer.allocUnsafe(length);
      bytes.set(buffer.subarray(0, length));
    } else {
      bytes = (buffer as Buffer).subarray(0, length);
      this.slabUsed += length;
    }
    this.slabNext = length >= LARGE_READ_BYTES;
    // Back to small reads: the slab goes (views handed out keep their own memory), so an idle
    // connection holds no read buffer of its own.
    if (!this.slabNext) this.slab = undefined;
    return bytes;
  }

  readonly callback = (socket: Socket, length: number, buffer: Uint8Array): boolean => {
    const bytes = this.take(length, buffer);
    const reader = this.reader;
    if (reader !== undefined) {
      reader.onSocketRead(bytes);
      return true;
    }
    // No reader: the socket's own stream gets the bytes, with its backpressure (false pauses the
    // socket until it is read again, as Node's own read path does).
    return socket.push(bytes);
  };
}

/** The `onread` option for `tls.connect`: Node reads `buffer` and `callback`; `owner` is ours. */
export interface DirectReadOptions {
  buffer: () => Uint8Array;
  callback: (length: number, buffer: Uint8Array) => boolean;
  readonly owner: object;
}

/** The `onread` option for `tls.connect` (one per socket); call `markDirect` on the socket it made. */
export function directReadOptions(): DirectReadOptions {
  const buffers = new ReadBuffers();
  const callback = buffers.callback;
  return {
    buffer: buffers.next,
    // Node calls it as a method of the socket.
    callback(this: Socket, length: number, buffer: Uint8Array): boolean {
      return callback(this, length, buffer);
    },
    owner: buffers,
  };
}

/** `socket` was created with `options` as its `onread`. */
export function markDirect(socket: Socket, options: DirectReadOptions): void {
  directSockets.set(socket, options.owner as ReadBuffers);
}

/**
 * Attaches `reader` to a socket made with `directReadOptions()`: bytes already pushed into the
 * socket's stream go to it first, then every read. Returns false (and does nothing) for any
 * other socket: the caller listens to `'data'` then.
 */
export function attachDirectReader(socket: Socket, reader: DirectReader): boolean {
  const buffers = directSockets.get(socket);
  if (buffers === undefined) return false;
  // Bounded: each turn takes what the stream holds, which only our callback fills.
  for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) reader.onSocketRead(chunk);
  buffers.reader = reader;
  // Flowing with nothing buffered: 'end' and 'close' come as before, and reading goes on.
  socket.resume();
  return true;
}
