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
import { STATUS_CODES } from 'node:http';
import type { Clock, Timer } from '../../core/clock.js';
import { channels } from '../../core/diagnostics.js';
import { nextConnectionId } from '../../core/ids.js';
import { MuxpoolError } from '../../errors.js';
import { bodyFailure, checkedBody } from '../body.js';
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

export interface H3ConnectionOptions {
  clock: Clock;
  /** Streams per connection we allow ourselves (the pool's `maxStreams`). */
  maxStreams: number;
  /** Fail a request when its stream sees nothing for this long. */
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

/** One request on the connection: the `RequestStream` its caller controls. */
class H3RequestStream implements RequestStream {
  id = -1;
  done = false;
  /** The final (non-1xx) response head was delivered. */
  gotResponse = false;
  gotTrailers = false;
  paused = false;
  /** Our side has sent its FIN, or was reset or stopped: nothing more to write. */
  writeClosed = false;
  lastActivityAt: number;
  /** The QUIC connection's `packetsSent` when the stream opened: none since, nothing was sent. */
  packetsAtOpen = 0;
  /** Response body bytes the head announced (`undefined`: no length, or no body by rule). */
  expectedLength: number | undefined;
  receivedLength = 0;
  /** Request bytes waiting for flow-control credit, and whether a FIN follows them. */
  outbox: Uint8Array[] = [];
  finQueued = false;
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

  resume(): void {
    this.connection.resumeStream(this);
  }

  cancel(reason: MuxpoolError): void {
    this.connection.cancelStream(this, reason, H3_REQUEST_CANCELLED);
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

  private current: ConnectionState = 'open';
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
  private sweepTimer: Timer | undefined;
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
    quic.setHandler(this);
    this.openControlStream();
  }

  // ---------------------------------------------------------------------------------------
  // Connection

  get state(): ConnectionState {
    return this.current;
  }

  /** Streams open now plus the ones the peer still grants (MAX_STREAMS), capped by ours. */
  get maxStreams(): number {
    if (this.current !== 'open') return this.streams.size + this.held.length;
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
    return this.current === 'open' && (quic === 'established' || quic === 'handshaking');
  }

  openStream(head: RequestHead, body: RequestBody, handler: StreamHandler): RequestStream {
    const now = this.options.clock.now();
    const stream = new H3RequestStream(this, handler, head.method, this.options.maxHeaderBytes, now);
    if (this.current !== 'open') {
      stream.done = true;
      handler.onError(this.notProcessed(`connection ${this.id} takes no new streams`, 'MUXPOOL_ERR_CONNECTION_CLOSED'));
      return stream;
    }
    let headersFrame: Uint8Array;
    try {
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
    } catch (err) {
      stream.done = true;
      handler.onError(err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'encoding HTTP/3 headers failed', { cause: err }));
      return stream;
    }
    if (this.held.length > 0 || !this.canStart(head, body)) {
      this.held.push({ stream, head, body, headersFrame });
      this.quic.holdProcess(true);
      if (this.sweepTimer === undefined) this.armSweep(this.options.readTimeoutMs);
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
    if (this.held.length === 0 || this.current === 'closed') return;
    // In place, in order: starting one may call back into the pool (a failure releases its
    // slot), which may open or cancel streams or close the connection meanwhile.
    let i = 0;
    while (i < this.held.length && this.state !== 'closed') {
      const entry = this.held[i] as (typeof this.held)[number];
      if (entry.stream.done) {
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
      stream.done = true;
      const error = err instanceof MuxpoolError ? err : this.notProcessed('opening a QUIC stream failed', 'MUXPOOL_ERR_QUIC');
      error.maybeProcessed = false;
      stream.handler.onError(error);
      return;
    }
    stream.packetsAtOpen = this.quic.packetsSent;
    this.streams.set(stream.id, stream);
    this.requestCount++;
    if (this.sweepTimer === undefined) this.armSweep(this.options.readTimeoutMs);

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
      void this.pumpBody(stream, body, head.contentLength ?? undefined);
    }
  }

  /** The handshake completed: requests held back from 0-RTT go out now. */
  onEstablished(): void {
    this.startHeld();
  }

