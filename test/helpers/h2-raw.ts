/**
 * A raw HTTP/2 server over cleartext TCP (h2c, prior knowledge), for tests that need a peer that
 * breaks the rules: frames are written by hand (RFC 9113 §4.1) and header blocks use only HPACK
 * literal field lines without indexing and without Huffman coding (RFC 7541 §6.2.2), which any
 * decoder must take. The server answers the connection preface with its SETTINGS, acknowledges
 * the client's SETTINGS and PINGs, and hands every request (a HEADERS frame from the client) to the
 * test, which writes whatever frames it wants.
 */
import { once } from 'node:events';
import net from 'node:net';

export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

/** RFC 9113 §7 error codes. */
export const H2_ERROR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
} as const;

/** RFC 9113 §6.5.2 setting identifiers. */
export const SETTING = { MAX_CONCURRENT_STREAMS: 0x3, INITIAL_WINDOW_SIZE: 0x4, MAX_FRAME_SIZE: 0x5 } as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** A frame: 9-byte header (length, type, flags, stream id) and payload (RFC 9113 §4.1). */
export function frame(type: number, flags: number, streamId: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/**
 * An integer with an N-bit prefix (RFC 7541 §5.1; QPACK's is the same, RFC 9204 §4.1.1); `first`
 * holds the bits above the prefix.
 */
export function hpackInteger(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const bytes = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/**
 * A header block of literal field lines without indexing, new name, no Huffman (RFC 7541
 * §6.2.2: first byte 0000 0000). Names and values go out byte for byte, CR and LF included.
 */
export function headerBlock(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const nameBytes = Buffer.from(name, 'latin1');
    const valueBytes = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00]), hpackInteger(nameBytes.length, 7, 0), nameBytes, hpackInteger(valueBytes.length, 7, 0), valueBytes);
  }
  return Buffer.concat(parts);
}

export function headersFrame(streamId: number, fields: ReadonlyArray<readonly [string, string]>, endStream = false): Buffer {
  return frame(FRAME.HEADERS, FLAG.END_HEADERS | (endStream ? FLAG.END_STREAM : 0), streamId, headerBlock(fields));
}

export function dataFrame(streamId: number, data: string | Uint8Array, endStream = false): Buffer {
  return frame(FRAME.DATA, endStream ? FLAG.END_STREAM : 0, streamId, typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, payload);
}

export function goawayFrame(lastStreamId: number, code: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  payload.writeUInt32BE(code, 4);
  return frame(FRAME.GOAWAY, 0, 0, payload);
}

export function settingsFrame(entries: ReadonlyArray<readonly [number, number]> = []): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, payload);
}

export interface ParsedFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** One accepted connection: its socket, what the client sent, a way to write frames. */
export interface RawH2Connection {
  readonly socket: net.Socket;
  readonly index: number;
  /** Every frame the client sent, in order. */
  readonly frames: ParsedFrame[];
  write(...frames: Buffer[]): void;
}

export interface RawH2Behaviour {
  /** The server's SETTINGS entries (sent first). Default: none. */
  settings?: ReadonlyArray<readonly [number, number]>;
  /** Bytes sent instead of the SETTINGS frame (a broken preface). */
  preface?: Buffer;
  /** A request's HEADERS frame arrived (END_HEADERS set). */
  onRequest?(connection: RawH2Connection, streamId: number, requestIndex: number): void;
  /** Any other frame, after the automatic SETTINGS/PING acknowledgements. */
  onFrame?(connection: RawH2Connection, frame: ParsedFrame): void;
}

export interface RawH2Server {
  url: string;
  port: number;
  readonly connections: RawH2Connection[];
  close(): Promise<void>;
}

export async function startRawH2Server(behaviour: RawH2Behaviour): Promise<RawH2Server> {
  const connections: RawH2Connection[] = [];
  const sockets = new Set<net.Socket>();
  let requests = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const connection: RawH2Connection = {
      socket,
      index: connections.length,
      frames: [],
      write(...frames: Buffer[]) {
        if (!socket.destroyed && socket.writable) socket.write(Buffer.concat(frames));
      },
    };
    connections.push(connection);
    socket.write(behaviour.preface ?? settingsFrame(behaviour.settings ?? []));
    let buffered = Buffer.alloc(0);
    let prefaceSeen = false;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!prefaceSeen) {
        if (buffered.length < PREFACE.length) return;
        if (!buffered.subarray(0, PREFACE.length).equals(PREFACE)) {
          socket.destroy();
          return;
        }
        prefaceSeen = true;
        buffered = buffered.subarray(PREFACE.length);
      }
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) break;
        const parsed: ParsedFrame = {
          type: buffered[3] as number,
          flags: buffered[4] as number,
          streamId: buffered.readUInt32BE(5) & 0x7fffffff,
          payload: buffered.subarray(9, 9 + length),
        };
        buffered = buffered.subarray(9 + length);
        connection.frames.push(parsed);
        if (parsed.type === FRAME.SETTINGS && (parsed.flags & FLAG.ACK) === 0) connection.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        else if (parsed.type === FRAME.PING && (parsed.flags & FLAG.ACK) === 0) connection.write(frame(FRAME.PING, FLAG.ACK, 0, parsed.payload));
        else if (parsed.type === FRAME.HEADERS && (parsed.flags & FLAG.END_HEADERS) !== 0) behaviour.onRequest?.(connection, parsed.streamId, requests++);
        else behaviour.onFrame?.(connection, parsed);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    connections,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
