/**
 * Proxies for tests, on loopback:
 * - tinyproxy (Debian `tinyproxy`): CONNECT tunnels and absolute-form forwarding, optional Basic
 *   auth. Quirks: it cannot listen on port 0 (a free port is picked), it answers HTTP/1.0, it
 *   closes the client connection after each forwarded request, and its `ConnectPort` lines
 *   limit CONNECT targets (none at all allows every port, which we want: our servers sit on
 *   random ports).
 * - dante (Debian `dante-server`, `danted`): SOCKS5 with no authentication or with
 *   username/password (RFC 1929), which dante checks against the system's accounts. For that a
 *   dedicated account (`SOCKS_USER`) with a known password is created when the tests run as
 *   root (as in CI); otherwise it must exist already (the error says how to create it).
 *   dante forks helper processes: it runs in its own process group, which `stop()` ends.
 * - `startFakeProxy`: our own HTTP CONNECT / SOCKS5 proxy with scripted answers for the failure
 *   cases, recording every CONNECT head and SOCKS request it receives.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePeer } from './peers.js';
import { accepts, freeTcpPort, spawnPeer } from './spawn-peer.js';

export const TINYPROXY_BINARY = process.env['MUXPOOL_TINYPROXY'] ?? '/usr/bin/tinyproxy';
export const DANTED_BINARY = process.env['MUXPOOL_DANTED'] ?? '/usr/sbin/danted';
export const SOCKS_USER = 'muxpool-socks';
export const SOCKS_PASSWORD = 'muxpool-socks-pw-1';

export interface ProxyProcess {
  port: number;
  /** `http://127.0.0.1:PORT` or `socks5://127.0.0.1:PORT` (no credentials). */
  url: string;
  readonly log: string;
  stop(): Promise<void>;
}

async function runDaemon(name: string, binary: string, args: string[], port: number, dir: string, group: boolean): Promise<ProxyProcess> {
  const peer = await spawnPeer({
    name,
    command: binary,
    args,
    ready: () => accepts(port),
    cleanup: () => rm(dir, { recursive: true, force: true }),
    // dante's helpers share its process group (its own, since it was started detached).
    processGroup: group,
    logLimit: { chars: 1_000_000, keep: 'end' },
  });
  return {
    port,
    url: `${name === 'danted' ? 'socks5' : 'http'}://127.0.0.1:${port}`,
    get log() {
      return peer.log;
    },
    stop: () => peer.stop(),
  };
}

export interface TinyproxyOptions {
  /** Require these credentials (Basic). */
  basicAuth?: { user: string; password: string };
  /** Restrict CONNECT to these ports (tinyproxy's `ConnectPort`); default: every port. */
  connectPorts?: number[];
  /** Pin it to this CPU (benchmarks), when taskset exists. */
  cpu?: number;
}

export async function startTinyproxy(options: TinyproxyOptions = {}): Promise<ProxyProcess> {
  requirePeer('tinyproxy');
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-tinyproxy-'));
  const port = await freeTcpPort();
  const lines = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 60',
    'MaxClients 200',
    'Allow 127.0.0.1',
    'LogLevel Connect',
    ...(options.basicAuth !== undefined ? [`BasicAuth ${options.basicAuth.user} ${options.basicAuth.password}`] : []),
    ...(options.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
  ];
  const config = join(dir, 'tinyproxy.conf');
  await writeFile(config, `${lines.join('\n')}\n`);
  const args = ['-d', '-c', config];
  // taskset execs tinyproxy in its own process: the pid stays the one to signal.
  if (options.cpu !== undefined && existsSync('/usr/bin/taskset')) {
    return runDaemon('tinyproxy', '/usr/bin/taskset', ['-c', String(options.cpu), TINYPROXY_BINARY, ...args], port, dir, false);
  }
  return runDaemon('tinyproxy', TINYPROXY_BINARY, args, port, dir, false);
}

