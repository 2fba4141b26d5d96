/**
 * The HTTP/1.1 driver: one socket, one request at a time, our pure codec in between. It owns the
 * socket's listeners for its whole life (attached once, not per request) and reports to the pool
 * through the `ConnectionObserver`.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../../core/clock.js';
import { nextConnectionId } from '../../core/ids.js';
import { MuxpoolError, internalError } from '../../errors.js';
import type { Connection } from '../connection.js';
import type { ConnectionObserver, ConnectionState } from '../../pool/poolable.js';
import type { IncomingHeaders, RequestBody, RequestHead, RequestStream, StreamHandler } from '../message.js';
import { mapSocketError } from '../../connect/dial.js';
import { type ResponseHead, ResponseParser, type ResponseSink } from './parser.js';
import { type EncodedHead, LAST_CHUNK, chunkHeader, encodeRequestHead, encodeRequestHeadReusing } from './writer.js';
import {
  type BodySink,
  ReadDeadlines,
  type StreamState,
  afterHead,
  afterSending,
  bodySlices,
  errorForStream,
  isSending,
  pumpBody,
  readTimeoutError,
  streamTransition,
  waitForDrain,
} from '../stream-support.js';

export interface H1ConnectionOptions {
  clock: Clock;
  /**
   * Fail a request whose stream makes no progress (no response bytes, no request bytes taken) for
   * this long. `Infinity`: never.
   */
  readTimeoutMs: number;
  /**
   * Retire an idle socket this long before the server's `Keep-Alive: timeout`, so a request is
   * never written into a socket the server is closing at that moment.
   */
  keepAliveMarginMs: number;
  maxHeaderBytes: number;
  maxHeaderCount: number;
  remoteAddress?: string | undefined;
  /** The TLS handshake resumed an earlier session. */
  resumed?: boolean | undefined;
}

/** Bodies up to this size go out in the same write as the head (one syscall, one packet). */
const COALESCE_BODY_BYTES = 64 * 1024;

const CRLF = '\r\n';

/**
 * The one request in flight on a connection. States (stream-support.ts): sending → waiting →
 * receiving → closed, or sending → early → receiving when the server answers before the body is
 * done; HTTP/1.1 has no trailers or END_STREAM states of its own (the parser completes the
 * response).
 */
class H1Stream implements RequestStream, BodySink {
  readonly connection: H1Connection;
  readonly handler: StreamHandler;
  state: StreamState;
  lastActivityAt: number;
  awaitingSource = false;
  /** The request body goes out in chunked framing (RFC 9112 §7.1). */
  readonly chunked: boolean;

  constructor(connection: H1Connection, handler: StreamHandler, state: StreamState, chunked: boolean, now: number) {
    this.connection = connection;
    this.handler = handler;
    this.state = state;
    this.chunked = chunked;
    this.lastActivityAt = now;
  }

  to(next: StreamState): void {
    this.state = streamTransition(this.state, next, `HTTP/1.1 connection ${this.connection.id}`);
  }

  resume(): void {
    if (this.state !== 'closed') this.connection.resumeReading();
  }

  cancel(reason: MuxpoolError): void {
    if (this.state === 'closed') return;
    // HTTP/1.1 cannot skip the rest of a response: the connection goes with the stream.
    this.connection.failStream(this, reason);
    this.connection.destroy(reason);
  }

  // BodySink: the request-body pump writes through these.

  get acceptsBody(): boolean {
    return isSending(this.state) && this.connection.state !== 'closed';
  }

  writeBody(chunk: Uint8Array): boolean {
    return this.connection.writeBodyChunk(chunk, this.chunked);
  }

  bodyDrained(): Promise<void> {
    return this.connection.drained();
  }

  endBody(): void {
    this.connection.endBody(this);
  }

  failBody(err: MuxpoolError): void {
    this.connection.failStream(this, err);
    this.connection.destroy(err);
  }
}

export class H1Connection implements Connection, ResponseSink {
  readonly id = nextConnectionId('h1');
  readonly protocol = 'http/1.1' as const;
  readonly shareable = false;
  readonly maxStreams = 1;
  readonly remoteAddress: string | undefined;
  readonly resumed: boolean | undefined;
  state: ConnectionState = 'open';
  expiresAt: number | undefined;
  requestCount = 0;

