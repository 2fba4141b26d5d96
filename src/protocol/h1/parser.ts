/**
 * HTTP/1.1 response parser (RFC 9112), incremental and pure: bytes in, events out through a
 * `ResponseSink`, no I/O and no timers. One response at a time: we never pipeline, so bytes past
 * the end of a response are an error.
 *
 * States: idle → head → (body-length | body-chunked | body-close)? → done; any → error.
 * Chunked bodies have sub-states for the size line, data, the CRLF after data, and trailers.
 */
import { MuxpoolError, internalError } from '../../errors.js';
import { type IncomingHeaders, type RawFieldSource, emptyHeaders } from '../message.js';
import { checkInterimBudget, receivedFieldNameProblem, receivedFieldValueProblem } from '../fields.js';

export interface ResponseHead {
  status: number;
  statusText: string;
  headers: IncomingHeaders;
  /** The connection may carry another request after this response. */
  keepAlive: boolean;
  /** `Keep-Alive: timeout=N`, in milliseconds. */
  keepAliveTimeoutMs: number | undefined;
  /** The fields as received, sliced from the head's bytes when asked for. */
  raw: RawFieldSource;
}

export interface ResponseSink {
  onHead(head: ResponseHead): void;
  /** A slice of the input: zero-copy, valid as long as the caller keeps the chunk. */
  onBody(chunk: Buffer): void;
  onTrailers(trailers: IncomingHeaders): void;
  onComplete(): void;
}

export interface ParserLimits {
  /** Bytes of the header section (status line included), and of the trailer section. */
  maxHeaderBytes?: number;
  /** Fields in the header section, and in the trailer section. */
  maxHeaderCount?: number;
}

export type ParserState =
  | 'idle'
  | 'head'
  | 'body-length'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-data-end'
  | 'trailers'
  | 'body-close'
  | 'done'
  | 'error';

/** A chunk-size line (size plus extensions) longer than this is hostile, not useful. */
const MAX_CHUNK_LINE_BYTES = 4096;
const LF = 0x0a;
const CR = 0x0d;

function parseError(message: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_H1_PARSE', message, { origin: 'remote' });
}

/** Raw field name → lower-case name, for names already seen valid. */
const nameCache = new Map<string, string>();
const MAX_CACHED_NAMES = 512;

function fieldName(raw: string): string {
  const cached = nameCache.get(raw);
  if (cached !== undefined) return cached;
  // RFC 9112 §5.1: no whitespace between field name and colon; names are tokens (checked in
  // fields.ts, where HTTP/2 and HTTP/3 check theirs). HTTP/1.1 names are case-insensitive.
  const problem = receivedFieldNameProblem(raw, false);
  if (problem !== undefined) throw parseError(problem);
  const lower = raw.toLowerCase();
  if (nameCache.size < MAX_CACHED_NAMES) nameCache.set(raw, lower);
  return lower;
}

function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 0x20 || value.charCodeAt(start) === 0x09)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 0x20 || value.charCodeAt(end - 1) === 0x09)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/**
 * Parses `name: value` lines into an object; repeated set-cookie fields stay separate, other
 * repeats are joined with ", " (RFC 9110 §5.3).
 */
function parseFields(lines: string[], from: number, maxCount: number, section: string): IncomingHeaders {
  const fields = emptyHeaders();
  if (lines.length - from > maxCount) {
    throw new MuxpoolError('MUXPOOL_ERR_HEADERS_TOO_LARGE', `${section} has more than ${maxCount} fields`, { origin: 'remote' });
  }
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as string;
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      // RFC 9112 §5.2: obs-fold is deprecated; we reject rather than guess.
      throw parseError(`obsolete line folding in the ${section}`);
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw parseError(`malformed line in the ${section}: ${JSON.stringify(line.slice(0, 60))}`);
    const name = fieldName(line.slice(0, colon));
    const value = trimOws(line.slice(colon + 1));
    const problem = receivedFieldValueProblem(name, value);
    if (problem !== undefined) throw parseError(problem);
    const existing = fields[name];
    if (existing === undefined) fields[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(existing)) existing.push(value);
    else fields[name] = `${existing}, ${value}`;
  }
  return fields;
}

/** Splits a head into lines: CRLF or bare LF (RFC 9112 §2.2); a bare CR is an error. */
function splitLines(text: string): string[] {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] as string;
    if (line.charCodeAt(line.length - 1) === CR) line = line.slice(0, -1);
    if (line.indexOf('\r') !== -1) throw parseError('bare CR in the header section');
    lines[i] = line;
  }
  return lines;
}

