/**
 * What the three request-stream drivers (HTTP/1.1, HTTP/2, HTTP/3) share, written once:
 *
 *  - the request stream's states and the one transition function that checks them;
 *  - read deadlines: one timer per connection, swept over its streams;
 *  - the request-body pump, with backpressure, and waiting for a node stream to drain;
 *  - the bound on interim (1xx) responses;
 *  - a fresh error per stream when one failure ends many.
 *
 * No protocol knowledge lives here: each driver says what "write a chunk" or "the stream can take
 * more" means for it.
 */
import type { Clock, Timer } from '../core/clock.js';
import { MuxpoolError, internalError } from '../errors.js';
import { bodyFailure, checkedBody } from './body.js';
export { MAX_INTERIM_RESPONSES, checkInterimBudget } from './fields.js';

// ---------------------------------------------------------------------------------------------
// Stream states

/**
 * Where a request stream is, the same names on every protocol. The request and the response run
 * side by side (a server may answer before the request body is done: RFC 9110 §9.3.3 / RFC 9113
 * §8.1 / RFC 9114 §4.1), so a state names both halves:
 *
 *   held      → sending
 *   sending   → waiting, early, ended
 *   waiting   → receiving, ended
 *   early     → receiving, trailers, ended
 *   receiving → trailers, ended
 *   trailers  → ended
 *   every state → closed
 *
 *  - held: accepted but not on the wire (HTTP/3: waiting for the handshake or stream credit);
 *  - sending: the request body is still going out; no final response head yet;
 *  - waiting: the request is out; no final response head yet;
 *  - early: the final head arrived while the request body is still going out;
 *  - receiving: final head in, request out: the body arrives;
 *  - trailers: the trailer section arrived: nothing but the end of the stream may follow;
 *  - ended: the peer ended its side (HTTP/2 END_STREAM) and the transport still delivers what it
 *    buffered; a request body still going out stops (the response is complete, RFC 9113 §8.1);
 *  - closed: the handler heard its last call (onComplete or onError). Every state may close.
 *
 * A driver uses the subset its protocol needs (HTTP/1.1 never holds, HTTP/3 completes at FIN).
 */
export type StreamState = 'held' | 'sending' | 'waiting' | 'early' | 'receiving' | 'trailers' | 'ended' | 'closed';

const NEXT: Readonly<Record<StreamState, readonly StreamState[]>> = {
  held: ['sending', 'closed'],
  sending: ['waiting', 'early', 'ended', 'closed'],
  waiting: ['receiving', 'ended', 'closed'],
  early: ['receiving', 'trailers', 'ended', 'closed'],
  receiving: ['trailers', 'ended', 'closed'],
  trailers: ['ended', 'closed'],
  ended: ['closed'],
  closed: [],
};

/** Returns `to`, or throws an internal error when `from → to` is not a transition. */
export function streamTransition(from: StreamState, to: StreamState, what: string): StreamState {
  if (!NEXT[from].includes(to)) throw internalError(`${what}: illegal stream transition ${from} → ${to}`);
  return to;
}

/** The request side still sends in these states. */
export function isSending(state: StreamState): boolean {
  return state === 'sending' || state === 'early';
}

/** The final response head has arrived in these states. */
export function hasResponse(state: StreamState): boolean {
  return state === 'early' || state === 'receiving' || state === 'trailers' || state === 'ended';
}

/** After the request side is done: where a stream goes from `sending` or `early`. */
export function afterSending(state: StreamState): StreamState {
  return state === 'early' ? 'receiving' : 'waiting';
}

/** After the final head: where a stream goes from `sending` or `waiting`. */
export function afterHead(state: StreamState): StreamState {
  return state === 'sending' ? 'early' : 'receiving';
}

// ---------------------------------------------------------------------------------------------
// Timers

/** Node clamps timers of 2^31 ms or more to 1 ms; longer waits are re-armed in steps of this. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A finite delay Node's timers accept: at least 1 ms, at most `MAX_TIMER_MS`. */
export function timerDelay(ms: number): number {
  return ms >= MAX_TIMER_MS ? MAX_TIMER_MS : ms >= 1 ? ms : 1;
}

// ---------------------------------------------------------------------------------------------
// Read deadlines

/** What a read deadline watches on a stream. */
export interface ReadWatched {
  /**
   * When the stream last made progress: the peer sent bytes on it, or the transport took request
   * bytes from us. An upload that moves is activity; one the peer takes nothing of is not.
   */
  lastActivityAt: number;
  /**
   * The request-body pump waits for the caller's next chunk: it is the caller, not the peer,
   * that is slow, and the deadline does not run meanwhile.
   */
  awaitingSource: boolean;
}

