/**
 * `stats()`: the core's snapshot, counted the way the seed API names things (HTTP/2 and HTTP/3
 * connections, idle HTTP/1.1 ones) plus one line per connection.
 */
import type { CoreSnapshot } from '../pool/pool.js';
import type { Connection } from '../protocol/connection.js';
import type { ConnectionProtocol } from '../protocol/version.js';

/** A live connection as `stats()` reports it. */
export interface ConnectionSnapshot {
  id: string;
  origin: string;
  protocol: ConnectionProtocol;
  state: 'idle' | 'active' | 'draining' | 'detached';
  activeStreams: number;
  maxStreams: number;
  requests: number;
  ageMs: number;
  idleMs: number;
  remoteAddress: string | undefined;
  /** The handshake resumed an earlier session (TLS ticket or QUIC resumption), where known. */
  resumed: boolean | undefined;
}

export interface PoolStats {
  totalConnections: number;
  activeStreams: number;
  http1Connections: number;
  http1IdleConnections: number;
  http2Connections: number;
  http3Connections: number;
  pendingDials: number;
  waiters: number;
  /** Connections dialed (or adopted) and closed (or handed over) over the pool's life. */
  dialed: number;
  closed: number;
  connections: ConnectionSnapshot[];
}

export function poolStats(snapshot: CoreSnapshot<Connection>, now: number): PoolStats {
  const stats: PoolStats = {
    totalConnections: 0,
    activeStreams: 0,
    http1Connections: 0,
    http1IdleConnections: 0,
    http2Connections: 0,
    http3Connections: 0,
    pendingDials: snapshot.pendingDials,
    waiters: snapshot.waiters,
    dialed: snapshot.dialed,
    closed: snapshot.closed,
    connections: [],
  };
  // A coalesced HTTP/2 connection serves several origins: one line per origin, counted once.
  const counted = new Set<string>();
  for (const entry of snapshot.entries) {
    const c = entry.connection;
    stats.activeStreams += entry.activeStreams;
    const first = !counted.has(c.id);
    counted.add(c.id);
    if (first) stats.totalConnections++;
    if (c.protocol === 'h2') {
      if (first) stats.http2Connections++;
    } else if (c.protocol === 'h3') {
      if (first) stats.http3Connections++;
    } else {
      stats.http1Connections++;
      if (entry.activeStreams === 0 && !entry.lent) stats.http1IdleConnections++;
    }
    stats.connections.push({
      id: c.id,
      origin: entry.key.origin,
      protocol: c.protocol,
      state: entry.lent ? 'detached' : !entry.acceptsStreams ? 'draining' : entry.activeStreams > 0 ? 'active' : 'idle',
      activeStreams: entry.activeStreams,
      maxStreams: entry.maxStreams,
      requests: c.requestCount,
      ageMs: Math.round(now - entry.establishedAt),
      idleMs: entry.activeStreams > 0 ? 0 : Math.round(now - entry.lastUsed),
      remoteAddress: c.remoteAddress,
      resumed: c.resumed,
    });
  }
  return stats;
}
