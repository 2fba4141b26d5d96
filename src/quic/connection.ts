/**
 * The driver of one QUIC connection, client or server side.
 *
 * It runs one loop (STYLE.md): datagrams are fed to quiche as they arrive, and once per
 * event-loop turn the driver handles what they changed (handshake, readable and writable
 * streams, stream credit, session tickets), sends until quiche has nothing left, and re-arms
 * the timer. Writes never send by themselves; they schedule that turn, so a hundred streams
 * written in one tick leave in one burst of packets. A turn that handed stream data to the
 * handler sends at the end of its tick instead, so what the readers answer from their promise
 * continuations leaves in the packets that carry the ACK.
 *
 * quiche's own state is the truth; `state` follows it through the transitions in state.ts.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { Clock, Timer } from '../core/clock.js';
import { MuxpoolError, internalError } from '../errors.js';
import { isVersionNegotiation, splitCoalesced } from './coalesced.js';
import type { QuicConfig } from './config.js';
import { CRYPTO_ERROR_BASE, closeError, isNativeFailure, nativeError, nativeFailure, reasonText } from './error-map.js';
import { Shutdown, type HostPort, type NativeConnection, type RecvInfo } from './native.js';
import { transition, type QuicConnectionState } from './state.js';

/**
 * What the connection tells its user. Every method is optional; all run inside the driver's
 * turn and must not throw. They may call back into the connection (write, close, destroy).
 */
export interface QuicConnectionHandler {
  /** The handshake completed (the certificate was verified, when verification is on). */
  onEstablished?(): void;
  /**
   * Bytes arrived on a stream, in order. `fin`: this is the end of the stream (the chunk may be
   * empty). The chunk is the handler's to keep.
   */
  onStreamData?(streamId: number, chunk: Uint8Array, fin: boolean): void;
  /** The peer abandoned its sending side (RESET_STREAM): no more data will come. */
  onStreamReset?(streamId: number, appErrorCode: number): void;
  /** The peer asked us to stop sending (STOP_SENDING): further writes fail. */
  onStreamStopped?(streamId: number, appErrorCode: number): void;
  /** A stream whose write was cut short can take more bytes. */
  onStreamWritable?(streamId: number): void;
  /** The peer opened a stream; its data follows through `onStreamData`. */
  onPeerStream?(streamId: number, bidirectional: boolean): void;
  /** How many more streams the peer lets us open changed (MAX_STREAMS, or we opened one). */
  onCreditChange?(peerStreamsLeftBidi: number, peerStreamsLeftUni: number): void;
  /** A session to resume from later (`connect({ session })`): arrives once, after the handshake. */
  onSessionTicket?(session: Uint8Array): void;
  /** The connection can no longer be used. Called once; `QuicConnection.closed` settles later. */
  onClose?(info: QuicCloseInfo): void;
}

/** Why a connection ended, and with what CONNECTION_CLOSE (RFC 9000 §19.19). */
export interface QuicCloseInfo {
  cause: 'local-close' | 'destroyed' | 'local-error' | 'peer-close' | 'idle-timeout' | 'handshake-timeout';
  /** The close code is an application one (true) or a transport one (false). */
  isApp: boolean;
  errorCode: number;
  reason: string;
  /**
   * The failure, when it is one: undefined for our own `close()`, for a peer's application
   * close or NO_ERROR after the handshake (the application layer reads `errorCode`).
   */
  error: MuxpoolError | undefined;
}

/** How a connection reaches its peer. The client owns a socket; the server shares one. */
export interface DatagramTransport {
  /** Sends `packet[0, length)` to `to`. The driver never touches `packet` again. */
  send(packet: Uint8Array, length: number, to: HostPort): void;
  /** The connection is closed: free what belongs to it. Called once. */
  release(): void;
  /** Whether the connection has work in flight (a client keeps its socket referenced then). */
  setActive(active: boolean): void;
}

/** @internal everything the client or the server knows when it creates a driver. */
export interface QuicConnectionInit {
  native: NativeConnection;
  config: QuicConfig;
  transport: DatagramTransport;
  local: HostPort;
  peer: HostPort;
  clock: Clock;
  handler?: QuicConnectionHandler | undefined;
  handshakeTimeoutMs: number;
  /** Client side: the name or IP the server certificate must cover. */
  serverName?: string | undefined;
}

interface StreamRecord {
  /** More data or a FIN may still arrive. */
  readOpen: boolean;
  /** We may still write (no FIN accepted, no reset, no STOP_SENDING). */
  writeOpen: boolean;
  /** A write was cut short: tell the handler when capacity returns. */
  blocked: boolean;
  /** An empty write with FIN found no capacity; it is retried by the driver. */
  pendingFin: boolean;
  /** The handler asked us to stop delivering data for now. */
  paused: boolean;
}

/**
 * Peer-initiated stream ids of one kind that we are done with. Ids below `floor` are all done;
 * `done` holds the ones above it, so the set stays as small as the number of gaps.
 */
class RetiredIds {
  private floor: number;
  private readonly done = new Set<number>();
  constructor(first: number) {
    this.floor = first;
  }
  has(id: number): boolean {
    return id < this.floor || this.done.has(id);
  }
  add(id: number): void {
    this.done.add(id);
    while (this.done.delete(this.floor)) this.floor += 4;
  }
}

/** A stream read copies out of this buffer; reads never overlap (one turn at a time). */
const READ_SCRATCH = Buffer.allocUnsafe(64 * 1024);
/** Bounds per turn, so one busy connection cannot hold the event loop. */
const MAX_PACKETS_PER_TURN = 256;
const MAX_READS_PER_STREAM = 32;
/** Reads of 64 KiB that `consumeBuffered` may take: 64 MiB, more than any stream window we grant. */
const MAX_CONSUME_READS = 1024;
/**
 * Up to this many tracked streams, a turn asks each stream whether it is readable (or stopped)
 * rather than asking quiche for its readable (writable) set: the binding builds an iterator
 * object for a set, which costs about as much as 200 per-stream questions.
 */
