/**
 * HTTP/1.1 request head encoder (RFC 9112 §3). Pure: a `RequestHead` in, a latin1 string out.
 * Field names and values were validated when the head was built; the target is checked here
 * because it is written raw into the request line.
 */
import { MuxpoolError } from '../../errors.js';
import type { RequestHead } from '../message.js';

export type BodyFraming = 'length' | 'chunked' | 'none';

export const LAST_CHUNK = '0\r\n\r\n';

/** chunk-size CRLF (RFC 9112 §7.1). */
export function chunkHeader(length: number): string {
  return `${length.toString(16)}\r\n`;
}

/**
 * The request target goes on the wire verbatim: no SP, CR, LF, NUL or other controls. Origin
 * form (`/path`), `*`, or absolute form `http://…` (RFC 9112 §3.2.2), which a request forwarded
 * by an HTTP proxy carries.
 */
function validateTarget(path: string): void {
  if (path.length === 0 || (path.charCodeAt(0) !== 0x2f && path !== '*' && !path.startsWith('http://'))) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', `request target must be "/path", "*" or "http://…" (absolute form, for a proxy): ${JSON.stringify(path.slice(0, 80))}`);
  }
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c > 0xff) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_URL', `request target has an invalid character at offset ${i}`);
    }
  }
}

/**
 * `METHOD target HTTP/1.1`, then `host`, the caller's fields, and the framing field. The caller
 * decides framing; a content-length or transfer-encoding in `head.headers` is dropped so a
 * message never carries two framings (RFC 9112 §6.3 makes that a smuggling vector).
 */
export function encodeRequestHead(head: RequestHead, framing: BodyFraming): string {
  validateTarget(head.path);
  let fields = '';
  let hasHost = false;
  const headers = head.headers;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name === 'host') hasHost = true;
    else if (name === 'content-length' || name === 'transfer-encoding') continue;
    fields += `${name}: ${headers[i + 1] as string}\r\n`;
  }
  const host = hasHost ? '' : `host: ${head.authority}\r\n`;
  const framingField =
    framing === 'length' ? `content-length: ${head.contentLength ?? 0}\r\n` : framing === 'chunked' ? 'transfer-encoding: chunked\r\n' : '';
  return `${head.method} ${head.path} HTTP/1.1\r\n${host}${fields}${framingField}\r\n`;
}

/**
 * A head encoded, and its text (kept with a copy of its fields: a caller may reuse its array).
 * Each connection keeps its last one, so nothing outlives the connection whose requests carried
 * those fields (credentials included).
 */
export interface EncodedHead {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: readonly string[];
  readonly contentLength: number | null | undefined;
  readonly framing: BodyFraming;
  readonly text: string;
}

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * `encodeRequestHead`, answered from `last` when this head is the same: a program (fetch in a
 * loop, a poller) sends the same head over and over, and comparing its few fields costs less
 * than building the text again (the strings compared are mostly the same objects). The text
 * depends on nothing but what is compared. Returns `last` itself on a match.
 */
export function encodeRequestHeadReusing(head: RequestHead, framing: BodyFraming, last: EncodedHead | undefined): EncodedHead {
  if (
    last !== undefined &&
    last.path === head.path &&
    last.method === head.method &&
    last.authority === head.authority &&
    last.framing === framing &&
    last.contentLength === head.contentLength &&
    sameFields(last.headers, head.headers)
  ) {
    return last;
  }
  const text = encodeRequestHead(head, framing);
  return { method: head.method, path: head.path, authority: head.authority, headers: head.headers.slice(), contentLength: head.contentLength, framing, text };
}
