/**
 * The pure parts of proxy support: proxy URLs, the environment's rules and NO_PROXY matching,
 * the CONNECT reply parser (split at every offset), and the SOCKS5 message encoders.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NoProxyList, proxyFromEnvironment } from '../../src/client/proxy-env.js';
import { proxiedRequest } from '../../src/client/proxy-request.js';
import { prepareRequest } from '../../src/client/prepare.js';
import { parseProxyUrl, proxyAuthorization } from '../../src/connect/proxy-config.js';
import { connectReplyLength, connectRequest, parseConnectReply } from '../../src/connect/proxy-http.js';
import { connectRequest as socksConnect, greeting, ipv6Bytes, replyLength, userPassRequest } from '../../src/connect/proxy-socks.js';
import { MuxpoolError } from '../../src/errors.js';
import { encodeRequestHead } from '../../src/protocol/h1/writer.js';

test('parseProxyUrl: schemes, default ports, percent-decoded credentials, ids without passwords', () => {
  const p = parseProxyUrl('http://us%40er:p%3Ass%2Fw@Proxy.Corp:3128/', 'proxy');
  assert.equal(p.scheme, 'http');
  assert.equal(p.host, 'proxy.corp');
  assert.equal(p.port, 3128);
  assert.equal(p.username, 'us@er');
  assert.equal(p.password, 'p:ss/w');
  assert.match(p.id, /^http:\/\/proxy\.corp:3128;auth=[\w-]{16}$/);
  assert.equal(p.display, 'http://us%40er@proxy.corp:3128');
  assert.equal(proxyAuthorization(p), `Basic ${Buffer.from('us@er:p:ss/w').toString('base64')}`);
  assert.equal(parseProxyUrl('https://p', 'x').port, 443);
  assert.equal(parseProxyUrl('http://p', 'x').port, 80);
  assert.equal(parseProxyUrl('socks5://p', 'x').port, 1080);
  assert.equal(parseProxyUrl('SOCKS5H://[::1]:9050', 'x').host, '::1');
  assert.equal(parseProxyUrl('socks5h://[::1]:9050', 'x').id, 'socks5h://[::1]:9050');
  assert.equal(parseProxyUrl('10.0.0.1:8080', 'x').id, 'http://10.0.0.1:8080', 'no scheme: an HTTP proxy');
  assert.equal(proxyAuthorization(parseProxyUrl('http://p', 'x')), undefined);
  // Same proxy, other account: another id.
  assert.notEqual(parseProxyUrl('http://a:1@p', 'x').id, parseProxyUrl('http://a:2@p', 'x').id);
  assert.throws(() => parseProxyUrl(`socks5://${'u'.repeat(256)}:p@h`, 'x'), /at most 255 bytes/);
  for (const bad of ['ftp://p', 'socks4://p', 'http://', 'http://p/x', 'http://p?q', 'http://p:0', '  ']) {
    assert.throws(() => parseProxyUrl(bad, 'HTTPS_PROXY'), (e: unknown) => e instanceof MuxpoolError && e.code === 'MUXPOOL_ERR_INVALID_ARGUMENT' && e.message.startsWith('HTTPS_PROXY: '), bad);
  }
});

test('NO_PROXY: names match themselves and subdomains, a leading dot changes nothing', () => {
  const list = new NoProxyList('example.com, .corp.test,*.wild.test , Local.Lan.');
  for (const [host, port] of [
    ['example.com', 443],
    ['www.example.com', 80],
    ['a.b.example.com', 1],
    ['corp.test', 443],
    ['x.corp.test', 443],
    ['wild.test', 80],
    ['x.wild.test', 80],
    ['local.lan', 80],
    ['host.local.lan.', 80],
    ['EXAMPLE.COM', 443],
  ] as const) {
    assert.equal(list.matches(host, port), true, host);
  }
  for (const host of ['notexample.com', 'example.com.evil', 'com', 'corp.test.evil', 'xcorp.test']) assert.equal(list.matches(host, 443), false, host);
});

test('NO_PROXY: IP addresses, CIDR ranges (v4 and v6), ports, and *', () => {
  const list = new NoProxyList(['10.0.0.0/8', '192.168.1.7', '::1', 'fd00::/8', '[2001:db8::1]:8443', 'api.test:8080', '172.16.0.1:443']);
  assert.equal(list.matches('10.1.2.3', 80), true);
  assert.equal(list.matches('11.0.0.1', 80), false);
  assert.equal(list.matches('192.168.1.7', 1), true);
  assert.equal(list.matches('192.168.1.8', 1), false);
  assert.equal(list.matches('[::1]', 443), true);
  assert.equal(list.matches('0:0::1', 443), true, 'IPv6 compared in canonical form');
  assert.equal(list.matches('fd12:3456::1', 443), true);
  assert.equal(list.matches('fe80::1', 443), false);
  assert.equal(list.matches('2001:db8::1', 8443), true);
  assert.equal(list.matches('2001:db8::1', 443), false, 'the port must match');
  assert.equal(list.matches('api.test', 8080), true);
  assert.equal(list.matches('v1.api.test', 8080), true);
  assert.equal(list.matches('api.test', 443), false);
  assert.equal(list.matches('172.16.0.1', 443), true);
  assert.equal(list.matches('172.16.0.1', 80), false);
  assert.equal(list.matches('10.example', 80), false, 'a name is not an address');
  assert.equal(new NoProxyList('*').matches('anything.test', 1), true);
  assert.equal(new NoProxyList('a.test, *').matchesAll, true);
  // Unreadable entries are ignored, as curl ignores them.
  const odd = new NoProxyList('10.0.0.0/99, host:notaport, [::1, , ok.test');
  assert.equal(odd.matches('10.0.0.1', 80), false);
  assert.equal(odd.matches('ok.test', 80), true);
  assert.equal(new NoProxyList(undefined).empty, true);
});

test('the environment: either case for the library, curl rules for the CLI, ALL_PROXY as fallback', () => {
  const url = (u: string): URL => new URL(u);
  const lib = proxyFromEnvironment({ HTTP_PROXY: 'http://upper:1', https_proxy: 'http://lower:2', HTTPS_PROXY: 'http://upper:3', NO_PROXY: 'skip.test' }, 'either');
  assert.equal(lib.select(url('http://a.test/'))?.id, 'http://upper:1');
  assert.equal(lib.select(url('https://a.test/'))?.id, 'http://lower:2', 'lower case wins when both are set');
  assert.equal(lib.select(url('https://skip.test/')), undefined);
  const curl = proxyFromEnvironment({ HTTP_PROXY: 'http://upper:1', ALL_PROXY: 'socks5h://all:1080' }, 'curl');
  assert.equal(curl.select(url('http://a.test/'))?.id, 'socks5h://all:1080', 'curl ignores upper-case HTTP_PROXY');
  assert.equal(curl.select(url('https://a.test/'))?.id, 'socks5h://all:1080');
  const none = proxyFromEnvironment({ http_proxy: '' }, 'either');
  assert.equal(none.none, true, 'an empty value is unset');
  const replaced = proxyFromEnvironment({ https_proxy: 'http://p:1', no_proxy: '*' }, 'either', 'only.test');
  assert.equal(replaced.select(url('https://a.test/'))?.id, 'http://p:1', 'noProxy replaces NO_PROXY');
  assert.equal(replaced.select(url('https://only.test:443/')), undefined);
  assert.throws(() => proxyFromEnvironment({ https_proxy: 'gopher://x' }, 'either'), /https_proxy: unsupported proxy scheme gopher/);
});

test('CONNECT: the request, and the reply head found at every split offset', () => {
  assert.equal(connectRequest('[::1]:443', undefined), 'CONNECT [::1]:443 HTTP/1.1\r\nhost: [::1]:443\r\n\r\n');
  assert.equal(connectRequest('a.test:443', 'Basic eA=='), 'CONNECT a.test:443 HTTP/1.1\r\nhost: a.test:443\r\nproxy-authorization: Basic eA==\r\n\r\n');
  const reply = Buffer.from('HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\nVia: a\r\nvia: b\r\n\r\nTUNNEL');
  const headLength = reply.indexOf('TUNNEL');
  for (let split = 0; split <= reply.length; split++) {
    const got = connectReplyLength(reply.subarray(0, split));
    assert.equal(got, split >= headLength ? headLength : -1, `split ${split}`);
  }
  const parsed = parseConnectReply(reply.subarray(0, headLength));
  assert.equal(parsed.status, 200);
  assert.equal(parsed.reason, 'Connection established');
  assert.equal(parsed.headers.get('via'), 'a, b');
  assert.equal(connectReplyLength(Buffer.from('HTTP/1.0 200 OK\n\nrest')), 17, 'bare LF');
  assert.equal(parseConnectReply(Buffer.from('HTTP/1.0 407\r\n\r\n')).reason, '');
  for (const bad of ['HTTP/2 200\r\n\r\n', 'HTTP/1.1 20 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\nno colon\r\n\r\n', 'HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n']) {
    assert.throws(() => parseConnectReply(Buffer.from(bad)), (e: unknown) => e instanceof MuxpoolError && e.code === 'MUXPOOL_ERR_PROXY_TUNNEL', bad);
  }
  assert.throws(() => connectReplyLength(Buffer.from('SSH-2')), /does not start with HTTP/);
  assert.throws(() => connectReplyLength(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n'), Buffer.alloc(100, 0x61)]), 64), /exceeds 64 bytes/);
});

test('SOCKS5 messages: greeting, RFC 1929 request, CONNECT for each address type, reply sizes', () => {
  assert.deepEqual([...greeting(false)], [5, 1, 0]);
  assert.deepEqual([...greeting(true)], [5, 2, 0, 2]);
  assert.deepEqual([...userPassRequest('ab', 'xyz')], [1, 2, 0x61, 0x62, 3, 0x78, 0x79, 0x7a]);
  assert.deepEqual([...socksConnect('127.0.0.1', 443)], [5, 1, 0, 1, 127, 0, 0, 1, 1, 187]);
  assert.deepEqual([...socksConnect('a.b', 80)], [5, 1, 0, 3, 3, 0x61, 0x2e, 0x62, 0, 80]);
  assert.deepEqual([...socksConnect('::1', 8080)], [5, 1, 0, 4, ...new Array<number>(15).fill(0), 1, 0x1f, 0x90]);
  assert.equal(ipv6Bytes('2001:db8::ff00:42:8329').toString('hex'), '20010db8000000000000ff0000428329');
  assert.equal(ipv6Bytes('::ffff:10.0.0.1').toString('hex'), '00000000000000000000ffff0a000001');
  assert.equal(ipv6Bytes('fe80::').toString('hex'), 'fe800000000000000000000000000000');
  const ok4 = Buffer.from([5, 0, 0, 1, 1, 2, 3, 4, 0, 80]);
  for (let split = 0; split < ok4.length; split++) assert.equal(replyLength(ok4.subarray(0, split)), -1, `split ${split}`);
  assert.equal(replyLength(ok4), 10);
  assert.equal(replyLength(Buffer.from([5, 0, 0, 3, 2, 0x61, 0x62, 0, 80, 9])), 9);
  assert.equal(replyLength(Buffer.concat([Buffer.from([5, 0, 0, 4]), Buffer.alloc(18)])), 22);
  assert.equal(replyLength(Buffer.from([5, 5])), 2, 'a failure needs only its code');
  assert.throws(() => socksConnect('x'.repeat(256), 1), /at most 255 bytes/);
});

test('the request on the wire: absolute form and Proxy-Authorization when forwarded, no Proxy-Authorization when tunnelled', () => {
  const forwardProxy = parseProxyUrl('http://u:p@proxy:3128', 'proxy');
  const plain = prepareRequest(new URL('http://origin.test:8080/a?b=1'), 'GET', { authorization: 'Bearer o' }, undefined, undefined);
  const forwarded = proxiedRequest(plain, forwardProxy);
  assert.equal(
    encodeRequestHead(forwarded.head, 'none'),
    `GET http://origin.test:8080/a?b=1 HTTP/1.1\r\nhost: origin.test:8080\r\nauthorization: Bearer o\r\nproxy-authorization: Basic ${Buffer.from('u:p').toString('base64')}\r\n\r\n`,
  );
  assert.equal(plain.head.path, '/a?b=1', 'the caller’s request is left as it was');
  const secure = prepareRequest(new URL('https://origin.test/x'), 'GET', { 'proxy-authorization': 'Basic leak', cookie: 'c=1' }, undefined, undefined);
  const tunnelled = proxiedRequest(secure, forwardProxy);
  assert.equal(encodeRequestHead(tunnelled.head, 'none'), 'GET /x HTTP/1.1\r\nhost: origin.test\r\ncookie: c=1\r\n\r\n');
  const socks = parseProxyUrl('socks5h://u:p@s:1080', 'proxy');
  const viaSocks = proxiedRequest(plain, socks);
  assert.equal(viaSocks, plain, 'through SOCKS an http request goes as it would direct');
});
