/**
 * What the client learns about an origin from its handshakes, beyond its connections: the TCP
 * protocol ALPN chose, and the peer's stream limit. Kept in memory (bounded) and in the origin
 * store, whose records carry the TLS identity, so a new pool — or a new process, with a file
 * store — knows an origin has no HTTP/2 without dialing.
 */
import type { OriginStore } from '../connect/origin-store.js';
import type { PoolKey } from '../pool/key.js';
import type { CapacityMemory } from '../pool/pool.js';
import type { ConnectionProtocol } from '../protocol/version.js';

/** A process that talks to many origins must not grow the in-memory map forever. */
const MAX_REMEMBERED_ORIGINS = 4096;

type TcpProtocol = 'h2' | 'http/1.1';

export class OriginFacts implements CapacityMemory {
  private readonly learned = new Map<string, TcpProtocol>();

  constructor(
    private readonly store: OriginStore,
    private readonly recordFor: (keyId: string) => string,
  ) {}

  /** What ALPN chose for the key when offered h2 and http/1.1, if known. */
  tcpProtocol(key: PoolKey): TcpProtocol | undefined {
    const known = this.learned.get(key.id);
    if (known !== undefined) return known;
    const stored = this.store.get(this.recordFor(key.id))?.tcpProtocol;
    if (stored !== 'h2' && stored !== 'http/1.1') return undefined;
    this.remember(key.id, stored);
    return stored;
  }

  /** A handshake that offered both TCP protocols chose `protocol`. */
  learnTcpProtocol(key: PoolKey, protocol: ConnectionProtocol): void {
    if (protocol !== 'h2' && protocol !== 'http/1.1') return;
    if (this.learned.get(key.id) !== protocol) this.store.update(this.recordFor(key.id), { tcpProtocol: protocol });
    this.remember(key.id, protocol);
  }

  streamLimit(keyId: string): number | undefined {
    const limit = this.store.get(this.recordFor(keyId))?.streamLimit;
    return typeof limit === 'number' && Number.isInteger(limit) && limit >= 0 ? limit : undefined;
  }

  rememberStreamLimit(keyId: string, limit: number): void {
    this.store.update(this.recordFor(keyId), { streamLimit: limit });
  }

  private remember(keyId: string, protocol: TcpProtocol): void {
    this.learned.delete(keyId);
    this.learned.set(keyId, protocol);
    if (this.learned.size > MAX_REMEMBERED_ORIGINS) {
      const oldest = this.learned.keys().next().value;
      if (oldest !== undefined) this.learned.delete(oldest);
    }
  }
}