const POLL_STREAMS_MAX = 128;
/** Turns after the handshake during which we look for a session ticket. */
const SESSION_TICKET_TURNS = 64;
/** Low-water mark for a blocked stream: wake the writer when this much fits (or everything). */
const WRITABLE_LOW_WATER = 16 * 1024;
/** RFC 8446 §6.2 bad_certificate, sent when our own IP SAN check fails. */
const ALERT_BAD_CERTIFICATE = 42;

const EMPTY = new Uint8Array(0);

/**
 * RFC 9000 §10.1: "each endpoint advertises a max_idle_timeout, but the effective value at an
 * endpoint is computed as the minimum of the two advertised values"; 0 (or absent) means none.
 * quiche also never lets it fall below 3 × PTO, so the real timeout is never shorter than this.
 */
export function agreedIdleTimeout(ownMs: number, peerMs: number): number {
  if (ownMs === 0) return peerMs;
  if (peerMs === 0) return ownMs;
  return Math.min(ownMs, peerMs);
}

function streamError(streamId: number, message: string, wireCode?: number): MuxpoolError {
  return new MuxpoolError(
    'MUXPOOL_ERR_QUIC_STREAM_CLOSED',
    `stream ${streamId}: ${message}`,
    wireCode === undefined ? {} : { wireCode, origin: 'remote' },
  );
}

export class QuicConnection {
  readonly role: 'client' | 'server';
  readonly localAddress: HostPort;
  /** The peer's address when the connection was made. */
  readonly remoteAddress: HostPort;
  /** quiche's trace id (hex of our source connection id), for logs. */
  readonly traceId: string;

  private native: NativeConnection | undefined;
  private readonly config: QuicConfig;
  private readonly transport: DatagramTransport;
  private readonly clock: Clock;
  private handler: QuicConnectionHandler | undefined;
  private readonly serverName: string | undefined;
  private current: QuicConnectionState = 'handshaking';

  private readonly streams = new Map<number, StreamRecord>();
  /** Tracked bidirectional streams: requests, which keep the process alive (see `updateActive`). */
  private bidiStreams = 0;
  /** The user has work waiting that needs no stream yet (`holdProcess`). */
  private userHold = false;
  private writeOpenCount = 0;
  /** Streams with a short write or a FIN waiting for room: only these need the writable scan. */
  private waitingWrites = 0;
  /** A datagram arrived since the last writable scan (it may carry STOP_SENDING or credit). */
  private receivedSinceScan = false;
  /** A datagram arrived since the last turn re-armed the timer. */
  private receivedSinceTurn = false;
  /** When the turn after the latest datagram ran (clock time): the idle timer restarted then. */
  private lastReceivedAt = 0;
  /** The idle timeout both sides agreed on (ms), known once established; 0: none. */
  private agreedIdleMs = 0;
  private nextBidi: number;
  private nextUni: number;
  private readonly retiredPeerBidi: RetiredIds;
  private readonly retiredPeerUni: RetiredIds;

  private sentCount = 0;
  /** Retry packets that reached us (RFC 9000 §17.2.5): quiche acts on them but counts none. */
  private retriesSeen = 0;
  private readonly recvInfo: RecvInfo;
  private spare: Buffer | undefined;
  private turnScheduled: NodeJS.Immediate | undefined;
  private inTurn = false;
  /** This turn handed the end of a stream (a FIN) to the handler. */
  private deliveredFin = false;
  /** A turn put its sending off to the end of this tick: a whole turn runs then (see `turn`). */
  private sendDeferred = false;
  /** Running that turn: it sends whatever it reads, so the ACK is put off once at most. */
  private inDeferredTurn = false;
  private timer: Timer | undefined;
  private timerDue = 0;
  private handshakeTimer: Timer | undefined;
  private active = false;

  private recvFailed = false;
  private lastCredit: [number, number] = [-1, -1];
  private sessionTurnsLeft = SESSION_TICKET_TURNS;
  private usedEarlyData = false;
  private wasEstablished = false;
  private negotiatedAlpn = '';
  private resumed = false;
  /** Set when we decided to close: by the user, or by the driver itself. */
  private closeCause: QuicCloseInfo['cause'] | undefined;
  private closeErrorOverride: MuxpoolError | undefined;
  private closeInfo: QuicCloseInfo | undefined;

  private waiter: { resolve: () => void; reject: (err: MuxpoolError) => void; earlyData: boolean } | undefined;
  private readonly closedPromise: Promise<QuicCloseInfo>;
  private resolveClosed!: (info: QuicCloseInfo) => void;

  /** @internal created by `connectQuic` and `QuicServer`. */
  constructor(init: QuicConnectionInit) {
    this.native = init.native;
    this.config = init.config;
    this.role = init.config.role;
    this.transport = init.transport;
    this.clock = init.clock;
    this.handler = init.handler;
    this.serverName = init.serverName;
    this.localAddress = init.local;
    this.remoteAddress = init.peer;
    this.recvInfo = { from: init.peer, to: init.local };
    this.traceId = init.native.traceId();
    // RFC 9000 §2.1: bit 0 of a stream id says who opened it (0 client), bit 1 its direction.
    const client = this.role === 'client';
    this.nextBidi = client ? 0 : 1;
    this.nextUni = client ? 2 : 3;
    this.retiredPeerBidi = new RetiredIds(client ? 1 : 0);
    this.retiredPeerUni = new RetiredIds(client ? 3 : 2);
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    if (init.handshakeTimeoutMs > 0) {
      this.handshakeTimer = this.clock.setTimer(() => this.onHandshakeTimeout(), init.handshakeTimeoutMs);
    }
  }

  // ---------------------------------------------------------------------------------------
  // State and facts

  get state(): QuicConnectionState {
    return this.current;
  }

  /** Settles once every resource is released, with why the connection ended. */
  get closed(): Promise<QuicCloseInfo> {
    return this.closedPromise;
  }

