/**
 * `goodput` of the interop matrix as a benchmark: one 64 MiB HTTP/3 download from gtlsserver,
 * muxpool's client against ngtcp2's own client (`gtlsclient`) on the same server in the same
 * run, rounds alternating which goes first; then muxpool's client against Caddy and our own
 * HTTP/3 server. Each round is a fresh connection (handshake included) for both clients.
 *
 * gtlsclient runs with -q and no --download: the body is read and dropped. Ours is read as a
 * stream (`res.body`) and its chunks kept: they are hashed after the clock stops, so neither
 * client pays for assembling or checking 64 MiB inside the timing (a `bytes()` copy of 64 MiB
 * into fresh memory costs ~10% of our time). Wall time of gtlsclient includes its process
 * start (a few ms against ~0.5 s).
 *
 * Both clients' CPU time per MiB is reported beside their MB/s (ours from process.cpuUsage,
 * gtlsclient's from /usr/bin/time when present): on a shared machine it says whether a change
 * made a client cheaper or only luckier. The download is CPU-bound on our side, so CPU/MiB
 * is the figure that moves with the driver; MB/s follows it and the machine's load.
 *
 *   node build/bench/interop-goodput.js [--rounds N] [--mib N] [--ngtcp2-only] [--cc cubic|reno|bbr|bbr2]
 *
 * `--ngtcp2-only` skips the Caddy and muxpool-server rows (quick A/B runs); `--cc` picks
 * gtlsserver's congestion controller (default: its own, cubic), the same for both clients.
 * Results: bench/results/interop-goodput-DATE.json.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { HttpVersion } from '../src/index.js';
import { poolFor, urlFor } from '../test/interop/client.js';
import { Fixture, type H3ServerName, type H3TargetOptions, MiB, PROFILES, startH3Target } from '../test/interop/targets.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    mib: { type: 'string', default: '64' },
    'ngtcp2-only': { type: 'boolean', default: false },
    cc: { type: 'string' },
  },
});
const rounds = Math.max(1, Math.min(50, Number(values.rounds)));
const size = Number(values.mib) * MiB;
const CC = ['cubic', 'reno', 'bbr', 'bbr2'] as const;
const cc = values.cc as (typeof CC)[number] | undefined;
if (cc !== undefined && !CC.includes(cc)) throw new Error(`--cc must be one of ${CC.join(', ')}`);
const TIME = '/usr/bin/time';

const fixture = new Fixture({ ...PROFILES.ci, transferSizes: [], lossySize: 0, streams: 0, goodputSize: size });
const expected = fixture.hashes.get('goodput.bin');

interface Sample {
  mbps: number;
  /** CPU ms per MiB (user + system); undefined when it could not be measured. */
  cpuMsPerMiB: number | undefined;
}

async function ours(host: string, port: number, caCert: string): Promise<Sample> {
  const endpoint = { host, port, caCert };
  const pool = poolFor(endpoint);
  try {
    const started = performance.now();
    const cpu = process.cpuUsage();
    const res = await pool.request(urlFor(endpoint, 'goodput.bin'), { version: HttpVersion.Http3Only });
    const chunks: Uint8Array[] = [];
    for await (const chunk of res.body) chunks.push(chunk as Uint8Array);
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const hash = createHash('sha256');
    let length = 0;
    for (const chunk of chunks) {
      hash.update(chunk);
      length += chunk.byteLength;
    }
    if (res.status !== 200 || length !== size || hash.digest('hex') !== expected) throw new Error('goodput.bin arrived damaged');
    return { mbps: size / 1e6 / (ms / 1000), cpuMsPerMiB: (used.user + used.system) / 1000 / (size / MiB) };
  } finally {
    await pool.close();
  }
}

function gtlsclient(host: string, port: number): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const args = ['-q', '--exit-on-all-streams-close', host, String(port), `https://localhost:${port}/goodput.bin`];
    // /usr/bin/time prints "user system" (seconds) as the last line of stderr.
    const timed = existsSync(TIME);
    const started = performance.now();
    const child = timed
      ? spawn(TIME, ['-f', '%U %S', '/usr/bin/gtlsclient', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('/usr/bin/gtlsclient', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - started;
      // gtlsclient exits 0 even when it fails: a sub-10 ms run moved no 64 MiB.
      if (code !== 0 || ms < 10) {
        reject(new Error(`gtlsclient failed (${String(code)}): ${err}`));
        return;
      }
      let cpuMsPerMiB: number | undefined;
      const times = timed ? /(\d+\.\d+) (\d+\.\d+)\s*$/.exec(err) : null;
      if (times !== null) cpuMsPerMiB = ((Number(times[1]) + Number(times[2])) * 1000) / (size / MiB);
      resolve({ mbps: size / 1e6 / (ms / 1000), cpuMsPerMiB });
    });
  });
}

