/**
 * The test cases of the QUIC interop runner (github.com/quic-interop/quic-interop-runner), as
 * client cases against one server each, under their names and in their spirit: every pass rule
 * checks bytes by hash and a fact that would be false if the case did not happen (a Retry seen,
 * a session resumed, 0-RTT accepted, a packet dropped, a port changed), never "no error".
 */
import { MuxpoolError } from '../../src/errors.js';
import { HttpVersion } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { issueClientCertificate } from '../helpers/client-certs.js';
import { type UdpProxy, type UdpProxyOptions, startUdpProxy } from '../helpers/udp-proxy.js';
import {
  type Endpoint,
  Unsupported,
  check,
  checkBody,
  fetchChecked,
  poolFor,
  quicOf,
  readWithHook,
  until,
  urlFor,
  withPool,
} from './client.js';
import {
  type Fixture,
  type H2ServerName,
  type H2Target,
  type H2TargetOptions,
  type H3ServerName,
  type H3Target,
  type H3TargetOptions,
  MiB,
  interopClientCa,
} from './targets.js';

const H3 = HttpVersion.Http3Only;
const H2 = HttpVersion.Http2;

export interface CaseContext<T> {
  target: T;
  fixture: Fixture;
  /** Where the client sends: the server itself, or the proxy in front of it. */
  endpoint: Endpoint;
  proxy: UdpProxy | undefined;
}

/** What a passing case reports besides "pass": a line of evidence, and numbers (goodput). */
export interface CaseResult {
  detail: string;
  metrics?: Record<string, number>;
}

export interface H3Case {
  name: string;
  /** What it checks, for the document. */
  summary: string;
  /** Server options (Retry, ChaCha20 only, verbose log, IPv6, its own loss). */
  server?: H3TargetOptions;
  /** A proxy of ours between client and server, with these faults (seeded). */
  proxy?: Omit<UdpProxyOptions, 'target'>;
  /** A reason this case cannot run against a server, before starting anything. */
  unsupported?: (server: H3ServerName) => string | undefined;
  run(ctx: CaseContext<H3Target>): Promise<CaseResult>;
}

const SEED = 0x15;

/** What a proxy that impairs the path counts: the datagrams it dropped, or those it corrupted. */
type Impairment = 'dropped' | 'corrupted';

/**
 * One fresh pool per connection wanted, through a proxy impairing the path: GETs a small file on
 * `profile.handshakes` new handshakes, then checks that the proxy did impair some datagrams.
 * Under 30% loss each way a handshake can need several PTOs, each twice the last (RFC 9002
 * §6.2.1), so each gets 60 s; the slowest is reported.
 */
async function impairedHandshakes(ctx: CaseContext<H3Target>, impairment: Impairment): Promise<CaseResult> {
  const count = ctx.fixture.profile.handshakes;
  let slowestMs = 0;
  for (let i = 0; i < count; i++) {
    await withPool(poolFor(ctx.endpoint, { connectTimeoutMs: 60_000 }), async (pool) => {
      const { res, ms } = await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt');
      check(res.reused === false, `connection ${i} was not a new one`);
      slowestMs = Math.max(slowestMs, ms);
    });
  }
  check((ctx.proxy?.stats[impairment] ?? 0) > 0, `the proxy ${impairment} nothing`);
  const slowest = `slowest ${(slowestMs / 1000).toFixed(1)} s`;
  return { detail: `${count} handshakes (${slowest}); ${ctx.proxy?.stats[impairment]} of ${ctx.proxy?.stats.received} datagrams ${impairment}` };
}

/** Gets a session ticket on one connection, then drops the connection so the next dial resumes. */
async function ticketThenRedial(pool: ReturnType<typeof poolFor>, ctx: CaseContext<H3Target>): Promise<void> {
  await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt');
  const first = await quicOf(pool, ctx.endpoint);
  await until(() => first.session !== undefined, 'a session ticket');
  await pool.invalidate(pool.keyFor(urlFor(ctx.endpoint, '')));
  await until(() => first.state === 'closed', 'the first connection to close');
}


