/**
 * Our HTTP/2 client engine (RFC 9113) on a connected TCP or TLS socket: frames and HPACK from
 * the pure codecs, and here the connection's life — preface and SETTINGS (with an ACK deadline),
 * streams through the §5.1 state machine, flow control both ways, PING health, GOAWAY,
 * RST_STREAM, and one socket write per tick for every frame queued in it.
 *
 * The pool never sees the engine itself: it sees one `H2EngineView` per origin that uses it
 * (more than one only when connections are coalesced, RFC 9113 §9.1.1).
 *
 * Engine states: connecting → open → draining → closed (or any → closed).
 *  - connecting: our preface is sent, the peer's SETTINGS has not arrived;
 *  - open: streams may be opened;
 *  - draining: GOAWAY received, or we asked it to close: open streams finish, no new ones;
 *  - closed: the socket is gone and every stream has settled.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Clock, Timer } from '../../core/clock.js';
import { channels } from '../../core/diagnostics.js';
import { nextConnectionId } from '../../core/ids.js';
import { type DirectReader, attachDirectReader } from '../../core/direct-read.js';
import { mapSocketError } from '../../connect/dial.js';
import { MuxpoolError, internalError } from '../../errors.js';
import { type BodySink, ReadDeadlines, checkInterimBudget, pumpBody, readTimeoutError } from '../stream-support.js';
import { isConnectionSpecific, multiplexedRequestFields, receivedFieldNameProblem, receivedFieldValueProblem, standardStatusText } from '../fields.js';
import { type IncomingHeaders, type RequestBody, type RequestHead, type RequestStream, type StreamHandler, emptyHeaders } from '../message.js';
import {
  CANCEL,
  COMPRESSION_ERROR,
  ENHANCE_YOUR_CALM,
  FLOW_CONTROL_ERROR,
  FRAME_SIZE_ERROR,
  NO_ERROR,
  PROTOCOL_ERROR,
  REFUSED_STREAM,
  SETTINGS_TIMEOUT,
  STREAM_CLOSED,
  describeH2Error,
  h2ConnectionError,
} from './codes.js';
import { H2EngineView } from './engine-view.js';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  FLAG_END_STREAM,
  FRAME_ALTSVC,
  FRAME_DATA,
  FRAME_GOAWAY,
  FRAME_HEADERS,
  FRAME_HEADER_BYTES,
  FRAME_PING,
  FRAME_PRIORITY,
  FRAME_PUSH_PROMISE,
  FRAME_RST_STREAM,
  FRAME_SETTINGS,
  FRAME_WINDOW_UPDATE,
  type Frame,
  FrameReader,
  MAX_WINDOW,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_HEADER_TABLE_SIZE,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  SETTINGS_MAX_FRAME_SIZE,
  SETTINGS_MAX_HEADER_LIST_SIZE,
  type SettingsFrame,
  encodeGoaway,
  encodeHeaders,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeSettingsAck,
  encodeWindowUpdate,
  writeFrameHeader,
} from './frames.js';
import { HpackDecoder, HpackEncoder } from './hpack.js';
import { type StreamState, canReceive, canSend, streamTransition } from './stream-state.js';

/** Per-stream receive window we advertise (SETTINGS_INITIAL_WINDOW_SIZE). */
export const DEFAULT_STREAM_WINDOW_BYTES = 1024 * 1024;
/** Connection receive window, shared by every stream. */
export const DEFAULT_CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/**
 * PING and SETTINGS ACKs we owe the peer while it does not read what we write: beyond this a
 * peer that keeps asking is flooding (CVE-2019-9512, -9515), and is closed with ENHANCE_YOUR_CALM.
 */
export const DEFAULT_MAX_QUEUED_CONTROL_FRAMES = 1000;
/** Streams we reset whose late frames we still recognise (and ignore, RFC 9113 §5.1). */
const REMEMBERED_RESETS = 10_000;
/** Request body bytes queued per stream before the body pump waits. */
const STREAM_SEND_HIGH_WATER = 256 * 1024;
/** Queued output beyond which we write at once instead of waiting for the end of the tick. */
const FLUSH_NOW_BYTES = 256 * 1024;
/** RFC 9113 §5.1.1: stream ids are 31-bit. */
const MAX_STREAM_ID = 2 ** 31 - 1;

export type H2EngineState = 'connecting' | 'open' | 'draining' | 'closed';

export interface H2EngineOptions {
  clock: Clock;
  /** Streams per connection we allow ourselves (the pool's `maxStreams`). */
  maxStreams: number;
  /** A stream that can neither send nor receive for this long fails with READ_TIMEOUT. */
  readTimeoutMs: number;
  /** Ping a connection silent this long (before reuse, or while streams wait). 0: never. */
  pingIntervalMs: number;
  /** A PING unanswered this long means the connection is dead. */
  pingTimeoutMs: number;
  /** How long the peer has to send its SETTINGS, and to acknowledge ours. */
  settingsTimeoutMs: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce (name + value + 32 per field). */
  maxHeaderBytes: number;
  maxHeaderCount: number;
  remoteAddress: string | undefined;
  /** The TLS handshake resumed an earlier session (undefined in cleartext). */
  resumed?: boolean | undefined;
  /** Called once when the engine is gone (the connector forgets it then). */
  onClose?: ((engine: H2Engine) => void) | undefined;
  /** An ALTSVC frame (RFC 7838 §4) for an origin this connection serves: its key id and the field value. */
  onAltSvc?: ((keyId: string, value: string) => void) | undefined;
  /** Receive windows (defaults above): larger ones carry more bytes per round trip. */
  streamWindowBytes?: number | undefined;
  connectionWindowBytes?: number | undefined;
  maxQueuedControlFrames?: number | undefined;
}

/** What the response side of a stream has seen so far. */
type ResponsePhase = 'awaiting-headers' | 'body' | 'done';

/** One request on the connection: the `RequestStream` its caller controls. */
class EngineStream implements RequestStream, BodySink {
  readonly engine: H2Engine;
  readonly view: H2EngineView;
  readonly handler: StreamHandler;
  readonly isHead: boolean;
  id = 0;
  state: StreamState = 'idle';
  /** The handler got onComplete or onError: nothing more goes to it. */
  settled = false;
  phase: ResponsePhase = 'awaiting-headers';
  /** END_STREAM arrived; delivered once `received` is drained. */
  endReceived = false;
  /** content-length of the response, when given (RFC 9113 §8.1.1). */
  expectedLength = -1;
  receivedLength = 0;
  /** Our receive window as the peer sees it, and bytes consumed since our last WINDOW_UPDATE. */
  recvWindow: number;
  unackedBytes = 0;
  paused = false;
  /** DATA that arrived while the consumer paused us. */
  received: Uint8Array[] = [];
  /** Trailers that arrived while the consumer paused us: delivered after the held DATA. */
  trailers: IncomingHeaders | undefined;
  /** The peer's window for this stream (may go negative after a SETTINGS change, §6.9.2). */
  sendWindow: number;
  /** Request body bytes waiting for credit or for the socket. */
  readonly outgoing: Uint8Array[] = [];
  outgoingBytes = 0;
  /** The last body byte is queued: END_STREAM goes with (or after) the last DATA. */
  endQueued = false;
  /** Interim (1xx) responses so far, and their field bytes: bounded (RFC 9110 §15.2). */
  interimCount = 0;
  interimBytes = 0;
  /** The body pump waits for the user's iterator (not for the peer): no read timeout then. */
  awaitingSource = false;
  wakePump: (() => void) | undefined;
  /** When the stream last moved (a frame in, DATA out): the read deadline's base. */
  lastActivityAt = 0;

