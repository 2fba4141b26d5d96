/**
 * The QUIC driver over loopback: our client against our server (quiche on both ends), with a
 * CA made at run time. Handshake and verification, streams both ways with flow control,
 * resets, stream credit, resumption and 0-RTT, timeouts, and nothing left behind.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { test } from 'node:test';
import { MuxpoolError } from '../../src/errors.js';
import { generateCertificates } from '../../src/server/certs.js';
import {
  connectQuic,
  createQuicClientConfig,
  type QuicConnectOptions,
  type QuicConnection,
} from '../../src/quic/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { leakCheck } from '../helpers/leaks.js';
import { RecordingHandler, quicCerts, startQuicServer } from '../helpers/quic.js';
import { startUdpBlackHole } from '../helpers/udp-proxy.js';

async function connect(
  port: number,
  options: Partial<QuicConnectOptions> = {},
): Promise<{ connection: QuicConnection; handler: RecordingHandler }> {
  const certs = await quicCerts();
  const handler = new RecordingHandler();
  const connection = await connectQuic({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    alpn: ['h3'],
    ca: [certs.caCert],
    handshakeTimeoutMs: 5_000,
    handler,
    ...options,
  });
  handler.connection = connection;
  return { connection, handler };
}

const EMPTY_BYTES = new Uint8Array(0);

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

test('handshake with a generated CA: established, ALPN h3, verified', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer();
  const { connection, handler } = await connect(server.port);
  assert.equal(connection.state, 'established');
  assert.equal(connection.alpn, 'h3');
  assert.equal(connection.role, 'client');
  assert.equal(connection.isResumed, false);
  assert.deepEqual(handler.events.slice(0, 1), ['established']);
  await connection.close(0, 'done');
  await server.close();
  await leaks.check();
});

test('a bidirectional stream echoes small writes and a 1 MiB body intact, with flow control', async () => {
  const leaks = leakCheck();
  // Small windows force many partial writes and MAX_STREAM_DATA round trips on both sides.
  const server = await startQuicServer({ initialMaxStreamDataBidiRemote: 64 * 1024, initialMaxData: 256 * 1024 });
  const { connection, handler } = await connect(server.port, {
    transport: { initialMaxStreamDataBidiLocal: 64 * 1024, initialMaxData: 256 * 1024 },
  });

  const small = connection.openStream();
  assert.equal(connection.write(small, Buffer.from('hello '), false), 6);
  assert.equal(connection.write(small, Buffer.from('quic'), true), 4);
  await handler.until(() => handler.finished.has(small), 'the small echo');
  assert.equal(handler.received(small).toString(), 'hello quic');

  const body = randomBytes(1024 * 1024);
  const big = connection.openStream();
  assert.notEqual(big, small);
  const firstWrite = connection.write(big, body, true);
  assert.ok(firstWrite < body.length, 'a 1 MiB write is cut short by the 64 KiB stream window');
  await handler.writeAll(big, body.subarray(firstWrite), true);
  await handler.until(() => handler.finished.has(big), 'the 1 MiB echo');
  const echoed = handler.received(big);
  assert.equal(echoed.length, body.length);
  assert.equal(sha256(echoed), sha256(body));
  const serverSide = server.handlers[0];
  assert.ok(serverSide !== undefined);
  assert.equal(sha256(serverSide.received(big)), sha256(body));
  assert.deepEqual(serverSide.peerStreams, [
    { id: small, bidirectional: true },
    { id: big, bidirectional: true },
  ]);

  await connection.close();
  await server.close();
  await leaks.check();
});

test('peer-opened unidirectional streams are surfaced with their data', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer();
  const { connection, handler } = await connect(server.port);
  await server.handlers[0]?.until(() => server.handlers[0]?.connection?.state === 'established', 'server established');
  const serverConnection = server.handlers[0]?.connection as QuicConnection;
  // What an HTTP/3 server does first: control stream and QPACK encoder/decoder streams.
  const ids = [serverConnection.openStream(false), serverConnection.openStream(false), serverConnection.openStream(false)];
  assert.deepEqual(ids, [3, 7, 11]);
  for (const id of ids) serverConnection.write(id, Buffer.from([id]), false);
  serverConnection.write(ids[0] as number, Buffer.from('settings'), false);
  await handler.until(() => handler.peerStreams.length === 3 && handler.received(3).length === 9, 'three uni streams');
  assert.deepEqual(handler.peerStreams, ids.map((id) => ({ id, bidirectional: false })));
  assert.equal(handler.received(3).subarray(1).toString(), 'settings');
  assert.deepEqual([...handler.received(7)], [7]);
  await connection.close();
  await server.close();
  await leaks.check();
});

test('resets and STOP_SENDING travel both ways with their application codes', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer({ makeHandler: () => new RecordingHandler() });
  const { connection, handler } = await connect(server.port);

  // Client resets its sending side: the server sees RESET_STREAM.
  const a = connection.openStream();
  connection.write(a, Buffer.from('partial'), false);
  const serverHandler = (): RecordingHandler => server.handlers[0] as RecordingHandler;
  await handler.until(() => server.handlers.length === 1, 'the server connection');
  await serverHandler().until(() => serverHandler().received(a).length === 7, 'data on stream a');
  connection.resetStream(a, 0x10c);
  await serverHandler().until(() => serverHandler().resets.has(a), 'the reset of stream a');
  assert.equal(serverHandler().resets.get(a), 0x10c);
  assert.throws(() => connection.write(a, Buffer.from('x')), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_QUIC_STREAM_CLOSED');

  // Server asks the client to stop sending: the client hears STOP_SENDING; writes then fail.
  const b = connection.openStream();
  connection.write(b, Buffer.from('more'), false);
  await serverHandler().until(() => serverHandler().received(b).length === 4, 'data on stream b');
  serverHandler().connection?.stopSending(b, 0x10b);
  await handler.until(() => handler.stops.has(b), 'STOP_SENDING on stream b');
  assert.equal(handler.stops.get(b), 0x10b);
  assert.throws(
    () => connection.write(b, Buffer.from('y')),
    (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_QUIC_STREAM_CLOSED',
  );

  // Server resets its side of a stream, client asks the server to stop: both reported.
  const c = connection.openStream();
  connection.write(c, Buffer.from('z'), false);
  await serverHandler().until(() => serverHandler().received(c).length === 1, 'data on stream c');
  serverHandler().connection?.write(c, Buffer.from('answer'), false);
  await handler.until(() => handler.received(c).length === 6, 'the answer on c');
  serverHandler().connection?.resetStream(c, 0x101);
  connection.stopSending(c, 0x102);
  connection.resetStream(c, 0x102);
  await serverHandler().until(() => serverHandler().stops.has(c) || serverHandler().resets.has(c), 'the client giving up on c');
  await connection.close();
  await server.close();
  await leaks.check();
});

test('with more open streams than the driver asks one by one, data, FINs and STOP_SENDING still arrive', async () => {
  const leaks = leakCheck();
  // Past 128 tracked streams the driver reads quiche's readable and writable sets instead.
  const count = 200;
  const server = await startQuicServer({ initialMaxStreamsBidi: 300 });
  const { connection, handler } = await connect(server.port, { transport: { initialMaxStreamsBidi: 300 } });
  const ids = Array.from({ length: count }, () => connection.openStream());
  for (const id of ids) connection.write(id, Buffer.from(`s${id}`), false);
  await handler.until(() => ids.every((id) => handler.received(id).length === `s${id}`.length), 'every echo');
  assert.equal(connection.openStreams, count);

  const stopped = ids[count - 1] as number;
  server.handlers[0]?.connection?.stopSending(stopped, 0x10b);
  await handler.until(() => handler.stops.has(stopped), 'STOP_SENDING among many streams');
  assert.equal(handler.stops.get(stopped), 0x10b);

  for (const id of ids.slice(0, -1)) connection.write(id, EMPTY_BYTES, true);
  await handler.until(() => ids.slice(0, -1).every((id) => handler.finished.has(id)), 'every FIN');
  await connection.close();
  await server.close();
  await leaks.check();
});

test('bytes written by a promise continuation of a stream\'s end leave in the same tick as our ACK', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer();
  const { connection, handler } = await connect(server.port);
  // The client's socket is connected: its sends are the only three-argument ones.
  const sent: number[] = [];
  const send = dgram.Socket.prototype.send;
  dgram.Socket.prototype.send = function (this: dgram.Socket, ...args: unknown[]) {
    if (args.length === 3) sent.push(args[2] as number);
    return (send as (...a: unknown[]) => void).apply(this, args);
  } as typeof send;
  try {
    const id = connection.openStream();
    const answer = Buffer.alloc(1000, 'a');
    let next = -1;
    const sentAfterAnswer = new Promise<number[]>((resolve) => {
      handler.onStreamData = (streamId, chunk, fin) => {
        RecordingHandler.prototype.onStreamData.call(handler, streamId, chunk, fin);
        if (streamId !== id || !fin) return;
        const before = sent.length;
        // What a keep-alive loop does when a response ends: the next request, from a
        // continuation of the awaited response, not from this callback.
        void Promise.resolve().then(() => {
          next = connection.openStream();
          connection.write(next, answer, true);
        });
        // Queued before the continuation's write could schedule anything: runs a loop iteration on.
        setImmediate(() => resolve(sent.slice(before)));
      };
    });
    connection.write(id, Buffer.from('ping'), true);
    const lengths = await sentAfterAnswer;
    assert.ok(
      lengths.some((length) => length >= answer.length),
      `the answer went out with the ACK, not a loop iteration later (datagrams: ${lengths.join(', ')})`,
    );
    await handler.until(() => handler.finished.has(next), 'the echo of the answer');
    assert.equal(handler.received(next).length, answer.length);
  } finally {
    dgram.Socket.prototype.send = send;
    await connection.close();
    await server.close();
  }
  await leaks.check();
});

test('opening past the peer limit throws QUIC_STREAM_LIMIT; MAX_STREAMS brings credit back', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer({ initialMaxStreamsBidi: 2 });
  const { connection, handler } = await connect(server.port);
  assert.equal(connection.peerStreamsLeftBidi, 2);
  const first = connection.openStream();
  const second = connection.openStream();
  assert.equal(connection.peerStreamsLeftBidi, 0);
  assert.throws(() => connection.openStream(), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_QUIC_STREAM_LIMIT');
  for (const id of [first, second]) connection.write(id, Buffer.from('done'), true);
  await handler.until(() => handler.finished.has(first) && handler.finished.has(second), 'both echoes');
  // Both streams are complete on the server, which then raises its limit (RFC 9000 §4.6).
  await handler.until(() => handler.credit[0] > 0, 'MAX_STREAMS');
  assert.ok(connection.peerStreamsLeftBidi > 0);
  const third = connection.openStream();
  connection.write(third, Buffer.from('again'), true);
  await handler.until(() => handler.finished.has(third), 'the third echo');
  assert.equal(handler.received(third).toString(), 'again');
  await connection.close();
  await server.close();
  await leaks.check();
});

test('a certificate from an unknown CA fails with TLS_CERT', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer();
  const stranger = await generateCertificates({ caName: 'some other CA' });
  const err = await rejectsWith(connect(server.port, { ca: [stranger.caCert] }), 'MUXPOOL_ERR_TLS_CERT');
  assert.equal(err.origin, 'local');
  assert.equal(err.wireCode, 0x100 + 48, 'unknown_ca alert');
  await server.close();
  await leaks.check();
});

test('a certificate for another name fails with TLS_HOSTNAME, for DNS names and IP addresses', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer();
  await rejectsWith(connect(server.port, { servername: 'other.example' }), 'MUXPOOL_ERR_TLS_HOSTNAME');
  const narrow = await generateCertificates({ names: ['only.example'], ips: ['10.1.2.3'] });
  const narrowServer = await startQuicServer({ certs: narrow });
  const err = await rejectsWith(
    connect(narrowServer.port, { servername: undefined, ca: [narrow.caCert] }),
    'MUXPOOL_ERR_TLS_HOSTNAME',
  );
  assert.match(err.message, /127\.0\.0\.1/);
  // With the right name the same server is fine.
  const ok = await connect(narrowServer.port, { servername: 'only.example', ca: [narrow.caCert] });
  await ok.connection.close();
  await narrowServer.close();
  await server.close();
  await leaks.check();
});

test('an IP literal host is verified against the IP SANs (IPv4, IPv6, IPv4-mapped)', async () => {
  const leaks = leakCheck();
  const server4 = await startQuicServer();
  const server6 = await startQuicServer({ host: '::1' });
  const byIp = await connect(server4.port, { servername: undefined });
  assert.equal(byIp.connection.state, 'established');
  const mapped = await connect(server4.port, { host: '::ffff:127.0.0.1', servername: undefined });
  assert.equal(mapped.connection.remoteAddress.host, '127.0.0.1');
  const v6 = await connect(server6.port, { host: '[::1]', servername: undefined });
  assert.equal(v6.connection.remoteAddress.host, '::1');
  for (const c of [byIp, mapped, v6]) await c.connection.close();
  await server4.close();
  await server6.close();
  await leaks.check();
});

test('invalid PEM in ca is INVALID_CA before any packet; a host name is INVALID_ARGUMENT', async () => {
  const certs = await quicCerts();
  await rejectsWith(connect(1, { ca: ['-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n'] }), 'MUXPOOL_ERR_INVALID_CA');
  await rejectsWith(connect(1, { ca: ['garbage'] }), 'MUXPOOL_ERR_INVALID_CA');
  assert.throws(
    () => createQuicClientConfig({ alpn: ['h3'], ca: [] }),
    (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_INVALID_CA',
  );
  assert.throws(
    () => createQuicClientConfig({ alpn: ['h3'], ca: [certs.caCert], initialMaxStreamsUni: 2 }),
    (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_INVALID_ARGUMENT',
  );
  await rejectsWith(connect(443, { host: 'localhost' }), 'MUXPOOL_ERR_INVALID_ARGUMENT');
});

test('no listener: the port-unreachable answer fails the handshake at once with CONNECT_REFUSED', async () => {
  const leaks = leakCheck();
  // A port that was just free: bind a server, note its port, close it.
  const gone = await startQuicServer();
  const port = gone.port;
  await gone.close();
  // The deadline is far away: only the ICMP answer can end the handshake before it.
  const err = await rejectsWith(connect(port, { handshakeTimeoutMs: 30_000 }), 'MUXPOOL_ERR_CONNECT_REFUSED');
  assert.equal(err.maybeProcessed, false);
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
  await leaks.check();
});

test('a silent peer: the handshake fails with QUIC_HANDSHAKE_TIMEOUT at its deadline', async () => {
  const hole = await startUdpBlackHole();
  const leaks = leakCheck();
  const started = performance.now();
  const err = await rejectsWith(connect(hole.port, { handshakeTimeoutMs: 400 }), 'MUXPOOL_ERR_QUIC_HANDSHAKE_TIMEOUT');
  assert.ok(performance.now() - started >= 390, 'not before the deadline');
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${hole.port}`));
  await leaks.check();
  hole.close();
});

test('an AbortSignal stops the handshake with ABORTED and releases the socket', async () => {
  const hole = await startUdpBlackHole();
  const leaks = leakCheck();
  const controller = new AbortController();
  const pending = connect(hole.port, { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  await rejectsWith(pending, 'MUXPOOL_ERR_ABORTED');
  await leaks.check();
  hole.close();
});

test('close and destroy leave no socket or timer; the peer hears the close code', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer();
  const a = await connect(server.port);
  const info = await a.connection.close(0x100, 'bye');
  assert.equal(info.cause, 'local-close');
  assert.equal(info.error, undefined);
  assert.equal(a.connection.state, 'closed');
  const serverA = server.handlers[0] as RecordingHandler;
  await serverA.until(() => serverA.closeInfo !== undefined, 'the server hearing the close');
  assert.deepEqual(
    { cause: serverA.closeInfo?.cause, isApp: serverA.closeInfo?.isApp, code: serverA.closeInfo?.errorCode, reason: serverA.closeInfo?.reason },
    { cause: 'peer-close', isApp: true, code: 0x100, reason: 'bye' },
  );

  const b = await connect(server.port);
  b.connection.openStream();
  b.connection.destroy();
  assert.equal(b.connection.state, 'closed');
  assert.equal(b.handler.closeInfo?.cause, 'destroyed');
  assert.throws(() => b.connection.openStream(), (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_QUIC');
  const serverB = server.handlers[1] as RecordingHandler;
  await serverB.until(() => serverB.closeInfo !== undefined, 'the server hearing the destroy');
  assert.equal(serverB.closeInfo?.cause, 'peer-close');
  await server.close();
  assert.equal(server.server.connections, 0);
  await leaks.check();
});

test('the server closing tells the client, with its application code', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer();
  const { connection, handler } = await connect(server.port);
  // Closed before its handshake completes, a server's application close goes out as the
  // transport error APPLICATION_ERROR (RFC 9000 §10.2.3); wait for it to be established.
  const serverSide = server.handlers[0] as RecordingHandler;
  await serverSide.until(() => serverSide.events.includes('established'), 'the server side established');
  await server.server.close(0x100, 'shutting down');
  await handler.until(() => handler.closeInfo !== undefined, 'the client hearing the close');
  assert.equal(handler.closeInfo?.cause, 'peer-close');
  assert.equal(handler.closeInfo?.errorCode, 0x100);
  assert.equal(handler.closeInfo?.reason, 'shutting down');
  assert.equal(handler.closeInfo?.error, undefined, 'an application close after the handshake is no failure');
  await connection.closed;
  await leaks.check();
});

test('an idle connection closes itself with QUIC_IDLE_TIMEOUT', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer({ idleTimeoutMs: 60_000 });
  const { connection, handler } = await connect(server.port, { idleTimeoutMs: 300 });
  const info = await connection.closed;
  assert.equal(info.cause, 'idle-timeout');
  assert.equal(info.error?.code, 'MUXPOOL_ERR_QUIC_IDLE_TIMEOUT');
  assert.equal(handler.closeInfo, info);
  await server.close();
  await leaks.check();
});

test('a session ticket resumes the next connection; 0-RTT data is delivered, or resent when refused', async () => {
  const leaks = leakCheck();
  const server = await startQuicServer({ earlyData: true });
  const certs = await quicCerts();
  const config = createQuicClientConfig({ alpn: ['h3'], ca: [certs.caCert], earlyData: true });
  const first = await connect(server.port, { config });
  await first.handler.until(() => first.handler.sessions.length > 0, 'a session ticket');
  assert.equal(first.connection.isResumed, false);
  const session = first.handler.sessions[0] as Uint8Array;
  await first.connection.close();

  const resumed = await connect(server.port, { config, session });
  assert.equal(resumed.connection.isResumed, true);
  await resumed.connection.close();

  // 0-RTT: connect resolves before the handshake completes and a stream goes out as early data.
  const early = await connect(server.port, { config, session, earlyData: true });
  assert.equal(early.connection.state, 'handshaking');
  assert.equal(early.connection.isInEarlyData, true);
  const id = early.connection.openStream();
  early.connection.write(id, Buffer.from('early bird'), true);
  await early.handler.until(() => early.handler.finished.has(id), 'the 0-RTT echo');
  assert.equal(early.handler.received(id).toString(), 'early bird');
  assert.equal(early.connection.state, 'established');
  assert.equal(early.connection.isResumed, true);
  assert.equal(early.connection.earlyDataUsed, true);
  const serverEarly = server.handlers[2] as RecordingHandler;
  assert.equal(serverEarly.connection?.earlyDataUsed, true, 'the server read the stream as 0-RTT data');
  await early.connection.close();

  // Another server cannot resume that session (its ticket key differs): it refuses the 0-RTT
  // data, and quiche resends it once the handshake completes.
  const stranger = await startQuicServer({ earlyData: true });
  const refused = await connect(stranger.port, { config, session, earlyData: true });
  assert.equal(refused.connection.isInEarlyData, true);
  const refusedId = refused.connection.openStream();
  refused.connection.write(refusedId, Buffer.from('sent twice'), true);
  await refused.handler.until(() => refused.handler.finished.has(refusedId), 'the echo after the refusal');
  assert.equal(refused.handler.received(refusedId).toString(), 'sent twice');
  assert.equal(refused.connection.isResumed, false);
  assert.equal(stranger.handlers[0]?.connection?.earlyDataUsed, false);
  await refused.connection.close();
  await stranger.close();
  await server.close();
  await leaks.check();
});
