/** The QUIC driver's pure parts: state transitions, peer addresses, quiche error mapping. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MuxpoolError } from '../../src/errors.js';
import { peerAddress } from '../../src/quic/address.js';
import { agreedIdleTimeout } from '../../src/quic/connection.js';
import { closeError, describeCloseCode, nativeFailure, tlsAlertOf } from '../../src/quic/error-map.js';
import { transition } from '../../src/quic/state.js';

test('state machine: the legal transitions pass, every other one is an internal error', () => {
  assert.equal(transition('handshaking', 'established', 't'), 'established');
  assert.equal(transition('handshaking', 'draining', 't'), 'draining');
  assert.equal(transition('handshaking', 'closed', 't'), 'closed');
  assert.equal(transition('established', 'draining', 't'), 'draining');
  assert.equal(transition('established', 'closed', 't'), 'closed');
  assert.equal(transition('draining', 'closed', 't'), 'closed');
  const illegal: Array<[Parameters<typeof transition>[0], Parameters<typeof transition>[1]]> = [
    ['established', 'handshaking'],
    ['established', 'established'],
    ['draining', 'established'],
    ['draining', 'handshaking'],
    ['closed', 'closed'],
    ['closed', 'handshaking'],
  ];
  for (const [from, to] of illegal) {
    assert.throws(
      () => transition(from, to, 'abc'),
      (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_INTERNAL' && err.message.includes(`${from} → ${to}`),
    );
  }
});

test('peer addresses: IP literals only, canonical, IPv4-mapped IPv6 turned back into IPv4', () => {
  assert.deepEqual(peerAddress('127.0.0.1', 443), { host: '127.0.0.1', port: 443, family: 4 });
  assert.deepEqual(peerAddress('[::1]', 443), { host: '::1', port: 443, family: 6 });
  assert.deepEqual(peerAddress('0:0:0:0:0:0:0:1', 8443), { host: '::1', port: 8443, family: 6 });
  assert.deepEqual(peerAddress('::ffff:10.1.2.3', 443), { host: '10.1.2.3', port: 443, family: 4 });
  assert.deepEqual(peerAddress('::FFFF:7f00:1', 443), { host: '127.0.0.1', port: 443, family: 4 });
  assert.deepEqual(peerAddress('2001:DB8::1', 443), { host: '2001:db8::1', port: 443, family: 6 });
  for (const [host, port] of [
    ['localhost', 443],
    ['example.com', 443],
    ['', 443],
    ['127.0.0.1', 0],
    ['127.0.0.1', 65536],
    ['127.0.0.1', 1.5],
  ] as const) {
    assert.throws(
      () => peerAddress(host, port),
      (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_INVALID_ARGUMENT',
      `${host}:${port}`,
    );
  }
});

test('quiche error names are parsed with their argument', () => {
  assert.deepEqual(nativeFailure(new Error('StreamLimit')), { name: 'StreamLimit', arg: undefined });
  assert.deepEqual(nativeFailure(new Error('StreamStopped(77)')), { name: 'StreamStopped', arg: 77 });
  assert.deepEqual(nativeFailure(new Error('InvalidStreamState(4)')), { name: 'InvalidStreamState', arg: 4 });
  assert.equal(nativeFailure(new Error('something else happened')), undefined);
  assert.equal(nativeFailure('TlsFail'), undefined);
});

test('CONNECTION_CLOSE codes map to TLS and QUIC errors with wire code and origin', () => {
  const close = (isApp: boolean, errorCode: number, reason = '') => ({ isApp, errorCode, reason: new TextEncoder().encode(reason) });
  const local = { origin: 'local' as const, serverName: 'example.com', nameMismatch: false };
  const remote = { origin: 'remote' as const, serverName: 'example.com', nameMismatch: false };
  assert.equal(tlsAlertOf(0x130), 48);
  assert.equal(tlsAlertOf(0x0a), undefined);
  assert.equal(describeCloseCode({ isApp: false, errorCode: 0x0a }), 'PROTOCOL_VIOLATION (0xa)');
  assert.equal(describeCloseCode({ isApp: false, errorCode: 0x130 }), 'TLS alert 48 (0x130)');
  assert.equal(describeCloseCode({ isApp: true, errorCode: 0x10c }), 'application error 0x10c');

  const unknownCa = closeError(close(false, 0x130), local);
  assert.equal(unknownCa.code, 'MUXPOOL_ERR_TLS_CERT');
  assert.equal(unknownCa.wireCode, 0x130);
  assert.equal(unknownCa.origin, 'local');
  assert.equal(closeError(close(false, 0x12a), { ...local, nameMismatch: true }).code, 'MUXPOOL_ERR_TLS_HOSTNAME');
  assert.equal(closeError(close(false, 0x12d), local).code, 'MUXPOOL_ERR_TLS_CERT', 'certificate_expired');
  // The same alert from the peer is about something of ours, not the server certificate.
  assert.equal(closeError(close(false, 0x12a), remote).code, 'MUXPOOL_ERR_TLS');
  assert.equal(closeError(close(false, 0x178), local).code, 'MUXPOOL_ERR_TLS', 'no_application_protocol');
  const violation = closeError(close(false, 0x0a, 'bad frame'), remote);
  assert.equal(violation.code, 'MUXPOOL_ERR_QUIC');
  assert.equal(violation.origin, 'remote');
  assert.match(violation.message, /the peer closed the QUIC connection with PROTOCOL_VIOLATION \(0xa\): bad frame/);
  const app = closeError(close(true, 0x101), remote);
  assert.equal(app.code, 'MUXPOOL_ERR_QUIC');
  assert.equal(app.wireCode, 0x101);
});

test('the idle timeout is the smaller of both sides\' (RFC 9000 §10.1); 0 on one side means that side sets none', () => {
  assert.equal(agreedIdleTimeout(30_000, 1_500), 1_500);
  assert.equal(agreedIdleTimeout(1_500, 30_000), 1_500);
  assert.equal(agreedIdleTimeout(0, 1_500), 1_500);
  assert.equal(agreedIdleTimeout(30_000, 0), 30_000);
  assert.equal(agreedIdleTimeout(0, 0), 0);
});