  constructor(engine: H2Engine, view: H2EngineView, handler: StreamHandler, isHead: boolean, recvWindow: number, sendWindow: number) {
    this.engine = engine;
    this.view = view;
    this.handler = handler;
    this.isHead = isHead;
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  resume(): void {
    if (!this.settled && this.paused) this.engine.resumeStream(this);
  }

  // BodySink: the shared request-body pump (stream-support.ts) feeds a streamed body here.
  get acceptsBody(): boolean {
    return !this.settled && canSend(this.state) && !this.endQueued;
  }

  writeBody(chunk: Uint8Array): boolean {
    this.engine.enqueueBody(this, chunk, false);
    return this.outgoingBytes < STREAM_SEND_HIGH_WATER;
  }

  bodyDrained(): Promise<void> {
    if (!this.acceptsBody || this.outgoingBytes < STREAM_SEND_HIGH_WATER) return Promise.resolve();
    // Woken when the peer's credit (or the socket) lets the queue fall, or the stream ends.
    return new Promise((resolve) => {
      this.wakePump = resolve;
    });
  }

  endBody(): void {
    this.engine.enqueueBody(this, new Uint8Array(0), true);
  }

  failBody(err: MuxpoolError): void {
    // Only this stream is lost; the connection carries on.
    this.engine.failStream(this, err, CANCEL);
  }

  cancel(reason: MuxpoolError): void {
    if (this.settled) return;
    this.engine.failStream(this, reason, CANCEL);
  }
}

/** Codes with which a peer's GOAWAY or RST_STREAM says that we broke a rule. */
const PEER_BLAMES_US = new Set([PROTOCOL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, COMPRESSION_ERROR, ENHANCE_YOUR_CALM]);

/** RFC 9113 §6.5.2: a field list's size, each field's name and value octets plus 32. */
function headerListSize(fields: readonly string[]): number {
  let size = 0;
  for (let i = 0; i < fields.length; i += 2) size += (fields[i] as string).length + (fields[i + 1] as string).length + 32;
  return size;
}

export class H2Engine implements DirectReader {
  readonly id = nextConnectionId('h2');
  readonly remoteAddress: string | undefined;
  readonly resumed: boolean | undefined;
  state: H2EngineState = 'connecting';
  /** Streams the peer allows at once (SETTINGS_MAX_CONCURRENT_STREAMS), capped by ours. */
  maxStreams = 0;
  /** Streams open on the connection, across every view. */
  activeStreams = 0;
  requestCount = 0;
  /** Highest stream id the peer will process, once it sent GOAWAY. */
  goawayLastStreamId: number | undefined;
  closeError: MuxpoolError | undefined;
  readonly views = new Set<H2EngineView>();

