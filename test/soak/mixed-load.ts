/**
 * Mixed load through one pool, one protocol after another (issue 16, item 5): an HTTP/1.1
 * phase, then HTTP/2, then HTTP/3, each with `concurrency` requests in flight. About 2% of the
 * requests are aborted mid-body, 2% get a 1 ms deadline on an 8 MiB body, 2% drop their
 * response unread (the garbage collector frees it); the rest read their body whole. Every
 * outcome is counted by phase and error code: only the failures a request asked for (ABORTED,
 * REQUEST_TIMEOUT where the deadline was 1 ms) are expected.
 *
 * Run: `node build/test/soak/mixed-load.js --run [--requests N] [--concurrency C] [--phases h1,h2,h3]
 * [--seed S] [--skip drop-unread,deadline-1ms,abort-mid-body] [--verbose]`
 * (the server runs in a child process, as `muxpool serve` would). Without `--run` (imported,
 * or run by `node --test`) it does nothing.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ConnectionPool, HttpVersion, MuxpoolError, type ConnectionPoolOptions } from '../../src/index.js';
import { mulberry32 } from '../helpers/prng.js';

export type Phase = 'h1' | 'h2' | 'h3';

export interface MixedLoadOptions {
  /** Kinds of request replaced by plain reads, to tell which one a failure needs. */
  skip?: readonly string[];
  /** Print each unexpected failure. */
  verbose?: boolean;
  requests: number;
  concurrency: number;
  phases: readonly Phase[];
  /** Random seed: the same seed gives the same sequence of request kinds. */
  seed?: number;
  /** Every request settles within this (a bound on the whole script: nothing waits forever). */
  requestTimeoutMs?: number;
  pool?: ConnectionPoolOptions;
  log?: (line: string) => void;
}

export interface PhaseReport {
  phase: Phase;
  requests: number;
  /** Settled as asked: read whole, or failed the way the request asked for. */
  asAsked: number;
  /** Failures nobody asked for, by error code. */
  unexpected: Record<string, number>;
  /** Responses by the protocol that carried them. */
  protocols: Record<string, number>;
  durationMs: number;
}

const MiB = 1024 * 1024;
const VERSION: Record<Phase, HttpVersion> = { h1: HttpVersion.Http1_1, h2: HttpVersion.Http2, h3: HttpVersion.Http3 };

type Kind = 'read' | 'abort-mid-body' | 'deadline-1ms' | 'drop-unread';

function kindOf(r: number): Kind {
  if (r < 0.02) return 'abort-mid-body';
  if (r < 0.04) return 'deadline-1ms';
  if (r < 0.06) return 'drop-unread';
  return 'read';
}


export interface ServerProcess {
  httpsUrl: string;
  caCert: string;
  http3: boolean;
  stop(): Promise<void>;
}

