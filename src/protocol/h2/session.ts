/**
 * The HTTP/2 driver: one `node:http2` client session, the streams on it, its health (PING), and
 * GOAWAY. The pool never sees the session itself: it sees one `H2Connection` per origin that
 * uses it (more than one only when connections are coalesced, RFC 9113 §9.1.1).
 *
 * Session states: connecting → open → draining → closed (or any → closed).
 *  - connecting: the socket is up, the peer's first SETTINGS has not arrived;
 *  - open: streams may be opened;
 *  - draining: GOAWAY received, or we asked it to close: open streams finish, no new ones;
 *  - closed: the session and its socket are gone.
 */
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Clock, Timer } from '../../core/clock.js';
import { channels } from '../../core/diagnostics.js';
import { nextConnectionId } from '../../core/ids.js';
import { mapSocketError } from '../../connect/dial.js';
import { MuxpoolError, internalError } from '../../errors.js';
import type { RequestBody, RequestHead, RequestStream, StreamHandler } from '../message.js';
import {
  BODY_SLICE_BYTES,
  type BodySink,
  ReadDeadlines,
  type StreamState,
  afterHead,
  afterSending,
  bodySlices,
  checkInterimBudget,
  errorForStream,
  hasResponse,
  isSending,
  pumpBody,
  readTimeoutError,
  streamTransition,
  timerDelay,
  waitForDrain,
} from '../stream-support.js';
import { H2Connection } from './connection.js';
import { type HeaderLimits, fromH2ResponseHeaders, toH2RequestHeaders } from './headers.js';
import { standardStatusText } from '../fields.js';

const {
  NGHTTP2_CANCEL,
  NGHTTP2_NO_ERROR,
  NGHTTP2_PROTOCOL_ERROR,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_FLAG_END_STREAM,
  HTTP2_HEADER_STATUS,
} = http2.constants;

/** Per-stream receive window: large enough for ~1 MiB in flight without WINDOW_UPDATE stalls. */
const STREAM_WINDOW_BYTES = 1024 * 1024;
/** Connection receive window, shared by every stream of the session. */
const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;

export type H2SessionState = 'connecting' | 'open' | 'draining' | 'closed';

export interface H2SessionOptions extends HeaderLimits {
  clock: Clock;
  /** Streams per connection we allow ourselves (the pool's `maxStreams`). */
  maxStreams: number;
  /**
   * Fail a request whose stream makes no progress (no response bytes, no request bytes taken) for
   * this long. `Infinity`: never.
   */
  readTimeoutMs: number;
  /** Ping a session that has been silent this long (before reuse, or while streams wait). 0: never. */
  pingIntervalMs: number;
  /** A PING unanswered this long means the session is dead. */
  pingTimeoutMs: number;
  /** How long the peer has to send its SETTINGS after the handshake. */
  settingsTimeoutMs: number;
  remoteAddress: string | undefined;
  /** The TLS handshake resumed an earlier session (undefined in cleartext). */
  resumed?: boolean | undefined;
  /** Called once when the session is gone (the connector forgets it then). */
  onClose?: ((session: H2Session) => void) | undefined;
  /** An ALTSVC frame (RFC 7838 §4) for an origin this session serves: its key id and the field value. */
  onAltSvc?: ((keyId: string, value: string) => void) | undefined;
}

/**
 * Each `ClientHttp2Stream` carries its `H2Stream` under this symbol, so one set of module-level
 * listeners serves every stream: no closures per request on the hot path.
 */
const OWNER = Symbol('muxpool.h2.stream');
type TaggedRequest = http2.ClientHttp2Stream & { [OWNER]?: H2Stream };


