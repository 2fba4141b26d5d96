#!/usr/bin/env node
/**
 * The `muxpool` command.
 *   muxpool                 start the embedded loopback server, run a demo through one pool, print stats
 *   muxpool serve [--port]  the embedded server alone
 *   muxpool URL [options]   fetch a URL, like curl
 *   muxpool bench URL       load generator (see bench.ts)
 */
import { readFile, writeFile } from 'node:fs/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectionPool, type RequestOptions } from '../client/pool.js';
import { MuxpoolError } from '../errors.js';
import { takeRequestOption } from './args.js';
import { exitCodeFor } from './exit-codes.js';
import { type ProxyArgs, proxyPoolOptions, takeProxyOption, traceProxies } from './proxy-args.js';
import { type NetworkArgs, emptyNetworkArgs, networkPoolOptions, takeNetworkOption } from './net-args.js';
import { TransferRecorder, describeTimings, loadWriteOutFormat, renderWriteOut } from './write-out.js';
import type { Response } from '../client/response.js';
import { HttpVersion } from '../protocol/version.js';
import type { PoolStats } from '../client/stats.js';
import type { EmbeddedServer, EmbeddedServerOptions } from '../server/embedded.js';

const USAGE = `usage:
  muxpool                      run the demo against the embedded loopback server
  muxpool serve [--port P]     run the embedded server until interrupted
  muxpool URL [options]        fetch a URL
  muxpool bench URL [options]  load test: -c N, -n COUNT | -d SECONDS, --protocol h1|h2|h3,
                               --rate R, --workers W, --json (muxpool bench --help)
options: -X METHOD, -H 'name: value', -d DATA|@file, -o FILE, -i, -v, -k/--insecure,
         --cacert FILE, --http1.1, --http2, --http3, --http3-only, --max-time SECONDS,
         -L/--location, --max-redirs N, --compressed, -x/--proxy URL, --noproxy LIST
         (without -x: http_proxy, HTTPS_PROXY, ALL_PROXY and NO_PROXY as curl reads them),
         --unix-socket PATH, -E/--cert FILE[:PASS], --key FILE, --pass PASS,
         --resolve HOST:PORT:ADDR[,ADDR], --connect-to HOST:PORT:HOST2:PORT2,
         --pinnedpubkey sha256//BASE64[;sha256//...],
         -w/--write-out FORMAT|@file
         (curl's variables: %{http_code}, %{time_total}, %{remote_ip}, %{json}, …)`;

/**
 * The embedded server pulls in certificate generation (@peculiar/x509, half a second to load):
 * only the demo and `serve` need it, so fetch and bench do not pay for it.
 */
async function startEmbeddedServer(options?: EmbeddedServerOptions): Promise<EmbeddedServer> {
  return (await import('../server/embedded.js')).startEmbeddedServer(options);
}

function hint(err: MuxpoolError): string {
  if (err.code === 'MUXPOOL_ERR_TLS_CERT') return ' (pass the server CA with --cacert FILE, or -k to skip verification)';
  if (err.code === 'MUXPOOL_ERR_CONNECT_REFUSED') {
    return err.message.startsWith('QUIC:') ? ' (no HTTP/3 listener: try --http3 to fall back to TCP)' : ' (is the server running on that port?)';
  }
  if (err.code === 'MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT') return ' (no HTTP/3 answer over UDP: try --http3 to fall back to TCP)';
  return '';
}

class UsageError extends Error {}

interface FetchArgs extends ProxyArgs {
  url: string;
  method: string | undefined;
  headers: Array<[string, string]>;
  data: string | undefined;
  output: string | undefined;
  include: boolean;
  verbose: boolean;
  insecure: boolean;
  cacert: string | undefined;
  version: HttpVersion;
  maxTimeMs: number | undefined;
  /** -L: follow redirects (curl does not by default). */
  location: boolean;
  maxRedirects: number;
  /** --compressed: ask for and decode a compressed body (curl does not by default). */
  compressed: boolean;
  net: NetworkArgs;
  /** -w: what to print once the transfer is done (write-out.ts). */
  writeOut: string | undefined;
}