interface Summary {
  best: number;
  median: number;
  samples: number[];
}

function summary(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return { best: sorted[sorted.length - 1] ?? 0, median, samples };
}

/** MB/s best and median; CPU/MiB median and lowest (the lowest is the "best" for CPU). */
function summarize(samples: Sample[]): { mbps: Summary; cpuMsPerMiB: { lowest: number; median: number; samples: number[] } | undefined } {
  const cpu = samples.map((s) => s.cpuMsPerMiB).filter((v): v is number => v !== undefined);
  const cpuSummary = summary(cpu);
  return {
    mbps: summary(samples.map((s) => s.mbps)),
    cpuMsPerMiB: cpu.length === 0 ? undefined : { lowest: Math.min(...cpu), median: cpuSummary.median, samples: cpu },
  };
}

const fmt = (s: Sample | undefined): string =>
  s === undefined ? '?' : `${s.mbps.toFixed(1)} MB/s${s.cpuMsPerMiB === undefined ? '' : ` (${s.cpuMsPerMiB.toFixed(1)} CPU ms/MiB)`}`;

const targetOptions: H3TargetOptions = cc === undefined ? {} : { cc };
const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, sizeMiB: size / MiB, rounds, cc: cc ?? 'default' };
const ngtcp2 = await startH3Target('ngtcp2', fixture, targetOptions);
const muxpoolSamples: Sample[] = [];
const gtlsSamples: Sample[] = [];
try {
  for (let round = 0; round < rounds; round++) {
    // Alternate who goes first, so neither always meets a warm or a cold server.
    const order = round % 2 === 0 ? ['muxpool', 'gtlsclient'] : ['gtlsclient', 'muxpool'];
    for (const client of order) {
      if (client === 'muxpool') muxpoolSamples.push(await ours(ngtcp2.host, ngtcp2.port, ngtcp2.caCert));
      else gtlsSamples.push(await gtlsclient(ngtcp2.host, ngtcp2.port));
    }
    console.error(`round ${round + 1}: muxpool ${fmt(muxpoolSamples.at(-1))}, gtlsclient ${fmt(gtlsSamples.at(-1))}`);
  }
} finally {
  await ngtcp2.stop();
}
const mine = summarize(muxpoolSamples);
const theirs = summarize(gtlsSamples);
results['ngtcp2'] = {
  muxpool: mine,
  gtlsclient: theirs,
  ratioBest: mine.mbps.best / theirs.mbps.best,
  ratioMedian: mine.mbps.median / theirs.mbps.median,
};

for (const server of (values['ngtcp2-only'] === true ? [] : ['caddy', 'muxpool']) as H3ServerName[]) {
  const target = await startH3Target(server, fixture, {});
  const samples: Sample[] = [];
  try {
    for (let round = 0; round < Math.min(rounds, 3); round++) samples.push(await ours(target.host, target.port, target.caCert));
  } finally {
    await target.stop();
  }
  results[server] = { muxpool: summarize(samples) };
}

console.log(JSON.stringify(results, null, 2));
const cpuNote = (s: ReturnType<typeof summarize>): string =>
  s.cpuMsPerMiB === undefined ? '' : `, median ${s.cpuMsPerMiB.median.toFixed(1)} CPU ms/MiB`;
console.log(
  `gtlsserver, ${size / MiB} MiB: muxpool best ${mine.mbps.best.toFixed(1)} / median ${mine.mbps.median.toFixed(1)} MB/s${cpuNote(mine)}; ` +
    `gtlsclient best ${theirs.mbps.best.toFixed(1)} / median ${theirs.mbps.median.toFixed(1)} MB/s${cpuNote(theirs)}: ` +
    `${(mine.mbps.best / theirs.mbps.best).toFixed(2)}× (best), ${(mine.mbps.median / theirs.mbps.median).toFixed(2)}× (median)`,
);
const dir = new URL('../../bench/results/', import.meta.url);
await mkdir(dir, { recursive: true });
const file = new URL(`interop-goodput-${String(results['date']).replace(/[:.]/g, '-')}.json`, dir);
await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
console.log(`written: ${file.pathname}`);
