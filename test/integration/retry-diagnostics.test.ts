/**
 * Retry safety as data: which failures are retried, for which methods, how often; and the
 * diagnostics channels that tell what the pool decided.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import http2 from 'node:http2';
import { test } from 'node:test';
import { ConnectionPool, MuxpoolError } from '../../src/index.js';
import { generateCertificates } from '../../src/server/certs.js';
import { respondText, startH2Server } from '../helpers/h2.js';
import { leakCheck } from '../helpers/leaks.js';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } = http2.constants;

async function failure(promise: Promise<unknown>): Promise<MuxpoolError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof MuxpoolError, String(err));
    return err;
  }
  assert.fail('expected the request to fail');
}

test('the retry matrix: not-processed failures are retried for every method up to maxRetries; maybe-processed ones only when idempotent', async () => {
  const leaks = leakCheck();
  const certs = await generateCertificates();
  const seen = new Map<string, number>();
  const server = await startH2Server((stream, headers) => {
    const path = String(headers[':path']);
    const tag = `${String(headers[':method'])} ${path}`;
    seen.set(tag, (seen.get(tag) ?? 0) + 1);
    stream.on('error', () => {});
    if (path === '/refused') stream.close(NGHTTP2_REFUSED_STREAM);
    else if (path === '/reset') stream.close(NGHTTP2_INTERNAL_ERROR);
    else respondText(stream, 'ok');
  }, { certs });
  const methods = ['GET', 'HEAD', 'PUT', 'DELETE', 'POST', 'PATCH'];
  for (const maxRetries of [0, 1, 2]) {
    seen.clear();
    const pool = new ConnectionPool({ tls: { ca: certs.caCert }, maxRetries });
    await (await pool.request(`${server.url}/warm`)).text(); // later requests ride a reused connection
    for (const method of methods) {
      const body = method === 'GET' || method === 'HEAD' || method === 'DELETE' ? undefined : 'payload';
      // REFUSED_STREAM: the server processed nothing, so every method is retried.
      const refused = await failure(pool.request(`${server.url}/refused`, { method, body }));
      assert.equal(refused.code, 'MUXPOOL_ERR_STREAM_REFUSED');
      assert.equal(refused.maybeProcessed, false);
      assert.equal(refused.attempts, maxRetries + 1, `${method} /refused with maxRetries ${maxRetries}`);
      assert.equal(seen.get(`${method} /refused`), maxRetries + 1);
      // A reset with an error code before any response: maybe processed, so only idempotent
      // methods on a reused connection are sent again.
      const reset = await failure(pool.request(`${server.url}/reset`, { method, body }));
      assert.equal(reset.code, 'MUXPOOL_ERR_STREAM_RESET');
      assert.equal(reset.maybeProcessed, true);
      const idempotent = method !== 'POST' && method !== 'PATCH';
      const expected = idempotent ? maxRetries + 1 : 1;
      assert.equal(reset.attempts, expected, `${method} /reset with maxRetries ${maxRetries}`);
      assert.equal(seen.get(`${method} /reset`), expected);
    }
    await pool.close();
    await leaks.check(pool);
  }
  await server.close();
});

test('diagnostics channels: dial start and end, reuse, retry, queue wait, GOAWAY', async () => {
  const leaks = leakCheck();
  const certs = await generateCertificates();
  let refuse = 1;
  const server = await startH2Server((stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] === '/flaky' && refuse-- > 0) {
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (headers[':path'] === '/goaway') {
      respondText(stream, 'bye');
      stream.session?.goaway(0, stream.id);
      return;
    }
    respondText(stream, 'ok');
  }, { certs });
  const events: Array<[string, Record<string, unknown>]> = [];
  const names = ['muxpool:dial:start', 'muxpool:dial:end', 'muxpool:reuse', 'muxpool:retry', 'muxpool:queue:wait', 'muxpool:goaway'];
  const listeners = names.map((name) => {
    const listener = (message: unknown): void => {
      events.push([name, message as Record<string, unknown>]);
    };
    diagnostics.subscribe(name, listener);
    return [name, listener] as const;
  });
  try {
    const pool = new ConnectionPool({ tls: { ca: certs.caCert } });
    await (await pool.request(`${server.url}/first`)).text();
    await (await pool.request(`${server.url}/flaky`)).text();
    await (await pool.request(`${server.url}/goaway`)).text();
    await pool.close();
    await server.close();
    await leaks.check(pool);
  } finally {
    for (const [name, listener] of listeners) diagnostics.unsubscribe(name, listener);
  }
  const kinds = events.map(([name]) => name);
  assert.deepEqual(kinds.slice(0, 3), ['muxpool:dial:start', 'muxpool:dial:end', 'muxpool:queue:wait']);
  const dialEnd = events.find(([name]) => name === 'muxpool:dial:end')?.[1];
  assert.equal(dialEnd?.['protocol'], 'h2');
  assert.equal(typeof dialEnd?.['durationMs'], 'number');
  assert.ok(kinds.includes('muxpool:reuse'));
  const retry = events.find(([name]) => name === 'muxpool:retry')?.[1];
  assert.equal(retry?.['attempt'], 2);
  assert.equal((retry?.['error'] as MuxpoolError | undefined)?.code, 'MUXPOOL_ERR_STREAM_REFUSED');
  const goaway = events.find(([name]) => name === 'muxpool:goaway')?.[1];
  assert.equal(goaway?.['protocol'], 'h2');
});