function onRequestResponse(this: TaggedRequest, raw: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
  const stream = this[OWNER];
  if (stream !== undefined) stream.session.handleResponse(stream, raw, (flags & NGHTTP2_FLAG_END_STREAM) !== 0);
}
/** Node emits 'headers' for interim (1xx) responses. */
function onRequestInterim(this: TaggedRequest, raw: http2.IncomingHttpHeaders): void {
  const stream = this[OWNER];
  if (stream !== undefined) stream.session.handleInterim(stream, raw);
}
function onRequestData(this: TaggedRequest, chunk: Buffer): void {
  const stream = this[OWNER];
  if (stream !== undefined) stream.session.handleData(stream, chunk);
}
function onRequestTrailers(this: TaggedRequest, raw: http2.IncomingHttpHeaders): void {
  const stream = this[OWNER];
  if (stream !== undefined) stream.session.handleTrailers(stream, raw);
}
function onRequestEnd(this: TaggedRequest): void {
  const stream = this[OWNER];
  if (stream !== undefined) stream.session.handleEnd(stream);
}
function onRequestError(this: TaggedRequest, err: Error): void {
  const stream = this[OWNER];
  if (stream !== undefined) stream.error = err;
}
function onRequestClose(this: TaggedRequest): void {
  const stream = this[OWNER];
  if (stream !== undefined) stream.session.handleClose(stream);
}
/**
 * How END_STREAM is told apart from a stream that was merely closed. Node ends the readable side
 * (and emits 'end') both when the peer's END_STREAM arrives and when the stream closes without
 * one: RST_STREAM with NO_ERROR or CANCEL, or the connection lost. Right before it pushes that
 * end, node registers an 'end' listener of its own (node 20 and 22: `onStreamRead` at EOF,
 * `onStreamClose` after a reset); at END_STREAM the stream is not closed yet, after a reset it
 * is. So an 'end' registration on a stream still open marks END_STREAM, also when our consumer
 * paused the stream and node's 'end' event comes long after the stream closed.
 */
function onRequestNewListener(this: TaggedRequest, event: string | symbol): void {
  if (event !== 'end' || this.closed) return;
  const stream = this[OWNER];
  if (stream !== undefined) stream.session.handleEndStream(stream);
}

/**
 * One request on the session: the `RequestStream` its caller controls. States (stream-support.ts):
 * sending/waiting → early/receiving → trailers → ended → closed. `ended`: END_STREAM was seen and
 * node still delivers what it buffered. Only `ended` or `trailers` (node reports trailers only
 * with END_STREAM) complete the response when node's 'end' comes.
 */
class H2Stream implements RequestStream, BodySink {
  readonly view: H2Connection;
  readonly handler: StreamHandler;
  readonly session: H2Session;
  req: http2.ClientHttp2Stream | undefined;
  state: StreamState;
  /** Why Node reported the stream failed ('error' comes before 'close'). */
  error: unknown;
  lastActivityAt = 0;
  awaitingSource = false;
  /** Response body bytes so far, and what content-length announced (for the error that names it). */
  receivedBytes = 0;
  declaredBytes: number | undefined;
  /** Interim (1xx) responses so far and their header bytes, bounded like the final head. */
  interimCount = 0;
  interimBytes = 0;

  constructor(session: H2Session, view: H2Connection, handler: StreamHandler, state: StreamState) {
    this.session = session;
    this.view = view;
    this.handler = handler;
    this.state = state;
  }

  to(next: StreamState): void {
    this.state = streamTransition(this.state, next, `HTTP/2 connection ${this.session.id}`);
  }

  resume(): void {
    if (this.state !== 'closed') this.req?.resume();
  }

  cancel(reason: MuxpoolError): void {
    if (this.state === 'closed') return;
    // RST_STREAM(CANCEL) frees the slot at the peer; ours is freed by the handler below.
    if (this.req !== undefined && !this.req.closed && !this.req.destroyed) this.req.close(NGHTTP2_CANCEL);
    this.session.finish(this);
    this.handler.onError(reason);
  }

  // BodySink: the request-body pump writes through these.

  get acceptsBody(): boolean {
    const req = this.req;
    return isSending(this.state) && req !== undefined && !req.closed && !req.destroyed;
  }

  writeBody(chunk: Uint8Array): boolean {
    // Flow control (the peer's window) shows up here as write backpressure.
    return (this.req as http2.ClientHttp2Stream).write(chunk);
  }

  bodyDrained(): Promise<void> {
    return waitForDrain(this.req as http2.ClientHttp2Stream);
  }

