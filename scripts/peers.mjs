#!/usr/bin/env node
// The independent peers the tests run against (servers and tools nobody here wrote), and the
// Debian packages that bring them. `npm test` runs this first: on Debian or Ubuntu as root it
// installs what is missing; elsewhere it names exactly what to install. Tests whose peer is
// missing fail with the same message (test/helpers/peers.ts), never skip.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const PEERS = [
  { binary: 'caddy', pkg: 'caddy', why: 'HTTP/1.1, HTTP/2 and HTTP/3 interop' },
  { binary: 'nghttpd', pkg: 'nghttp2-server', why: 'HTTP/2 interop' },
  { binary: 'h2load', pkg: 'nghttp2-client', why: 'benchmarks and HTTP/2 load' },
  { binary: 'gtlsclient', pkg: 'ngtcp2-client', why: 'HTTP/3 interop (an independent client)' },
  { binary: 'gtlsserver', pkg: 'ngtcp2-server', why: 'HTTP/3 interop (an independent server)' },
  { binary: 'h2o', pkg: 'h2o', why: 'HTTP/2 interop' },
  { binary: 'tinyproxy', pkg: 'tinyproxy', why: 'HTTP proxy: CONNECT tunnels and forwarding' },
  { binary: 'danted', pkg: 'dante-server', why: 'SOCKS5 proxy, with and without authentication' },
  { binary: 'openssl', pkg: 'openssl', why: 'certificates for peers' },
  { python: 'hpack', pkg: 'python3-hpack', why: 'HPACK cross-check' },
  { binary: 'chromium', pkg: 'chromium', why: 'the bench HTML report opened in a real browser' },
];

function onPath(binary) {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/local/sbin']);
  for (const dir of dirs) {
    try {
      accessSync(join(dir, binary), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

function hasPython(module) {
  return spawnSync('/usr/bin/python3', ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}

export function missingPeers() {
  return PEERS.filter((p) => (p.binary !== undefined ? !onPath(p.binary) : !hasPython(p.python)));
}

export function installHint(missing) {
  const pkgs = [...new Set(missing.map((p) => p.pkg))].join(' ');
  return `muxpool's tests need independent peers that are not installed: ${missing
    .map((p) => `${p.binary ?? `python3 ${p.python}`} (${p.why})`)
    .join(', ')}. On Debian or Ubuntu: sudo apt-get install -y ${pkgs} (npm test installs them itself when run as root there).`;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  let missing = missingPeers();
  const canInstall = process.getuid?.() === 0 && onPath('apt-get') && process.env.MUXPOOL_NO_INSTALL !== '1';
  if (missing.length > 0 && canInstall) {
    const pkgs = [...new Set(missing.map((p) => p.pkg))];
    console.error(`installing test peers: ${pkgs.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
      execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
    } catch (err) {
      console.error(`apt-get failed: ${err.message}`);
    }
    missing = missingPeers();
  }
  if (missing.length > 0) console.error(installHint(missing));
}
