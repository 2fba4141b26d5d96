/**
 * Certificate pinning: `tls.pins` holds SHA-256 digests of SubjectPublicKeyInfo structures, as
 * OkHttp's CertificatePinner (`sha256/BASE64`) and curl's `--pinnedpubkey` (`sha256//BASE64`)
 * write them. A pin on the key (not the certificate) survives renewals that keep the key.
 *
 * What a pin may match. curl compares the leaf only; OkHttp any certificate of the chain once
 * it is cleaned (each one provably issued by the next). We do as OkHttp: the leaf, or any
 * certificate that signed the one below it, found among what the server presented and the
 * user's own `tls.ca`. Checking the signatures matters: a server may send any certificate it
 * likes in its chain, and only one that really signed the leaf (directly or through others)
 * vouches for it. Pins add to verification; they never replace it.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { MuxpoolError } from '../errors.js';

/** Chains longer than this are not followed (real ones have 2 to 4 certificates). */
const MAX_CHAIN = 10;

/** A pin in `sha256/BASE64` or `sha256//BASE64` form → the 32-byte digest as base64. */
export function normalizePin(pin: string): string {
  const match = typeof pin === 'string' ? /^sha256\/\/?([A-Za-z0-9+/]{43}=)$/.exec(pin.trim()) : null;
  if (match === null) {
    throw new MuxpoolError(
      'MUXPOOL_ERR_INVALID_ARGUMENT',
      `a pin must be sha256/ followed by the base64 of a 32-byte SHA-256 digest, got ${JSON.stringify(pin)}`,
    );
  }
  return match[1] as string;
}

/** Validates `tls.pins`; returns the digests, or undefined when there are none. */
export function parsePins(pins: readonly string[] | undefined): ReadonlySet<string> | undefined {
  if (pins === undefined) return undefined;
  if (!Array.isArray(pins)) throw new MuxpoolError('MUXPOOL_ERR_INVALID_ARGUMENT', 'tls.pins must be an array of sha256/BASE64 strings');
  if (pins.length === 0) return undefined;
  return new Set(pins.map(normalizePin));
}

/** `sha256/BASE64` of a certificate's public key. */
export function pinOf(cert: X509Certificate): string {
  return `sha256/${spkiDigest(cert)}`;
}

function spkiDigest(cert: X509Certificate): string {
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

function parse(der: Uint8Array | string): X509Certificate | undefined {
  try {
    return new X509Certificate(typeof der === 'string' ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength));
  } catch {
    return undefined;
  }
}

/**
 * The error for a connection whose certificates match no pin, or undefined when one matches.
 * `presented` is the chain the server sent, leaf first (DER); `extra` more certificates that
 * may complete it upwards (PEM or DER: the user's CAs).
 */
export function pinMismatch(
  pins: ReadonlySet<string>,
  presented: readonly Uint8Array[],
  extra: ReadonlyArray<Uint8Array | string>,
  host: string,
): MuxpoolError | undefined {
  const first = presented[0];
  const leaf = first === undefined ? undefined : parse(first);
  if (leaf === undefined) {
    return new MuxpoolError('MUXPOOL_ERR_TLS_PIN', `${host} presented no certificate to check against tls.pins`, { maybeProcessed: false });
  }
  const candidates: X509Certificate[] = [];
  for (const der of presented.slice(1)) {
    const cert = parse(der);
    if (cert !== undefined) candidates.push(cert);
  }
  for (const item of extra) {
    const cert = parse(item);
    if (cert !== undefined) candidates.push(cert);
  }
  const seen: string[] = [];
  let current: X509Certificate | undefined = leaf;
  // Bounded: at most MAX_CHAIN links, each a certificate not visited before.
  for (let depth = 0; current !== undefined && depth < MAX_CHAIN; depth++) {
    const digest = spkiDigest(current);
    if (pins.has(digest)) return undefined;
    seen.push(digest);
    const child: X509Certificate = current;
    current = candidates.find((c) => !seen.includes(spkiDigest(c)) && child.checkIssued(c) && child.verify(c.publicKey));
  }
  return new MuxpoolError(
    'MUXPOOL_ERR_TLS_PIN',
    `no certificate of ${host} matches tls.pins (the chain's keys: ${seen.map((d) => `sha256/${d}`).join(', ')})`,
    { maybeProcessed: false },
  );
}
