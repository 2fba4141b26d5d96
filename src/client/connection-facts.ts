/**
 * What a dial learned about the connection it made — how long its name lookup, connect and
 * handshake took, and the peer's address and port — kept beside the connection (not in it, so
 * the transports stay as they are) for the requests it serves: `res.timings` of the request
 * that waited for the dial, the peer address of a traced request.
 */
import type { DialPhases } from '../connect/dial.js';

export interface ConnectionFacts extends DialPhases {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** When the dial ended, on the pool's clock. */
  readonly readyAt: number;
}

/** Weak: a closed connection takes its facts with it. */
const factsByConnection = new WeakMap<object, ConnectionFacts>();

export function recordConnectionFacts(
  connection: object,
  phases: DialPhases & { remoteAddress: string | undefined; remotePort: number | undefined },
  readyAt: number,
): void {
  factsByConnection.set(connection, {
    dnsMs: phases.dnsMs,
    connectMs: phases.connectMs,
    handshakeMs: phases.handshakeMs,
    remoteAddress: phases.remoteAddress,
    remotePort: phases.remotePort,
    readyAt,
  });
}

/** Undefined for a connection the pool did not dial (an adopted socket, a coalesced view). */
export function connectionFactsOf(connection: object): ConnectionFacts | undefined {
  return factsByConnection.get(connection);
}
