/**
 * Dial plans: what a caller asks the pool for, as the core's `Demand` — which protocols serve
 * it (best first), and whether a dial for it runs in the background (nobody waits on it). The
 * core asks a plan whether a connection fits; the connector reads it to decide what to dial.
 * A pool holds one plan per kind, so callers with the same plan are recognised as alike.
 */
import { MuxpoolError } from '../errors.js';
import type { Demand } from '../pool/demand.js';
import type { PoolKey } from '../pool/key.js';
import type { Connection } from '../protocol/connection.js';
import type { ConnectionProtocol } from '../protocol/version.js';
import type { OriginFacts } from './origin-facts.js';

export class DialPlan implements Demand<Connection> {
  readonly protocols: readonly ConnectionProtocol[];
  /**
   * A dial nobody waits on (an HTTP/3 connection prepared after Alt-Svc): it gets the short
   * QUIC handshake deadline, since a path that does not answer soon should be marked broken soon.
   */
  readonly background: boolean;
  readonly wantsH3: boolean;
  readonly tcpProtocols: readonly ConnectionProtocol[];
  private readonly facts: OriginFacts;

  constructor(protocols: readonly ConnectionProtocol[], facts: OriginFacts, background = false) {
    this.protocols = protocols;
    this.facts = facts;
    this.background = background;
    this.wantsH3 = protocols.includes('h3');
    this.tcpProtocols = protocols.filter((p) => p !== 'h3');
  }

  /**
   * Whether a TCP connection dialed for this plan tells what the origin speaks: over TLS any
   * plan with h2 offers h2 and http/1.1 in one handshake, and ALPN's answer is knowledge. What
   * a cleartext or HTTP/1.1-only dial spoke says nothing about what else the origin speaks.
   */
  learnsAlpn(key: PoolKey): boolean {
    return key.isHttps && this.protocols.includes('h2');
  }

  accepts(connection: Connection): boolean {
    return this.protocols.includes(connection.protocol);
  }

  prefers(connection: Connection): boolean {
    return connection.protocol === this.protocols[0];
  }

  dialsShared(key: PoolKey): boolean {
    return this.wantsH3 || (this.protocols.includes('h2') && this.facts.tcpProtocol(key) !== 'http/1.1');
  }

  unavailable(key: PoolKey): MuxpoolError | undefined {
    // Only one answer is final: offered h2 and http/1.1, the origin chose http/1.1, so it has
    // no h2. Choosing h2 says nothing against http/1.1. HTTP/3 reachability is the connector's.
    if (this.wantsH3 || this.protocols.includes('http/1.1') || this.facts.tcpProtocol(key) !== 'http/1.1') return undefined;
    return new MuxpoolError('MUXPOOL_ERR_PROTOCOL_UNAVAILABLE', `${key.origin} speaks http/1.1, not ${this.protocols.join(' or ')}`, {
      maybeProcessed: false,
    });
  }

  sameGoal(other: Demand<Connection>): boolean {
    return other instanceof DialPlan && other.protocols[0] === this.protocols[0];
  }
}

/** The plans of one pool. */
export interface DialPlans {
  h1: DialPlan;
  h2: DialPlan;
  /** https `Auto`: one TLS handshake offering h2 and http/1.1. */
  tcp: DialPlan;
  /** The seed's `getOrCreate(key, Http3)`: HTTP/3, else HTTP/2 (HTTP/1.1 goes through getH1). */
  h3OrH2: DialPlan;
  /** `Http3` requests, and `Auto` once the origin advertised h3. */
  h3OrTcp: DialPlan;
  h3Only: DialPlan;
  /** The background HTTP/3 dial after Alt-Svc. */
  h3Background: DialPlan;
}

export function dialPlans(facts: OriginFacts): DialPlans {
  return {
    h1: new DialPlan(['http/1.1'], facts),
    h2: new DialPlan(['h2'], facts),
    tcp: new DialPlan(['h2', 'http/1.1'], facts),
    h3OrH2: new DialPlan(['h3', 'h2'], facts),
    h3OrTcp: new DialPlan(['h3', 'h2', 'http/1.1'], facts),
    h3Only: new DialPlan(['h3'], facts),
    h3Background: new DialPlan(['h3'], facts, true),
  };
}
