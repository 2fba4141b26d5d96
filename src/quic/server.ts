/**
 * `QuicServer`: one UDP socket, one driver per connection, found by destination connection id.
 *
 * A client's first Initial carries a DCID it chose at random; we answer with our own SCID and
 * the client switches to it. Both ids lead to the connection until it closes. Neither stateless
 * retry nor stateless reset is implemented: an unknown short-header packet is dropped.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { systemClock, type Clock } from '../core/clock.js';
import { MuxpoolError } from '../errors.js';
import { CONNECTION_ID_BYTES } from './client.js';
import type { QuicConfig } from './config.js';
import { QuicConnection, type DatagramTransport } from './connection.js';
import { loadQuiche, PacketType, type HostPort, type Quiche } from './native.js';

export interface QuicServerOptions {
  /** A config from `createQuicServerConfig`. */
  config: QuicConfig;
  /** Address to bind. Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /**
   * Called for each new connection, before its handshake completes, so the handler can be set
   * (`connection.setHandler`) before any stream data, 0-RTT included, is delivered.
   */
  onConnection(connection: QuicConnection): void;
  /** A connection whose handshake takes longer is dropped. Default 10 000. */
  handshakeTimeoutMs?: number;
  clock?: Clock;
}

/** RFC 9000 §14.1: a server MUST discard an Initial in a datagram smaller than 1200 bytes. */
const MIN_INITIAL_DATAGRAM = 1200;

function cidKey(cid: Uint8Array): string {
  return Buffer.from(cid.buffer, cid.byteOffset, cid.byteLength).toString('latin1');
}

/** The server side of one connection: sends through the shared socket. */
class ServerConnectionTransport implements DatagramTransport {
  constructor(
    private readonly server: QuicServer,
    readonly keys: string[],
  ) {}

  send(packet: Uint8Array, length: number, to: HostPort): void {
    this.server.sendDatagram(packet, length, to);
  }

  setActive(): void {
    // The listening socket keeps the process alive, whatever its connections do.
  }

  release(): void {
    this.server.forget(this);
  }
}

export class QuicServer {
  readonly address: HostPort;
  private readonly socket: dgram.Socket;
  private readonly options: QuicServerOptions;
  private readonly quiche: Quiche;
  private readonly clock: Clock;
  private readonly byCid = new Map<string, QuicConnection>();
  private readonly live = new Map<ServerConnectionTransport, QuicConnection>();
  private closing = false;
  private socketClosed: Promise<void> | undefined;

  /** Binds the socket and starts accepting. */
  static async listen(options: QuicServerOptions): Promise<QuicServer> {
    if (options.config.role !== 'server') {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'QuicServer needs a server config');
    }
    const host = options.host ?? '127.0.0.1';
    const family = isIP(host);
    if (family === 0) throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `QuicServer host must be an IP address, got ${host}`);
    const socket = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(options.port ?? 0, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new QuicServer(socket, options);
  }

  private constructor(socket: dgram.Socket, options: QuicServerOptions) {
    this.socket = socket;
    this.options = options;
    this.quiche = loadQuiche();
    this.clock = options.clock ?? systemClock;
    const bound = socket.address();
    this.address = { host: bound.address, port: bound.port };
    socket.on('message', (packet: Buffer, rinfo: dgram.RemoteInfo) => this.onMessage(packet, rinfo));
    // A send to a peer that went away (ICMP) must not take the server down.
    socket.on('error', () => {});
  }

  /** Connections not yet closed. */
  get connections(): number {
    return this.live.size;
  }

  /** @internal */
  sendDatagram(packet: Uint8Array, length: number, to: HostPort): void {
    if (this.socketClosed !== undefined) return;
    this.socket.send(packet, 0, length, to.port, to.host);
  }

  /** @internal a connection closed: its ids lead nowhere now. */
  forget(transport: ServerConnectionTransport): void {
    for (const key of transport.keys) this.byCid.delete(key);
    this.live.delete(transport);
  }

  private onMessage(packet: Buffer, rinfo: dgram.RemoteInfo): void {
    let header;
    try {
      header = this.quiche.Header.fromSlice(packet, CONNECTION_ID_BYTES);
    } catch {
      return;
    }
    const from: HostPort = { host: rinfo.address, port: rinfo.port };
    const known = this.byCid.get(cidKey(header.dcid));
    if (known !== undefined) {
      known.onDatagram(packet, from);
      return;
    }
    if (this.closing || header.ty !== PacketType.Initial) return;
    if (!this.quiche.versionIsSupported(header.version)) {
      // RFC 9000 §6.1: answer an unsupported version with the versions we speak.
      const out = Buffer.allocUnsafe(MIN_INITIAL_DATAGRAM);
      const length = this.quiche.negotiateVersion(header.scid, header.dcid, out);
      this.sendDatagram(out, length, from);
      return;
    }
    if (packet.length < MIN_INITIAL_DATAGRAM) return;
    this.accept(packet, from, header.dcid);
  }

  private accept(packet: Buffer, from: HostPort, clientDcid: Uint8Array): void {
    const scid = randomBytes(CONNECTION_ID_BYTES);
    let native;
    try {
      native = this.quiche.Connection.accept(scid, null, this.address, from, this.options.config.native);
    } catch {
      return;
    }
    const transport = new ServerConnectionTransport(this, [cidKey(clientDcid), cidKey(scid)]);
    const connection = new QuicConnection({
      native,
      config: this.options.config,
      transport,
      local: this.address,
      peer: from,
      clock: this.clock,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs ?? 10_000,
    });
    for (const key of transport.keys) this.byCid.set(key, connection);
    this.live.set(transport, connection);
    this.options.onConnection(connection);
    connection.onDatagram(packet, from);
  }

  /**
   * Stops accepting, closes every connection with `appErrorCode` and waits for them to drain,
   * then closes the socket.
   */
  async close(appErrorCode = 0, reason = ''): Promise<void> {
    this.closing = true;
    await Promise.all([...this.live.values()].map((connection) => connection.close(appErrorCode, reason)));
    await this.closeSocket();
  }

  /** Drops every connection now (one CONNECTION_CLOSE each) and closes the socket. */
  async destroy(): Promise<void> {
    this.closing = true;
    for (const connection of [...this.live.values()]) connection.destroy();
    await this.closeSocket();
  }

  private closeSocket(): Promise<void> {
    // Sends to an address go through a lookup that completes on a later tick; closing on the
    // next turn lets the last CONNECTION_CLOSE packets leave first.
    this.socketClosed ??= new Promise<void>((resolve) => setImmediate(() => this.socket.close(() => resolve())));
    return this.socketClosed;
  }
}
