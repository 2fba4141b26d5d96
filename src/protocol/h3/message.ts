/**
 * HTTP/3 messages as field lists (RFC 9114 §4.1–4.3): the request a client sends, the response
 * it accepts, and the server's mirror image. Pure: QPACK turns these lists into bytes.
 */
import { MuxpoolError } from '../../errors.js';
import { type IncomingHeaders, type RequestHead, emptyHeaders } from '../message.js';
import { H3_MESSAGE_ERROR } from './codes.js';
import {
  isConnectionSpecific,
  multiplexedRequestFields,
  receivedFieldNameProblem,
  receivedFieldValueProblem,
  validateHeaderName,
  validateHeaderValue,
} from '../fields.js';

export type FieldList = Array<[string, string]>;

/** RFC 9114 §4.2.2: a field's size is its name and value lengths plus 32. */
export function fieldSectionSize(fields: FieldList): number {
  let size = 0;
  for (const [name, value] of fields) size += name.length + value.length + 32;
  return size;
}

function malformed(message: string): MuxpoolError {
  return new MuxpoolError('MUXPOOL_ERR_H3_PROTOCOL', `malformed HTTP/3 message: ${message}`, {
    wireCode: H3_MESSAGE_ERROR,
    origin: 'remote',
    maybeProcessed: true,
  });
}

/**
 * The field list of a request: pseudo-header fields first (RFC 9114 §4.3: "All pseudo-header
 * fields MUST appear in the header section before regular header fields"), then the caller's
 * fields without connection-specific ones (§4.2).
 */
export function toH3RequestFields(head: RequestHead): FieldList {
  const out: FieldList = [[':method', head.method]];
  // §4.4: CONNECT carries neither :scheme nor :path.
  if (head.method !== 'CONNECT') {
    out.push([':scheme', head.scheme], [':authority', head.authority], [':path', head.path === '' ? '/' : head.path]);
  } else {
    out.push([':authority', head.authority]);
  }
  const fields = multiplexedRequestFields(head.headers, head.contentLength);
  for (let i = 0; i < fields.length; i += 2) out.push([fields[i] as string, fields[i + 1] as string]);
  return out;
}

export interface ResponseHead {
  status: number;
  headers: IncomingHeaders;
}

/** RFC 9114 §4.1.2: invalid characters in a field name or value make the message malformed. */
function checkRegularField(name: string, value: string): void {
  const problem = receivedFieldNameProblem(name, true) ?? receivedFieldValueProblem(name, value);
  if (problem !== undefined) throw malformed(problem);
}

function checkPseudoValue(name: string, value: string): void {
  const problem = receivedFieldValueProblem(name, value);
  if (problem !== undefined) throw malformed(problem);
}

function addField(out: IncomingHeaders, name: string, value: string): void {
  const existing = out[name];
  if (existing === undefined) out[name] = value;
  else if (Array.isArray(existing)) existing.push(value);
  else out[name] = name === 'set-cookie' ? [existing, value] : name === 'cookie' ? `${existing}; ${value}` : `${existing}, ${value}`;
}

/**
 * A response header section (or trailer section, with `trailers`) as the client layer takes
 * it. RFC 9114 §4.3.2: exactly one `:status`, no other pseudo-header; §4.2: no
 * connection-specific fields. Anything else makes the response malformed (§4.1.2), which is a
 * stream error of type H3_MESSAGE_ERROR.
 */
export function fromH3ResponseFields(fields: FieldList, maxHeaderCount: number, trailers = false): ResponseHead {
  if (fields.length > maxHeaderCount + 1) {
    throw new MuxpoolError('MUXPOOL_ERR_HEADERS_TOO_LARGE', `response header section has ${fields.length} fields, over maxHeaderCount ${maxHeaderCount}`, {
      maybeProcessed: true,
    });
  }
  let status = -1;
  let regular = false;
  const headers = emptyHeaders();
  for (const [name, value] of fields) {
    if (name.charCodeAt(0) === 0x3a /* ':' */) {
      if (trailers) throw malformed(`pseudo-header ${name} in a trailer section`);
      if (name !== ':status') throw malformed(`unexpected pseudo-header ${name} in a response`);
      if (regular) throw malformed(':status after a regular field');
      if (status !== -1) throw malformed('more than one :status');
      if (!/^[1-5]\d\d$/.test(value)) throw malformed(`invalid :status ${JSON.stringify(value)}`);
      status = Number(value);
      continue;
    }
    regular = true;
    checkRegularField(name, value);
    if (isConnectionSpecific(name) && name !== 'host') throw malformed(`connection-specific field ${name}`);
    addField(headers, name, value);
  }
  if (!trailers && status === -1) throw malformed('no :status');
  return { status, headers };
}

export interface RequestFields {
  method: string;
  scheme: string | undefined;
  authority: string | undefined;
  path: string;
  headers: IncomingHeaders;
}

/** Server side: a request header section (RFC 9114 §4.3.1). */
export function fromH3RequestFields(fields: FieldList): RequestFields {
  let method: string | undefined;
  let scheme: string | undefined;
  let authority: string | undefined;
  let path: string | undefined;
  let regular = false;
  const headers = emptyHeaders();
  for (const [name, value] of fields) {
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) throw malformed(`${name} after a regular field`);
      checkPseudoValue(name, value);
      switch (name) {
        case ':method':
          if (method !== undefined) throw malformed('more than one :method');
          method = value;
          break;
        case ':scheme':
          if (scheme !== undefined) throw malformed('more than one :scheme');
          scheme = value;
          break;
        case ':authority':
          if (authority !== undefined) throw malformed('more than one :authority');
          authority = value;
          break;
        case ':path':
          if (path !== undefined) throw malformed('more than one :path');
          path = value;
          break;
        default:
          throw malformed(`unexpected pseudo-header ${name} in a request`);
      }
      continue;
    }
    regular = true;
    checkRegularField(name, value);
    if (isConnectionSpecific(name) && name !== 'host') throw malformed(`connection-specific field ${name}`);
    if (name === 'te' && value !== 'trailers') throw malformed('te other than trailers');
    addField(headers, name, value);
  }
  if (method === undefined) throw malformed('no :method');
  if (method !== 'CONNECT' && (scheme === undefined || path === undefined || path === '')) throw malformed('no :scheme or :path');
  if (authority !== undefined && headers.host === undefined) headers.host = authority;
  return { method, scheme, authority, path: path ?? '', headers };
}

/** Server side: a response's field list, `:status` first. */
export function toH3ResponseFields(status: number, headers: Record<string, string | number | readonly string[]>): FieldList {
  const out: FieldList = [[':status', String(status)]];
  for (const rawName in headers) {
    const name = rawName.toLowerCase();
    if (isConnectionSpecific(name)) continue;
    const value = headers[rawName];
    if (value === undefined) continue;
    validateHeaderName(name);
    const values = Array.isArray(value) ? (value as readonly string[]) : [String(value)];
    for (const item of values) {
      // CR, LF and NUL never reach the wire, whichever side writes the field.
      validateHeaderValue(name, item);
      out.push([name, item]);
    }
  }
  return out;
}
