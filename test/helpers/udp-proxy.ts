/**
 * An in-process UDP proxy for loopback tests: it sits between a client and a UDP server and
 * loses, delays, reorders and duplicates datagrams in both directions, or black-holes the path.
 *
 * Every decision comes from a seeded PRNG (mulberry32), one stream per client and direction, so
 * the same seed and the same packet sequence give the same losses on every run. Each client
 * address gets an upstream socket of its own, connected to the target, so replies find their
 * way back to the client that caused them.
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { mulberry32 } from './prng.js';

export interface UdpProxyOptions {
  /** The server the proxy forwards to (an IP address and port). */
  target: { host: string; port: number };
  /** Address the proxy listens on. Default 127.0.0.1. */
  host?: string;
  /** Port the proxy listens on. Default 0: any free port. */
  port?: number;
  /** PRNG seed: the same seed gives the same sequence of decisions. Default 1. */
  seed?: number;
  /** Share of datagrams dropped, each direction, 0–1. Default 0. */
  lossRate?: number;
  /** Fixed delay added to every datagram. Default 0. */
  delayMs?: number;
  /** Extra random delay, uniform in [0, jitterMs). Default 0. */
  jitterMs?: number;
  /** Share of datagrams held back so that later ones overtake them, 0–1. Default 0. */
  reorderRate?: number;
  /** How long a reordered datagram is held back. Default max(5, 2 × (delayMs + jitterMs)). */
  reorderHoldMs?: number;
  /** Share of datagrams sent twice, 0–1. Default 0. */
  duplicateRate?: number;
  /** Drop everything, both ways. Default false. */
  blackhole?: boolean;
  /**
   * Share of datagrams with one bit flipped, 0–1, each direction. Its decisions come from PRNG
   * streams of their own, so a seed gives the same losses with or without corruption. Default 0.
   */
  corruptRate?: number;
}

export interface UdpProxyStats {
  /** Datagrams that reached the proxy, from either side. */
  received: number;
  /** Of those, datagrams from clients (towards the target). */
  receivedFromClients: number;
  /** Datagrams sent on (duplicates included). */
  forwarded: number;
  /** Datagrams dropped, by loss or by the black hole. */
  dropped: number;
  duplicated: number;
  reordered: number;
  /** Datagrams forwarded with a bit flipped. */
  corrupted: number;
  /** Datagrams the target sent back to clients. */
  receivedFromTarget: number;
  /** The largest datagram the target sent back, in bytes (UDP payload). */
  largestFromTarget: number;
  /** `rebind()` calls so far. */
  rebinds: number;
  /** Datagrams the target sent to a source port `rebind()` retired (dropped, as a NAT would). */
  repliesToRetired: number;
}

export interface UdpProxy {
  readonly host: string;
  readonly port: number;
  /** Live counters (read them at any time). */
  readonly stats: Readonly<UdpProxyStats>;
  /** Client addresses seen so far (one upstream socket each). */
  readonly clients: number;
  setBlackhole(on: boolean): void;
  /**
   * NAT rebinding: every client's upstream socket is replaced by a new one (a new source port
   * towards the target) from the next datagram on; replies to the old port are dropped.
   */
  rebind(): void;
  /** Source ports the target has seen from the proxy, oldest first. */
  readonly upstreamPorts: readonly number[];
  /** Drops the next `count` datagrams going one way: to lose one chosen packet. */
  dropNext(direction: 'toTarget' | 'toClient', count?: number): void;
  /** Cancels every pending datagram and closes every socket. */
  close(): Promise<void>;
}


/** Mixes the seed with a client's index and a direction, so each stream of decisions differs. */
function streamSeed(seed: number, clientIndex: number, direction: 0 | 1): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (clientIndex + 1), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (direction + 0x27d4eb2f), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

function rate(name: string, value: number | undefined): number {
  const r = value ?? 0;
  if (!(r >= 0 && r <= 1)) throw new RangeError(`${name} must be between 0 and 1, got ${String(value)}`);
  return r;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(v >= 0 && Number.isFinite(v))) throw new RangeError(`${name} must be a finite number ≥ 0, got ${String(value)}`);
  return v;
}

