/**
 * A worker thread of `muxpool bench --workers N`: runs its share of the load on a pool of its
 * own and reports to the main thread.
 *
 * Messages: worker → main `ready`, then `progress` every PROGRESS_INTERVAL_MS, then `result`
 * (or `failed`); main → worker `start`, and `stop` to end early.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LoadEngine, type LoadPlan, type SerializedLoadResult, serializeResult } from './bench-load.js';

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'progress'; completed: number; errors: number }
  | { type: 'result'; result: SerializedLoadResult }
  | { type: 'failed'; message: string };

export type MainMessage = { type: 'start' } | { type: 'stop' };

const PROGRESS_INTERVAL_MS = 100;

if (parentPort === null) throw new Error('bench-worker.js runs only as a worker thread');
const port = parentPort;
const post = (message: WorkerMessage): void => port.postMessage(message);

function serve(plan: LoadPlan): void {
  let engine: LoadEngine;
  try {
    engine = new LoadEngine(plan);
  } catch (err) {
    post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    port.unref();
    return;
  }
  let started = false;
  port.on('message', (message: MainMessage) => {
    if (message.type === 'stop') {
      engine.stop();
      return;
    }
    if (started) return;
    started = true;
    const ticker = setInterval(() => post({ type: 'progress', completed: engine.completed, errors: engine.errors }), PROGRESS_INTERVAL_MS);
    const finish = (message: WorkerMessage): void => {
      clearInterval(ticker);
      post(message);
      // Nothing else keeps the thread alive now: it ends once the message is out.
      port.unref();
    };
    engine.run().then(
      (result) => finish({ type: 'result', result: serializeResult(result) }),
      (err: unknown) => finish({ type: 'failed', message: err instanceof Error ? err.message : String(err) }),
    );
  });
  post({ type: 'ready' });
}

serve(workerData as LoadPlan);
