/**
 * One request/response exchange on one pooled stream: the `StreamHandler` the transport calls.
 * It buffers or streams the body for the `Response`, and gives the stream slot back to the pool
 * exactly once, whether the body was read, dumped, abandoned or failed.
 *
 * It never holds the `Response` strongly, so a response the user drops can be collected and its
 * stream cancelled (lifetime.ts).
 */
import { Readable } from 'node:stream';
import { MuxpoolError } from '../errors.js';
import type { IncomingHeaders, RawFieldSource, RequestStream, StreamHandler } from '../protocol/message.js';
import type { PoolEntry } from '../pool/entry.js';
import type { Connection } from '../protocol/connection.js';
import { type Abandonable, forgetExchange } from './lifetime.js';
import { type ObservedRequest, exchangeEnded } from './request-events.js';

/** Body bytes buffered for a response nobody reads yet, before the transport is paused. */
const UNREAD_HIGH_WATER_BYTES = 64 * 1024;
/** `dump()` reads and discards up to this much before it closes the stream instead. */
const DUMP_LIMIT_BYTES = 1024 * 1024;

type BodyMode = 'buffer' | 'collect' | 'stream' | 'dump' | 'forward';

/** Where a forwarded body goes (the undici Dispatcher adapter): chunk by chunk, with backpressure. */
export interface BodySink {
  /** Returns false to pause: call `Exchange.resumeBody()` to go on. */
  onBodyData(chunk: Uint8Array): boolean;
  onBodyEnd(trailers: IncomingHeaders | undefined): void;
  onBodyError(err: MuxpoolError): void;
}

export interface ResponseHeadInfo {
  status: number;
  statusText: string;
  headers: IncomingHeaders;
}

export class Exchange implements StreamHandler, Abandonable {
  readonly entry: PoolEntry<Connection>;
  readonly reused: boolean;
  stream: RequestStream | undefined;
  head: ResponseHeadInfo | undefined;
  trailers: IncomingHeaders | undefined;
  /** Set when the body ended: complete or failed. */
  finished = false;
  error: MuxpoolError | undefined;
  bodyTaken = false;
  /** Which attempt of its request this exchange is (2 after one retry). */
  attempt = 1;
  /** Marks on the pool's clock for `res.timings`: request start, connection assigned, head, end (read once `head` and `finished` say they happened). */
  startedAt = 0;
  assignedAt = 0;
  headAt = 0;
  endAt = 0;
  /** Set only while someone listens to the request channels (request-events.ts). */
  observer: ObservedRequest | undefined;
  /**
   * Set by a caller that wants the head's fields raw (the undici Dispatcher): then `rawHead` keeps
   * what the transport offered. Off otherwise, so a `Response` does not hold the bytes the head
   * came in.
   */
  keepRawFields = false;
  rawHead: RawFieldSource | undefined;

  private mode: BodyMode = 'buffer';
  private chunks: Uint8Array[] = [];
  private bufferedBytes = 0;
  private paused = false;
  private dumpedBytes = 0;
  private sink: BodySink | undefined;
  /**
   * The body stream, weakly: a body nobody ever read from can be collected, and its stream is
   * then cancelled (lifetime.ts). Once the consumer asked for data it is held strongly in
   * `reader` instead: a consumer waiting in `for await` is reachable only through the stream's
   * own listeners, so with a weak reference alone the stream, the consumer and its caller could
   * all be collected mid-body, and the caller would wait forever.
   */
  private readable: WeakRef<Readable> | undefined;
  private reader: Readable | undefined;
  private readonly release: (entry: PoolEntry<Connection>) => void;
  private headResolve: ((exchange: Exchange) => void) | undefined;
  private headReject: ((err: MuxpoolError) => void) | undefined;
  private collectResolve: ((chunks: Uint8Array[]) => void) | undefined;
  private collectReject: ((err: MuxpoolError) => void) | undefined;
  private released = false;
  /** Called once when the exchange ends (timers and signal listeners of the request). */
  onFinish: (() => void) | undefined;

  constructor(entry: PoolEntry<Connection>, release: (entry: PoolEntry<Connection>) => void) {
    this.entry = entry;
    this.reused = entry.connection.requestCount > 0;
    this.release = release;
  }