/**
 * `MUXPOOL_ERR_READ_TIMEOUT` for every protocol: a stream that can neither send nor receive for
 * `limitMs` fails. One timer per connection, armed for the stream nearest its deadline; it stays
 * armed when the last stream ends and lapses at its next sweep (arming and cancelling a timer
 * per request would cost more; a sweep that comes early finds nothing to do). A limit of
 * `Infinity` never arms a timer.
 */
export class ReadDeadlines<S extends ReadWatched> {
  readonly limitMs: number;
  private readonly clock: Clock;
  private readonly streams: () => readonly S[];
  private readonly expire: (stream: S) => void;
  private timer: Timer | undefined;

  /**
   * `streams` gives a snapshot of the streams to watch (expiring one may change the live
   * collection); `expire` fails one with a read timeout.
   */
  constructor(clock: Clock, limitMs: number, streams: () => readonly S[], expire: (stream: S) => void) {
    this.clock = clock;
    this.limitMs = limitMs;
    this.streams = streams;
    this.expire = expire;
  }

  /** A stream opened: make sure a sweep is due within the limit (cheap when one already is). */
  watch(): void {
    if (this.timer === undefined && this.limitMs !== Infinity) this.arm(this.limitMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = this.clock.setTimer(this.onTimer, timerDelay(ms));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    const now = this.clock.now();
    const limit = this.limitMs;
    let next = Infinity;
    for (const stream of this.streams()) {
      if (stream.awaitingSource) {
        stream.lastActivityAt = now;
        next = Math.min(next, limit);
        continue;
      }
      const idle = now - stream.lastActivityAt;
      if (idle >= limit) this.expire(stream);
      else next = Math.min(next, limit - idle);
    }
    if (next !== Infinity) this.arm(next);
  };
}

export function readTimeoutError(message: string, maybeProcessed: boolean): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_READ_TIMEOUT', message, { maybeProcessed });
}

// ---------------------------------------------------------------------------------------------
// Request bodies

/** Buffers larger than this are written in slices, so that their progress is visible. */
export const BODY_SLICE_BYTES = 64 * 1024;

/** A large request body as slices (views, no copies): each is its own write, its own progress. */
export function* bodySlices(body: Uint8Array): Generator<Uint8Array> {
  for (let offset = 0; offset < body.byteLength; offset += BODY_SLICE_BYTES) {
    yield body.subarray(offset, Math.min(body.byteLength, offset + BODY_SLICE_BYTES));
  }
}

/** The transport side of a request-body pump: one per streamed request. */
export interface BodySink extends ReadWatched {
  /** False once the stream takes no more request bytes (done, failed, or stopped by the peer). */
  readonly acceptsBody: boolean;
  /** Writes one non-empty chunk; false asks the pump to wait for `bodyDrained()`. */
  writeBody(chunk: Uint8Array): boolean;
  /** Resolves when the transport can take more, or the stream is gone. */
  bodyDrained(): Promise<void>;
  /** Every chunk was written: end the request. */
  endBody(): void;
  /** The body failed (the caller's source threw, or its length was wrong). */
  failBody(err: MuxpoolError): void;
}

/**
 * Streams `body` into `sink` with backpressure: waits for the transport after each chunk it
 * refuses, and reads the caller's next chunk only then. Time spent waiting for the caller does not
 * count against the read deadline; time waiting for the peer does, and each chunk the transport
 * takes is activity.
 */
export async function pumpBody(sink: BodySink, body: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, declaredLength: number | undefined, clock: Clock): Promise<void> {
  const chunks = checkedBody(body, declaredLength);
  try {
    for (;;) {
      sink.awaitingSource = true;
      const next = await chunks.next();
      sink.awaitingSource = false;
      if (!sink.acceptsBody) {
        await chunks.return(undefined);
        return;
      }
      if (next.done === true) break;
      if (!sink.writeBody(next.value)) {
        await sink.bodyDrained();
        if (!sink.acceptsBody) {
          await chunks.return(undefined);
          return;
        }
      }
      sink.lastActivityAt = clock.now();
    }
    sink.endBody();
  } catch (err) {
    sink.awaitingSource = false;
    if (sink.acceptsBody) sink.failBody(bodyFailure(err));
  }
}

/** A writable node stream (socket or HTTP/2 stream), as far as draining goes. */
export interface DrainableStream {
  readonly destroyed: boolean;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

/** Resolves at the stream's next 'drain', or when it closes. */
export function waitForDrain(stream: DrainableStream): Promise<void> {
  if (stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('drain', done);
    stream.once('close', done);
  });
}

// ---------------------------------------------------------------------------------------------
// Interim responses

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * A stream's own copy of an error that ends many streams at once (a connection that closed): the
 * client sets `attempts` on the error it hands a caller, so one object must never reach two.
 */
export function errorForStream(shared: MuxpoolError, maybeProcessed: boolean | undefined = shared.maybeProcessed): MuxpoolError {
  const own = shared.forRequest();
  own.maybeProcessed = maybeProcessed;
  return own;
}
