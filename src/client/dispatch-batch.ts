/**
 * Dispatches started during one turn of the event loop, run together once its I/O callbacks are
 * done (one `setImmediate` per batch). fetch calls `dispatch()` from the promise chain of the
 * response before, so without this each request would be written from inside the processing of
 * the responses that arrived with it, one socket at a time. Run together after them, the writes
 * of a turn leave back to back and the server's answers come back in batches too: measured on
 * loopback at c=16 and c=128, about 13 µs less system time per request under fetch (fewer,
 * fuller wake-ups). The pool batches only while other dispatches are in flight: a request alone
 * starts at once (at c=1 the deferral measured a few percent slower, with nothing to gain).
 */
import { AsyncResource } from 'node:async_hooks';
import type { DispatchOptions, DispatchSink } from './dispatcher.js';

export class DispatchBatch {
  private options: DispatchOptions[] = [];
  private sinks: DispatchSink[] = [];
  /**
   * Each caller's async context: a dispatch runs in its own (AsyncLocalStorage stores, the
   * context diagnostics_channel subscribers see), not in that of the batch's first caller or of
   * `close()`. An AsyncResource costs ~0.15 µs (`AsyncLocalStorage.snapshot()` ~35 µs in Node 20).
   */
  private contexts: AsyncResource[] = [];
  private scheduled = false;
  private readonly flushBound = (): void => this.flush();

  constructor(private readonly run: (options: DispatchOptions, sink: DispatchSink) => void) {}

  get isEmpty(): boolean {
    return this.options.length === 0;
  }

  add(options: DispatchOptions, sink: DispatchSink): void {
    this.options.push(options);
    this.sinks.push(sink);
    this.contexts.push(new AsyncResource('muxpool.dispatch'));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /**
   * Starts every queued dispatch now, in order (also what `close()` and `destroy()` do first, so
   * a dispatch made just before them is in flight, as undici's would be). Bounded by the queue
   * as it was: dispatches added meanwhile go to the next batch.
   */
  flush(): void {
    this.scheduled = false;
    const options = this.options;
    const sinks = this.sinks;
    const contexts = this.contexts;
    if (options.length === 0) return;
    this.options = [];
    this.sinks = [];
    this.contexts = [];
    for (let i = 0; i < options.length; i++) {
      (contexts[i] as AsyncResource).runInAsyncScope(this.run, null, options[i] as DispatchOptions, sinks[i] as DispatchSink);
    }
  }
}