/** The lossy file through a proxy impairing the path; checks that the proxy did impair some datagrams. */
async function impairedTransfer(ctx: CaseContext<H3Target>, impairment: Impairment): Promise<CaseResult> {
  const { ms } = await withPool(poolFor(ctx.endpoint, { connectTimeoutMs: 20_000 }), (pool) => fetchChecked(pool, ctx.endpoint, ctx.fixture, 'lossy.bin'));
  const detail = `${(ctx.fixture.profile.lossySize / MiB).toFixed(0)} MiB in ${ms.toFixed(0)} ms; ${ctx.proxy?.stats[impairment]} of ${ctx.proxy?.stats.received} datagrams ${impairment}`;
  check((ctx.proxy?.stats[impairment] ?? 0) > 0, `the proxy ${impairment} nothing`);
  return { detail };
}

/** MB/s of one download of the goodput file, after a small one has opened the connection. */
function goodput(ctx: CaseContext<unknown>, version: HttpVersion): Promise<CaseResult> {
  return withPool(poolFor(ctx.endpoint), async (pool) => {
    await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt', version);
    const { ms } = await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'goodput.bin', version);
    const size = ctx.fixture.files.get('goodput.bin')?.length ?? 0;
    const mbps = size / 1e6 / (ms / 1000);
    return { detail: `${(size / MiB).toFixed(0)} MiB in ${ms.toFixed(0)} ms: ${mbps.toFixed(1)} MB/s`, metrics: { mbPerS: mbps } };
  });
}

function onlyOn(servers: H3ServerName[], why: string): (server: H3ServerName) => string | undefined {
  return (server) => (servers.includes(server) ? undefined : why);
}