/** Starts the embedded server in a child process (test/soak/embedded-child.js --serve). */
export async function startServerProcess(): Promise<ServerProcess> {
  const script = fileURLToPath(new URL('./embedded-child.js', import.meta.url));
  const child = spawn(process.execPath, [script, '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(() => {
      throw new Error('the server process exited before it was ready');
    }),
  ])) as [string];
  lines.close();
  const info = JSON.parse(line) as { httpsUrl: string; caCert: string; http3: boolean };
  return {
    ...info,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function one(
  pool: ConnectionPool,
  base: string,
  version: HttpVersion,
  kind: Kind,
  size: number,
  limitMs: number,
  report: PhaseReport,
  verbose: boolean,
): Promise<void> {
  const controller = new AbortController();
  const limit = setTimeout(() => controller.abort(new Error('request bound')), limitMs);
  let asked: string | undefined;
  try {
    switch (kind) {
      case 'read': {
        const res = await pool.request(`${base}/bytes/${size}`, { version, signal: controller.signal });
        report.protocols[res.protocol] = (report.protocols[res.protocol] ?? 0) + 1;
        const body = await res.bytes();
        if (body.byteLength !== size) throw new Error(`body of ${body.byteLength} bytes, expected ${size}`);
        break;
      }
      case 'abort-mid-body': {
        asked = 'MUXPOOL_ERR_ABORTED';
        const mine = new AbortController();
        const both = AbortSignal.any([mine.signal, controller.signal]);
        const res = await pool.request(`${base}/bytes/${4 * MiB}`, { version, signal: both });
        report.protocols[res.protocol] = (report.protocols[res.protocol] ?? 0) + 1;
        for await (const chunk of res.body) {
          void chunk;
          mine.abort();
        }
        throw new Error('the body ended although the request was aborted');
      }
      case 'deadline-1ms': {
        asked = 'MUXPOOL_ERR_REQUEST_TIMEOUT';
        const res = await pool.request(`${base}/bytes/${8 * MiB}`, { version, signal: controller.signal, timeoutMs: 1 });
        await res.dump();
        // A request this fast is not a failure, only not what the test wanted.
        break;
      }
      case 'drop-unread': {
        const res = await pool.request(`${base}/bytes/${256 * 1024}`, { version, signal: controller.signal });
        report.protocols[res.protocol] = (report.protocols[res.protocol] ?? 0) + 1;
        break;
      }
    }
    report.asAsked++;
  } catch (err) {
    const code = err instanceof MuxpoolError ? err.code : err instanceof Error ? `Error: ${err.message}` : String(err);
    if (code === asked) report.asAsked++;
    else {
      report.unexpected[code] = (report.unexpected[code] ?? 0) + 1;
      if (verbose) console.log(kind, err);
    }
  } finally {
    clearTimeout(limit);
  }
}

export async function runMixedLoad(base: string, caCert: string, options: MixedLoadOptions): Promise<PhaseReport[]> {
  const next = mulberry32(options.seed ?? 1);
  const limitMs = options.requestTimeoutMs ?? 60_000;
  // As many connections per origin as requests in flight: HTTP/1.1 then has no queue, whose
  // waits on a dropped body (freed only when the garbage collector runs) would dominate.
  const pool = new ConnectionPool({ maxPerHost: options.concurrency, ...options.pool, tls: { ca: caCert } });
  const reports: PhaseReport[] = [];
  try {
    for (const phase of options.phases) {
      const report: PhaseReport = { phase, requests: options.requests, asAsked: 0, unexpected: {}, protocols: {}, durationMs: 0 };
      const started = performance.now();
      let issued = 0;
      const worker = async (): Promise<void> => {
        // Bounded: `requests` requests in all, shared by the workers.
        while (issued < options.requests) {
          issued++;
          const drawn = kindOf(next());
          const kind = options.skip?.includes(drawn) === true ? 'read' : drawn;
          const size = 1 + Math.floor(next() * 64 * 1024);
          await one(pool, base, VERSION[phase], kind, size, limitMs, report, options.verbose === true);
        }
      };
      await Promise.all(Array.from({ length: options.concurrency }, worker));
      report.durationMs = Math.round(performance.now() - started);
      reports.push(report);
      options.log?.(`${phase}: ${JSON.stringify(report)}`);
    }
  } finally {
    await pool.close();
  }
  return reports;
}

function argValue(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 && at + 1 < process.argv.length ? (process.argv[at + 1] as string) : fallback;
}

if (process.argv.includes('--run')) {
  const server = await startServerProcess();
  try {
    const reports = await runMixedLoad(server.httpsUrl, server.caCert, {
      requests: Number(argValue('--requests', '3000')),
      concurrency: Number(argValue('--concurrency', '32')),
      phases: argValue('--phases', 'h1,h2,h3').split(',') as Phase[],
      seed: Number(argValue('--seed', String(Date.now() & 0xffff))),
      skip: argValue('--skip', '').split(','),
      verbose: process.argv.includes('--verbose'),
      log: (line) => console.log(line),
    });
    const idle = reports.reduce((sum, r) => sum + (r.unexpected['MUXPOOL_ERR_QUIC_IDLE_TIMEOUT'] ?? 0), 0);
    console.log(`QUIC_IDLE_TIMEOUT failures: ${idle}`);
  } finally {
    await server.stop();
  }
}
