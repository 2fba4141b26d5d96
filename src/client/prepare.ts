/**
 * Turns what a user passes to `request()` into a validated `RequestHead` and body, before any
 * connection is touched: bad input fails here with a typed error and costs no socket.
 */
import { Readable } from 'node:stream';
import { MuxpoolError } from '../errors.js';
import type { RequestBody, RequestHead } from '../protocol/message.js';
import { normalizeHeaders, validateMethod } from '../protocol/fields.js';

export type BodyInit =
  | string
  | Uint8Array
  | ArrayBuffer
  | ArrayBufferView
  | URLSearchParams
  | Blob
  | FormData
  | Readable
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array | string>
  | null
  | undefined;

export type HeadersInit =
  | Record<string, string | number | readonly string[] | undefined>
  | Iterable<readonly [string, string]>
  | undefined;

export interface PreparedRequest {
  url: URL;
  head: RequestHead;
  body: RequestBody;
  /** The body can be sent again (bytes, not a stream already consumed). */
  replayable: boolean;
  /** Retrying after a failure that may have reached the server is safe (RFC 9110 §9.2.2). */
  idempotent: boolean;
}

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Fields whose meaning belongs to the transport (lower-case names): decided by us, never passed on as given. */
export function isTransportField(name: string): boolean {
  return name === 'host' || name === 'content-length' || name === 'transfer-encoding' || name === 'upgrade';
}

