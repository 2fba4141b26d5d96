/**
 * Our HTTP/3 server (RFC 9114) on the QUIC driver: for tests, the CLI's embedded server and the
 * benchmarks. Each request reaches the handler as a Readable request and a Writable response,
 * shaped like `node:http`'s, so one handler serves HTTP/1.1, HTTP/2 and HTTP/3.
 *
 * Per request stream: HEADERS → handler; DATA → the request body (backpressure pauses the QUIC
 * stream); the response goes out as HEADERS, DATA…, FIN. `close()` sends GOAWAY, lets open
 * streams finish for a grace period, then closes every connection.
 */
import { Readable, Writable } from 'node:stream';
import type { IncomingHttpHeaders } from 'node:http';
import { MuxpoolError } from '../errors.js';
import {
  ControlStreamDecoder,
  type ControlEvent,
  RequestStreamDecoder,
  type RequestStreamEvent,
  UniStreamTypeReader,
} from '../protocol/h3/decoders.js';
import {
  H3_CLOSED_CRITICAL_STREAM,
  H3_NO_ERROR,
  H3_REQUEST_CANCELLED,
  H3_REQUEST_REJECTED,
  H3_STREAM_CREATION_ERROR,
  H3_FRAME_UNEXPECTED,
  SETTINGS_MAX_FIELD_SECTION_SIZE,
  SETTINGS_QPACK_BLOCKED_STREAMS,
  SETTINGS_QPACK_MAX_TABLE_CAPACITY,
  STREAM_TYPE_CONTROL,
  END_OF_STREAM_FRAME,
  encodeDataFrameHeader,
  encodeGoawayFrame,
  encodeHeadersFrame,
  encodeSettingsFrame,
  encodeStreamType,
} from '../protocol/h3/frames.js';
import { type FieldList, fromH3RequestFields, toH3ResponseFields } from '../protocol/h3/message.js';
import { encodeFieldSection } from '../protocol/h3/qpack.js';
import { QuicServer, createQuicServerConfig, type QuicConnection, type QuicConnectionHandler } from '../quic/index.js';

export interface H3ServerRequest extends Readable {
  readonly method: string;
  /** The request target (`:path`). */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly httpVersion: '3';
  readonly authority: string | undefined;
  /** The request arrived as 0-RTT early data, which an attacker could replay (RFC 8470). */
  readonly earlyData: boolean;
  /** The client's certificate chain, leaf first (DER); empty when it presented none. */
  peerCertificates(): Buffer[];
}

export type H3RequestHandler = (req: H3ServerRequest, res: H3ServerResponse) => void;

export interface H3ServerOptions {
  /** PEM certificate chain and key. */
  cert: string;
  key: string;
  host?: string;
  port?: number;
  handler: H3RequestHandler;
  /** Request header section limit we advertise and enforce. Default 65 536. */
  maxFieldSectionSize?: number;
  /** Bidirectional streams a client may open at once. Default 100. */
  maxConcurrentStreams?: number;
  idleTimeoutMs?: number;
  /** Accept 0-RTT requests (replay-safe handlers only). Default false. */
  earlyData?: boolean;
  /** Require a client certificate issued by one of these CAs (PEM); clients without one fail the handshake. */
  clientCa?: string | readonly string[];
}

const DEFAULT_MAX_FIELD_SECTION = 64 * 1024;
const CLOSE_GRACE_MS = 2_000;

class ServerRequest extends Readable implements H3ServerRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly httpVersion = '3' as const;
  readonly authority: string | undefined;
  readonly earlyData: boolean;

  constructor(
    private readonly stream: ServerStream,
    fields: FieldList,
  ) {
    super();
    this.earlyData = stream.owner.quic.state === 'handshaking';
    const parsed = fromH3RequestFields(fields);
    this.method = parsed.method;
    this.url = parsed.path;
    this.headers = parsed.headers as IncomingHttpHeaders;
    this.authority = parsed.authority;
  }

  peerCertificates(): Buffer[] {
    return this.stream.owner.quic.peerCertificates();
  }

  override _read(): void {
    this.stream.resumeReading();
  }
}

