/**
 * `goodput` of the interop matrix as a benchmark: one 64 MiB HTTP/3 download from gtlsserver,
 * muxpool's client against ngtcp2's own client (`gtlsclient`) on the same server in the same
 * run, rounds alternating which goes first; then muxpool's client against Caddy and our own
 * HTTP/3 server. Each round is a fresh connection (handshake included) for both clients.
 *
 * gtlsclient runs with -q and no --download: the body is read and dropped, as ours is (muxpool
 * keeps it to hash it, which costs it, not the peer). Wall time of gtlsclient includes its
 * process start (a few ms against ~1 s). Results: bench/results/interop-goodput-DATE.json.
 *
 *   node build/bench/interop-goodput.js [--rounds N] [--mib N]
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { HttpVersion } from '../src/index.js';
import { poolFor, urlFor } from '../test/interop/client.js';
import { Fixture, type H3ServerName, MiB, PROFILES, sha256, startH3Target } from '../test/interop/targets.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, mib: { type: 'string', default: '64' } } });
const rounds = Math.max(1, Math.min(50, Number(values.rounds)));
const size = Number(values.mib) * MiB;

const fixture = new Fixture({ ...PROFILES.ci, transferSizes: [], lossySize: 0, streams: 0, goodputSize: size });
const expected = fixture.hashes.get('goodput.bin');

async function ours(host: string, port: number, caCert: string): Promise<number> {
  const endpoint = { host, port, caCert };
  const pool = poolFor(endpoint);
  try {
    const started = performance.now();
    const res = await pool.request(urlFor(endpoint, 'goodput.bin'), { version: HttpVersion.Http3Only });
    const bytes = await res.bytes();
    const ms = performance.now() - started;
    if (bytes.length !== size || sha256(bytes) !== expected) throw new Error('goodput.bin arrived damaged');
    return size / 1e6 / (ms / 1000);
  } finally {
    await pool.close();
  }
}

function gtlsclient(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('/usr/bin/gtlsclient', ['-q', '--exit-on-all-streams-close', host, String(port), `https://localhost:${port}/goodput.bin`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - started;
      // gtlsclient exits 0 even when it fails: a sub-10 ms run moved no 64 MiB.
      if (code !== 0 || ms < 10) reject(new Error(`gtlsclient failed (${String(code)}): ${err}`));
      else resolve(size / 1e6 / (ms / 1000));
    });
  });
}

function summary(samples: number[]): { best: number; median: number; samples: number[] } {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return { best: sorted[sorted.length - 1] ?? 0, median, samples };
}

const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, sizeMiB: size / MiB, rounds };
const ngtcp2 = await startH3Target('ngtcp2', fixture, {});
const muxpoolSamples: number[] = [];
const gtlsSamples: number[] = [];
try {
  for (let round = 0; round < rounds; round++) {
    // Alternate who goes first, so neither always meets a warm or a cold server.
    const order = round % 2 === 0 ? ['muxpool', 'gtlsclient'] : ['gtlsclient', 'muxpool'];
    for (const client of order) {
      if (client === 'muxpool') muxpoolSamples.push(await ours(ngtcp2.host, ngtcp2.port, ngtcp2.caCert));
      else gtlsSamples.push(await gtlsclient(ngtcp2.host, ngtcp2.port));
    }
    console.error(`round ${round + 1}: muxpool ${muxpoolSamples.at(-1)?.toFixed(1)} MB/s, gtlsclient ${gtlsSamples.at(-1)?.toFixed(1)} MB/s`);
  }
} finally {
  await ngtcp2.stop();
}
const mine = summary(muxpoolSamples);
const theirs = summary(gtlsSamples);
results['ngtcp2'] = { muxpool: mine, gtlsclient: theirs, ratioBest: mine.best / theirs.best, ratioMedian: mine.median / theirs.median };

for (const server of ['caddy', 'muxpool'] as H3ServerName[]) {
  const target = await startH3Target(server, fixture, {});
  const samples: number[] = [];
  try {
    for (let round = 0; round < Math.min(rounds, 3); round++) samples.push(await ours(target.host, target.port, target.caCert));
  } finally {
    await target.stop();
  }
  results[server] = { muxpool: summary(samples) };
}

console.log(JSON.stringify(results, null, 2));
console.log(
  `gtlsserver, ${size / MiB} MiB: muxpool best ${mine.best.toFixed(1)} / median ${mine.median.toFixed(1)} MB/s, gtlsclient best ${theirs.best.toFixed(1)} / median ${theirs.median.toFixed(1)} MB/s: ${(mine.best / theirs.best).toFixed(2)}× (best), ${(mine.median / theirs.median).toFixed(2)}× (median)`,
);
const dir = new URL('../../bench/results/', import.meta.url);
await mkdir(dir, { recursive: true });
const file = new URL(`interop-goodput-${String(results['date']).replace(/[:.]/g, '-')}.json`, dir);
await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
console.log(`written: ${file.pathname}`);
