/**
 * The HTTP/3 client connection (RFC 9114) on one QUIC connection: request streams, the control
 * stream both ways, the peer's QPACK streams, GOAWAY and per-stream read timeouts. The codecs
 * it uses are pure (frames, QPACK, the stream decoders); this file is the only one that turns
 * their output into pool events.
 *
 * States (`ConnectionState`): open → draining → closed, or open → closed.
 *  - open: new request streams may be opened while the peer grants stream credit;
 *  - draining: GOAWAY received or `drain()` called: open streams finish, then we close;
 *  - closed: the QUIC connection is closing or gone; every stream has ended.
 */
import type { Clock } from '../../core/clock.js';
import { channels } from '../../core/diagnostics.js';
import { nextConnectionId } from '../../core/ids.js';
import { MuxpoolError } from '../../errors.js';
import type { Connection } from '../connection.js';
import type { ConnectionObserver, ConnectionState } from '../../pool/poolable.js';
import type { RequestBody, RequestHead, RequestStream, StreamHandler } from '../message.js';
import type { QuicCloseInfo, QuicConnection, QuicConnectionHandler } from '../../quic/index.js';
import {
  ControlStreamDecoder,
  type ControlEvent,
  QpackEncoderStreamDecoder,
  RequestStreamDecoder,
  type RequestStreamEvent,
  UniStreamTypeReader,
} from './decoders.js';
import {
  H3_CLOSED_CRITICAL_STREAM,
  H3_FRAME_UNEXPECTED,
  H3_ID_ERROR,
  H3_MESSAGE_ERROR,
  H3_NO_ERROR,
  H3_REQUEST_CANCELLED,
  H3_REQUEST_REJECTED,
  H3_STREAM_CREATION_ERROR,
  H3_EXCESSIVE_LOAD,
  SETTINGS_MAX_FIELD_SECTION_SIZE,
  SETTINGS_QPACK_BLOCKED_STREAMS,
  SETTINGS_QPACK_MAX_TABLE_CAPACITY,
  STREAM_TYPE_CONTROL,
  STREAM_TYPE_PUSH,
  STREAM_TYPE_QPACK_DECODER,
  STREAM_TYPE_QPACK_ENCODER,
  describeH3Error,
  encodeDataFrameHeader,
  END_OF_STREAM_FRAME,
  encodeHeadersFrame,
  encodeSettingsFrame,
  encodeStreamType,
} from './frames.js';
import { fieldSectionSize, fromH3ResponseFields, toH3RequestFields } from './message.js';
import { encodeFieldSection } from './qpack.js';
import { standardStatusText } from '../fields.js';
import {
  type BodySink,
  ReadDeadlines,
  type StreamState,
  afterHead,
  afterSending,
  checkInterimBudget,
  errorForStream,
  hasResponse,
  isSending,
  pumpBody,
  readTimeoutError,
  streamTransition,
} from '../stream-support.js';

export interface H3ConnectionOptions {
  clock: Clock;
  /** Streams per connection we allow ourselves (the pool's `maxStreams`). */
  maxStreams: number;
  /**
   * Fail a request whose stream makes no progress (no response bytes, no request bytes taken) for
   * this long, or that waits this long for stream credit. `Infinity`: never.
   */
  readTimeoutMs: number;
  /** Response header limits; the size is also advertised as SETTINGS_MAX_FIELD_SECTION_SIZE. */
  maxHeaderBytes: number;
  maxHeaderCount: number;
  /** Our QUIC idle timeout (the server's may be shorter): an idle connection is not handed out close to it. */
  idleTimeoutMs: number;
  keepAliveMarginMs: number;
  /** Receives the session ticket for resumption when the server sends one. */
  onSessionTicket?: ((ticket: Uint8Array) => void) | undefined;
  /**
   * Set when the connection goes to an Alt-Svc alternative elsewhere than the origin: sent as
   * `Alt-Used` on each request (RFC 7838 §5), so the server can tell how it was reached.
   */
  altUsed?: string | undefined;
}

/** Bodies up to this size go out with their HEADERS in one write. */
const COALESCE_BODY_BYTES = 16 * 1024;

/** RFC 8470 §2.1 / RFC 9114 §10.9: only safe, bodiless requests may be replayed from 0-RTT. */
function isReplaySafe(head: RequestHead, body: RequestBody): boolean {
  return (head.method === 'GET' || head.method === 'HEAD') && body === null;
}

/** Request bytes that flow control refused for now, and whether the FIN follows them. */
interface Outbox {
  chunks: Uint8Array[];
  fin: boolean;
}

/**
 * One request on the connection: the `RequestStream` its caller controls. States
 * (stream-support.ts): held → sending/waiting → early/receiving → trailers → closed; the response
 * completes at the peer's FIN, so `ended` is never used. `id` is the QUIC stream id once the
 * stream leaves `held`.
 */
