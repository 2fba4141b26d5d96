/**
 * h2-cpu — client CPU time per request (c = 1) or per MiB (bulk download) of muxpool over our
 * HTTP/2 engine and of a raw `node:http2` session, for A/B comparisons of the client's hot path.
 * CPU time (process.cpuUsage, user + system) depends far less on what else runs on the machine
 * than req/s does, so two builds can be compared on a busy 2-core box: run each build in turn,
 * several times, under `flock /tmp/muxpool-bench.lock`. Usage (after `npm run build:test`):
 *   taskset -c 1 node build/bench/h2-cpu.js [--mode c1|bulk] [--client muxpool|node|floor]
 *                                            [--requests N] [--mib N] [--samples N]
 * c1: `--samples` runs of `--requests` sequential GETs (`pool.request()` + `text()`, as bench:h2
 * at c = 1) against `lib/h2-server.ts`; bulk: `--samples` downloads of `--mib` MiB read through
 * `res.body` (as bench:h2-bulk) from `lib/h2-bulk-server.ts`. Prints every sample, then the
 * median and the best: µs per request, or ms per MiB.
 *
 * `--client floor` (c1 only) is what Node's TLS socket alone costs per request: a client that
 * writes one pre-encoded HEADERS frame per request and waits for the END_STREAM flag, with no
 * HPACK decoding, no checks and no API above it. No real client gets below it on this socket.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import tls from 'node:tls';
import { ConnectionPool } from '../src/index.js';
import { benchCertificates, countBody, rawH2Count, rawH2Get } from './lib/h2-bench.js';
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
if (client !== 'muxpool' && client !== 'node' && client !== 'floor') throw new Error(`unknown client ${client} (muxpool, node, floor)`);
if (client === 'floor' && mode !== 'c1') throw new Error('--client floor runs only --mode c1');

const files = await benchCertificates('h2-cpu');
const server = await startServerProcess(mode === 'c1' ? './h2-server.js' : './h2-bulk-server.js', [files.keyPath, files.certPath]).catch(
  async (err: unknown) => {
    await files.remove();
    throw err;
  },
);
const origin = `https://127.0.0.1:${server.port}`;
const ca = files.certs.caCert;

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
  if (client === 'floor') return floorClient();
  if (client === 'node') {
    const session = http2.connect(origin, { ca });
    session.on('error', () => {});
    await once(session, 'connect');
    return {
      once: mode === 'c1' ? () => rawH2Get(session) : async () => check(await rawH2Count(session, path)),
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

/** A 9-byte frame header and its payload (RFC 9113 §4.1). */
function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId, 5);
  out.set(payload, 9);
  return out;
}

/** The floor: HTTP/2 reduced to writing HEADERS and spotting END_STREAM (see the file comment). */
async function floorClient(): Promise<Subject> {
  const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca, ALPNProtocols: ['h2'] });
  await once(socket, 'secureConnect');
  socket.setNoDelay(true);
  const connectionCredit = Buffer.alloc(4);
  connectionCredit.writeUInt32BE(2 ** 31 - 1 - 65_535);
  // Preface, empty SETTINGS, and the connection window opened wide (responses are 12 bytes).
  socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0)), frame(8, 0, 0, connectionCredit)]));
  const authority = `127.0.0.1:${server.port}`;
  // HPACK: :method GET, :scheme https, :path / (static table), :authority literal.
  const block = Buffer.concat([Buffer.from([0x82, 0x87, 0x84, 0x41, authority.length]), Buffer.from(authority)]);
  let nextId = 1;
  let pending: Buffer = Buffer.alloc(0);
  let done: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    // Bounded by the bytes received: each turn consumes one whole frame.
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const type = pending[3] as number;
      const flags = pending[4] as number;
      const streamId = pending.readUInt32BE(5) & 0x7fffffff;
      if (type === 4 && (flags & 1) === 0) socket.write(frame(4, 1, 0, Buffer.alloc(0)));
      if (type === 6 && (flags & 1) === 0) socket.write(frame(6, 1, 0, pending.subarray(9, 17)));
      if ((type === 0 || type === 1) && (flags & 1) !== 0 && streamId === nextId - 2) {
        const resolve = done;
        done = undefined;
        resolve?.();
      }
      pending = pending.subarray(9 + length);
    }
  });
  return {
    once: () =>
      new Promise<void>((resolve) => {
        done = resolve;
        socket.write(frame(1, 0x5, nextId, block));
        nextId += 2;
      }),
    close: async () => {
      socket.destroy();
    },
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