  /**
   * The certificates the peer presented, leaf first, DER (a server's, or a client's when the
   * server asked for one); empty before the handshake has them or after the connection closed.
   */
  peerCertificates(): Buffer[] {
    const chain = this.native?.peerCertChain() ?? null;
    return chain === null ? [] : chain.map((der) => Buffer.from(der.buffer, der.byteOffset, der.byteLength));
  }

  /** The ALPN protocol agreed on, or '' before the handshake. */
  get alpn(): string {
    return this.negotiatedAlpn;
  }

  /** Bidirectional streams we may still open before the peer raises its limit. */
  get peerStreamsLeftBidi(): number {
    return this.native?.peerStreamsLeftBidi() ?? 0;
  }

  get peerStreamsLeftUni(): number {
    return this.native?.peerStreamsLeftUni() ?? 0;
  }

  /**
   * The handshake resumed an earlier session. False after a 0-RTT attempt means the server
   * refused the early data; quiche then resent it in 1-RTT packets on its own.
   */
  get isResumed(): boolean {
    return this.resumed;
  }

  /** Streams are being sent as 0-RTT data right now (client, before the handshake completes). */
  get isInEarlyData(): boolean {
    return this.native?.isInEarlyData() ?? false;
  }

  /** True once this connection sent or accepted 0-RTT data. */
  get earlyDataUsed(): boolean {
    return this.usedEarlyData;
  }

  /**
   * @internal What the interop runner and tests check that no public API reports: Retry packets
   * received during the handshake, and quiche's packet counters (undefined once closed).
   */
  get diagnostics(): { retries: number; packets: { recv: number; sent: number; lost: number; retrans: number } | undefined; peerInitialMaxStreamsBidi: number | undefined } {
    const stats = this.native?.stats();
    return {
      retries: this.retriesSeen,
      packets: stats === undefined ? undefined : { recv: stats.recv, sent: stats.sent, lost: stats.lost, retrans: stats.retrans },
      peerInitialMaxStreamsBidi: stats?.peerInitialMaxStreamsBidi,
    };
  }

  /** The latest session for resumption, if the peer sent a ticket. */
  get session(): Uint8Array | undefined {
    return this.native?.session() ?? undefined;
  }

  /**
   * When (clock time) the idle timeout closes this connection if nothing arrives before, give or
   * take the few ms a turn takes: a connection retired a margin before it is not handed out when
   * the peer may already have dropped it. Undefined before the handshake, once closed, and when
   * neither side has an idle timeout.
   */
  get idleDeadline(): number | undefined {
    if (this.current !== 'established' || this.agreedIdleMs === 0) return undefined;
    return this.lastReceivedAt + this.agreedIdleMs;
  }

  /** The idle timeout both sides agreed on (ms), once established; undefined when there is none. */
  get idleTimeoutMs(): number | undefined {
    return this.agreedIdleMs === 0 ? undefined : this.agreedIdleMs;
  }

  /**
   * Datagrams sent so far. Unchanged since a stream was written to means none of its bytes left:
   * a request the connection failed before that provably never reached the peer.
   */
  get packetsSent(): number {
    return this.sentCount;
  }

  /** Streams the driver still tracks (open in at least one direction). */
  get openStreams(): number {
    return this.streams.size;
  }

  /** Why the connection ended, once it did. */
  get closeReason(): QuicCloseInfo | undefined {
    return this.closeInfo;
  }

  /**
   * Keeps the process alive while `hold` is true even without an open bidirectional stream: for
   * work that waits for the connection (a request held until the peer grants stream credit).
   */
  holdProcess(hold: boolean): void {
    if (this.userHold === hold) return;
    this.userHold = hold;
    this.updateActive();
  }

  setHandler(handler: QuicConnectionHandler | undefined): void {
    this.handler = handler;
    // Data that waited in quiche for a handler is delivered on the next turn.
    this.scheduleTurn();
  }

  // ---------------------------------------------------------------------------------------
  // Streams

  /** Opens a stream and returns its id. Throws QUIC_STREAM_LIMIT when the peer allows no more. */
  openStream(bidirectional = true): number {
    const native = this.usableNative('open a stream');
    const left = bidirectional ? native.peerStreamsLeftBidi() : native.peerStreamsLeftUni();
    if (left <= 0) {
      throw new MuxpoolError(
        'MUXPOOL_ERR_QUIC_STREAM_LIMIT',
        `the peer allows no more ${bidirectional ? 'bidirectional' : 'unidirectional'} streams right now`,
      );
    }
    const id = bidirectional ? this.nextBidi : this.nextUni;
    try {
      // An empty write creates the stream in quiche (and counts it against the peer's limit)
      // without putting anything on the wire.
      native.streamSend(id, EMPTY, false);
    } catch (cause) {
      if (isNativeFailure(cause, 'StreamLimit')) {
        throw new MuxpoolError('MUXPOOL_ERR_QUIC_STREAM_LIMIT', 'the peer allows no more streams right now', { cause });
      }
      throw nativeError(`open stream ${id}`, cause);
    }
    if (bidirectional) this.nextBidi += 4;
    else this.nextUni += 4;
    this.streams.set(id, { readOpen: bidirectional, writeOpen: true, blocked: false, pendingFin: false, paused: false });
    if (bidirectional) this.bidiStreams++;
    this.writeOpenCount++;
    this.updateActive();
    return id;
  }

