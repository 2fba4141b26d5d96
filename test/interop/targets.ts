/**
 * The servers of the interop matrix, each started on loopback with the same document tree so
 * every case can check bytes by hash whatever serves them.
 *
 * HTTP/3: Caddy 2.6 (quic-go), ngtcp2's `gtlsserver` (ngtcp2 + nghttp3 + GnuTLS) and our own
 * HTTP/3 server (`src/server/h3.ts`, the one the embedded server runs) serving the same files.
 * HTTP/2: nghttpd, Caddy, h2o and `node:http2`.
 */
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { generateCertificates, writeCertificates, type GeneratedCertificates } from '../../src/server/certs.js';
import { H3Server } from '../../src/server/h3.js';
import { startCaddy } from '../helpers/caddy.js';
import { startH2o } from '../helpers/h2o.js';
import { startNghttpd } from '../helpers/nghttpd.js';
import { requirePeer } from '../helpers/peers.js';
import { spawnPeer } from '../helpers/spawn-peer.js';

export const MiB = 1024 * 1024;

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** How big the transfers are: `ci` keeps `npm test` short, `full` is the published run. */
export interface Profile {
  name: 'ci' | 'full';
  /** Files of the `transfer` case (several, fetched at once; each larger than a stream window). */
  transferSizes: number[];
  /** The file of loss, corruption, rebinding, long-RTT and black-hole cases. */
  lossySize: number;
  /** Streams of the `multiplexing` case (each a small file of its own). */
  streams: number;
  /** Connections of the `handshakeloss` and `handshakecorruption` cases. */
  handshakes: number;
  /** One-way delay of `longrtt`. */
  longRttDelayMs: number;
  /** The `goodput` download. */
  goodputSize: number;
}

export const PROFILES: Record<'ci' | 'full', Profile> = {
  ci: {
    name: 'ci',
    transferSizes: [2 * MiB, 3 * MiB],
    lossySize: MiB,
    streams: 1000,
    handshakes: 4,
    longRttDelayMs: 100,
    goodputSize: 8 * MiB,
  },
  full: {
    name: 'full',
    transferSizes: [2 * MiB, 3 * MiB, 5 * MiB],
    lossySize: 4 * MiB,
    streams: 2000,
    handshakes: 20,
    longRttDelayMs: 375,
    goodputSize: 64 * MiB,
  },
};

/** The same files on every server: random bytes, so a lost or misplaced byte changes the hash. */
export class Fixture {
  readonly files = new Map<string, Buffer>();
  readonly hashes = new Map<string, string>();

  constructor(readonly profile: Profile) {
    this.add('hello.txt', Buffer.from('hello from the interop matrix\n'));
    profile.transferSizes.forEach((size, i) => this.add(`transfer-${i}.bin`, randomBytes(size)));
    this.add('lossy.bin', randomBytes(profile.lossySize));
    for (let i = 0; i < profile.streams; i++) this.add(`m-${i}.bin`, randomBytes(32));
    this.add('goodput.bin', randomBytes(profile.goodputSize));
  }

  add(name: string, bytes: Buffer): void {
    this.files.set(name, bytes);
    this.hashes.set(name, sha256(bytes));
  }

  record(): Record<string, Uint8Array> {
    return Object.fromEntries(this.files);
  }

