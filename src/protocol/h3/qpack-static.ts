/**
 * The QPACK static table (RFC 9204 Appendix A): 99 entries, indexed from 0, with lookups for the
 * encoder.
 */

/** RFC 9204 Appendix A, in index order. */
export const QPACK_STATIC_TABLE: ReadonlyArray<readonly [name: string, value: string]> = [
  [':authority', ''],
  [':path', '/'],
  ['age', '0'],
  ['content-disposition', ''],
  ['content-length', '0'],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['referer', ''],
  ['set-cookie', ''],
  [':method', 'CONNECT'],
  [':method', 'DELETE'],
  [':method', 'GET'],
  [':method', 'HEAD'],
  [':method', 'OPTIONS'],
  [':method', 'POST'],
  [':method', 'PUT'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '103'],
  [':status', '200'],
  [':status', '304'],
  [':status', '404'],
  [':status', '503'],
  ['accept', '*/*'],
  ['accept', 'application/dns-message'],
  ['accept-encoding', 'gzip, deflate, br'],
  ['accept-ranges', 'bytes'],
  ['access-control-allow-headers', 'cache-control'],
  ['access-control-allow-headers', 'content-type'],
  ['access-control-allow-origin', '*'],
  ['cache-control', 'max-age=0'],
  ['cache-control', 'max-age=2592000'],
  ['cache-control', 'max-age=604800'],
  ['cache-control', 'no-cache'],
  ['cache-control', 'no-store'],
  ['cache-control', 'public, max-age=31536000'],
  ['content-encoding', 'br'],
  ['content-encoding', 'gzip'],
  ['content-type', 'application/dns-message'],
  ['content-type', 'application/javascript'],
  ['content-type', 'application/json'],
  ['content-type', 'application/x-www-form-urlencoded'],
  ['content-type', 'image/gif'],
  ['content-type', 'image/jpeg'],
  ['content-type', 'image/png'],
  ['content-type', 'text/css'],
  ['content-type', 'text/html; charset=utf-8'],
  ['content-type', 'text/plain'],
  ['content-type', 'text/plain;charset=utf-8'],
  ['range', 'bytes=0-'],
  ['strict-transport-security', 'max-age=31536000'],
  ['strict-transport-security', 'max-age=31536000; includesubdomains'],
  ['strict-transport-security', 'max-age=31536000; includesubdomains; preload'],
  ['vary', 'accept-encoding'],
  ['vary', 'origin'],
  ['x-content-type-options', 'nosniff'],
  ['x-xss-protection', '1; mode=block'],
  [':status', '100'],
  [':status', '204'],
  [':status', '206'],
  [':status', '302'],
  [':status', '400'],
  [':status', '403'],
  [':status', '421'],
  [':status', '425'],
  [':status', '500'],
  ['accept-language', ''],
  ['access-control-allow-credentials', 'FALSE'],
  ['access-control-allow-credentials', 'TRUE'],
  ['access-control-allow-headers', '*'],
  ['access-control-allow-methods', 'get'],
  ['access-control-allow-methods', 'get, post, options'],
  ['access-control-allow-methods', 'options'],
  ['access-control-expose-headers', 'content-length'],
  ['access-control-request-headers', 'content-type'],
  ['access-control-request-method', 'get'],
  ['access-control-request-method', 'post'],
  ['alt-svc', 'clear'],
  ['authorization', ''],
  ['content-security-policy', "script-src 'none'; object-src 'none'; base-uri 'none'"],
  ['early-data', '1'],
  ['expect-ct', ''],
  ['forwarded', ''],
  ['if-range', ''],
  ['origin', ''],
  ['purpose', 'prefetch'],
  ['server', ''],
  ['timing-allow-origin', '*'],
  ['upgrade-insecure-requests', '1'],
  ['user-agent', ''],
  ['x-forwarded-for', ''],
  ['x-frame-options', 'deny'],
  ['x-frame-options', 'sameorigin'],
];

/** Names of the static entries, by index: the decoder's view, without the tuple indirection. */
export const QPACK_STATIC_NAMES: readonly string[] = QPACK_STATIC_TABLE.map((entry) => entry[0]);
/** Values of the static entries, by index. */
export const QPACK_STATIC_VALUES: readonly string[] = QPACK_STATIC_TABLE.map((entry) => entry[1]);

/** The static entries that share one name: the first index, and an index per distinct value. */
export interface StaticNameEntries {
  readonly nameIndex: number;
  readonly byValue: ReadonlyMap<string, number>;
}

/** name → its entries: one map lookup for the name, one for the value, no string concatenation. */
const BY_NAME = new Map<string, { nameIndex: number; byValue: Map<string, number> }>();
QPACK_STATIC_TABLE.forEach(([name, value], index) => {
  let entries = BY_NAME.get(name);
  if (entries === undefined) {
    entries = { nameIndex: index, byValue: new Map() };
    BY_NAME.set(name, entries);
  }
  if (!entries.byValue.has(value)) entries.byValue.set(value, index);
});

/** The static entries named `name`, or undefined when the table has no such name. */
export function staticEntriesNamed(name: string): StaticNameEntries | undefined {
  return BY_NAME.get(name);
}

/** Index of the entry with exactly this name and value, or -1. */
export function staticIndexOf(name: string, value: string): number {
  return BY_NAME.get(name)?.byValue.get(value) ?? -1;
}

/** Index of the first entry with this name, or -1. */
export function staticNameIndexOf(name: string): number {
  return BY_NAME.get(name)?.nameIndex ?? -1;
}
