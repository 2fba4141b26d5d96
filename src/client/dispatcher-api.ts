/**
 * The rest of undici's Dispatcher surface, over `dispatch()`: `request(options)`, `stream()` and
 * `pipeline()` as undici defines them, `compose()` for interceptors, and `connect()`/`upgrade()` refused with a
 * typed error (muxpool opens no tunnels and switches no protocols). With these the pool is a
 * Dispatcher to TypeScript too, so `fetch(url, { dispatcher: pool })` type-checks.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { Duplex, PassThrough, Readable, type Writable, finished } from 'node:stream';
import { MuxpoolError } from '../errors.js';
import type { IncomingHeaders } from '../protocol/message.js';
import type { DispatchController, DispatchHandler, DispatchOptions } from './dispatcher.js';

/** What `stream()`'s factory and `pipeline()`'s handler receive. */
export interface ResponseStartData<TOpaque = unknown> {
  statusCode: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  opaque: TOpaque;
  context: object;
}

export interface StreamResult<TOpaque = unknown> {
  opaque: TOpaque;
  trailers: Record<string, string>;
}

type Dispatch = (options: DispatchOptions, handler: DispatchHandler) => boolean;
type Callback<T> = (err: Error | null, data: T) => void;

/**
 * Ties `signal` to a request: aborted already, or later, the request aborts with its reason.
 * Returns what stops listening (call it when the request ends).
 */
function followSignal(signal: unknown, controller: DispatchController): () => void {
  if (signal === undefined || signal === null) return noop;
  if (signal instanceof EventEmitter) {
    const onAbort = (): void => controller.abort(new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the request was aborted'));
    signal.once('abort', onAbort);
    return () => signal.removeListener('abort', onAbort);
  }
  if (!(signal instanceof AbortSignal)) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'signal must be an AbortSignal or an EventEmitter');
  }
  if (signal.aborted) {
    controller.abort(signal.reason);
    return noop;
  }
  const onAbort = (): void => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

function noop(): void {}

/** Settles a promise, or calls undici's callback instead when one was given. */
export function settle<T>(promise: Promise<T>, callback: Callback<T> | undefined): Promise<T> | undefined {
  if (callback === undefined) return promise;
  promise.then(
    (value) => callback(null, value),
    (err: unknown) => callback(err as Error, undefined as T),
  );
  return undefined;
}

/** undici's `stream()`: the response body is written into the Writable the factory returns. */
export function streamVia<TOpaque>(
  dispatch: Dispatch,
  options: DispatchOptions & { opaque?: TOpaque },
  factory: (data: ResponseStartData<TOpaque>) => Writable,
): Promise<StreamResult<TOpaque>> {
  return new Promise((resolve, reject) => {
    let target: Writable | undefined;
    let trailers: Record<string, string> = {};
    let unwatch = noop;
    const fail = (err: Error): void => {
      unwatch();
      target?.destroy(err);
      reject(err);
    };
    dispatch(options, {
      onRequestStart(controller: DispatchController) {
        unwatch = followSignal(options.signal, controller);
      },
      onResponseStart(controller: DispatchController, statusCode: number, headers: IncomingHeaders, statusText: string) {
        try {
          target = factory({ statusCode, statusText, headers: headers as IncomingHttpHeaders, opaque: options.opaque as TOpaque, context: {} });
        } catch (err) {
          controller.abort(err);
          return;
        }
        target.on('drain', () => controller.resume());
        finished(target, { readable: false }, (err) => {
          unwatch();
          if (err !== undefined && err !== null) {
            controller.abort(err);
            reject(err);
          } else resolve({ opaque: options.opaque as TOpaque, trailers });
        });
      },
      onResponseData(controller: DispatchController, chunk: Buffer) {
        if (target !== undefined && !target.write(chunk)) controller.pause();
      },
      onResponseEnd(_controller: DispatchController, received: IncomingHeaders) {
        unwatch();
        trailers = flatTrailers(received);
        target?.end();
      },
      onResponseError(_controller: DispatchController, err: Error) {
        fail(err);
      },
    });
  });
}

/**
 * undici's `pipeline()`: a Duplex whose writable side is the request body and whose readable
 * side is what `handler` makes of the response body.
 */
