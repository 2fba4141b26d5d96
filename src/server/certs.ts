/**
 * Certificates made at run time, without the openssl CLI: a private CA and a leaf signed by it
 * (ECDSA P-256, which BoringSSL/quiche and OpenSSL both accept). Used by the embedded server,
 * the CLI demo and the tests.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs this polyfill loaded first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface CertificateOptions {
  /** DNS names the leaf covers. Default: localhost. */
  names?: string[];
  /** IP addresses the leaf covers. Default: 127.0.0.1 and ::1. */
  ips?: string[];
  /** Leaf validity. Defaults: one hour ago, and 30 days from now. */
  notBefore?: Date;
  notAfter?: Date;
  /** Common name of the CA (tests make several distinct CAs). */
  caName?: string;
}

export interface GeneratedCertificates {
  caCert: string;
  caKey: string;
  leafCert: string;
  leafKey: string;
}

let serial = 0;
function nextSerial(): string {
  serial++;
  return `${Date.now().toString(16)}${serial.toString(16).padStart(4, '0')}`;
}

type KeyPair = webcrypto.CryptoKeyPair;

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const base64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN PRIVATE KEY-----\n${base64}\n-----END PRIVATE KEY-----\n`;
}

async function generateKeys(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as KeyPair;
}

/** A CA and a leaf for `names` and `ips`, as PEM strings. */
export async function generateCertificates(options: CertificateOptions = {}): Promise<GeneratedCertificates> {
  const now = Date.now();
  const names = options.names ?? ['localhost'];
  const ips = options.ips ?? ['127.0.0.1', '::1'];
  const caKeys = await generateKeys();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: `CN=${options.caName ?? 'muxpool local CA'}`,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 3650 * DAY_MS),
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leafKeys = await generateKeys();
  const altNames: x509.JsonGeneralName[] = [
    ...names.map((value) => ({ type: 'dns' as const, value })),
    ...ips.map((value) => ({ type: 'ip' as const, value })),
  ];
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: `CN=${names[0] ?? ips[0] ?? 'localhost'}`,
    issuer: ca.subject,
    notBefore: options.notBefore ?? new Date(now - 60 * 60 * 1000),
    notAfter: options.notAfter ?? new Date(now + 30 * DAY_MS),
    signingKey: caKeys.privateKey,
    publicKey: leafKeys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(altNames),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return {
    caCert: ca.toString('pem'),
    caKey: await pkcs8Pem(caKeys.privateKey),
    leafCert: leaf.toString('pem'),
    leafKey: await pkcs8Pem(leafKeys.privateKey),
  };
}

/** Writes `ca.pem`, `cert.pem` and `key.pem` (mode 0600) into `dir`; returns their paths. */
export async function writeCertificates(
  dir: string,
  certs: GeneratedCertificates,
): Promise<{ caPath: string; certPath: string; keyPath: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caPath = join(dir, 'ca.pem');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  await writeFile(caPath, certs.caCert);
  await writeFile(certPath, certs.leafCert);
  await writeFile(keyPath, certs.leafKey, { mode: 0o600 });
  return { caPath, certPath, keyPath };
}