  /**
   * Queues bytes on a stream; returns how many were accepted (flow control may take fewer).
   * When fewer were taken, `onStreamWritable` says when to write the rest. `fin` takes effect
   * only when every byte was accepted. Prefer ending a stream with data: quiche 0.18 does not
   * retransmit a lost FIN sent alone once the bytes before it were acknowledged (HTTP/3 ends
   * its streams with an empty reserved frame for this, see `END_OF_STREAM_FRAME`).
   */
  write(streamId: number, data: Uint8Array, fin = false): number {
    const native = this.usableNative('write');
    const record = this.streams.get(streamId);
    if (record === undefined || !record.writeOpen) throw streamError(streamId, 'not open for writing');
    if (record.pendingFin) throw streamError(streamId, 'already finished');
    let accepted: number | null;
    try {
      accepted = native.streamSend(streamId, data, fin);
    } catch (cause) {
      const failure = nativeFailure(cause);
      if (failure?.name === 'StreamStopped') {
        this.closeWrite(streamId, record);
        throw streamError(streamId, 'the peer asked us to stop sending (STOP_SENDING)', failure.arg);
      }
      if (failure?.name === 'InvalidStreamState') {
        this.closeWrite(streamId, record);
        throw streamError(streamId, 'no longer exists');
      }
      throw nativeError(`write to stream ${streamId}`, cause);
    }
    const written = accepted ?? 0;
    if (written === data.length && fin) {
      if (accepted === null) {
        // Only an empty FIN can be refused whole; the driver sends it when room returns.
        if (!record.blocked && !record.pendingFin) this.waitingWrites++;
        record.pendingFin = true;
      } else {
        this.closeWrite(streamId, record);
      }
    } else if (written < data.length) {
      if (!record.blocked && !record.pendingFin) this.waitingWrites++;
      record.blocked = true;
      try {
        native.streamWritable(streamId, Math.min(data.length - written, WRITABLE_LOW_WATER));
      } catch {
        // The stream is stopped or gone; the next turn's writable scan reports it.
      }
    }
    this.scheduleTurn();
    return written;
  }

  /** Abandons our sending side (RESET_STREAM with `appErrorCode`). */
  resetStream(streamId: number, appErrorCode: number): void {
    const record = this.streams.get(streamId);
    if (record === undefined || !record.writeOpen || this.native === undefined) return;
    this.shutdown(streamId, Shutdown.Write, appErrorCode);
    this.closeWrite(streamId, record);
    this.scheduleTurn();
  }

  /** Asks the peer to stop sending (STOP_SENDING with `appErrorCode`); data still queued is dropped. */
  stopSending(streamId: number, appErrorCode: number): void {
    const record = this.streams.get(streamId);
    const native = this.native;
    if (record === undefined || !record.readOpen || native === undefined) return;
    // quiche 0.18 drops what a stream holds unread on a read shutdown without counting it as
    // consumed, so its connection-level credit (MAX_DATA, RFC 9000 §4.1) never comes back:
    // enough dropped bodies and the peer can send nothing on any stream until the idle timeout.
    // Reading the bytes out first counts them; what arrives after the shutdown quiche counts
    // itself. A stream that ended meanwhile needs no STOP_SENDING.
    if (this.consumeBuffered(native, streamId)) this.shutdown(streamId, Shutdown.Read, appErrorCode);
    record.readOpen = false;
    this.forgetIfDone(streamId, record);
    this.scheduleTurn();
  }

  /** Stops delivering a stream's data; quiche keeps it, and flow control slows the peer. */
  pauseStream(streamId: number): void {
    const record = this.streams.get(streamId);
    if (record !== undefined) record.paused = true;
  }

  resumeStream(streamId: number): void {
    const record = this.streams.get(streamId);
    if (record === undefined || !record.paused) return;
    record.paused = false;
    this.scheduleTurn();
  }

  /** RFC 9218 priority of a stream we send on (urgency 0–7, lower first). */
  setStreamPriority(streamId: number, urgency: number, incremental: boolean): void {
    if (this.native === undefined || !this.streams.has(streamId)) return;
    try {
      this.native.streamPriority(streamId, urgency, incremental);
    } catch (cause) {
      throw nativeError(`set the priority of stream ${streamId}`, cause);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Closing

  /**
   * Graceful close: sends CONNECTION_CLOSE with an application error code, then drains (RFC
   * 9000 §10.2). Resolves once every resource is released.
   */
  close(appErrorCode = 0, reason = ''): Promise<QuicCloseInfo> {
    const native = this.native;
    if (native === undefined || this.current === 'draining') return this.closedPromise;
    this.closeCause ??= 'local-close';
    if (native.close(true, appErrorCode, new Uint8Array(Buffer.from(reason, 'utf8'))) === null) {
      // quiche was already closing on its own; the turn reports what it has.
      this.closeCause = undefined;
    }
    this.runOrScheduleTurn();
    return this.closedPromise;
  }

  /**
   * Immediate close: one CONNECTION_CLOSE (NO_ERROR) is sent if the connection was open, then
   * everything is released now, without draining. `err` is what `onClose` reports.
   */
  destroy(err?: MuxpoolError): void {
    const native = this.native;
    if (native === undefined) return;
    if (this.closeCause === undefined || this.closeCause === 'local-close') {
      this.closeCause = 'destroyed';
      this.closeErrorOverride = err;
    }
    if (this.current !== 'draining' && native.close(false, 0, EMPTY) !== null) this.sendPackets(native);
    this.finish();
  }

  // ---------------------------------------------------------------------------------------
  // Driver: called by the transport and by timers

  /** @internal Feeds one datagram; the turn that follows handles what it changed. */
  onDatagram(packet: Uint8Array, from?: HostPort): void {
    const native = this.native;
    if (native === undefined) return;
    let info = this.recvInfo;
    if (from !== undefined && (from.port !== info.from.port || from.host !== info.from.host)) {
      info = { from, to: this.localAddress };
    }
    this.receivedSinceScan = true;
    this.receivedSinceTurn = true;
    // RFC 9000 §17.2: long header (0x80), fixed bit (0x40), type 3 (0x30) is a Retry; these
    // bits are not header-protected. Only a client in its handshake can get one. Version 0 is a
    // Version Negotiation packet (§17.2.1), whose other first-byte bits are arbitrary.
    if (this.current === 'handshaking' && ((packet[0] ?? 0) & 0xf0) === 0xf0 && !isVersionNegotiation(packet)) this.retriesSeen++;
    // A client's datagram of several packets goes in packet by packet (coalesced.ts: quiche
    // drops the rest of a datagram after a packet it cannot decrypt), each on its own, so one
    // that quiche refuses does not take the others with it. Not a server's: RFC 9000 §14.1 has
    // it judge a client's Initial by the size of the whole datagram.
    const parts = this.role === 'client' ? splitCoalesced(packet) : undefined;
    if (parts === undefined) this.recvPacket(native, packet, info);
    else for (const part of parts) this.recvPacket(native, part, info);
    this.scheduleTurn();
  }

  private recvPacket(native: NativeConnection, packet: Uint8Array, info: RecvInfo): void {
    try {
      native.recv(packet, info);
    } catch {
      // A packet quiche cannot use is simply dropped; a fatal one leaves a local error that
      // the turn reports.
      this.recvFailed = true;
    }
  }

  /** @internal The transport failed for good (socket error): the connection ends now. */
  onTransportError(err: MuxpoolError): void {
    this.destroy(err);
  }

  /** @internal Sends the first flight (client) and starts the loop. */
  start(): void {
    this.runTurn();
  }

  /** @internal Resolves on establishment (or in 0-RTT when asked); rejects if it ends first. */
  waitEstablished(earlyData: boolean): Promise<void> {
    if (this.current === 'established') return Promise.resolve();
    if (this.closeInfo !== undefined) {
      return Promise.reject(this.closeInfo.error ?? new MuxpoolError('MUXPOOL_ERR_QUIC', 'the QUIC connection closed'));
    }
    if (earlyData && this.native?.isInEarlyData() === true) {
      this.usedEarlyData = true;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject, earlyData };
    });
  }

