/**
 * Request and response header sections for HTTP/2 (RFC 9113 §8.2–8.3), as `node:http2` takes and
 * gives them. Pure: no session, no I/O.
 */
import { MuxpoolError } from '../../errors.js';
import { type IncomingHeaders, type RequestHead, emptyHeaders } from '../message.js';
import { multiplexedRequestFields, receivedFieldNameProblem, receivedFieldValueProblem } from '../fields.js';

/** HTTP/2 PROTOCOL_ERROR (RFC 9113 §7): the stream error a malformed message calls for (§8.1.1). */
const H2_PROTOCOL_ERROR = 0x1;

function malformed(problem: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_H2_PROTOCOL', `malformed HTTP/2 response: ${problem}`, {
    wireCode: H2_PROTOCOL_ERROR,
    origin: 'remote',
    maybeProcessed: true,
  });
}

export type OutgoingH2Headers = Record<string, string | string[]>;

/**
 * The header object for `session.request()`: pseudo-header fields first (§8.3.1), then the
 * caller's fields with connection-specific ones removed. `host` becomes `:authority` (§8.3.1:
 * clients "SHOULD use the :authority pseudo-header field instead of the Host header field").
 */
export function toH2RequestHeaders(head: RequestHead): OutgoingH2Headers {
  const out: OutgoingH2Headers = {
    ':method': head.method,
    ':scheme': head.scheme,
    ':authority': head.authority,
  };
  // §8.5: CONNECT carries neither :scheme nor :path.
  if (head.method === 'CONNECT') delete out[':scheme'];
  else out[':path'] = head.path === '' ? '/' : head.path;

  // Connection-specific fields stripped as RFC 9113 §8.2.2 requires; `host` becomes `:authority`.
  const fields = multiplexedRequestFields(head.headers, head.contentLength);
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string;
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[name] = [existing, value];
  }
  return out;
}

export interface HeaderLimits {
  maxHeaderBytes: number;
  maxHeaderCount: number;
}

/**
 * Response fields without pseudo-headers, checked against the field rules every protocol shares
 * (fields.ts; RFC 9113 §8.2.1: lower-case token names, no CR, LF or NUL in values; nghttp2
 * enforces them too, this keeps them true whatever engine runs) and against our limits. Size
 * is counted as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2: name + value + 32 per
 * field), so the limit means the same over HTTP/2 and HTTP/3. `node:http2` does not enforce the
 * size we advertise, so this is where it holds.
 */
export function fromH2ResponseHeaders(raw: Record<string, string | string[] | number | undefined>, limits: HeaderLimits): IncomingHeaders {
  const out = emptyHeaders();
  let bytes = 0;
  let count = 0;
  for (const name in raw) {
    const value = raw[name];
    if (value === undefined) continue;
    if (typeof value === 'string') {
      bytes += name.length + value.length + 32;
      count++;
    } else if (typeof value === 'number') {
      bytes += name.length + 3 + 32;
      count++;
    } else {
      for (const v of value) bytes += name.length + v.length + 32;
      count += value.length;
    }
    if (name.charCodeAt(0) === 0x3a /* ':' */) continue;
    const problem = receivedFieldNameProblem(name, true);
    if (problem !== undefined) throw malformed(problem);
    const text = typeof value === 'number' ? String(value) : value;
    if (typeof text === 'string') {
      const valueProblem = receivedFieldValueProblem(name, text);
      if (valueProblem !== undefined) throw malformed(valueProblem);
    } else {
      for (const item of text) {
        const valueProblem = receivedFieldValueProblem(name, item);
        if (valueProblem !== undefined) throw malformed(valueProblem);
      }
    }
    out[name] = text;
  }
  if (bytes > limits.maxHeaderBytes || count > limits.maxHeaderCount) {
    throw new MuxpoolError(
      'MUXPOOL_ERR_HEADERS_TOO_LARGE',
      `response header section of ${bytes} bytes in ${count} fields exceeds maxHeaderBytes ${limits.maxHeaderBytes} or maxHeaderCount ${limits.maxHeaderCount}`,
      { maybeProcessed: true },
    );
  }
  return out;
}
