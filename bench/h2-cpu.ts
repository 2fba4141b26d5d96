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
 * `--client floor` is what Node's TLS socket alone costs: a client that writes one pre-encoded
 * HEADERS frame per request and waits for the END_STREAM flag, with no HPACK decoding, no checks
 * and no API above it, reading into one reused buffer (bulk: DATA skipped, windows opened wide
 * once). No real client gets below it on this socket.
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
  if (client === 'floor') return floorClient(path);
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

/**
 * The floor: HTTP/2 reduced to writing HEADERS and spotting END_STREAM (see the file comment).
 * Reads land in one reused buffer (Node's `onread`), frames are walked by their 9-byte headers
 * and DATA payloads skipped, never copied; both windows are opened to 2^31 − 1 at once, so a
 * download needs no WINDOW_UPDATE.
 */
async function floorClient(path: string): Promise<Subject> {
  const readBuffer = Buffer.allocUnsafe(64 * 1024);
  let onBytes: (bytes: Buffer) => void = () => {};
  const socket = tls.connect({
    host: '127.0.0.1',
    port: server.port,
    ca,
    ALPNProtocols: ['h2'],
    onread: { buffer: readBuffer, callback: (length: number, buffer: Uint8Array) => (onBytes((buffer as Buffer).subarray(0, length)), true) },
  } as tls.ConnectionOptions);
  await once(socket, 'secureConnect');
  socket.setNoDelay(true);
  const maxWindow = 2 ** 31 - 1;
  const connectionCredit = Buffer.alloc(4);
  connectionCredit.writeUInt32BE(maxWindow - 65_535);
  const initialWindow = Buffer.from([0x00, 0x04, 0, 0, 0, 0]);
  initialWindow.writeUInt32BE(maxWindow, 2);
  socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, initialWindow), frame(8, 0, 0, connectionCredit)]));
  const authority = `127.0.0.1:${server.port}`;
  // HPACK: :method GET, :scheme https (static table), :path and :authority literals.
  const block = Buffer.concat([Buffer.from([0x82, 0x87, 0x44, path.length]), Buffer.from(path), Buffer.from([0x41, authority.length]), Buffer.from(authority)]);
  let nextId = 1;
  let done: (() => void) | undefined;
  /** DATA payload of the request in flight (the node server pads nothing), checked at its end. */
  let dataBytes = 0;
  const header = Buffer.alloc(9);
  let headerHave = 0;
  /** Payload bytes of the current frame still to come (skipped; control frames are tiny). */
  let payloadLeft = 0;
  let control: Buffer[] = [];
  let current = { type: 0, flags: 0, streamId: 0 };
  const frameDone = (): void => {
    const { type, flags, streamId } = current;
    if (type === 4 && (flags & 1) === 0) socket.write(frame(4, 1, 0, Buffer.alloc(0)));
    if (type === 6 && (flags & 1) === 0) socket.write(frame(6, 1, 0, Buffer.concat(control).subarray(0, 8)));
    if ((type === 0 || type === 1) && (flags & 1) !== 0 && streamId === nextId - 2) {
      const resolve = done;
      done = undefined;
      resolve?.();
    }
    control = [];
  };
  onBytes = (bytes: Buffer): void => {
    let at = 0;
    // Bounded by the bytes received: each turn consumes a header or payload bytes.
    while (at < bytes.length) {
      if (payloadLeft > 0) {
        const take = Math.min(payloadLeft, bytes.length - at);
        if (current.type === 6) control.push(Buffer.from(bytes.subarray(at, at + take)));
        else if (current.type === 0) dataBytes += take;
        payloadLeft -= take;
        at += take;
        if (payloadLeft === 0) frameDone();
        continue;
      }
      const take = Math.min(9 - headerHave, bytes.length - at);
      bytes.copy(header, headerHave, at, at + take);
      headerHave += take;
      at += take;
      if (headerHave < 9) break;
      headerHave = 0;
      current = { type: header[3] as number, flags: header[4] as number, streamId: header.readUInt32BE(5) & 0x7fffffff };
      payloadLeft = header.readUIntBE(0, 3);
      if (payloadLeft === 0) frameDone();
    }
  };
  return {
    once: () =>
      new Promise<void>((resolve, reject) => {
        dataBytes = 0;
        done = () => {
          if (mode === 'bulk' && dataBytes !== mib * 1024 * 1024) reject(new Error(`floor received ${dataBytes} bytes`));
          else resolve();
        };
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
