/**
 * The file origin store on hostile ground: a shared directory where others plant files and
 * symlinks, store files others can write, huge or absurd files. The store must never write
 * through a planted name, never leave tickets readable or writable by others, and never spend
 * seconds or unbounded memory on a file it reads.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileOriginStore, MAX_STORE_FILE_BYTES, parseOriginStore, type OriginRecord } from '../../src/connect/origin-store.js';
import { MuxpoolError } from '../../src/errors.js';

let dir = '';
let path = '';
const warnings: string[] = [];
const onWarning = (w: Error): void => void warnings.push(w.message);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'muxpool-store-unit-'));
  path = join(dir, 'origins.json');
  warnings.length = 0;
  process.on('warning', onWarning);
});

afterEach(() => {
  process.off('warning', onWarning);
  rmSync(dir, { recursive: true, force: true });
});

const mode = (file: string): number => statSync(file).mode & 0o777;
const HOUR = 3_600_000;

function storeFile(origins: Record<string, unknown>): string {
  return JSON.stringify({ version: 1, origins });
}

/** Warnings are emitted on the next tick. */
async function warned(pattern: RegExp): Promise<void> {
  await sleep(0);
  assert.ok(warnings.some((w) => pattern.test(w)), `a warning matching ${pattern} (got: ${warnings.join(' | ')})`);
}

test('a symlink planted at the old predictable temp name is not followed: its target is untouched', () => {
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious');
  symlinkSync(victim, `${path}.${process.pid}.tmp`);
  const store = new FileOriginStore(path);
  store.update('https://a.example:443', { tcpProtocol: 'h2' });
  store.flush();
  assert.equal(readFileSync(victim, 'utf8'), 'precious');
  assert.ok(lstatSync(`${path}.${process.pid}.tmp`).isSymbolicLink(), 'the planted link is left alone');
  assert.equal(parseOriginStore(readFileSync(path, 'utf8'), Date.now()).get('https://a.example:443')?.tcpProtocol, 'h2');
  assert.equal(mode(path), 0o600);
});

test('a pre-created 0666 temp file at the old name does not make the store world-writable', () => {
  const planted = `${path}.${process.pid}.tmp`;
  writeFileSync(planted, '');
  chmodSync(planted, 0o666);
  const store = new FileOriginStore(path);
  store.update('https://a.example:443', { tlsSession: 'c2VjcmV0' });
  store.flush();
  assert.equal(mode(path), 0o600, 'the store holds tickets: private whatever was planted');
  assert.equal(readFileSync(planted, 'utf8'), '', 'the planted file was not written to');
});

test('temp files are unpredictable, exclusive and cleaned up: a flush leaves only the store', () => {
  const store = new FileOriginStore(path);
  for (let i = 0; i < 3; i++) {
    store.update(`https://a${i}.example:443`, { tcpProtocol: 'h2' });
    store.flush();
  }
  assert.deepEqual(readdirSync(dir), ['origins.json']);
});

test('a store file others can write is made private and its content is not trusted; one they can only read is made private and used', async () => {
  const until = Date.now() + HOUR;
  writeFileSync(path, storeFile({ 'https://a.example:443': { altSvcH3Until: until } }));
  chmodSync(path, 0o666);
  const tampered = new FileOriginStore(path);
  assert.equal(tampered.get('https://a.example:443'), undefined);
  assert.equal(mode(path), 0o600);
  await warned(/writable by others \(mode 666\): made 0600, its content ignored/);

  chmodSync(path, 0o644);
  const readable = new FileOriginStore(path);
  assert.equal(readable.get('https://a.example:443')?.altSvcH3Until, until);
  assert.equal(mode(path), 0o600);
});

test('a store file that belongs to another user is refused', { skip: process.getuid?.() !== 0 && 'needs root to give a file away' }, () => {
  writeFileSync(path, storeFile({}));
  chmodSync(path, 0o600);
  chownSync(path, 4242, 4242);
  assert.throws(
    () => new FileOriginStore(path),
    (err: unknown) => err instanceof MuxpoolError && err.code === 'MUXPOOL_ERR_INVALID_ARGUMENT' && /belongs to another user \(uid 4242\)/.test(err.message),
  );
});