  private usableNative(action: string): NativeConnection {
    const native = this.native;
    if (native === undefined || this.current === 'draining' || this.current === 'closed') {
      throw new MuxpoolError('MUXPOOL_ERR_QUIC', `cannot ${action}: the QUIC connection is ${this.current}`);
    }
    if (this.current === 'handshaking' && !native.isInEarlyData()) {
      throw new MuxpoolError('MUXPOOL_ERR_QUIC', `cannot ${action}: the QUIC handshake is not complete`);
    }
    return native;
  }

  private shutdown(streamId: number, direction: number, appErrorCode: number): void {
    try {
      this.native?.streamShutdown(streamId, direction, appErrorCode);
    } catch (cause) {
      // Shutting down a stream quiche already collected is not an error worth raising.
      if (!isNativeFailure(cause, 'InvalidStreamState')) throw nativeError(`shut down stream ${streamId}`, cause);
    }
  }

  private closeWrite(streamId: number, record: StreamRecord): void {
    if (record.writeOpen) {
      record.writeOpen = false;
      this.writeOpenCount--;
    }
    if (record.blocked || record.pendingFin) this.waitingWrites--;
    record.blocked = false;
    record.pendingFin = false;
    this.forgetIfDone(streamId, record);
  }

  private forgetIfDone(streamId: number, record: StreamRecord): void {
    if (record.readOpen || record.writeOpen) return;
    this.streams.delete(streamId);
    if ((streamId & 2) === 0) this.bidiStreams--;
    if (!this.isLocalStream(streamId)) {
      if ((streamId & 2) === 0) this.retiredPeerBidi.add(streamId);
      else this.retiredPeerUni.add(streamId);
    }
    this.updateActive();
  }

  private isLocalStream(streamId: number): boolean {
    return (streamId & 1) === (this.role === 'client' ? 0 : 1);
  }

  private scheduleTurn(): void {
    // A deferred send runs a whole turn later in this tick: it does what this one would.
    if (this.turnScheduled !== undefined || this.sendDeferred || this.native === undefined) return;
    this.turnScheduled = setImmediate(this.onScheduledTurn);
  }

  private readonly onScheduledTurn = (): void => {
    this.turnScheduled = undefined;
    this.runTurn();
  };

  /**
   * Node runs a tick queued from a microtask only once the microtask queue is empty: after every
   * continuation the turn resumed, however many awaits deep, as long as they stay in this tick.
   */
  private readonly deferSend = (): void => {
    process.nextTick(this.onDeferredSend);
  };

  private readonly onDeferredSend = (): void => {
    this.sendDeferred = false;
    this.inDeferredTurn = true;
    try {
      this.runTurn();
    } finally {
      this.inDeferredTurn = false;
    }
  };

  private runOrScheduleTurn(): void {
    if (this.inTurn) this.scheduleTurn();
    else this.runTurn();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    const native = this.native;
    if (native === undefined) return;
    native.onTimeout();
    this.runOrScheduleTurn();
  };

  private onHandshakeTimeout(): void {
    this.handshakeTimer = undefined;
    const native = this.native;
    if (native === undefined || this.current !== 'handshaking') return;
    this.closeCause = 'handshake-timeout';
    // RFC 9000 §10.2: a CONNECTION_CLOSE lets a slow peer free its state at once.
    if (native.close(false, 0, EMPTY) !== null) this.sendPackets(native);
    this.finish();
  }

  /** One turn of the loop. Never re-entered: handlers that write or close schedule another. */
  private runTurn(): void {
    const native = this.native;
    if (native === undefined || this.inTurn) return;
    this.inTurn = true;
    try {
      this.turn(native);
    } finally {
      this.inTurn = false;
    }
  }