/** Makes sure the SOCKS test account exists (creating it when root); throws what to do otherwise. */
function ensureSocksUser(): void {
  try {
    execFileSync('id', [SOCKS_USER], { stdio: 'ignore' });
    if (process.getuid?.() === 0) execFileSync('chpasswd', [], { input: `${SOCKS_USER}:${SOCKS_PASSWORD}\n`, stdio: ['pipe', 'ignore', 'pipe'] });
    return;
  } catch {
    // missing (or not root: then it must exist with the password already)
  }
  if (process.getuid?.() !== 0) {
    throw new Error(
      `dante's username authentication checks system accounts: run the tests as root, or create the account once: ` +
        `sudo useradd --system --no-create-home --shell /usr/sbin/nologin ${SOCKS_USER} && echo '${SOCKS_USER}:${SOCKS_PASSWORD}' | sudo chpasswd`,
    );
  }
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', SOCKS_USER], { stdio: 'ignore' });
  execFileSync('chpasswd', [], { input: `${SOCKS_USER}:${SOCKS_PASSWORD}\n`, stdio: ['pipe', 'ignore', 'pipe'] });
}

export async function startDante(options: { auth?: boolean } = {}): Promise<ProxyProcess> {
  requirePeer('danted');
  if (options.auth === true) ensureSocksUser();
  const dir = await mkdtemp(join(tmpdir(), 'muxpool-dante-'));
  const port = await freeTcpPort();
  const root = process.getuid?.() === 0;
  const config = [
    'logoutput: stderr',
    `internal: 127.0.0.1 port = ${port}`,
    'external: 127.0.0.1',
    `socksmethod: ${options.auth === true ? 'username' : 'none'}`,
    'clientmethod: none',
    // As root dante drops to these; as another user it stays that user.
    ...(root ? ['user.privileged: root', 'user.unprivileged: nobody'] : []),
    'client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }',
    'socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect }',
    'socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 log: error }',
  ];
  const file = join(dir, 'danted.conf');
  await writeFile(file, `${config.join('\n')}\n`);
  return runDaemon('danted', DANTED_BINARY, ['-f', file, '-N', '1', '-p', join(dir, 'danted.pid')], port, dir, true);
}

// ---------------------------------------------------------------------------------------------
// Our own proxy, scripted

/** What the fake proxy does with a connection, after recording what the client sent. */
export type FakeHttpAnswer =
  /** Tunnel to the requested authority (a real CONNECT proxy). */
  | { kind: 'tunnel'; extraBytes?: Buffer }
  /** Answer with this raw head (and body), then close. */
  | { kind: 'reply'; raw: string }
  /** Send these bytes and close without finishing the head. */
  | { kind: 'close'; raw: string }
  /** Accept and never answer. */
  | { kind: 'silent' };

export type FakeSocksAnswer =
  | { kind: 'tunnel' }
  /** Reply to CONNECT with this code (RFC 1928 §6). */
  | { kind: 'reply'; code: number }
  /** Answer the method selection with this method (0xff: none acceptable). */
  | { kind: 'method'; method: number }
  /** Send these bytes in place of the method selection, then close. */
  | { kind: 'garbage'; raw: Buffer }
  /** Reset the connection (TCP RST) this long after accepting it, whatever came. */
  | { kind: 'reset'; afterMs: number };

export interface FakeProxy {
  port: number;
  url: string;
  /** Every CONNECT (or forwarded) request head, as received. */
  readonly heads: string[];
  /** Every SOCKS5 CONNECT target, `host:port` with the address type (`domain`, `ipv4`, `ipv6`). */
  readonly socksTargets: Array<{ host: string; port: number; atyp: 'domain' | 'ipv4' | 'ipv6' }>;
  connections: number;
  close(): Promise<void>;
}