function parseFetchArgs(argv: string[]): FetchArgs {
  const args: FetchArgs = {
    url: '',
    method: undefined,
    headers: [],
    data: undefined,
    output: undefined,
    include: false,
    verbose: false,
    insecure: false,
    cacert: undefined,
    version: HttpVersion.Auto,
    maxTimeMs: undefined,
    location: false,
    maxRedirects: 50,
    compressed: false,
    proxy: undefined,
    noproxy: undefined,
    net: emptyNetworkArgs(),
    writeOut: undefined,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (takeRequestOption(arg, () => value(i++, arg), args, (message) => new UsageError(message))) continue;
    if (takeProxyOption(arg, () => value(i++, arg), args)) continue;
    if (takeNetworkOption(arg, () => value(i++, arg), args.net)) continue;
    switch (arg) {
      case '-d':
      case '--data':
        args.data = value(i++, arg);
        break;
      case '-o':
      case '--output':
        args.output = value(i++, arg);
        break;
      case '-i':
      case '--include':
        args.include = true;
        break;
      case '-v':
      case '--verbose':
        args.verbose = true;
        break;
      case '--http1.1':
        args.version = HttpVersion.Http1_1;
        break;
      case '--http2':
        args.version = HttpVersion.Http2;
        break;
      case '--http3':
        args.version = HttpVersion.Http3;
        break;
      case '--http3-only':
        args.version = HttpVersion.Http3Only;
        break;
      case '-L':
      case '--location':
        args.location = true;
        break;
      case '--max-redirs': {
        const n = Number(value(i++, arg));
        // curl: -1 means no limit; a large bound keeps our loop finite all the same.
        if (!Number.isInteger(n) || n < -1) throw new UsageError('--max-redirs needs a whole number (-1 for no limit)');
        args.maxRedirects = n === -1 ? 1_000 : n;
        break;
      }
      case '--compressed':
        args.compressed = true;
        break;
      case '-w':
      case '--write-out':
        args.writeOut = value(i++, arg);
        break;
      case '--max-time': {
        const seconds = Number(value(i++, arg));
        if (!(seconds > 0)) throw new UsageError('--max-time needs a positive number of seconds');
        args.maxTimeMs = Math.round(seconds * 1000);
        break;
      }
      default:
        if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
        if (args.url !== '') throw new UsageError(`only one URL, got ${args.url} and ${arg}`);
        args.url = arg;
    }
  }
  return args;
}