export class H3ServerResponse extends Writable {
  statusCode = 200;
  private readonly fields = new Map<string, string | number | readonly string[]>();
  headersSent = false;

  constructor(private readonly stream: ServerStream) {
    super();
  }

  setHeader(name: string, value: string | number | readonly string[]): this {
    this.fields.set(name.toLowerCase(), value);
    return this;
  }

  getHeader(name: string): string | number | readonly string[] | undefined {
    return this.fields.get(name.toLowerCase());
  }

  writeHead(status: number, headers?: Record<string, string | number | readonly string[]>): this {
    this.statusCode = status;
    if (headers !== undefined) for (const name in headers) this.setHeader(name, headers[name] as string);
    return this;
  }

  /** Sends HEADERS now if nothing was written yet. */
  flushHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.sendHead(this.statusCode, Object.fromEntries(this.fields));
  }

  /**
   * Refuses the request unprocessed (H3_REQUEST_REJECTED, RFC 9114 §4.1.1): the client knows it
   * may send it again, on this connection or another. Only before the response started.
   */
  reject(): void {
    if (this.headersSent) throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'reject() after the response started');
    this.headersSent = true;
    this.stream.abort(H3_REQUEST_REJECTED);
    this.destroy();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.flushHeaders();
    this.stream.sendData(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.flushHeaders();
    this.stream.sendFin(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Destroyed before it finished (by the handler, or because the stream failed): abort it.
    if (!this.writableFinished) this.stream.abort(H3_REQUEST_CANCELLED);
    callback(error);
  }
}

/** One request stream on the server. */
class ServerStream {
  readonly decoder: RequestStreamDecoder;
  req: ServerRequest | undefined;
  res: H3ServerResponse | undefined;
  paused = false;
  done = false;
  private outbox: Uint8Array[] = [];
  private finQueued = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly owner: H3ServerConnection,
    readonly id: number,
    maxFieldSectionSize: number,
  ) {
    this.decoder = new RequestStreamDecoder({ maxFieldSectionSize }, 'server');
  }

  resumeReading(): void {
    if (!this.paused) return;
    this.paused = false;
    this.owner.quic.resumeStream(this.id);
  }

  sendHead(status: number, headers: Record<string, string | number | readonly string[]>): void {
    this.write(encodeHeadersFrame(encodeFieldSection(toH3ResponseFields(status, headers))), false);
  }

  sendData(chunk: Uint8Array, callback: (error?: Error | null) => void): void {
    if (chunk.byteLength === 0) {
      callback();
      return;
    }
    this.write(Buffer.concat([encodeDataFrameHeader(chunk.byteLength), chunk]), false);
    this.whenFlushed(callback);
  }

  sendFin(callback: (error?: Error | null) => void): void {
    this.write(END_OF_STREAM_FRAME, true);
    this.whenFlushed(callback);
  }

  /** Aborts both directions (client cancelled, or the handler failed) and ends req and res. */
  abort(code: number): void {
    if (this.done) return;
    this.owner.quic.resetStream(this.id, code);
    this.owner.quic.stopSending(this.id, code);
    this.fail(new Error(`stream ${this.id} aborted (0x${code.toString(16)})`));
  }

  private whenFlushed(callback: (error?: Error | null) => void): void {
    if (this.outbox.length === 0 || this.done) callback();
    else this.wake = () => callback();
  }

  private write(bytes: Uint8Array, fin: boolean): void {
    if (this.done) return;
    if (this.outbox.length > 0) {
      if (bytes.byteLength > 0) this.outbox.push(bytes);
      this.finQueued ||= fin;
      return;
    }
    try {
      const accepted = this.owner.quic.write(this.id, bytes, fin);
      if (accepted < bytes.byteLength) {
        this.outbox.push(bytes.subarray(accepted));
        this.finQueued = fin;
      } else if (fin) {
        this.finishWrite();
      }
    } catch (err) {
      this.fail(err);
    }
  }

  flush(): void {
    while (this.outbox.length > 0 && !this.done) {
      const chunk = this.outbox[0] as Uint8Array;
      const last = this.outbox.length === 1;
      let accepted: number;
      try {
        accepted = this.owner.quic.write(this.id, chunk, last && this.finQueued);
      } catch (err) {
        this.fail(err);
        return;
      }
      if (accepted < chunk.byteLength) {
        this.outbox[0] = chunk.subarray(accepted);
        return;
      }
      this.outbox.shift();
      if (last && this.finQueued) this.finishWrite();
    }
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private finishWrite(): void {
    // The response is out; once the request side ended too the stream is done.
    this.done = true;
    this.owner.forget(this);
  }

  fail(err: unknown): void {
    if (this.done) return;
    this.done = true;
    this.outbox = [];
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
    const error = err instanceof Error ? err : new Error(String(err));
    // Like node:http: the request reports the error only to someone listening, the response
    // just closes; an unheard 'error' would crash the server for a client that went away.
    this.req?.destroy(this.req.listenerCount('error') > 0 ? error : undefined);
    this.res?.destroy();
    this.owner.forget(this);
  }
}

