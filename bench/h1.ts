/**
 * bench:h1 — muxpool request() against undici Pool.request, node:http with a keep-alive Agent,
 * and h2load --h1, on one local HTTP/1.1 server, at several concurrencies, in one run.
 * Every client gets exactly C connections. Usage:
 *   npm run bench:h1 -- [--duration S] [--warmup S] [--concurrency 1,16,128] [--clients muxpool,undici,node,h2load]
 */
import http from 'node:http';
import { Pool } from 'undici';
import { ConnectionPool } from '../src/index.js';
import { HAS_TASKSET, type Result, closedLoop, parseArgs, runH2load, saveResults, startServerProcess, table } from './lib/run.js';

const args = parseArgs(process.argv.slice(2));
const clients = args.clients ?? ['h2load', 'undici', 'muxpool', 'node'];
const server = await startServerProcess('./h1-server.js');
const url = `http://127.0.0.1:${server.port}/`;
const results: Result[] = [];

async function readBody(res: http.IncomingMessage): Promise<void> {
  for await (const _ of res) {
    /* drain */
  }
}

try {
  for (const c of args.concurrency) {
    for (const client of clients) {
      let result: Result;
      if (client === 'h2load') {
        result = await runH2load(['--h1', url], 'h2load', c, args.durationMs, args.warmupMs);
      } else if (client === 'undici') {
        const pool = new Pool(url, { connections: c, pipelining: 1 });
        result = await closedLoop('undici', c, async () => {
          const { body } = await pool.request({ path: '/', method: 'GET' });
          await body.text();
        }, args.durationMs, args.warmupMs);
        await pool.close();
      } else if (client === 'muxpool') {
        const pool = new ConnectionPool({ maxPerHost: c });
        result = await closedLoop('muxpool', c, async () => {
          const res = await pool.request(url);
          await res.text();
        }, args.durationMs, args.warmupMs);
        await pool.close();
      } else if (client === 'node') {
        const agent = new http.Agent({ keepAlive: true, maxSockets: c });
        result = await closedLoop('node:http', c, () =>
          new Promise<void>((resolve, reject) => {
            http.get(url, { agent }, (res) => readBody(res).then(resolve, reject)).on('error', reject);
          }),
        args.durationMs, args.warmupMs);
        agent.destroy();
      } else {
        throw new Error(`unknown client ${client}`);
      }
      results.push(result);
      process.stderr.write(`c=${c} ${result.client}: ${result.reqPerSec.toFixed(0)} req/s\n`);
    }
  }
} finally {
  await server.stop();
}

const markdown = `## bench:h1 (${process.version}, ${HAS_TASKSET ? 'server on core 0, clients on core 1' : 'no taskset'})\n${table(results, ['h2load', 'undici'])}`;
console.log(markdown);
console.log(`\nresults: ${await saveResults('h1', results, markdown)}`);