async function runFetch(argv: string[]): Promise<number> {
  const args = parseFetchArgs(argv);
  const ca = args.cacert === undefined ? undefined : await readFile(args.cacert, 'utf8');
  const net = await networkPoolOptions(args.net);
  const writeOut = args.writeOut === undefined ? undefined : await loadWriteOutFormat(args.writeOut);
  const pool = new ConnectionPool({
    tls: { ...(ca !== undefined ? { ca } : {}), ...(args.insecure ? { rejectUnauthorized: false } : {}), ...net.tls },
    ...proxyPoolOptions(args, process.env),
    ...net.pool,
  });
  const untrace = args.verbose ? traceProxies((line) => process.stderr.write(line)) : undefined;
  const transfer = writeOut === undefined ? undefined : { recorder: new TransferRecorder(pool), startedAt: performance.now(), method: args.method ?? 'GET' };
  let res: Response | undefined;
  let sizeDownload = 0;
  let failure: unknown;
  try {
    let body: string | Buffer | undefined;
    if (args.data !== undefined) body = args.data.startsWith('@') ? await readFile(args.data.slice(1)) : args.data;
    const method = args.method ?? (body !== undefined ? 'POST' : 'GET');
    if (transfer !== undefined) transfer.method = method;
    if (args.verbose) process.stderr.write(`* ${method} ${args.url}\n`);
    res = await pool.request(args.url, {
      method,
      headers: args.headers,
      body,
      version: args.version,
      redirect: args.location ? 'follow' : 'manual',
      maxRedirects: args.maxRedirects,
      decompress: args.compressed,
      ...(args.maxTimeMs !== undefined ? { timeoutMs: args.maxTimeMs } : {}),
    });
    if (args.verbose) {
      process.stderr.write(await describeConnection(pool, res.connectionId, res.protocol, res.reused, res.attempts, args.net.unixSocket !== undefined));
    }
    const head = `${statusLine(res)}\n${Object.entries(
      res.headers,
    )
      .flatMap(([name, v]) => (Array.isArray(v) ? v.map((x) => `${name}: ${x}`) : [`${name}: ${v}`]))
      .join('\n')}\n\n`;
    if (args.verbose) process.stderr.write(head.replace(/^/gm, '< '));
    const bytes = await res.bytes();
    sizeDownload = bytes.byteLength;
    if (args.verbose) process.stderr.write(describeTimings(res.timings, res.protocol));
    if (args.output !== undefined) {
      await writeFile(args.output, args.include ? Buffer.concat([Buffer.from(head), bytes]) : bytes);
    } else {
      if (args.include) process.stdout.write(head);
      process.stdout.write(bytes);
    }
    return 0;
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    untrace?.();
    if (transfer !== undefined && writeOut !== undefined) {
      transfer.recorder.stop();
      const { stdout, stderr, unknown } = renderWriteOut(writeOut, {
        status: res?.status ?? 0,
        statusText: res?.statusText ?? '',
        protocol: res?.protocol,
        headers: res?.headers,
        timings: res?.timings,
        dialTimings: transfer.recorder.dialTimings,
        startedAt: transfer.startedAt,
        endedAt: performance.now(),
        sizeDownload,
        urlEffective: res?.url ?? args.url,
        method: transfer.method,
        exitcode: failure === undefined ? 0 : exitCodeFor(failure),
        errormsg: failure === undefined ? '' : failure instanceof Error ? failure.message : String(failure),
        hops: transfer.recorder.hops,
        connects: transfer.recorder.connects,
        remoteIp: transfer.recorder.remoteIp,
        remotePort: transfer.recorder.remotePort,
      });
      for (const name of unknown) process.stderr.write(`muxpool: unknown --write-out variable: '${name}'\n`);
      if (stdout !== '') process.stdout.write(stdout);
      if (stderr !== '') process.stderr.write(stderr);
    }
    await pool.destroy();
  }
}

/** The status line as curl prints it: `HTTP/1.1 200 OK`, `HTTP/2 200`, `HTTP/3 200`. */
export function statusLine(res: { protocol: string; status: number; statusText: string }): string {
  if (res.protocol === 'h2') return `HTTP/2 ${res.status}`;
  if (res.protocol === 'h3') return `HTTP/3 ${res.status}`;
  return `HTTP/1.1 ${res.status}${res.statusText === '' ? '' : ` ${res.statusText}`}`;
}

/** What -v says the pool did: dial or reuse, the transport and ALPN, resumption, retries. */
async function describeConnection(
  pool: ConnectionPool,
  id: string,
  protocol: string,
  reused: boolean,
  attempts: number,
  unixSocket = false,
): Promise<string> {
  const snapshot = (await pool.stats()).connections.find((c) => c.id === id);
  const transport = protocol === 'h3' ? 'QUIC' : unixSocket ? 'a Unix socket' : 'TCP';
  const lines = [
    `* ${reused ? 'reused' : 'dialed'} connection ${id} to ${snapshot?.remoteAddress ?? '?'} over ${transport}, ALPN ${protocol}`,
  ];
  if (!reused && snapshot?.resumed !== undefined) {
    lines.push(`* ${protocol === 'h3' ? 'QUIC' : 'TLS'} handshake: ${snapshot.resumed ? 'resumed an earlier session' : 'full'}`);
  }
  if (attempts > 1) lines.push(`* retried: ${attempts} attempts (the first failed before the server processed it)`);
  return `${lines.join('\n')}\n`;
}

function statsTable(stats: PoolStats): string {
  const lines = [
    `connections: ${stats.totalConnections} open (${stats.http1Connections} HTTP/1.1, ${stats.http2Connections} HTTP/2, ${stats.http3Connections} HTTP/3), ${stats.dialed} dialed over the pool's life`,
    '',
    '| connection | origin | protocol | state | requests | age ms |',
    '|---|---|---|---|---|---|',
    ...stats.connections.map((c) => `| ${c.id} | ${c.origin} | ${c.protocol} | ${c.state} | ${c.requests} | ${c.ageMs} |`),
  ];
  return lines.join('\n');
}