export const H3_CASES: H3Case[] = [
  {
    name: 'handshake',
    summary: 'a new connection, one small file, ALPN h3, nothing resumed',
    run(ctx) {
      return withPool(poolFor(ctx.endpoint), async (pool) => {
        const { res } = await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt');
        const quic = await quicOf(pool, ctx.endpoint);
        check(quic.alpn === 'h3', `ALPN ${quic.alpn}`);
        const stats = await pool.stats();
        check(stats.dialed === 1, `${stats.dialed} connections dialed`);
        check(stats.connections[0]?.resumed === false, 'a first connection cannot be resumed');
        return { detail: `ALPN h3, connection ${res.connectionId}` };
      });
    },
  },
  {
    name: 'transfer',
    summary: 'several files of several MiB at once on one connection, each larger than our 1 MiB stream window (flow control)',
    run(ctx) {
      return withPool(poolFor(ctx.endpoint, { maxPerHost: 1 }), async (pool) => {
        const names = ctx.fixture.profile.transferSizes.map((_, i) => `transfer-${i}.bin`);
        const started = performance.now();
        const results = await Promise.all(names.map((name) => fetchChecked(pool, ctx.endpoint, ctx.fixture, name)));
        const ms = performance.now() - started;
        check(new Set(results.map((r) => r.res.connectionId)).size === 1, 'the files came over more than one connection');
        const total = ctx.fixture.profile.transferSizes.reduce((a, b) => a + b, 0);
        return { detail: `${names.length} files, ${(total / MiB).toFixed(0)} MiB in ${ms.toFixed(0)} ms` };
      });
    },
  },
  {
    name: 'multiplexing',
    summary: 'many small files at once on one connection: more streams complete than the peer allowed at first, so it raised MAX_STREAMS',
    run(ctx) {
      return withPool(poolFor(ctx.endpoint, { maxPerHost: 1, acquireTimeoutMs: 60_000 }), async (pool) => {
        const warm = await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt');
        const quic = await quicOf(pool, ctx.endpoint);
        const initialLimit = quic.diagnostics.peerInitialMaxStreamsBidi;
        check(initialLimit !== undefined && initialLimit > 0, 'the peer granted no bidirectional streams');
        const count = ctx.fixture.profile.streams;
        const results = await Promise.all(
          Array.from({ length: count }, (_, i) => fetchChecked(pool, ctx.endpoint, ctx.fixture, `m-${i}.bin`)),
        );
        check(
          results.every((r) => r.res.connectionId === warm.res.connectionId),
          'some streams went over another connection',
        );
        const completed = results.length + 1;
        check(completed > initialLimit, `only ${completed} streams, not above the initial limit ${initialLimit}`);
        return { detail: `${completed} streams on one connection; initial_max_streams_bidi ${initialLimit}` };
      });
    },
  },
  {
    name: 'retry',
    summary: 'the server answers the first Initial with a Retry; the client retries with the token',
    server: { retry: true, verbose: true },
    run(ctx) {
      return withPool(poolFor(ctx.endpoint), async (pool) => {
        await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt');
        await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'transfer-0.bin');
        const quic = await quicOf(pool, ctx.endpoint);
        const retries = quic.diagnostics.retries;
        check(retries >= 1, 'no Retry packet reached the client');
        const serverSays = ctx.target.log().includes('Sending Retry packet');
        check(ctx.target.name !== 'ngtcp2' || serverSays, 'gtlsserver did not log a Retry');
        return { detail: `${retries} Retry packet(s) received${serverSays ? '; server log: "Sending Retry packet"' : ''}` };
      });
    },
  },
  {
    name: 'resumption',
    summary: 'a second connection resumes the TLS session of the first (quiche reports it resumed)',
    run(ctx) {
      return withPool(poolFor(ctx.endpoint), async (pool) => {
        await ticketThenRedial(pool, ctx);
        const { res } = await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'transfer-0.bin');
        check(res.reused === false, 'the second request did not dial');
        const stats = await pool.stats();
        check(stats.dialed === 2, `${stats.dialed} connections dialed`);
        check(stats.connections[0]?.resumed === true, 'the second handshake was not resumed');
        return { detail: 'second connection resumed' };
      });
    },
  },
  {
    name: 'zerortt',
    summary: 'on a resumed connection the GETs go as 0-RTT and the server accepts them (its own evidence)',
    server: { verbose: true },
    // On bare loopback the server's handshake reply can beat the requests out of the client
    // (0.1 ms RTT), and then they rightly go as 1-RTT: 10 ms each way leaves them the time.
    proxy: { delayMs: 10, seed: SEED },
    run(ctx) {
      return withPool(poolFor(ctx.endpoint, { earlyData: true }), async (pool) => {
        await ticketThenRedial(pool, ctx);
        const servedBefore = ctx.target.served?.length ?? 0;
        const names = ['m-0.bin', 'm-1.bin', 'm-2.bin', 'hello.txt'];
        const results = await Promise.all(names.map((name) => fetchChecked(pool, ctx.endpoint, ctx.fixture, name)));
        check(results.every((r) => r.res.reused === false || r.res.connectionId === results[0]?.res.connectionId), 'more than one new connection');
        const quic = await quicOf(pool, ctx.endpoint);
        check(quic.isResumed, 'the connection was not resumed');
        check(quic.earlyDataUsed, 'the client did not send 0-RTT');
        // A peer's log can trail its packets by a moment.
        let accepted = false as string | false;
        await until(() => (accepted = earlyDataAccepted(ctx.target, servedBefore)) !== false, 'evidence', 1000).catch(() => undefined);
        check(accepted !== false, 'no evidence the server took the GETs as 0-RTT (no 0-RTT packet in its log, no early request in its record)');
        return { detail: `${names.length} GETs sent as 0-RTT; ${accepted}` };
      });
    },
  },
  {
    name: 'http3',
    summary: 'HTTP/3 requests of every size at once: a small file, a large one and 0-byte-padded ones',
    run(ctx) {
      return withPool(poolFor(ctx.endpoint, { maxPerHost: 1 }), async (pool) => {
        const names = ['hello.txt', 'transfer-0.bin', 'm-0.bin', 'm-1.bin'];
        const results = await Promise.all(names.map((name) => fetchChecked(pool, ctx.endpoint, ctx.fixture, name)));
        check(results.every((r) => r.res.protocol === 'h3'), 'a response was not HTTP/3');
        const missing = await pool.request(urlFor(ctx.endpoint, 'no-such-file'), { version: H3 });
        await missing.dump();
        check(missing.status === 404, `a missing file answered ${missing.status}`);
        return { detail: `${names.length} files and a 404 over one connection` };
      });
    },
  },
  {
    name: 'chacha20',
    summary: 'the server offers only TLS_CHACHA20_POLY1305_SHA256',
    server: { chachaOnly: true, verbose: true },
    run(ctx) {
      return withPool(poolFor(ctx.endpoint), async (pool) => {
        await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'transfer-0.bin');
        const negotiated = /Negotiated cipher suite is ([A-Z0-9-]+)/.exec(ctx.target.log())?.[1];
        check(negotiated === 'CHACHA20-POLY1305', `the server log names the cipher ${String(negotiated)}`);
        return { detail: `server log: negotiated ${negotiated}` };
      });
    },
  },
  {
    name: 'keyupdate',
    summary: 'a key update mid-transfer (quiche 0.18 cannot initiate one: the peer must)',
    unsupported: (server) =>
      server === 'caddy'
        ? "neither side initiates: quic-go in Caddy 2.6 updates keys only after 100 000 packets (~130 MB); its packet log of an 8 MiB transfer shows all 7 457 short-header packets in KeyPhase 0 (gtlsclient --key-update against our server is in the reverse matrix)"
        : server === 'ngtcp2'
          ? 'neither side initiates: quiche 0.18 has no key-update call and gtlsserver no key-update option (gtlsclient --key-update against our server is in the reverse matrix)'
          : 'neither side initiates: quiche 0.18 has no key-update call (gtlsclient --key-update against this server is in the reverse matrix)',
    run() {
      return Promise.reject(new Unsupported('no peer initiates a key update'));
    },
  },
  {
    name: 'handshakeloss',
    summary: 'new connections through a proxy dropping 30% of datagrams each way',
    proxy: { lossRate: 0.3, seed: SEED },
    run: (ctx) => impairedHandshakes(ctx, 'dropped'),
  },
  {
    name: 'transferloss',
    summary: 'a transfer through a proxy dropping 5% of datagrams each way',
    proxy: { lossRate: 0.05, seed: SEED },
    run: (ctx) => impairedTransfer(ctx, 'dropped'),
  },
  {
    name: 'transferloss-server',
    summary: 'a transfer while gtlsserver itself drops 10% of its packets each way (-t/-r; its log counts them)',
    server: { serverLoss: 0.1, verbose: true },
    unsupported: onlyOn(['ngtcp2'], 'only gtlsserver drops packets itself (-t/-r)'),
    run(ctx) {
      return withPool(poolFor(ctx.endpoint, { connectTimeoutMs: 20_000 }), async (pool) => {
        const quic = await quicOf(pool, ctx.endpoint);
        const { ms } = await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'lossy.bin');
        // gtlsserver logs each packet it drops on purpose.
        const dropped = (ctx.target.log().match(/Simulated (incoming|outgoing) packet loss/g) ?? []).length;
        check(dropped > 0, 'gtlsserver logged no simulated loss');
        const lost = quic.diagnostics.packets?.lost ?? 0;
        return { detail: `${ms.toFixed(0)} ms; gtlsserver dropped ${dropped} packets, quiche declared ${lost} of ours lost` };
      });
    },
  },
  {
    name: 'handshakecorruption',
    summary: 'new connections through a proxy flipping a bit in 30% of datagrams each way',
    proxy: { corruptRate: 0.3, seed: SEED },
    run: (ctx) => impairedHandshakes(ctx, 'corrupted'),
  },
  {
    name: 'transfercorruption',
    summary: 'a transfer through a proxy flipping a bit in 5% of datagrams each way',
    proxy: { corruptRate: 0.05, seed: SEED },
    run: (ctx) => impairedTransfer(ctx, 'corrupted'),
  },
  {
    name: 'blackhole',
    summary: 'the path drops everything mid-transfer: a typed error within the idle timeout, not a hang',
    proxy: { seed: SEED },
    async run(ctx) {
      const idleMs = 2000;
      const pool = poolFor(ctx.endpoint, { quicIdleTimeoutMs: idleMs, maxRetries: 0 });
      try {
        const name = `transfer-${ctx.fixture.profile.transferSizes.length - 1}.bin`;
        const res = await pool.request(urlFor(ctx.endpoint, name), { version: H3 });
        let cutAt = 0;
        let error: unknown;
        try {
          await readWithHook(res, () => {
            cutAt = performance.now();
            ctx.proxy?.setBlackhole(true);
          });
        } catch (err) {
          error = err;
        }
        const waitedMs = performance.now() - cutAt;
        check(error !== undefined, 'the whole body arrived although the path was cut after its first bytes');
        check(error instanceof MuxpoolError, `not a MuxpoolError: ${String(error)}`);
        check(waitedMs < idleMs + 3000, `the error came ${waitedMs.toFixed(0)} ms after the cut, idle timeout ${idleMs} ms`);
        return { detail: `${error.code} ${waitedMs.toFixed(0)} ms after the cut (idle timeout ${idleMs} ms)` };
      } finally {
        await pool.close();
      }
    },
  },
  {
    name: 'longrtt',
    summary: 'handshake and transfer over a path with a long round trip (proxy delay each way)',
    proxy: { seed: SEED },
    async run(ctx) {
      const delayMs = ctx.fixture.profile.longRttDelayMs;
      // The proxy's delay is set per case from the profile (see runH3Case).
      const pool = poolFor(ctx.endpoint, { connectTimeoutMs: 30_000 });
      try {
        const started = performance.now();
        await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt');
        const firstMs = performance.now() - started;
        // A handshake and a request take at least two round trips.
        check(firstMs >= 4 * delayMs, `the first response came after ${firstMs.toFixed(0)} ms, under two RTTs`);
        const { ms } = await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'lossy.bin');
        return { detail: `RTT ${2 * delayMs} ms; first response ${firstMs.toFixed(0)} ms; ${(ctx.fixture.profile.lossySize / MiB).toFixed(0)} MiB in ${ms.toFixed(0)} ms` };
      } finally {
        await pool.close();
      }
    },
  },
  {
    name: 'rebind-port',
    summary: "the client's source port changes mid-transfer (NAT rebinding): the server validates the new path and the connection goes on",
    proxy: { seed: SEED },
    async run(ctx) {
      // A peer that never follows the new path leaves the transfer to the idle timeout.
      const pool = poolFor(ctx.endpoint, { maxPerHost: 1, quicIdleTimeoutMs: 5000, maxRetries: 0 });
      const proxy = ctx.proxy;
      check(proxy !== undefined, 'no proxy');
      let repliesBefore = 0;
      try {
        const first = await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt');
        const name = 'lossy.bin';
        const res = await pool.request(urlFor(ctx.endpoint, name), { version: H3 });
        const bytes = await readWithHook(res, () => {
          proxy.rebind();
          repliesBefore = proxy.stats.receivedFromTarget;
        });
        checkBody(res, bytes, ctx.fixture, name, H3);
        // A request after the move, on the same connection, answered to the new port.
        const after = await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'transfer-0.bin');
        check(after.res.connectionId === first.res.connectionId, 'a new connection was dialed after the rebinding');
        check(proxy.upstreamPorts.length >= 2, 'the proxy never used a second source port');
        check(proxy.stats.receivedFromTarget > repliesBefore, 'the server never answered the new port');
        return { detail: `source port ${proxy.upstreamPorts[0]} → ${proxy.upstreamPorts[1]}; same connection before and after` };
      } catch (err) {
        if (proxy.stats.rebinds > 0 && proxy.stats.receivedFromTarget === repliesBefore && proxy.stats.repliesToRetired > 0) {
          throw new Unsupported(
            `the server never answered the new port: it kept sending to the old one (${proxy.stats.repliesToRetired} datagrams to the retired port, none to the new) until our idle timeout (${describeError(err)}); the client cannot change that`,
          );
        }
        throw err;
      } finally {
        await pool.close();
      }
    },
  },
  {
    name: 'ipv6',
    summary: 'the same over ::1',
    server: { ipv6: true },
    run(ctx) {
      return withPool(poolFor(ctx.endpoint), async (pool) => {
        await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'transfer-0.bin');
        const quic = await quicOf(pool, ctx.endpoint);
        check(quic.remoteAddress.host === '::1', `the connection went to ${quic.remoteAddress.host}`);
        return { detail: `connected to [::1]:${quic.remoteAddress.port}` };
      });
    },
  },
  {
    name: 'goodput',
    summary: 'MB/s of one large download (reported, not asserted)',
    run: (ctx) => goodput(ctx, H3),
  },
  {
    name: 'clientcert',
    summary:
      'the server requires a client certificate from a CA of the run: with one it issued a file downloads over QUIC; without one, or with one from another CA, the handshake is refused (TLS_CLIENT_CERT)',
    server: { clientCert: true },
    run: clientCertificate,
  },
];