  endBody(): void {
    (this.req as http2.ClientHttp2Stream).end();
    this.to(afterSending(this.state));
  }

  failBody(err: MuxpoolError): void {
    // Only this stream is lost; the session carries on.
    this.cancel(err);
  }
}

export class H2Session {
  readonly id = nextConnectionId('h2');
  readonly remoteAddress: string | undefined;
  readonly resumed: boolean | undefined;
  state: H2SessionState = 'connecting';
  /** Streams the peer allows at once (SETTINGS_MAX_CONCURRENT_STREAMS), capped by ours. */
  maxStreams = 0;
  /** Streams open on the session, across every view. */
  activeStreams = 0;
  requestCount = 0;
  /** Highest stream id the peer will process, once it sent GOAWAY. */
  goawayLastStreamId: number | undefined;
  closeError: MuxpoolError | undefined;
  readonly views = new Set<H2Connection>();

  private readonly session: http2.ClientHttp2Session;
  private readonly socket: Socket | TLSSocket;
  private readonly options: H2SessionOptions;
  private lastActivity: number;
  private pingTimer: Timer | undefined;
  private pingInFlight = false;
  private healthTimer: Timer | undefined;
  private readonly deadlines: ReadDeadlines<H2Stream>;
  private readyResolve: ((view: H2Connection) => void) | undefined;
  private readyReject: ((err: MuxpoolError) => void) | undefined;
  private readyTimer: Timer | undefined;
  private readonly streams = new Set<H2Stream>();
  private firstKeyId = '';

  private constructor(socket: Socket | TLSSocket, authority: string, options: H2SessionOptions) {
    this.socket = socket;
    this.options = options;
    this.remoteAddress = options.remoteAddress;
    this.resumed = options.resumed;
    this.lastActivity = options.clock.now();
    this.deadlines = new ReadDeadlines(
      options.clock,
      options.readTimeoutMs,
      () => [...this.streams],
      (stream) =>
        stream.cancel(
          readTimeoutError(
            isSending(stream.state)
              ? `HTTP/2 stream ${stream.req?.id ?? ''}: the server took none of the request body and sent nothing for ${options.readTimeoutMs} ms`
              : `no data on HTTP/2 stream ${stream.req?.id ?? ''} for ${options.readTimeoutMs} ms`,
            true,
          ),
        ),
    );
    this.session = http2.connect(authority, {
      createConnection: () => socket,
      settings: {
        enablePush: false,
        initialWindowSize: STREAM_WINDOW_BYTES,
        maxHeaderListSize: options.maxHeaderBytes,
      },
      // Node resets streams with more fields than this itself; ours is the stricter check.
      maxHeaderListPairs: options.maxHeaderCount + 8,
    });
    const session = this.session;
    session.on('remoteSettings', (settings: http2.Settings) => this.onRemoteSettings(settings));
    session.on('goaway', (code: number, lastStreamId: number) => this.onGoaway(code, lastStreamId));
    session.on('error', (err: Error) => this.onSessionError(err));
    session.on('close', () => this.onSessionClose());
    if (options.onAltSvc !== undefined) {
      session.on('altsvc', (value: string, origin: string, streamId: number) => this.onAltSvcFrame(value, origin, streamId));
    }
    session.on('frameError', (type: number, code: number, streamId: number) => {
      if (streamId === 0) {
        this.onSessionError(
          new MuxpoolError('MUXPOOL_ERR_H2_PROTOCOL', `HTTP/2 frame of type ${type} could not be sent (code ${code})`, {
            wireCode: code,
          }),
        );
      }
    });
  }

