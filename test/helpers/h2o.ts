/**
 * h2o (`/usr/bin/h2o`, Debian's h2o 2.2) as a third independent HTTP/2 peer on loopback: one
 * process with a TLS port (ALPN h2) and a cleartext port (HTTP/2 with prior knowledge), serving
 * a document root, and `/up/` proxied to a backend we run (so uploads reach h2o over HTTP/2 and
 * the backend can check them). Quirks (see ../shared/INTEROP.md): as root it must be told which
 * user to run as, and OCSP stapling is turned off (our test CA has no responder).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { generateCertificates, writeCertificates } from '../../src/server/certs.js';
import { accepts, freeTcpPort, spawnPeer } from './spawn-peer.js';

export const H2O_BINARY = process.env['MUXPOOL_H2O'] ?? '/usr/bin/h2o';

export interface H2oServer {
  /** `https://127.0.0.1:PORT` */
  tlsUrl: string;
  /** `http://127.0.0.1:PORT` (HTTP/2 prior knowledge) */
  h2cUrl: string;
  caCert: string;
  readonly log: string;
  stop(): Promise<void>;
}

export interface H2oOptions {
  /** Files in the document root, by name. */
  files: Record<string, Uint8Array>;
  /** A backend on 127.0.0.1 that `/up/` is proxied to. */
  backendPort?: number;
  /** Address the TLS port listens on. Default 127.0.0.1; `::1` for IPv6. */
  host?: string;
  /** Pin h2o to these CPUs (taskset's list, e.g. `0`) where taskset exists: for benchmarks. */
  cpus?: string;
  /** h2o's `num-threads` (default: one per CPU). A benchmark sets 1, as our one-thread servers have. */
  threads?: number;
}

const TASKSET = '/usr/bin/taskset';

export async function startH2o(options: H2oOptions): Promise<H2oServer> {
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-h2o-'));
  const docroot = join(dir, 'htdocs');
  await mkdir(docroot);
  for (const [name, bytes] of Object.entries(options.files)) await writeFile(join(docroot, name), bytes);
  const host = options.host ?? '127.0.0.1';
  const certs = await generateCertificates({ names: ['localhost'], ips: ['127.0.0.1', '::1'] });
  const paths = await writeCertificates(join(dir, 'tls'), certs);
  const tlsPort = await freeTcpPort();
  const clearPort = await freeTcpPort();
  const lines = [
    ...(process.getuid?.() === 0 ? [`user: ${userInfo().username}`] : []),
    ...(options.threads !== undefined ? [`num-threads: ${options.threads}`] : []),
    'listen:',
    `  port: ${tlsPort}`,
    `  host: ${JSON.stringify(host)}`,
    '  ssl:',
    `    certificate-file: ${paths.certPath}`,
    `    key-file: ${paths.keyPath}`,
    '    ocsp-update-interval: 0',
    'listen:',
    `  port: ${clearPort}`,
    '  host: 127.0.0.1',
    'hosts:',
    '  default:',
    '    paths:',
    ...(options.backendPort !== undefined ? ['      /up:', `        proxy.reverse.url: http://127.0.0.1:${options.backendPort}/`] : []),
    '      /:',
    `        file.dir: ${docroot}`,
  ];
  const config = join(dir, 'h2o.conf');
  await writeFile(config, `${lines.join('\n')}\n`);
  const cpus = options.cpus !== undefined && existsSync(TASKSET) ? options.cpus : undefined;
  const peer = await spawnPeer({
    name: 'h2o',
    command: cpus !== undefined ? TASKSET : H2O_BINARY,
    args: cpus !== undefined ? ['-c', cpus, H2O_BINARY, '-c', config] : ['-c', config],
    ready: async () => (await accepts(tlsPort, host)) && (await accepts(clearPort)),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  });
  return {
    tlsUrl: `https://${host.includes(':') ? `[${host}]` : host}:${tlsPort}`,
    h2cUrl: `http://127.0.0.1:${clearPort}`,
    caCert: certs.caCert,
    get log() {
      return peer.log;
    },
    stop: () => peer.stop(),
  };
}