/** Content-Length (RFC 9112 §6.3 step 5): identical repeats are fine, anything else is fatal. */
function contentLength(value: string | string[]): number {
  const text = Array.isArray(value) ? value.join(',') : value;
  let result: number | undefined;
  for (const part of text.split(',')) {
    const digits = trimOws(part);
    if (!/^\d{1,15}$/.test(digits)) {
      throw new MuxpoolError('MUXPOOL_ERR_H1_CONTENT_LENGTH', `invalid content-length ${JSON.stringify(text.slice(0, 40))}`, {
        origin: 'remote',
      });
    }
    const n = Number(digits);
    if (result !== undefined && n !== result) {
      throw new MuxpoolError('MUXPOOL_ERR_H1_CONTENT_LENGTH', `conflicting content-length values ${JSON.stringify(text.slice(0, 40))}`, {
        origin: 'remote',
      });
    }
    result = n;
  }
  return result as number;
}

function hasToken(value: string | string[] | undefined, token: string): boolean {
  if (value === undefined) return false;
  const text = (Array.isArray(value) ? value.join(',') : value).toLowerCase();
  if (text === token) return true;
  for (const part of text.split(',')) if (trimOws(part) === token) return true;
  return false;
}

function keepAliveTimeout(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /(?:^|[,;\s])timeout\s*=\s*(\d{1,9})/i.exec(Array.isArray(value) ? value.join(',') : value);
  return match === null ? undefined : Number(match[1]) * 1000;
}

/** A final response head as parsed, kept to answer the next identical head without parsing it. */
interface ParsedHead {
  readonly text: string;
  readonly method: string;
  readonly status: number;
  readonly statusText: string;
  /** The fields as `[name, value, …]` (never handed out: each response gets a record of its own). */
  readonly fields: ReadonlyArray<string | string[]>;
  readonly keepAlive: boolean;
  readonly keepAliveTimeoutMs: number | undefined;
  readonly next: ParserState;
  readonly remaining: number;
  /**
   * Each field's name as a Buffer (shared: handlers only read names) and where its value lies in
   * `text` (`[start, end, …]`, a pair per name): made the first time a caller asks for the raw
   * fields of a response with this head, since `request()` never does.
   */
  layout?: RawLayout;
}

interface RawLayout {
  readonly names: readonly Buffer[];
  readonly valueOffsets: readonly number[];
}

/**
 * Each field's name (as a Buffer) and where its value lies in a head's text (status line
 * skipped), for the raw fields: values without their surrounding whitespace (RFC 9112 §5.1).
 * Only for a head whose fields were parsed already, so every line has its colon. Latin-1 text: a
 * character is a byte.
 */
function rawLayoutOf(text: string): RawLayout {
  const names: Buffer[] = [];
  const valueOffsets: number[] = [];
  let start = text.indexOf('\n') + 1;
  // Bounded: each turn moves past one line.
  while (start > 0 && start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    let lineEnd = end;
    if (lineEnd > start && text.charCodeAt(lineEnd - 1) === CR) lineEnd--;
    if (lineEnd > start) {
      const colon = text.indexOf(':', start);
      let valueStart = colon + 1;
      while (valueStart < lineEnd && (text.charCodeAt(valueStart) === 0x20 || text.charCodeAt(valueStart) === 0x09)) valueStart++;
      let valueEnd = lineEnd;
      while (valueEnd > valueStart && (text.charCodeAt(valueEnd - 1) === 0x20 || text.charCodeAt(valueEnd - 1) === 0x09)) valueEnd--;
      names.push(Buffer.from(text.slice(start, colon), 'latin1'));
      valueOffsets.push(valueStart, valueEnd);
    }
    start = end + 1;
  }
  return { names, valueOffsets };
}

/**
 * A head's fields as Buffers, what undici's `onHeaders` takes: the names made once per distinct
 * head, the values sliced from the bytes this response arrived in (no copy, no re-encoding), so
 * no two responses share a value Buffer. Laid out only when a caller asks.
 */
class HeadBytes implements RawFieldSource {
  constructor(
    private readonly bytes: Buffer,
    private readonly base: number,
    private readonly head: ParsedHead,
  ) {}

