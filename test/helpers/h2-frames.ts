/**
 * A raw HTTP/2 cleartext (prior knowledge) server that writes frames by hand (RFC 9113 §4.1), for
 * peers no real server would be: bodies cut before END_STREAM, resets at chosen points, credit
 * withheld. Header blocks use HPACK literals without indexing (RFC 7541 §6.2.2), no Huffman, so
 * no table state is needed.
 */
import { once } from 'node:events';
import net from 'node:net';

// The frame and HPACK-literal writers are h2-raw.ts's (one set for every raw HTTP/2 test).
export { FLAG, FRAME, dataFrame, frame, headerBlock, headersFrame, rstStreamFrame } from './h2-raw.js';
import { FLAG, FRAME, H2_ERROR, frame } from './h2-raw.js';
export const H2_CODE = H2_ERROR;

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** What the test does with each request: the socket to write frames on and the stream id. */
export type RawH2Handler = (socket: net.Socket, streamId: number, headersFrame: RawFrame) => void;

export interface RawH2Server {
  port: number;
  url: string;
  /** Every frame the client sent, in order (the preface excluded). */
  readonly received: RawFrame[];
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1: reads the client preface, answers its SETTINGS (our own SETTINGS are
 * `settings`, pairs of id and value) and ACKs, and calls `onRequest` for each HEADERS frame a
 * client opens a stream with.
 */
export async function startRawH2Server(onRequest: RawH2Handler, settings: ReadonlyArray<readonly [number, number]> = []): Promise<RawH2Server> {
  const sockets = new Set<net.Socket>();
  const received: RawFrame[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = Buffer.alloc(0);
    let prefaceSeen = false;
    const settingsPayload = Buffer.alloc(6 * settings.length);
    settings.forEach(([id, value], i) => {
      settingsPayload.writeUInt16BE(id, i * 6);
      settingsPayload.writeUInt32BE(value, i * 6 + 2);
    });
    socket.write(frame(FRAME.SETTINGS, 0, 0, settingsPayload));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!prefaceSeen) {
        if (buffer.length < PREFACE.length) return;
        prefaceSeen = true;
        buffer = buffer.subarray(PREFACE.length);
      }
      while (buffer.length >= 9) {
        const length = buffer.readUIntBE(0, 3);
        if (buffer.length < 9 + length) return;
        const f: RawFrame = { type: buffer[3] ?? 0, flags: buffer[4] ?? 0, streamId: buffer.readUInt32BE(5) & 0x7fffffff, payload: buffer.subarray(9, 9 + length) };
        buffer = buffer.subarray(9 + length);
        received.push(f);
        if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        else if (f.type === FRAME.PING && (f.flags & FLAG.ACK) === 0) socket.write(frame(FRAME.PING, FLAG.ACK, 0, f.payload));
        else if (f.type === FRAME.HEADERS && !socket.destroyed) onRequest(socket, f.streamId, f);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
