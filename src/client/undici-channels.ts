/**
 * undici's request channels, published for requests through the pool, so tools built on them
 * (`@opentelemetry/instrumentation-undici`, Datadog, Elastic, Sentry) trace muxpool as they
 * trace undici and Node's fetch. Message shapes as undici 6/7 publish them:
 *
 * - `undici:request:create` `{ request }` — `request` has `origin`, `method`, `path`,
 *   `headers` (flat `[name, value, …]`) and `addHeader(name, value)`
 * - `undici:client:sendHeaders` `{ request, headers, socket }` — `headers` the head as
 *   `name: value\r\n` lines; `socket` a stand-in with `remoteAddress`, `remotePort` and
 *   `alpnProtocol` (`http/1.1`, `h2` or `h3`), never the real socket
 * - `undici:request:headers` `{ request, response: { statusCode, statusText, headers } }` —
 *   `headers` raw `[name, value, …]` Buffers
 * - `undici:request:trailers` `{ request, trailers }` — raw Buffers, `[]` when none
 * - `undici:request:error` `{ request, error }` — for a request the caller aborted, the abort
 *   reason (an `AbortError`) as undici gives it, not our wrapping error
 *
 * The same request object goes with every event of a request (tracers key spans by it).
 * Node's fetch with the pool as its dispatcher hands its request to `dispatch()`; the undici
 * inside Node publishes nothing for it (its Client never sees the request), so each request
 * is published once, here.
 */
import diagnostics from 'node:diagnostics_channel';
import { MuxpoolError } from '../errors.js';
import type { IncomingHeaders } from '../protocol/message.js';
import { rawFields } from './dispatcher.js';
import type { ObservedRequest } from './request-events.js';

export const undiciCreate = diagnostics.channel('undici:request:create');
export const undiciSendHeaders = diagnostics.channel('undici:client:sendHeaders');
export const undiciHeaders = diagnostics.channel('undici:request:headers');
export const undiciTrailers = diagnostics.channel('undici:request:trailers');
export const undiciError = diagnostics.channel('undici:request:error');

/** What undici's `sendHeaders` message calls the socket: the fields tracers read, nothing to write to. */
export interface SocketInfo {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly alpnProtocol: string | undefined;
}

/*
 * The raw forms (header text, Buffer arrays) are built only if a subscriber reads them: a
 * tracer reads the status and the socket on every request, header values only when told to
 * record some.
 */
class SendHeadersMessage {
  readonly request: ObservedRequest;
  readonly socket: SocketInfo;
  private text: string | undefined;
  constructor(request: ObservedRequest) {
    this.request = request;
    this.socket = Object.freeze({ remoteAddress: request.remoteAddress, remotePort: request.remotePort, alpnProtocol: request.protocol });
  }
  get headers(): string {
    if (this.text === undefined) {
      const fields = this.request.headers;
      let text = '';
      for (let i = 0; i < fields.length; i += 2) text += `${fields[i] as string}: ${fields[i + 1] as string}\r\n`;
      this.text = text;
    }
    return this.text;
  }
}

class ResponseInfo {
  readonly statusCode: number;
  readonly statusText: string;
  private readonly fields: IncomingHeaders;
  private raw: Buffer[] | undefined;
  constructor(statusCode: number, statusText: string, fields: IncomingHeaders) {
    this.statusCode = statusCode;
    this.statusText = statusText;
    this.fields = fields;
  }
  get headers(): Buffer[] {
    this.raw ??= rawFields(this.fields);
    return this.raw;
  }
}

class TrailersMessage {
  readonly request: ObservedRequest;
  private readonly fields: IncomingHeaders | undefined;
  private raw: Buffer[] | undefined;
  constructor(request: ObservedRequest, fields: IncomingHeaders | undefined) {
    this.request = request;
    this.fields = fields;
  }
  get trailers(): Buffer[] {
    this.raw ??= this.fields === undefined ? [] : rawFields(this.fields);
    return this.raw;
  }
}

/** Publishers, called only after the caller checked `hasSubscribers`. */
export const undiciChannels = {
  sendHeaders(request: ObservedRequest): void {
    undiciSendHeaders.publish(new SendHeadersMessage(request));
  },
  headers(request: ObservedRequest, statusCode: number, statusText: string, headers: IncomingHeaders): void {
    undiciHeaders.publish({ request, response: new ResponseInfo(statusCode, statusText, headers) });
  },
  trailers(request: ObservedRequest, trailers: IncomingHeaders | undefined): void {
    undiciTrailers.publish(new TrailersMessage(request, trailers));
  },
  error(request: ObservedRequest, error: Error): void {
    // undici publishes the abort reason itself (fetch's AbortError), which tracers do not count
    // as a failure (OpenTelemetry's HTTP spans: a cancelled request is no error): ours wraps it.
    const cause = error instanceof MuxpoolError && error.code === 'MUXPOOL_ERR_ABORTED' ? error.cause : undefined;
    undiciError.publish({ request, error: cause instanceof Error && cause.name === 'AbortError' ? cause : error });
  },
};