  rawFields(): Buffer[] {
    const { bytes, base, head } = this;
    const { names, valueOffsets } = (head.layout ??= rawLayoutOf(head.text));
    const raw: Buffer[] = [];
    for (let i = 0; i < names.length; i++) {
      raw.push(names[i] as Buffer, bytes.subarray(base + (valueOffsets[2 * i] as number), base + (valueOffsets[2 * i + 1] as number)));
    }
    return raw;
  }
}

/** A header record as a flat list, to build fresh records from (faster than copying the record). */
function flatFields(headers: IncomingHeaders): Array<string | string[]> {
  const fields: Array<string | string[]> = [];
  for (const name in headers) {
    const value = headers[name] as string | string[];
    fields.push(name, typeof value === 'string' ? value : value.slice());
  }
  return fields;
}

/** A record the receiver may change freely (set-cookie arrays included). */
function recordOf(fields: ReadonlyArray<string | string[]>): IncomingHeaders {
  const record = emptyHeaders();
  for (let i = 0; i < fields.length; i += 2) {
    const value = fields[i + 1] as string | string[];
    record[fields[i] as string] = typeof value === 'string' ? value : value.slice();
  }
  return record;
}

export class ResponseParser {
  private readonly sink: ResponseSink;
  private readonly maxHeaderBytes: number;
  private readonly maxHeaderCount: number;
  private parserState: ParserState = 'idle';
  private method = 'GET';
  /** Head or trailer bytes that arrived before their end. */
  private pending: Buffer | undefined;
  /** Partial chunk-size line. */
  private lineText = '';
  private remaining = 0;
  private received = 0;
  /** Bytes of the header section seen so far, for the limit, across 1xx heads too. */
  private headBytes = 0;
  /** Interim (1xx) responses seen before the final one (bounded: fields.ts). */
  private interimCount = 0;
  /**
   * The last final head. A server answering the same resource sends the same head bytes again and
   * again (until its Date field changes), and the result of parsing them depends on those bytes
   * and the request method alone: an identical head is answered from here.
   */
  private lastHead: ParsedHead | undefined;

  constructor(sink: ResponseSink, limits: ParserLimits = {}) {
    this.sink = sink;
    this.maxHeaderBytes = limits.maxHeaderBytes ?? 16_384;
    this.maxHeaderCount = limits.maxHeaderCount ?? 128;
  }

  get state(): ParserState {
    return this.parserState;
  }

  /** Bytes received for the current response so far (1xx heads included). */
  get bytesReceived(): number {
    return this.received;
  }

  /** Expects a new response, to a request with this method. */
  start(method: string): void {
    if (this.parserState !== 'idle' && this.parserState !== 'done') {
      throw internalError(`ResponseParser.start() in state ${this.parserState}`);
    }
    this.method = method;
    this.interimCount = 0;
    this.parserState = 'head';
    this.pending = undefined;
    this.lineText = '';
    this.received = 0;
    this.headBytes = 0;
  }

  execute(chunk: Buffer): void {
    this.received += chunk.length;
    let offset = 0;
    // Bounded: every turn consumes bytes or ends the response.
    while (offset < chunk.length) {
      switch (this.parserState) {
        case 'head':
          offset = this.readHead(chunk, offset);
          break;
        case 'body-length': {
          const take = Math.min(this.remaining, chunk.length - offset);
          this.remaining -= take;
          const slice = offset === 0 && take === chunk.length ? chunk : chunk.subarray(offset, offset + take);
          offset += take;
          this.sink.onBody(slice);
          if (this.remaining === 0) this.complete();
          break;
        }
        case 'body-close':
          this.sink.onBody(offset === 0 ? chunk : chunk.subarray(offset));
          offset = chunk.length;
          break;
        case 'chunk-size':
          offset = this.readChunkSize(chunk, offset);
          break;
        case 'chunk-data': {
          const take = Math.min(this.remaining, chunk.length - offset);
          this.remaining -= take;
          const slice = chunk.subarray(offset, offset + take);
          offset += take;
          this.sink.onBody(slice);
          if (this.remaining === 0) this.parserState = 'chunk-data-end';
          break;
        }
        case 'chunk-data-end':
          offset = this.readChunkDataEnd(chunk, offset);
          break;
        case 'trailers':
          offset = this.readTrailers(chunk, offset);
          break;
        case 'done':
          this.fail(parseError('unexpected bytes after the response'));
          break;
        case 'idle':
          this.fail(parseError('bytes arrived before any request'));
          break;
        case 'error':
          throw internalError('ResponseParser.execute() after an error');
      }
    }
  }

