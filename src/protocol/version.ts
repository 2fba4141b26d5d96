/**
 * HTTP versions, as the seed API names them. The three concrete ones double as the protocol a
 * live connection speaks (their values are the ALPN identifiers).
 */
export const HttpVersion = {
  Http1_1: 'http/1.1',
  Http2: 'h2',
  Http3: 'h3',
  /** HTTP/3 with no fallback to TCP. */
  Http3Only: 'h3-only',
  /** Let the client choose: ALPN over TLS, Alt-Svc for HTTP/3. */
  Auto: 'auto',
} as const;

export type HttpVersion = (typeof HttpVersion)[keyof typeof HttpVersion];

/** The protocol a live connection speaks: ALPN identifiers. */
export type ConnectionProtocol = 'http/1.1' | 'h2' | 'h3';

export function isHttpVersion(value: unknown): value is HttpVersion {
  return typeof value === 'string' && (Object.values(HttpVersion) as string[]).includes(value);
}
