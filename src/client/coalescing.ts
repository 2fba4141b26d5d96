/**
 * HTTP/2 connection coalescing (RFC 9113 §9.1.1): a connection "is reusable for requests to
 * any origin whose host resolves to the same IP address as the connection's, and for which the
 * certificate presented by the server is valid". This index owns the bookkeeping: which live
 * sessions may serve other origins, by address, port and TLS identity. Never across TLS
 * identities, and never when the certificate is not checked against the URL's own host
 * (`verifiesOwnHost`).
 */
import type { PeerCertificate } from 'node:tls';
import tls from 'node:tls';
import type { ResolvedAddress } from '../connect/resolve.js';
import type { PoolKey, TlsIdentity } from '../pool/key.js';

/** What the index needs of a session. */
export interface CoalescableSession {
  readonly remoteAddress: string | undefined;
  /** Open for new streams. */
  readonly acceptsStreams: boolean;
  readonly activeStreams: number;
  readonly maxStreams: number;
  serves(keyId: string): boolean;
  peerCertificate(): PeerCertificate | undefined;
}

/**
 * Whether connections made with `identity` check the server's certificate against the key's
 * own host: the condition for coalescing and for an Alt-Svc alternative elsewhere. Not with
 * `rejectUnauthorized: false` (nothing proves the server speaks for the host), nor with an
 * explicit `servername` (the name checked is not the URL's host).
 */
export function verifiesOwnHost(identity: TlsIdentity | undefined): boolean {
  return identity?.rejectUnauthorized !== false && identity?.servername === undefined;
}

interface Slot {
  /** `address|port|group` */
  readonly address: string;
  /** `port|group` */
  readonly portGroup: string;
}

export class CoalescingIndex<S extends CoalescableSession> {
  private readonly byAddress = new Map<string, Set<S>>();
  /** Sessions per `port|group`: skips name resolution when none could match. */
  private readonly countByPort = new Map<string, number>();
  private readonly slots = new Map<S, Slot>();

  /** Keys without TLS settings of their own use the pool's: one group for them all. */
  private static groupOf(key: PoolKey): string {
    return key.tls !== undefined ? key.tlsId : '(pool)';
  }

  /** Whether any session could serve `key` (cheap: no name resolution). */
  hasCandidates(key: PoolKey): boolean {
    return (this.countByPort.get(`${key.port}|${CoalescingIndex.groupOf(key)}`) ?? 0) > 0;
  }

  /**
   * A session at one of `addresses` whose certificate covers `key`'s host and that has room
   * now. A full one would make the new origin wait: it gets a connection of its own instead.
   */
  find(key: PoolKey, addresses: readonly ResolvedAddress[]): S | undefined {
    const group = CoalescingIndex.groupOf(key);
    for (const { address } of addresses) {
      const candidates = this.byAddress.get(`${address}|${key.port}|${group}`);
      if (candidates === undefined) continue;
      for (const session of candidates) {
        if (!session.acceptsStreams || session.activeStreams >= session.maxStreams || session.serves(key.id)) continue;
        const cert = session.peerCertificate();
        if (cert !== undefined && tls.checkServerIdentity(key.host, cert) === undefined) return session;
      }
    }
    return undefined;
  }

  /** A new session for `key` may serve other origins. */
  add(session: S, key: PoolKey): void {
    const address = session.remoteAddress;
    if (address === undefined || this.slots.has(session)) return;
    const group = CoalescingIndex.groupOf(key);
    const slot: Slot = { address: `${address}|${key.port}|${group}`, portGroup: `${key.port}|${group}` };
    let set = this.byAddress.get(slot.address);
    if (set === undefined) {
      set = new Set();
      this.byAddress.set(slot.address, set);
    }
    set.add(session);
    this.slots.set(session, slot);
    this.countByPort.set(slot.portGroup, (this.countByPort.get(slot.portGroup) ?? 0) + 1);
  }

  /** The session closed. */
  remove(session: S): void {
    const slot = this.slots.get(session);
    if (slot === undefined) return;
    this.slots.delete(session);
    const set = this.byAddress.get(slot.address);
    set?.delete(session);
    if (set !== undefined && set.size === 0) this.byAddress.delete(slot.address);
    const count = (this.countByPort.get(slot.portGroup) ?? 1) - 1;
    if (count <= 0) this.countByPort.delete(slot.portGroup);
    else this.countByPort.set(slot.portGroup, count);
  }

  get size(): number {
    return this.slots.size;
  }
}
