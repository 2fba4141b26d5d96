/**
 * `dnsTtlResolver` against a real (tiny) DNS server on loopback: the TTL of the A record reaches
 * the pool's cache, and a name DNS does not know falls back to the system's lookup.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { ConnectionPool, dnsTtlResolver } from '../../src/index.js';
import { ManualClock } from '../../src/core/clock.js';
import { leakCheck } from '../helpers/leaks.js';

const TTL_SECONDS = 42;
let server: dgram.Socket;
const queries: string[] = [];

/** Reads the question's name and type (RFC 1035 §4.1.2); compression never occurs in a question. */
function question(packet: Buffer): { name: string; type: number; end: number } {
  const labels: string[] = [];
  let offset = 12;
  // Bounded: at most 127 labels in a 255-byte name.
  for (let i = 0; i < 128 && offset < packet.length; i++) {
    const length = packet[offset] as number;
    offset++;
    if (length === 0) break;
    labels.push(packet.subarray(offset, offset + length).toString('latin1'));
    offset += length;
  }
  return { name: labels.join('.').toLowerCase(), type: packet.readUInt16BE(offset), end: offset + 4 };
}

/** Answers `svc.test` A with 127.0.0.1 (TTL 42), AAAA with no data, anything else NXDOMAIN. */
function answer(packet: Buffer): Buffer {
  const q = question(packet);
  queries.push(`${q.name}/${q.type}`);
  const known = q.name === 'svc.test';
  const withA = known && q.type === 1;
  const header = Buffer.alloc(12);
  packet.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8180 | (known ? 0 : 3), 2); // response, RD, RA; rcode NXDOMAIN when unknown
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(withA ? 1 : 0, 6);
  const parts = [header, packet.subarray(12, q.end)];
  if (withA) {
    const record = Buffer.alloc(16);
    record.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    record.writeUInt16BE(1, 2); // A
    record.writeUInt16BE(1, 4); // IN
    record.writeUInt32BE(TTL_SECONDS, 6);
    record.writeUInt16BE(4, 10);
    Buffer.from([127, 0, 0, 1]).copy(record, 12);
    parts.push(record);
  }
  return Buffer.concat(parts);
}

before(async () => {
  server = dgram.createSocket('udp4');
  server.on('message', (packet, rinfo) => server.send(answer(packet), rinfo.port, rinfo.address));
  server.bind(0, '127.0.0.1');
  await once(server, 'listening');
  dns.setServers([`127.0.0.1:${(server.address() as AddressInfo).port}`]);
});
after(() => server.close());

test('dnsTtlResolver reports the record TTL; a name DNS does not know falls back to lookup', async () => {
  const found = await dnsTtlResolver('svc.test');
  assert.deepEqual(found, [{ address: '127.0.0.1', family: 4, ttlSeconds: TTL_SECONDS }]);
  const local = await dnsTtlResolver('localhost');
  assert.ok(local.length > 0 && local.every((a) => a.ttlSeconds === undefined), 'localhost comes from /etc/hosts, without a TTL');
});

test('a pool with dnsTtlResolver and dnsCacheMs keeps the answer for its TTL', async () => {
  const leaks = leakCheck();
  const web = http.createServer((_req, res) => {
    res.setHeader('connection', 'close');
    res.end('ok');
  });
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  const port = (web.address() as AddressInfo).port;
  const clock = new ManualClock();
  const pool = new ConnectionPool({ clock, resolver: dnsTtlResolver, dnsCacheMs: 600_000 });
  const asked = (): number => queries.filter((q) => q === 'svc.test/1').length;
  const before = asked();
  for (let i = 0; i < 3; i++) assert.equal(await (await pool.request(`http://svc.test:${port}/`)).text(), 'ok');
  assert.equal(asked() - before, 1);
  clock.advance(TTL_SECONDS * 1000 + 1);
  await (await pool.request(`http://svc.test:${port}/`)).text();
  assert.equal(asked() - before, 2, 'asked again once the TTL ran out');
  await pool.close();
  await new Promise<void>((resolve) => web.close(() => resolve()));
  await leaks.check(pool);
});
