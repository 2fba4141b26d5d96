/**
 * A generated corpus of header lists for HPACK cross-checks: deterministic (seeded), with the
 * shapes a pool really sends (repeated names and values, growing paths, cookies) and odd ones
 * (empty values, long values, latin1 bytes, names not in the static table).
 */

import { mulberry32 as prng } from '../helpers/prng.js';

export { prng };

const NAMES = ['accept', 'accept-encoding', 'accept-language', 'cache-control', 'content-type', 'cookie', 'user-agent', 'x-request-id', 'x-trace', 'authorization', 'etag', 'if-none-match', 'referer', 'date', 'server', 'vary', 'set-cookie', 'location', 'content-length', 'x-custom-header-with-a-long-name'];
const VALUES = ['', '*/*', 'gzip, deflate', 'gzip, deflate, br', 'no-cache', 'text/html; charset=utf-8', 'application/json', 'muxpool/0.1', 'en-US,en;q=0.9', '0', '12345', 'max-age=3600'];

export function hpackCorpus(count: number, seed: number): string[][] {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const text = (max: number, latin1: boolean): string => {
    const length = Math.floor(random() * max);
    let s = '';
    for (let i = 0; i < length; i++) {
      const r = random();
      s += String.fromCharCode(latin1 && r < 0.05 ? 0x80 + Math.floor(random() * 0x80) : 0x20 + Math.floor(random() * 0x5f));
    }
    return s;
  };
  const token = (): string => {
    const length = 1 + Math.floor(random() * 20);
    let s = '';
    for (let i = 0; i < length; i++) s += 'abcdefghijklmnopqrstuvwxyz0123456789-_'[Math.floor(random() * 38)];
    return s;
  };
  const out: string[][] = [];
  for (let n = 0; n < count; n++) {
    const fields: string[] = [];
    if (random() < 0.7) {
      fields.push(':method', pick(['GET', 'GET', 'POST', 'PUT', 'DELETE']), ':scheme', pick(['https', 'http']), ':authority', pick(['a.example', 'b.example:8443', 'localhost']));
      fields.push(':path', random() < 0.5 ? pick(['/', '/index.html', '/api/v1/items']) : `/items/${Math.floor(random() * 1000)}?q=${token()}`);
    } else {
      fields.push(':status', pick(['200', '204', '302', '404', '500', '503']));
    }
    const extra = Math.floor(random() * 12);
    for (let i = 0; i < extra; i++) {
      const r = random();
      const name = r < 0.7 ? pick(NAMES) : token();
      const value = r < 0.4 ? pick(VALUES) : random() < 0.005 ? text(1200, true) : text(60, true);
      fields.push(name, value);
    }
    out.push(fields);
  }
  return out;
}
