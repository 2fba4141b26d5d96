/**
 * bench:proxy — HTTPS origins reached through tinyproxy's CONNECT tunnels: muxpool
 * `request()` against undici 7's `ProxyAgent`, in the same run, on an HTTP/1.1-only origin and
 * an HTTP/2-only origin (both local TLS servers on core 0 with tinyproxy; the clients on core 1).
 * What the ratio measures: both clients keep their tunnels alive and reuse them, so the
 * difference is what each does per request — HTTP/1.1: one request at a time per tunnel, C
 * tunnels each; HTTP/2: muxpool multiplexes every stream inside one tunnel, while undici's
 * ProxyAgent (allowH2) runs its pools' usual client-per-request-in-flight and so opens up to C
 * tunnels and TLS sessions. The tunnels each client opened are counted from tinyproxy's log and
 * saved with the results. Usage:
 *   npm run bench:proxy -- [--duration S] [--warmup S] [--concurrency 16] [--rounds N] [--clients muxpool,undici]
 * With several rounds the clients take turns (another one first in each round); the table shows
 * each client's median round and the range, and best is saved too.
 */
import { ProxyAgent, request as undiciRequest } from 'undici';
import { ConnectionPool } from '../src/index.js';
import { startTinyproxy } from '../test/helpers/proxies.js';
import { benchCertificates } from './lib/h2-bench.js';
import { HAS_TASKSET, type Result, closedLoop, parseArgs, runRounds, saveResults, startServerProcess, table } from './lib/run.js';

const argv = process.argv.slice(2);
const args = parseArgs(argv.includes('--concurrency') ? argv : [...argv, '--concurrency', '16']);
const clients = args.clients ?? ['muxpool', 'undici'];
const files = await benchCertificates('proxy');
const ca = files.certs.caCert;
const proxy = await startTinyproxy({ cpu: 0 });
const LABEL: Record<string, string> = { muxpool: 'muxpool request()', undici: 'undici ProxyAgent' };
const all: Result[] = [];
const markdowns: string[] = [];
const tunnels: Record<string, number[]> = {};

const connectsSoFar = (): number => (proxy.log.match(/Request \(file descriptor \d+\): CONNECT /g) ?? []).length;

try {
  for (const origin of ['h1', 'h2'] as const) {
    const server = await startServerProcess(origin === 'h1' ? './h1-server.js' : './h2-server.js', [files.keyPath, files.certPath]);
    const url = `https://127.0.0.1:${server.port}/`;
    const runClient = async (client: string, c: number): Promise<Result> => {
      const label = `${origin}: ${LABEL[client] ?? client}`;
      const before = connectsSoFar();
      let result: Result;
      switch (client) {
        case 'muxpool': {
          const pool = new ConnectionPool({ proxy: proxy.url, tls: { ca }, maxPerHost: c });
          result = await closedLoop(label, c, async () => {
            await (await pool.request(url)).text();
          }, args.durationMs, args.warmupMs);
          await pool.close();
          break;
        }
        case 'undici': {
          // allowH2 twice: the Agent's option alone leaves h2 out of the ALPN of the TLS inside
          // the tunnel (undici builds that connector from requestTls), and an h2-only origin refuses.
          const allowH2 = origin === 'h2';
          const agent = new ProxyAgent({ uri: proxy.url, requestTls: { ca, allowH2 }, allowH2, connections: c });
          result = await closedLoop(label, c, async () => {
            await (await undiciRequest(url, { dispatcher: agent })).body.text();
          }, args.durationMs, args.warmupMs);
          await agent.close();
          break;
        }
        default:
          throw new Error(`unknown client ${client}`);
      }
      // tinyproxy logs each CONNECT as it reads it; give the last line a moment.
      await new Promise((resolve) => setTimeout(resolve, 50));
      (tunnels[label] ??= []).push(connectsSoFar() - before);
      return result;
    };
    try {
      const results = await runRounds(clients, args.concurrency, args.rounds, runClient);
      all.push(...results);
      markdowns.push(`### ${origin === 'h1' ? 'HTTP/1.1 origin' : 'HTTP/2 origin'} through tinyproxy CONNECT\n${table(results, [`${origin}: ${LABEL.undici}`])}`);
    } finally {
      await server.stop();
    }
  }
} finally {
  await proxy.stop();
  await files.remove();
}

const best: Record<string, number> = {};
for (const r of all) best[r.client] = Math.max(...(r.rounds ?? [r.reqPerSec]));
const ratios = (['h1', 'h2'] as const).map((origin) => {
  const subject = all.find((r) => r.client === `${origin}: ${LABEL.muxpool}`);
  const peer = all.find((r) => r.client === `${origin}: ${LABEL.undici}`);
  const median = subject !== undefined && peer !== undefined && peer.reqPerSec > 0 ? subject.reqPerSec / peer.reqPerSec : undefined;
  const bestRatio = subject !== undefined && peer !== undefined ? (best[subject.client] ?? 0) / (best[peer.client] ?? 1) : undefined;
  const cpu = subject?.cpuUsPerReq !== undefined && peer?.cpuUsPerReq !== undefined && peer.cpuUsPerReq > 0 ? subject.cpuUsPerReq / peer.cpuUsPerReq : undefined;
  return { origin, median, best: bestRatio, cpu };
});
const setup = [
  process.version,
  `${args.durationMs / 1000} s per cell`,
  `${args.rounds} round${args.rounds === 1 ? '' : 's'}${args.rounds > 1 ? ' (median, range)' : ''}`,
  HAS_TASKSET ? 'origin and tinyproxy on core 0, clients on core 1' : 'no taskset',
].join(', ');
// When tinyproxy and the origin saturate their core, req/s ties whatever the client does; the
// client's CPU per request (its own core) still shows what it costs.
const ratioLines = ratios.map(
  (r) =>
    `- ${r.origin}: muxpool / undici ProxyAgent = ${r.median?.toFixed(2) ?? '—'}× req/s (median), ${r.best?.toFixed(2) ?? '—'}× (best); client CPU per request ${r.cpu?.toFixed(2) ?? '—'}×`,
);
const tunnelLines = Object.entries(tunnels).map(([label, counts]) => `- ${label}: ${counts.join(', ')} tunnel(s) per round`);
const markdown = `## bench:proxy (${setup})\n${markdowns.join('\n\n')}\n\n${ratioLines.join('\n')}\n\nCONNECT tunnels opened:\n${tunnelLines.join('\n')}`;
console.log(markdown);
const comparisons = (['h1', 'h2'] as const).map((origin) => ({ subject: `${origin}: ${LABEL.muxpool}`, peer: `${origin}: ${LABEL.undici}`, goal: 1.3 }));
console.log(`\nresults: ${await saveResults('proxy', all, markdown, { comparisons, tunnels, best, ratios })}`);
