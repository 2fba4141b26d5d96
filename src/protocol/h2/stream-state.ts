/**
 * The HTTP/2 stream state machine (RFC 9113 §5.1) for the streams a client opens, as one type
 * and one transition function. Push is disabled, so `reserved (*)` never occurs.
 *
 * ```
 *                  send HEADERS                         send HEADERS+END_STREAM
 *   idle ──────────────────────────► open        idle ─────────────────────────► half-closed (local)
 *   open ── send END_STREAM ──► half-closed (local) ── recv END_STREAM ──► closed
 *   open ── recv END_STREAM ──► half-closed (remote) ── send END_STREAM ──► closed
 *   any state but idle ── send or recv RST_STREAM ──► closed
 * ```
 */
import { internalError } from '../../errors.js';

export type StreamState = 'idle' | 'open' | 'half-closed-local' | 'half-closed-remote' | 'closed';

export type StreamEvent =
  | 'send-headers'
  | 'send-headers-end-stream'
  | 'send-end-stream'
  | 'recv-end-stream'
  | 'send-rst'
  | 'recv-rst';

/** The state after `event`; an event the state does not allow is a bug of ours (internal error). */
export function streamTransition(state: StreamState, event: StreamEvent): StreamState {
  switch (event) {
    case 'send-headers':
      if (state === 'idle') return 'open';
      break;
    case 'send-headers-end-stream':
      if (state === 'idle') return 'half-closed-local';
      break;
    case 'send-end-stream':
      if (state === 'open') return 'half-closed-local';
      if (state === 'half-closed-remote') return 'closed';
      break;
    case 'recv-end-stream':
      if (state === 'open') return 'half-closed-remote';
      if (state === 'half-closed-local') return 'closed';
      break;
    case 'send-rst':
    case 'recv-rst':
      if (state !== 'idle' && state !== 'closed') return 'closed';
      break;
  }
  throw internalError(`HTTP/2 stream: ${event} is not allowed in state ${state}`);
}

/** The peer may still send DATA or HEADERS on the stream (RFC 9113 §5.1: open or half-closed (local)). */
export function canReceive(state: StreamState): boolean {
  return state === 'open' || state === 'half-closed-local';
}

/** We may still send DATA on the stream (open or half-closed (remote)). */
export function canSend(state: StreamState): boolean {
  return state === 'open' || state === 'half-closed-remote';
}