function tunnel(client: net.Socket, host: string, port: number, sockets: Set<net.Socket>, onUp: (upstream: net.Socket) => void): void {
  const upstream = net.connect({ host, port });
  sockets.add(upstream);
  upstream.on('close', () => sockets.delete(upstream));
  upstream.on('error', () => client.destroy());
  client.on('error', () => upstream.destroy());
  upstream.once('connect', () => {
    onUp(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
}

/**
 * Listens with a fake proxy's `server` on a free loopback port and describes it; `close()`
 * destroys the sockets it tracks (clients and upstreams), then closes the server.
 */
async function listenFake(
  server: net.Server,
  scheme: 'http' | 'https' | 'socks5',
  sockets: Set<net.Socket>,
  state: { connections: number },
  record: Pick<FakeProxy, 'heads' | 'socksTargets'>,
): Promise<FakeProxy> {
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    heads: record.heads,
    socksTargets: record.socksTargets,
    get connections() {
      return state.connections;
    },
    set connections(v: number) {
      state.connections = v;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * An HTTP CONNECT proxy whose every answer is scripted by `answer(head, index)`; with `tls`, an
 * `https://` proxy (TLS to the proxy itself).
 */
export async function startFakeHttpProxy(
  answer: (head: string, index: number) => FakeHttpAnswer,
  options: { tls?: { key: string; cert: string } } = {},
): Promise<FakeProxy> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const state = { connections: 0 };
  const onClient = (client: net.Socket): void => {
    const index = state.connections++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      client.pause();
      const head = buffered.subarray(0, end).toString('latin1');
      const rest = buffered.subarray(end + 4);
      heads.push(head);
      const what = answer(head, index);
      if (what.kind === 'silent') return;
      if (what.kind === 'reply') {
        client.end(what.raw);
        return;
      }
      if (what.kind === 'close') {
        client.end(what.raw);
        return;
      }
      const target = /^CONNECT (\S+) /.exec(head)?.[1] ?? '';
      const colon = target.lastIndexOf(':');
      const host = target.slice(0, colon).replace(/^\[|\]$/g, '');
      tunnel(client, host, Number(target.slice(colon + 1)), sockets, (upstream) => {
        client.write(Buffer.concat([Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n'), what.extraBytes ?? Buffer.alloc(0)]));
        if (rest.length > 0) upstream.write(rest);
        client.resume();
      });
    };
    client.on('data', onData);
  };
  const server = options.tls !== undefined ? tls.createServer({ key: options.tls.key, cert: options.tls.cert }, onClient) : net.createServer(onClient);
  return listenFake(server, options.tls !== undefined ? 'https' : 'http', sockets, state, { heads, socksTargets: [] });
}

/** A SOCKS5 proxy (no authentication) whose answers are scripted by `answer(index)`. */
export async function startFakeSocksProxy(answer: (index: number) => FakeSocksAnswer): Promise<FakeProxy> {
  const socksTargets: FakeProxy['socksTargets'] = [];
  const sockets = new Set<net.Socket>();
  const state = { connections: 0 };
  const server = net.createServer((client) => {
    const index = state.connections++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    const what = answer(index);
    if (what.kind === 'reset') {
      setTimeout(() => client.resetAndDestroy(), what.afterMs);
      return;
    }
    let buffered = Buffer.alloc(0);
    let phase: 'greeting' | 'request' = 'greeting';
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (phase === 'greeting') {
        if (buffered.length < 2 || buffered.length < 2 + (buffered[1] as number)) return;
        buffered = buffered.subarray(2 + (buffered[1] as number));
        if (what.kind === 'garbage') {
          client.end(what.raw);
          return;
        }
        if (what.kind === 'method') {
          client.end(Buffer.from([5, what.method]));
          return;
        }
        client.write(Buffer.from([5, 0]));
        phase = 'request';
      }
      if (buffered.length < 5) return;
      const atyp = buffered[3];
      const addressLength = atyp === 1 ? 4 : atyp === 4 ? 16 : 1 + (buffered[4] as number);
      const total = 4 + addressLength + 2;
      if (buffered.length < total) return;
      const address = buffered.subarray(4, 4 + addressLength);
      const host =
        atyp === 1 ? [...address].join('.') : atyp === 4 ? (address.toString('hex').match(/.{4}/g) ?? []).join(':') : address.subarray(1).toString('utf8');
      const port = buffered.readUInt16BE(4 + addressLength);
      socksTargets.push({ host, port, atyp: atyp === 1 ? 'ipv4' : atyp === 4 ? 'ipv6' : 'domain' });
      client.off('data', onData);
      const rest = buffered.subarray(total);
      const bound = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
      if (what.kind === 'reply') {
        bound[1] = what.code;
        client.end(bound);
        return;
      }
      client.pause();
      // Every name is this machine: the fake proxy resolves nothing.
      tunnel(client, atyp === 3 ? '127.0.0.1' : host, port, sockets, (upstream) => {
        client.write(bound);
        if (rest.length > 0) upstream.write(rest);
        client.resume();
      });
    };
    client.on('data', onData);
  });
  return listenFake(server, 'socks5', sockets, state, { heads: [], socksTargets });
}