/** One client of the proxy: its address, its upstream socket and its two PRNG streams. */
interface Session {
  readonly address: string;
  readonly port: number;
  upstream: dgram.Socket;
  readonly toTarget: () => number;
  readonly toClient: () => number;
  readonly corruptToTarget: () => number;
  readonly corruptToClient: () => number;
}

/** Starts the proxy; resolves once its listening socket is bound. */
export async function startUdpProxy(options: UdpProxyOptions): Promise<UdpProxy> {
  const host = options.host ?? '127.0.0.1';
  const family = isIP(host);
  if (family === 0) throw new TypeError(`host must be an IP address, got ${host}`);
  const targetFamily = isIP(options.target.host);
  if (targetFamily === 0) throw new TypeError(`target.host must be an IP address, got ${options.target.host}`);
  const seed = options.seed ?? 1;
  const lossRate = rate('lossRate', options.lossRate);
  const reorderRate = rate('reorderRate', options.reorderRate);
  const duplicateRate = rate('duplicateRate', options.duplicateRate);
  const corruptRate = rate('corruptRate', options.corruptRate);
  const delayMs = nonNegative('delayMs', options.delayMs, 0);
  const jitterMs = nonNegative('jitterMs', options.jitterMs, 0);
  const reorderHoldMs = nonNegative('reorderHoldMs', options.reorderHoldMs, Math.max(5, 2 * (delayMs + jitterMs)));
  let blackhole = options.blackhole === true;
  const dropNext = { toTarget: 0, toClient: 0 };

  const stats: UdpProxyStats = {
    received: 0,
    receivedFromClients: 0,
    forwarded: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
    receivedFromTarget: 0,
    largestFromTarget: 0,
    rebinds: 0,
    repliesToRetired: 0,
  };
  const sessions = new Map<string, Session>();
  /** Upstream sockets replaced by `rebind()`: closed with the proxy. */
  const retired: dgram.Socket[] = [];
  const upstreamPorts: number[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const front = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6' });
  // ICMP errors (a client or the target went away) must not take the proxy down.
  front.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.bind(options.port ?? 0, host, () => {
      front.off('error', reject);
      resolve();
    });
  });
  const bound = front.address();

  /** Sends one datagram, now or after its delay. */
  function emit(send: () => void, waitMs: number): void {
    if (waitMs <= 0) {
      stats.forwarded++;
      send();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (closed) return;
      stats.forwarded++;
      send();
    }, waitMs);
    timers.add(timer);
  }

  /** Applies the path's faults to one datagram, using the PRNG stream of its direction. */
  function relay(
    packet: Buffer,
    random: () => number,
    send: (packet: Buffer) => void,
    direction: 'toTarget' | 'toClient',
    corruptRandom?: () => number,
  ): void {
    stats.received++;
    if (blackhole) {
      stats.dropped++;
      return;
    }
    if (dropNext[direction] > 0) {
      dropNext[direction]--;
      stats.dropped++;
      return;
    }
    // A fixed number of draws per datagram keeps each decision tied to the datagram's position
    // in its stream, whatever the rates are.
    const lossDraw = random();
    const jitterDraw = random();
    const reorderDraw = random();
    const duplicateDraw = random();
    const duplicateJitterDraw = random();
    if (lossDraw < lossRate) {
      stats.dropped++;
      return;
    }
    if (corruptRate > 0 && corruptRandom !== undefined) {
      const corruptDraw = corruptRandom();
      const bitDraw = corruptRandom();
      if (corruptDraw < corruptRate) {
        // A copy: the received buffer may be reused by a duplicate below.
        packet = Buffer.from(packet);
        const bit = Math.floor(bitDraw * packet.length * 8);
        packet[bit >> 3] = (packet[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        stats.corrupted++;
      }
    }
    let waitMs = delayMs + jitterDraw * jitterMs;
    if (reorderDraw < reorderRate) {
      stats.reordered++;
      waitMs += reorderHoldMs;
    }
    emit(() => send(packet), waitMs);
    if (duplicateDraw < duplicateRate) {
      stats.duplicated++;
      emit(() => send(packet), delayMs + duplicateJitterDraw * jitterMs);
    }
  }

  function sessionFor(rinfo: dgram.RemoteInfo): Session {
    const key = `${rinfo.address}|${rinfo.port}`;
    const existing = sessions.get(key);
    if (existing !== undefined) return existing;
    const index = sessions.size;
    const session: Session = {
      address: rinfo.address,
      port: rinfo.port,
      upstream: undefined as unknown as dgram.Socket,
      toTarget: mulberry32(streamSeed(seed, index, 0)),
      toClient: mulberry32(streamSeed(seed, index, 1)),
      corruptToTarget: mulberry32(streamSeed(seed ^ 0x5bd1e995, index, 0)),
      corruptToClient: mulberry32(streamSeed(seed ^ 0x5bd1e995, index, 1)),
    };
    session.upstream = openUpstream(session);
    sessions.set(key, session);
    return session;
  }

  /** An upstream socket for a session; unconnected, so dgram binds it on the first send and no datagram waits for a callback. */
  function openUpstream(session: Session): dgram.Socket {
    const upstream = dgram.createSocket({ type: targetFamily === 4 ? 'udp4' : 'udp6' });
    upstream.on('error', () => {});
    upstream.once('listening', () => upstreamPorts.push(upstream.address().port));
    // Replies from the target go back to this client only, and only to its current socket.
    upstream.on('message', (reply: Buffer, from: dgram.RemoteInfo) => {
      if (closed || from.port !== options.target.port) return;
      if (session.upstream !== upstream) {
        stats.repliesToRetired++;
        return;
      }
      stats.receivedFromTarget++;
      if (reply.length > stats.largestFromTarget) stats.largestFromTarget = reply.length;
      relay(reply, session.toClient, (p) => front.send(p, session.port, session.address), 'toClient', session.corruptToClient);
    });
    return upstream;
  }

  front.on('message', (packet: Buffer, rinfo: dgram.RemoteInfo) => {
    if (closed) return;
    stats.receivedFromClients++;
    const session = sessionFor(rinfo);
    relay(
      packet,
      session.toTarget,
      (p) => session.upstream.send(p, options.target.port, options.target.host),
      'toTarget',
      session.corruptToTarget,
    );
  });

  return {
    host: bound.address,
    port: bound.port,
    stats,
    get clients() {
      return sessions.size;
    },
    get upstreamPorts() {
      return upstreamPorts;
    },
    setBlackhole(on: boolean): void {
      blackhole = on;
    },
    rebind(): void {
      stats.rebinds++;
      for (const session of sessions.values()) {
        retired.push(session.upstream);
        session.upstream = openUpstream(session);
      }
    },
    dropNext(direction: 'toTarget' | 'toClient', count = 1): void {
      dropNext[direction] += count;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const sockets = [front, ...retired, ...[...sessions.values()].map((s) => s.upstream)];
      sessions.clear();
      await Promise.all(
        sockets.map(
          (socket) =>
            new Promise<void>((resolve) => {
              try {
                socket.close(() => resolve());
              } catch {
                // Never bound (an upstream socket that sent nothing): nothing to close.
                resolve();
              }
            }),
        ),
      );
    },
  };
}

export interface UdpBlackHole {
  readonly port: number;
  /** Datagrams swallowed so far. */
  readonly datagrams: number;
  close(): void;
}

/**
 * A UDP socket that swallows every datagram: a path where nothing answers, not even ICMP.
 * `port` 0 picks a free one.
 */
export async function startUdpBlackHole(port = 0, host = '127.0.0.1'): Promise<UdpBlackHole> {
  const socket = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
  let datagrams = 0;
  socket.on('message', () => datagrams++);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return {
    port: socket.address().port,
    get datagrams() {
      return datagrams;
    },
    close: () => socket.close(),
  };
}
