/**
 * The pool as an undici `Dispatcher`: what `dispatch(options, handler)` receives, and the two
 * handler shapes in use — the one Node's bundled fetch and undici's request/stream/pipeline
 * pass (`onConnect`, `onHeaders`, `onData`, `onComplete`, `onError`), and undici 7's controller
 * shape (`onRequestStart`, `onResponseStart`, `onResponseData`, `onResponseEnd`,
 * `onResponseError`). Both are driven through one `DispatchSink`, so the pool below sees one
 * kind of caller. Bodies are raw: a dispatcher neither follows redirects nor decodes (fetch
 * does both itself).
 */
import { MuxpoolError } from '../errors.js';
import type { IncomingHeaders, RawFieldSource } from '../protocol/message.js';
import type { BodySink } from './exchange.js';
import type { BodyInit, HeadersInit } from './prepare.js';

/** The options undici passes to `dispatch()` (the fields muxpool reads; others are ignored). */
export interface DispatchOptions {
  origin?: string | URL;
  path: string;
  method: string;
  headers?: unknown;
  body?: unknown;
  query?: Record<string, unknown>;
  upgrade?: string | boolean | null;
  /** Handed back to stream()/pipeline() callers as undici does. */
  opaque?: unknown;
  /**
   * Aborts `request(options)`, `stream()` and `pipeline()` (dispatch() handlers abort through
   * their controller): an AbortSignal, or an EventEmitter that emits 'abort', as undici takes.
   */
  signal?: unknown;
}

/** A handler of either shape; every method is optional, as undici treats them. */
export interface DispatchHandler {
  onConnect?(abort: (reason?: unknown) => void, context?: object): void;
  onResponseStarted?(): void;
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean | void;
  onData?(chunk: Buffer): boolean | void;
  onComplete?(rawTrailers: unknown[] | null): void;
  onError?(err: Error): void;
  onUpgrade?(...args: unknown[]): void;
  onRequestStart?(controller: DispatchController, context: object): void;
  onResponseStart?(controller: DispatchController, statusCode: number, headers: IncomingHeaders, statusText: string): void;
  onResponseData?(controller: DispatchController, chunk: Buffer): void;
  onResponseEnd?(controller: DispatchController, trailers: IncomingHeaders): void;
  onResponseError?(controller: DispatchController, err: Error): void;
}

/** What a dispatch's abort ends (the request's control): the error says why, with the handler's reason as its cause. */
export interface AbortTarget {
  abort(err: MuxpoolError): void;
}

/** undici 7's controller, handed to controller-shape handlers. */
export interface DispatchController {
  abort(reason?: unknown): void;
  pause(): void;
  resume(): void;
  readonly aborted: boolean;
  readonly paused: boolean;
  readonly reason: unknown;
}

const NO_HEADERS: IncomingHeaders = Object.freeze(Object.create(null) as IncomingHeaders);

/**
 * Field names as Buffers, made once: responses repeat the same few names, and a Buffer per name
 * per response is a visible share of a small request's cost under fetch. Bounded; cleared when
 * full. They are shared between responses (handlers read header Buffers, none writes them);
 * values are converted afresh every time.
 */
const nameBuffers = new Map<string, Buffer>();
const MAX_NAME_BUFFERS = 256;

function nameBuffer(name: string): Buffer {
  let bytes = nameBuffers.get(name);
  if (bytes === undefined) {
    bytes = Buffer.from(name, 'latin1');
    if (nameBuffers.size >= MAX_NAME_BUFFERS) nameBuffers.clear();
    nameBuffers.set(name, bytes);
  }
  return bytes;
}