  /** The peer closed its side. Ends a close-delimited body; anything else in flight is cut short. */
  finish(): void {
    switch (this.parserState) {
      case 'body-close':
        this.complete();
        return;
      case 'idle':
      case 'done':
        return;
      case 'head':
        if (this.received === 0) {
          this.fail(
            new MuxpoolError('MUXPOOL_ERR_CONNECTION_CLOSED', 'the server closed the connection without a response', {
              origin: 'remote',
            }),
          );
        }
        this.fail(
          new MuxpoolError('MUXPOOL_ERR_H1_PARSE', 'the server closed the connection in the middle of the response head', {
            origin: 'remote',
          }),
        );
        return;
      case 'error':
        return;
      default:
        this.fail(
          new MuxpoolError('MUXPOOL_ERR_BODY_TRUNCATED', 'the server closed the connection before the end of the body', {
            origin: 'remote',
          }),
        );
    }
  }

  private fail(err: MuxpoolError): never {
    this.parserState = 'error';
    this.pending = undefined;
    throw err;
  }

  private complete(): void {
    this.parserState = 'done';
    this.pending = undefined;
    this.sink.onComplete();
  }

  /** Finds the blank line that ends a header or trailer section; -1 if not yet here. */
  private static sectionEnd(buf: Buffer, from: number): number {
    // A section ends at LF followed by LF or by CRLF.
    for (let lf = buf.indexOf(LF, from); lf !== -1; lf = buf.indexOf(LF, lf + 1)) {
      const next = buf[lf + 1];
      if (next === LF) return lf + 2;
      if (next === CR && buf[lf + 2] === LF) return lf + 3;
    }
    return -1;
  }

  /** Joins a partial section with new bytes, enforcing the size limit before buffering. */
  private gather(chunk: Buffer, offset: number): { buf: Buffer; base: number } {
    const pending = this.pending;
    if (pending === undefined) return { buf: chunk, base: offset };
    return { buf: Buffer.concat([pending, chunk.subarray(offset)]), base: 0 };
  }

  private readHead(chunk: Buffer, offset: number): number {
    const pendingLength = this.pending?.length ?? 0;
    const { buf, base } = this.gather(chunk, offset);
    // A blank line may straddle the old and new bytes: rescan the last few old ones.
    const end = ResponseParser.sectionEnd(buf, pendingLength > 0 ? Math.max(0, pendingLength - 3) : base);
    if (end === -1) {
      const size = buf.length - base;
      if (this.headBytes + size > this.maxHeaderBytes) this.tooLarge('response header section');
      this.pending = base === 0 && buf !== chunk ? buf : Buffer.from(buf.subarray(base));
      return chunk.length;
    }
    if (this.headBytes + (end - base) > this.maxHeaderBytes) this.tooLarge('response header section');
    this.pending = undefined;
    const consumedFromChunk = end - base - pendingLength;
    const next = offset + consumedFromChunk;
    this.onHeadBytes(buf.toString('latin1', base, end), buf, base);
    return next;
  }

  private tooLarge(section: string): never {
    this.fail(
      new MuxpoolError('MUXPOOL_ERR_HEADERS_TOO_LARGE', `${section} is larger than ${this.maxHeaderBytes} bytes`, {
        origin: 'remote',
      }),
    );
  }