type PeerUniKind = 'pending' | 'control' | 'qpack' | 'ignored';

class H3ServerConnection implements QuicConnectionHandler {
  readonly streams = new Map<number, ServerStream>();
  private readonly peerUni = new Map<number, { kind: PeerUniKind; typeReader: UniStreamTypeReader; control: ControlStreamDecoder | undefined }>();
  private controlId: number | undefined;
  private peerControlSeen = false;
  private highestRequestId = -1;
  private goawaySent = false;
  /** Control-stream bytes flow control did not take yet (a GOAWAY under load): sent when writable. */
  private controlPending: Uint8Array | undefined;
  private readonly events: RequestStreamEvent[] = [];
  private readonly controlEvents: ControlEvent[] = [];

  constructor(
    readonly quic: QuicConnection,
    private readonly server: H3Server,
  ) {
    quic.setHandler(this);
  }

  onEstablished(): void {
    try {
      this.controlId = this.quic.openStream(false);
      const settings = new Map<number, number>([
        [SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0],
        [SETTINGS_QPACK_BLOCKED_STREAMS, 0],
        [SETTINGS_MAX_FIELD_SECTION_SIZE, this.server.maxFieldSectionSize],
      ]);
      this.writeControl(Buffer.concat([encodeStreamType(STREAM_TYPE_CONTROL), encodeSettingsFrame(settings)]));
    } catch {
      void this.quic.close(H3_STREAM_CREATION_ERROR, 'cannot open the control stream');
    }
  }

  onPeerStream(streamId: number, bidirectional: boolean): void {
    if (bidirectional) {
      if (this.goawaySent) {
        // §5.2: requests after our GOAWAY are rejected, unprocessed, so the client may retry.
        this.quic.resetStream(streamId, 0x10b /* H3_REQUEST_REJECTED */);
        this.quic.stopSending(streamId, 0x10b);
        return;
      }
      this.highestRequestId = Math.max(this.highestRequestId, streamId);
      this.streams.set(streamId, new ServerStream(this, streamId, this.server.maxFieldSectionSize));
      return;
    }
    this.peerUni.set(streamId, { kind: 'pending', typeReader: new UniStreamTypeReader(), control: undefined });
  }

