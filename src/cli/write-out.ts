/**
 * `-w/--write-out FORMAT` as curl has it: `%{variable}` replaced by what the transfer did,
 * `%header{name}` by a response field, `\n`, `\r`, `\t` and `\\` escapes, `%%` a percent
 * sign, `%{stdout}`/`%{stderr}` switching where the rest goes, `@file` (or `@-`, stdin)
 * reading the format from a file. Times are curl's: seconds from the start of the transfer,
 * cumulative, six decimals.
 *
 * What the transfer did is collected from the pool's own per-request channels
 * (`muxpool:request:*`) while the command runs: hops, connections made, the peer's address.
 */
import diagnostics from 'node:diagnostics_channel';
import { readFile } from 'node:fs/promises';
import type { IncomingHeaders } from '../protocol/message.js';
import type { RequestConnectionMessage, RequestCreateMessage, RequestEndMessage, RequestTimings } from '../client/request-events.js';
import type { ConnectionPool } from '../client/pool.js';

/** What one transfer did, as the write-out variables need it. */
export interface TransferFacts {
  /** 0 when no response came. */
  status: number;
  statusText: string;
  /** `h2`, `h3`, `http/1.1`; undefined without a response. */
  protocol: string | undefined;
  headers: IncomingHeaders | undefined;
  /** The last hop's timings; undefined without a response. */
  timings: RequestTimings | undefined;
  /** The first hop that dialed a connection (its name lookup, connect and handshake), if any. */
  dialTimings: RequestTimings | undefined;
  /** `performance.now()` at the start of the command's transfer, and at its end. */
  startedAt: number;
  endedAt: number;
  sizeDownload: number;
  urlEffective: string;
  method: string;
  exitcode: number;
  errormsg: string;
  /** From the channels. */
  hops: number;
  connects: number;
  remoteIp: string | undefined;
  remotePort: number | undefined;
}

/** Counts hops and new connections of one pool's requests, and keeps the timings of the first that dialed, from the request channels, until `stop()`. */
export class TransferRecorder {
  hops = 0;
  connects = 0;
  remoteIp: string | undefined;
  remotePort: number | undefined;
  dialTimings: RequestTimings | undefined;
  private readonly pool: ConnectionPool;
  private readonly onCreate = (message: unknown): void => {
    if ((message as RequestCreateMessage).request.pool === this.pool) this.hops++;
  };
  private readonly onEnd = (message: unknown): void => {
    const m = message as RequestEndMessage;
    const t = m.timings;
    if (m.request.pool === this.pool && this.dialTimings === undefined && t.dnsMs + t.connectMs + t.handshakeMs > 0) this.dialTimings = t;
  };
  private readonly onConnection = (message: unknown): void => {
    const m = message as RequestConnectionMessage;
    if (m.request.pool !== this.pool) return;
    if (!m.reused) this.connects++;
    this.remoteIp = m.remoteAddress;
    this.remotePort = m.remotePort;
  };

  constructor(pool: ConnectionPool) {
    this.pool = pool;
    diagnostics.subscribe('muxpool:request:create', this.onCreate);
    diagnostics.subscribe('muxpool:request:connection', this.onConnection);
    diagnostics.subscribe('muxpool:request:end', this.onEnd);
  }

  stop(): void {
    diagnostics.unsubscribe('muxpool:request:create', this.onCreate);
    diagnostics.unsubscribe('muxpool:request:connection', this.onConnection);
    diagnostics.unsubscribe('muxpool:request:end', this.onEnd);
  }
}