  private readonly socket: Socket | TLSSocket;
  private readonly options: H2EngineOptions;
  private readonly reader: FrameReader;
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private readonly streams = new Map<number, EngineStream>();
  /** Ids of streams we reset, oldest first (Set keeps insertion order). */
  private readonly resetIds = new Set<number>();
  private nextStreamId = 1;
  // Peer settings (RFC 9113 §6.5.2 defaults until its SETTINGS arrive).
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxHeaderList = Infinity;
  private peerMaxStreams = Infinity;
  // Flow control.
  private readonly streamWindow: number;
  private readonly connectionWindow: number;
  private connRecvWindow = DEFAULT_WINDOW;
  private connUnacked = 0;
  private connSendWindow = DEFAULT_WINDOW;
  /** Streams with body bytes waiting for connection credit or the socket, in arrival order. */
  private readonly blocked = new Set<EngineStream>();
  // Output.
  private readonly out: Uint8Array[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  /** Whether the socket keeps the process alive (while streams are open), and an unref is due. */
  private socketRefed = true;
  private unrefScheduled = false;
  private socketCongested = false;
  /** ACKs owed to the peer since its socket last took our writes (flood bound). */
  private owedAcks = 0;
  private readonly maxOwedAcks: number;
  // Timers and health.
  private lastActivity: number;
  private pingTimer: Timer | undefined;
  private pingInFlight: Uint8Array | undefined;
  private pingCounter = 0;
  private healthTimer: Timer | undefined;
  /** READ_TIMEOUT for every stream: one timer, shared logic with the other drivers. */
  private readonly deadlines: ReadDeadlines<EngineStream>;
  private settingsAckTimer: Timer | undefined;
  private readyTimer: Timer | undefined;
  private readyResolve: ((view: H2EngineView) => void) | undefined;
  private readyReject: ((err: MuxpoolError) => void) | undefined;
  private firstKeyId = '';
  /** After our GOAWAY: the socket closes once written, or is cut off when this fires. */
  private lingerTimer: Timer | undefined;
  private readonly onSocketData = (chunk: Buffer): void => this.receive(chunk);
  private readonly onSocketDrain = (): void => this.onDrain();
  private readonly onSocketError = (err: Error): void => this.onTransportError(err);
  private readonly onSocketClose = (): void => this.onTransportClose();
  private readonly onSocketEnd = (): void => this.onTransportEnd();

  private constructor(socket: Socket | TLSSocket, options: H2EngineOptions) {
    this.socket = socket;
    this.options = options;
    this.remoteAddress = options.remoteAddress;
    this.resumed = options.resumed;
    this.lastActivity = options.clock.now();
    this.streamWindow = Math.min(MAX_WINDOW, options.streamWindowBytes ?? DEFAULT_STREAM_WINDOW_BYTES);
    this.connectionWindow = Math.min(MAX_WINDOW, Math.max(DEFAULT_WINDOW, options.connectionWindowBytes ?? DEFAULT_CONNECTION_WINDOW_BYTES));
    this.maxOwedAcks = options.maxQueuedControlFrames ?? DEFAULT_MAX_QUEUED_CONTROL_FRAMES;
    this.reader = new FrameReader({
      maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
      splitData: true,
      // The encoded block is bounded too: HPACK never needs much more room than the list it
      // carries (plus table-size updates and padding), so twice the list limit is generous.
      maxHeaderBlockBytes: 2 * options.maxHeaderBytes + 1024,
    });
    this.decoder = new HpackDecoder();
    this.deadlines = new ReadDeadlines<EngineStream>(
      options.clock,
      options.readTimeoutMs,
      () => [...this.streams.values()],
      (stream) => this.expireStream(stream),
    );
  }

  /**
   * Starts HTTP/2 on a connected socket (after ALPN chose h2, or with prior knowledge over
   * cleartext) and resolves once the peer's SETTINGS arrived, so the first request already
   * knows how many streams it may open.
   */
  static start(socket: Socket | TLSSocket, keyId: string, options: H2EngineOptions, signal: AbortSignal): Promise<H2EngineView> {
    const engine = new H2Engine(socket, options);
    engine.firstKeyId = keyId;
    return new Promise<H2EngineView>((resolve, reject) => {
      const onAbort = (): void =>
        engine.failStart(
          signal.reason instanceof MuxpoolError
            ? signal.reason
            : new MuxpoolError('MUXPOOL_ERR_ABORTED', 'dial aborted', { cause: signal.reason, maybeProcessed: false }),
        );
      engine.readyResolve = (view) => {
        signal.removeEventListener('abort', onAbort);
        resolve(view);
      };
      engine.readyReject = (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      engine.begin();
    });
  }

  /** §3.4: preface, our SETTINGS, and the connection window opened wide at once. */
  private begin(): void {
    const socket = this.socket;
    socket.on('drain', this.onSocketDrain);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
    socket.on('end', this.onSocketEnd);
    if ('setNoDelay' in socket && typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
    this.queue(CLIENT_PREFACE);
    this.queue(
      encodeSettings([
        // §8.4: "A client ... MUST send SETTINGS_ENABLE_PUSH 0" to refuse pushes; ours.
        [SETTINGS_ENABLE_PUSH, 0],
        [SETTINGS_INITIAL_WINDOW_SIZE, this.streamWindow],
        [SETTINGS_MAX_HEADER_LIST_SIZE, this.options.maxHeaderBytes],
      ]),
    );
    if (this.connectionWindow > DEFAULT_WINDOW) {
      this.queue(encodeWindowUpdate(0, this.connectionWindow - DEFAULT_WINDOW));
      this.connRecvWindow = this.connectionWindow;
    }
    this.flush();
    const timeout = this.options.settingsTimeoutMs;
    this.readyTimer = this.options.clock.setTimer(
      () =>
        this.failStart(
          new MuxpoolError('MUXPOOL_ERR_CONNECT_TIMEOUT', `the HTTP/2 peer sent no SETTINGS within ${timeout} ms`, { maybeProcessed: false }),
        ),
      timeout,
    );
    // §6.5.3: "If the sender of a SETTINGS frame does not receive an acknowledgment within a
    // reasonable amount of time, it MAY issue a connection error of type SETTINGS_TIMEOUT."
    this.settingsAckTimer = this.options.clock.setTimer(() => {
      this.settingsAckTimer = undefined;
      if (this.state === 'connecting') return; // the dial's own deadline (readyTimer) says it
      this.connectionError(h2ConnectionError(SETTINGS_TIMEOUT, `our SETTINGS were not acknowledged within ${timeout} ms`, 'remote'));
    }, timeout);
    // Reads last: a direct reader gets what the socket holds already at once, and whatever that
    // makes us send (a SETTINGS ACK) must follow our preface (RFC 9113 §3.4), with every
    // listener and timer in place. Straight from the socket when it was dialed for that
    // (core/direct-read.ts).
    if (!attachDirectReader(socket, this)) socket.on('data', this.onSocketData);
  }

  // ---------------------------------------------------------------------------------------
  // What the connector and the coalescing index see

  addView(keyId: string): H2EngineView {
    const view = new H2EngineView(this, keyId);
    this.views.add(view);
    return view;
  }

  /** Whether the origin `keyId` already uses this connection (then it needs another one). */
  serves(keyId: string): boolean {
    for (const view of this.views) if (view.keyId === keyId && view.state !== 'closed') return true;
    return false;
  }

  /** The certificate the peer presented, for coalescing checks; undefined over cleartext. */
  peerCertificate(): ReturnType<TLSSocket['getPeerCertificate']> | undefined {
    const socket = this.socket as Partial<TLSSocket>;
    if (typeof socket.getPeerCertificate !== 'function' || socket.authorized !== true) return undefined;
    return socket.getPeerCertificate();
  }

  /** A method, not a field read, so that TypeScript does not narrow it across callbacks. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  get acceptsStreams(): boolean {
    return this.state === 'open' && !this.socket.destroyed;
  }

  // ---------------------------------------------------------------------------------------
  // Opening streams

  openStream(view: H2EngineView, head: RequestHead, body: RequestBody, handler: StreamHandler): RequestStream {
    const stream = new EngineStream(this, view, handler, head.method === 'HEAD', this.streamWindow, this.peerInitialWindow);
    if (!this.acceptsStreams || view.state !== 'open') {
      stream.settled = true;
      handler.onError(this.notProcessed(`connection ${this.id} takes no new streams`));
      return stream;
    }
    let block: Uint8Array;
    try {
      block = this.encodeRequest(head);
    } catch (err) {
      stream.settled = true;
      handler.onError(err instanceof MuxpoolError ? err : internalError(`building HTTP/2 headers failed: ${String(err)}`));
      return stream;
    }
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    stream.id = id;
    const endStream = body === null || (body instanceof Uint8Array && body.byteLength === 0);
    stream.state = streamTransition('idle', endStream ? 'send-headers-end-stream' : 'send-headers');
    this.queue(encodeHeaders(id, block, endStream, this.peerMaxFrameSize));
    const now = this.options.clock.now();
    if (this.activeStreams === 0) {
      if (!this.socketRefed) {
        this.socketRefed = true;
        this.socket.ref();
      }
      // A connection that sat silent may be dead (NAT timeout, peer gone without a FIN): ask
      // it now. The request goes out at once; if the PING fails, it fails with it.
      if (this.options.pingIntervalMs > 0 && now - this.lastActivity >= this.options.pingIntervalMs) this.ping();
    }
    this.activeStreams++;
    view.activeStreams++;
    this.requestCount++;
    this.streams.set(id, stream);
    stream.lastActivityAt = now;
    this.armHealthTimer();
    this.deadlines.watch();
    if (!endStream) {
      if (body instanceof Uint8Array) {
        this.enqueueBody(stream, body, true);
      } else if (body !== null) {
        void pumpBody(stream, body, head.contentLength ?? undefined, this.options.clock);
      }
    }
    // §5.1.1: "A client that is unable to establish a new stream identifier can establish a new
    // connection for new streams." Stop taking streams before the ids run out.
    if (this.nextStreamId > MAX_STREAM_ID) this.beginDraining();
    return stream;
  }

  /** The request's field block: pseudo-header fields first (RFC 9113 §8.3.1), then the rest. */
  private encodeRequest(head: RequestHead): Uint8Array {
    const encodings = head.encodings;
    if (encodings === undefined) return this.encodeFields(this.requestFields(head), undefined);
    if (encodings.h2Fields === undefined) {
      const fields = this.requestFields(head);
      encodings.h2Fields = fields;
      encodings.h2Key = fields.join('\0');
      encodings.h2Size = headerListSize(fields);
    }
    return this.encodeFields(encodings.h2Fields, encodings.h2Key, encodings.h2Size);
  }

  /** The request's fields, pseudo-header fields first. */
  private requestFields(head: RequestHead): string[] {
    const fields: string[] = [':method', head.method];
    // §8.5: CONNECT carries neither :scheme nor :path.
    if (head.method !== 'CONNECT') fields.push(':scheme', head.scheme, ':authority', head.authority, ':path', head.path === '' ? '/' : head.path);
    else fields.push(':authority', head.authority);
    const regular = multiplexedRequestFields(head.headers, head.contentLength);
    for (let i = 0; i < regular.length; i++) fields.push(regular[i] as string);
    return fields;
  }

  /** The field block of `fields`; `key` is their `\0`-joined form when known, `size` their §6.5.2 size. */
  private encodeFields(fields: readonly string[], key: string | undefined, knownSize?: number): Uint8Array {
    if (this.peerMaxHeaderList !== Infinity) {
      const size = knownSize ?? headerListSize(fields);
      // §6.5.2: the peer told us the largest list it takes; a larger one would only be refused.
      if (size > this.peerMaxHeaderList) {
        throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', `request header list of ${size} bytes exceeds the server's SETTINGS_MAX_HEADER_LIST_SIZE ${this.peerMaxHeaderList}`, {
          maybeProcessed: false,
        });
      }
    }
    return this.encoder.encode(fields, key);
  }

  // ---------------------------------------------------------------------------------------
  // Sending request bodies (flow control, RFC 9113 §6.9)

  enqueueBody(stream: EngineStream, chunk: Uint8Array, last: boolean): void {
    if (chunk.byteLength > 0) {
      stream.outgoing.push(chunk);
      stream.outgoingBytes += chunk.byteLength;
    }
    if (last) stream.endQueued = true;
    this.sendBody(stream);
  }

  /** Sends as much of the stream's queued body as both windows and the socket allow. */
  private sendBody(stream: EngineStream): void {
    if (!canSend(stream.state)) return;
    while (stream.outgoingBytes > 0) {
      if (this.socketCongested || this.state === 'closed') {
        this.blocked.add(stream);
        return;
      }
      const credit = Math.min(stream.sendWindow, this.connSendWindow, this.peerMaxFrameSize);
      if (credit <= 0) {
        // §6.9: waiting for WINDOW_UPDATE. Only connection credit is shared; a stream waiting
        // for its own window is woken by its own WINDOW_UPDATE.
        if (this.connSendWindow <= 0) this.blocked.add(stream);
        return;
      }
      let chunk = stream.outgoing[0] as Uint8Array;
      if (chunk.byteLength > credit) {
        stream.outgoing[0] = chunk.subarray(credit);
        chunk = chunk.subarray(0, credit);
      } else {
        stream.outgoing.shift();
      }
      stream.outgoingBytes -= chunk.byteLength;
      stream.sendWindow -= chunk.byteLength;
      this.connSendWindow -= chunk.byteLength;
      const end = stream.endQueued && stream.outgoingBytes === 0;
      this.queueData(stream.id, chunk, end);
      stream.lastActivityAt = this.options.clock.now();
      if (end) stream.state = streamTransition(stream.state, 'send-end-stream');
    }
    if (stream.endQueued && canSend(stream.state)) {
      // Nothing left but END_STREAM (an empty DATA frame needs no credit, §6.9.1).
      this.queueData(stream.id, new Uint8Array(0), true);
      stream.state = streamTransition(stream.state, 'send-end-stream');
    }
    this.blocked.delete(stream);
    if (stream.wakePump !== undefined && stream.outgoingBytes < STREAM_SEND_HIGH_WATER) {
      const wake = stream.wakePump;
      stream.wakePump = undefined;
      wake();
    }
    if (stream.state === 'closed') this.onStreamClosed(stream);
  }

  // ---------------------------------------------------------------------------------------
  // Receiving

  /** DirectReader: a read of the socket, when it bypasses the Readable stream. */
  onSocketRead(bytes: Buffer): void {
    this.receive(bytes);
  }

  private receive(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastActivity = this.options.clock.now();
    this.reader.push(chunk);
    try {
      for (let frame = this.reader.next(); frame !== undefined; frame = this.reader.next()) {
        this.onFrame(frame);
        if (this.isClosed()) return;
      }
    } catch (err) {
      this.connectionError(err instanceof MuxpoolError ? err : internalError(`HTTP/2 frame handling failed: ${String(err)}`));
      return;
    }
    // Credit for what this read consumed, batched: one WINDOW_UPDATE per read at most.
    this.maybeUpdateConnectionWindow();
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case FRAME_DATA:
        this.onData(frame.streamId, frame.data, frame.flowLength, frame.endStream);
        return;
      case FRAME_HEADERS:
        this.onHeaders(frame.streamId, frame.block, frame.endStream);
        return;
      case FRAME_PRIORITY:
        return; // §5.3.2: priority signals are read and ignored
      case FRAME_RST_STREAM:
        this.onRstStream(frame.streamId, frame.errorCode);
        return;
      case FRAME_SETTINGS:
        this.onSettings(frame);
        return;
      case FRAME_PUSH_PROMISE:
        // The reader refuses PUSH_PROMISE already (we sent ENABLE_PUSH 0); never reached.
        throw h2ConnectionError(PROTOCOL_ERROR, 'PUSH_PROMISE although push is disabled');
      case FRAME_PING:
        if (frame.ack) this.onPingAck(frame.data);
        else this.queueAck(encodePing(frame.data, true));
        return;
      case FRAME_GOAWAY:
        this.onGoaway(frame.lastStreamId, frame.errorCode, frame.debug);
        return;
      case FRAME_WINDOW_UPDATE:
        this.onWindowUpdate(frame.streamId, frame.increment);
        return;
      case FRAME_ALTSVC:
        this.onAltSvcFrame(frame.streamId, frame.origin, frame.value);
        return;
      case 'stream-error': {
        const stream = this.streamFor(frame.streamId, 'PRIORITY');
        if (stream !== undefined) this.failStream(stream, this.peerStreamError(frame.errorCode, frame.message), frame.errorCode);
        return;
      }
    }
  }

  /**
   * The live stream `id` refers to, undefined when the frame is to be ignored (a stream we
   * reset, or one closed whose late control frames are harmless), or a connection error.
   */
  private streamFor(id: number, what: 'DATA' | 'HEADERS' | 'RST_STREAM' | 'WINDOW_UPDATE' | 'PRIORITY'): EngineStream | undefined {
    const stream = this.streams.get(id);
    if (stream !== undefined) return stream;
    // §5.1.1: streams the server opens have even ids; we disabled push, so there are none.
    // §5.1 idle: "Receiving any frame other than HEADERS or PRIORITY on a stream in this state
    // MUST be treated as a connection error of type PROTOCOL_ERROR"; a client takes no
    // HEADERS on a stream it did not open either.
    if (id % 2 === 0 || id >= this.nextStreamId) {
      if (what === 'PRIORITY') return undefined;
      throw h2ConnectionError(PROTOCOL_ERROR, `${what} on stream ${id}, which we never opened`);
    }
    // §5.1 closed: "An endpoint MUST ignore frames that it receives on closed streams after it
    // has sent a RST_STREAM frame."
    if (this.resetIds.has(id)) return undefined;
    if (what === 'DATA' || what === 'HEADERS') {
      // §5.1: frames after END_STREAM both ways (or after the peer's RST_STREAM) on a closed
      // stream are a connection error of type STREAM_CLOSED.
      throw h2ConnectionError(STREAM_CLOSED, `${what} on stream ${id}, which is closed`);
    }
    return undefined; // WINDOW_UPDATE, RST_STREAM or PRIORITY shortly after close: harmless
  }

  private onData(id: number, data: Uint8Array, flowLength: number, endStream: boolean): void {
    // §6.9.1: the whole payload, padding included, counts against both windows; a sender
    // MUST NOT exceed them.
    if (flowLength > this.connRecvWindow) {
      throw h2ConnectionError(FLOW_CONTROL_ERROR, `DATA of ${flowLength} bytes on stream ${id} exceeds the connection window ${this.connRecvWindow}`);
    }
    this.connRecvWindow -= flowLength;
    // Connection credit comes back on receipt: what streams hold is bounded by their own windows.
    this.connUnacked += flowLength;
    const stream = this.streamFor(id, 'DATA');
    if (stream === undefined) return;
    if (!canReceive(stream.state)) {
      // §5.1 half-closed (remote): "If an endpoint receives additional frames, other than
      // WINDOW_UPDATE, PRIORITY, or RST_STREAM ... it MUST respond with a stream error of type STREAM_CLOSED."
      this.failStream(stream, this.peerStreamError(STREAM_CLOSED, 'DATA after END_STREAM'), STREAM_CLOSED);
      return;
    }
    if (flowLength > stream.recvWindow) {
      throw h2ConnectionError(FLOW_CONTROL_ERROR, `DATA of ${flowLength} bytes on stream ${id} exceeds its window ${stream.recvWindow}`);
    }
    stream.recvWindow -= flowLength;
    // Padding is consumed at once; the data when the consumer takes it.
    stream.unackedBytes += flowLength - data.length;
    stream.lastActivityAt = this.lastActivity;
    if (stream.phase !== 'body') {
      // §8.1: DATA before the response's HEADERS, or after trailers, is malformed.
      this.failStream(stream, this.malformed(stream, stream.phase === 'done' ? 'DATA after the trailers' : 'DATA before the response header section'), PROTOCOL_ERROR);
      return;
    }
    stream.receivedLength += data.length;
    if (stream.expectedLength >= 0 && stream.receivedLength > stream.expectedLength) {
      this.failStream(stream, this.lengthMismatch(stream, `more DATA (${stream.receivedLength} bytes) than its content-length ${stream.expectedLength}`), PROTOCOL_ERROR);
      return;
    }
    if (endStream) {
      stream.state = streamTransition(stream.state, 'recv-end-stream');
      stream.endReceived = true;
    }
    if (data.length > 0) {
      if (stream.paused) stream.received.push(data);
      else this.deliver(stream, data);
    }
    if (stream.settled) return;
    if (stream.endReceived && !stream.paused) this.completeStream(stream);
    else this.maybeUpdateStreamWindow(stream);
  }

  private deliver(stream: EngineStream, data: Uint8Array): void {
    stream.unackedBytes += data.length;
    if (!stream.handler.onData(data)) stream.paused = true;
  }

  resumeStream(stream: EngineStream): void {
    stream.paused = false;
    while (stream.received.length > 0 && !stream.paused && !stream.settled) this.deliver(stream, stream.received.shift() as Uint8Array);
    if (stream.settled || stream.paused) return;
    const trailers = stream.trailers;
    if (trailers !== undefined) {
      stream.trailers = undefined;
      stream.handler.onTrailers(trailers);
      if (stream.settled) return;
    }
    if (stream.endReceived) this.completeStream(stream);
    else {
      this.maybeUpdateStreamWindow(stream);
      this.scheduleFlush();
    }
  }

  private onHeaders(id: number, block: Uint8Array, endStream: boolean): void {
    // RFC 9113 §4.3: every field block is decoded, whatever its stream's fate, so that the
    // HPACK tables stay in step; a decoding error is a connection error (COMPRESSION_ERROR).
    const list = this.decoder.decode(block, this.options);
    const stream = this.streamFor(id, 'HEADERS');
    if (stream === undefined) return;
    stream.lastActivityAt = this.lastActivity;
    if (!canReceive(stream.state)) {
      this.failStream(stream, this.peerStreamError(STREAM_CLOSED, 'HEADERS after END_STREAM'), STREAM_CLOSED);
      return;
    }
    if (endStream) {
      stream.state = streamTransition(stream.state, 'recv-end-stream');
      stream.endReceived = true;
    }
    if (list.overLimit) {
      this.failStream(
        stream,
        new MuxpoolError(
          'MUXPOOL_ERR_HEADERS_TOO_LARGE',
          `response ${stream.phase === 'body' ? 'trailer' : 'header'} section of ${list.bytes} bytes in ${list.count} fields exceeds maxHeaderBytes ${this.options.maxHeaderBytes} or maxHeaderCount ${this.options.maxHeaderCount}`,
          { maybeProcessed: true },
        ),
        CANCEL,
      );
      return;
    }
    if (stream.phase === 'awaiting-headers') this.onResponseHead(stream, list.fields, endStream, list.bytes);
    else if (stream.phase === 'body') this.onTrailers(stream, list.fields, endStream);
    else this.failStream(stream, this.malformed(stream, 'a header section after the trailers'), PROTOCOL_ERROR);
  }

  private onResponseHead(stream: EngineStream, fields: string[], endStream: boolean, listBytes: number): void {
    let status = -1;
    let regular = false;
    const headers = emptyHeaders();
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i] as string;
      const value = fields[i + 1] as string;
      if (name.charCodeAt(0) === 0x3a /* ':' */) {
        // §8.3: "Endpoints MUST treat a request or response that contains undefined or invalid
        // pseudo-header fields as malformed"; they come before regular fields, once each.
        if (name !== ':status') return this.failStream(stream, this.malformed(stream, `pseudo-header ${name} in a response`), PROTOCOL_ERROR);
        if (regular) return this.failStream(stream, this.malformed(stream, ':status after a regular field'), PROTOCOL_ERROR);
        if (status !== -1) return this.failStream(stream, this.malformed(stream, 'more than one :status'), PROTOCOL_ERROR);
        status = parseStatus(value);
        if (status === -1) return this.failStream(stream, this.malformed(stream, `invalid :status ${JSON.stringify(value)}`), PROTOCOL_ERROR);
        continue;
      }
      regular = true;
      const problem = fieldProblem(name, value);
      if (problem !== undefined) return this.failStream(stream, this.malformed(stream, problem), PROTOCOL_ERROR);
      addField(headers, name, value);
    }
    if (status === -1) return this.failStream(stream, this.malformed(stream, 'no :status'), PROTOCOL_ERROR);
    if (status < 200) {
      // §8.1: informational responses come before the final one and never end the stream;
      // §8.6: 101 (Switching Protocols) is not allowed in HTTP/2.
      if (endStream || status === 101) return this.failStream(stream, this.malformed(stream, `status ${status} ${endStream ? 'ending the stream' : 'is not allowed'}`), PROTOCOL_ERROR);
      // RFC 9110 §15.2: any number may come, so we bound them (count and bytes).
      stream.interimCount++;
      stream.interimBytes += listBytes;
      try {
        checkInterimBudget(stream.interimCount, stream.interimBytes, this.options.maxHeaderBytes);
      } catch (err) {
        this.failStream(stream, err as MuxpoolError, CANCEL);
      }
      return;
    }
    const contentLength = headers['content-length'];
    if (contentLength !== undefined) {
      if (typeof contentLength !== 'string' || !/^\d{1,15}$/.test(contentLength)) {
        return this.failStream(stream, this.malformed(stream, `invalid content-length ${JSON.stringify(contentLength)}`), PROTOCOL_ERROR);
      }
      // §8.1.1: a HEAD response and a 304 carry the length of a body they do not have; 204 has none.
      if (!stream.isHead && status !== 304 && status !== 204) stream.expectedLength = Number(contentLength);
    }
    stream.phase = 'body';
    stream.handler.onResponse(status, headers, standardStatusText(status));
    if (stream.settled) return;
    if (endStream) this.completeStream(stream);
  }

  private onTrailers(stream: EngineStream, fields: string[], endStream: boolean): void {
    // §8.1: a trailer section ends the stream.
    if (!endStream) return this.failStream(stream, this.malformed(stream, 'a trailer section without END_STREAM'), PROTOCOL_ERROR);
    const trailers = emptyHeaders();
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i] as string;
      const value = fields[i + 1] as string;
      // §8.1: "Trailers MUST NOT include pseudo-header fields".
      if (name.charCodeAt(0) === 0x3a) return this.failStream(stream, this.malformed(stream, `pseudo-header ${name} in the trailers`), PROTOCOL_ERROR);
      const problem = fieldProblem(name, value);
      if (problem !== undefined) return this.failStream(stream, this.malformed(stream, problem), PROTOCOL_ERROR);
      addField(trailers, name, value);
    }
    stream.phase = 'done';
    // The handler hears the trailers after every byte of the body: wait while bytes are held.
    if (stream.paused) {
      stream.trailers = trailers;
      return;
    }
    stream.handler.onTrailers(trailers);
    if (!stream.settled) this.completeStream(stream);
  }

  /** END_STREAM arrived and the consumer has every byte: the response is complete. */
  private completeStream(stream: EngineStream): void {
    if (stream.settled) return;
    if (stream.phase === 'awaiting-headers') return; // failed elsewhere
    if (stream.expectedLength >= 0 && stream.receivedLength !== stream.expectedLength) {
      this.failStream(stream, this.lengthMismatch(stream, `${stream.receivedLength} bytes of DATA before END_STREAM, but content-length ${stream.expectedLength}`), PROTOCOL_ERROR);
      return;
    }
    stream.phase = 'done';
    stream.settled = true;
    // §8.1: the server answered before our body was done; we stop sending it.
    if (stream.state !== 'closed') this.resetStream(stream, CANCEL);
    else this.onStreamClosed(stream);
    stream.handler.onComplete();
  }

  private onRstStream(id: number, code: number): void {
    const stream = this.streamFor(id, 'RST_STREAM');
    if (stream === undefined) return;
    // The peer ended the stream (END_STREAM) and we still hold bytes for a paused consumer: the
    // response is complete. §8.1: "Clients MUST NOT discard responses as a result of receiving
    // such a RST_STREAM" (NO_ERROR); any other code comes too late to cut what already ended.
    if (stream.state === 'closed') return;
    stream.state = streamTransition(stream.state, 'recv-rst');
    this.onStreamClosed(stream);
    if (stream.settled) return;
    stream.settled = true;
    stream.handler.onError(this.resetError(stream, code));
  }

  /** Why the peer's RST_STREAM ended a stream, classified for retries (RFC 9113 §8.7). */
  private resetError(stream: EngineStream, code: number): MuxpoolError {
    const id = stream.id;
    if (code === REFUSED_STREAM) {
      // §8.7: REFUSED_STREAM means "the stream was closed prior to any processing".
      return new MuxpoolError('MUXPOOL_ERR_STREAM_REFUSED', `the server refused stream ${id} (REFUSED_STREAM)`, { maybeProcessed: false, wireCode: code, origin: 'remote' });
    }
    if (stream.phase !== 'awaiting-headers' && code === NO_ERROR) {
      // A body is complete only with END_STREAM (§8.1): a reset before it cuts the body short.
      return new MuxpoolError('MUXPOOL_ERR_BODY_TRUNCATED', `the server reset stream ${id} with ${describeH2Error(code)} before the response body ended`, {
        maybeProcessed: true,
        wireCode: code,
        origin: 'remote',
      });
    }
    return new MuxpoolError('MUXPOOL_ERR_STREAM_RESET', `the server reset stream ${id} with ${describeH2Error(code)}`, {
      maybeProcessed: true,
      wireCode: code,
      origin: PEER_BLAMES_US.has(code) ? 'local' : 'remote',
    });
  }

  private onSettings(frame: SettingsFrame): void {
    if (frame.ack) {
      this.settingsAckTimer?.cancel();
      this.settingsAckTimer = undefined;
      return;
    }
    for (const [id, value] of frame.settings) {
      switch (id) {
        case SETTINGS_HEADER_TABLE_SIZE:
          this.encoder.setPeerTableSize(value);
          break;
        case SETTINGS_MAX_CONCURRENT_STREAMS:
          this.peerMaxStreams = value;
          break;
        case SETTINGS_INITIAL_WINDOW_SIZE: {
          // §6.9.2: the change applies to every open stream's window, which may go negative;
          // one pushed over 2^31-1 is a connection error of type FLOW_CONTROL_ERROR.
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const stream of this.streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > MAX_WINDOW) throw h2ConnectionError(FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} overflows the window of stream ${stream.id}`);
          }
          if (delta > 0) for (const stream of [...this.streams.values()]) if (stream.outgoingBytes > 0) this.sendBody(stream);
          break;
        }
        case SETTINGS_MAX_FRAME_SIZE:
          this.peerMaxFrameSize = value;
          break;
        case SETTINGS_MAX_HEADER_LIST_SIZE:
          this.peerMaxHeaderList = value;
          break;
      }
    }
    // §6.5.3: "Upon receiving a SETTINGS frame without the ACK flag, the recipient MUST ...
    // immediately emit a SETTINGS frame with the ACK flag set."
    this.queueAck(encodeSettingsAck());
    this.maxStreams = Math.max(0, Math.min(this.peerMaxStreams, this.options.maxStreams));
    if (this.state === 'connecting') {
      this.state = 'open';
      this.readyTimer?.cancel();
      this.readyTimer = undefined;
      // Idle connections must not keep the process alive; `openStream` refs it while busy.
      this.socket.unref();
      this.socketRefed = false;
      const resolve = this.readyResolve;
      this.readyResolve = this.readyReject = undefined;
      resolve?.(this.addView(this.firstKeyId));
      return;
    }
    // A later SETTINGS may lower or raise the limit (§6.5.2): the pool re-reads it.
    for (const view of this.views) view.notifyCapacity();
  }