  onStreamData(streamId: number, chunk: Uint8Array, fin: boolean): void {
    const stream = this.streams.get(streamId);
    if (stream !== undefined) {
      this.onRequestBytes(stream, chunk, fin);
      return;
    }
    const uni = this.peerUni.get(streamId);
    if (uni === undefined) return;
    let bytes = chunk;
    if (uni.kind === 'pending') {
      const type = uni.typeReader.push(chunk);
      if (type === undefined) return;
      bytes = type.rest;
      if (type.type === STREAM_TYPE_CONTROL) {
        if (this.peerControlSeen) {
          this.connectionError(H3_STREAM_CREATION_ERROR, 'a second control stream');
          return;
        }
        this.peerControlSeen = true;
        uni.kind = 'control';
        uni.control = new ControlStreamDecoder('server');
      } else if (type.type === 0x02 || type.type === 0x03) {
        uni.kind = 'qpack';
      } else if (type.type === 0x01) {
        this.connectionError(H3_STREAM_CREATION_ERROR, 'a client cannot open a push stream');
        return;
      } else {
        uni.kind = 'ignored';
        this.quic.stopSending(streamId, H3_STREAM_CREATION_ERROR);
      }
    }
    if (uni.kind === 'control' && uni.control !== undefined) {
      const events = this.controlEvents;
      events.length = 0;
      try {
        if (bytes.byteLength > 0) uni.control.push(bytes, events);
        for (const event of events) {
          // A client's GOAWAY carries a push id; push is never used, so it changes nothing here.
          if (event.kind === 'cancel_push') throw new MuxpoolError('MUXPOOL_ERR_H3_PROTOCOL', 'CANCEL_PUSH without push', { wireCode: 0x108 });
        }
        if (fin) uni.control.finish();
      } catch (err) {
        const wire = err instanceof MuxpoolError ? (err.wireCode ?? H3_FRAME_UNEXPECTED) : H3_FRAME_UNEXPECTED;
        this.connectionError(wire, err instanceof Error ? err.message : 'control stream error');
      }
      return;
    }
    if (fin && uni.kind === 'qpack') this.connectionError(H3_CLOSED_CRITICAL_STREAM, 'the client closed a QPACK stream');
  }

  private onRequestBytes(stream: ServerStream, chunk: Uint8Array, fin: boolean): void {
    const events = this.events;
    events.length = 0;
    try {
      if (chunk.byteLength > 0) stream.decoder.push(chunk, events);
      for (const event of events) {
        if (event.kind === 'headers') {
          if (stream.req === undefined) {
            const req = new ServerRequest(stream, event.fields);
            const res = new H3ServerResponse(stream);
            stream.req = req;
            stream.res = res;
            this.server.dispatch(req, res);
          }
          // Trailers are accepted and not surfaced: no handler of ours needs them.
        } else if (stream.req !== undefined && !stream.req.push(event.bytes) && !stream.paused) {
          stream.paused = true;
          this.quic.pauseStream(stream.id);
        }
      }
      if (fin) {
        stream.decoder.finish();
        if (stream.req === undefined) throw new MuxpoolError('MUXPOOL_ERR_H3_PROTOCOL', 'request stream ended without HEADERS', { wireCode: 0x10d });
        stream.req.push(null);
      }
    } catch (err) {
      const error = err instanceof MuxpoolError ? err : undefined;
      if (error?.code === 'MUXPOOL_ERR_QPACK' || (error?.code === 'MUXPOOL_ERR_H3_PROTOCOL' && error.wireCode !== 0x10e && error.wireCode !== 0x10d)) {
        this.connectionError(error.wireCode ?? H3_FRAME_UNEXPECTED, error.message);
        return;
      }
      stream.abort(error?.code === 'MUXPOOL_ERR_HEADERS_TOO_LARGE' ? 0x107 : (error?.wireCode ?? 0x10e));
      stream.fail(err);
    } finally {
      events.length = 0;
    }
  }

  onStreamReset(streamId: number, appErrorCode: number): void {
    const stream = this.streams.get(streamId);
    if (stream !== undefined) {
      stream.fail(new Error(`the client reset stream ${streamId} (0x${appErrorCode.toString(16)})`));
      return;
    }
    const uni = this.peerUni.get(streamId);
    if (uni !== undefined && (uni.kind === 'control' || uni.kind === 'qpack')) this.connectionError(H3_CLOSED_CRITICAL_STREAM, 'critical stream reset');
  }

  onStreamStopped(streamId: number): void {
    this.streams.get(streamId)?.abort(H3_REQUEST_CANCELLED);
  }

  onStreamWritable(streamId: number): void {
    if (streamId === this.controlId) this.writeControl(undefined);
    else this.streams.get(streamId)?.flush();
  }