  async writeTo(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    for (const [name, bytes] of this.files) await writeFile(join(dir, name), bytes);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP/3 servers

export type H3ServerName = 'caddy' | 'ngtcp2' | 'muxpool';
export const H3_SERVERS: readonly H3ServerName[] = ['caddy', 'ngtcp2', 'muxpool'];

export interface H3TargetOptions {
  /** Listen on ::1 instead of 127.0.0.1 (Caddy listens on both anyway). */
  ipv6?: boolean;
  /** Force a Retry on every new connection (gtlsserver `-V`). */
  retry?: boolean;
  /** Offer only TLS_CHACHA20_POLY1305_SHA256 (gtlsserver `--ciphers`). */
  chachaOnly?: boolean;
  /** The server's own packet loss, each direction (gtlsserver `-t`/`-r`). */
  serverLoss?: number;
  /** Accept 0-RTT (our server; the others decide for themselves). Default true. */
  earlyData?: boolean;
  /** The server logs every packet (evidence: Retry, cipher, key phase, 0-RTT). */
  verbose?: boolean;
  /** gtlsserver's congestion controller (`--cc`); default its own (cubic). */
  cc?: 'cubic' | 'reno' | 'bbr' | 'bbr2';
  /**
   * Require a client certificate issued by the run's client CA (`interopClientCa`) and verify it:
   * Caddy's `client_auth require_and_verify`, our server's `clientCa`.
   */
  clientCert?: boolean;
  /**
   * gtlsserver only: `--verify-client`, which requires a client certificate but verifies none
   * (see GTLSSERVER_CLIENT_CERT); its refusal of a client without one is a datagram of coalesced
   * CONNECTION_CLOSEs (test/integration/quic-coalesced.test.ts).
   */
  requestClientCert?: boolean;
}

/** What our own server saw, per request: the evidence the peers' logs give for theirs. */
export interface ServedRequest {
  path: string;
  /** It arrived as 0-RTT data that the server accepted. */
  earlyData: boolean;
  /** A connection of the server resumed a session when it arrived. */
  resumed: boolean;
  /** The subject of the client certificate its connection presented (`CN=…`), if any. */
  clientSubject: string | undefined;
}

export interface H3Target {
  readonly name: H3ServerName;
  /** The address it listens on and its UDP port. */
  readonly host: string;
  readonly port: number;
  readonly caCert: string;
  /** Everything the server logged so far. */
  log(): string;
  /** Our server only: every request served, in order. */
  readonly served?: ServedRequest[];
  stop(): Promise<void>;
}

/** A UDP port on 127.0.0.1 (and ::1) that was free a moment ago. */
async function freeUdpPort(host: string): Promise<number> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => resolve());
  });
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

let sharedCerts: Promise<GeneratedCertificates> | undefined;
/** One CA and leaf for localhost, 127.0.0.1 and ::1, shared by our server and gtlsserver. */
function interopCerts(): Promise<GeneratedCertificates> {
  sharedCerts ??= generateCertificates({ caName: 'muxpool interop CA' });
  return sharedCerts;
}

let clientCa: Promise<GeneratedCertificates> | undefined;
/**
 * The CA that issues the client certificates of the run, its own (not the servers' CA), so a
 * server trusting it trusts nothing else of ours.
 */
export function interopClientCa(): Promise<GeneratedCertificates> {
  clientCa ??= generateCertificates({ caName: 'muxpool interop client CA' });
  return clientCa;
}

/**
 * gtlsserver's `--verify-client` (ngtcp2 0.12), in its own words and as it behaves: it requires a
 * certificate (no certificate: CONNECTION_CLOSE with CRYPTO_ERROR 0x174, alert 116
 * certificate_required) but takes no CA and checks none (a certificate from a CA it never saw:
 * 200), so the case's refusal of a stranger's certificate cannot hold.
 */
export const GTLSSERVER_CLIENT_CERT =
  'gtlsserver (ngtcp2 0.12) requires a client certificate but verifies none: --verify-client "Request[s] a client certificate. At the moment, we just request a certificate and no verification is done." (its --help), it takes no CA file, and a certificate from a CA it never saw gets 200 (without one it refuses: alert 116 certificate_required)';

export function unsupportedH3Option(name: H3ServerName, options: H3TargetOptions): string | undefined {
  if (options.retry === true && name === 'caddy') {
    return 'Caddy 2.6 has no setting to make quic-go require address validation (Retry)';
  }
  if (options.retry === true && name === 'muxpool') return 'our HTTP/3 server does not send Retry (src/quic/server.ts)';
  if (options.chachaOnly === true && name === 'caddy') {
    return "Go's crypto/tls does not let Caddy restrict the TLS 1.3 cipher suites";
  }
  if (options.chachaOnly === true && name === 'muxpool') {
    return 'the quiche binding (BoringSSL) has no TLS 1.3 cipher-suite setting';
  }
  if (options.serverLoss !== undefined && name !== 'ngtcp2') return 'only gtlsserver drops packets itself (-t/-r)';
  if (options.clientCert === true && name === 'ngtcp2') return GTLSSERVER_CLIENT_CERT;
  if (options.requestClientCert === true && name !== 'ngtcp2') return 'only gtlsserver has --verify-client';
  return undefined;
}