/**
 * Mutual TLS over QUIC (RFC 9001 §4.4: the client authenticates in the TLS handshake, as in TLS
 * 1.3 over TCP). The server trusts only the run's client CA. A pass needs all three: the
 * certificate it issued gets a file byte-exact over HTTP/3, and no certificate, or one from a CA
 * the server does not trust, is refused with the server's alert, typed — so the server really
 * required and verified it.
 */
async function clientCertificate(ctx: CaseContext<H3Target>): Promise<CaseResult> {
  const client = await issueClientCertificate(await interopClientCa(), 'muxpool interop client');
  const servedBefore = ctx.target.served?.length ?? 0;
  const name = 'transfer-0.bin';
  const tls = { ca: ctx.endpoint.caCert, cert: client.cert, key: client.key };
  const fetched = await withPool(poolFor(ctx.endpoint, { tls }), async (pool) => {
    const { res } = await fetchChecked(pool, ctx.endpoint, ctx.fixture, name);
    const quic = await quicOf(pool, ctx.endpoint);
    check(quic.alpn === 'h3', `ALPN ${quic.alpn}`);
    return res;
  });
  // Our server names the certificate each request came with; the peers do not tell (Caddy 2.6
  // gives HTTP/3 handlers no TLS state: caddyserver/caddy#5078), so for them the refusals are
  // the evidence.
  const seen = ctx.target.served?.slice(servedBefore).find((s) => s.path === name)?.clientSubject;
  check(ctx.target.served === undefined || seen === client.subject, `our server saw the client certificate ${String(seen)}, not ${client.subject}`);

  const stranger = await generateCertificates({ caName: 'a CA no interop server trusts' });
  const impostor = await issueClientCertificate(stranger, 'impostor');
  const refusals: string[] = [];
  for (const [what, refusedTls] of [
    ['no certificate', { ca: ctx.endpoint.caCert }],
    ['a certificate from another CA', { ca: ctx.endpoint.caCert, cert: impostor.cert, key: impostor.key }],
  ] as const) {
    const error = await withPool(poolFor(ctx.endpoint, { tls: refusedTls }), (pool) =>
      pool.request(urlFor(ctx.endpoint, 'hello.txt'), { version: H3 }).then(
        async (res) => {
          await res.dump();
          return undefined;
        },
        (err: unknown) => err,
      ),
    );
    check(error !== undefined, `with ${what} the server answered`);
    check(error instanceof MuxpoolError, `with ${what}: not a MuxpoolError: ${String(error)}`);
    check(error.code === 'MUXPOOL_ERR_TLS_CLIENT_CERT', `with ${what}: ${error.code}, not MUXPOOL_ERR_TLS_CLIENT_CERT (${error.message})`);
    check(error.maybeProcessed === false, `with ${what}: the refused request may have been processed`);
    // A refusal is final: retrying would only be refused again.
    check(error.attempts === 1, `with ${what}: ${error.attempts} attempts`);
    refusals.push(what);
  }
  const after = ctx.target.served?.length;
  check(after === undefined || after === servedBefore + 1, `our server served ${String(after === undefined ? 0 : after - servedBefore)} requests, not the 1 with the certificate`);
  const saw = seen === undefined ? '' : `, the server saw ${seen}`;
  return { detail: `${name} over QUIC (${fetched.protocol}) with ${client.subject}${saw}; ${refusals.join(' and ')} refused: MUXPOOL_ERR_TLS_CLIENT_CERT` };
}

