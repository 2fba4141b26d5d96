/**
 * What `request()` resolves to: the head at once, the body on demand (buffered text/json/bytes,
 * or a Readable with backpressure). An unread body never pins a connection forever: `dump()`,
 * `body.destroy()`, the request's signal, or garbage collection of the response frees it.
 */
import type { Readable } from 'node:stream';
import { MuxpoolError } from '../errors.js';
import type { IncomingHeaders } from '../protocol/message.js';
import type { ConnectionProtocol } from '../protocol/version.js';
import type { Exchange } from './exchange.js';
import { type Decoder, decodeBody } from './decode.js';
import { watchBody, watchResponse } from './lifetime.js';
import { type RequestTimings, timingsOf } from './request-events.js';

function concat(chunks: Uint8Array[]): Buffer {
  if (chunks.length === 1) {
    const only = chunks[0] as Uint8Array;
    return Buffer.isBuffer(only) ? only : Buffer.from(only.buffer, only.byteOffset, only.byteLength);
  }
  return Buffer.concat(chunks);
}

export class Response {
  readonly status: number;
  readonly statusText: string;
  /** Lower-case names; repeated set-cookie fields as an array. */
  readonly headers: IncomingHeaders;
  readonly protocol: ConnectionProtocol;
  /** False only for the first request on its connection. */
  readonly reused: boolean;
  /** Stable id of the connection that served this response. */
  readonly connectionId: string;
  readonly url: string;
  /** How many times the request was sent (2 after a safe retry). */
  readonly attempts: number;
  /** Whether the request was redirected on its way here (`url` then differs from the one asked for). */
  readonly redirected: boolean;
  private readonly exchange: Exchange;
  /** Undoes the body's content-encoding, when the request asked for decompression and it has one. */
  private readonly decoders: readonly Decoder[] | undefined;
  private bodyStream: Readable | undefined;

  /** @internal Responses come from `request()`. */
  constructor(exchange: Exchange, url: string, attempts: number, redirected = false, decoders?: readonly Decoder[]) {
    const head = exchange.head;
    if (head === undefined) throw new MuxpoolError('MUXPOOL_ERR_INTERNAL', 'response built before its head arrived');
    this.exchange = exchange;
    this.status = head.status;
    this.statusText = head.statusText;
    this.headers = head.headers;
    this.protocol = exchange.entry.connection.protocol;
    this.reused = exchange.reused;
    this.connectionId = exchange.entry.connection.id;
    this.url = url;
    this.attempts = attempts;
    this.redirected = redirected;
    this.decoders = decoders;
    watchResponse(this, exchange);
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /**
   * Where this request's time went (this hop; a redirect's own hop is not included): waiting
   * for a connection, the name lookup, connect and TLS or QUIC handshake of the dial it waited
   * for (0 on a reused connection), time to the first byte of the response, and the total once
   * the body has ended. A new object on every read.
   */
  get timings(): RequestTimings {
    return timingsOf(this.exchange);
  }

  /** Trailer fields, once the body has been read to its end (HTTP/1.1 chunked, HTTP/2, HTTP/3). */
  get trailers(): IncomingHeaders | undefined {
    return this.exchange.trailers;
  }

  /** The body as a Readable (decoded when it has a content-encoding and `decompress` is on); the same object on every call. */
  get body(): Readable {
    if (this.bodyStream === undefined) {
      const raw = this.exchange.toReadable();
      this.bodyStream = this.decoders === undefined ? raw : decodeBody(raw, this.decoders, this.url);
      watchBody(this.bodyStream, this.exchange);
    }
    return this.bodyStream;
  }

  /** Every body chunk, decoded: straight from the exchange when there is nothing to decode. */
  private async chunks(): Promise<Uint8Array[]> {
    if (this.decoders === undefined) return this.exchange.collect();
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.body) chunks.push(chunk as Uint8Array);
    return chunks;
  }

  get bodyUsed(): boolean {
    return this.exchange.bodyTaken;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = concat(await this.chunks());
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  /** The body as a Buffer (no copy when it arrived in one chunk). */
  async bytes(): Promise<Buffer> {
    return concat(await this.chunks());
  }

  async text(): Promise<string> {
    const chunks = await this.chunks();
    if (chunks.length === 1) {
      const only = chunks[0] as Uint8Array;
      // Transports hand over Buffers: decoded as they are, without a view made first.
      return Buffer.isBuffer(only) ? only.toString('utf8') : Buffer.from(only.buffer, only.byteOffset, only.byteLength).toString('utf8');
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** The body parsed as JSON; `T` is the caller's promise about its shape (nothing checks it). */
  async json<T = unknown>(): Promise<T> {
    const text = await this.text();
    try {
      return JSON.parse(text) as T;
    } catch (cause) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_JSON', `response body of ${this.url} is not valid JSON`, { cause });
    }
  }

  /** Discards the body; the connection stays reusable when the rest of it is short. */
  dump(): Promise<void> {
    return this.exchange.dump();
  }
}