export async function startH3Target(name: H3ServerName, fixture: Fixture, options: H3TargetOptions = {}): Promise<H3Target> {
  const why = unsupportedH3Option(name, options);
  if (why !== undefined) throw new Error(why);
  switch (name) {
    case 'caddy':
      return startCaddyH3(fixture, options);
    case 'ngtcp2':
      return startGtlsserver(fixture, options);
    case 'muxpool':
      return startOurH3(fixture, options);
  }
}

async function startCaddyH3(fixture: Fixture, options: H3TargetOptions): Promise<H3Target> {
  const caddy = await startCaddy({
    files: fixture.record(),
    directives: (docroot) => [`\troot * ${JSON.stringify(docroot)}`, '\tfile_server'].join('\n'),
    ...(options.verbose === true ? { env: { QUIC_GO_LOG_LEVEL: 'DEBUG' } } : {}),
    ...(options.clientCert === true ? { clientCa: (await interopClientCa()).caCert } : {}),
  });
  return {
    name: 'caddy',
    // Caddy listens on every address ([::]:PORT), so ::1 reaches it too.
    host: options.ipv6 === true ? '::1' : '127.0.0.1',
    port: caddy.port,
    caCert: caddy.caCert,
    log: () => caddy.log,
    stop: () => caddy.stop(),
  };
}

const GTLSSERVER = process.env['MUXPOOL_GTLSSERVER'] ?? '/usr/sbin/gtlsserver';
const STDBUF = '/usr/bin/stdbuf';
const CHACHA_ONLY = 'NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305';

async function startGtlsserver(fixture: Fixture, options: H3TargetOptions): Promise<H3Target> {
  requirePeer('gtlsserver');
  const host = options.ipv6 === true ? '::1' : '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-gtlsserver-'));
  const docroot = join(dir, 'htdocs');
  await fixture.writeTo(docroot);
  const certs = await interopCerts();
  const paths = await writeCertificates(join(dir, 'tls'), certs);
  const port = await freeUdpPort(host);
  const args = ['-d', docroot, '--timeout=30s'];
  // Without -q it logs every packet (and hex dumps of the data unless told not to): only runs
  // that need the evidence pay for it.
  args.push(...(options.verbose === true ? ['--no-quic-dump', '--no-http-dump'] : ['-q']));
  if (options.retry === true) args.push('-V');
  if (options.chachaOnly === true) args.push(`--ciphers=${CHACHA_ONLY}`);
  if (options.cc !== undefined) args.push(`--cc=${options.cc}`);
  if (options.requestClientCert === true) args.push('--verify-client');
  if (options.serverLoss !== undefined) args.push(`--tx-loss=${options.serverLoss}`, `--rx-loss=${options.serverLoss}`);
  args.push(host, String(port), paths.keyPath, paths.certPath);
  // Its stdout is block-buffered into a pipe: stdbuf makes it line-buffered, so the evidence a
  // case looks for is in the log when the case looks.
  const peer = await spawnPeer({
    name: 'gtlsserver',
    ...(existsSync(STDBUF) ? { command: STDBUF, args: ['-oL', GTLSSERVER, ...args] } : { command: GTLSSERVER, args }),
    // gtlsserver says nothing when it is ready with -q; its UDP port taken is the sign.
    ready: async () => !(await udpPortFree(host, port)),
    cleanup: () => rm(dir, { recursive: true, force: true }),
    pollMs: 20,
    // The packet log of a long transfer is large; the evidence is near the start.
    logLimit: { chars: 64 * MiB, keep: 'start' },
  });
  return { name: 'ngtcp2', host, port, caCert: certs.caCert, log: () => peer.log, stop: () => peer.stop() };
}

async function udpPortFree(host: string, port: number): Promise<boolean> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const free = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(false));
    socket.bind(port, host, () => resolve(true));
  });
  await new Promise<void>((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  });
  return free;
}