  private onHeadBytes(text: string, bytes: Buffer, base: number): void {
    const last = this.lastHead;
    if (last !== undefined && last.text === text && last.method === this.method) {
      this.remaining = last.remaining;
      this.parserState = last.next === 'done' ? 'head' : last.next;
      this.sink.onHead({
        status: last.status,
        statusText: last.statusText,
        headers: recordOf(last.fields),
        keepAlive: last.keepAlive,
        keepAliveTimeoutMs: last.keepAliveTimeoutMs,
        raw: new HeadBytes(bytes, base, last),
      });
      if (last.next === 'done') this.complete();
      return;
    }
    const lines = splitLines(text);
    // The section ends with an empty line, which split() turns into two empty strings.
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    const statusLine = lines[0] ?? '';
    // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
    if (
      statusLine.length < 12 ||
      !statusLine.startsWith('HTTP/1.') ||
      (statusLine[7] !== '1' && statusLine[7] !== '0') ||
      statusLine[8] !== ' ' ||
      (statusLine.length > 12 && statusLine[12] !== ' ')
    ) {
      this.fail(parseError(`malformed status line ${JSON.stringify(statusLine.slice(0, 60))}`));
    }
    const d0 = statusLine.charCodeAt(9) - 48;
    const d1 = statusLine.charCodeAt(10) - 48;
    const d2 = statusLine.charCodeAt(11) - 48;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) {
      this.fail(parseError(`malformed status code in ${JSON.stringify(statusLine.slice(0, 60))}`));
    }
    const status = d0 * 100 + d1 * 10 + d2;
    let headers: IncomingHeaders;
    try {
      headers = parseFields(lines, 1, this.maxHeaderCount, 'response header section');
    } catch (err) {
      this.parserState = 'error';
      throw err;
    }
    if (status < 200) {
      if (status === 101) this.fail(parseError('101 Switching Protocols, but no upgrade was asked for'));
      // 1xx are interim (RFC 9110 §15.2): skip them and wait for the final response. Their bytes
      // count against maxHeaderBytes with the final head's; their number is bounded too.
      this.headBytes += text.length;
      try {
        checkInterimBudget(++this.interimCount, 0, Infinity);
      } catch (err) {
        this.fail(err as MuxpoolError);
      }
      return;
    }
    const http10 = statusLine[7] === '0';
    const connection = headers['connection'];
    // RFC 9112 §9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive` (and
    // `close` wins if a confused server sends both).
    let keepAlive = !hasToken(connection, 'close') && (!http10 || hasToken(connection, 'keep-alive'));
    const noBody = this.method === 'HEAD' || status === 204 || status === 304;
    let next: ParserState;
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    if (te !== undefined && cl !== undefined) {
      // RFC 9112 §6.3 step 3: a message with both "ought to be handled as an error" (it is the
      // shape of request smuggling); node:http and undici refuse it too. Whatever the method or
      // status, since the two framings disagree about where the next response starts.
      this.fail(parseError('the response has both transfer-encoding and content-length'));
    }
    if (te !== undefined && http10) {
      // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing; the
      // recipient "MUST ... close the connection after processing the message", keep-alive or not.
      keepAlive = false;
    }
    if (noBody) {
      next = 'done';
    } else if (te !== undefined) {
      this.checkTransferCoding(te);
      next = 'chunk-size';
    } else if (cl !== undefined) {
      let length: number;
      try {
        length = contentLength(cl);
      } catch (err) {
        this.parserState = 'error';
        throw err;
      }
      this.remaining = length;
      next = length === 0 ? 'done' : 'body-length';
    } else {
      next = 'body-close';
      keepAlive = false;
    }
    this.parserState = next === 'done' ? 'head' : next;
    const statusText = statusLine.length > 13 ? statusLine.slice(13) : '';
    const keepAliveTimeoutMs = keepAlive ? keepAliveTimeout(headers['keep-alive']) : undefined;
    const parsed: ParsedHead = {
      text,
      method: this.method,
      status,
      statusText,
      fields: flatFields(headers),
      keepAlive,
      keepAliveTimeoutMs,
      next,
      remaining: next === 'body-length' ? this.remaining : 0,
    };
    this.lastHead = parsed;
    this.sink.onHead({ status, statusText, headers, keepAlive, keepAliveTimeoutMs, raw: new HeadBytes(bytes, base, parsed) });
    if (next === 'done') this.complete();
  }

  /**
   * Transfer-Encoding must be exactly `chunked`. RFC 9112 §6.3 item 4 would read a response
   * whose final coding is not chunked until the connection closes, but its content is then in
   * a transfer coding we cannot decode (we implement none but chunked), so handing it over would
   * pass coded bytes off as the body; `gzip, chunked` likewise. Both fail typed, as does chunked
   * twice (§7: a sender "MUST NOT apply the chunked transfer coding more than once").
   */
  private checkTransferCoding(te: string | string[]): void {
    const codings: string[] = [];
    for (const part of (Array.isArray(te) ? te.join(',') : te).split(',')) {
      // §5.6.1: recipients ignore empty list elements.
      const coding = trimOws(part).toLowerCase();
      if (coding !== '') codings.push(coding);
    }
    if (codings.length === 1 && codings[0] === 'chunked') return;
    const last = codings[codings.length - 1];
    if (last !== 'chunked') {
      this.fail(parseError(`transfer-encoding ${JSON.stringify(codings.join(', ').slice(0, 60))} does not end with chunked`));
    }
    this.fail(parseError(`unsupported transfer coding ${JSON.stringify(codings.join(', ').slice(0, 60))}: only chunked is decoded`));
  }

  private readChunkSize(chunk: Buffer, offset: number): number {
    const lf = chunk.indexOf(LF, offset);
    const end = lf === -1 ? chunk.length : lf;
    this.lineText += chunk.toString('latin1', offset, end);
    if (this.lineText.length > MAX_CHUNK_LINE_BYTES) this.fail(parseError('chunk size line too long'));
    if (lf === -1) return chunk.length;
    let line = this.lineText;
    this.lineText = '';
    if (line.charCodeAt(line.length - 1) === CR) line = line.slice(0, -1);
    // chunk = chunk-size [ chunk-ext ] CRLF (RFC 9112 §7.1); extensions are ignored.
    // Leading zeros are legal and carry no value: only the significant digits must fit (13 hex
    // digits stay below 2^53); the line length bounds how many zeros we read.
    let digits = 0;
    let significant = 0;
    let size = 0;
    for (; digits < line.length; digits++) {
      const c = line.charCodeAt(digits);
      const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (v === -1) break;
      if (significant > 0 || v !== 0) significant++;
      size = size * 16 + v;
    }
    if (digits === 0 || significant > 13 || !Number.isSafeInteger(size)) {
      this.fail(parseError(`invalid chunk size ${JSON.stringify(line.slice(0, 20))}`));
    }
    const rest = line.slice(digits);
    if (rest.length > 0 && !/^[ \t]*;/.test(rest)) this.fail(parseError(`invalid chunk extension ${JSON.stringify(rest.slice(0, 20))}`));
    if (rest.indexOf('\r') !== -1 || rest.indexOf('\0') !== -1) this.fail(parseError('control character in chunk extension'));
    if (size === 0) {
      this.parserState = 'trailers';
      this.headBytes = 0;
    } else {
      this.remaining = size;
      this.parserState = 'chunk-data';
    }
    return lf + 1;
  }

  private readChunkDataEnd(chunk: Buffer, offset: number): number {
    // The CRLF after chunk data may arrive split; lineText holds a lone CR.
    let i = offset;
    if (this.lineText === '' && chunk[i] === CR) {
      this.lineText = '\r';
      i++;
      if (i >= chunk.length) return i;
    }
    if (chunk[i] !== LF) this.fail(parseError('missing CRLF after chunk data'));
    this.lineText = '';
    this.parserState = 'chunk-size';
    return i + 1;
  }

  private readTrailers(chunk: Buffer, offset: number): number {
    const pendingLength = this.pending?.length ?? 0;
    // The trailer section may be empty: a CRLF (or LF) right away ends the message.
    if (pendingLength === 0) {
      if (chunk[offset] === LF) {
        this.finishTrailers(undefined);
        return offset + 1;
      }
      if (chunk[offset] === CR) {
        if (offset + 1 >= chunk.length) {
          this.pending = Buffer.from('\r', 'latin1');
          return chunk.length;
        }
        if (chunk[offset + 1] === LF) {
          this.finishTrailers(undefined);
          return offset + 2;
        }
        // A CR that does not end the line is a bare CR (RFC 9112 §2.2): refused now, as it is
        // when the CR arrives alone, not after the trailer section fills up.
        this.fail(parseError('malformed end of chunked body'));
      }
    } else if (pendingLength === 1 && this.pending?.[0] === CR) {
      if (chunk[offset] !== LF) this.fail(parseError('malformed end of chunked body'));
      this.pending = undefined;
      this.finishTrailers(undefined);
      return offset + 1;
    }
    // Trailer fields: a section like the head, ending with a blank line.
    const { buf, base } = this.gather(chunk, offset);
    const end = ResponseParser.sectionEnd(buf, pendingLength > 0 ? Math.max(0, pendingLength - 3) : base);
    if (end === -1) {
      if (this.headBytes + buf.length - base > this.maxHeaderBytes) this.tooLarge('trailer section');
      this.pending = Buffer.from(buf.subarray(base));
      return chunk.length;
    }
    if (end - base > this.maxHeaderBytes) this.tooLarge('trailer section');
    this.pending = undefined;
    const lines = splitLines(buf.toString('latin1', base, end));
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    let trailers: IncomingHeaders;
    try {
      trailers = parseFields(lines, 0, this.maxHeaderCount, 'trailer section');
    } catch (err) {
      this.parserState = 'error';
      throw err;
    }
    this.finishTrailers(trailers);
    return offset + (end - base - pendingLength);
  }

  private finishTrailers(trailers: IncomingHeaders | undefined): void {
    if (trailers !== undefined && Object.keys(trailers).length > 0) this.sink.onTrailers(trailers);
    this.complete();
  }
}
