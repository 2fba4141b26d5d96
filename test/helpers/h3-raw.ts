/**
 * A raw HTTP/3 server for hostile-peer tests: QUIC (our driver, ALPN h3) with a good control
 * stream, and on each request stream whatever the test writes: frames cut short, resets at any
 * point, fields no encoder of ours would send. The request is handed over once its HEADERS frame
 * is whole (the body, if any, may still be coming), so tests can answer before the request ends.
 */
import {
  STREAM_TYPE_CONTROL,
  encodeDataFrameHeader,
  encodeHeadersFrame,
  encodeSettingsFrame,
  encodeStreamType,
} from '../../src/protocol/h3/index.js';
import { type GeneratedCertificates, generateCertificates } from '../../src/server/certs.js';
import { QuicServer, createQuicServerConfig, type QuicConnection, type QuicConnectionHandler } from '../../src/quic/index.js';
import { hpackInteger } from './h2-raw.js';

let certsPromise: Promise<GeneratedCertificates> | undefined;
/** One CA and leaf for every raw HTTP/3 server of a test file. */
export function rawH3Certs(): Promise<GeneratedCertificates> {
  certsPromise ??= generateCertificates({ caName: 'muxpool hostile HTTP/3 CA' });
  return certsPromise;
}


/**
 * A field section of literal field lines with literal names only (RFC 9204 §4.5.6: 001N H + 3-bit
 * name length; no Huffman), after a prefix of Required Insert Count 0 and Base 0 (§4.5.1). Names
 * and values go out byte for byte: unlike our encoder, this one checks nothing, which is the point.
 */
export function rawFieldSection(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [Buffer.from([0x00, 0x00])];
  for (const [name, value] of fields) {
    const nameBytes = Buffer.from(name, 'latin1');
    const valueBytes = Buffer.from(value, 'latin1');
    parts.push(hpackInteger(nameBytes.length, 3, 0x20), nameBytes, hpackInteger(valueBytes.length, 7, 0x00), valueBytes);
  }
  return Buffer.concat(parts);
}

/** A HEADERS frame with `fields`, encoded without any validation. */
export function h3Headers(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.from(encodeHeadersFrame(rawFieldSection(fields)));
}

/** A whole DATA frame. */
export function h3Data(body: string | Uint8Array): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'latin1') : Buffer.from(body);
  return Buffer.concat([encodeDataFrameHeader(bytes.length), bytes]);
}

export interface RawH3Request {
  readonly quic: QuicConnection;
  readonly streamId: number;
  /** Requests seen by the server so far, this one excluded. */
  readonly index: number;
  readonly connectionIndex: number;
  write(bytes: Uint8Array, fin?: boolean): void;
  reset(code: number): void;
}

export interface RawH3Behaviour {
  /** Called once the request's first bytes arrive (its HEADERS, and the FIN for a GET). */
  onRequest?(request: RawH3Request): void;
  /** Do not read request streams: their flow-control credit is never given back. */
  withholdCredit?: boolean;
  /** Request stream flow-control window the server grants (bytes). Default: the driver's. */
  requestStreamWindow?: number;
}

export interface RawH3Server {
  port: number;
  readonly connections: QuicConnection[];
  close(): Promise<void>;
}

class RawH3Connection implements QuicConnectionHandler {
  private readonly seen = new Set<number>();

  constructor(
    private readonly quic: QuicConnection,
    private readonly index: number,
    private readonly behaviour: RawH3Behaviour,
    private readonly counter: { requests: number },
  ) {}

  onEstablished(): void {
    const control = this.quic.openStream(false);
    this.quic.write(control, Buffer.concat([encodeStreamType(STREAM_TYPE_CONTROL), encodeSettingsFrame(new Map())]), false);
  }

  onPeerStream(streamId: number, bidirectional: boolean): void {
    // RFC 9000 §4.1: credit comes back only as the application reads; a paused stream is not read.
    if (bidirectional && this.behaviour.withholdCredit === true) {
      this.quic.pauseStream(streamId);
      this.announce(streamId);
    }
  }

  onStreamData(streamId: number, _chunk: Uint8Array, _fin: boolean): void {
    // Client-initiated bidirectional streams only (RFC 9000 §2.1: low bits 00).
    if ((streamId & 3) !== 0) return;
    this.announce(streamId);
  }

  private announce(streamId: number): void {
    if (this.seen.has(streamId)) return;
    this.seen.add(streamId);
    const quic = this.quic;
    this.behaviour.onRequest?.({
      quic,
      streamId,
      index: this.counter.requests++,
      connectionIndex: this.index,
      write: (bytes, fin = false) => {
        if (quic.state !== 'closed' && quic.state !== 'draining') quic.write(streamId, bytes, fin);
      },
      reset: (code) => quic.resetStream(streamId, code),
    });
  }
}

export async function startRawH3Server(behaviour: RawH3Behaviour): Promise<RawH3Server> {
  const certs = await rawH3Certs();
  const config = createQuicServerConfig({
    alpn: ['h3'],
    certChain: certs.leafCert,
    key: certs.leafKey,
    ...(behaviour.requestStreamWindow !== undefined ? { initialMaxStreamDataBidiRemote: behaviour.requestStreamWindow } : {}),
  });
  const connections: QuicConnection[] = [];
  const counter = { requests: 0 };
  const server = await QuicServer.listen({
    config,
    onConnection(quic) {
      quic.setHandler(new RawH3Connection(quic, connections.length, behaviour, counter));
      connections.push(quic);
    },
  });
  return { port: server.address.port, connections, close: () => server.destroy() };
}
