/**
 * One trust story for TCP and QUIC: Node's root store, plus the file named by
 * NODE_EXTRA_CA_CERTS, plus the user's `tls.ca`. Passing `ca` to tls.connect replaces Node's
 * default store, so the full list is built here; the QUIC stack (which reads no system store)
 * gets the same list.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { MuxpoolError } from '../errors.js';
import type { TlsIdentity } from '../pool/key.js';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Splits PEM text into certificates, each checked to parse; anything else is INVALID_CA. */
export function parsePemCertificates(text: string, source: string): string[] {
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_CA', `${source} holds no PEM certificate`);
  }
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (cause) {
      throw new MuxpoolError('MUXPOOL_ERR_INVALID_CA', `${source} holds a certificate that does not parse`, { cause });
    }
  }
  return blocks;
}

let extraCas: string[] | undefined;

/** NODE_EXTRA_CA_CERTS, read once. */
function extraCaCerts(): string[] {
  if (extraCas !== undefined) return extraCas;
  const path = process.env['NODE_EXTRA_CA_CERTS'];
  if (path === undefined || path === '') {
    extraCas = [];
    return extraCas;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new MuxpoolError('MUXPOOL_ERR_INVALID_CA', `NODE_EXTRA_CA_CERTS names ${path}, which cannot be read`, { cause });
  }
  extraCas = parsePemCertificates(text, `NODE_EXTRA_CA_CERTS (${path})`);
  return extraCas;
}

function userCas(ca: TlsIdentity['ca']): string[] {
  if (ca === undefined) return [];
  const list = Array.isArray(ca) ? ca : [ca as string | Buffer];
  const out: string[] = [];
  for (const item of list) {
    const text = typeof item === 'string' ? item : Buffer.isBuffer(item) ? item.toString('utf8') : undefined;
    if (text === undefined) throw new MuxpoolError('MUXPOOL_ERR_INVALID_CA', 'tls.ca must be PEM strings or Buffers');
    out.push(...parsePemCertificates(text, 'tls.ca'));
  }
  return out;
}

/** The user's own CAs (`tls.ca`), as PEM strings. */
export function userCaList(ca?: TlsIdentity['ca']): string[] {
  return userCas(ca);
}

/** Every CA the client trusts for this identity, as PEM strings. */
export function trustedCaList(ca?: TlsIdentity['ca']): string[] {
  return [...tls.rootCertificates, ...extraCaCerts(), ...userCas(ca)];
}

/**
 * Secure contexts, cached per identity: building one with ~140 roots costs milliseconds, so it
 * must never happen per connection. Bounded, oldest dropped first.
 */
const contexts = new Map<string, tls.SecureContext>();
const MAX_CONTEXTS = 64;

export function clientSecureContext(identityKey: string, identity: TlsIdentity | undefined): tls.SecureContext {
  const cached = contexts.get(identityKey);
  if (cached !== undefined) return cached;
  const context = tls.createSecureContext({
    ca: trustedCaList(identity?.ca),
    ...(identity?.cert !== undefined ? { cert: identity.cert } : {}),
    ...(identity?.key !== undefined ? { key: identity.key } : {}),
    ...(identity?.passphrase !== undefined ? { passphrase: identity.passphrase } : {}),
    ...(identity?.pfx !== undefined ? { pfx: identity.pfx } : {}),
  });
  if (contexts.size >= MAX_CONTEXTS) {
    const oldest = contexts.keys().next().value;
    if (oldest !== undefined) contexts.delete(oldest);
  }
  contexts.set(identityKey, context);
  return context;
}