  private readonly socket: Socket;
  private readonly options: H1ConnectionOptions;
  private readonly parser: ResponseParser;
  private observer: ConnectionObserver | undefined;
  private activeStream: H1Stream | undefined;
  /** The last request head this connection encoded (a head sent again reuses its text). */
  private lastHead: EncodedHead | undefined;
  private detached = false;
  /** The server said `Connection: close` (or framing requires it): no reuse. */
  private reusable = true;
  /** Bytes came that no request asked for: the socket is not safe to reuse. */
  private strayBytes = false;
  private closeError: MuxpoolError | undefined;

  private readonly deadlines: ReadDeadlines<H1Stream>;

  private readonly onDataBound = (chunk: Buffer): void => this.onData(chunk);
  private readonly onEndBound = (): void => this.onEnd();

  constructor(socket: Duplex, options: H1ConnectionOptions) {
    this.socket = socket as Socket;
    this.options = options;
    this.remoteAddress = options.remoteAddress ?? this.socket.remoteAddress;
    this.resumed = options.resumed;
    this.deadlines = new ReadDeadlines(
      options.clock,
      options.readTimeoutMs,
      () => (this.activeStream !== undefined ? [this.activeStream] : []),
      (stream) => this.onReadTimeout(stream),
    );
    this.parser = new ResponseParser(this, {
      maxHeaderBytes: options.maxHeaderBytes,
      maxHeaderCount: options.maxHeaderCount,
    });
    this.socket.on('error', (err: Error) => this.onSocketError(err));
    this.socket.on('close', () => this.onSocketClose());
    this.attachReading();
    // An idle pooled socket must not keep the process alive.
    this.socket.unref?.();
    if (this.socket.destroyed) this.state = 'closed';
  }

  setObserver(observer: ConnectionObserver): void {
    this.observer = observer;
  }

  isUsable(): boolean {
    const socket = this.socket;
    return (
      this.state === 'open' &&
      this.reusable &&
      !this.strayBytes &&
      this.activeStream === undefined &&
      !socket.destroyed &&
      socket.readable &&
      socket.writable &&
      socket.readableLength === 0
    );
  }

