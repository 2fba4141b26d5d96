/**
 * The QUIC connection's states and the only transitions between them.
 *
 *   handshaking ──► established ──► draining ──► closed
 *        │                             ▲            ▲
 *        └─────────────────────────────┴────────────┘
 *
 * `draining` covers RFC 9000 §10.2's closing and draining states alike: a CONNECTION_CLOSE was
 * sent or received, no stream may be used, and quiche still answers stray packets until its
 * drain timer ends (3 × PTO). `closed`: every resource is released.
 */
import { internalError } from '../errors.js';

export type QuicConnectionState = 'handshaking' | 'established' | 'draining' | 'closed';

const NEXT: Readonly<Record<QuicConnectionState, readonly QuicConnectionState[]>> = {
  handshaking: ['established', 'draining', 'closed'],
  established: ['draining', 'closed'],
  draining: ['closed'],
  closed: [],
};

/** Returns `to`, or throws an internal error when `from → to` is not a transition. */
export function transition(from: QuicConnectionState, to: QuicConnectionState, traceId: string): QuicConnectionState {
  if (!NEXT[from].includes(to)) throw internalError(`QUIC connection ${traceId}: illegal transition ${from} → ${to}`);
  return to;
}