/** Methods whose empty body is still announced with `content-length: 0` (RFC 9110 §8.6). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']);
const EMPTY = new Uint8Array(0);

export function parseUrl(input: string | URL): URL {
  let url: URL;
  if (input instanceof URL) url = input;
  else if (typeof input === 'string') {
    try {
      url = new URL(input);
    } catch (cause) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', `not a valid URL: ${JSON.stringify(input.slice(0, 200))}`, { cause });
    }
  } else {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', `a URL must be a string or URL, got ${typeof input}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MuxpoolError('MUXPOOL_ERR_UNSUPPORTED_SCHEME', `unsupported URL scheme ${url.protocol} (use http: or https:)`);
  }
  if (url.hostname === '') throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', `URL has no host: ${url.href}`);
  return url;
}

function parseContentLength(value: string): number {
  if (!/^\d{1,15}$/.test(value)) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', `content-length must be a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

async function* bytesOf(source: AsyncIterable<Uint8Array | string>): AsyncIterable<Uint8Array> {
  for await (const chunk of source) {
    if (typeof chunk === 'string') yield Buffer.from(chunk, 'utf8');
    else if (chunk instanceof Uint8Array) yield chunk;
    else throw new MuxpoolError('MUXPOOL_ERR_INVALID_BODY', `request body chunks must be strings or bytes, got ${typeof chunk}`);
  }
}

async function* blobChunks(blob: Blob): AsyncGenerator<Uint8Array> {
  for await (const chunk of blob.stream() as unknown as AsyncIterable<Uint8Array>) yield chunk;
}

function hasField(headers: readonly string[], name: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return true;
  return false;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array | string> {
  return value !== null && typeof value === 'object' && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

export function prepareRequest(
  url: URL,
  methodInput: string | undefined,
  headersInput: HeadersInit,
  bodyInput: BodyInit,
  /** Sent as `accept-encoding` when the caller did not set that field (decompression on). */
  acceptEncoding: string | undefined,
): PreparedRequest {
  const method = methodInput === undefined ? 'GET' : methodInput;
  if (!KNOWN_METHODS.has(method)) validateMethod(method);

  const raw = normalizeHeaders(headersInput);
  let authority = url.host;
  let declaredLength: number | undefined;
  let headers: string[] = raw;
  // Fields whose meaning belongs to the transport are taken out and decided here once.
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (isTransportField(name)) {
      headers = [];
      for (let j = 0; j < raw.length; j += 2) {
        const n = raw[j] as string;
        const v = raw[j + 1] as string;
        if (n === 'host') authority = v;
        else if (n === 'content-length') {
          const length = parseContentLength(v);
          if (declaredLength !== undefined && declaredLength !== length) {
            throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', 'conflicting content-length values');
          }
          declaredLength = length;
        } else if (n === 'transfer-encoding') {
          // We frame bodies ourselves; any coding but chunked would need a body we cannot produce.
          if (v.toLowerCase() !== 'chunked') {
            throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', `transfer-encoding ${JSON.stringify(v)} is not supported`);
          }
        } else if (n === 'upgrade') {
          throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', 'the upgrade header is not supported (muxpool never switches protocols)');
        } else headers.push(n, v);
      }
      break;
    }
  }

  let body: RequestBody;
  let contentLength: number | null | undefined;
  let replayable = true;
  let defaultContentType: string | undefined;
  if (bodyInput === undefined || bodyInput === null) {
    if (declaredLength !== undefined && declaredLength !== 0) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_BODY', `content-length is ${declaredLength} but there is no body`);
    }
    if (BODY_METHODS.has(method) || declaredLength === 0) {
      body = EMPTY;
      contentLength = 0;
    } else {
      body = null;
      contentLength = null;
    }
  } else if (typeof bodyInput === 'string') {
    body = Buffer.from(bodyInput, 'utf8');
    contentLength = body.byteLength;
  } else if (bodyInput instanceof Uint8Array) {
    body = bodyInput;
    contentLength = body.byteLength;
  } else if (bodyInput instanceof ArrayBuffer) {
    body = new Uint8Array(bodyInput);
    contentLength = body.byteLength;
  } else if (ArrayBuffer.isView(bodyInput)) {
    body = new Uint8Array(bodyInput.buffer, bodyInput.byteOffset, bodyInput.byteLength);
    contentLength = body.byteLength;
  } else if (bodyInput instanceof URLSearchParams) {
    // As fetch: a form, UTF-8, with its media type unless the caller named one.
    body = Buffer.from(bodyInput.toString(), 'utf8');
    contentLength = body.byteLength;
    defaultContentType = 'application/x-www-form-urlencoded;charset=UTF-8';
  } else if (bodyInput instanceof Blob) {
    // Read again for every attempt: a Blob can be, so a retry or a 307 may resend it.
    const blob = bodyInput;
    body = { [Symbol.asyncIterator]: () => blobChunks(blob) };
    contentLength = blob.size;
    if (blob.type !== '') defaultContentType = blob.type;
  } else if (bodyInput instanceof FormData) {
    // multipart/form-data as fetch encodes it (RFC 7578), boundary included in the media type.
    const encoded = new globalThis.Response(bodyInput);
    defaultContentType = encoded.headers.get('content-type') ?? undefined;
    body = bytesOf(encoded.body as unknown as AsyncIterable<Uint8Array>);
    contentLength = declaredLength;
    replayable = false;
  } else if (bodyInput instanceof Readable || isAsyncIterable(bodyInput)) {
    body = bytesOf(bodyInput);
    contentLength = declaredLength;
    replayable = false;
  } else {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_BODY', `unsupported body type ${typeof bodyInput}`);
  }
  if (typeof contentLength === 'number' && declaredLength !== undefined && declaredLength !== contentLength) {
    throw new MuxpoolError(
      'MUXPOOL_ERR_INVALID_BODY',
      `content-length says ${declaredLength} but the body has ${contentLength} bytes`,
    );
  }
  if (defaultContentType !== undefined && !hasField(headers, 'content-type')) {
    headers.push('content-type', defaultContentType);
  }
  if (acceptEncoding !== undefined && !hasField(headers, 'accept-encoding')) headers.push('accept-encoding', acceptEncoding);
  const head: RequestHead = {
    method,
    path: url.pathname + url.search,
    authority,
    scheme: url.protocol === 'https:' ? 'https' : 'http',
    headers,
    contentLength,
  };
  let idempotent = IDEMPOTENT_METHODS.has(method);
  if (!idempotent) {
    for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'idempotency-key') idempotent = true;
  }
  return { url, head, body, replayable, idempotent };
}
