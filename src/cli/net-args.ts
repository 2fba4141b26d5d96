/**
 * curl's network options for the fetch command: `--unix-socket PATH`, `--cert FILE[:PASSWORD]`,
 * `--key FILE`, `--pass PASSWORD`, `--resolve host:port:addr[,addr]`, `--connect-to
 * host:port:host2:port2` and `--pinnedpubkey sha256//BASE64[;sha256//…]` (or a public key file),
 * turned into pool options.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ConnectionPoolOptions } from '../client/pool.js';
import type { TlsIdentity } from '../pool/key.js';

export interface NetworkArgs {
  unixSocket: string | undefined;
  cert: string | undefined;
  /** From `--cert FILE:PASSWORD` or `--pass`. */
  passphrase: string | undefined;
  key: string | undefined;
  resolve: string[];
  connectTo: string[];
  /** `--pinnedpubkey` values as given (several flags add up). */
  pinned: string[];
}

export function emptyNetworkArgs(): NetworkArgs {
  return { unixSocket: undefined, cert: undefined, passphrase: undefined, key: undefined, resolve: [], connectTo: [], pinned: [] };
}

/**
 * curl's `--cert` value: the file, then an optional `:password`; a colon inside the file name is
 * written `\:` (as curl reads it).
 */
export function splitCertArg(value: string): { file: string; passphrase: string | undefined } {
  let file = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '\\' && value[i + 1] === ':') {
      file += ':';
      i++;
    } else if (c === ':') {
      return { file, passphrase: value.slice(i + 1) };
    } else {
      file += c;
    }
  }
  return { file, passphrase: undefined };
}

/** Handles the options above into `args`; false when `arg` is none of them. */
export function takeNetworkOption(arg: string, next: () => string, args: NetworkArgs): boolean {
  switch (arg) {
    case '--unix-socket':
      args.unixSocket = next();
      return true;
    case '-E':
    case '--cert': {
      const { file, passphrase } = splitCertArg(next());
      args.cert = file;
      if (passphrase !== undefined) args.passphrase = passphrase;
      return true;
    }
    case '--key':
      args.key = next();
      return true;
    case '--pass':
      args.passphrase = next();
      return true;
    case '--resolve':
      args.resolve.push(next());
      return true;
    case '--connect-to':
      args.connectTo.push(next());
      return true;
    case '--pinnedpubkey':
      args.pinned.push(next());
      return true;
    default:
      return false;
  }
}

const PEM_KEY = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]+?-----END (?:[A-Z]+ )?PRIVATE KEY-----/;

/** curl's pin list: `sha256//A;sha256//B`, or the path of a public key (PEM or DER) or certificate. */
async function pinsOf(values: readonly string[]): Promise<string[]> {
  const pins: string[] = [];
  for (const value of values) {
    if (value.startsWith('sha256//')) {
      for (const part of value.split(';')) if (part.trim() !== '') pins.push(part.trim());
      continue;
    }
    const bytes = await readFile(value);
    const text = bytes.toString('latin1');
    const key = text.includes('-----BEGIN') ? createPublicKey(text) : createPublicKey({ key: bytes, format: 'der', type: 'spki' });
    pins.push(`sha256//${createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('base64')}`);
  }
  return pins;
}

/**
 * The TLS identity parts (client certificate, pins) and routing options of the pool. A PEM cert
 * file without `--key` must hold the key too (as curl allows); a file that is not PEM is taken as
 * PKCS#12.
 */
export async function networkPoolOptions(args: NetworkArgs): Promise<{ tls: Partial<TlsIdentity>; pool: Pick<ConnectionPoolOptions, 'resolve' | 'connectTo' | 'socketPath'> }> {
  const tls: Partial<TlsIdentity> = {};
  if (args.cert !== undefined) {
    const bytes = await readFile(args.cert);
    const text = bytes.toString('latin1');
    if (!text.includes('-----BEGIN')) {
      tls.pfx = bytes;
    } else {
      tls.cert = text;
      const key = args.key !== undefined ? await readFile(args.key, 'latin1') : PEM_KEY.exec(text)?.[0];
      if (key === undefined) throw new Error(`--cert ${args.cert} holds no private key: pass it with --key FILE`);
      tls.key = key;
    }
    if (args.passphrase !== undefined) tls.passphrase = args.passphrase;
  } else if (args.key !== undefined) {
    throw new Error('--key needs --cert');
  }
  if (args.pinned.length > 0) tls.pins = await pinsOf(args.pinned);
  return {
    tls,
    pool: {
      ...(args.resolve.length > 0 ? { resolve: args.resolve } : {}),
      ...(args.connectTo.length > 0 ? { connectTo: args.connectTo } : {}),
      ...(args.unixSocket !== undefined ? { socketPath: args.unixSocket } : {}),
    },
  };
}
