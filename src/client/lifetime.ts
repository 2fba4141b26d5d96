/**
 * How long an exchange's stream lives when nobody reads its response: everything about garbage
 * collection in one place. A `Response` (or its body `Readable`) that is collected while its
 * body is unread cancels the stream, so an abandoned response never pins a connection forever.
 * The registries hold the exchange, which never points back at the response or its body, and
 * forget it as soon as the exchange ends, so the many responses read to the end leave the
 * collector no finalizer to run.
 */

/** What the registries need of an exchange. */
export interface Abandonable {
  /** The body ended: complete or failed. */
  readonly finished: boolean;
  /** Someone took the body (text(), body, dump()...). */
  readonly bodyTaken: boolean;
  /** Cancel the stream: nobody will read what is left. */
  abandon(): void;
}

const watched = new WeakSet<Abandonable>();

/** A collected response whose body nobody took: its stream is cancelled. */
const responses = new FinalizationRegistry<Abandonable>((exchange) => {
  if (!exchange.finished && !exchange.bodyTaken) exchange.abandon();
});

/** A collected body stream that had not ended: its stream is cancelled. */
const bodies = new FinalizationRegistry<Abandonable>((exchange) => {
  if (!exchange.finished) exchange.abandon();
});

/** `response` stands for `exchange` until the exchange ends. */
export function watchResponse(response: object, exchange: Abandonable): void {
  if (exchange.finished) return;
  responses.register(response, exchange, exchange);
  watched.add(exchange);
}

/** `body` stands for `exchange` until the exchange ends. */
export function watchBody(body: object, exchange: Abandonable): void {
  if (exchange.finished) return;
  bodies.register(body, exchange, exchange);
  watched.add(exchange);
}

/** The exchange ended: nothing is left to cancel when its response or body is collected. */
export function forgetExchange(exchange: Abandonable): void {
  if (!watched.delete(exchange)) return;
  responses.unregister(exchange);
  bodies.unregister(exchange);
}
