/**
 * Field (header) and method validation shared by HTTP/1.1, HTTP/2 and HTTP/3 (RFC 9110 §5).
 * Everything a user passes is checked here before a byte goes on the wire: a CR or LF in a
 * field would let the caller (or whoever controls the value) inject headers or requests.
 */
import { STATUS_CODES } from 'node:http';
import { MuxpoolError } from '../errors.js';

/** tchar (RFC 9110 §5.6.2): `!#$%&'*+-.^_`|~`, digits, letters. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

export function isToken(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 128 || TCHAR[c] !== 1) return false;
  }
  return true;
}

export function validateMethod(method: string): void {
  if (typeof method !== 'string' || !isToken(method)) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_METHOD', `invalid HTTP method ${JSON.stringify(String(method)).slice(0, 60)}`);
  }
}

export function validateHeaderName(name: string): void {
  if (!isToken(name)) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', `invalid header name ${JSON.stringify(name).slice(0, 80)}`);
  }
}

/**
 * field-value (RFC 9110 §5.5): visible characters, SP and HTAB, and obs-text (0x80–0xFF). CR, LF
 * and NUL are never allowed (§5.5: "a recipient of CR, LF, or NUL within a field value MUST
 * either reject the message or replace each of those characters with SP"); we reject, and the
 * other controls too. Characters beyond U+00FF cannot be sent in latin1 and are rejected.
 */
export function validateHeaderValue(name: string, value: string): void {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) {
      throw new MuxpoolError(
        'MUXPOOL_ERR_INVALID_HEADER',
        `header ${name} has an invalid character 0x${c.toString(16).padStart(2, '0')} at offset ${i}`,
      );
    }
  }
}

/**
 * Received fields (responses and trailers, every protocol) are checked by the two functions
 * below, so HTTP/1.1, HTTP/2 and HTTP/3 refuse the same things. Each returns why a field is
 * malformed, or `undefined`; the caller raises its protocol's error.
 *
 * Names must be tokens (RFC 9110 §5.1, §5.6.2): never empty, no SP, colon, CR or LF. HTTP/2 and
 * HTTP/3 also forbid upper-case letters (RFC 9113 §8.2.1, RFC 9114 §4.2: "a request or response
 * containing uppercase characters in field names MUST be treated as malformed").
 */
export function receivedFieldNameProblem(name: string, lowerCaseOnly: boolean): string | undefined {
  if (name.length === 0) return 'empty field name';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TCHAR[c] !== 1) return `invalid character 0x${c.toString(16).padStart(2, '0')} in field name ${JSON.stringify(name.slice(0, 60))}`;
    if (lowerCaseOnly && c >= 0x41 && c <= 0x5a) return `field name ${JSON.stringify(name.slice(0, 60))} has uppercase characters`;
  }
  return undefined;
}

/** CR, LF or NUL anywhere in a received value: RFC 9110 §5.5, RFC 9113 §8.2.1, RFC 9114 §4.2. */
const FORBIDDEN_IN_VALUE = /[\0\r\n]/;

/**
 * RFC 9110 §5.5: "a recipient of CR, LF, or NUL within a field value MUST either reject the
 * message or replace each of those characters with SP"; we reject (nghttp2 and llhttp do too).
 * Other controls and obs-text are let through, as the peers' own parsers do.
 */
export function receivedFieldValueProblem(name: string, value: string): string | undefined {
  if (!FORBIDDEN_IN_VALUE.test(value)) return undefined;
  const i = value.search(FORBIDDEN_IN_VALUE);
  return `field ${JSON.stringify(name.slice(0, 60))} has an invalid character 0x${value.charCodeAt(i).toString(16).padStart(2, '0')} in its value`;
}

export type HeaderInputValue = string | number | readonly string[] | undefined;
export type HeadersInput =
  | Record<string, HeaderInputValue>
  | Iterable<readonly [string, string]>
  | undefined
  | null;

/** Lower-case names already seen valid: most programs send the same few headers again and again. */
const knownNames = new Map<string, string>();
const MAX_KNOWN_NAMES = 1024;

function lowerValidName(name: string): string {
  const known = knownNames.get(name);
  if (known !== undefined) return known;
  if (typeof name !== 'string') throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', 'header names must be strings');
  validateHeaderName(name);
  const lower = name.toLowerCase();
  if (knownNames.size < MAX_KNOWN_NAMES) knownNames.set(name, lower);
  return lower;
}

/** OWS around a field value is not part of it (RFC 9110 §5.5). */
function trimOws(value: string): string {
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return value.replace(/^[ \t]+|[ \t]+$/g, '');
  return value;
}