  /**
   * Starts HTTP/2 on a connected socket (after ALPN chose h2, or with prior knowledge over
   * cleartext) and resolves once the peer's SETTINGS arrived, so the first request already
   * knows how many streams it may open.
   */
  static start(
    socket: Socket | TLSSocket,
    authority: string,
    keyId: string,
    options: H2SessionOptions,
    signal: AbortSignal,
  ): Promise<H2Connection> {
    const session = new H2Session(socket, authority, options);
    session.firstKeyId = keyId;
    return new Promise<H2Connection>((resolve, reject) => {
      const onAbort = (): void =>
        session.failStart(
          signal.reason instanceof MuxpoolError
            ? signal.reason
            : new MuxpoolError('MUXPOOL_ERR_ABORTED', 'dial aborted', { cause: signal.reason, maybeProcessed: false }),
        );
      session.readyResolve = (view) => {
        signal.removeEventListener('abort', onAbort);
        resolve(view);
      };
      session.readyReject = (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      };
      session.readyTimer = options.clock.setTimer(
        () =>
          session.failStart(
            new MuxpoolError(
              'MUXPOOL_ERR_CONNECT_TIMEOUT',
              `the HTTP/2 peer sent no SETTINGS within ${options.settingsTimeoutMs} ms`,
              { maybeProcessed: false },
            ),
          ),
        timerDelay(options.settingsTimeoutMs),
      );
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A new view for an origin (`keyId`) that uses this session: the first, or a coalesced one. */
  /**
   * RFC 7838 §4: on stream 0 the frame names its origin, and is ignored unless this session is
   * authoritative for it (serves that key); on a request stream it is about that request's
   * origin and carries none.
   */
  private onAltSvcFrame(value: string, origin: string, streamId: number): void {
    const onAltSvc = this.options.onAltSvc;
    if (onAltSvc === undefined || value === '') return;
    if (streamId !== 0) {
      if (origin !== '') return;
      for (const stream of this.streams) {
        if (stream.req?.id === streamId) {
          onAltSvc(stream.view.keyId, value);
          return;
        }
      }
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

  addView(keyId: string): H2Connection {
    const view = new H2Connection(this, keyId);
    this.views.add(view);
    return view;
  }

  /** Whether the origin `keyId` already uses this session (then it needs another connection). */
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

  /** True while a new stream may be opened. */
  get acceptsStreams(): boolean {
    return this.state === 'open' && !this.session.closed && !this.session.destroyed;
  }

  // ---------------------------------------------------------------------------------------
  // Streams

  openStream(view: H2Connection, head: RequestHead, body: RequestBody, handler: StreamHandler): RequestStream {
    const endStream = body === null || (body instanceof Uint8Array && body.byteLength === 0);
    // A body that is not handed over whole goes through the pump (streamed, or large enough that
    // its progress should count as activity).
    const pumped = !endStream && (!(body instanceof Uint8Array) || body.byteLength > BODY_SLICE_BYTES);
    const stream = new H2Stream(this, view, handler, pumped ? 'sending' : 'waiting');
    if (!this.acceptsStreams || view.state !== 'open') {
      stream.to('closed');
      handler.onError(this.notProcessed(`connection ${this.id} takes no new streams`));
      return stream;
    }
    let headers;
    try {
      headers = toH2RequestHeaders(head);
    } catch (err) {
      stream.to('closed');
      handler.onError(err instanceof MuxpoolError ? err : internalError(`building HTTP/2 headers failed: ${String(err)}`));
      return stream;
    }
    let req: http2.ClientHttp2Stream;
    try {
      req = this.session.request(headers, { endStream });
    } catch (err) {
      // Node refuses synchronously after GOAWAY or on a closing session: nothing was sent.
      stream.to('closed');
      handler.onError(this.notProcessed(`connection ${this.id} refused a new stream: ${(err as Error).message}`, err));
      return stream;
    }
    const now = this.options.clock.now();
    if (this.activeStreams === 0) {
      this.session.ref();
      // A session that sat silent for a while may be dead (NAT timeout, peer gone without a
      // FIN): ask it now. The request goes out at once; if the PING fails, it fails with it and
      // an idempotent request is retried by the client.
      if (this.options.pingIntervalMs > 0 && now - this.lastActivity >= this.options.pingIntervalMs) this.ping();
    }
    this.activeStreams++;
    view.activeStreams++;
    this.requestCount++;
    this.streams.add(stream);
    stream.req = req;
    stream.lastActivityAt = now;
    this.armHealthTimer();
    this.deadlines.watch();
    (req as TaggedRequest)[OWNER] = stream;
    req.on('response', onRequestResponse);
    req.on('headers', onRequestInterim);
    req.on('data', onRequestData);
    req.on('trailers', onRequestTrailers);
    req.on('end', onRequestEnd);
    req.on('error', onRequestError);
    req.on('close', onRequestClose);
    // Last: it must see node's own 'end' registration, not ours.
    req.on('newListener', onRequestNewListener);
    if (pumped) {
      void pumpBody(stream, body instanceof Uint8Array ? bodySlices(body) : (body as AsyncIterable<Uint8Array>), head.contentLength ?? undefined, this.options.clock);
    } else if (!endStream) {
      req.end(body);
    }
    return stream;
  }

  /** The stream is over for us: give its slot back to the session's count. */
  finish(stream: H2Stream): void {
    if (stream.state === 'closed') return;
    stream.to('closed');
    this.streams.delete(stream);
    this.activeStreams--;
    stream.view.activeStreams--;
    // The health and read timers stay armed: they find nothing to do when no stream is open,
    // which is cheaper than a timer made and cancelled per request.
    if (this.activeStreams === 0) this.session.unref();
    // Coalesced views share the session's streams: a slot freed by one may serve another.
    if (this.views.size > 1) for (const view of this.views) if (view !== stream.view) view.notifyCapacity();
    if (this.state === 'draining' && this.activeStreams === 0) this.closeGracefully();
  }

  /** @internal the stream listeners above call these. */
  handleResponse(stream: H2Stream, raw: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, endStream: boolean): void {
    if (stream.state === 'closed') return;
    this.lastActivity = stream.lastActivityAt = this.options.clock.now();
    let headers;
    try {
      headers = fromH2ResponseHeaders(raw, this.options);
    } catch (err) {
      stream.cancel(err as MuxpoolError);
      return;
    }
    const length = headers['content-length'];
    if (typeof length === 'string' && /^\d{1,15}$/.test(length)) stream.declaredBytes = Number(length);
    // END_STREAM may have been seen already: node delivers the head a tick after the frames.
    if (stream.state !== 'ended') stream.to(endStream ? 'ended' : afterHead(stream.state));
    const status = Number(raw[HTTP2_HEADER_STATUS]);
    stream.handler.onResponse(status, headers, standardStatusText(status));
  }

  /** An interim (1xx) response: nothing for the handler, but bounded (RFC 9110 §15.2). */
  handleInterim(stream: H2Stream, raw: http2.IncomingHttpHeaders): void {
    if (stream.state === 'closed' || hasResponse(stream.state)) return;
    this.lastActivity = stream.lastActivityAt = this.options.clock.now();
    stream.interimCount++;
    stream.interimBytes += fieldBytes(raw);
    try {
      checkInterimBudget(stream.interimCount, stream.interimBytes, this.options.maxHeaderBytes);
    } catch (err) {
      stream.cancel(err as MuxpoolError);
    }
  }

  handleData(stream: H2Stream, chunk: Buffer): void {
    if (stream.state === 'closed') return;
    this.lastActivity = stream.lastActivityAt = this.options.clock.now();
    stream.receivedBytes += chunk.byteLength;
    if (!stream.handler.onData(chunk)) stream.req?.pause();
  }

  handleTrailers(stream: H2Stream, raw: http2.IncomingHttpHeaders): void {
    if (stream.state === 'closed') return;
    let trailers;
    try {
      trailers = fromH2ResponseHeaders(raw, this.options);
    } catch (err) {
      stream.cancel(err as MuxpoolError);
      return;
    }
    // Node emits 'trailers' only for a header section that carries END_STREAM.
    if (stream.state !== 'ended') stream.to('trailers');
    stream.handler.onTrailers(trailers);
  }

  /** The peer's END_STREAM arrived (see `onRequestNewListener`). */
  handleEndStream(stream: H2Stream): void {
    const state = stream.state;
    if (state === 'closed' || state === 'ended' || state === 'trailers') return;
    // Possibly before node delivered the head: 'response' follows within the tick.
    stream.to('ended');
  }

  handleEnd(stream: H2Stream): void {
    const state = stream.state;
    if (state === 'closed') return;
    this.lastActivity = this.options.clock.now();
    if (!hasResponse(state)) return; // 'close' reports what went wrong
    const req = stream.req;
    // RFC 9113 §8.1: a response is complete only with END_STREAM. An 'end' while the stream is
    // still open can only be END_STREAM; otherwise the stream was reset or the connection lost.
    if (state !== 'ended' && state !== 'trailers' && (req === undefined || req.closed)) {
      this.finish(stream);
      stream.handler.onError(this.truncatedError(stream, req));
      return;
    }
    // The server answered before our body was done (RFC 9113 §8.1 allows it): stop sending.
    if (req !== undefined && !req.writableEnded && !req.closed) req.close(NGHTTP2_CANCEL);
    this.finish(stream);
    stream.handler.onComplete();
  }

  handleClose(stream: H2Stream): void {
    const state = stream.state;
    if (state === 'closed') return;
    const req = stream.req;
    this.finish(stream);
    stream.handler.onError(hasResponse(state) ? this.truncatedError(stream, req) : this.streamError(stream, req));
  }

  /** The response head came, but the stream closed without END_STREAM: never a success. */
  private truncatedError(stream: H2Stream, req: http2.ClientHttp2Stream | undefined): MuxpoolError {
    const id = req?.id ?? '';
    const code = req?.rstCode;
    const closeError = this.closeError;
    if (closeError !== undefined || this.session.destroyed || this.socket.destroyed || this.state === 'closed') {
      return new MuxpoolError('MUXPOOL_ERR_BODY_TRUNCATED', `the HTTP/2 connection closed before the end of the response body on stream ${id}`, {
        cause: closeError ?? stream.error,
        maybeProcessed: true,
      });
    }
    if (code === NGHTTP2_PROTOCOL_ERROR && stream.declaredBytes !== undefined && stream.receivedBytes !== stream.declaredBytes) {
      // RFC 9113 §8.1.1: a body whose length disagrees with content-length is malformed (nghttp2
      // resets such a stream with PROTOCOL_ERROR itself, before the extra DATA reaches us).
      return new MuxpoolError(
        'MUXPOOL_ERR_BODY_TRUNCATED',
        `malformed HTTP/2 response on stream ${id}: the body does not match its content-length ${stream.declaredBytes} (${stream.receivedBytes} bytes arrived)`,
        { cause: stream.error, maybeProcessed: true, wireCode: code },
      );
    }
    if (code === undefined || code === NGHTTP2_NO_ERROR) {
      return new MuxpoolError('MUXPOOL_ERR_BODY_TRUNCATED', `the server closed stream ${id} (RST_STREAM NO_ERROR) before the end of the response body`, {
        cause: stream.error,
        maybeProcessed: true,
        wireCode: NGHTTP2_NO_ERROR,
        origin: 'remote',
      });
    }
    return new MuxpoolError('MUXPOOL_ERR_STREAM_RESET', `the server reset stream ${id} with error code ${code} before the end of the response body`, {
      cause: stream.error,
      maybeProcessed: true,
      wireCode: code,
      origin: 'remote',
    });
  }

  /** Why a stream closed before its response completed, classified for retries (RFC 9113 §8.7). */
  private streamError(stream: H2Stream, req: http2.ClientHttp2Stream | undefined): MuxpoolError {
    const id = req?.id;
    const last = this.goawayLastStreamId;
    if (last !== undefined && (id === undefined || id > last)) {
      // §6.8: streams above the last stream id "were not processed" and may be retried.
      return new MuxpoolError('MUXPOOL_ERR_GOAWAY', `the server sent GOAWAY (last stream ${last}) before processing stream ${id ?? '(unsent)'}`, {
        cause: stream.error,
        maybeProcessed: false,
      });
    }
    const code = req?.rstCode;
    if (code === NGHTTP2_REFUSED_STREAM) {
      // §8.7: REFUSED_STREAM means "the stream was closed prior to any processing".
      return new MuxpoolError('MUXPOOL_ERR_STREAM_REFUSED', `the server refused stream ${id ?? ''} (REFUSED_STREAM)`, {
        cause: stream.error,
        maybeProcessed: false,
        wireCode: code,
      });
    }
    if (this.closeError !== undefined) return errorForStream(this.closeError, true);
    if (code !== undefined && code !== NGHTTP2_NO_ERROR) {
      return new MuxpoolError('MUXPOOL_ERR_STREAM_RESET', `the server reset stream ${id ?? ''} with error code ${code}`, {
        cause: stream.error,
        maybeProcessed: true,
        wireCode: code,
      });
    }
    return new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `HTTP/2 stream ${id ?? ''} closed before the response was complete`, {
      cause: stream.error,
      maybeProcessed: true,
    });
  }

  // ---------------------------------------------------------------------------------------
  // Session events

  private onRemoteSettings(settings: http2.Settings): void {
    const peer = settings.maxConcurrentStreams ?? 0xffffffff;
    this.maxStreams = Math.min(peer, this.options.maxStreams);
    this.lastActivity = this.options.clock.now();
    if (this.state === 'connecting') {
      this.state = 'open';
      this.readyTimer?.cancel();
      this.readyTimer = undefined;
      this.session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
      // Idle sessions must not keep the process alive; `openStream` refs it while busy.
      this.session.unref();
      const resolve = this.readyResolve;
      this.readyResolve = this.readyReject = undefined;
      resolve?.(this.addView(this.firstKeyId));
      return;
    }
    // A later SETTINGS may lower or raise the limit (RFC 9113 §6.5.2): the pool re-reads it.
    for (const view of this.views) view.notifyCapacity();
  }

  private onGoaway(code: number, lastStreamId: number): void {
    if (channels.goaway.hasSubscribers) channels.goaway.publish({ connectionId: this.id, protocol: 'h2', lastStreamId, errorCode: code });
    this.goawayLastStreamId =
      this.goawayLastStreamId === undefined ? lastStreamId : Math.min(this.goawayLastStreamId, lastStreamId);
    if (code !== NGHTTP2_NO_ERROR && this.closeError === undefined) {
      this.closeError = new MuxpoolError('MUXPOOL_ERR_GOAWAY', `the server closed the HTTP/2 connection with error code ${code}`, {
        maybeProcessed: true,
        wireCode: code,
      });
    }
    if (this.state === 'connecting') {
      this.failStart(this.closeError ?? this.notProcessed('the HTTP/2 server sent GOAWAY during connection setup'));
      return;
    }
    this.beginDraining();
  }

  private onSessionError(err: Error): void {
    if (this.closeError === undefined) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      this.closeError =
        err instanceof MuxpoolError
          ? err
          : code.startsWith('ERR_HTTP2')
            ? new MuxpoolError('MUXPOOL_ERR_H2_PROTOCOL', `HTTP/2 session failed: ${err.message}`, { cause: err, maybeProcessed: true })
            : mapSocketError(err, 'request');
    }
    if (this.state === 'connecting') this.failStart(this.closeError);
  }

  private onSessionClose(): void {
    if (this.state === 'connecting') {
      this.failStart(
        this.closeError ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', 'the peer closed the connection during HTTP/2 setup', { maybeProcessed: false }),
      );
    }
    this.state = 'closed';
    this.stopTimers();
    this.options.onClose?.(this);
    // Node closes every stream before the session; any left are failed here, once.
    for (const stream of [...this.streams]) this.handleClose(stream);
    const views = [...this.views];
    this.views.clear();
    for (const view of views) view.onSessionClosed(this.closeError);
  }

  private failStart(err: MuxpoolError): void {
    const reject = this.readyReject;
    this.readyResolve = this.readyReject = undefined;
    this.readyTimer?.cancel();
    this.readyTimer = undefined;
    if (reject === undefined) return;
    this.closeError ??= err;
    this.state = 'closed';
    this.session.destroy();
    reject(err);
  }

  // ---------------------------------------------------------------------------------------
  // Draining and closing

  /** No new streams; the session closes once the open ones are done. */
  beginDraining(): void {
    if (this.state === 'closed' || this.state === 'draining') return;
    this.state = 'draining';
    for (const view of this.views) view.onSessionDraining();
    if (this.activeStreams === 0) this.closeGracefully();
  }

  /** A view is gone; the session goes when its last view does. */
  removeView(view: H2Connection, err: MuxpoolError | undefined): void {
    if (!this.views.delete(view)) return;
    for (const stream of [...this.streams]) {
      if (stream.view === view) {
        stream.cancel(err !== undefined ? errorForStream(err) : new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`));
      }
    }
    if (this.views.size === 0) this.destroy(err);
  }

  destroy(err?: MuxpoolError): void {
    if (this.state === 'closed' && this.session.destroyed) return;
    if (err !== undefined) this.closeError ??= err;
    // Each stream its own error: the client sets `attempts` on what it hands a caller.
    for (const stream of [...this.streams]) {
      stream.cancel(
        err !== undefined
          ? errorForStream(err)
          : new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`, { maybeProcessed: true }),
      );
    }
    this.state = 'closed';
    this.stopTimers();
    this.session.destroy();
    // A session Node had already closed (the peer's GOAWAY) only ends its socket and waits for
    // the peer's side, which may never come: destroyed means gone, so the socket goes too.
    if (!this.socket.destroyed) this.socket.destroy();
  }

  private closeGracefully(): void {
    this.stopTimers();
    // Sends GOAWAY(NO_ERROR) and ends the socket once no stream is open; 'close' follows. (Node
    // has already closed a session whose peer sent GOAWAY(NO_ERROR).)
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  private notProcessed(message: string, cause?: unknown): MuxpoolError {
    return new MuxpoolError(this.goawayLastStreamId !== undefined ? 'MUXPOOL_ERR_GOAWAY' : 'MUXPOOL_ERR_CONNECTION_CLOSED', message, {
      cause: cause ?? this.closeError,
      maybeProcessed: false,
    });
  }

  // ---------------------------------------------------------------------------------------
  // Health: PING (RFC 9113 §6.7)

  /** While streams are open, a silent session is pinged every `pingIntervalMs`. */
  private armHealthTimer(): void {
    const interval = this.options.pingIntervalMs;
    if (interval <= 0 || this.healthTimer !== undefined) return;
    this.healthTimer = this.options.clock.setTimer(() => this.onHealthTimer(), timerDelay(interval));
  }

  private onHealthTimer(): void {
    this.healthTimer = undefined;
    if (this.activeStreams === 0 || this.state === 'closed') return;
    if (this.options.clock.now() - this.lastActivity >= this.options.pingIntervalMs) this.ping();
    this.armHealthTimer();
  }

  private ping(): void {
    if (this.pingInFlight || this.state === 'closed' || this.session.destroyed) return;
    this.pingInFlight = true;
    const sent = this.session.ping((err) => {
      this.pingInFlight = false;
      this.pingTimer?.cancel();
      this.pingTimer = undefined;
      if (err === null) this.lastActivity = this.options.clock.now();
    });
    if (!sent) {
      this.pingInFlight = false;
      return;
    }
    this.pingTimer = this.options.clock.setTimer(() => {
      this.pingTimer = undefined;
      if (!this.pingInFlight) return;
      this.destroy(
        new MuxpoolError('MUXPOOL_ERR_PING_TIMEOUT', `connection ${this.id} did not answer a PING within ${this.options.pingTimeoutMs} ms`, {
          maybeProcessed: true,
        }),
      );
    }, timerDelay(this.options.pingTimeoutMs));
  }

  private stopTimers(): void {
    this.healthTimer?.cancel();
    this.healthTimer = undefined;
    this.deadlines.stop();
    this.pingTimer?.cancel();
    this.pingTimer = undefined;
    this.readyTimer?.cancel();
    this.readyTimer = undefined;
  }
}

/** Header bytes as SETTINGS_MAX_HEADER_LIST_SIZE counts them (RFC 9113 §6.5.2: name + value + 32). */
function fieldBytes(raw: http2.IncomingHttpHeaders): number {
  let bytes = 0;
  for (const name in raw) {
    const value = raw[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) bytes += name.length + v.length + 32;
    else bytes += name.length + String(value).length + 32;
  }
  return bytes;
}