test('a store file over the size limit is not read: ignored with a warning, replaced by the next write', async () => {
  const records: Record<string, unknown> = {};
  const padding = 'A'.repeat(1_000);
  for (let i = 0; i < MAX_STORE_FILE_BYTES / 1_000; i++) records[`https://h${i}.example:443`] = { tcpProtocol: 'h2', tlsSession: padding };
  writeFileSync(path, storeFile(records));
  chmodSync(path, 0o600);
  const size = statSync(path).size;
  assert.ok(size > MAX_STORE_FILE_BYTES);
  const store = new FileOriginStore(path);
  assert.equal(store.get('https://h0.example:443'), undefined);
  await warned(new RegExp(`is ${size} bytes, over the ${MAX_STORE_FILE_BYTES}-byte limit`));
  store.update('https://new.example:443', { tcpProtocol: 'http/1.1' });
  store.flush();
  assert.deepEqual([...parseOriginStore(readFileSync(path, 'utf8'), Date.now()).keys()], ['https://new.example:443']);
});

test('at most 4096 records are loaded: the newest (last in the file)', () => {
  const records: Record<string, unknown> = {};
  for (let i = 0; i < 5_000; i++) records[`https://h${i}.example:443`] = { streamLimit: i };
  writeFileSync(path, storeFile(records), { mode: 0o600 });
  const store = new FileOriginStore(path);
  assert.equal(store.get('https://h903.example:443'), undefined);
  assert.equal(store.get('https://h904.example:443')?.streamLimit, 904);
  assert.equal(store.get('https://h4999.example:443')?.streamLimit, 4_999);
});

test('values are checked on load: absurd timestamps, wrong types and unknown fields are dropped; far advertisements clamped', () => {
  const now = Date.now();
  writeFileSync(
    path,
    storeFile({
      'https://forever-broken.example:443': { brokenUntil: 1e15, brokenBackoffMs: 300_000, tcpProtocol: 'h2' },
      'https://broken.example:443': { brokenUntil: now + 10 * 60_000, brokenBackoffMs: 600_000 },
      'https://huge-backoff.example:443': { brokenUntil: now + 60_000, brokenBackoffMs: 1e15 },
      'https://far-alt.example:443': { altSvcH3Until: now + 1e12, altSvcH3Host: 'alt.example', altSvcH3Port: 8443 },
      'https://bad-port.example:443': { altSvcH3Until: now + HOUR, altSvcH3Port: 70_000, streamLimit: 1.5 },
      'https://bad-host.example:443': { altSvcH3Until: now + HOUR, altSvcH3Host: 'a b\r\n', tcpProtocol: 'h9' },
      'https://types.example:443': { altSvcH3Until: '9999999999999', streamLimit: '4', tlsSession: 'A'.repeat(70_000), quicSession: 42, evil: 'x' },
      'https://nan.example:443': { brokenUntil: null, brokenBackoffMs: -1, altSvcH3Until: Number.MAX_VALUE },
      'https://ok.example:443': { tlsSession: 'dGlja2V0', quicSession: 'cXVpYw==', streamLimit: 100, tcpProtocol: 'http/1.1' },
      'https://array.example:443': [1, 2, 3],
      [`https://${'x'.repeat(3_000)}:443`]: { tcpProtocol: 'h2' },
    }),
    { mode: 0o600 },
  );
  const store = new FileOriginStore(path);
  assert.deepEqual(store.get('https://forever-broken.example:443'), { tcpProtocol: 'h2' }, 'brokenUntil 1e15 dropped, the rest kept');
  assert.deepEqual(store.get('https://broken.example:443'), { brokenUntil: now + 10 * 60_000, brokenBackoffMs: 600_000 });
  assert.equal(store.get('https://huge-backoff.example:443'), undefined);
  const far = store.get('https://far-alt.example:443') as OriginRecord;
  assert.ok((far.altSvcH3Until as number) <= Date.now() + 30 * 24 * HOUR && (far.altSvcH3Until as number) > now + 29 * 24 * HOUR, 'clamped to 30 days');
  assert.equal(far.altSvcH3Host, 'alt.example');
  assert.equal(far.altSvcH3Port, 8443);
  assert.equal(store.get('https://bad-port.example:443'), undefined);
  assert.equal(store.get('https://bad-host.example:443'), undefined);
  assert.equal(store.get('https://types.example:443'), undefined);
  const clamped = store.get('https://nan.example:443');
  assert.deepEqual(Object.keys(clamped ?? {}), ['altSvcH3Until'], 'a null mark and a negative backoff are dropped');
  assert.ok((clamped?.altSvcH3Until as number) <= Date.now() + 30 * 24 * HOUR, 'Number.MAX_VALUE clamped');
  assert.deepEqual(store.get('https://ok.example:443'), { tlsSession: 'dGlja2V0', quicSession: 'cXVpYw==', streamLimit: 100, tcpProtocol: 'http/1.1' });
  assert.equal(store.get('https://array.example:443'), undefined);
  assert.equal(store.get(`https://${'x'.repeat(3_000)}:443`), undefined);
});