  private turn(native: NativeConnection): void {
    let more = false;
    this.deliveredFin = false;
    if (this.current === 'handshaking' && native.isEstablished()) {
      if (!this.establish(native)) return;
    }
    const handler = this.handler;
    const early = this.current === 'handshaking' && native.isInEarlyData();
    if (early) this.usedEarlyData = true;
    if (handler !== undefined && (this.current === 'established' || early)) {
      more = this.readStreams(native, handler);
      if (this.native === undefined) return;
      // The scan costs native calls per stream; a turn that only sends (after a write) cannot
      // have changed what it looks for unless a write is waiting for room. With none waiting,
      // only a STOP_SENDING can have changed anything, and asking the few open streams is cheaper.
      if (this.writeOpenCount > 0 && (this.waitingWrites > 0 || this.receivedSinceScan)) {
        this.receivedSinceScan = false;
        if (this.waitingWrites > 0 || this.streams.size > POLL_STREAMS_MAX) this.scanWritable(native, handler);
        else this.checkStopped(native, handler);
      }
      if (this.native === undefined) return;
      this.reportCredit(native, handler);
      if (this.native === undefined) return;
      if (
        this.role === 'client' &&
        this.current === 'established' &&
        this.sessionTurnsLeft > 0 &&
        handler.onSessionTicket !== undefined
      ) {
        this.sessionTurnsLeft--;
        const session = native.session();
        if (session !== null) {
          this.sessionTurnsLeft = 0;
          handler.onSessionTicket(session);
          if (this.native === undefined) return;
        }
      }
    }
    if (this.deliveredFin && !more && !this.inDeferredTurn && this.current === 'established') {
      // A stream ended: a response (or request) is complete, and its promises resolve in
      // continuations that run after this turn, in this tick. A reader that answers at once
      // (the next request of a keep-alive loop, a server's response) writes then. Sending at
      // the end of the tick puts those bytes in the packet that carries our ACK, rather than an
      // ACK now and the request in another packet a loop iteration later: one datagram and one
      // turn less per request. Only at a stream's end: mid-stream data is acknowledged at once,
      // so a slow reader's own work never holds ACKs (RFC 9000 §13.2.1 wants them within
      // max_ack_delay). A turn that left data behind (`more`) sends at once too.
      this.deliveredFin = false;
      if (this.turnScheduled !== undefined) clearImmediate(this.turnScheduled);
      this.turnScheduled = undefined;
      if (!this.sendDeferred) queueMicrotask(this.deferSend);
      this.sendDeferred = true;
    } else if (!this.sendPackets(native)) {
      more = true;
    }
    if (this.current === 'handshaking' && this.waiter?.earlyData === true && native.isInEarlyData()) {
      // 0-RTT: quiche only knows it is in early data once the first flight went out.
      this.usedEarlyData = true;
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve();
    }
    if (native.isClosed()) {
      this.finish();
      return;
    }
    if (this.current !== 'draining' && (native.isDraining() || (this.recvFailed && native.localError() !== null))) {
      this.enterDraining(native);
      if (this.native === undefined) return;
      // A handshake that failed has nothing worth draining for: our CONNECTION_CLOSE went out
      // in this turn's packets, and the peer holds no state we could still help it free. The
      // same when the peer's close carries a TLS alert (RFC 9001 §4.8): a server that refused
      // our client certificate after our side of the handshake completed never held the
      // connection as established either.
      if (!this.wasEstablished || this.closeInfo?.error?.code === 'MUXPOOL_ERR_TLS_CLIENT_CERT') {
        this.finish();
        return;
      }
    }
    this.recvFailed = false;
    this.armTimer(native);
    this.updateActive();
    if (more) this.scheduleTurn();
  }

  /** handshaking → established; false when our own certificate check closed the connection. */
  private establish(native: NativeConnection): boolean {
    if (this.role === 'client' && this.config.verifyPeer && this.serverName !== undefined && isIP(this.serverName) !== 0) {
      // quiche checks DNS names only; an IP literal is checked against the IP SANs here,
      // before anything is reported as established.
      if (this.certificateNameMismatch(native)) {
        this.closeCause = 'local-error';
        this.closeErrorOverride = new MuxpoolError(
          'MUXPOOL_ERR_TLS_HOSTNAME',
          `the server certificate does not cover ${this.serverName}`,
          { wireCode: CRYPTO_ERROR_BASE + ALERT_BAD_CERTIFICATE, origin: 'local' },
        );
        native.close(false, CRYPTO_ERROR_BASE + ALERT_BAD_CERTIFICATE, EMPTY);
        this.sendPackets(native);
        this.finish();
        return false;
      }
    }
    this.current = transition(this.current, 'established', this.traceId);
    this.wasEstablished = true;
    const proto = native.applicationProto();
    this.negotiatedAlpn = Buffer.from(proto.buffer, proto.byteOffset, proto.byteLength).toString('latin1');
    this.resumed = native.isResumed();
    this.agreedIdleMs = agreedIdleTimeout(this.config.idleTimeoutMs, native.stats().peerMaxIdleTimeout);
    this.lastReceivedAt = this.clock.now();
    this.handshakeTimer?.cancel();
    this.handshakeTimer = undefined;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve();
    this.handler?.onEstablished?.();
    return this.native !== undefined;
  }

  /** True when the peer's leaf certificate is known and does not cover `serverName`. */
  private certificateNameMismatch(native: NativeConnection): boolean {
    const name = this.serverName;
    const leaf = native.peerCertChain()?.[0];
    if (name === undefined || leaf === undefined) return false;
    try {
      const cert = new X509Certificate(Buffer.from(leaf.buffer, leaf.byteOffset, leaf.byteLength));
      return (isIP(name) !== 0 ? cert.checkIP(name) : cert.checkHost(name)) === undefined;
    } catch {
      return false;
    }
  }