  openStream(head: RequestHead, body: RequestBody, handler: StreamHandler): RequestStream {
    const framing = head.contentLength === null ? 'none' : head.contentLength === undefined ? 'chunked' : 'length';
    // A body that is not written whole with the head goes through the pump (streamed, or large
    // enough that its progress should count as activity).
    const pumped = body !== null && (!(body instanceof Uint8Array) || body.byteLength > COALESCE_BODY_BYTES);
    const stream = new H1Stream(this, handler, pumped ? 'sending' : 'waiting', framing === 'chunked', this.options.clock.now());
    if (this.state !== 'open' || this.activeStream !== undefined || this.detached || !this.isUsable()) {
      // Nothing was written: the caller may safely send this request elsewhere.
      stream.to('closed');
      handler.onError(
        new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} is no longer usable`, {
          cause: this.closeError,
          maybeProcessed: false,
        }),
      );
      return stream;
    }
    // A head sent again and again is encoded once (its framing follows from the head alone).
    const encodings = head.encodings;
    let headText: string | Buffer;
    if (encodings === undefined) {
      this.lastHead = encodeRequestHeadReusing(head, framing, this.lastHead);
      headText = this.lastHead.text;
    } else {
      headText = encodings.h1 ??= Buffer.from(encodeRequestHead(head, framing), 'latin1');
    }
    this.activeStream = stream;
    this.requestCount++;
    this.expiresAt = undefined;
    this.parser.start(head.method);
    this.deadlines.watch();
    const socket = this.socket;
    socket.ref?.();
    if (body === null) {
      socket.write(headText, 'latin1');
    } else if (pumped) {
      socket.write(headText, 'latin1');
      void pumpBody(stream, body instanceof Uint8Array ? bodySlices(body) : body, head.contentLength ?? undefined, this.options.clock);
    } else if (framing === 'chunked') {
      socket.cork();
      socket.write(headText, 'latin1');
      if (body.byteLength > 0) {
        socket.write(chunkHeader(body.byteLength), 'latin1');
        socket.write(body);
        socket.write(CRLF, 'latin1');
      }
      socket.write(LAST_CHUNK, 'latin1');
      socket.uncork();
    } else {
      socket.cork();
      socket.write(headText, 'latin1');
      if (body.byteLength > 0) socket.write(body);
      socket.uncork();
    }
    return stream;
  }

  drain(): void {
    if (this.state !== 'open') return;
    this.state = 'draining';
    this.reusable = false;
    if (this.activeStream === undefined && !this.detached) this.destroy();
    else this.observer?.onCapacityChange(this);
  }

  destroy(err?: MuxpoolError): void {
    if (this.state === 'closed') return;
    if (err !== undefined && this.closeError === undefined) this.closeError = err;
    if (this.activeStream !== undefined) {
      // The stream gets its own copy: `err` is also the connection's close error.
      this.failStream(
        this.activeStream,
        err !== undefined
          ? errorForStream(err)
          : new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`, { maybeProcessed: true }),
      );
    }
    this.deadlines.stop();
    this.socket.destroy();
    // 'close' follows asynchronously; the state changes now so nobody picks this connection.
    this.state = 'closed';
  }

  detachSocket(): Duplex {
    if (this.activeStream !== undefined || this.detached) throw internalError(`connection ${this.id} is busy; it cannot be detached`);
    this.detached = true;
    this.detachReading();
    this.socket.ref?.();
    return this.socket;
  }

  reattachSocket(): void {
    if (!this.detached) throw internalError(`connection ${this.id} is not detached`);
    this.detached = false;
    // A socket that went through a user's hands is treated as a fresh one: its parser state
    // is unknown to us, so the next response starts from a clean parser.
    this.attachReading();
    this.socket.unref?.();
  }

  // ---------------------------------------------------------------------------------------
  // ResponseSink: called by the parser

  onHead(head: ResponseHead): void {
    const stream = this.activeStream;
    if (stream === undefined) throw internalError('response head without a request');
    if (!head.keepAlive) this.reusable = false;
    if (head.keepAliveTimeoutMs !== undefined) this.keepAliveTimeoutMs = head.keepAliveTimeoutMs;
    stream.to(afterHead(stream.state));
    stream.handler.onResponse(head.status, head.headers, head.statusText, head.raw);
  }

  onBody(chunk: Buffer): void {
    const stream = this.activeStream;
    if (stream === undefined || stream.state === 'closed') return;
    if (!stream.handler.onData(chunk)) this.socket.pause();
  }

  onTrailers(trailers: IncomingHeaders): void {
    this.activeStream?.handler.onTrailers(trailers);
  }

  onComplete(): void {
    const stream = this.activeStream;
    if (stream === undefined) throw internalError('response completed without a request');
    this.activeStream = undefined;
    if (isSending(stream.state)) {
      // The server answered before our body was done (e.g. 413): the rest of the body cannot
      // be skipped, so this socket cannot carry another request.
      this.reusable = false;
    }
    stream.to('closed');
    if (this.socket.isPaused()) this.socket.resume();
    if (this.reusable && this.state === 'open') {
      const hint = this.keepAliveTimeoutMs;
      if (hint !== undefined) {
        const margin = Math.min(this.options.keepAliveMarginMs, hint / 2);
        this.expiresAt = this.options.clock.now() + hint - margin;
      }
      this.socket.unref?.();
    } else if (this.state === 'open') {
      this.state = 'draining';
    }
    stream.handler.onComplete();
    // Closing after the handler ran lets it release the slot first; a closed connection then
    // leaves the pool through the observer.
    if (!this.reusable && this.state !== 'closed') this.destroy();
  }

  // ---------------------------------------------------------------------------------------
  // Internals

  /** The server's `Keep-Alive: timeout`, remembered from the last response that had one. */
  private keepAliveTimeoutMs: number | undefined;

  resumeReading(): void {
    if (!this.detached && this.socket.isPaused()) this.socket.resume();
  }

  /** Ends the current stream with an error; the caller decides what happens to the socket. */
  failStream(stream: H1Stream, err: MuxpoolError): void {
    if (stream.state === 'closed') return;
    stream.to('closed');
    if (this.activeStream === stream) this.activeStream = undefined;
    this.reusable = false;
    stream.handler.onError(err);
  }

  private attachReading(): void {
    const socket = this.socket;
    socket.on('data', this.onDataBound);
    socket.on('end', this.onEndBound);
    // detachReading() paused it; a 'data' listener alone does not restart a paused socket.
    socket.resume();
  }

  private detachReading(): void {
    const socket = this.socket;
    socket.off('data', this.onDataBound);
    socket.off('end', this.onEndBound);
    socket.pause();
  }

  private onData(chunk: Buffer): void {
    const stream = this.activeStream;
    if (stream === undefined) {
      // RFC 9112 §9.3.2 forbids unsolicited responses; a server that sends bytes on an idle
      // connection (often a 408 before closing) has made it unusable.
      this.strayBytes = true;
      this.destroy();
      return;
    }
    stream.lastActivityAt = this.options.clock.now();
    try {
      this.parser.execute(chunk);
    } catch (err) {
      const error = err instanceof MuxpoolError ? err : internalError(`HTTP/1.1 parser failed: ${String(err)}`);
      if (this.activeStream === stream) error.maybeProcessed = true;
      this.destroy(error);
    }
  }

  private onEnd(): void {
    // The peer will send nothing more. A close-delimited body ends here; anything else that
    // was still expected is truncated.
    const stream = this.activeStream;
    this.reusable = false;
    if (stream !== undefined && stream.state !== 'closed') {
      try {
        this.parser.finish();
      } catch (err) {
        const error =
          err instanceof MuxpoolError ? err : internalError(`HTTP/1.1 parser failed at end of stream: ${String(err)}`);
        error.maybeProcessed ??= true;
        this.destroy(error);
        return;
      }
    }
    this.destroy();
  }

  private onReadTimeout(stream: H1Stream): void {
    if (stream !== this.activeStream) return;
    this.destroy(
      readTimeoutError(
        isSending(stream.state)
          ? `${this.remoteAddress ?? 'the server'} took none of the request body and sent nothing for ${this.options.readTimeoutMs} ms`
          : `no data from ${this.remoteAddress ?? 'the server'} for ${this.options.readTimeoutMs} ms`,
        true,
      ),
    );
  }

  private onSocketError(err: Error): void {
    const mapped = mapSocketError(err, 'request');
    // A server's alert about our client certificate comes before it reads any request.
    if (mapped.code !== 'MUXPOOL_ERR_TLS_CLIENT_CERT') mapped.maybeProcessed = true;
    if (this.closeError === undefined) this.closeError = mapped;
    if (this.activeStream !== undefined) this.failStream(this.activeStream, errorForStream(mapped));
    this.deadlines.stop();
    this.state = 'closed';
  }

  private onSocketClose(): void {
    const stream = this.activeStream;
    if (stream !== undefined && stream.state !== 'closed') {
      this.failStream(
        stream,
        this.closeError !== undefined
          ? errorForStream(this.closeError)
          : new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} closed before the response was complete`, {
            maybeProcessed: true,
          }),
      );
    }
    this.state = 'closed';
    this.deadlines.stop();
    const observer = this.observer;
    this.observer = undefined;
    observer?.onClose(this, this.closeError);
  }

  /** @internal the pump writes one request-body chunk; false: wait for drain. */
  writeBodyChunk(chunk: Uint8Array, chunked: boolean): boolean {
    const socket = this.socket;
    if (!chunked) return socket.write(chunk);
    socket.cork();
    socket.write(chunkHeader(chunk.byteLength), 'latin1');
    socket.write(chunk);
    const flushed = socket.write(CRLF, 'latin1');
    socket.uncork();
    return flushed;
  }

  /** @internal */
  drained(): Promise<void> {
    return waitForDrain(this.socket);
  }

  /** @internal the pump wrote every chunk. */
  endBody(stream: H1Stream): void {
    if (stream.chunked) this.socket.write(LAST_CHUNK, 'latin1');
    stream.to(afterSending(stream.state));
  }
}
