/**
 * Caddy (`/usr/bin/caddy`) as a real HTTP/1.1 + HTTP/2 + HTTP/3 peer on loopback.
 *
 * Each instance gets a temporary HOME/XDG dirs (so its internal CA lives there and nothing is
 * installed into any trust store), a free port shared by TCP and UDP, and `tls internal`.
 * `startCaddy` resolves once the HTTP/3 listener is up, both site certificates are issued and
 * the root CA is on disk.
 */
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { requirePeer } from './peers.js';
import { spawnPeer } from './spawn-peer.js';

export const CADDY_BINARY = process.env['MUXPOOL_CADDY'] ?? '/usr/bin/caddy';
const START_LIMIT_MS = 20_000;

export interface CaddyServer {
  port: number;
  /** PEM of the instance's internal root CA. */
  caCert: string;
  /** `https://localhost:PORT` */
  url: string;
  /** Everything Caddy logged so far (JSON lines). */
  readonly log: string;
  stop(): Promise<void>;
}

export interface CaddyOptions {
  /** What `respond` answers (default `hello`); ignored when `directives` is given. */
  body?: string;
  /** Files written under a document root in the instance's directory, by relative path. */
  files?: Record<string, string | Uint8Array>;
  /**
   * The site block's directives, replacing the default `respond`; gets the absolute path of the
   * document root holding `files` (for `root` and `file_server`).
   */
  directives?: (docroot: string) => string;
  /** Pins Caddy to these CPUs with taskset (e.g. `'0'`), when taskset exists: for benchmarks. */
  cpus?: string;
  /**
   * Require client certificates issued by this CA (PEM): Caddy's `client_auth` with
   * `mode require_and_verify`, on HTTP/1.1, HTTP/2 and HTTP/3.
   */
  clientCa?: string;
  /** Extra environment, e.g. `QUIC_GO_LOG_LEVEL: 'DEBUG'` for quic-go's packet log (evidence in the interop matrix). */
  env?: Record<string, string>;
}

const TASKSET = '/usr/bin/taskset';

/** A port free for both TCP and UDP on 127.0.0.1, found by binding both (bounded tries). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const tcp = net.createServer();
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (tcp.address() as net.AddressInfo).port;
    const udp = dgram.createSocket('udp4');
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (udpFree) return port;
  }
  throw new Error('no port free for both TCP and UDP');
}

/**
 * With `clientCa`, `strict_sni_host insecure_off`: client auth turns strict SNI-Host matching on,
 * and Caddy 2.6 then answers every HTTP/3 request 421, since quic-go reports no TLS server name
 * to it (caddyserver/caddy#5078). The certificate is still required and verified.
 */
function caddyfile(port: number, directives: string, clientCaPath?: string): string {
  const tls =
    clientCaPath === undefined
      ? '\ttls internal'
      : `\ttls internal {\n\t\tclient_auth {\n\t\t\tmode require_and_verify\n\t\t\ttrusted_ca_cert_file ${JSON.stringify(clientCaPath)}\n\t\t}\n\t}`;
  return `{
\tadmin off
\tskip_install_trust
\thttp_port 0
\tauto_https disable_redirects
\tservers {
\t\tprotocols h1 h2 h3${clientCaPath === undefined ? '' : '\n\t\tstrict_sni_host insecure_off'}
\t}
}

https://localhost:${port}, https://127.0.0.1:${port} {
${tls}
${directives}
}
`;
}

export async function startCaddy(options: CaddyOptions = {}): Promise<CaddyServer> {
  requirePeer('caddy');
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-caddy-'));
  const port = await freePort();
  const configPath = join(dir, 'Caddyfile');
  const docroot = join(dir, 'htdocs');
  await mkdir(docroot);
  for (const [name, content] of Object.entries(options.files ?? {})) {
    const path = join(docroot, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
  const directives = options.directives?.(docroot) ?? `\trespond ${JSON.stringify(options.body ?? 'hello')}`;
  let clientCaPath: string | undefined;
  if (options.clientCa !== undefined) {
    clientCaPath = join(dir, 'client-ca.pem');
    await writeFile(clientCaPath, options.clientCa);
  }
  await writeFile(configPath, caddyfile(port, directives, clientCaPath));
  const env = {
    ...process.env,
    HOME: dir,
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    ...options.env,
  };
  const caddyArgs = ['run', '--config', configPath, '--adapter', 'caddyfile'];
  // taskset execs Caddy in its own process, so the child is Caddy and SIGTERM reaches it.
  const cpus = existsSync(TASKSET) ? options.cpus : undefined;
  const rootPath = join(dir, 'data', 'caddy', 'pki', 'authorities', 'local', 'root.crt');
  const peer = await spawnPeer({
    name: 'caddy',
    command: cpus !== undefined ? TASKSET : CADDY_BINARY,
    args: cpus !== undefined ? ['-c', cpus, CADDY_BINARY, ...caddyArgs] : caddyArgs,
    env,
    // Certificates for both site names are issued after the config is served.
    ready: (log) => log.includes('HTTP/3 listener') && log.split('certificate obtained successfully').length - 1 >= 2 && existsSync(rootPath),
    cleanup: () => rm(dir, { recursive: true, force: true }),
    startLimitMs: START_LIMIT_MS,
    pollMs: 50,
  });
  const caCert = await readFile(rootPath, 'utf8');
  return {
    port,
    caCert,
    url: `https://localhost:${port}`,
    get log() {
      return peer.log;
    },
    stop: () => peer.stop(),
  };
}

/**
 * The Caddy the interop tests share: `/hello.txt` and `/big.bin` (`big`) from a file server,
 * `/echo` answering the request body (Caddy 2.6's placeholder: a lost or reordered body byte
 * fails the comparison) and `/proto` answering the protocol Caddy saw.
 */
export function startCaddyFixture(big: Uint8Array): Promise<CaddyServer> {
  return startCaddy({
    files: { 'hello.txt': 'hello from caddy\n', 'big.bin': big },
    directives: (docroot) =>
      [
        '\thandle /echo {',
        '\t\trespond "{http.request.body}"',
        '\t}',
        '\thandle /proto {',
        '\t\trespond "{http.request.proto}"',
        '\t}',
        '\thandle {',
        `\t\troot * ${JSON.stringify(docroot)}`,
        '\t\tfile_server',
        '\t}',
      ].join('\n'),
  });
}
