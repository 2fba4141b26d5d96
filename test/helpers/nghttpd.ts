/**
 * nghttpd (`/usr/sbin/nghttpd`, Debian's nghttp2-server) as an independent HTTP/2 peer on loopback.
 *
 * Each instance gets a temporary directory holding its certificate (from
 * `generateCertificates`, so tests trust it with `tls.ca`) and a document root with a few files,
 * a free TCP port on 127.0.0.1, and is killed (SIGTERM, then SIGKILL) by `stop()`.
 * `nghttpd --no-tls` serves cleartext HTTP/2 for prior knowledge.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificates, writeCertificates } from '../../src/server/certs.js';
import { requirePeer } from './peers.js';
import { accepts, freeTcpPort, spawnPeer } from './spawn-peer.js';

export { accepts, freeTcpPort };

export const NGHTTPD_BINARY = process.env['MUXPOOL_NGHTTPD'] ?? '/usr/sbin/nghttpd';
const START_LIMIT_MS = 10_000;
const STOP_LIMIT_MS = 3_000;

/** The files every instance serves, by path. */
export interface NghttpdFiles {
  /** `/hello.txt`: a short text. */
  hello: string;
  /** `/big.bin`: 1 MiB of random bytes. */
  big: Buffer;
}

export interface NghttpdServer {
  port: number;
  /** `https://127.0.0.1:PORT`, or `http://127.0.0.1:PORT` with `tls: false`. */
  url: string;
  /** PEM of the CA that signed the server certificate (undefined with `tls: false`). */
  caCert: string | undefined;
  files: NghttpdFiles;
  /** Everything nghttpd printed so far. */
  readonly log: string;
  stop(): Promise<void>;
}

export interface NghttpdOptions {
  /** Serve TLS with ALPN h2 (default) or cleartext HTTP/2 (`--no-tls`). */
  tls?: boolean;
  /** SETTINGS_MAX_CONCURRENT_STREAMS (`-m`, nghttpd's default is 100). */
  maxConcurrentStreams?: number;
  /** Answer POST and PUT with the uploaded bytes (`--echo-upload`). */
  echoUpload?: boolean;
  /** More files in the document root, by name (e.g. a large download). */
  files?: Record<string, Uint8Array>;
  /** Address to listen on (`-a`). Default 127.0.0.1; `::1` for IPv6. */
  host?: string;
}

export async function startNghttpd(options: NghttpdOptions = {}): Promise<NghttpdServer> {
  requirePeer('nghttpd');
  const useTls = options.tls !== false;
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-nghttpd-'));
  const docroot = join(dir, 'htdocs');
  await mkdir(docroot);
  const files: NghttpdFiles = { hello: 'hello from nghttpd\n', big: randomBytes(1024 * 1024) };
  await writeFile(join(docroot, 'hello.txt'), files.hello);
  await writeFile(join(docroot, 'big.bin'), files.big);
  for (const [name, bytes] of Object.entries(options.files ?? {})) await writeFile(join(docroot, name), bytes);

  let caCert: string | undefined;
  const host = options.host ?? '127.0.0.1';
  const args = ['-a', host, '-d', docroot];
  if (options.maxConcurrentStreams !== undefined) args.push('-m', String(options.maxConcurrentStreams));
  if (options.echoUpload === true) args.push('--echo-upload');
  const port = await freeTcpPort();
  if (useTls) {
    const certs = await generateCertificates({ names: ['localhost'], ips: ['127.0.0.1', '::1'] });
    const paths = await writeCertificates(join(dir, 'tls'), certs);
    caCert = certs.caCert;
    args.push(String(port), paths.keyPath, paths.certPath);
  } else {
    args.push('--no-tls', String(port));
  }

  const peer = await spawnPeer({
    name: 'nghttpd',
    command: NGHTTPD_BINARY,
    args,
    ready: () => accepts(port, host),
    cleanup: () => rm(dir, { recursive: true, force: true }),
    startLimitMs: START_LIMIT_MS,
    stopLimitMs: STOP_LIMIT_MS,
  });
  return {
    port,
    url: `${useTls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    caCert,
    files,
    get log() {
      return peer.log;
    },
    stop: () => peer.stop(),
  };
}