export function pipelineVia<TOpaque>(
  dispatch: Dispatch,
  options: DispatchOptions & { opaque?: TOpaque },
  handler: (data: ResponseStartData<TOpaque> & { body: DispatchBody }) => Readable,
): Duplex {
  const requestBody = new PassThrough();
  const output = new PassThrough();
  const duplex = Duplex.from({ writable: requestBody, readable: output });
  let responseBody: DispatchBody | undefined;
  let unwatch = noop;
  dispatch(
    { ...options, body: requestBody },
    {
      onRequestStart(controller: DispatchController) {
        unwatch = followSignal(options.signal, controller);
      },
      onResponseStart(controller: DispatchController, statusCode: number, headers: IncomingHeaders, statusText: string) {
        responseBody = new DispatchBody(
          () => controller.resume(),
          (err) => controller.abort(err),
        );
        let result: Readable;
        try {
          result = handler({
            statusCode,
            statusText,
            headers: headers as IncomingHttpHeaders,
            opaque: options.opaque as TOpaque,
            context: {},
            body: responseBody,
          });
        } catch (err) {
          controller.abort(err);
          return;
        }
        result.on('error', (err) => duplex.destroy(err));
        result.pipe(output);
      },
      onResponseData(controller: DispatchController, chunk: Buffer) {
        if (responseBody !== undefined && !responseBody.push(chunk)) controller.pause();
      },
      onResponseEnd() {
        unwatch();
        responseBody?.push(null);
      },
      onResponseError(_controller: DispatchController, err: Error) {
        unwatch();
        responseBody?.destroy(err);
        duplex.destroy(err);
      },
    },
  );
  return duplex;
}

/** `connect()` and `upgrade()`: what muxpool does not do, said at once. */
export function notSupported(what: string): Promise<never> {
  return Promise.reject(new MuxpoolError('MUXPOOL_ERR_NOT_SUPPORTED', `muxpool does not support ${what}`));
}

/** What undici's `request(options)` resolves to. */
export interface DispatchResponseData<TOpaque = unknown> {
  statusCode: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  body: DispatchBody;
  /** Filled in when the body has been read to its end. */
  trailers: Record<string, string>;
  opaque: TOpaque;
  context: object;
}

/**
 * The body of an undici-style response: a Readable with backpressure (reading resumes the
 * stream) and undici's consumers. Destroying it early cancels the request.
 */
export class DispatchBody extends Readable {
  private used = false;
  private ended = false;
  /** undici's BodyReadable has a web `body`; this one has none. */
  readonly body: undefined = undefined;

  constructor(
    private readonly resumeSource: () => void,
    private readonly abortSource: (err: Error) => void,
  ) {
    super();
    this.once('end', () => (this.ended = true));
  }

  override _read(): void {
    this.resumeSource();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.ended) this.abortSource(err ?? new MuxpoolError('MUXPOOL_ERR_ABORTED', 'the response body was destroyed'));
    callback(err);
  }

  get bodyUsed(): boolean {
    return this.used;
  }

  async bytes(): Promise<Uint8Array> {
    if (this.used) throw new MuxpoolError('MUXPOOL_ERR_BODY_USED', 'the response body was already consumed');
    this.used = true;
    const chunks: Buffer[] = [];
    for await (const chunk of this) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async text(): Promise<string> {
    return Buffer.from(await this.bytes()).toString('utf8');
  }

  async json(): Promise<unknown> {
    const text = await this.text();
    try {
      return JSON.parse(text) as unknown;
    } catch (cause) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_JSON', 'the response body is not valid JSON', { cause });
    }
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.bytes();
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  async blob(): Promise<Blob> {
    return new Blob([await this.bytes()]);
  }

  formData(): Promise<never> {
    return notSupported('formData() on an undici-style body');
  }

  /** Reads and drops the rest of the body (up to `limit` bytes, then the request is cancelled). */
  async dump(opts?: { limit: number }): Promise<void> {
    const limit = opts?.limit ?? 128 * 1024;
    let seen = 0;
    this.used = true;
    for await (const chunk of this) {
      seen += (chunk as Buffer).length;
      if (seen > limit) {
        this.destroy();
        return;
      }
    }
  }
}

function flatTrailers(trailers: IncomingHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in trailers) {
    const value = trailers[name] as string | string[];
    out[name] = typeof value === 'string' ? value : value.join(', ');
  }
  return out;
}

/** undici's `request(options)`: resolves at the response head with a body to read. */
export function requestVia<TOpaque>(dispatch: Dispatch, options: DispatchOptions & { opaque?: TOpaque }): Promise<DispatchResponseData<TOpaque>> {
  return new Promise((resolve, reject) => {
    let data: DispatchResponseData<TOpaque> | undefined;
    let unwatch = noop;
    dispatch(options, {
      onRequestStart(controller: DispatchController) {
        unwatch = followSignal(options.signal, controller);
      },
      onResponseStart(controller: DispatchController, statusCode: number, headers: IncomingHeaders, statusText: string) {
        const body = new DispatchBody(
          () => controller.resume(),
          (err) => controller.abort(err),
        );
        data = { statusCode, statusText, headers: headers as IncomingHttpHeaders, body, trailers: {}, opaque: options.opaque as TOpaque, context: {} };
        resolve(data);
      },
      onResponseData(controller: DispatchController, chunk: Buffer) {
        if (data !== undefined && !data.body.push(chunk)) controller.pause();
      },
      onResponseEnd(_controller: DispatchController, trailers: IncomingHeaders) {
        unwatch();
        if (data === undefined) return;
        Object.assign(data.trailers, flatTrailers(trailers));
        data.body.push(null);
      },
      onResponseError(_controller: DispatchController, err: Error) {
        unwatch();
        if (data === undefined) reject(err);
        else data.body.destroy(err);
      },
    });
  });
}