  drain(): void {
    if (this.current !== 'open') return;
    this.current = 'draining';
    if (this.streams.size === 0 && this.held.length === 0) this.closeGracefully();
  }

  destroy(err?: MuxpoolError): void {
    if (this.current === 'closed') return;
    const error = err ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`, { maybeProcessed: true });
    this.markClosed(error);
    this.quic.destroy(err);
  }

  // ---------------------------------------------------------------------------------------
  // Request streams

  /** Writes request bytes in order; what flow control refuses waits for `onStreamWritable`. */
  private send(stream: H3RequestStream, bytes: Uint8Array, fin: boolean): void {
    if (stream.writeClosed) return;
    if (stream.outbox.length > 0) {
      if (bytes.byteLength > 0) stream.outbox.push(bytes);
      stream.finQueued ||= fin;
      return;
    }
    let accepted: number;
    try {
      accepted = this.quic.write(stream.id, bytes, fin);
    } catch (err) {
      this.onWriteFailure(stream, err);
      return;
    }
    if (accepted < bytes.byteLength) {
      stream.outbox.push(bytes.subarray(accepted));
      stream.finQueued = fin;
    } else if (fin) {
      stream.writeClosed = true;
    }
  }

  private flush(stream: H3RequestStream): void {
    while (stream.outbox.length > 0 && !stream.writeClosed) {
      const chunk = stream.outbox[0] as Uint8Array;
      const last = stream.outbox.length === 1;
      let accepted: number;
      try {
        accepted = this.quic.write(stream.id, chunk, last && stream.finQueued);
      } catch (err) {
        this.onWriteFailure(stream, err);
        return;
      }
      if (accepted < chunk.byteLength) {
        stream.outbox[0] = chunk.subarray(accepted);
        return;
      }
      stream.outbox.shift();
      if (last && stream.finQueued) stream.writeClosed = true;
    }
    if (stream.outbox.length === 0) {
      const wake = stream.wakeWriter;
      stream.wakeWriter = undefined;
      wake?.();
    }
  }

  /** The peer stopped our sending side, or the stream is gone: the request body ends here. */
  private onWriteFailure(stream: H3RequestStream, err: unknown): void {
    stream.writeClosed = true;
    stream.outbox = [];
    const wake = stream.wakeWriter;
    stream.wakeWriter = undefined;
    wake?.();
    // A response may still be coming (the server answered early and stopped reading).
    if (stream.gotResponse) return;
    const error = err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_QUIC_STREAM_CLOSED', 'writing the request failed', { cause: err });
    error.maybeProcessed ??= true;
    this.cancelStream(stream, error, H3_REQUEST_CANCELLED);
  }

  private async pumpBody(stream: H3RequestStream, body: AsyncIterable<Uint8Array>, declaredLength: number | undefined): Promise<void> {
    try {
      for await (const chunk of checkedBody(body, declaredLength)) {
        if (stream.done || stream.writeClosed) return;
        stream.lastActivityAt = this.options.clock.now();
        const header = encodeDataFrameHeader(chunk.byteLength);
        if (chunk.byteLength <= COALESCE_BODY_BYTES) this.send(stream, Buffer.concat([header, chunk]), false);
        else {
          this.send(stream, header, false);
          this.send(stream, chunk, false);
        }
        // Flow control shows up as bytes left in the outbox: wait for credit before reading on.
        if (stream.outbox.length > 0) await new Promise<void>((resolve) => (stream.wakeWriter = resolve));
      }
      if (stream.done || stream.writeClosed) return;
      this.send(stream, END_OF_STREAM_FRAME, true);
    } catch (err) {
      this.cancelStream(stream, bodyFailure(err), H3_REQUEST_CANCELLED);
    }
  }

  resumeStream(stream: H3RequestStream): void {
    if (!stream.paused || stream.done) return;
    stream.paused = false;
    this.quic.resumeStream(stream.id);
  }

  /** Ends a stream early: both directions are aborted with `wireCode` and the slot is free at once. */
  cancelStream(stream: H3RequestStream, reason: MuxpoolError, wireCode: number): void {
    if (stream.done) return;
    if (stream.id < 0) {
      // Held for the handshake or for credit: nothing was sent.
      stream.done = true;
      this.held = this.held.filter((entry) => entry.stream !== stream);
      this.quic.holdProcess(this.held.length > 0);
      if (this.streams.size === 0 && this.held.length === 0 && this.current === 'draining') this.closeGracefully();
      reason.maybeProcessed = false;
      stream.handler.onError(reason);
      return;
    }
    if (stream.id >= 0 && this.current !== 'closed') {
      if (!stream.writeClosed) this.quic.resetStream(stream.id, wireCode);
      this.quic.stopSending(stream.id, wireCode);
    }
    this.finish(stream);
    stream.handler.onError(reason);
  }

  private finish(stream: H3RequestStream): void {
    if (stream.done) return;
    stream.done = true;
    stream.writeClosed = true;
    stream.outbox = [];
    const wake = stream.wakeWriter;
    stream.wakeWriter = undefined;
    wake?.();
    this.streams.delete(stream.id);
    this.lastActivityAt = this.options.clock.now();
    if (this.streams.size === 0 && this.held.length === 0 && this.current === 'draining') this.closeGracefully();
  }

  private onResponseBytes(stream: H3RequestStream, chunk: Uint8Array, fin: boolean): void {
    stream.lastActivityAt = this.options.clock.now();
    const events = this.requestEvents;
    events.length = 0;
    try {
      if (chunk.byteLength > 0) stream.decoder.push(chunk, events);
      for (let i = 0; i < events.length && !stream.done; i++) this.onResponseEvent(stream, events[i] as RequestStreamEvent);
      if (!fin || stream.done) return;
      stream.decoder.finish();
      if (!stream.gotResponse) throw this.malformed('the stream ended before a response');
      if (stream.expectedLength !== undefined && stream.receivedLength !== stream.expectedLength) {
        throw new MuxpoolError(
          'MUXPOOL_ERR_BODY_TRUNCATED',
          `response body has ${stream.receivedLength} bytes but content-length says ${stream.expectedLength}`,
          { maybeProcessed: true },
        );
      }
      if (!stream.writeClosed) {
        // RFC 9114 §4.1: the response is complete; the rest of our body is not needed.
        this.quic.resetStream(stream.id, H3_NO_ERROR);
      }
      this.finish(stream);
      stream.handler.onComplete();
    } catch (err) {
      this.onStreamFailure(stream, err);
    } finally {
      events.length = 0;
    }
  }

  private onResponseEvent(stream: H3RequestStream, event: RequestStreamEvent): void {
    if (event.kind === 'data') {
      if (!stream.gotResponse) throw this.malformed('DATA before the final response head');
      if (stream.gotTrailers) throw this.malformed('DATA after the trailers');
      stream.receivedLength += event.bytes.byteLength;
      if (stream.expectedLength !== undefined && stream.receivedLength > stream.expectedLength) {
        throw this.malformed(`response body longer than its content-length ${stream.expectedLength}`);
      }
      if (!stream.handler.onData(event.bytes) && !stream.done) {
        stream.paused = true;
        this.quic.pauseStream(stream.id);
      }
      return;
    }
    if (stream.gotResponse) {
      if (stream.gotTrailers) throw this.malformed('a header section after the trailers');
      stream.gotTrailers = true;
      stream.handler.onTrailers(fromH3ResponseFields(event.fields, this.options.maxHeaderCount, true).headers);
      return;
    }
    const head = fromH3ResponseFields(event.fields, this.options.maxHeaderCount);
    // RFC 9114 §4.1: interim (1xx) responses precede the final one; 101 has no meaning here.
    if (head.status < 200) {
      if (head.status === 101) throw this.malformed('101 Switching Protocols over HTTP/3');
      return;
    }
    stream.gotResponse = true;
    const length = head.headers['content-length'];
    // HEAD, 204 and 304 announce a length they do not send (RFC 9110 §8.6).
    if (typeof length === 'string' && stream.method !== 'HEAD' && head.status !== 204 && head.status !== 304) {
      if (!/^\d{1,15}$/.test(length)) throw this.malformed(`invalid content-length ${JSON.stringify(length)}`);
      stream.expectedLength = Number(length);
    }
    stream.handler.onResponse(head.status, head.headers, STATUS_CODES[head.status] ?? '');
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

  // ---------------------------------------------------------------------------------------
  // Read timeouts: one timer per connection, re-armed for the stream nearest its deadline. It
  // stays armed when the last stream ends and lapses at its next sweep: one request after
  // another would otherwise arm and cancel a timer each (a sweep that comes early is harmless).

  private armSweep(ms: number): void {
    this.sweepTimer = this.options.clock.setTimer(this.onSweep, Math.max(1, ms));
  }

  private readonly onSweep = (): void => {
    this.sweepTimer = undefined;
    const now = this.options.clock.now();
    const limit = this.options.readTimeoutMs;
    let next = limit;
    for (const stream of [...this.streams.values(), ...this.held.map((entry) => entry.stream)]) {
      // A stream still sending its body is not waiting for the server (as over HTTP/2).
      if (stream.id >= 0 && !stream.writeClosed) {
        stream.lastActivityAt = now;
        continue;
      }
      const idle = now - stream.lastActivityAt;
      if (idle >= limit) {
        this.cancelStream(
          stream,
          new MuxpoolError(
            'MUXPOOL_ERR_READ_TIMEOUT',
            stream.id < 0 ? `no stream credit from the peer for ${limit} ms` : `no data on HTTP/3 stream ${stream.id} for ${limit} ms`,
            { maybeProcessed: stream.id >= 0 },
          ),
          H3_REQUEST_CANCELLED,
        );
      } else {
        next = Math.min(next, limit - idle);
      }
    }
    if (this.streams.size > 0 || this.held.length > 0) this.armSweep(next);
  };

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
      if (this.current === 'closed') return;
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
    if (this.current === 'open') this.current = 'draining';
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
    if (this.streams.size === 0 && this.held.length === 0 && this.current === 'draining') this.closeGracefully();
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
    stream.writeClosed = true;
    stream.outbox = [];
    const wake = stream.wakeWriter;
    stream.wakeWriter = undefined;
    wake?.();
    if (appErrorCode === H3_NO_ERROR || stream.gotResponse) return;
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
    if (this.current === 'open') this.observer?.onCapacityChange(this);
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
    if (code === H3_REQUEST_REJECTED && !stream.gotResponse) {
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
    if (this.current === 'closed') return;
    const error =
      err instanceof MuxpoolError ? err : new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'HTTP/3 connection handling failed', { cause: err });
    this.markClosed(error);
    void this.quic.close(error.wireCode ?? 0x101, error.message.slice(0, 100));
  }

  private closeGracefully(): void {
    if (this.current === 'closed') return;
    this.markClosed(undefined);
    void this.quic.close(H3_NO_ERROR);
  }

  /** Fails every open stream (with a not-processed flag where GOAWAY proves it) and tells the pool. */
  private markClosed(err: MuxpoolError | undefined): void {
    if (this.current === 'closed') return;
    this.current = 'closed';
    this.closeError = err;
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
    for (const stream of [...this.streams.values()]) {
      const reason = err ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} closed`, { maybeProcessed: true });
      // Not processed: above the GOAWAY id (RFC 9114 §5.2), or not one packet left since the
      // stream opened (say the idle timeout struck before the turn that would have sent it).
      const notProcessed = (this.goawayId !== undefined && stream.id >= this.goawayId) || this.quic.packetsSent === stream.packetsAtOpen;
      const perStream = new MuxpoolError(reason.code, reason.message, {
        cause: reason,
        maybeProcessed: notProcessed ? false : (reason.maybeProcessed ?? true),
        ...(reason.wireCode !== undefined ? { wireCode: reason.wireCode } : {}),
        ...(reason.origin !== undefined ? { origin: reason.origin } : {}),
      });
      this.finish(stream);
      stream.handler.onError(perStream);
    }
    const held = this.held;
    this.held = [];
    for (const { stream } of held) {
      stream.done = true;
      const reason = err ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} closed`);
      stream.handler.onError(new MuxpoolError(reason.code, `${reason.message} (before the request was sent)`, { cause: reason, maybeProcessed: false }));
    }
    this.peerUni.clear();
    const observer = this.observer;
    this.observer = undefined;
    observer?.onClose(this, this.closeError);
  }
}