  /** Resolves at the response head; rejects if the exchange fails before it. */
  waitForHead(): Promise<Exchange> {
    if (this.head !== undefined) return Promise.resolve(this);
    if (this.error !== undefined) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.headResolve = resolve;
      this.headReject = reject;
    });
  }

  // ---------------------------------------------------------------------------------------
  // StreamHandler

  onResponse(status: number, headers: IncomingHeaders, statusText: string, raw?: RawFieldSource): void {
    this.headAt = this.entry.now();
    this.head = { status, statusText, headers };
    if (this.keepRawFields) this.rawHead = raw;
    if (this.observer !== undefined) this.observer.responded(status, statusText, headers);
    const resolve = this.headResolve;
    this.headResolve = this.headReject = undefined;
    resolve?.(this);
  }

  onData(chunk: Uint8Array): boolean {
    switch (this.mode) {
      case 'buffer':
        this.chunks.push(chunk);
        this.bufferedBytes += chunk.byteLength;
        if (this.bufferedBytes >= UNREAD_HIGH_WATER_BYTES) {
          this.paused = true;
          return false;
        }
        return true;
      case 'collect':
        this.chunks.push(chunk);
        return true;
      case 'stream': {
        const readable = this.reader ?? this.readable?.deref();
        if (readable === undefined) {
          this.abandon();
          return true;
        }
        if (!readable.push(chunk)) {
          this.paused = true;
          return false;
        }
        return true;
      }
      case 'forward':
        // Chunks held for a paused sink go first, in order.
        if (this.chunks.length > 0 || !(this.sink as BodySink).onBodyData(chunk)) {
          if (this.chunks.length > 0) this.chunks.push(chunk);
          this.paused = true;
          return false;
        }
        return true;
      case 'dump':
        this.dumpedBytes += chunk.byteLength;
        if (this.dumpedBytes > DUMP_LIMIT_BYTES) {
          this.cancel(new MuxpoolError('MUXPOOL_ERR_ABORTED', 'response body dumped', { maybeProcessed: true }));
        }
        return true;
    }
  }

  onTrailers(trailers: IncomingHeaders): void {
    this.trailers = trailers;
  }

  onComplete(): void {
    if (this.finished) return;
    this.finished = true;
    this.giveBack();
    switch (this.mode) {
      case 'collect':
      case 'dump': {
        const resolve = this.collectResolve;
        this.collectResolve = this.collectReject = undefined;
        const chunks = this.chunks;
        this.chunks = [];
        resolve?.(chunks);
        break;
      }
      case 'stream':
        (this.reader ?? this.readable?.deref())?.push(null);
        this.reader = undefined;
        break;
      case 'forward':
        // With chunks still held for a paused sink, the end follows them (drainForward).
        if (this.chunks.length === 0) (this.sink as BodySink).onBodyEnd(this.trailers);
        break;
      default:
        break;
    }
  }

  onError(err: MuxpoolError): void {
    if (this.finished) return;
    this.finished = true;
    this.error = err;
    this.giveBack();
    const headReject = this.headReject;
    this.headResolve = this.headReject = undefined;
    headReject?.(err);
    const collectReject = this.collectReject;
    this.collectResolve = this.collectReject = undefined;
    collectReject?.(err);
    if (this.mode === 'stream') (this.reader ?? this.readable?.deref())?.destroy(err);
    else if (this.mode === 'forward') (this.sink as BodySink).onBodyError(err);
    this.reader = undefined;
    this.chunks = [];
  }

  // ---------------------------------------------------------------------------------------
  // What the Response asks for

  /** All body chunks, once the body is complete. */
  collect(): Promise<Uint8Array[]> {
    this.takeBody();
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.finished) {
      const chunks = this.chunks;
      this.chunks = [];
      return Promise.resolve(chunks);
    }
    this.mode = 'collect';
    const promise = new Promise<Uint8Array[]>((resolve, reject) => {
      this.collectResolve = resolve;
      this.collectReject = reject;
    });
    this.unpause();
    return promise;
  }

  /** The body as a Readable with backpressure: the transport pauses while it is full. */
  toReadable(): Readable {
    this.takeBody();
    const readable: Readable = new Readable({
      highWaterMark: UNREAD_HIGH_WATER_BYTES,
      read: () => {
        // Held strongly only once a consumer reads (flowing, or waiting on 'readable' as for
        // await does): Node's own read-ahead after the buffered chunks are pushed is not one,
        // and a body taken but never read must stay collectable.
        if (this.mode === 'stream' && !this.finished && (readable.readableFlowing === true || readable.listenerCount('readable') > 0)) {
          this.reader = readable;
        }
        this.unpause();
      },
      destroy: (err, callback) => {
        // A consumer that destroys the body early frees the stream at once.
        if (!this.finished) this.cancel(new MuxpoolError('MUXPOOL_ERR_ABORTED', 'response body destroyed', { cause: err }));
        callback(err);
      },
    });
    for (const chunk of this.chunks) readable.push(chunk);
    this.chunks = [];
    if (this.error !== undefined) readable.destroy(this.error);
    else if (this.finished) readable.push(null);
    else {
      this.mode = 'stream';
      this.readable = new WeakRef(readable);
    }
    return readable;
  }

  /**
   * Hands the body to `sink` as it arrives (what was buffered first), then its end or failure.
   * The sink holds this exchange's stream: nothing here is left to garbage collection.
   */
  forward(sink: BodySink, flowing: boolean): void {
    this.takeBody();
    this.sink = sink;
    this.mode = 'forward';
    if (this.error !== undefined) {
      this.chunks = [];
      sink.onBodyError(this.error);
      return;
    }
    // A sink paused from its head callback gets nothing until it resumes.
    if (!flowing) {
      this.paused = true;
      return;
    }
    this.drainForward();
  }

  /** Undoes a pause a forward sink asked for: held chunks first, then the transport again. */
  resumeBody(): void {
    if (this.mode === 'forward') this.drainForward();
    else this.unpause();
  }

  /** Hands held chunks to the sink until it pauses; then the end, or the transport resumes. */
  private drainForward(): void {
    const sink = this.sink as BodySink;
    // Bounded by the chunks held: each turn hands one over.
    while (this.chunks.length > 0) {
      const chunk = this.chunks.shift() as Uint8Array;
      if (!sink.onBodyData(chunk)) {
        this.paused = true;
        return;
      }
    }
    if (this.error !== undefined) sink.onBodyError(this.error);
    else if (this.finished) sink.onBodyEnd(this.trailers);
    else this.unpause();
  }

  /** Reads and discards the rest of the body, keeping the connection reusable when it is short. */
  dump(): Promise<void> {
    this.takeBody();
    this.chunks = [];
    if (this.finished) return Promise.resolve();
    this.mode = 'dump';
    const promise = new Promise<void>((resolve) => {
      this.collectResolve = () => resolve();
      this.collectReject = () => resolve();
    });
    this.unpause();
    return promise;
  }

  /** Ends the exchange early: the transport resets the stream (or closes an HTTP/1.1 socket). */
  cancel(reason: MuxpoolError): void {
    if (this.finished) return;
    if (this.stream !== undefined) this.stream.cancel(reason);
    else this.onError(reason);
  }

  /** The user dropped the response without reading it: free the stream. */
  abandon(): void {
    this.cancel(new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the response was garbage-collected before its body was read'));
  }

  private takeBody(): void {
    if (this.bodyTaken) throw new MuxpoolError('MUXPOOL_ERR_BODY_USED', 'the response body was already consumed');
    this.bodyTaken = true;
  }

  private unpause(): void {
    if (!this.paused) return;
    this.paused = false;
    this.stream?.resume();
  }

  private giveBack(): void {
    if (this.released) return;
    forgetExchange(this);
    this.released = true;
    this.release(this.entry);
    // The core stamped the release on its clock: the end of the exchange, without a read here.
    this.endAt = this.entry.lastUsed;
    if (this.observer !== undefined) exchangeEnded(this.observer, this);
    const onFinish = this.onFinish;
    this.onFinish = undefined;
    onFinish?.();
  }
}
