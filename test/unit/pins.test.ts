import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { normalizePin, parsePins, pinMismatch, pinOf } from '../../src/connect/pins.js';
import { generateCertificates } from '../../src/server/certs.js';

function der(pem: string): Uint8Array {
  return new X509Certificate(pem).raw;
}

test('pins in OkHttp and curl spelling are the same digest; anything else is refused', () => {
  const digest = Buffer.alloc(32, 3).toString('base64');
  assert.equal(normalizePin(`sha256/${digest}`), digest);
  assert.equal(normalizePin(`sha256//${digest}`), digest);
  for (const bad of ['', 'sha1/' + digest, `sha256/${digest.slice(1)}`, 'sha256/' + Buffer.alloc(31).toString('base64'), `${digest}`]) {
    assert.throws(() => normalizePin(bad), { code: 'MUXPOOL_ERR_INVALID_ARGUMENT' }, bad);
  }
  assert.equal(parsePins([]), undefined);
});

test('a pin matches the leaf, or a CA that provably signed it; a presented CA that did not sign the leaf does not count', async () => {
  const a = await generateCertificates({ caName: 'A' });
  const b = await generateCertificates({ caName: 'B' });
  const pins = (...pems: string[]) => parsePins(pems.map((p) => pinOf(new X509Certificate(p)))) as ReadonlySet<string>;
  assert.equal(pinMismatch(pins(a.leafCert), [der(a.leafCert)], [], 'h'), undefined);
  assert.equal(pinMismatch(pins(a.caCert), [der(a.leafCert), der(a.caCert)], [], 'h'), undefined);
  assert.equal(pinMismatch(pins(a.caCert), [der(a.leafCert)], [a.caCert], 'h'), undefined);
  // B's CA presented beside A's leaf: it did not issue it, so pinning B does not accept it.
  const err = pinMismatch(pins(b.caCert), [der(a.leafCert), der(b.caCert)], [b.caCert], 'h');
  assert.equal(err?.code, 'MUXPOOL_ERR_TLS_PIN');
  assert.equal(pinMismatch(pins(a.leafCert), [], [], 'h')?.code, 'MUXPOOL_ERR_TLS_PIN');
});
