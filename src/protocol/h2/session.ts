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
import { bodyFailure, checkedBody } from '../body.js';
import type { RequestBody, RequestHead, RequestStream, StreamHandler } from '../message.js';
import { H2Connection } from './connection.js';
import { type HeaderLimits, fromH2ResponseHeaders, toH2RequestHeaders } from './headers.js';

const {
  NGHTTP2_CANCEL,
  NGHTTP2_NO_ERROR,
  NGHTTP2_REFUSED_STREAM,
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
  /** Fail a request when the peer sends nothing on its stream for this long. */
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

function onRequestResponse(this: TaggedRequest, raw: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
  const stream = this[OWNER];
  if (stream !== undefined) stream.session.handleResponse(stream, raw);
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

/** One request on the session: the `RequestStream` its caller controls. */
class H2Stream implements RequestStream {
  readonly view: H2Connection;
  readonly handler: StreamHandler;
  readonly session: H2Session;
  req: http2.ClientHttp2Stream | undefined;
  done = false;
  gotResponse = false;
  sendingBody = false;
  /** Why Node reported the stream failed ('error' comes before 'close'). */
  error: unknown;
  /** When the peer last sent something on this stream (or it opened): the read timeout's base. */
  lastDataAt = 0;

  constructor(session: H2Session, view: H2Connection, handler: StreamHandler) {
    this.session = session;
    this.view = view;
    this.handler = handler;
  }

  resume(): void {
    if (!this.done) this.req?.resume();
  }

  cancel(reason: MuxpoolError): void {
    if (this.done) return;
    // RST_STREAM(CANCEL) frees the slot at the peer; ours is freed by the handler below.
    if (this.req !== undefined && !this.req.closed && !this.req.destroyed) this.req.close(NGHTTP2_CANCEL);
    this.session.finish(this);
    this.handler.onError(reason);
  }
}

export class H2Session {
  readonly id = nextConnectionId('h2');
  readonly remoteAddress: string | undefined;
  readonly resumed: boolean | undefined;
  state: H2SessionState = 'connecting';
  /** Streams the peer allows at once (SETTINGS_MAX_CONCURRENT_STREAMS), capped by ours. */
  limit = 0;
  /** Streams open on the session, across every view. */
  active = 0;
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
  private readTimer: Timer | undefined;
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
        options.settingsTimeoutMs,
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

  /** Streams open on the session, across every view (the coalescing index's name for `active`). */
  get activeStreams(): number {
    return this.active;
  }

  /** Streams the peer allows at once, capped by ours (the coalescing index's name for `limit`). */
  get maxStreams(): number {
    return this.limit;
  }

  /** True while a new stream may be opened. */
  get acceptsStreams(): boolean {
    return this.state === 'open' && !this.session.closed && !this.session.destroyed;
  }

  // ---------------------------------------------------------------------------------------
  // Streams

  openStream(view: H2Connection, head: RequestHead, body: RequestBody, handler: StreamHandler): RequestStream {
    const stream = new H2Stream(this, view, handler);
    if (!this.acceptsStreams || view.state !== 'open') {
      stream.done = true;
      handler.onError(this.notProcessed(`connection ${this.id} takes no new streams`));
      return stream;
    }
    let headers;
    try {
      headers = toH2RequestHeaders(head);
    } catch (err) {
      stream.done = true;
      handler.onError(err instanceof MuxpoolError ? err : internalError(`building HTTP/2 headers failed: ${String(err)}`));
      return stream;
    }
    const endStream = body === null || (body instanceof Uint8Array && body.byteLength === 0);
    let req: http2.ClientHttp2Stream;
    try {
      req = this.session.request(headers, { endStream });
    } catch (err) {
      // Node refuses synchronously after GOAWAY or on a closing session: nothing was sent.
      stream.done = true;
      handler.onError(this.notProcessed(`connection ${this.id} refused a new stream: ${(err as Error).message}`, err));
      return stream;
    }
    const now = this.options.clock.now();
    if (this.active === 0) {
      this.session.ref();
      // A session that sat silent for a while may be dead (NAT timeout, peer gone without a
      // FIN): ask it now. The request goes out at once; if the PING fails, it fails with it and
      // an idempotent request is retried by the client.
      if (this.options.pingIntervalMs > 0 && now - this.lastActivity >= this.options.pingIntervalMs) this.ping();
    }
    this.active++;
    view.active++;
    this.requestCount++;
    this.streams.add(stream);
    stream.req = req;
    stream.lastDataAt = now;
    this.armHealthTimer();
    if (this.readTimer === undefined) this.armReadTimer(this.options.readTimeoutMs);
    (req as TaggedRequest)[OWNER] = stream;
    req.on('response', onRequestResponse);
    req.on('data', onRequestData);
    req.on('trailers', onRequestTrailers);
    req.on('end', onRequestEnd);
    req.on('error', onRequestError);
    req.on('close', onRequestClose);
    if (!endStream) {
      if (body instanceof Uint8Array) req.end(body);
      else if (body !== null) {
        stream.sendingBody = true;
        void this.pumpBody(stream, req, body, head.contentLength ?? undefined);
      }
    }
    return stream;
  }

  /** The stream is over for us: give its slot back to the session's count. */
  finish(stream: H2Stream): void {
    if (stream.done) return;
    stream.done = true;
    this.streams.delete(stream);
    this.active--;
    stream.view.active--;
    // The health and read timers stay armed: they find nothing to do when no stream is open,
    // which is cheaper than a timer made and cancelled per request.
    if (this.active === 0) this.session.unref();
    // Coalesced views share the session's streams: a slot freed by one may serve another.
    if (this.views.size > 1) for (const view of this.views) if (view !== stream.view) view.notifyCapacity();
    if (this.state === 'draining' && this.active === 0) this.closeGracefully();
  }

  /** @internal the stream listeners above call these. */
  handleResponse(stream: H2Stream, raw: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
    if (stream.done) return;
    this.lastActivity = stream.lastDataAt = this.options.clock.now();
    let headers;
    try {
      headers = fromH2ResponseHeaders(raw, this.options);
    } catch (err) {
      stream.cancel(err as MuxpoolError);
      return;
    }
    stream.gotResponse = true;
    stream.handler.onResponse(Number(raw[HTTP2_HEADER_STATUS]), headers, '');
  }

  handleData(stream: H2Stream, chunk: Buffer): void {
    if (stream.done) return;
    this.lastActivity = stream.lastDataAt = this.options.clock.now();
    if (!stream.handler.onData(chunk)) stream.req?.pause();
  }

  handleTrailers(stream: H2Stream, raw: http2.IncomingHttpHeaders): void {
    if (stream.done) return;
    let trailers;
    try {
      trailers = fromH2ResponseHeaders(raw, this.options);
    } catch (err) {
      stream.cancel(err as MuxpoolError);
      return;
    }
    stream.handler.onTrailers(trailers);
  }

  handleEnd(stream: H2Stream): void {
    if (stream.done) return;
    this.lastActivity = this.options.clock.now();
    if (!stream.gotResponse) return; // 'close' reports what went wrong
    const req = stream.req;
    // The server answered before our body was done (RFC 9113 §8.1 allows it): stop sending.
    if (stream.sendingBody && req !== undefined && !req.closed) req.close(NGHTTP2_CANCEL);
    this.finish(stream);
    stream.handler.onComplete();
  }

  /**
   * Read timeouts: one timer per session, re-armed for the stream nearest its deadline. A stream
   * still sending its body is not waiting for the server.
   */
  private armReadTimer(ms: number): void {
    this.readTimer = this.options.clock.setTimer(() => this.onReadTimer(), Math.max(1, ms));
  }

  private onReadTimer(): void {
    this.readTimer = undefined;
    if (this.active === 0 || this.state === 'closed') return;
    const now = this.options.clock.now();
    const limit = this.options.readTimeoutMs;
    let next = limit;
    for (const stream of [...this.streams]) {
      const idle = now - stream.lastDataAt;
      if (stream.sendingBody) continue;
      if (idle >= limit) {
        stream.cancel(
          new MuxpoolError('MUXPOOL_ERR_READ_TIMEOUT', `no data on HTTP/2 stream for ${limit} ms`, { maybeProcessed: true }),
        );
      } else {
        next = Math.min(next, limit - idle);
      }
    }
    if (this.active > 0) this.armReadTimer(next);
  }

  handleClose(stream: H2Stream): void {
    if (stream.done) return;
    const req = stream.req;
    this.finish(stream);
    stream.handler.onError(this.streamError(stream, req));
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
    if (this.closeError !== undefined) {
      return new MuxpoolError(this.closeError.code, this.closeError.message, {
        cause: this.closeError,
        maybeProcessed: true,
        wireCode: this.closeError.wireCode,
      });
    }
    if (code !== undefined && code !== NGHTTP2_NO_ERROR) {
      return new MuxpoolError('MUXPOOL_ERR_STREAM_RESET', `the server reset stream ${id ?? ''} with error code ${code}`, {
        cause: stream.error,
        maybeProcessed: true,
        wireCode: code,
      });
    }
    return new MuxpoolError(
      stream.gotResponse ? 'MUXPOOL_ERR_BODY_TRUNCATED' : 'MUXPOOL_ERR_CONNECTION_CLOSED',
      `HTTP/2 stream ${id ?? ''} closed before the response was complete`,
      { cause: stream.error, maybeProcessed: true },
    );
  }

  private async pumpBody(
    stream: H2Stream,
    req: http2.ClientHttp2Stream,
    body: AsyncIterable<Uint8Array>,
    declaredLength: number | undefined,
  ): Promise<void> {
    try {
      for await (const chunk of checkedBody(body, declaredLength)) {
        if (stream.done) return;
        // Flow control (the peer's window) shows up here as write backpressure.
        if (!req.write(chunk)) await waitForDrain(req);
      }
      if (stream.done) return;
      stream.sendingBody = false;
      req.end();
    } catch (err) {
      stream.sendingBody = false;
      // Only this stream is lost; the session carries on.
      stream.cancel(bodyFailure(err));
    }
  }

  // ---------------------------------------------------------------------------------------
  // Session events

  private onRemoteSettings(settings: http2.Settings): void {
    const peer = settings.maxConcurrentStreams ?? 0xffffffff;
    this.limit = Math.min(peer, this.options.maxStreams);
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
    if (this.active === 0) this.closeGracefully();
  }

  /** A view is gone; the session goes when its last view does. */
  removeView(view: H2Connection, err: MuxpoolError | undefined): void {
    if (!this.views.delete(view)) return;
    for (const stream of [...this.streams]) {
      if (stream.view === view) stream.cancel(err ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`));
    }
    if (this.views.size === 0) this.destroy(err);
  }

  destroy(err?: MuxpoolError): void {
    if (this.state === 'closed' && this.session.destroyed) return;
    if (err !== undefined) this.closeError ??= err;
    const reason = err ?? new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', `connection ${this.id} was closed`, { maybeProcessed: true });
    for (const stream of [...this.streams]) stream.cancel(reason);
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
    this.healthTimer = this.options.clock.setTimer(() => this.onHealthTimer(), interval);
  }

  private onHealthTimer(): void {
    this.healthTimer = undefined;
    if (this.active === 0 || this.state === 'closed') return;
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
    }, this.options.pingTimeoutMs);
  }

  private stopTimers(): void {
    this.healthTimer?.cancel();
    this.healthTimer = undefined;
    this.readTimer?.cancel();
    this.readTimer = undefined;
    this.pingTimer?.cancel();
    this.pingTimer = undefined;
    this.readyTimer?.cancel();
    this.readyTimer = undefined;
  }
}

function waitForDrain(req: http2.ClientHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    if (req.destroyed || req.closed) resolve();
    else {
      req.on('drain', done);
      req.on('close', done);
    }
  });
}