function describeError(err: unknown): string {
  return err instanceof MuxpoolError ? err.code : String(err);
}

/** Whether the server took the early data: our server says so per request, the peers' logs show the 0-RTT packets processed. */
function earlyDataAccepted(target: H3Target, servedFrom: number): string | false {
  if (target.served !== undefined) {
    const early = target.served.slice(servedFrom).filter((s) => s.earlyData).length;
    return early > 0 ? `the server handled ${early} of them as early data` : false;
  }
  // The first connection had no ticket, so every 0-RTT packet in the log is from the second.
  const log = target.log();
  if (target.name === 'ngtcp2') {
    // ngtcp2 logs each decrypted packet with its type.
    const count = (log.match(/pkt rx pkn=\d+ [^\n]*type=0RTT/g) ?? []).length;
    return count > 0 ? `gtlsserver decrypted ${count} 0-RTT packet(s)` : false;
  }
  const count = (log.match(/Reading packet \d+ \(\d+ bytes\) for connection [0-9a-f]+, 0-RTT/g) ?? []).length;
  return count > 0 ? `quic-go read ${count} 0-RTT packet(s)` : false;
}

// ---------------------------------------------------------------------------------------------
// HTTP/2

export interface H2Case {
  name: string;
  summary: string;
  server?: H2TargetOptions;
  unsupported?: (server: H2ServerName) => string | undefined;
  run(ctx: CaseContext<H2Target>): Promise<CaseResult>;
}

