/**
 * bench:fetch — Node's own `fetch` with three dispatchers: its default (the undici bundled with
 * Node), undici 7's `Agent`, and a muxpool `ConnectionPool` (`fetch(url, { dispatcher: pool })`).
 * The WHATWG layer is the same for all three, so the differences come from the connections.
 * Plus `pool.request()` with its defaults (redirects followed, decompression on) against
 * `redirect: 'manual', decompress: false`, on responses that use neither: what those features
 * cost when unused, as req/s and as CPU time per request (one pool, the two alternating in
 * short bursts in this process). HTTP/1.1 in cleartext and over TLS, one local server; every
 * client has C connections (`fetch-muxpool-default`, opt-in: the pool's defaults). Usage:
 *   npm run bench:fetch -- [--duration S] [--warmup S] [--concurrency 1,16,128] [--rounds N (default 3)] [--cost-bursts N (default 16)]
 *                          [--clients fetch,fetch-undici,fetch-muxpool,request,request-plain,fetch-muxpool-default]
 */
// First: Node's own default dispatcher is made before undici 7 is imported (see node-fetch.ts).
import { UndiciAgent as Agent } from './lib/node-fetch.js';
import { ConnectionPool, type RequestOptions } from '../src/index.js';
import { ACCEPT_ENCODING } from '../src/client/decode.js';
import { benchCertificates } from './lib/h2-bench.js';
import { HAS_TASKSET, type Result, closedLoop, parseArgs, runRounds, saveResults, startServerProcess, table } from './lib/run.js';

const args = parseArgs(process.argv.slice(2));
// Ratios on a shared machine swing from run to run: several rounds unless told otherwise.
const rounds = process.argv.includes('--rounds') ? args.rounds : 3;
const costBurstsIndex = process.argv.indexOf('--cost-bursts');
/** Rounds of the unused-feature CPU comparison (each runs the three variants once). */
const costBursts = costBurstsIndex >= 0 ? Math.max(1, Math.min(100, Math.floor(Number(process.argv[costBurstsIndex + 1])))) : 16;
const clients = args.clients ?? ['fetch', 'fetch-undici', 'fetch-muxpool', 'request', 'request-plain'];
const files = await benchCertificates('fetch');
// Node's default fetch cannot be given a CA: for the TLS rows every client skips certificate
// checks alike (a per-handshake cost only; these connections are kept alive).
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
process.removeAllListeners('warning');
const markdowns: string[] = [];
const all: Result[] = [];

const LABEL: Record<string, string> = {
  fetch: 'fetch (Node default)',
  'fetch-undici': 'fetch + undici Agent',
  'fetch-muxpool': 'fetch + muxpool',
  'fetch-muxpool-default': 'fetch + muxpool (pool defaults)',
  request: 'muxpool request() (redirect, decompress on)',
  'request-plain': 'muxpool request() (both off)',
};

const PLAIN: RequestOptions = { redirect: 'manual', decompress: false };
/**
 * Both off, but asking for the encodings the defaults ask for: the server sees the very request
 * the defaults send, so what remains is the features' own client-side work. (The plain variant
 * also changes the server's work — one field less to parse — which moves a server-bound
 * client's CPU per request through batching, not through anything the features do.)
 */
const PLAIN_SAME_WIRE: RequestOptions = { ...PLAIN, headers: [['accept-encoding', ACCEPT_ENCODING]] };

/** What the features cost when unused: CPU µs per request, medians of alternating bursts. */
interface FeatureCost {
  scheme: string;
  concurrency: number;
  bursts: number;
  requestsPerBurst: number;
  defaultsCpuUsPerReq: number;
  plainCpuUsPerReq: number;
  /** Both off with the defaults' accept-encoding sent by the caller: the same bytes on the wire. */
  sameWireCpuUsPerReq: number;
  /** defaults / plain − 1: the median of the per-round ratios. */
  overhead: number;
  /** defaults / same wire − 1 (median of the per-round ratios): the features' own cost. */
  logicOverhead: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
}

/**
 * `request()` with its defaults and with both features off, on one pool (the same
 * connections), in alternating bursts of `perBurst` requests at concurrency `c`: CPU time of
 * this process per request in each burst. Bounded by the burst count and a deadline.
 */
