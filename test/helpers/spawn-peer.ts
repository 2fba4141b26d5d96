/**
 * Starting and stopping an independent peer (nghttpd, h2o, Caddy) as a child process: what their
 * helpers share. The child's stdout and stderr are collected as its log; `spawnPeer` resolves
 * once `ready()` says so, or stops the child and throws with the log when it exits first or
 * `startLimitMs` passes. `stop()` sends SIGTERM, then SIGKILL after `stopLimitMs`, waits for the
 * exit, and removes the peer's files (`cleanup`). Every wait is bounded. Besides the HTTP peers,
 * the proxies (tinyproxy, dante) and gtlsserver start through it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SpawnPeerOptions {
  /** What the error says did not start, e.g. `nghttpd`. */
  name: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv | undefined;
  /** Whether the peer serves yet; called every `pollMs` while it runs (gets the log so far). */
  ready: (log: string) => boolean | Promise<boolean>;
  /** Removes what the peer was given (its temporary directory); runs once the child is gone. */
  cleanup?: (() => Promise<void>) | undefined;
  startLimitMs?: number | undefined;
  stopLimitMs?: number | undefined;
  pollMs?: number | undefined;
  /**
   * Start the child in its own process group and signal the whole group on stop: for daemons
   * that fork helpers sharing their group (dante).
   */
  processGroup?: boolean | undefined;
  /**
   * Bounds the collected log for chatty peers: `start` stops collecting at `chars` (the evidence
   * a case looks for is near the start), `end` keeps the last `chars / 2` once `chars` is passed.
   */
  logLimit?: { chars: number; keep: 'start' | 'end' } | undefined;
}

export interface SpawnedPeer {
  readonly child: ChildProcess;
  /** Everything the peer printed so far. */
  readonly log: string;
  /** Stops the peer (SIGTERM, then SIGKILL) and removes its files; safe to call twice. */
  stop(): Promise<void>;
}

export async function spawnPeer(options: SpawnPeerOptions): Promise<SpawnedPeer> {
  const startLimitMs = options.startLimitMs ?? 10_000;
  const stopLimitMs = options.stopLimitMs ?? 3_000;
  const pollMs = options.pollMs ?? 25;
  const group = options.processGroup === true;
  const child: ChildProcess = spawn(options.command, options.args, {
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: group,
  });
  const logLimit = options.logLimit;
  let log = '';
  const onOutput = (chunk: Buffer): void => {
    if (logLimit === undefined) {
      log += chunk.toString('utf8');
    } else if (logLimit.keep === 'start') {
      if (log.length < logLimit.chars) log += chunk.toString('utf8');
    } else {
      log += chunk.toString('utf8');
      if (log.length > logLimit.chars) log = log.slice(-Math.floor(logLimit.chars / 2));
    }
  };
  child.stdout?.on('data', onOutput);
  child.stderr?.on('data', onOutput);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  // 'close': the process exited and its pipes are drained (the whole log is in).
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const running = (): boolean => child.exitCode === null && child.signalCode === null && spawnError === undefined;
  const signal = (sig: NodeJS.Signals): void => {
    try {
      // A detached child leads its own process group; its helpers share it.
      if (group && child.pid !== undefined) process.kill(-child.pid, sig);
      else child.kill(sig);
    } catch {
      // already gone
    }
  };
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (running()) {
        signal('SIGTERM');
        const killTimer = setTimeout(() => signal('SIGKILL'), stopLimitMs);
        await exited;
        clearTimeout(killTimer);
      } else if (spawnError === undefined) {
        await exited;
      }
      await options.cleanup?.();
    })();
    return stopped;
  };
  const deadline = Date.now() + startLimitMs;
  for (;;) {
    if (running() && (await options.ready(log))) break;
    if (!running() || Date.now() > deadline) {
      await stop();
      throw new Error(`${options.name} did not start (exit ${String(child.exitCode)}${spawnError === undefined ? '' : `, ${String(spawnError)}`}):\n${log}`);
    }
    await sleep(pollMs);
  }
  return {
    child,
    get log() {
      return log;
    },
    stop,
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freeTcpPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether something accepts TCP connections on host:port (default 127.0.0.1, within 500 ms). */
export function accepts(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.setTimeout(500);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}