  private onWindowUpdate(id: number, increment: number): void {
    if (id === 0) {
      // §6.9.1: "A sender MUST NOT allow a flow-control window to exceed 2^31-1 octets. If a
      // sender receives a WINDOW_UPDATE that causes a flow-control window to exceed this
      // maximum, it MUST terminate either the stream or the connection, as appropriate."
      if (this.connSendWindow + increment > MAX_WINDOW) throw h2ConnectionError(FLOW_CONTROL_ERROR, `WINDOW_UPDATE of ${increment} overflows the connection window`);
      this.connSendWindow += increment;
      this.sendBlocked();
      return;
    }
    const stream = this.streamFor(id, 'WINDOW_UPDATE');
    if (stream === undefined) return;
    if (stream.sendWindow + increment > MAX_WINDOW) {
      this.failStream(stream, this.peerStreamError(FLOW_CONTROL_ERROR, `WINDOW_UPDATE of ${increment} overflows the window of stream ${id}`), FLOW_CONTROL_ERROR);
      return;
    }
    stream.sendWindow += increment;
    if (stream.outgoingBytes > 0 || stream.endQueued) {
      stream.lastActivityAt = this.lastActivity;
      this.sendBody(stream);
    }
  }

  /** Connection credit or the socket came back: streams waiting for it send, oldest first. */
  private sendBlocked(): void {
    for (const stream of [...this.blocked]) {
      if (this.connSendWindow <= 0 || this.socketCongested) return;
      this.sendBody(stream);
    }
  }

