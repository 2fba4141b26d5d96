/**
 * Pieces the HTTP/2 benches share: certificates for a local TLS server written to
 * a temporary directory, one GET on a raw `node:http2` session (the baseline client), and body
 * byte counters for the bulk benches.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type http2 from 'node:http2';
import type { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type GeneratedCertificates, generateCertificates, writeCertificates } from '../../src/server/certs.js';

export interface BenchCertificates {
  certs: GeneratedCertificates;
  keyPath: string;
  certPath: string;
  caPath: string;
  /** Removes the directory the files were written to. */
  remove(): Promise<void>;
}

/** A certificate for localhost and 127.0.0.1, written to a fresh temporary directory. */
export async function benchCertificates(name: string): Promise<BenchCertificates> {
  const certs = await generateCertificates({ names: ['localhost'], ips: ['127.0.0.1'] });
  const dir = await mkdtemp(join(tmpdir(), `muxpool-bench-${name}-`));
  const paths = await writeCertificates(dir, certs);
  return { certs, ...paths, remove: () => rm(dir, { recursive: true, force: true }) };
}

const REQUEST_HEADERS = { ':method': 'GET', ':path': '/' };
const REQUEST_OPTIONS = { endStream: true };

/** One GET on a raw session, resolved once the body was read to the end (as text, like the others). */
export function rawH2Get(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const stream = session.request(REQUEST_HEADERS, REQUEST_OPTIONS);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => {
      Buffer.concat(chunks).toString('utf8');
      resolve();
    });
    stream.once('error', reject);
  });
}

/** One GET on a raw session whose body is counted, not kept: resolves with its length. */
export function rawH2Count(session: http2.ClientHttp2Session, path: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': path }, { endStream: true });
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    stream.once('end', () => resolve(bytes));
    stream.once('error', reject);
  });
}

/** The length of a body read to its end (bytes counted as they arrive, nothing concatenated). */
export function countBody(body: Readable): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let bytes = 0;
    body.on('data', (chunk: Uint8Array) => {
      bytes += chunk.byteLength;
    });
    body.once('end', () => resolve(bytes));
    body.once('error', reject);
  });
}