async function startOurH3(fixture: Fixture, options: H3TargetOptions): Promise<H3Target> {
  const certs = await interopCerts();
  const host = options.ipv6 === true ? '::1' : '127.0.0.1';
  const served: ServedRequest[] = [];
  const server = await H3Server.listen({
    cert: certs.leafCert,
    key: certs.leafKey,
    host,
    port: 0,
    earlyData: options.earlyData !== false,
    ...(options.clientCert === true ? { clientCa: (await interopClientCa()).caCert } : {}),
    handler: (req, res) => {
      const path = (req.url.split('?')[0] ?? '/').replace(/^\//, '');
      // The connection a request came on is not exposed; one client at a time (the reverse
      // matrix) makes "a live connection was resumed" mean this one.
      // Only the clientcert server asks for one; the others skip the native call per request.
      const leaf = options.clientCert === true ? req.peerCertificates()[0] : undefined;
      served.push({
        path,
        earlyData: req.earlyData,
        resumed: [...server.connections].some((c) => c.quic.isResumed),
        clientSubject: leaf === undefined ? undefined : new X509Certificate(leaf).subject,
      });
      req.resume();
      const body = fixture.files.get(path);
      if (body === undefined) {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader('content-length', body.length);
      res.end(body);
    },
  });
  return {
    name: 'muxpool',
    host,
    port: server.port,
    caCert: certs.caCert,
    log: () => '',
    served,
    stop: () => server.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 servers

export type H2ServerName = 'nghttpd' | 'caddy' | 'h2o' | 'node';
export const H2_SERVERS: readonly H2ServerName[] = ['nghttpd', 'caddy', 'h2o', 'node'];

export interface H2TargetOptions {
  ipv6?: boolean;
  chachaOnly?: boolean;
}

export interface H2Target {
  readonly name: H2ServerName;
  readonly host: string;
  readonly port: number;
  readonly caCert: string;
  log(): string;
  /** node:http2 only: the cipher each TLS connection agreed on. */
  readonly ciphers?: string[];
  stop(): Promise<void>;
}

export function unsupportedH2Option(name: H2ServerName, options: H2TargetOptions): string | undefined {
  if (options.chachaOnly === true && name === 'nghttpd') return 'nghttpd 1.52 has no TLS 1.3 cipher-suite option';
  if (options.chachaOnly === true && name === 'caddy') return "Go's crypto/tls does not let Caddy restrict the TLS 1.3 cipher suites";
  if (options.chachaOnly === true && name === 'h2o') return 'h2o 2.2 has no TLS 1.3 cipher-suite setting (cipher-suite-tls1.3 came in 2.3)';
  return undefined;
}

export async function startH2Target(name: H2ServerName, fixture: Fixture, options: H2TargetOptions = {}): Promise<H2Target> {
  const why = unsupportedH2Option(name, options);
  if (why !== undefined) throw new Error(why);
  const host = options.ipv6 === true ? '::1' : '127.0.0.1';
  switch (name) {
    case 'nghttpd': {
      const server = await startNghttpd({
        files: fixture.record(),
        host,
      });
      return { name, host, port: server.port, caCert: server.caCert ?? '', log: () => server.log, stop: () => server.stop() };
    }
    case 'caddy': {
      const caddy = await startCaddy({
        files: fixture.record(),
        directives: (docroot) => [`\troot * ${JSON.stringify(docroot)}`, '\tfile_server'].join('\n'),
      });
      return { name, host, port: caddy.port, caCert: caddy.caCert, log: () => caddy.log, stop: () => caddy.stop() };
    }
    case 'h2o': {
      const server = await startH2o({ files: fixture.record(), host });
      const port = Number(new URL(server.tlsUrl).port);
      return { name, host, port, caCert: server.caCert, log: () => server.log, stop: () => server.stop() };
    }
    case 'node':
      return startNodeH2(fixture, host, options);
  }
}

async function startNodeH2(fixture: Fixture, host: string, options: H2TargetOptions): Promise<H2Target> {
  const certs = await interopCerts();
  const ciphers: string[] = [];
  const server = http2.createSecureServer({
    key: certs.leafKey,
    cert: certs.leafCert,
    // maxSessionMemory: 64 MiB answers on one session; the default 10 MB refuses streams.
    maxSessionMemory: 256,
    ...(options.chachaOnly === true ? { ciphers: 'TLS_CHACHA20_POLY1305_SHA256', minVersion: 'TLSv1.3' as const } : {}),
  });
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path'] ?? '/').split('?')[0]?.replace(/^\//, '') ?? '';
    const body = fixture.files.get(path);
    if (body === undefined) {
      stream.respond({ ':status': 404 });
      stream.end();
      return;
    }
    stream.respond({ ':status': 200, 'content-length': body.length });
    stream.end(body);
  });
  const sockets = new Set<Socket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    ciphers.push(socket.getCipher().standardName);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    name: 'node',
    host,
    port,
    caCert: certs.caCert,
    log: () => '',
    ciphers,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