/** `[name, value, …]` as Buffers, the shape `onHeaders` and `onComplete` take. */
export function rawFields(fields: IncomingHeaders): Buffer[] {
  const raw: Buffer[] = [];
  for (const name in fields) {
    const value = fields[name] as string | string[];
    const nameBytes = nameBuffer(name);
    if (typeof value === 'string') raw.push(nameBytes, Buffer.from(value, 'latin1'));
    else for (const item of value) raw.push(nameBytes, Buffer.from(item, 'latin1'));
  }
  return raw;
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * One dispatched request's handler, whichever shape: started, then response head, body chunks
 * with backpressure, and exactly one end (complete or error). A handler that throws, or aborts,
 * gets nothing more but its one error: the reason it gave (or what it threw), as undici does.
 */
export class DispatchSink implements BodySink, DispatchController {
  private readonly handler: DispatchHandler;
  private readonly controllerShape: boolean;
  private abortReason: unknown;
  /** What the handler's abort cancels: the request's control (set when the request starts). */
  private abortTarget: AbortTarget | undefined;
  private ended = false;
  private pausedByHandler = false;
  /** Set once the body flows: what a paused handler resumes (the exchange). */
  body: { resumeBody(): void } | undefined;
  /** Called once when the request ends, completed or failed (the pool counts dispatches in flight). */
  onSettled: (() => void) | undefined;

  constructor(handler: DispatchHandler) {
    if (handler === null || typeof handler !== 'object') {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'dispatch() needs a handler object');
    }
    this.handler = handler;
    this.controllerShape = typeof handler.onRequestStart === 'function' || typeof handler.onResponseStart === 'function';
  }

  // DispatchController (what controller-shape handlers call)
  get aborted(): boolean {
    return this.abortReason !== undefined;
  }
  get paused(): boolean {
    return this.pausedByHandler;
  }
  get reason(): unknown {
    return this.abortReason;
  }
  abort(reason?: unknown): void {
    if (this.abortReason !== undefined || this.ended) return;
    this.abortReason = reason ?? new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the dispatch was aborted');
    this.abortTarget?.abort(new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the request was aborted', { cause: this.abortReason, maybeProcessed: true }));
    // The request may have ended already (a short body arrives with its head): nothing else
    // would tell the handler, so its error comes from here, once.
    queueMicrotask(() => this.onBodyError(new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the dispatch was aborted', { cause: this.abortReason })));
  }
  pause(): void {
    this.pausedByHandler = true;
  }
  resume(): void {
    if (!this.pausedByHandler) return;
    this.pausedByHandler = false;
    this.body?.resumeBody();
  }

  /** The request starts: the handler gets its way to abort, which cancels the request through `target`. */
  start(target: AbortTarget): void {
    this.abortTarget = target;
    this.call(() => {
      if (this.controllerShape) this.handler.onRequestStart?.(this, {});
      else this.handler.onConnect?.((reason?: unknown) => this.abort(reason), {});
    });
  }

  /**
   * The response head. Returns false when the handler wants the body paused (or is done). `raw`:
   * the same fields as the transport received them (HTTP/1.1), handed to `onHeaders` as slices
   * of those bytes instead of encoding the parsed strings again.
   */
  head(status: number, headers: IncomingHeaders, statusText: string, raw?: RawFieldSource): boolean {
    if (this.ended || this.aborted) return false;
    // Handler callbacks run in try/catch here and below, not through a closure: these are per
    // request (per chunk) on fetch's hot path. One that throws aborts with what it threw.
    try {
      if (this.controllerShape) this.handler.onResponseStart?.(this, status, headers, statusText);
      else {
        this.handler.onResponseStarted?.();
        const fields = raw === undefined ? rawFields(headers) : raw.rawFields();
        if (this.handler.onHeaders?.(status, fields, this.resumeFn(), statusText) === false) this.pausedByHandler = true;
      }
    } catch (err) {
      this.abort(err);
    }
    return !this.pausedByHandler && !this.aborted && !this.ended;
  }

  // BodySink
  onBodyData(chunk: Uint8Array): boolean {
    if (this.ended || this.aborted) return true;
    try {
      if (this.controllerShape) this.handler.onResponseData?.(this, asBuffer(chunk));
      else if (this.handler.onData?.(asBuffer(chunk)) === false) this.pausedByHandler = true;
    } catch (err) {
      this.abort(err);
    }
    return !this.pausedByHandler;
  }

  onBodyEnd(trailers: IncomingHeaders | undefined): void {
    if (this.ended || this.aborted) return;
    this.ended = true;
    this.onSettled?.();
    try {
      if (this.controllerShape) this.handler.onResponseEnd?.(this, trailers ?? NO_HEADERS);
      else this.handler.onComplete?.(trailers === undefined ? [] : rawFields(trailers));
    } catch (err) {
      this.abort(err);
    }
  }

  /** The `resume` callback `onHeaders` gets. */
  private resumeFn(): () => void {
    return () => this.resume();
  }

  onBodyError(err: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.onSettled?.();
    // What the handler gave as its abort reason (or threw) is what it hears back.
    const delivered = this.abortReason instanceof Error ? this.abortReason : err;
    try {
      if (this.controllerShape) this.handler.onResponseError?.(this, delivered);
      else this.handler.onError?.(delivered);
    } catch {
      // A handler that throws from its own error callback has nothing left to be told.
    }
  }

  /** Runs a handler callback; one that throws aborts the request with what it threw. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.abort(err);
    }
  }
}

/**
 * Origin and path strings of past dispatches, parsed: fetch sends the same few URLs over and
 * over, and two `new URL` per dispatch are a visible share of a small request's cost. The URLs
 * never leave muxpool (nothing mutates them; a query is added to a copy), so sharing them is
 * safe. Bounded; cleared when full.
 */
const parsedDispatchUrls = new Map<string, URL>();
const MAX_PARSED_DISPATCH_URLS = 256;
/** The last origin and path parsed or found, and their URL (shared like the cached ones). */
const lastDispatch: { origin: string; path: string; url: URL | undefined } = { origin: '', path: '', url: undefined };

/** The URL a dispatch goes to: its origin, path and query. */
export function dispatchUrl(options: DispatchOptions): URL {
  if (options === null || typeof options !== 'object') {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'dispatch() needs an options object');
  }
  if (options.upgrade !== undefined && options.upgrade !== null) {
    throw new MuxpoolError('MUXPOOL_ERR_NOT_SUPPORTED', `muxpool does not switch protocols (upgrade: ${String(options.upgrade)})`);
  }
  if (options.method === 'CONNECT') {
    throw new MuxpoolError('MUXPOOL_ERR_NOT_SUPPORTED', 'muxpool does not open CONNECT tunnels through dispatch()');
  }
  if (options.origin === undefined) throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', 'dispatch() options need an origin');
  if (typeof options.path !== 'string' || !options.path.startsWith('/')) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', `dispatch() path must start with '/', got ${JSON.stringify(options.path)}`);
  }
  const origin = typeof options.origin === 'string' ? options.origin : String(options.origin);
  let url: URL | undefined;
  // The same origin and path as the dispatch before (fetch in a loop): two string comparisons
  // instead of building the key and hashing it.
  if (origin === lastDispatch.origin && options.path === lastDispatch.path) url = lastDispatch.url;
  else {
    // A space separates them: no origin that parses has one.
    url = parsedDispatchUrls.get(`${origin} ${options.path}`);
  }
  if (url === undefined) {
    try {
      // The path goes to the origin as it is, as undici sends it: resolved against the origin as
      // a reference, `//other.example/x` would name another host.
      const base = new URL(origin);
      url = new URL(`${base.origin}${options.path}`);
      if (url.origin !== base.origin) throw new Error(`the path leaves ${base.origin}`);
    } catch (cause) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', `not a valid origin and path: ${origin} ${options.path}`, { cause });
    }
    if (parsedDispatchUrls.size >= MAX_PARSED_DISPATCH_URLS) parsedDispatchUrls.clear();
    parsedDispatchUrls.set(`${origin} ${options.path}`, url);
  }
  lastDispatch.origin = origin;
  lastDispatch.path = options.path;
  lastDispatch.url = url;
  if (options.query !== undefined && options.query !== null) {
    // The cached URL is shared: the query goes on a copy.
    url = new URL(url.href);
    for (const [name, value] of Object.entries(options.query)) {
      if (Array.isArray(value)) for (const item of value) url.searchParams.append(name, String(item));
      else if (value !== undefined && value !== null) url.searchParams.append(name, String(value));
    }
  }
  return url;
}

/** undici's header shapes (an object, a flat `[name, value, …]` array, pairs) as ours. */
export function dispatchHeaders(headers: unknown): HeadersInit {
  if (headers === undefined || headers === null) return undefined;
  if (Array.isArray(headers)) {
    const pairs: Array<[string, string]> = [];
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers as unknown[][]) {
        const value = pair[1];
        if (Array.isArray(value)) for (const item of value) pairs.push([String(pair[0]), String(item)]);
        else if (value !== undefined) pairs.push([String(pair[0]), String(value)]);
      }
      return pairs;
    }
    if (headers.length % 2 !== 0) throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', 'a flat header array needs name, value pairs');
    for (let i = 0; i < headers.length; i += 2) pairs.push([String(headers[i]), String(headers[i + 1])]);
    return pairs;
  }
  if (typeof headers === 'object' && typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return dispatchHeaders([...(headers as Iterable<unknown>)]);
  }
  return headers as HeadersInit;
}

/** The body as `request()` takes it. */
export function dispatchBody(body: unknown): BodyInit {
  return body as BodyInit;
}
