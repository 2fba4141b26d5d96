/**
 * HTTP/3 against TCP, the way browsers race them: QUIC starts first and gets a head start; TCP
 * starts when the head start is over or QUIC fails, whichever comes first; the first connection
 * up wins. A QUIC attempt still running when TCP wins is left to finish (so the dialer still
 * learns whether HTTP/3 works there, and a success becomes a spare), tracked by the caller so
 * closing can abort it. Nothing is leaked: a connection that completes after the race was
 * decided is handed on or destroyed. When both fail, the error is the first failure, with the
 * other attached (`related`), so neither cause is lost.
 *
 * States and the events that move them (anything else is ignored or an internal error):
 *
 *   quic-ahead ──head start over──► racing ──QUIC up / TCP up──► won
 *        │  └─QUIC up──► won            ├──QUIC failed──► tcp-left ──TCP up──► won, TCP failed──► lost
 *        └─QUIC failed──► tcp-left      └──TCP failed──► quic-left ──QUIC up──► won, QUIC failed──► lost
 */
import type { Clock, Timer } from '../core/clock.js';
import { MuxpoolError, internalError } from '../errors.js';
import type { Connection } from '../protocol/connection.js';

export interface RaceOptions {
  clock: Clock;
  /** How long QUIC runs alone before TCP is tried too. */
  headStartMs: number;
  /** Aborts both attempts. */
  signal: AbortSignal;
  quic(signal: AbortSignal): Promise<Connection>;
  tcp(signal: AbortSignal): Promise<Connection>;
  /** QUIC came up after TCP had won. */
  onLateQuic(connection: Connection): void;
  /** The QUIC attempt outlives the race: abort it with `controller` if the owner closes. */
  onLinger(controller: AbortController, done: Promise<void>): void;
}

export type RaceState = 'quic-ahead' | 'racing' | 'tcp-left' | 'quic-left' | 'won' | 'lost';
type RaceEvent = 'head-start-over' | 'quic-up' | 'quic-failed' | 'tcp-up' | 'tcp-failed';

/** The one transition function: the next state for `event`, or undefined when the event changes nothing. */
export function nextRaceState(state: RaceState, event: RaceEvent): RaceState | undefined {
  switch (state) {
    case 'quic-ahead':
      if (event === 'head-start-over') return 'racing';
      if (event === 'quic-up') return 'won';
      if (event === 'quic-failed') return 'tcp-left';
      break;
    case 'racing':
      if (event === 'quic-up' || event === 'tcp-up') return 'won';
      if (event === 'quic-failed') return 'tcp-left';
      if (event === 'tcp-failed') return 'quic-left';
      break;
    case 'tcp-left':
      if (event === 'tcp-up') return 'won';
      if (event === 'tcp-failed') return 'lost';
      if (event === 'head-start-over') return undefined;
      break;
    case 'quic-left':
      if (event === 'quic-up') return 'won';
      if (event === 'quic-failed') return 'lost';
      break;
    case 'won':
    case 'lost':
      // A loser finishing after the decision: handled by the caller (spare or destroyed).
      return undefined;
  }
  throw internalError(`HTTP/3 race: ${event} in state ${state}`);
}

/** The first failure as the error, the other attached. */
function bothFailed(first: unknown, second: unknown): unknown {
  if (!(first instanceof MuxpoolError)) return first;
  return first.withRelated([second]);
}

export function raceQuicAndTcp(options: RaceOptions): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const quicControl = new AbortController();
    const tcpControl = new AbortController();
    const onAbort = (): void => {
      quicControl.abort(options.signal.reason);
      tcpControl.abort(options.signal.reason);
    };
    options.signal.addEventListener('abort', onAbort, { once: true });
    let state: RaceState = 'quic-ahead';
    let firstFailure: unknown;
    let quicSettled = false;

    const startTcp = (): void => {
      options.tcp(tcpControl.signal).then(
        (connection) => {
          if (!move('tcp-up')) {
            connection.destroy();
            return;
          }
          if (!quicSettled) options.onLinger(quicControl, quicDone);
          resolve(connection);
        },
        (err: unknown) => {
          if (move('tcp-failed') && state === 'lost') reject(bothFailed(firstFailure, err));
          else firstFailure ??= err;
        },
      );
    };

    /** Applies an event; true when it changed the state. Ends the race's own timer and listener once decided. */
    const move = (event: RaceEvent): boolean => {
      const next = nextRaceState(state, event);
      if (next === undefined) return false;
      const before = state;
      state = next;
      if (next === 'won' || next === 'lost') {
        timer.cancel();
        options.signal.removeEventListener('abort', onAbort);
      }
      // TCP starts on leaving the head start, whichever way it was left (not when QUIC won).
      if (before === 'quic-ahead' && (next === 'racing' || next === 'tcp-left')) {
        timer.cancel();
        startTcp();
      }
      return true;
    };

    // The callbacks above run later (timers, promise callbacks), after these two exist.
    const timer: Timer = options.clock.setTimer(() => move('head-start-over'), options.headStartMs);
    const quicDone = options.quic(quicControl.signal).then(
      (connection) => {
        quicSettled = true;
        if (!move('quic-up')) {
          options.onLateQuic(connection);
          return;
        }
        tcpControl.abort();
        resolve(connection);
      },
      (err: unknown) => {
        quicSettled = true;
        if (move('quic-failed') && state === 'lost') reject(bothFailed(firstFailure, err));
        else firstFailure ??= err;
      },
    );
  });
}
