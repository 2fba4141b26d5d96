import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAltSvc } from '../../src/protocol/alt-svc.js';

test('Alt-Svc: the common forms', () => {
  assert.deepEqual(parseAltSvc('h3=":443"; ma=86400; persist=1'), {
    clear: false,
    alternatives: [{ protocol: 'h3', host: '', port: 443, maxAgeSeconds: 86_400, persist: true }],
  });
  assert.deepEqual(parseAltSvc('clear'), { clear: true });
  assert.deepEqual(parseAltSvc(' clear '), { clear: true });
  const several = parseAltSvc('h3=":8443"; ma=60, h3-29=":8443", h2="Alt.Example.com:443"; ma=3600');
  assert.deepEqual(
    several?.clear === false ? several.alternatives.map((a) => [a.protocol, a.host, a.port, a.maxAgeSeconds]) : undefined,
    [
      ['h3', '', 8443, 60],
      ['h3-29', '', 8443, 86_400],
      ['h2', 'alt.example.com', 443, 3600],
    ],
  );
});

test('Alt-Svc: quoted values, escapes, percent-encoded ids, IPv6, repeated fields', () => {
  const parsed = parseAltSvc(['w%3D%3D=":80"; x="a,b;c"; ma="120"', 'h3="[::1]:9443"']);
  assert.equal(parsed?.clear, false);
  if (parsed?.clear !== false) return;
  assert.deepEqual(
    parsed.alternatives.map((a) => [a.protocol, a.host, a.port, a.maxAgeSeconds]),
    [
      ['w==', '', 80, 120],
      ['h3', '::1', 9443, 86_400],
    ],
  );
  const escaped = parseAltSvc('h3="\\:443"');
  assert.deepEqual(escaped?.clear === false ? escaped.alternatives[0]?.port : undefined, 443);
});

test('Alt-Svc: malformed alternatives are dropped, the good ones kept; nothing usable gives undefined', () => {
  const mixed = parseAltSvc('h3=443, h3=":99999", h3="host", =":1", h3=":443" junk, h2=":8443"; ma=abc, h3=":444"');
  assert.deepEqual(
    mixed?.clear === false ? mixed.alternatives.map((a) => [a.protocol, a.port, a.maxAgeSeconds]) : undefined,
    [
      ['h2', 8443, 86_400],
      ['h3', 444, 86_400],
    ],
  );
  for (const bad of ['', ',,,', 'h3', 'h3=', 'h3="', 'h3=":443', '"', 'h3=":443";', 'h3=":0"', 'x'.repeat(9000)]) {
    assert.equal(parseAltSvc(bad), undefined, `expected nothing from ${JSON.stringify(bad.slice(0, 20))}`);
  }
  assert.equal(parseAltSvc(undefined), undefined);
});