  /** Delivers readable streams; true when data was left behind by the per-turn bounds. */
  private readStreams(native: NativeConnection, handler: QuicConnectionHandler): boolean {
    if (!native.isReadable()) return false;
    let more = false;
    // Most turns read streams we already track: ask each of them. quiche's readable set is
    // consulted only for what that leaves: a new peer stream, one we stopped reading (to
    // consume a reset). Tracked open streams have had their turn then, even one left behind
    // by the per-turn bounds (read next turn), so a busy stream never hides a new one.
    const polled = this.streams.size <= POLL_STREAMS_MAX;
    if (polled) {
      for (const [id, record] of this.streams) {
        if (!record.readOpen || record.paused || !native.streamReadable(id)) continue;
        if (this.readStream(native, handler, id, record)) more = true;
        if (this.native === undefined) return false;
      }
      if (!native.isReadable()) return more;
    }
    for (const id of native.readable()) {
      let record = this.streams.get(id);
      let fresh = false;
      if (record === undefined) {
        const bidi = (id & 2) === 0;
        const retired = this.isLocalStream(id) || (bidi ? this.retiredPeerBidi : this.retiredPeerUni).has(id);
        if (retired) {
          // A stream we are done with (say, a RESET_STREAM after our STOP_SENDING): consume it so
          // quiche can collect it.
          this.discard(native, id);
          continue;
        }
        record = { readOpen: true, writeOpen: bidi, blocked: false, pendingFin: false, paused: false };
        this.streams.set(id, record);
        fresh = true;
        if (bidi) {
          this.writeOpenCount++;
          this.bidiStreams++;
        }
        handler.onPeerStream?.(id, bidi);
        if (this.native === undefined) return false;
      }
      if (!record.readOpen) {
        this.discard(native, id);
        continue;
      }
      if (record.paused || (polled && !fresh)) continue;
      if (this.readStream(native, handler, id, record)) more = true;
      if (this.native === undefined) return false;
    }
    return more;
  }

  private readStream(native: NativeConnection, handler: QuicConnectionHandler, id: number, record: StreamRecord): boolean {
    for (let reads = 0; reads < MAX_READS_PER_STREAM; reads++) {
      let result: [number, boolean] | null;
      try {
        result = native.streamRecv(id, READ_SCRATCH);
      } catch (cause) {
        const failure = nativeFailure(cause);
        record.readOpen = false;
        if (failure?.name === 'StreamReset') {
          handler.onStreamReset?.(id, failure.arg ?? 0);
        } else if (failure?.name !== 'InvalidStreamState') {
          this.forgetIfDone(id, record);
          throw nativeError(`read stream ${id}`, cause);
        }
        this.forgetIfDone(id, record);
        return false;
      }
      if (result === null) return false;
      const [length, fin] = result;
      const chunk = Buffer.allocUnsafe(length);
      READ_SCRATCH.copy(chunk, 0, 0, length);
      if (fin) {
        record.readOpen = false;
        this.deliveredFin = true;
      }
      handler.onStreamData?.(id, chunk, fin);
      if (fin) {
        this.forgetIfDone(id, record);
        return false;
      }
      if (this.native === undefined || record.paused || !record.readOpen) return false;
    }
    return true;
  }

  /**
   * Reads and drops what quiche holds for a stream, so the bytes count as consumed for flow
   * control. False when the stream ended on the way (FIN or reset): nothing more will arrive.
   */
  private consumeBuffered(native: NativeConnection, id: number): boolean {
    try {
      // Bounded by the stream's flow-control window, which caps what quiche can hold.
      for (let reads = 0; reads < MAX_CONSUME_READS; reads++) {
        const result = native.streamRecv(id, READ_SCRATCH);
        if (result === null) return true;
        if (result[1]) return false;
      }
      return true;
    } catch {
      // Reset by the peer, or collected: either way the stream has ended.
      return false;
    }
  }

  private discard(native: NativeConnection, id: number): void {
    try {
      for (let reads = 0; reads < MAX_READS_PER_STREAM; reads++) {
        if (native.streamRecv(id, READ_SCRATCH) === null) return;
      }
    } catch {
      // Reset or collected: either way there is nothing left to consume.
    }
  }

  /** Finds streams that can take bytes again, and streams the peer told to stop sending. */
  private scanWritable(native: NativeConnection, handler: QuicConnectionHandler): void {
    for (const id of native.writable()) {
      const record = this.streams.get(id);
      if (record === undefined || !record.writeOpen) continue;
      let capacity: number;
      try {
        capacity = native.streamCapacity(id);
      } catch (cause) {
        if (this.writeFailed(id, record, cause, handler)) return;
        continue;
      }
      if (record.pendingFin) {
        let sent: number | null = null;
        try {
          sent = native.streamSend(id, EMPTY, true);
        } catch {
          // Stopped or gone since the capacity check: either way nothing more can be written.
          this.closeWrite(id, record);
        }
        if (sent !== null) this.closeWrite(id, record);
        continue;
      }
      if (record.blocked && capacity > 0) {
        record.blocked = false;
        this.waitingWrites--;
        handler.onStreamWritable?.(id);
        if (this.native === undefined) return;
      }
    }
  }

  /** Finds write-open streams that the peer told to stop sending (or that are gone), one by one. */
  private checkStopped(native: NativeConnection, handler: QuicConnectionHandler): void {
    for (const [id, record] of this.streams) {
      if (!record.writeOpen) continue;
      try {
        native.streamCapacity(id);
      } catch (cause) {
        if (this.writeFailed(id, record, cause, handler)) return;
      }
    }
  }

  /** A stream's capacity check failed: its sending side is over. True when the connection is gone. */
  private writeFailed(id: number, record: StreamRecord, cause: unknown, handler: QuicConnectionHandler): boolean {
    const failure = nativeFailure(cause);
    this.closeWrite(id, record);
    if (failure?.name === 'StreamStopped') handler.onStreamStopped?.(id, failure.arg ?? 0);
    else if (failure?.name !== 'InvalidStreamState') throw nativeError(`check stream ${id}`, cause);
    return this.native === undefined;
  }

  private reportCredit(native: NativeConnection, handler: QuicConnectionHandler): void {
    if (handler.onCreditChange === undefined) return;
    const bidi = native.peerStreamsLeftBidi();
    const uni = native.peerStreamsLeftUni();
    if (bidi === this.lastCredit[0] && uni === this.lastCredit[1]) return;
    this.lastCredit = [bidi, uni];
    handler.onCreditChange(bidi, uni);
  }