function pushField(out: string[], name: string, value: unknown): void {
  if (value === undefined) return;
  const text = trimOws(typeof value === 'string' ? value : String(value));
  validateHeaderValue(name, text);
  out.push(name, text);
}

/**
 * User headers → flat `[name, value, …]` with lower-case names, every field validated. Accepts a
 * plain object (arrays give repeated fields), an iterable of pairs, or a `Headers`-like object.
 */
export function normalizeHeaders(input: HeadersInput): string[] {
  const out: string[] = [];
  if (input === undefined || input === null) return out;
  if (typeof input !== 'object') throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', 'headers must be an object or an iterable of pairs');
  if (typeof (input as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const pair of input as Iterable<readonly [string, string]>) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new MuxpoolError('MUXPOOL_ERR_INVALID_HEADER', 'header entries must be [name, value] pairs');
      }
      pushField(out, lowerValidName(pair[0] as string), pair[1]);
    }
    return out;
  }
  const record = input as Record<string, HeaderInputValue>;
  for (const rawName in record) {
    const value = record[rawName];
    if (value === undefined) continue;
    const name = lowerValidName(rawName);
    if (Array.isArray(value)) {
      for (const item of value as readonly string[]) pushField(out, name, item);
    } else {
      pushField(out, name, value);
    }
  }
  return out;
}

/**
 * Connection-specific fields (RFC 9113 §8.2.2, RFC 9114 §4.2): HTTP/2 and HTTP/3 messages MUST
 * NOT carry them. HTTP/1.1 callers set them out of habit, so they are dropped rather than
 * failing the request: they mean nothing on a multiplexed connection. `host` is dropped too,
 * since `:authority` carries it.
 */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);

/** Whether a response field is one an HTTP/2 or HTTP/3 message must not carry. */
export function isConnectionSpecific(name: string): boolean {
  return CONNECTION_SPECIFIC.has(name);
}

/**
 * The regular fields of a request on a multiplexed connection (HTTP/2, HTTP/3), flat
 * `[name, value, …]`: connection-specific fields and those that `Connection` nominates removed,
 * `te` kept only as `trailers`, `content-length` added when the body length is known.
 */
export function multiplexedRequestFields(fields: readonly string[], contentLength: number | null | undefined): string[] {
  let nominated: Set<string> | undefined;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === 'connection') {
      // Fields that Connection names are connection-specific too (RFC 9110 §7.6.1).
      nominated ??= new Set();
      for (const token of (fields[i + 1] as string).split(',')) nominated.add(token.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string;
    if (CONNECTION_SPECIFIC.has(name) || nominated?.has(name) === true || name === 'content-length') continue;
    // RFC 9113 §8.2.2, RFC 9114 §4.2: "TE ... MUST NOT contain any value other than 'trailers'".
    if (name === 'te' && value.trim().toLowerCase() !== 'trailers') continue;
    out.push(name, value);
  }
  if (contentLength !== null && contentLength !== undefined) out.push('content-length', String(contentLength));
  return out;
}

/**
 * The status text HTTP/2 and HTTP/3 responses report: they carry no reason phrase (RFC 9113
 * §8.3.2, RFC 9114 §4.3.2), so both give the standard one (`OK` for 200), as HTTP/1.1 servers
 * nearly always send; HTTP/1.1 reports the phrase its server sent.
 */
export function standardStatusText(status: number): string {
  return STATUS_CODES[status] ?? '';
}

/**
 * RFC 9110 §15.2: any number of 1xx responses may precede the final one, so a client must bound
 * them itself. Every protocol allows this many, and their header bytes together at most
 * `maxHeaderBytes` (the HTTP/1.1 parser counts them with the final head's). Bytes that arrive on a
 * stream are activity for the read deadline, so without this bound a peer sending 1xx forever
 * would keep a stream open however short `readTimeoutMs` is.
 */
export const MAX_INTERIM_RESPONSES = 16;

/** Throws HEADERS_TOO_LARGE once interim responses exceed the count or the byte budget. */
export function checkInterimBudget(count: number, bytes: number, maxHeaderBytes: number): void {
  if (count > MAX_INTERIM_RESPONSES) {
    throw new MuxpoolError('MUXPOOL_ERR_HEADERS_TOO_LARGE', `more than ${MAX_INTERIM_RESPONSES} interim (1xx) responses`, {
      origin: 'remote',
      maybeProcessed: true,
    });
  }
  if (bytes > maxHeaderBytes) {
    throw new MuxpoolError('MUXPOOL_ERR_HEADERS_TOO_LARGE', `interim (1xx) responses of ${bytes} bytes exceed maxHeaderBytes ${maxHeaderBytes}`, {
      origin: 'remote',
      maybeProcessed: true,
    });
  }
}
