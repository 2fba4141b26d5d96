/**
 * A hand-driven HTTP/2 peer over cleartext (h2c, prior knowledge): a `net.Server` whose test
 * writes every frame itself, so it can break any rule on purpose, and reads every frame the
 * client sends (parsed with our pure frame reader, request blocks decoded with our HPACK).
 */
import { once } from 'node:events';
import net from 'node:net';
import {
  CLIENT_PREFACE,
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FRAME_HEADERS,
  FRAME_SETTINGS,
  type Frame,
  FrameReader,
  encodeData,
  encodeFrame,
  encodeHeaders,
  encodeSettings,
  encodeSettingsAck,
} from '../../src/protocol/h2/frames.js';
import { HpackDecoder, HpackEncoder } from '../../src/protocol/h2/hpack.js';

/** A frame the client sent, with the request fields decoded for HEADERS. */
export type ClientFrame = Frame & { fields?: string[] };

export interface RawPeer {
  readonly socket: net.Socket;
  /** Every frame the client sent so far, in order. */
  readonly frames: ClientFrame[];
  /** 'data' events seen: how many separate reads the client's bytes took. */
  readonly reads: number;
  /** Resolves with the first frame (from the start) that matches, waiting for it if needed. */
  waitFor(match: (frame: ClientFrame) => boolean, timeoutMs?: number): Promise<ClientFrame>;
  /** The client's next request (HEADERS) not yet taken with this method. */
  nextRequest(timeoutMs?: number): Promise<ClientFrame & { type: typeof FRAME_HEADERS }>;
  send(...frames: Uint8Array[]): void;
  /** HEADERS (HPACK-encoded with this peer's encoder) for a response or trailers. */
  headers(streamId: number, fields: string[], endStream: boolean): Uint8Array;
  /** A `:status` response with an optional body, END_STREAM on the last frame. */
  respond(streamId: number, status: number, body?: Uint8Array | string, extra?: string[]): void;
  readonly encoder: HpackEncoder;
  /** Resolves when the client closed its side. */
  readonly closed: Promise<void>;
}

export interface RawPeerOptions {
  /** The server's SETTINGS (sent at once); default: none (all defaults). */
  settings?: ReadonlyArray<readonly [number, number]>;
  /** Acknowledge the client's SETTINGS (default true). */
  ackSettings?: boolean;
  /** Send our SETTINGS at all (default true). */
  sendSettings?: boolean;
}

export interface RawServer {
  port: number;
  url: string;
  /** Peers in the order they connected. */
  readonly peers: RawPeer[];
  nextPeer(): Promise<RawPeer>;
  close(): Promise<void>;
}

export async function startRawH2Server(onPeer: (peer: RawPeer) => void | Promise<void> = () => {}, options: RawPeerOptions = {}): Promise<RawServer> {
  const peers: RawPeer[] = [];
  const peerWaiters: Array<(peer: RawPeer) => void> = [];
  const sockets = new Set<net.Socket>();
  let taken = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const peer = makePeer(socket, options);
    peers.push(peer);
    peerWaiters.shift()?.(peer);
    void onPeer(peer);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    peers,
    nextPeer() {
      const index = taken++;
      const ready = peers[index];
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((resolve) => peerWaiters.push(resolve));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function makePeer(socket: net.Socket, options: RawPeerOptions): RawPeer {
  const reader = new FrameReader({ maxFrameSize: 16_777_215, maxHeaderBlockBytes: 1 << 24 });
  const decoder = new HpackDecoder();
  const encoder = new HpackEncoder();
  const frames: ClientFrame[] = [];
  const waiters = new Set<{ match: (f: ClientFrame) => boolean; resolve: (f: ClientFrame) => void }>();
  let prefaceLeft = CLIENT_PREFACE.length;
  let reads = 0;
  let requestsTaken = 0;
  let failed: Error | undefined;
  socket.on('data', (chunk: Buffer) => {
    reads++;
    let bytes: Uint8Array = chunk;
    if (prefaceLeft > 0) {
      const take = Math.min(prefaceLeft, bytes.length);
      prefaceLeft -= take;
      bytes = bytes.subarray(take);
    }
    reader.push(bytes);
    try {
      for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
        const record: ClientFrame = frame.type === FRAME_HEADERS ? { ...frame, fields: decoder.decode(frame.block, { maxHeaderBytes: 1 << 20, maxHeaderCount: 1000 }).fields } : frame;
        frames.push(record);
        if (frame.type === FRAME_SETTINGS && !frame.ack && options.ackSettings !== false) socket.write(encodeSettingsAck());
        for (const waiter of [...waiters]) {
          if (waiter.match(record)) {
            waiters.delete(waiter);
            waiter.resolve(record);
          }
        }
      }
    } catch (err) {
      failed = err as Error;
    }
  });
  if (options.sendSettings !== false) socket.write(encodeSettings(options.settings ?? []));
  const closed = once(socket, 'close').then(() => undefined);
  const peer: RawPeer = {
    socket,
    frames,
    get reads() {
      return reads;
    },
    encoder,
    closed,
    waitFor(match, timeoutMs = 5000) {
      if (failed !== undefined) return Promise.reject(failed);
      const found = frames.find(match);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve: (f: ClientFrame) => (clearTimeout(timer), resolve(f)) };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`raw peer: no matching frame within ${timeoutMs} ms; got ${frames.map((f) => f.type).join(',')}`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    async nextRequest(timeoutMs) {
      const index = requestsTaken++;
      let seen = 0;
      const frame = await peer.waitFor((f) => f.type === FRAME_HEADERS && seen++ === index, timeoutMs);
      return frame as ClientFrame & { type: typeof FRAME_HEADERS };
    },
    send(...out) {
      if (!socket.destroyed) socket.write(Buffer.concat(out));
    },
    headers(streamId, fields, endStream) {
      return encodeHeaders(streamId, encoder.encode(fields), endStream, 16_384);
    },
    respond(streamId, status, body, extra = []) {
      const bytes = typeof body === 'string' ? new Uint8Array(Buffer.from(body)) : body;
      const hasBody = bytes !== undefined && bytes.length > 0;
      const out = [peer.headers(streamId, [':status', String(status), ...extra], !hasBody)];
      if (hasBody) {
        for (let offset = 0; offset < bytes.length; offset += 16_384) {
          const end = Math.min(bytes.length, offset + 16_384);
          out.push(encodeData(streamId, bytes.subarray(offset, end), end === bytes.length));
        }
      }
      peer.send(...out);
    },
  };
  return peer;
}

/** HEADERS frame written by hand (flags and block as given), for blocks the encoder would not make. */
export function rawHeaders(streamId: number, block: Uint8Array, endStream: boolean, endHeaders = true): Uint8Array {
  return encodeFrame(FRAME_HEADERS, (endStream ? FLAG_END_STREAM : 0) | (endHeaders ? FLAG_END_HEADERS : 0), streamId, block);
}
