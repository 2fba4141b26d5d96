/**
 * One CA and leaf certificate (localhost, 127.0.0.1, ::1) per test process, since generating one
 * takes a while, and our HTTP/3 server started with it.
 */
import { type GeneratedCertificates, generateCertificates } from '../../src/server/certs.js';
import { H3Server, type H3RequestHandler, type H3ServerOptions } from '../../src/server/h3.js';

let certsPromise: Promise<GeneratedCertificates> | undefined;

export function certs(): Promise<GeneratedCertificates> {
  certsPromise ??= generateCertificates();
  return certsPromise;
}

/** Our HTTP/3 server on loopback with the shared certificate, and the https URL to reach it. */
export async function startH3(
  handler: H3RequestHandler,
  options: Omit<H3ServerOptions, 'cert' | 'key' | 'handler'> = {},
): Promise<{ server: H3Server; url: string }> {
  const c = await certs();
  const server = await H3Server.listen({ cert: c.leafCert, key: c.leafKey, handler, ...options });
  return { server, url: `https://localhost:${server.port}` };
}