test('parseOriginStore: any text yields records or none, never an exception', () => {
  const now = Date.now();
  for (const text of ['', 'null', '[]', '42', '"x"', '{}', '{"version":2,"origins":{}}', '{"version":1,"origins":[]}', '{"version":1,"origins":null}', '{"version":1,"origins":{"__proto__":{"tcpProtocol":"h2"},"constructor":1}}', '{"version":1', '\u0000']) {
    const records = parseOriginStore(text, now);
    assert.ok(records.size <= 1, text);
  }
  const proto = parseOriginStore('{"version":1,"origins":{"__proto__":{"tcpProtocol":"h2"}}}', now);
  assert.deepEqual(proto.get('__proto__'), { tcpProtocol: 'h2' }, 'an own key like any other, no prototype games');
  assert.equal(({} as Record<string, unknown>)['tcpProtocol'], undefined);
});

test('a FIFO planted at the store path does not hang the constructor', () => {
  execFileSync('mkfifo', [path]);
  const store = new FileOriginStore(path);
  assert.equal(store.get('x'), undefined);
});

test('writes triggered by changes happen in the background; flush() writes at once, and a later flush wins over a background write', async () => {
  const store = new FileOriginStore(path);
  store.update('https://a.example:443', { tcpProtocol: 'h2' });
  assert.equal(existsSync(path), false, 'nothing written on the caller\'s turn');
  await sleep(1_300);
  assert.equal(parseOriginStore(readFileSync(path, 'utf8'), Date.now()).get('https://a.example:443')?.tcpProtocol, 'h2', 'written by the debounced background write');
  assert.equal(mode(path), 0o600);

  store.update('https://b.example:443', { tcpProtocol: 'http/1.1' });
  store.flush();
  const written = parseOriginStore(readFileSync(path, 'utf8'), Date.now());
  assert.equal(written.get('https://b.example:443')?.tcpProtocol, 'http/1.1');
  const before = statSync(path).mtimeMs;
  store.flush();
  assert.equal(statSync(path).mtimeMs, before, 'nothing pending: flush() does not rewrite the file');
  assert.deepEqual(readdirSync(dir), ['origins.json']);
});

test('a pool never writes a file over the size limit: the oldest records go, the newest are read back', () => {
  const store = new FileOriginStore(path);
  const ticket = 'A'.repeat(4_096);
  for (let i = 0; i < 2_000; i++) store.update(`https://h${i}.example:443`, { tlsSession: ticket });
  store.flush();
  assert.ok(statSync(path).size <= MAX_STORE_FILE_BYTES, `${statSync(path).size} bytes`);
  const again = new FileOriginStore(path);
  assert.equal(again.get('https://h1999.example:443')?.tlsSession, ticket);
  assert.equal(again.get('https://h0.example:443'), undefined);
});

test('a background write overtaken by flush() does not rename its older snapshot over the newer file', async () => {
  const store = new FileOriginStore(path);
  for (let i = 0; i < 2_000; i++) store.update(`https://h${i}.example:443`, { streamLimit: i });
  // Start the debounced write by hand (its timer would, a second later); it snapshots now and
  // encodes over several turns.
  const background = (store as unknown as { writeInBackground(): Promise<void> }).writeInBackground();
  store.update('https://late.example:443', { tcpProtocol: 'h2' });
  store.flush();
  await background;
  const written = parseOriginStore(readFileSync(path, 'utf8'), Date.now());
  assert.equal(written.get('https://late.example:443')?.tcpProtocol, 'h2', 'the newer records stay');
  assert.equal(written.size, 2_001);
  assert.deepEqual(readdirSync(dir), ['origins.json'], 'the abandoned temp file is removed');
  store.flush();
});