  private onGoaway(lastStreamId: number, errorCode: number, debug: Uint8Array): void {
    if (channels.goaway.hasSubscribers) channels.goaway.publish({ connectionId: this.id, protocol: 'h2', lastStreamId, errorCode });
    // §6.8: the last stream id may only go down in later GOAWAY frames.
    this.goawayLastStreamId = this.goawayLastStreamId === undefined ? lastStreamId : Math.min(this.goawayLastStreamId, lastStreamId);
    if (errorCode !== NO_ERROR && this.closeError === undefined) {
      const detail = debug.length > 0 ? `: ${Buffer.from(debug.buffer, debug.byteOffset, Math.min(debug.length, 200)).toString('latin1')}` : '';
      this.closeError = new MuxpoolError('MUXPOOL_ERR_H2_PROTOCOL', `the server closed the HTTP/2 connection with GOAWAY ${describeH2Error(errorCode)}${detail}`, {
        maybeProcessed: true,
        wireCode: errorCode,
        origin: PEER_BLAMES_US.has(errorCode) ? 'local' : 'remote',
      });
    }
    if (this.state === 'connecting') {
      this.failStart(this.closeError ?? this.notProcessed('the HTTP/2 server sent GOAWAY during connection setup'));
      return;
    }
    // §6.8: streams above the last id "were not processed" and may be retried elsewhere.
    const last = this.goawayLastStreamId;
    for (const stream of [...this.streams.values()]) {
      if (stream.id > last && !stream.settled) {
        stream.settled = true;
        this.forgetStream(stream);
        stream.handler.onError(
          new MuxpoolError('MUXPOOL_ERR_GOAWAY', `the server sent GOAWAY (last stream ${last}) before processing stream ${stream.id}`, {
            cause: this.closeError,
            maybeProcessed: false,
          }),
        );
      }
    }
    this.beginDraining();
  }