/** The format itself, or read from a file (`@file`, `@-` for stdin). */
export async function loadWriteOutFormat(arg: string, stdin: () => Promise<string> = readStdin): Promise<string> {
  if (!arg.startsWith('@')) return arg;
  const path = arg.slice(1);
  return path === '-' ? stdin() : readFile(path, 'utf8');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const HTTP_VERSIONS: Record<string, string> = { 'http/1.1': '1.1', h2: '2', h3: '3' };

function seconds(ms: number): number {
  return Math.max(0, ms) / 1000;
}

/** The cumulative times curl reports, in seconds from the start of the transfer. */
function times(facts: TransferFacts): Record<string, number> {
  const total = seconds(facts.endedAt - facts.startedAt);
  const t = facts.timings;
  if (t === undefined) {
    return { time_namelookup: 0, time_connect: 0, time_appconnect: 0, time_pretransfer: 0, time_redirect: 0, time_starttransfer: 0, time_total: total };
  }
  // Hops before the last one (redirects) come first, as curl's time_redirect.
  const before = Math.max(0, t.startedAt - facts.startedAt);
  // The connection set-up is the dial's, whichever hop made it (a redirect may reuse it).
  const d = facts.dialTimings ?? t;
  const namelookup = Math.max(0, d.startedAt - facts.startedAt) + d.queuedMs + d.dnsMs;
  const connect = namelookup + d.connectMs;
  const appconnect = connect + d.handshakeMs;
  const pretransfer = Math.max(appconnect, before + t.queuedMs + t.dnsMs + t.connectMs + t.handshakeMs);
  return {
    time_namelookup: seconds(namelookup),
    time_connect: seconds(connect),
    // curl: 0 when there was no TLS (or QUIC) handshake.
    time_appconnect: d.handshakeMs > 0 ? seconds(appconnect) : 0,
    time_pretransfer: seconds(pretransfer),
    time_redirect: seconds(before),
    time_starttransfer: seconds(pretransfer + t.firstByteMs),
    time_total: total,
  };
}

/** The header section's size as an HTTP/1.1 message would carry it (curl counts HTTP/2 and HTTP/3 heads the same way). */
function headerSize(facts: TransferFacts): number {
  if (facts.headers === undefined) return 0;
  const version = HTTP_VERSIONS[facts.protocol ?? ''] ?? '1.1';
  let size = Buffer.byteLength(`HTTP/${version} ${facts.status}${facts.statusText === '' ? '' : ` ${facts.statusText}`}\r\n`, 'latin1') + 2;
  for (const name in facts.headers) {
    const value = facts.headers[name] as string | string[];
    for (const item of typeof value === 'string' ? [value] : value) size += Buffer.byteLength(`${name}: ${item}\r\n`, 'latin1');
  }
  return size;
}

/** Every variable's value (numbers stay numbers for `%{json}`). */
export function writeOutVariables(facts: TransferFacts): Record<string, string | number> {
  const url = facts.urlEffective;
  let scheme = '';
  try {
    scheme = new URL(url).protocol.slice(0, -1).toUpperCase();
  } catch {
    // A URL that does not parse has no scheme to report.
  }
  return {
    content_type: typeof facts.headers?.['content-type'] === 'string' ? facts.headers['content-type'] : '',
    errormsg: facts.errormsg,
    exitcode: facts.exitcode,
    http_code: facts.status,
    http_version: facts.protocol === undefined ? '0' : (HTTP_VERSIONS[facts.protocol] ?? '1.1'),
    method: facts.method,
    num_connects: facts.connects,
    num_headers: facts.headers === undefined ? 0 : Object.values(facts.headers).reduce<number>((n, v) => n + (typeof v === 'string' ? 1 : v.length), 0),
    num_redirects: Math.max(0, facts.hops - 1),
    remote_ip: facts.remoteIp ?? '',
    remote_port: facts.remotePort ?? '',
    response_code: facts.status,
    scheme,
    size_download: facts.sizeDownload,
    size_header: headerSize(facts),
    url_effective: url,
    ...times(facts),
  };
}

function formatValue(name: string, value: string | number): string {
  if (typeof value === 'string') return value;
  if (name.startsWith('time_')) return value.toFixed(6);
  if (name === 'http_code' || name === 'response_code') return String(value).padStart(3, '0');
  return String(value);
}

/** What the format produces, split by where it goes (`%{stdout}` is the default). */
export interface WriteOut {
  stdout: string;
  stderr: string;
  /** Variables the format named that do not exist (curl warns about them). */
  unknown: string[];
}

export function renderWriteOut(format: string, facts: TransferFacts): WriteOut {
  const variables = writeOutVariables(facts);
  const out: WriteOut = { stdout: '', stderr: '', unknown: [] };
  let target: 'stdout' | 'stderr' = 'stdout';
  const emit = (text: string): void => {
    out[target] += text;
  };
  // Bounded: each turn consumes at least one character of the format.
  for (let i = 0; i < format.length; ) {
    const c = format[i] as string;
    if (c === '\\' && i + 1 < format.length) {
      const next = format[i + 1] as string;
      const escaped = next === 'n' ? '\n' : next === 'r' ? '\r' : next === 't' ? '\t' : next === '\\' ? '\\' : undefined;
      emit(escaped ?? `\\${next}`);
      i += 2;
      continue;
    }
    if (c !== '%') {
      emit(c);
      i++;
      continue;
    }
    if (format[i + 1] === '%') {
      emit('%');
      i += 2;
      continue;
    }
    const header = format.startsWith('%header{', i);
    if (format[i + 1] === '{' || header) {
      const open = i + (header ? 7 : 1);
      const close = format.indexOf('}', open);
      if (close < 0) {
        emit(format.slice(i));
        break;
      }
      const name = format.slice(open + 1, close);
      i = close + 1;
      if (header) {
        const value = facts.headers?.[name.toLowerCase()];
        emit(value === undefined ? '' : typeof value === 'string' ? value : value.join(', '));
      } else if (name === 'stdout' || name === 'stderr') target = name;
      else if (name === 'json') emit(JSON.stringify(variables));
      else if (name in variables) emit(formatValue(name, variables[name] as string | number));
      else out.unknown.push(name);
      continue;
    }
    emit(c);
    i++;
  }
  return out;
}

/** The `-v` line with where the time went. */
export function describeTimings(timings: RequestTimings, protocol: string): string {
  const handshake = protocol === 'h3' ? 'QUIC handshake' : 'TLS';
  const ms = (value: number): string => `${value.toFixed(1)} ms`;
  const total = timings.totalMs === undefined ? '' : `, total ${ms(timings.totalMs)}`;
  return `* timings: queued ${ms(timings.queuedMs)}, dns ${ms(timings.dnsMs)}, connect ${ms(timings.connectMs)}, ${handshake} ${ms(timings.handshakeMs)}, first byte ${ms(timings.firstByteMs)}${total}\n`;
}