async function runDemo(): Promise<number> {
  const server = await startEmbeddedServer();
  const pool = new ConnectionPool({ tls: { ca: server.caCert }, maxPerHost: 4 });
  try {
    console.log(`embedded server: ${server.httpsUrl} (TLS) and ${server.httpUrl} (cleartext)\n`);
    console.log('| # | url | status | protocol | connection | reused |');
    console.log('|---|---|---|---|---|---|');
    let n = 0;
    const show = async (url: string, init?: RequestOptions): Promise<void> => {
      const res = await pool.request(url, init);
      await res.dump();
      n++;
      console.log(`| ${n} | ${url} | ${res.status} | ${res.protocol} | ${res.connectionId} | ${res.reused} |`);
    };
    const versions: Array<[string, HttpVersion]> = [
      ['HTTP/1.1', HttpVersion.Http1_1],
      ['HTTP/2', HttpVersion.Http2],
      ['HTTP/3', HttpVersion.Http3Only],
    ];
    for (const [, version] of versions) {
      if (version === HttpVersion.Http3Only && !server.http3) continue;
      await show(`${server.httpsUrl}/`, { version });
      await show(`${server.httpsUrl}/bytes/65536`, { version });
      await show(`${server.httpsUrl}/echo`, { version, method: 'POST', body: 'ping' });
    }
    await show(`${server.httpUrl}/`);
    await show(`${server.httpUrl}/echo`, { method: 'POST', body: 'ping' });
    if (!server.http3) console.log(`\nHTTP/3 left out: ${server.http3Error ?? 'unavailable'}`);
    // Bursts: HTTP/1.1 (on the cleartext origin, whose cap is its own) opens up to maxPerHost
    // connections and queues the rest; HTTP/2 and HTTP/3 carry all twelve as streams of the
    // connection they already have.
    console.log('');
    for (const [label, version] of versions) {
      if (version === HttpVersion.Http3Only && !server.http3) continue;
      const base = version === HttpVersion.Http1_1 ? server.httpUrl : server.httpsUrl;
      const burst = await Promise.all(
        Array.from({ length: 12 }, () => pool.request(`${base}/delay/20`, { version }).then(async (r) => (await r.dump(), r))),
      );
      const used = new Set(burst.map((r) => r.connectionId));
      const reused = burst.filter((r) => r.reused).length;
      console.log(`${label} burst of 12 concurrent requests: ${used.size} connection(s), ${reused} reused (handshakes saved)`);
    }
    console.log('');
    console.log(statsTable(await pool.stats()));
    return 0;
  } finally {
    await pool.close();
    await server.close();
  }
}

async function runServe(argv: string[]): Promise<number> {
  let port = 0;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--port') {
      port = Number(argv[++i]);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port needs a port number');
    } else throw new UsageError(`unknown option ${argv[i]}`);
  }
  const server = await startEmbeddedServer({ port });
  const dir = mkdtempSync(join(tmpdir(), 'muxpool-'));
  const caPath = join(dir, 'ca.pem');
  writeFileSync(caPath, server.caCert);
  const protocols = server.http3 ? 'HTTP/1.1, HTTP/2 over TCP and HTTP/3 over UDP' : `HTTP/1.1 and HTTP/2 (no HTTP/3: ${server.http3Error ?? 'unavailable'})`;
  console.log(`serving ${server.httpsUrl} (${protocols}) and ${server.httpUrl}\nCA certificate: ${caPath}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  rmSync(dir, { recursive: true, force: true });
  return 0;
}

async function main(argv: string[]): Promise<number> {
  try {
    if (argv.length === 0) return await runDemo();
    if (argv[0] === 'serve') return await runServe(argv.slice(1));
    if (argv[0] === 'bench') return await (await import('./bench.js')).runBench(argv.slice(1));
    if (argv[0] === '-h' || argv[0] === '--help') {
      console.log(USAGE);
      return 0;
    }
    return await runFetch(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`muxpool: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof MuxpoolError) {
      process.stderr.write(`muxpool: ${err.message} [${err.code}]${hint(err)}\n`);
      return exitCodeFor(err);
    }
    process.stderr.write(`muxpool: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