class H3RequestStream implements RequestStream, BodySink {
  id = -1;
  state: StreamState = 'held';
  lastActivityAt: number;
  awaitingSource = false;
  /** The QUIC connection's `packetsSent` when the stream opened: none since, nothing was sent. */
  packetsAtOpen = 0;
  /** Response body bytes the head announced (`undefined`: no length, or no body by rule). */
  expectedLength: number | undefined;
  receivedLength = 0;
  /** Interim (1xx) responses so far and their field bytes, bounded (stream-support.ts). */
  interimCount = 0;
  interimBytes = 0;
  /** Made only when flow control refuses bytes: most requests never need one. */
  outbox: Outbox | undefined;
  /** The body pump waits for the outbox to empty. */
  wakeWriter: (() => void) | undefined;
  readonly decoder: RequestStreamDecoder;

  constructor(
    readonly connection: H3Connection,
    readonly handler: StreamHandler,
    readonly method: string,
    maxFieldSectionSize: number,
    now: number,
  ) {
    this.decoder = new RequestStreamDecoder({ maxFieldSectionSize });
    this.lastActivityAt = now;
  }

  to(next: StreamState): void {
    this.state = streamTransition(this.state, next, `HTTP/3 connection ${this.connection.id} stream ${this.id}`);
  }

  resume(): void {
    this.connection.resumeStream(this);
  }

  cancel(reason: MuxpoolError): void {
    this.connection.cancelStream(this, reason, H3_REQUEST_CANCELLED);
  }

  // BodySink: the request-body pump writes through these.

  get acceptsBody(): boolean {
    return isSending(this.state);
  }

  writeBody(chunk: Uint8Array): boolean {
    return this.connection.writeBodyChunk(this, chunk);
  }

  bodyDrained(): Promise<void> {
    if (this.outbox === undefined || !isSending(this.state)) return Promise.resolve();
    return new Promise<void>((resolve) => (this.wakeWriter = resolve));
  }

  endBody(): void {
    this.connection.endBody(this);
  }

  failBody(err: MuxpoolError): void {
    this.connection.cancelStream(this, err, H3_REQUEST_CANCELLED);
  }
}

type PeerUniKind = 'pending' | 'control' | 'encoder' | 'decoder' | 'ignored';

/** A unidirectional stream the peer opened: its type arrives in its first bytes (§6.2). */
interface PeerUniStream {
  kind: PeerUniKind;
  /** Reads the stream type, which may arrive split across packets. */
  typeReader: UniStreamTypeReader | undefined;
  control: ControlStreamDecoder | undefined;
  encoder: QpackEncoderStreamDecoder | undefined;
}

export class H3Connection implements Connection, QuicConnectionHandler {
  readonly id = nextConnectionId('h3');
  readonly protocol = 'h3' as const;
  readonly shareable = true;
  readonly quic: QuicConnection;
  readonly remoteAddress: string;
  requestCount = 0;

  private connectionState: ConnectionState = 'open';
  private readonly options: H3ConnectionOptions;
  private observer: ConnectionObserver | undefined;
  private readonly streams = new Map<number, H3RequestStream>();
  /**
   * Requests not on the wire yet, in order: in 0-RTT only replay-safe requests go out (RFC 9114
   * §10.9, RFC 8470 §2.1), the others wait for the handshake; and a request beyond the peer's
   * current stream credit waits for its MAX_STREAMS (credit for finished streams comes back about
   * a round trip after they end).
   */
  private held: Array<{ stream: H3RequestStream; head: RequestHead; body: RequestBody; headersFrame: Uint8Array }> = [];
  private readonly peerUni = new Map<number, PeerUniStream>();
  private peerControlSeen = false;
  private peerEncoderSeen = false;
  private peerDecoderSeen = false;
  /** The most streams the peer has let us have open at once: its concurrency limit. */
  private peakStreams = 0;
  /** The peer's SETTINGS, once its control stream delivered them. */
  peerSettings: ReadonlyMap<number, number> | undefined;
  /** The lowest stream id the peer's GOAWAY says it will not process. */
  private goawayId: number | undefined;
  private lastActivityAt: number;
  private readonly deadlines: ReadDeadlines<H3RequestStream>;
  private closeError: MuxpoolError | undefined;
  /** Scratch for decoder output; a turn handles one stream chunk at a time. */
  private readonly requestEvents: RequestStreamEvent[] = [];
  private readonly controlEvents: ControlEvent[] = [];

  constructor(quic: QuicConnection, options: H3ConnectionOptions) {
    this.quic = quic;
    this.options = options;
    this.remoteAddress = quic.remoteAddress.host;
    this.lastActivityAt = options.clock.now();
    this.peakStreams = quic.peerStreamsLeftBidi;
    this.deadlines = new ReadDeadlines(
      options.clock,
      options.readTimeoutMs,
      () => [...this.streams.values(), ...this.held.map((entry) => entry.stream)],
      (stream) => this.onReadTimeout(stream),
    );
    quic.setHandler(this);
    this.openControlStream();
  }

  // ---------------------------------------------------------------------------------------
  // Connection

  get state(): ConnectionState {
    return this.connectionState;
  }

  /** Streams open now plus the ones the peer still grants (MAX_STREAMS), capped by ours. */
  get maxStreams(): number {
    if (this.connectionState !== 'open') return this.streams.size + this.held.length;
    return Math.min(this.options.maxStreams, this.peakStreams);
  }

