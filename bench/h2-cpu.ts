/**
 * h2-cpu — client CPU time per request (c = 1) or per MiB (bulk download) of muxpool over our
 * HTTP/2 engine and of a raw `node:http2` session, for A/B comparisons of the client's hot path.
 * CPU time (process.cpuUsage, user + system) depends far less on what else runs on the machine
 * than req/s does, so two builds can be compared on a busy 2-core box: run each build in turn,
 * several times, under `flock /tmp/muxpool-bench.lock`. Usage (after `npm run build:test`):
 *   taskset -c 1 node build/bench/h2-cpu.js [--mode c1|bulk] [--client muxpool|node]
 *                                            [--requests N] [--mib N] [--samples N]
 * c1: `--samples` runs of `--requests` sequential GETs (`pool.request()` + `text()`, as bench:h2
 * at c = 1) against `lib/h2-server.ts`; bulk: `--samples` downloads of `--mib` MiB read through
 * `res.body` (as bench:h2-bulk) from `lib/h2-bulk-server.ts`. Prints every sample, then the
 * median and the best: µs per request, or ms per MiB.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import type { Readable } from 'node:stream';
import { ConnectionPool } from '../src/index.js';
import { benchCertificates, rawH2Get } from './lib/h2-bench.js';
import { startServerProcess } from './lib/run.js';

function argValue(flag: string, fallback: string): string {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(flag);
  return i >= 0 ? (argv[i + 1] ?? fallback) : fallback;
}

const mode = argValue('--mode', 'c1');
const client = argValue('--client', 'muxpool');
const requests = Math.max(1, Math.floor(Number(argValue('--requests', '20000'))));
const mib = Math.max(1, Math.floor(Number(argValue('--mib', '256'))));
const samples = Math.max(1, Math.floor(Number(argValue('--samples', '5'))));
if (mode !== 'c1' && mode !== 'bulk') throw new Error(`unknown mode ${mode} (c1, bulk)`);
if (client !== 'muxpool' && client !== 'node') throw new Error(`unknown client ${client} (muxpool, node)`);

const files = await benchCertificates('h2-cpu');
const server = await startServerProcess(mode === 'c1' ? './h2-server.js' : './h2-bulk-server.js', [files.keyPath, files.certPath]).catch(
  async (err: unknown) => {
    await files.remove();
    throw err;
  },
);
const origin = `https://127.0.0.1:${server.port}`;
const ca = files.certs.caCert;

function countBody(body: Readable): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let bytes = 0;
    body.on('data', (chunk: Uint8Array) => {
      bytes += chunk.byteLength;
    });
    body.once('end', () => resolve(bytes));
    body.once('error', reject);
  });
}

function rawCount(session: http2.ClientHttp2Session, path: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': path }, { endStream: true });
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    stream.once('end', () => resolve(bytes));
    stream.once('error', reject);
  });
}

/** One unit of work (a request, or a whole download): what a sample repeats. */
interface Subject {
  once(): Promise<void>;
  close(): Promise<void>;
}

async function subject(): Promise<Subject> {
  const path = mode === 'c1' ? '/' : `/bulk/${mib * 1024 * 1024}`;
  const expected = mode === 'c1' ? -1 : mib * 1024 * 1024;
  const check = (bytes: number): void => {
    if (bytes !== expected) throw new Error(`received ${bytes} bytes instead of ${expected}`);
  };
  if (client === 'node') {
    const session = http2.connect(origin, { ca });
    session.on('error', () => {});
    await once(session, 'connect');
    return {
      once: mode === 'c1' ? () => rawH2Get(session) : async () => check(await rawCount(session, path)),
      close: () => new Promise<void>((resolve) => session.close(() => resolve())),
    };
  }
  const pool = new ConnectionPool({ tls: { ca } });
  const url = `${origin}${path}`;
  return {
    once:
      mode === 'c1'
        ? async () => {
            const res = await pool.request(url);
            await res.text();
          }
        : async () => {
            const res = await pool.request(url);
            check(await countBody(res.body));
          },
    close: () => pool.close(),
  };
}

const results: number[] = [];
try {
  const s = await subject();
  const perSample = mode === 'c1' ? requests : 1;
  // Warm-up: the JIT and the connection, not measured.
  for (let i = 0; i < (mode === 'c1' ? Math.min(requests, 5000) : 1); i++) await s.once();
  for (let sample = 0; sample < samples; sample++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    // Bounded: perSample iterations.
    for (let i = 0; i < perSample; i++) await s.once();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = cpu.user + cpu.system;
    const figure = mode === 'c1' ? cpuUs / requests : cpuUs / 1000 / mib;
    results.push(figure);
    const rate = mode === 'c1' ? `${(requests / seconds).toFixed(0)} req/s` : `${(mib / seconds).toFixed(0)} MiB/s`;
    const systemShare = cpuUs === 0 ? 0 : (100 * cpu.system) / cpuUs;
    process.stderr.write(
      `${client} ${mode} sample ${sample + 1}: ${figure.toFixed(mode === 'c1' ? 1 : 3)} ${mode === 'c1' ? 'µs/req' : 'ms/MiB'} (${systemShare.toFixed(0)}% system), ${rate}\n`,
    );
  }
  await s.close();
} finally {
  await server.stop();
  await files.remove();
}
const sorted = [...results].sort((a, b) => a - b);
const unit = mode === 'c1' ? 'µs/req' : 'ms/MiB';
console.log(
  `${client} ${mode}: median ${(sorted[Math.floor((sorted.length - 1) / 2)] as number).toFixed(mode === 'c1' ? 1 : 3)} ${unit}, best ${(sorted[0] as number).toFixed(mode === 'c1' ? 1 : 3)} ${unit}`,
);