  /**
   * RFC 7838 §4: on stream 0 the frame names its origin, and is ignored unless this connection
   * is authoritative for it (serves that key); on a request stream it is about that request's
   * origin and carries none.
   */
  private onAltSvcFrame(streamId: number, origin: string, value: string): void {
    const onAltSvc = this.options.onAltSvc;
    if (onAltSvc === undefined || value === '') return;
    if (streamId !== 0) {
      const stream = this.streams.get(streamId);
      if (origin === '' && stream !== undefined) onAltSvc(stream.view.keyId, value);
      return;
    }
    let base: string;
    try {
      const url = new URL(origin);
      if (url.protocol !== 'https:' || url.pathname !== '/' || url.username !== '' || url.search !== '') return;
      base = `https://${url.hostname}:${url.port === '' ? 443 : url.port}`;
    } catch {
      return; // not an origin
    }
    for (const view of this.views) {
      if (view.state !== 'closed' && (view.keyId === base || view.keyId.startsWith(`${base}#`))) onAltSvc(view.keyId, value);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Flow control credit we give (WINDOW_UPDATE only when it matters)

  private maybeUpdateConnectionWindow(): void {
    // Half the window consumed: one WINDOW_UPDATE for all of it, never one per DATA frame.
    if (this.connUnacked >= this.connectionWindow >>> 1 && this.state !== 'closed') {
      this.queue(encodeWindowUpdate(0, this.connUnacked));
      this.connRecvWindow += this.connUnacked;
      this.connUnacked = 0;
    }
  }

  private maybeUpdateStreamWindow(stream: EngineStream): void {
    // No credit while paused (that is the backpressure), and none once the peer is done.
    if (stream.paused || !canReceive(stream.state) || stream.endReceived) return;
    if (stream.unackedBytes >= this.streamWindow >>> 1) {
      this.queue(encodeWindowUpdate(stream.id, stream.unackedBytes));
      stream.recvWindow += stream.unackedBytes;
      stream.unackedBytes = 0;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Ending streams

  /** Fails one stream (a stream error, our limit, a cancel) and resets it once on the wire. */
  failStream(stream: EngineStream, err: MuxpoolError, rstCode: number): void {
    if (stream.state !== 'closed' && stream.state !== 'idle') this.resetStream(stream, rstCode);
    else this.onStreamClosed(stream);
    if (stream.settled) return;
    stream.settled = true;
    stream.handler.onError(err);
  }

  /** One RST_STREAM, and nothing more on that stream (RFC 9113 §5.4.2, §6.4). */
  private resetStream(stream: EngineStream, code: number): void {
    stream.state = streamTransition(stream.state, 'send-rst');
    if (this.state !== 'closed') this.queue(encodeRstStream(stream.id, code));
    this.resetIds.add(stream.id);
    if (this.resetIds.size > REMEMBERED_RESETS) {
      const oldest = this.resetIds.values().next().value as number;
      this.resetIds.delete(oldest);
    }
    this.onStreamClosed(stream);
  }

  /** The stream is closed on the wire: forget it, and settle its slot if it is settled too. */
  private onStreamClosed(stream: EngineStream): void {
    if (!this.streams.has(stream.id)) return;
    // Late DATA for a stream we reset is still counted by the connection window; its own
    // unacknowledged credit simply lapses with it.
    this.forgetStream(stream);
  }

  private forgetStream(stream: EngineStream): void {
    if (!this.streams.delete(stream.id)) return;
    // Guarded: most streams (a GET answered at once) hold nothing here, and clearing an empty
    // array or Set still costs a call per request.
    if (this.blocked.size > 0) this.blocked.delete(stream);
    if (stream.outgoing.length > 0) stream.outgoing.length = 0;
    stream.outgoingBytes = 0;
    if (stream.received.length > 0) stream.received.length = 0;
    const wake = stream.wakePump;
    if (wake !== undefined) {
      stream.wakePump = undefined;
      wake();
    }
    this.activeStreams--;
    stream.view.activeStreams--;
    // Unref'd later if still idle: a caller that sends its next request as soon as a response
    // ends (c=1) then costs no ref/unref pair and no timer re-arming per request. setImmediate,
    // not process.nextTick: ticks run before the promise continuations that send that request.
    if (this.activeStreams === 0 && this.state !== 'closed' && !this.unrefScheduled) {
      this.unrefScheduled = true;
      setImmediate(this.unrefIfIdle);
    }
    // Coalesced views share the connection's streams: a slot freed by one may serve another.
    if (this.views.size > 1) for (const view of this.views) if (view !== stream.view) view.notifyCapacity();
    if (this.state === 'draining' && this.activeStreams === 0) this.closeGracefully();
  }

  private malformed(stream: EngineStream, message: string): MuxpoolError {
    // §8.1.1: a malformed response is a stream error of type PROTOCOL_ERROR.
    return new MuxpoolError('MUXPOOL_ERR_H2_PROTOCOL', `malformed HTTP/2 response on stream ${stream.id}: ${message} (the peer broke the rule)`, {
      maybeProcessed: true,
      wireCode: PROTOCOL_ERROR,
      origin: 'remote',
    });
  }

  /**
   * §8.1.1: content-length that disagrees with the DATA makes the response malformed (a stream
   * error PROTOCOL_ERROR on the wire). The caller hears it as every protocol says it: the body
   * is not the one announced.
   */
  private lengthMismatch(stream: EngineStream, message: string): MuxpoolError {
    return new MuxpoolError('MUXPOOL_ERR_BODY_TRUNCATED', `HTTP/2 response on stream ${stream.id}: ${message} (the peer broke the rule)`, {
      maybeProcessed: true,
      wireCode: PROTOCOL_ERROR,
      origin: 'remote',
    });
  }

  private peerStreamError(code: number, message: string): MuxpoolError {
    return new MuxpoolError('MUXPOOL_ERR_H2_PROTOCOL', `HTTP/2 stream error ${describeH2Error(code)}: ${message} (the peer broke the rule)`, {
      maybeProcessed: true,
      wireCode: code,
      origin: 'remote',
    });
  }

  // ---------------------------------------------------------------------------------------
  // Read deadlines (stream-support.ts): a stream that can neither send nor receive fails.

  private expireStream(stream: EngineStream): void {
    if (stream.settled) return;
    const limit = this.options.readTimeoutMs;
    const sending = stream.outgoingBytes > 0 && canSend(stream.state);
    this.failStream(
      stream,
      readTimeoutError(
        sending
          ? `HTTP/2 stream ${stream.id} could neither send (no flow-control credit from the peer) nor receive for ${limit} ms`
          : `no data on HTTP/2 stream ${stream.id} for ${limit} ms`,
        true,
      ),
      CANCEL,
    );
  }

  // ---------------------------------------------------------------------------------------
  // Health: PING (RFC 9113 §6.7)

  private armHealthTimer(): void {
    const interval = this.options.pingIntervalMs;
    if (interval <= 0 || this.healthTimer !== undefined) return;
    this.healthTimer = this.options.clock.setTimer(() => this.onHealthTimer(), interval);
  }

  private onHealthTimer(): void {
    this.healthTimer = undefined;
    if (this.activeStreams === 0 || this.state === 'closed') return;
    if (this.options.clock.now() - this.lastActivity >= this.options.pingIntervalMs) this.ping();
    this.armHealthTimer();
  }

  private ping(): void {
    if (this.pingInFlight !== undefined || this.state === 'closed') return;
    const data = new Uint8Array(8);
    new DataView(data.buffer).setUint32(4, ++this.pingCounter);
    this.pingInFlight = data;
    this.queue(encodePing(data, false));
    this.pingTimer = this.options.clock.setTimer(() => {
      this.pingTimer = undefined;
      if (this.pingInFlight === undefined) return;
      this.destroy(
        new MuxpoolError('MUXPOOL_ERR_PING_TIMEOUT', `connection ${this.id} did not answer a PING within ${this.options.pingTimeoutMs} ms`, { maybeProcessed: true }),
      );
    }, this.options.pingTimeoutMs);
  }

  private onPingAck(data: Uint8Array): void {
    const expected = this.pingInFlight;
    if (expected === undefined || Buffer.compare(expected, data) !== 0) return; // not ours: ignored
    this.pingInFlight = undefined;
    this.pingTimer?.cancel();
    this.pingTimer = undefined;
  }

  // ---------------------------------------------------------------------------------------
  // Output: frames queued during a tick go out in one socket write

  private queue(bytes: Uint8Array): void {
    this.out.push(bytes);
    this.outBytes += bytes.length;
    if (this.outBytes >= FLUSH_NOW_BYTES) this.flush();
    else this.scheduleFlush();
  }

  private queueData(streamId: number, data: Uint8Array, endStream: boolean): void {
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    writeFrameHeader(header, 0, data.length, FRAME_DATA, endStream ? FLAG_END_STREAM : 0, streamId);
    this.out.push(header);
    this.outBytes += FRAME_HEADER_BYTES;
    if (data.length > 0) this.queue(data);
    else this.scheduleFlush();
  }

  /**
   * An ACK we owe (PING, SETTINGS). While the peer does not read our writes they pile up; a
   * peer that keeps asking beyond `maxQueuedControlFrames` is flooding us (RFC 9113 §10.5).
   */
  private queueAck(bytes: Uint8Array): void {
    if (++this.owedAcks > this.maxOwedAcks) {
      throw h2ConnectionError(ENHANCE_YOUR_CALM, `more than ${this.maxOwedAcks} PING or SETTINGS frames to acknowledge while our writes are not read`);
    }
    this.queue(bytes);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // process.nextTick, not setImmediate: the write leaves once the current callback and the
    // promise continuations it woke (the caller's next requests) have run, so they share it,
    // and a request costs no extra turn of the event loop (setImmediate made the loop poll
    // once more per request at c=1: 1.9 turns per request instead of 1).
    process.nextTick(this.flushNow);
  }

  private readonly unrefIfIdle = (): void => {
    this.unrefScheduled = false;
    if (this.activeStreams !== 0 || this.socket.destroyed) return;
    if (this.socketRefed) {
      this.socketRefed = false;
      this.socket.unref();
    }
    // Still idle a tick after the last stream: the read deadline and the PING health timer
    // have nothing to watch (both do nothing without streams), so an idle connection holds
    // no timer; the next stream arms them again.
    this.deadlines.stop();
    this.healthTimer?.cancel();
    this.healthTimer = undefined;
  };

  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  private flush(): void {
    if (this.outBytes === 0 && this.out.length === 0) return;
    const socket = this.socket;
    const parts = this.out.splice(0, this.out.length);
    const bytes = this.outBytes;
    this.outBytes = 0;
    if (socket.destroyed || !socket.writable) return;
    let ok: boolean;
    if (parts.length === 1) ok = socket.write(parts[0] as Uint8Array);
    else if (bytes <= 64 * 1024) ok = socket.write(Buffer.concat(parts, bytes));
    else {
      socket.cork();
      ok = true;
      for (const part of parts) ok = socket.write(part);
      socket.uncork();
    }
    if (ok) this.owedAcks = 0;
    else this.socketCongested = true;
  }

  private onDrain(): void {
    this.socketCongested = false;
    this.owedAcks = 0;
    this.sendBlocked();
  }

  // ---------------------------------------------------------------------------------------
  // Transport events

  private onTransportError(err: Error): void {
    this.closeError ??= mapSocketError(err, 'request');
  }

  private onTransportEnd(): void {
    // The peer finished its side: nothing more will arrive. Streams waiting for a response fail now.
    this.closeError ??= new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `the server closed HTTP/2 connection ${this.id}`, { maybeProcessed: true });
    this.socket.destroy();
  }

  private onTransportClose(): void {
    this.lingerTimer?.cancel();
    this.lingerTimer = undefined;
    this.markClosed(
      this.closeError ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `HTTP/2 connection ${this.id} closed`, { maybeProcessed: true }),
    );
  }

  /** Everything ends: streams fail (each with its own error), views close, the socket goes. */
  private markClosed(err: MuxpoolError): void {
    if (this.state === 'closed') {
      this.stopTimers();
      return;
    }
    const wasConnecting = this.state === 'connecting';
    this.state = 'closed';
    this.closeError ??= err;
    this.stopTimers();
    if (wasConnecting || this.readyReject !== undefined) {
      this.failStart(
        this.closeError.code === 'MUXPOOL_ERR_CONNECTION_CLOSED'
          ? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', 'the peer closed the connection during HTTP/2 setup', { maybeProcessed: false, cause: this.closeError })
          : this.closeError,
      );
    }
    for (const stream of [...this.streams.values()]) {
      this.forgetStream(stream);
      if (stream.settled) continue;
      stream.settled = true;
      stream.handler.onError(this.closedStreamError(stream));
    }
    const socket = this.socket;
    if (!socket.destroyed) {
      if (!socket.writableEnded) socket.destroy();
      // Ending (GOAWAY on its way): closes once written; a peer that never reads it is cut off.
      else this.lingerTimer = this.options.clock.setTimer(() => socket.destroy(), 1000);
    }
    this.options.onClose?.(this);
    const views = [...this.views];
    this.views.clear();
    for (const view of views) view.onEngineClosed(this.closeError);
  }

  /** What a stream open when the connection ended learns: its own error object. */
  private closedStreamError(stream: EngineStream): MuxpoolError {
    const last = this.goawayLastStreamId;
    if (last !== undefined && stream.id > last) {
      return new MuxpoolError('MUXPOOL_ERR_GOAWAY', `the server sent GOAWAY (last stream ${last}) before processing stream ${stream.id}`, {
        cause: this.closeError,
        maybeProcessed: false,
      });
    }
    const cause = this.closeError;
    if (cause !== undefined && cause.code !== 'MUXPOOL_ERR_CONNECTION_CLOSED' && cause.code !== 'MUXPOOL_ERR_CONNECTION_RESET') {
      const copy = cause.forRequest();
      copy.maybeProcessed = true;
      return copy;
    }
    // A body is complete only with END_STREAM: a connection that ends before it truncates it.
    return new MuxpoolError(
      stream.phase === 'awaiting-headers' ? (cause?.code ?? 'MUXPOOL_ERR_CONNECTION_CLOSED') : 'MUXPOOL_ERR_BODY_TRUNCATED',
      stream.phase === 'awaiting-headers'
        ? `HTTP/2 connection ${this.id} closed before the response to stream ${stream.id} arrived`
        : `HTTP/2 connection ${this.id} closed before the response body on stream ${stream.id} ended (no END_STREAM)`,
      { cause, maybeProcessed: true },
    );
  }

  /**
   * A connection error (RFC 9113 §5.4.1): GOAWAY with its code, then close; every open stream
   * fails at once with it.
   */
  private connectionError(err: MuxpoolError): void {
    if (this.state === 'closed') return;
    this.closeError ??= err;
    const lastPeerStream = 0; // the server opens no streams towards us
    const message = Buffer.from(err.message.slice(0, 200), 'latin1');
    this.queue(encodeGoaway(lastPeerStream, err.wireCode ?? PROTOCOL_ERROR, message));
    this.flush();
    this.socket.destroySoon();
    this.markClosed(err);
  }

  private failStart(err: MuxpoolError): void {
    const reject = this.readyReject;
    this.readyResolve = this.readyReject = undefined;
    this.readyTimer?.cancel();
    this.readyTimer = undefined;
    if (reject === undefined) return;
    this.closeError ??= err;
    this.state = 'closed';
    this.stopTimers();
    if (!this.socket.destroyed) this.socket.destroy();
    reject(err);
  }

  // ---------------------------------------------------------------------------------------
  // Draining and closing

  /** No new streams; the connection closes once the open ones are done. */
  beginDraining(): void {
    if (this.state === 'closed' || this.state === 'draining') return;
    this.state = 'draining';
    for (const view of this.views) view.onEngineDraining();
    if (this.activeStreams === 0) this.closeGracefully();
  }

  /** A view is gone; the connection goes when its last view does. */
  removeView(view: H2EngineView, err: MuxpoolError | undefined): void {
    if (!this.views.delete(view)) return;
    for (const stream of [...this.streams.values()]) {
      if (stream.view === view && !stream.settled) {
        stream.cancel(err ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`, { maybeProcessed: true }));
      }
    }
    if (this.views.size === 0) this.destroy(err);
  }

  destroy(err?: MuxpoolError): void {
    if (this.state === 'closed') {
      if (!this.socket.destroyed) this.socket.destroy();
      return;
    }
    if (err !== undefined) this.closeError ??= err;
    const reason = err ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`, { maybeProcessed: true });
    for (const stream of [...this.streams.values()]) if (!stream.settled) stream.cancel(reason.forRequest());
    // GOAWAY(NO_ERROR) tells the peer we are leaving on purpose (§6.8).
    this.queue(encodeGoaway(0, NO_ERROR));
    this.flush();
    this.markClosed(reason);
  }

  /** §6.8: GOAWAY(NO_ERROR), then the socket ends once written. */
  private closeGracefully(): void {
    if (this.state === 'closed') return;
    this.queue(encodeGoaway(0, NO_ERROR));
    this.flush();
    this.socket.destroySoon();
    this.markClosed(new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`, { maybeProcessed: true }));
  }

  private notProcessed(message: string): MuxpoolError {
    return new MuxpoolError(this.goawayLastStreamId !== undefined ? 'MUXPOOL_ERR_GOAWAY' : 'MUXPOOL_ERR_CONNECTION_CLOSED', message, {
      cause: this.closeError,
      maybeProcessed: false,
    });
  }

  private stopTimers(): void {
    this.healthTimer?.cancel();
    this.healthTimer = undefined;
    this.deadlines.stop();
    this.pingTimer?.cancel();
    this.pingTimer = undefined;
    this.readyTimer?.cancel();
    this.readyTimer = undefined;
    this.settingsAckTimer?.cancel();
    this.settingsAckTimer = undefined;
  }
}

/**
 * Starts our HTTP/2 engine on `socket` for the origin `keyId`: resolves with the connection's
 * first view once the peer's SETTINGS arrived. The socket is the caller's to destroy if this
 * rejects.
 */
export function startH2Connection(socket: Socket | TLSSocket, keyId: string, options: H2EngineOptions, signal: AbortSignal): Promise<H2EngineView> {
  return H2Engine.start(socket, keyId, options, signal);
}

/**
 * Why a response field is malformed, or undefined when it is fine: the checks every protocol
 * shares (fields.ts: tokens, lower case, no CR/LF/NUL), then HTTP/2's own (RFC 9113 §8.2.1, §8.2.2).
 */
function fieldProblem(name: string, value: string): string | undefined {
  const problem = receivedFieldNameProblem(name, true) ?? receivedFieldValueProblem(name, value);
  if (problem !== undefined) return problem;
  // §8.2.1: "A field value MUST NOT start or end with an ASCII whitespace character."
  if (value.length > 0) {
    const first = value.charCodeAt(0);
    const last = value.charCodeAt(value.length - 1);
    if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return `whitespace around the value of ${name}`;
  }
  // §8.2.2: connection-specific fields make a message malformed.
  if (isConnectionSpecific(name) && name !== 'host') return `connection-specific field ${name}`;
  return undefined;
}

/** A :status value as a number: three digits, 100–599 (RFC 9110 §15); -1 for anything else. */
function parseStatus(value: string): number {
  if (value.length !== 3) return -1;
  const hundreds = value.charCodeAt(0) - 0x30;
  const tens = value.charCodeAt(1) - 0x30;
  const units = value.charCodeAt(2) - 0x30;
  if (hundreds < 1 || hundreds > 5 || tens < 0 || tens > 9 || units < 0 || units > 9) return -1;
  return hundreds * 100 + tens * 10 + units;
}

function addField(out: IncomingHeaders, name: string, value: string): void {
  const existing = out[name];
  if (existing === undefined) out[name] = value;
  else if (Array.isArray(existing)) existing.push(value);
  else out[name] = name === 'set-cookie' ? [existing, value] : name === 'cookie' ? `${existing}; ${value}` : `${existing}, ${value}`;
}

