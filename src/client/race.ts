/**
 * HTTP/3 against TCP, the way browsers race them: QUIC starts first and gets a head start; TCP
 * starts when the head start is over or QUIC fails, whichever comes first; the first connection
 * up wins. A QUIC attempt still running when TCP wins is left to finish (so the dialer still
 * learns whether HTTP/3 works there, and a success becomes a spare), tracked by the caller so closing can abort it.
 * Nothing is leaked: a connection that completes after the race was decided is handed on or
 * destroyed.
 */
import type { Clock, Timer } from '../core/clock.js';
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

export function raceQuicAndTcp(options: RaceOptions): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const quicControl = new AbortController();
    const tcpControl = new AbortController();
    const onAbort = (): void => {
      quicControl.abort(options.signal.reason);
      tcpControl.abort(options.signal.reason);
    };
    options.signal.addEventListener('abort', onAbort, { once: true });
    let settled = false;
    let tcpStarted = false;
    let tcpFailure: unknown;
    let tcpFailed = false;
    let quicFinished = false;

    const settle = (): void => {
      settled = true;
      timer.cancel();
      options.signal.removeEventListener('abort', onAbort);
    };

    const startTcp = (): void => {
      if (tcpStarted || settled) return;
      tcpStarted = true;
      timer.cancel();
      options.tcp(tcpControl.signal).then(
        (connection) => {
          if (settled) {
            connection.destroy();
            return;
          }
          settle();
          if (!quicFinished) options.onLinger(quicControl, quicDone);
          resolve(connection);
        },
        (err: unknown) => {
          tcpFailed = true;
          tcpFailure = err;
          if (!settled && quicFinished) {
            settle();
            reject(err);
          }
        },
      );
    };

    // The callbacks above run later (timers, promise callbacks), after these two exist.
    const timer: Timer = options.clock.setTimer(startTcp, options.headStartMs);
    const quicDone = options.quic(quicControl.signal).then(
      (connection) => {
        quicFinished = true;
        if (settled) {
          options.onLateQuic(connection);
          return;
        }
        settle();
        tcpControl.abort();
        resolve(connection);
      },
      () => {
        quicFinished = true;
        if (settled) return;
        if (!tcpStarted) startTcp();
        else if (tcpFailed) {
          settle();
          reject(tcpFailure);
        }
      },
    );
  });
}