  onClose(): void {
    for (const stream of [...this.streams.values()]) stream.fail(new Error('the connection closed'));
    this.server.connections.delete(this);
  }

  forget(stream: ServerStream): void {
    // The request side may still be open when the response ended; quiche collects the rest.
    // After GOAWAY the client closes the connection once its responses arrived: closing here,
    // when the last response is merely queued, would discard what quiche has not sent yet.
    this.streams.delete(stream.id);
  }

  /** §5.2: GOAWAY names the first request stream we will not process. */
  sendGoaway(): void {
    if (this.goawaySent || this.controlId === undefined) return;
    this.goawaySent = true;
    this.writeControl(encodeGoawayFrame(this.highestRequestId + 4));
  }

  /**
   * Writes to the control stream what is pending, then `frame`. A frame flow control does not
   * take whole waits for the stream to become writable: dropped, the client would never learn
   * of our GOAWAY while every request it sends is rejected (found by the soak).
   */
  private writeControl(frame: Uint8Array | undefined): void {
    if (this.controlId === undefined) return;
    const bytes = this.controlPending === undefined ? frame : frame === undefined ? this.controlPending : Buffer.concat([this.controlPending, frame]);
    if (bytes === undefined || bytes.length === 0) return;
    try {
      const accepted = this.quic.write(this.controlId, bytes, false);
      this.controlPending = accepted < bytes.length ? bytes.subarray(accepted) : undefined;
    } catch {
      // The connection is going away anyway.
      this.controlPending = undefined;
    }
  }

  private connectionError(code: number, reason: string): void {
    for (const stream of [...this.streams.values()]) stream.fail(new Error(reason));
    void this.quic.close(code, reason.slice(0, 100));
  }
}

export class H3Server {
  readonly port: number;
  readonly host: string;
  readonly maxFieldSectionSize: number;
  readonly connections = new Set<H3ServerConnection>();
  private readonly quicServer: QuicServer;
  private readonly handler: H3RequestHandler;

  private constructor(quicServer: QuicServer, options: H3ServerOptions) {
    this.quicServer = quicServer;
    this.port = quicServer.address.port;
    this.host = quicServer.address.host;
    this.handler = options.handler;
    this.maxFieldSectionSize = options.maxFieldSectionSize ?? DEFAULT_MAX_FIELD_SECTION;
  }

  static async listen(options: H3ServerOptions): Promise<H3Server> {
    const config = createQuicServerConfig({
      alpn: ['h3'],
      certChain: options.cert,
      key: options.key,
      initialMaxStreamsBidi: options.maxConcurrentStreams ?? 100,
      ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
      earlyData: options.earlyData === true,
      ...(options.clientCa !== undefined ? { clientCa: typeof options.clientCa === 'string' ? [options.clientCa] : options.clientCa } : {}),
    });
    // Connections can arrive as soon as the socket is bound, before the server object exists.
    const holder: { server?: H3Server } = {};
    const quicServer = await QuicServer.listen({
      config,
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      onConnection: (connection) => {
        const server = holder.server;
        if (server !== undefined) server.connections.add(new H3ServerConnection(connection, server));
        else connection.destroy();
      },
    });
    holder.server = new H3Server(quicServer, options);
    return holder.server;
  }

  /** @internal */
  dispatch(req: ServerRequest, res: H3ServerResponse): void {
    try {
      this.handler(req, res);
    } catch (err) {
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Sends GOAWAY on every connection: requests in flight finish, new ones are rejected. */
  goaway(): void {
    for (const connection of this.connections) connection.sendGoaway();
  }

  /**
   * GOAWAY, then a grace period in which clients finish their requests and close (ours close a
   * drained connection once its last response arrived), then every connection still open is
   * closed and the socket with them.
   */
  async close(): Promise<void> {
    this.goaway();
    const deadline = Date.now() + CLOSE_GRACE_MS;
    // Bounded wait: at most CLOSE_GRACE_MS in 10 ms steps.
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    await this.quicServer.close(H3_NO_ERROR);
  }
}
