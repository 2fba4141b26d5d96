/**
 * What a redirect response means for the next request (RFC 9110 §15.4, and what fetch, Go and
 * OkHttp do where the RFC leaves a choice). Pure: the pool follows the answer.
 */
import { MuxpoolError } from '../errors.js';

export type RedirectMode = 'follow' | 'manual' | 'error';

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * Fields that carry credentials for one origin: a redirect to another origin drops them, so a
 * server cannot send a caller's secrets elsewhere by answering 302.
 */
const CREDENTIAL_FIELDS = new Set(['authorization', 'cookie', 'proxy-authorization']);
/** Fields that describe the body: dropped with it when a redirect turns the request into a GET. */
const BODY_FIELDS = new Set(['content-type', 'content-encoding', 'content-language', 'content-location']);

export interface RedirectHop {
  url: URL;
  method: string;
  /** false: the next request has no body (303, or 301/302 after POST). */
  keepBody: boolean;
  /** The flat `[name, value, …]` fields for the next request. */
  headers: string[];
}

export function isRedirect(status: number): boolean {
  return REDIRECT_STATUSES.has(status);
}

export function redirectModeOf(value: unknown): RedirectMode {
  if (value === undefined) return 'follow';
  if (value === 'follow' || value === 'manual' || value === 'error') return value;
  throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', `redirect must be 'follow', 'manual' or 'error', got ${JSON.stringify(value)}`);
}

/**
 * The next hop for a redirect `status` with `location`, from a request to `from`. Throws
 * `MUXPOOL_ERR_REDIRECT` for a Location that is not an http(s) URL.
 */
export function nextHop(status: number, location: string, from: URL, method: string, headers: readonly string[]): RedirectHop {
  let url: URL;
  try {
    // §10.2.2: a relative reference resolves against the request's URL; a fragment-less
    // Location keeps the original's fragment (§10.2.2, last paragraph).
    url = new URL(location, from);
  } catch (cause) {
    throw new MuxpoolError('MUXPOOL_ERR_REDIRECT', `the Location ${JSON.stringify(location.slice(0, 200))} is not a valid URL`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MuxpoolError('MUXPOOL_ERR_REDIRECT', `a redirect to ${url.protocol} is not followed`);
  }
  if (url.hash === '' && from.hash !== '') url.hash = from.hash;
  // §15.4.2-4: user agents change POST to GET for 301 and 302 (historically), and 303 means
  // "see other" with GET (HEAD stays HEAD); 307 and 308 keep the method and the body.
  const toGet = status === 303 ? method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST';
  const crossOrigin = url.origin !== from.origin;
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (crossOrigin && CREDENTIAL_FIELDS.has(name)) continue;
    if (toGet && BODY_FIELDS.has(name)) continue;
    out.push(name, headers[i + 1] as string);
  }
  return { url, method: toGet ? 'GET' : method, keepBody: !toGet, headers: out };
}