async function featureCost(scheme: string, url: string, c: number, bursts: number, perBurst: number): Promise<FeatureCost> {
  const pool = new ConnectionPool({ maxPerHost: c, tls: { rejectUnauthorized: false } });
  const deadline = performance.now() + 60_000;
  const burst = async (options: RequestOptions | undefined): Promise<number> => {
    let left = perBurst;
    const start = process.cpuUsage();
    await Promise.all(
      Array.from({ length: c }, async () => {
        while (left-- > 0) await (await pool.request(url, options)).text();
      }),
    );
    const used = process.cpuUsage(start);
    if (performance.now() > deadline) throw new Error('bench:fetch: the feature-cost bursts took longer than 60 s');
    return (used.user + used.system) / perBurst;
  };
  try {
    await burst(undefined);
    await burst(PLAIN);
    await burst(PLAIN_SAME_WIRE);
    const variants: Array<[RequestOptions | undefined, number[]]> = [
      [undefined, []],
      [PLAIN, []],
      [PLAIN_SAME_WIRE, []],
    ];
    for (let i = 0; i < bursts; i++) {
      // Rotating which goes first, so none always runs on a warmer process.
      for (let j = 0; j < variants.length; j++) {
        const [options, samples] = variants[(i + j) % variants.length] as [RequestOptions | undefined, number[]];
        samples.push(await burst(options));
      }
    }
    const [d, p, w] = variants.map(([, samples]) => median(samples)) as [number, number, number];
    // Each round ran the three back to back: its ratios compare like with like, where the
    // machine's drift between rounds moves all three (the median of medians mixes rounds).
    const [ds, ps, ws] = variants.map(([, samples]) => samples) as [number[], number[], number[]];
    const perRound = (other: number[]): number => median(ds.map((value, i) => value / (other[i] as number))) - 1;
    return {
      scheme,
      concurrency: c,
      bursts,
      requestsPerBurst: perBurst,
      defaultsCpuUsPerReq: d,
      plainCpuUsPerReq: p,
      sameWireCpuUsPerReq: w,
      overhead: perRound(ps),
      logicOverhead: perRound(ws),
    };
  } finally {
    await pool.close();
  }
}

/**
 * `subject` against `peer` from the same run: the ratio of their median rounds, of their best
 * rounds, and the median of the per-round ratios (each round runs both back to back).
 */
function ratioTable(results: readonly Result[], pairs: readonly RatioPair[]): string {
  const out = ['| subject | peer | c | median ratio | best ratio | per-round ratios (median) | goal |', '|---|---|---|---|---|---|---|'];
  for (const { subject, peer, goal, goalAtOne } of pairs) {
    for (const s of results.filter((r) => r.client === subject)) {
      const target = s.concurrency === 1 && goalAtOne !== undefined ? goalAtOne : goal;
      const p = results.find((r) => r.client === peer && r.concurrency === s.concurrency);
      if (p === undefined || p.reqPerSec === 0) continue;
      const sRounds = s.rounds ?? [s.reqPerSec];
      const pRounds = p.rounds ?? [p.reqPerSec];
      const paired = sRounds.map((v, i) => v / (pRounds[i] ?? Number.NaN)).filter((v) => Number.isFinite(v));
      const best = Math.max(...sRounds) / Math.max(...pRounds);
      out.push(
        `| ${subject} | ${peer} | ${s.concurrency} | ${(s.reqPerSec / p.reqPerSec).toFixed(2)}× | ${best.toFixed(2)}× | ${paired.map((v) => v.toFixed(2)).join(', ')} (${median(paired).toFixed(2)}) | ${target === undefined ? '—' : `≥ ${target}×`} |`,
      );
    }
  }
  return out.join('\n');
}

/** A pair the ratio table shows; `goalAtOne` replaces `goal` at concurrency 1. */
interface RatioPair {
  subject: string;
  peer: string;
  goal?: number;
  goalAtOne?: number;
}

const featureCosts: FeatureCost[] = [];
// The issue's goal: 1.1× Node's default fetch at c=16 and c=128, and no slower at c=1.
const ratioPairs = (scheme: string): RatioPair[] => [
  { subject: `${scheme}: ${LABEL['fetch-muxpool']}`, peer: `${scheme}: ${LABEL.fetch}`, goal: 1.1, goalAtOne: 1.0 },
  { subject: `${scheme}: ${LABEL['fetch-muxpool']}`, peer: `${scheme}: ${LABEL['fetch-undici']}` },
  { subject: `${scheme}: ${LABEL['fetch-muxpool-default']}`, peer: `${scheme}: ${LABEL.fetch}` },
  { subject: `${scheme}: ${LABEL.request}`, peer: `${scheme}: ${LABEL['request-plain']}`, goal: 0.95 },
];