export const H2_CASES: H2Case[] = [
  {
    name: 'handshake',
    summary: 'TLS with ALPN h2, one small file',
    run(ctx) {
      return withPool(poolFor(ctx.endpoint), async (pool) => {
        await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt', H2);
        const stats = await pool.stats();
        check(stats.http2Connections === 1 && stats.dialed === 1, 'not one HTTP/2 connection');
        return { detail: 'ALPN h2' };
      });
    },
  },
  {
    name: 'transfer',
    summary: 'several files of several MiB at once on one connection (beyond the 64 KiB initial windows)',
    run(ctx) {
      return withPool(poolFor(ctx.endpoint, { maxPerHost: 1 }), async (pool) => {
        const names = ctx.fixture.profile.transferSizes.map((_, i) => `transfer-${i}.bin`);
        const started = performance.now();
        const results = await Promise.all(names.map((name) => fetchChecked(pool, ctx.endpoint, ctx.fixture, name, H2)));
        check(new Set(results.map((r) => r.res.connectionId)).size === 1, 'more than one connection');
        return { detail: `${names.length} files in ${(performance.now() - started).toFixed(0)} ms` };
      });
    },
  },
  {
    name: 'multiplexing',
    summary: 'many small files at once on one connection, more than SETTINGS_MAX_CONCURRENT_STREAMS allows at a time',
    run(ctx) {
      return withPool(poolFor(ctx.endpoint, { maxPerHost: 1, acquireTimeoutMs: 60_000 }), async (pool) => {
        const count = ctx.fixture.profile.streams;
        const results = await Promise.all(Array.from({ length: count }, (_, i) => fetchChecked(pool, ctx.endpoint, ctx.fixture, `m-${i}.bin`, H2)));
        check(new Set(results.map((r) => r.res.connectionId)).size === 1, 'more than one connection');
        const stats = await pool.stats();
        check(stats.dialed === 1, `${stats.dialed} connections dialed`);
        return { detail: `${count} streams on one connection` };
      });
    },
  },
  {
    name: 'resumption',
    summary: 'a second connection resumes the TLS session of the first',
    run(ctx) {
      return withPool(poolFor(ctx.endpoint), async (pool) => {
        await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt', H2);
        // nghttpd (OpenSSL) now and then answers a fresh ticket with a full handshake (our
        // client offered it: see docs/interop.md); a client that never resumes fails every
        // attempt. Six, not three: under a loaded `npm test` three misses in a row were seen
        // (at one in five per attempt that is 1 in 125; six is 1 in 15 625).
        let attempts = 0;
        let resumed = false;
        while (!resumed && attempts < 6) {
          attempts++;
          // TLS 1.3 tickets follow the handshake; give them a moment to arrive. (nghttpd ignores
          // about one ticket in five whatever the wait: docs/interop.md.)
          await new Promise((resolve) => setTimeout(resolve, 100));
          await pool.invalidate(pool.keyFor(urlFor(ctx.endpoint, '')));
          await until(async () => (await pool.stats()).totalConnections === 0, 'the previous connection to close');
          await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'hello.txt', H2);
          const stats = await pool.stats();
          check(stats.dialed === attempts + 1, `${stats.dialed} connections dialed`);
          resumed = stats.connections[0]?.resumed === true;
        }
        check(resumed, `no later connection was resumed (${attempts} tried)`);
        return { detail: attempts === 1 ? 'second connection resumed' : `resumed on attempt ${attempts}` };
      });
    },
  },
  {
    name: 'chacha20',
    summary: 'the server offers only TLS_CHACHA20_POLY1305_SHA256',
    server: { chachaOnly: true },
    run(ctx) {
      return withPool(poolFor(ctx.endpoint), async (pool) => {
        await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'transfer-0.bin', H2);
        const cipher = ctx.target.ciphers?.[0];
        check(cipher === 'TLS_CHACHA20_POLY1305_SHA256', `the server agreed on ${String(cipher)}`);
        return { detail: `server: ${cipher}` };
      });
    },
  },
  {
    name: 'ipv6',
    summary: 'the same over ::1',
    server: { ipv6: true },
    run(ctx) {
      return withPool(poolFor(ctx.endpoint), async (pool) => {
        await fetchChecked(pool, ctx.endpoint, ctx.fixture, 'transfer-0.bin', H2);
        return { detail: `over [::1]:${ctx.endpoint.port}` };
      });
    },
  },
  {
    name: 'goodput',
    summary: 'MB/s of one large download (reported, not asserted)',
    run: (ctx) => goodput(ctx, H2),
  },
];

export { startUdpProxy };