  /** Sends until quiche has nothing left or the per-turn bound; true when it has nothing left. */
  private sendPackets(native: NativeConnection): boolean {
    const size = this.config.maxUdpPayloadBytes;
    for (let packets = 0; packets < MAX_PACKETS_PER_TURN; packets++) {
      const out = this.spare ?? Buffer.allocUnsafe(size);
      this.spare = undefined;
      let result;
      try {
        result = native.send(out);
      } catch {
        // quiche reports a connection that cannot send any more through isClosed/localError.
        this.spare = out;
        return true;
      }
      if (result === null) {
        this.spare = out;
        return true;
      }
      this.transport.send(out, result[0], result[1].to);
      this.sentCount++;
    }
    return false;
  }

  private armTimer(native: NativeConnection): void {
    const ms = native.timeout();
    const now = this.clock.now();
    if (this.receivedSinceTurn) {
      this.receivedSinceTurn = false;
      // A few ms after quiche restarted its idle timer (this turn's work): within any margin.
      this.lastReceivedAt = now;
    }
    if (ms === null) {
      this.timer?.cancel();
      this.timer = undefined;
      return;
    }
    // quiche's timers fire at their deadline; one extra millisecond makes sure it has passed.
    const due = now + ms + 1;
    // A timer that fires early is harmless (quiche checks its own deadlines), so a later
    // deadline keeps the armed timer and only an earlier one re-arms.
    if (this.timer !== undefined && due >= this.timerDue) return;
    this.timer?.cancel();
    this.timerDue = due;
    this.timer = this.clock.setTimer(this.onTimer, ms + 1);
  }

  private updateActive(): void {
    // Draining is short (3 × PTO) and someone may await `closed`: it keeps the process alive too.
    // Only bidirectional streams count: HTTP/3's control and QPACK streams are unidirectional and
    // stay open for the connection's whole life (RFC 9114 §6.2.1), so counting them would keep
    // the process alive until the idle timeout after the last request.
    const active =
      this.native !== undefined && (this.current !== 'established' || this.bidiStreams > 0 || this.userHold);
    if (active === this.active) return;
    this.active = active;
    this.transport.setActive(active);
  }

  private enterDraining(native: NativeConnection): void {
    this.current = transition(this.current, 'draining', this.traceId);
    this.reportClose(native);
  }

  /** Builds the close info from what quiche knows, tells the handler and any waiter. */
  private reportClose(native: NativeConnection | undefined): void {
    if (this.closeInfo !== undefined) return;
    const handshaking = !this.wasEstablished;
    const local = native?.localError() ?? null;
    const peer = native?.peerError() ?? null;
    let cause = this.closeCause;
    if (cause === undefined) {
      if (native?.isTimedOut() === true) cause = handshaking ? 'handshake-timeout' : 'idle-timeout';
      else if (peer !== null) cause = 'peer-close';
      else cause = 'local-error';
    }
    const wire = cause === 'peer-close' ? peer : local;
    const info: QuicCloseInfo = {
      cause,
      isApp: wire?.isApp ?? false,
      errorCode: wire?.errorCode ?? 0,
      reason: wire === null ? '' : reasonText(wire.reason),
      error: undefined,
    };
    info.error = this.closeErrorFor(info, cause, handshaking, native);
    this.closeInfo = info;
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter !== undefined) waiter.reject(info.error ?? new MuxpoolError('MUXPOOL_ERR_QUIC', 'the QUIC connection closed during the handshake'));
    this.handler?.onClose?.(info);
  }

  private closeErrorFor(
    info: QuicCloseInfo,
    cause: QuicCloseInfo['cause'],
    handshaking: boolean,
    native: NativeConnection | undefined,
  ): MuxpoolError | undefined {
    if (this.closeErrorOverride !== undefined) return this.closeErrorOverride;
    switch (cause) {
      case 'local-close':
        return undefined;
      case 'destroyed':
        return handshaking ? new MuxpoolError('MUXPOOL_ERR_QUIC', 'the QUIC connection was destroyed during the handshake') : undefined;
      case 'handshake-timeout':
        return new MuxpoolError('MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT', `the QUIC handshake with ${this.describePeer()} timed out`);
      case 'idle-timeout':
        return new MuxpoolError('MUXPOOL_ERR_QUIC_IDLE_TIMEOUT', `no packet from ${this.describePeer()} within the idle timeout`);
      case 'peer-close':
      case 'local-error': {
        const origin = cause === 'peer-close' ? 'remote' : 'local';
        // After the handshake an application close, or NO_ERROR, is an ordinary ending.
        if (!handshaking && origin === 'remote' && (info.isApp || info.errorCode === 0)) return undefined;
        const nameMismatch = origin === 'local' && native !== undefined && this.certificateNameMismatch(native);
        return closeError(
          { isApp: info.isApp, errorCode: info.errorCode, reason: new Uint8Array(Buffer.from(info.reason, 'utf8')) },
          { origin, serverName: this.serverName, nameMismatch, role: this.role },
        );
      }
      default:
        throw internalError(`unknown close cause ${String(cause)}`);
    }
  }

  private describePeer(): string {
    const { host, port } = this.remoteAddress;
    return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  }

  /** Releases everything: timers, the transport, quiche's connection (freed once collected). */
  private finish(): void {
    if (this.current === 'closed') return;
    this.reportClose(this.native);
    this.current = transition(this.current, 'closed', this.traceId);
    this.timer?.cancel();
    this.timer = undefined;
    this.handshakeTimer?.cancel();
    this.handshakeTimer = undefined;
    if (this.turnScheduled !== undefined) clearImmediate(this.turnScheduled);
    this.turnScheduled = undefined;
    this.sendDeferred = false;
    // ~27 KB of native memory per connection is freed only when nothing references it.
    this.native = undefined;
    this.spare = undefined;
    this.handler = undefined;
    this.streams.clear();
    this.bidiStreams = 0;
    this.writeOpenCount = 0;
    this.waitingWrites = 0;
    this.active = false;
    this.transport.release();
    this.resolveClosed(this.closeInfo as QuicCloseInfo);
  }
}