for (const tls of [false, true]) {
  const scheme = tls ? 'https' : 'http';
  const server = await startServerProcess('./h1-server.js', tls ? [files.keyPath, files.certPath] : []);
  const url = `${scheme}://127.0.0.1:${server.port}/`;
  const runClient = async (client: string, c: number): Promise<Result> => {
    const label = `${LABEL[client] ?? client}`;
    switch (client) {
      case 'fetch':
        return closedLoop(label, c, async () => {
          await (await fetch(url)).text();
        }, args.durationMs, args.warmupMs);
      case 'fetch-undici': {
        const agent = new Agent({ connections: c, connect: { rejectUnauthorized: false } });
        const init = { dispatcher: agent } as unknown as RequestInit;
        const result = await closedLoop(label, c, async () => {
          await (await fetch(url, init)).text();
        }, args.durationMs, args.warmupMs);
        await agent.close();
        return result;
      }
      case 'fetch-muxpool':
      case 'fetch-muxpool-default': {
        const pool = new ConnectionPool(client === 'fetch-muxpool' ? { maxPerHost: c, tls: { rejectUnauthorized: false } } : { tls: { rejectUnauthorized: false } });
        const result = await closedLoop(label, c, async () => {
          await (await fetch(url, { dispatcher: pool })).text();
        }, args.durationMs, args.warmupMs);
        await pool.close();
        return result;
      }
      case 'request':
      case 'request-plain': {
        const pool = new ConnectionPool({ maxPerHost: c, tls: { rejectUnauthorized: false } });
        const options = client === 'request' ? {} : PLAIN;
        const result = await closedLoop(label, c, async () => {
          await (await pool.request(url, options)).text();
        }, args.durationMs, args.warmupMs);
        await pool.close();
        return result;
      }
      default:
        throw new Error(`unknown client ${client}`);
    }
  };
  try {
    const results = await runRounds(clients, args.concurrency, rounds, runClient);
    for (const r of results) r.client = `${scheme}: ${r.client}`;
    all.push(...results);
    const costs: FeatureCost[] = [];
    if (clients.includes('request') && clients.includes('request-plain')) {
      for (const c of args.concurrency) {
        const cost = await featureCost(scheme, url, c, costBursts, 1000);
        process.stderr.write(`${scheme} c=${c} redirect+decompress support: ${cost.defaultsCpuUsPerReq.toFixed(1)} vs ${cost.plainCpuUsPerReq.toFixed(1)} µs CPU/req\n`);
        costs.push(cost);
      }
    }
    featureCosts.push(...costs);
    const costTable =
      costs.length === 0
        ? ''
        : [
            `\n\n#### redirect and decompression support, unused: CPU per request (${costs[0]?.bursts} alternating bursts of ${costs[0]?.requestsPerBurst}, medians; overheads: the median of the per-round ratios; goal < 5%)\n`,
            '| c | defaults µs/req | both off µs/req | overhead | both off, same wire µs/req | overhead on the same wire |',
            '|---|---|---|---|---|---|',
            ...costs.map(
              (k) =>
                `| ${k.concurrency} | ${k.defaultsCpuUsPerReq.toFixed(1)} | ${k.plainCpuUsPerReq.toFixed(1)} | ${(k.overhead * 100).toFixed(1)}% | ${k.sameWireCpuUsPerReq.toFixed(1)} | ${(k.logicOverhead * 100).toFixed(1)}% |`,
            ),
          ].join('\n');
    markdowns.push(
      `### ${tls ? 'HTTPS (HTTP/1.1 over TLS)' : 'HTTP/1.1'}\n${table(results, [`${scheme}: ${LABEL.fetch}`, `${scheme}: ${LABEL['request-plain']}`])}` +
        `\n\n#### ratios (same run)\n\n${ratioTable(results, ratioPairs(scheme))}${costTable}`,
    );
  } finally {
    await server.stop();
  }
}
await files.remove();

const setup = [
  process.version,
  `Node's undici ${process.versions.undici ?? '?'}`,
  `${args.durationMs / 1000} s per cell`,
  `${rounds} round${rounds === 1 ? '' : 's'}${rounds > 1 ? ' (median, range)' : ''}`,
  HAS_TASKSET ? 'server on core 0, clients on core 1' : 'no taskset',
].join(', ');
const markdown = `## bench:fetch (${setup})\n${markdowns.join('\n\n')}`;
console.log(markdown);
const comparisons = ['http', 'https'].flatMap((scheme) => ratioPairs(scheme).map(({ subject, peer, goal }) => ({ subject, peer, goal })));
console.log(`\nresults: ${await saveResults('fetch', all, markdown, { comparisons, featureCosts })}`);