  /**
   * An idle connection retires a margin before the QUIC idle timeout can strike. That timeout is
   * the smaller of both sides' (RFC 9000 §10.1) and counts from the last packet received, which
   * the driver tracks; our own setting is the fallback before it knows.
   */
  get expiresAt(): number | undefined {
    if (this.streams.size > 0 || this.held.length > 0) return undefined;
    const own = this.lastActivityAt + this.options.idleTimeoutMs;
    const idle = this.quic.idleDeadline;
    return (idle !== undefined && idle < own ? idle : own) - this.options.keepAliveMarginMs;
  }

  get resumed(): boolean {
    return this.quic.isResumed;
  }

  /** Request streams open right now. */
  get activeStreams(): number {
    return this.streams.size + this.held.length;
  }

  /** This connection sent requests as 0-RTT early data. */
  get earlyDataUsed(): boolean {
    return this.quic.earlyDataUsed;
  }

  setObserver(observer: ConnectionObserver): void {
    this.observer = observer;
  }

  isUsable(): boolean {
    const quic = this.quic.state;
    return this.connectionState === 'open' && (quic === 'established' || quic === 'handshaking');
  }

  openStream(head: RequestHead, body: RequestBody, handler: StreamHandler): RequestStream {
    const now = this.options.clock.now();
    const stream = new H3RequestStream(this, handler, head.method, this.options.maxHeaderBytes, now);
    if (this.connectionState !== 'open') {
      stream.to('closed');
      handler.onError(this.notProcessed(`connection ${this.id} takes no new streams`, 'MUXPOOL_ERR_CONNECTION_CLOSED'));
      return stream;
    }
    let headersFrame: Uint8Array;
    // A head sent again and again keeps its frame: QPACK without a dynamic table makes it depend
    // only on the head, our alt-used and the peer's limit.
    const encodings = head.encodings;
    const tag = encodings === undefined ? '' : `${this.options.altUsed ?? ''}\0${this.peerSettings?.get(SETTINGS_MAX_FIELD_SECTION_SIZE) ?? ''}`;
    const cached = encodings !== undefined && encodings.h3Tag === tag ? encodings.h3Frame : undefined;
    if (cached !== undefined) headersFrame = cached;
    else try {
      const fields = toH3RequestFields(head);
      const altUsed = this.options.altUsed;
      if (altUsed !== undefined && !fields.some(([name]) => name === 'alt-used')) fields.push(['alt-used', altUsed]);
      // RFC 9114 §4.2.2: a request over the peer's advertised limit would only be refused.
      const peerLimit = this.peerSettings?.get(SETTINGS_MAX_FIELD_SECTION_SIZE);
      if (peerLimit !== undefined && fieldSectionSize(fields) > peerLimit) {
        throw new MuxpoolError(
          'MUXPOOL_ERR_INVALID_HEADER',
          `request header section of ${fieldSectionSize(fields)} bytes exceeds the server's limit of ${peerLimit}`,
          { maybeProcessed: false },
        );
      }
      headersFrame = encodeHeadersFrame(encodeFieldSection(fields));
      if (encodings !== undefined) {
        encodings.h3Frame = headersFrame;
        encodings.h3Tag = tag;
      }
    } catch (err) {
      stream.to('closed');
      handler.onError(err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'encoding HTTP/3 headers failed', { cause: err }));
      return stream;
    }
    if (this.held.length > 0 || !this.canStart(head, body)) {
      this.held.push({ stream, head, body, headersFrame });
      this.deadlines.watch();
      // A request waiting for stream credit has no stream yet: it keeps the process alive itself.
      this.quic.holdProcess(true);
      return stream;
    }
    this.startStream(stream, head, body, headersFrame);
    return stream;
  }

  private canStart(head: RequestHead, body: RequestBody): boolean {
    if (this.quic.state === 'handshaking' && !isReplaySafe(head, body)) return false;
    return this.quic.peerStreamsLeftBidi > 0;
  }

  /** Starts held requests that may go now, keeping the order of the rest. */
  private startHeld(): void {
    if (this.held.length === 0 || this.connectionState === 'closed') return;
    // In place, in order: starting one may call back into the pool (a failure releases its
    // slot), which may open or cancel streams or close the connection meanwhile.
    let i = 0;
    while (i < this.held.length && this.state !== 'closed') {
      const entry = this.held[i] as (typeof this.held)[number];
      if (entry.stream.state === 'closed') {
        this.held.splice(i, 1);
      } else if (this.canStart(entry.head, entry.body)) {
        this.held.splice(i, 1);
        this.startStream(entry.stream, entry.head, entry.body, entry.headersFrame);
      } else {
        i++;
      }
    }
    // Only request streams keep the process alive, and a held request has none yet.
    this.quic.holdProcess(this.held.length > 0);
  }

  private startStream(stream: H3RequestStream, head: RequestHead, body: RequestBody, headersFrame: Uint8Array): void {
    try {
      stream.id = this.quic.openStream(true);
    } catch (err) {
      stream.to('closed');
      const error = err instanceof MuxpoolError ? err : this.notProcessed('opening a QUIC stream failed', 'MUXPOOL_ERR_QUIC');
      error.maybeProcessed = false;
      stream.handler.onError(error);
      return;
    }
    stream.packetsAtOpen = this.quic.packetsSent;
    this.streams.set(stream.id, stream);
    this.requestCount++;
    this.deadlines.watch();
    // The request is on its way; `send` moves it to `waiting` once the FIN is accepted.
    stream.to('sending');
    stream.lastActivityAt = this.options.clock.now();

    if (body === null || (body instanceof Uint8Array && body.byteLength === 0)) {
      this.send(stream, headersFrame, true);
    } else if (body instanceof Uint8Array) {
      const dataHeader = encodeDataFrameHeader(body.byteLength);
      if (body.byteLength <= COALESCE_BODY_BYTES) {
        this.send(stream, Buffer.concat([headersFrame, dataHeader, body]), true);
      } else {
        this.send(stream, Buffer.concat([headersFrame, dataHeader]), false);
        this.send(stream, body, true);
      }
    } else {
      this.send(stream, headersFrame, false);
      void pumpBody(stream, body, head.contentLength ?? undefined, this.options.clock);
    }
  }

  /** The handshake completed: requests held back from 0-RTT go out now. */
  onEstablished(): void {
    this.startHeld();
  }

  drain(): void {
    if (this.connectionState !== 'open') return;
    this.connectionState = 'draining';
    if (this.streams.size === 0 && this.held.length === 0) this.closeGracefully();
  }

  destroy(err?: MuxpoolError): void {
    if (this.connectionState === 'closed') return;
    const error = err ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`, { maybeProcessed: true });
    this.markClosed(error);
    this.quic.destroy(err);
  }

  // ---------------------------------------------------------------------------------------
  // Request streams

  /**
   * Writes request bytes in order; what flow control refuses waits in the outbox for
   * `onStreamWritable`. Accepted bytes are activity for the read deadline; a FIN accepted ends the
   * request side (`sending` → `waiting`, `early` → `receiving`).
   */
  private send(stream: H3RequestStream, bytes: Uint8Array, fin: boolean): void {
    if (!isSending(stream.state)) return;
    const outbox = stream.outbox;
    if (outbox !== undefined) {
      if (bytes.byteLength > 0) outbox.chunks.push(bytes);
      outbox.fin ||= fin;
      return;
    }
    let accepted: number;
    try {
      accepted = this.quic.write(stream.id, bytes, fin);
    } catch (err) {
      this.onWriteFailure(stream, err);
      return;
    }
    if (accepted > 0) stream.lastActivityAt = this.options.clock.now();
    if (accepted < bytes.byteLength) stream.outbox = { chunks: [bytes.subarray(accepted)], fin };
    else if (fin) stream.to(afterSending(stream.state));
  }

  private flush(stream: H3RequestStream): void {
    const outbox = stream.outbox;
    if (outbox === undefined) return;
    let progressed = false;
    while (outbox.chunks.length > 0 && isSending(stream.state)) {
      const chunk = outbox.chunks[0] as Uint8Array;
      const last = outbox.chunks.length === 1;
      let accepted: number;
      try {
        accepted = this.quic.write(stream.id, chunk, last && outbox.fin);
      } catch (err) {
        this.onWriteFailure(stream, err);
        return;
      }
      if (accepted > 0) progressed = true;
      if (accepted < chunk.byteLength) {
        outbox.chunks[0] = chunk.subarray(accepted);
        break;
      }
      outbox.chunks.shift();
      if (last && outbox.fin) stream.to(afterSending(stream.state));
    }
    if (progressed) stream.lastActivityAt = this.options.clock.now();
    if (outbox.chunks.length === 0 || !isSending(stream.state)) {
      stream.outbox = undefined;
      wakeWriter(stream);
    }
  }

  /**
   * Our sending side is over before the request was: the peer stopped it (STOP_SENDING), the
   * stream is gone, or the response ended first. The pump stops; the response may still come.
   */
  private stopSendingSide(stream: H3RequestStream): void {
    if (isSending(stream.state)) stream.to(afterSending(stream.state));
    stream.outbox = undefined;
    wakeWriter(stream);
  }

  /** The peer stopped our sending side, or the stream is gone: the request body ends here. */
  private onWriteFailure(stream: H3RequestStream, err: unknown): void {
    const answered = hasResponse(stream.state);
    this.stopSendingSide(stream);
    // A response may still be coming (the server answered early and stopped reading).
    if (answered) return;
    const error = err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_QUIC_STREAM_CLOSED', 'writing the request failed', { cause: err });
    error.maybeProcessed ??= true;
    this.cancelStream(stream, error, H3_REQUEST_CANCELLED);
  }

  /** @internal the body pump writes one chunk as a DATA frame; false: wait for credit. */
  writeBodyChunk(stream: H3RequestStream, chunk: Uint8Array): boolean {
    const header = encodeDataFrameHeader(chunk.byteLength);
    if (chunk.byteLength <= COALESCE_BODY_BYTES) this.send(stream, Buffer.concat([header, chunk]), false);
    else {
      this.send(stream, header, false);
      this.send(stream, chunk, false);
    }
    // Flow control shows up as bytes left in the outbox: wait for credit before reading on.
    return stream.outbox === undefined;
  }

  /** @internal the body pump wrote every chunk. */
  endBody(stream: H3RequestStream): void {
    this.send(stream, END_OF_STREAM_FRAME, true);
  }

  resumeStream(stream: H3RequestStream): void {
    if (stream.state === 'closed' || stream.state === 'held') return;
    // The QUIC layer knows whether it paused the stream; resuming one it did not is a no-op.
    this.quic.resumeStream(stream.id);
  }

  /** Ends a stream early: both directions are aborted with `wireCode` and the slot is free at once. */
  cancelStream(stream: H3RequestStream, reason: MuxpoolError, wireCode: number): void {
    if (stream.state === 'closed') return;
    if (stream.state === 'held') {
      // Held for the handshake or for credit: nothing was sent.
      stream.to('closed');
      this.held = this.held.filter((entry) => entry.stream !== stream);
      this.quic.holdProcess(this.held.length > 0);
      if (this.streams.size === 0 && this.held.length === 0 && this.connectionState === 'draining') this.closeGracefully();
      reason.maybeProcessed = false;
      stream.handler.onError(reason);
      return;
    }
    if (this.connectionState !== 'closed') {
      if (isSending(stream.state) || stream.state === 'trailers') this.quic.resetStream(stream.id, wireCode);
      this.quic.stopSending(stream.id, wireCode);
    }
    this.finish(stream);
    stream.handler.onError(reason);
  }

  private finish(stream: H3RequestStream): void {
    if (stream.state === 'closed') return;
    stream.to('closed');
    stream.outbox = undefined;
    wakeWriter(stream);
    this.streams.delete(stream.id);
    this.lastActivityAt = this.options.clock.now();
    if (this.streams.size === 0 && this.held.length === 0 && this.connectionState === 'draining') this.closeGracefully();
  }

  private onResponseBytes(stream: H3RequestStream, chunk: Uint8Array, fin: boolean): void {
    stream.lastActivityAt = this.options.clock.now();
    const events = this.requestEvents;
    events.length = 0;
    try {
      if (chunk.byteLength > 0) stream.decoder.push(chunk, events);
      for (let i = 0; i < events.length && stream.state !== 'closed'; i++) this.onResponseEvent(stream, events[i] as RequestStreamEvent);
      if (!fin || stream.state === 'closed') return;
      stream.decoder.finish();
      const state = stream.state;
      if (!hasResponse(state)) throw this.malformed('the stream ended before a response');
      if (stream.expectedLength !== undefined && stream.receivedLength !== stream.expectedLength) {
        throw new MuxpoolError(
          'MUXPOOL_ERR_BODY_TRUNCATED',
          `response body has ${stream.receivedLength} bytes but content-length says ${stream.expectedLength}`,
          { maybeProcessed: true },
        );
      }
      // RFC 9114 §4.1: the response is complete; the rest of our body is not needed. (After
      // trailers our side may or may not be done: the QUIC layer ignores a reset of a finished one.)
      if (state !== 'receiving') this.quic.resetStream(stream.id, H3_NO_ERROR);
      this.finish(stream);
      stream.handler.onComplete();
    } catch (err) {
      this.onStreamFailure(stream, err);
    } finally {
      events.length = 0;
    }
  }

  private onResponseEvent(stream: H3RequestStream, event: RequestStreamEvent): void {
    const state = stream.state;
    if (event.kind === 'data') {
      if (!hasResponse(state)) throw this.malformed('DATA before the final response head');
      if (state === 'trailers') throw this.malformed('DATA after the trailers');
      stream.receivedLength += event.bytes.byteLength;
      if (stream.expectedLength !== undefined && stream.receivedLength > stream.expectedLength) {
        throw this.malformed(`response body longer than its content-length ${stream.expectedLength}`);
      }
      // A false return pauses delivery in the QUIC layer; `resume()` undoes it there.
      if (!stream.handler.onData(event.bytes) && stream.state !== 'closed') this.quic.pauseStream(stream.id);
      return;
    }
    if (hasResponse(state)) {
      if (state === 'trailers') throw this.malformed('a header section after the trailers');
      // The response is over but for the FIN: the rest of an unfinished request is not needed.
      if (state === 'early') this.stopSendingSide(stream);
      stream.to('trailers');
      stream.handler.onTrailers(fromH3ResponseFields(event.fields, this.options.maxHeaderCount, true).headers);
      return;
    }
    const head = fromH3ResponseFields(event.fields, this.options.maxHeaderCount);
    // RFC 9114 §4.1: interim (1xx) responses precede the final one; 101 has no meaning here.
    if (head.status < 200) {
      if (head.status === 101) throw this.malformed('101 Switching Protocols over HTTP/3');
      // Bounded like every protocol's (RFC 9110 §15.2 sets no limit): an endless stream of them
      // must not hold a stream open, nor keep resetting its read deadline.
      stream.interimCount++;
      stream.interimBytes += fieldSectionSize(event.fields);
      checkInterimBudget(stream.interimCount, stream.interimBytes, this.options.maxHeaderBytes);
      return;
    }
    stream.to(afterHead(state));
    const length = head.headers['content-length'];
    // HEAD, 204 and 304 announce a length they do not send (RFC 9110 §8.6).
    if (typeof length === 'string' && stream.method !== 'HEAD' && head.status !== 204 && head.status !== 304) {
      if (!/^\d{1,15}$/.test(length)) throw this.malformed(`invalid content-length ${JSON.stringify(length)}`);
      stream.expectedLength = Number(length);
    }
    stream.handler.onResponse(head.status, head.headers, standardStatusText(head.status));
  }

  private malformed(message: string): MuxpoolError {
    return new MuxpoolError('MUXPOOL_ERR_H3_PROTOCOL', `malformed HTTP/3 response: ${message}`, {
      wireCode: H3_MESSAGE_ERROR,
      origin: 'remote',
      maybeProcessed: true,
    });
  }

  /**
   * A decoding failure on a request stream. QPACK and framing errors break the whole connection
   * (RFC 9114 §7.1, RFC 9204 §6); a malformed message or oversized header section only its stream.
   */
  private onStreamFailure(stream: H3RequestStream, err: unknown): void {
    const error = err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'handling an HTTP/3 response failed', { cause: err });
    error.maybeProcessed ??= true;
    if (error.code === 'MUXPOOL_ERR_QPACK' || (error.code === 'MUXPOOL_ERR_H3_PROTOCOL' && error.wireCode !== H3_MESSAGE_ERROR)) {
      this.connectionError(error);
      return;
    }
    this.cancelStream(stream, error, error.code === 'MUXPOOL_ERR_HEADERS_TOO_LARGE' ? H3_EXCESSIVE_LOAD : (error.wireCode ?? H3_REQUEST_CANCELLED));
  }

  /** The read deadline (stream-support.ts) expired for `stream`. */
  private onReadTimeout(stream: H3RequestStream): void {
    const limit = this.options.readTimeoutMs;
    let message: string;
    if (stream.state === 'held') message = `no stream credit from the peer for ${limit} ms`;
    else if (isSending(stream.state)) message = `HTTP/3 stream ${stream.id}: the peer granted no flow-control credit and sent nothing for ${limit} ms`;
    else message = `no data on HTTP/3 stream ${stream.id} for ${limit} ms`;
    this.cancelStream(stream, readTimeoutError(message, stream.state !== 'held'), H3_REQUEST_CANCELLED);
  }

  // ---------------------------------------------------------------------------------------
  // Control and QPACK streams (RFC 9114 §6.2, RFC 9204 §4.2)

  private openControlStream(): void {
    try {
      const id = this.quic.openStream(false);
      // RFC 9204 §3.2.3 / §2.1.2: no dynamic table, so no blocked streams and no QPACK streams of
      // ours (§4.2: an endpoint MAY avoid creating them when it will not use them).
      const settings = new Map<number, number>([
        [SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0],
        [SETTINGS_QPACK_BLOCKED_STREAMS, 0],
        [SETTINGS_MAX_FIELD_SECTION_SIZE, this.options.maxHeaderBytes],
      ]);
      this.quic.write(id, Buffer.concat([encodeStreamType(STREAM_TYPE_CONTROL), encodeSettingsFrame(settings)]), false);
    } catch (err) {
      // RFC 9114 §6.2: peers must allow at least three unidirectional streams.
      this.connectionError(
        new MuxpoolError('MUXPOOL_ERR_H3_PROTOCOL', 'cannot open the HTTP/3 control stream: the peer grants no unidirectional stream', {
          cause: err,
          wireCode: H3_STREAM_CREATION_ERROR,
          origin: 'remote',
        }),
      );
    }
  }

  private onPeerUniBytes(id: number, record: PeerUniStream, chunk: Uint8Array, fin: boolean): void {
    let bytes = chunk;
    if (record.kind === 'pending') {
      // §6.2: the type is a varint of up to 2^62 (greased types too): never a protocol error.
      const read = record.typeReader?.push(chunk);
      if (read === undefined) {
        if (fin) this.peerUni.delete(id);
        return;
      }
      record.typeReader = undefined;
      bytes = read.rest;
      this.classifyPeerStream(id, record, read.type);
      if (this.connectionState === 'closed') return;
    }
    try {
      switch (record.kind) {
        case 'control': {
          const events = this.controlEvents;
          events.length = 0;
          try {
            if (bytes.byteLength > 0) record.control?.push(bytes, events);
            for (const event of events) this.onControlEvent(event);
            if (fin) record.control?.finish();
          } finally {
            events.length = 0;
          }
          return;
        }
        case 'encoder':
          // A table capacity of 0 allows only "Set Dynamic Table Capacity 0" (RFC 9204 §4.3.1).
          if (bytes.byteLength > 0) record.encoder?.push(bytes);
          if (fin) record.encoder?.finish();
          return;
        case 'decoder':
          // Decoder instructions acknowledge dynamic-table use, which we never make.
          if (fin) throw this.peerError(H3_CLOSED_CRITICAL_STREAM, 'the peer closed its QPACK decoder stream');
          return;
        case 'ignored':
        case 'pending':
          // Nothing is kept for streams we do not read: forgotten at their end.
          if (fin) this.peerUni.delete(id);
          return;
      }
    } catch (err) {
      this.connectionError(err);
    }
  }

  private classifyPeerStream(id: number, record: PeerUniStream, type: number): void {
    switch (type) {
      case STREAM_TYPE_CONTROL:
        if (this.peerControlSeen) {
          this.connectionError(this.peerError(H3_STREAM_CREATION_ERROR, 'a second control stream'));
          return;
        }
        this.peerControlSeen = true;
        record.kind = 'control';
        record.control = new ControlStreamDecoder();
        return;
      case STREAM_TYPE_PUSH:
        // §4.6: we never sent MAX_PUSH_ID, so no push id is valid.
        this.connectionError(this.peerError(H3_ID_ERROR, 'a push stream, but push was never enabled'));
        return;
      case STREAM_TYPE_QPACK_ENCODER:
      case STREAM_TYPE_QPACK_DECODER: {
        const encoder = type === STREAM_TYPE_QPACK_ENCODER;
        if (encoder ? this.peerEncoderSeen : this.peerDecoderSeen) {
          this.connectionError(this.peerError(H3_STREAM_CREATION_ERROR, `a second QPACK ${encoder ? 'encoder' : 'decoder'} stream`));
          return;
        }
        if (encoder) this.peerEncoderSeen = true;
        else this.peerDecoderSeen = true;
        record.kind = encoder ? 'encoder' : 'decoder';
        if (encoder) record.encoder = new QpackEncoderStreamDecoder();
        return;
      }
      default:
        // §6.2: unknown and reserved stream types are read no further.
        record.kind = 'ignored';
        this.quic.stopSending(id, H3_STREAM_CREATION_ERROR);
    }
  }

  private onControlEvent(event: ControlEvent): void {
    switch (event.kind) {
      case 'settings':
        this.peerSettings = event.settings;
        return;
      case 'goaway':
        this.onGoaway(event.id);
        return;
      case 'max_push_id':
        // §7.2.7: only clients send MAX_PUSH_ID.
        throw this.peerError(H3_FRAME_UNEXPECTED, 'MAX_PUSH_ID from a server');
      case 'cancel_push':
        throw this.peerError(H3_ID_ERROR, 'CANCEL_PUSH, but push was never enabled');
    }
  }

  /**
   * §5.2: requests on stream ids at or above the GOAWAY id were not processed and may be retried
   * elsewhere; those below it complete here. No new requests go on this connection.
   */
  private onGoaway(id: number): void {
    if (id % 4 !== 0) throw this.peerError(H3_ID_ERROR, `GOAWAY id ${id} is not a client-initiated bidirectional stream`);
    this.goawayId = this.goawayId === undefined ? id : Math.min(this.goawayId, id);
    if (channels.goaway.hasSubscribers) channels.goaway.publish({ connectionId: this.id, protocol: 'h3', lastStreamId: id });
    if (this.connectionState === 'open') this.connectionState = 'draining';
    for (const stream of [...this.streams.values()]) {
      if (stream.id >= this.goawayId) {
        this.cancelStream(
          stream,
          this.notProcessed(`connection ${this.id} received GOAWAY(${id}): stream ${stream.id} was not processed`, 'MUXPOOL_ERR_GOAWAY'),
          H3_REQUEST_CANCELLED,
        );
      }
    }
    // Requests still held back were never sent: they go to another connection.
    for (const { stream } of [...this.held]) {
      this.cancelStream(stream, this.notProcessed(`connection ${this.id} received GOAWAY before the request was sent`, 'MUXPOOL_ERR_GOAWAY'), H3_REQUEST_CANCELLED);
    }
    this.observer?.onCapacityChange(this);
    if (this.streams.size === 0 && this.held.length === 0 && this.connectionState === 'draining') this.closeGracefully();
  }

  // ---------------------------------------------------------------------------------------
  // QuicConnectionHandler

  onStreamData(streamId: number, chunk: Uint8Array, fin: boolean): void {
    const stream = this.streams.get(streamId);
    if (stream !== undefined) {
      this.onResponseBytes(stream, chunk, fin);
      return;
    }
    const uni = this.peerUni.get(streamId);
    if (uni !== undefined) this.onPeerUniBytes(streamId, uni, chunk, fin);
  }

  onPeerStream(streamId: number, bidirectional: boolean): void {
    if (bidirectional) {
      // §6.1: "Clients MUST treat receipt of a server-initiated bidirectional stream as a
      // connection error of type H3_STREAM_CREATION_ERROR".
      this.connectionError(this.peerError(H3_STREAM_CREATION_ERROR, 'a server-initiated bidirectional stream'));
      return;
    }
    this.peerUni.set(streamId, { kind: 'pending', typeReader: new UniStreamTypeReader(), control: undefined, encoder: undefined });
  }

  onStreamReset(streamId: number, appErrorCode: number): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      const uni = this.peerUni.get(streamId);
      if (uni !== undefined && uni.kind !== 'ignored' && uni.kind !== 'pending') {
        this.connectionError(this.peerError(H3_CLOSED_CRITICAL_STREAM, `the peer reset its ${uni.kind} stream`));
      } else {
        this.peerUni.delete(streamId);
      }
      return;
    }
    this.cancelStream(stream, this.streamResetError(stream, appErrorCode, 'reset'), H3_REQUEST_CANCELLED);
  }

  onStreamStopped(streamId: number, appErrorCode: number): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    // §4.1: H3_NO_ERROR means the server needs no more of the body; its response still comes.
    this.stopSendingSide(stream);
    if (appErrorCode === H3_NO_ERROR || hasResponse(stream.state)) return;
    this.cancelStream(stream, this.streamResetError(stream, appErrorCode, 'stopped'), H3_REQUEST_CANCELLED);
  }

  onStreamWritable(streamId: number): void {
    const stream = this.streams.get(streamId);
    if (stream !== undefined) this.flush(stream);
  }

  onSessionTicket(ticket: Uint8Array): void {
    this.options.onSessionTicket?.(ticket);
  }

  /**
   * Open streams plus credit left is what the peer allows at once; credit for streams that just
   * ended lags a round trip, so the high-water mark is the limit (requests beyond the credit of
   * the moment are held until MAX_STREAMS arrives, not sent to another connection). Opening a
   * stream changes the credit but not the sum: the pool hears only of a limit that rose.
   */
  onCreditChange(peerStreamsLeftBidi: number): void {
    this.startHeld();
    const now = this.streams.size + peerStreamsLeftBidi;
    if (now <= this.peakStreams) return;
    this.peakStreams = now;
    if (this.connectionState === 'open') this.observer?.onCapacityChange(this);
  }

  onClose(info: QuicCloseInfo): void {
    let error = info.error;
    if (error === undefined && info.isApp && info.errorCode !== H3_NO_ERROR) {
      error = new MuxpoolError(
        'MUXPOOL_ERR_H3_PROTOCOL',
        `the server closed the connection with ${describeH3Error(info.errorCode)}${info.reason !== '' ? `: ${info.reason}` : ''}`,
        { wireCode: info.errorCode, origin: 'remote' },
      );
    }
    this.markClosed(
      error ??
        new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} closed (${info.cause}) before the response was complete`, {
          maybeProcessed: true,
        }),
    );
  }

  // ---------------------------------------------------------------------------------------
  // Closing

  private streamResetError(stream: H3RequestStream, code: number, how: 'reset' | 'stopped'): MuxpoolError {
    // §8.1 H3_REQUEST_REJECTED: "the request was not processed in any way".
    if (code === H3_REQUEST_REJECTED && !hasResponse(stream.state)) {
      return new MuxpoolError('MUXPOOL_ERR_STREAM_REFUSED', `the server rejected stream ${stream.id} (H3_REQUEST_REJECTED)`, {
        maybeProcessed: false,
        wireCode: code,
        origin: 'remote',
      });
    }
    return new MuxpoolError('MUXPOOL_ERR_STREAM_RESET', `the server ${how} stream ${stream.id} with ${describeH3Error(code)}`, {
      maybeProcessed: true,
      wireCode: code,
      origin: 'remote',
    });
  }

  private peerError(wireCode: number, message: string): MuxpoolError {
    return new MuxpoolError('MUXPOOL_ERR_H3_PROTOCOL', `HTTP/3 peer error ${describeH3Error(wireCode)}: ${message}`, {
      wireCode,
      origin: 'remote',
    });
  }

  private notProcessed(message: string, code: 'MUXPOOL_ERR_GOAWAY' | 'MUXPOOL_ERR_CONNECTION_CLOSED' | 'MUXPOOL_ERR_QUIC'): MuxpoolError {
    return new MuxpoolError(code, message, { maybeProcessed: false });
  }

  /** The peer broke the protocol: close the connection with its wire code, fail every stream. */
  private connectionError(err: unknown): void {
    if (this.connectionState === 'closed') return;
    const error =
      err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'HTTP/3 connection handling failed', { cause: err });
    this.markClosed(error);
    void this.quic.close(error.wireCode ?? 0x101, error.message.slice(0, 100));
  }

  private closeGracefully(): void {
    if (this.connectionState === 'closed') return;
    this.markClosed(undefined);
    void this.quic.close(H3_NO_ERROR);
  }

  /** Fails every open stream (with a not-processed flag where GOAWAY proves it) and tells the pool. */
  private markClosed(err: MuxpoolError | undefined): void {
    if (this.connectionState === 'closed') return;
    this.connectionState = 'closed';
    this.closeError = err;
    this.deadlines.stop();
    // Each stream its own error (cause: the shared one): the client sets `attempts` on it.
    for (const stream of [...this.streams.values()]) {
      // Not processed: above the GOAWAY id (RFC 9114 §5.2), or not one packet left since the
      // stream opened (say the idle timeout struck before the turn that would have sent it).
      const notProcessed = (this.goawayId !== undefined && stream.id >= this.goawayId) || this.quic.packetsSent === stream.packetsAtOpen;
      const perStream =
        err !== undefined
          ? errorForStream(err, notProcessed ? false : (err.maybeProcessed ?? true))
          : new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} closed`, { maybeProcessed: !notProcessed });
      this.finish(stream);
      stream.handler.onError(perStream);
    }
    const held = this.held;
    this.held = [];
    for (const { stream } of held) {
      stream.to('closed');
      const reason = err ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} closed`);
      stream.handler.onError(new MuxpoolError(reason.code, `${reason.message} (before the request was sent)`, { cause: reason, maybeProcessed: false }));
    }
    this.peerUni.clear();
    const observer = this.observer;
    this.observer = undefined;
    observer?.onClose(this, this.closeError);
  }
}

/** Lets a body pump waiting for credit go on (it finds out itself whether the stream still sends). */
function wakeWriter(stream: H3RequestStream): void {
  const wake = stream.wakeWriter;
  stream.wakeWriter = undefined;
  wake?.();
}
