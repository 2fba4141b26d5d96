/**
 * Client certificates for mutual TLS tests: a leaf with extendedKeyUsage clientAuth, issued by
 * the CA of a `GeneratedCertificates` (ECDSA P-256, as the server certificates).
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { GeneratedCertificates } from '../../src/server/certs.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface ClientCertificate {
  cert: string;
  key: string;
  /** The subject as node:crypto's X509Certificate prints it (`CN=…`). */
  subject: string;
}

let serial = 0;

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

/** A client certificate for `commonName`, signed by `ca`'s key. */
export async function issueClientCertificate(ca: GeneratedCertificates, commonName: string): Promise<ClientCertificate> {
  const caKey = await webcrypto.subtle.importKey('pkcs8', pemBody(ca.caKey), ALGORITHM, true, ['sign']);
  const caCert = new x509.X509Certificate(ca.caCert);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  serial++;
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: `${now.toString(16)}c${serial.toString(16).padStart(4, '0')}`,
    subject: `CN=${commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60 * 60 * 1000),
    notAfter: new Date(now + 24 * 60 * 60 * 1000),
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(await caCert.publicKey.export()),
    ],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
  return { cert: leaf.toString('pem'), key, subject: `CN=${commonName}` };
}
