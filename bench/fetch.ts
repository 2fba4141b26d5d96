/**
 * bench:fetch — Node's own `fetch` with three dispatchers: its default (undici bundled with
 * Node), undici 7's `Agent`, and a muxpool `ConnectionPool` (`fetch(url, { dispatcher: pool })`).
 * The WHATWG layer is the same for all three, so the differences come from the connections.
 * Plus `pool.request()` with its defaults (redirects followed, decompression on) against
 * `redirect: 'manual', decompress: false`, on responses that use neither: what those features
 * cost when unused. HTTP/1.1 in cleartext and over TLS, one local server, every client with C
 * connections. Usage:
 *   npm run bench:fetch -- [--duration S] [--warmup S] [--concurrency 1,16,128] [--rounds N]
 *                          [--clients fetch,fetch-undici,fetch-muxpool,request,request-plain]
 */
import { Agent } from 'undici';
import { ConnectionPool } from '../src/index.js';
import { benchCertificates } from './lib/h2-bench.js';
import { HAS_TASKSET, type Result, closedLoop, parseArgs, runRounds, saveResults, startServerProcess, table } from './lib/run.js';

const args = parseArgs(process.argv.slice(2));
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
  request: 'muxpool request() (redirect, decompress on)',
  'request-plain': 'muxpool request() (both off)',
};

for (const tls of [false, true]) {
  const server = await startServerProcess('./h1-server.js', tls ? [files.keyPath, files.certPath] : []);
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${server.port}/`;
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
      case 'fetch-muxpool': {
        const pool = new ConnectionPool({ maxPerHost: c, tls: { rejectUnauthorized: false } });
        const result = await closedLoop(label, c, async () => {
          await (await fetch(url, { dispatcher: pool })).text();
        }, args.durationMs, args.warmupMs);
        await pool.close();
        return result;
      }
      case 'request':
      case 'request-plain': {
        const pool = new ConnectionPool({ maxPerHost: c, tls: { rejectUnauthorized: false } });
        const options = client === 'request' ? {} : ({ redirect: 'manual', decompress: false } as const);
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
    const results = await runRounds(clients, args.concurrency, args.rounds, runClient);
    for (const r of results) r.client = `${tls ? 'https' : 'http'}: ${r.client}`;
    all.push(...results);
    markdowns.push(
      `### ${tls ? 'HTTPS (HTTP/1.1 over TLS)' : 'HTTP/1.1'}\n${table(results, [`${tls ? 'https' : 'http'}: ${LABEL.fetch}`, `${tls ? 'https' : 'http'}: ${LABEL['request-plain']}`])}`,
    );
  } finally {
    await server.stop();
  }
}
await files.remove();

const setup = [
  process.version,
  `${args.durationMs / 1000} s per cell`,
  `${args.rounds} round${args.rounds === 1 ? '' : 's'}${args.rounds > 1 ? ' (median, range)' : ''}`,
  HAS_TASKSET ? 'server on core 0, clients on core 1' : 'no taskset',
].join(', ');
const markdown = `## bench:fetch (${setup})\n${markdowns.join('\n\n')}`;
console.log(markdown);
const comparisons = ['http', 'https'].flatMap((scheme) => [
  { subject: `${scheme}: ${LABEL['fetch-muxpool']}`, peer: `${scheme}: ${LABEL.fetch}`, goal: 1.1 },
  { subject: `${scheme}: ${LABEL['fetch-muxpool']}`, peer: `${scheme}: ${LABEL['fetch-undici']}` },
  { subject: `${scheme}: ${LABEL.request}`, peer: `${scheme}: ${LABEL['request-plain']}`, goal: 0.95 },
]);
console.log(`\nresults: ${await saveResults('fetch', all, markdown, { comparisons })}`);
