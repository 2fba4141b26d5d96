/**
 * QUIC test kit: a handler that records what a connection reports and can wait for it, and a
 * loopback QuicServer that echoes every bidirectional stream back with backpressure.
 */
import { type GeneratedCertificates, generateCertificates } from '../../src/server/certs.js';
import {
  QuicServer,
  createQuicServerConfig,
  type QuicCloseInfo,
  type QuicConnection,
  type QuicConnectionHandler,
  type QuicTransportOptions,
} from '../../src/quic/index.js';

const WAIT_LIMIT_MS = 10_000;

let certsPromise: Promise<GeneratedCertificates> | undefined;
/** One CA and leaf (localhost, 127.0.0.1, ::1) shared by the QUIC tests. */
export function quicCerts(): Promise<GeneratedCertificates> {
  certsPromise ??= generateCertificates({ caName: 'muxpool QUIC test CA' });
  return certsPromise;
}

/** Records every event of one connection; `until` waits (bounded) for a condition on them. */
export class RecordingHandler implements QuicConnectionHandler {
  connection: QuicConnection | undefined;
  readonly events: string[] = [];
  readonly data = new Map<number, Buffer[]>();
  readonly finished = new Set<number>();
  readonly resets = new Map<number, number>();
  readonly stops = new Map<number, number>();
  readonly peerStreams: Array<{ id: number; bidirectional: boolean }> = [];
  readonly sessions: Uint8Array[] = [];
  credit: [number, number] = [-1, -1];
  closeInfo: QuicCloseInfo | undefined;
  private readonly watchers = new Set<() => void>();
  private readonly writable = new Map<number, () => void>();

  onEstablished(): void {
    this.record('established');
  }
  onStreamData(streamId: number, chunk: Uint8Array, fin: boolean): void {
    const list = this.data.get(streamId) ?? [];
    list.push(Buffer.from(chunk));
    this.data.set(streamId, list);
    if (fin) {
      this.finished.add(streamId);
      this.record(`fin ${streamId}`);
    } else {
      this.notify();
    }
  }
  onStreamReset(streamId: number, appErrorCode: number): void {
    this.resets.set(streamId, appErrorCode);
    this.record(`reset ${streamId} ${appErrorCode}`);
  }
  onStreamStopped(streamId: number, appErrorCode: number): void {
    this.stops.set(streamId, appErrorCode);
    this.writable.get(streamId)?.();
    this.record(`stopped ${streamId} ${appErrorCode}`);
  }
  onStreamWritable(streamId: number): void {
    this.writable.get(streamId)?.();
  }
  onPeerStream(streamId: number, bidirectional: boolean): void {
    this.peerStreams.push({ id: streamId, bidirectional });
    this.record(`peer-stream ${streamId} ${bidirectional ? 'bidi' : 'uni'}`);
  }
  onCreditChange(bidi: number, uni: number): void {
    this.credit = [bidi, uni];
    this.notify();
  }
  onSessionTicket(session: Uint8Array): void {
    this.sessions.push(session);
    this.record('session-ticket');
  }
  onClose(info: QuicCloseInfo): void {
    this.closeInfo = info;
    this.record(`close ${info.cause}`);
  }

  /** Everything received on a stream so far. */
  received(streamId: number): Buffer {
    return Buffer.concat(this.data.get(streamId) ?? []);
  }

  /** Resolves once `condition()` holds; rejects after 10 s naming `what`. */
  until(condition: () => boolean, what: string): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.watchers.delete(check);
        reject(new Error(`timed out waiting for ${what}; events: ${this.events.join(', ')}`));
      }, WAIT_LIMIT_MS);
      const check = (): void => {
        if (!condition()) return;
        clearTimeout(timer);
        this.watchers.delete(check);
        resolve();
      };
      this.watchers.add(check);
    });
  }

  /** Writes all of `data`, waiting for `onStreamWritable` whenever flow control cuts a write short. */
  async writeAll(streamId: number, data: Uint8Array, fin: boolean): Promise<void> {
    const connection = this.connection;
    if (connection === undefined) throw new Error('RecordingHandler.connection is not set');
    let offset = 0;
    for (let rounds = 0; rounds < 100_000; rounds++) {
      offset += connection.write(streamId, data.subarray(offset), fin);
      if (offset === data.length) return;
      await new Promise<void>((resolve) => this.writable.set(streamId, resolve));
      this.writable.delete(streamId);
    }
    throw new Error(`writeAll on stream ${streamId} did not finish`);
  }

  private record(event: string): void {
    this.events.push(event);
    this.notify();
  }

  private notify(): void {
    for (const check of [...this.watchers]) check();
  }
}

/** Echoes each bidirectional stream back, respecting flow control, until the peer's FIN. */
export class EchoHandler extends RecordingHandler {
  private readonly pending = new Map<number, { chunks: Buffer[]; fin: boolean }>();

  override onStreamData(streamId: number, chunk: Uint8Array, fin: boolean): void {
    super.onStreamData(streamId, chunk, fin);
    if ((streamId & 2) !== 0) return;
    const queue = this.pending.get(streamId) ?? { chunks: [], fin: false };
    queue.chunks.push(Buffer.from(chunk));
    queue.fin ||= fin;
    this.pending.set(streamId, queue);
    this.pump(streamId);
  }

  override onStreamWritable(streamId: number): void {
    super.onStreamWritable(streamId);
    this.pump(streamId);
  }

  private pump(streamId: number): void {
    const queue = this.pending.get(streamId);
    const connection = this.connection;
    if (queue === undefined || connection === undefined) return;
    while (queue.chunks.length > 0) {
      const chunk = queue.chunks[0] as Buffer;
      const last = queue.chunks.length === 1 && queue.fin;
      const accepted = connection.write(streamId, chunk, last);
      if (accepted < chunk.length) {
        queue.chunks[0] = chunk.subarray(accepted);
        return;
      }
      queue.chunks.shift();
      if (last) this.pending.delete(streamId);
    }
  }
}

export interface TestQuicServer {
  server: QuicServer;
  port: number;
  /** One handler per accepted connection, in order. */
  handlers: RecordingHandler[];
  close(): Promise<void>;
}

export interface TestQuicServerOptions extends QuicTransportOptions {
  certs?: GeneratedCertificates;
  host?: string;
  earlyData?: boolean;
  /** Default: an EchoHandler per connection. */
  makeHandler?: () => RecordingHandler;
}

/** A loopback QUIC server speaking ALPN h3 (no HTTP/3: streams are echoed back raw). */
export async function startQuicServer(options: TestQuicServerOptions = {}): Promise<TestQuicServer> {
  const { certs, host, earlyData, makeHandler, ...transport } = options;
  const c = certs ?? (await quicCerts());
  const config = createQuicServerConfig({
    ...transport,
    alpn: ['h3'],
    certChain: c.leafCert,
    key: c.leafKey,
    earlyData: earlyData === true,
  });
  const handlers: RecordingHandler[] = [];
  const server = await QuicServer.listen({
    config,
    ...(host !== undefined ? { host } : {}),
    onConnection(connection) {
      const handler = makeHandler?.() ?? new EchoHandler();
      handler.connection = connection;
      handlers.push(handler);
      connection.setHandler(handler);
    },
  });
  return { server, port: server.address.port, handlers, close: () => server.destroy() };
}
