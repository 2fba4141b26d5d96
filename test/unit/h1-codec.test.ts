/** The pure HTTP/1.1 codec: field validation, the request writer, the response parser. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MuxpoolError } from '../../src/errors.js';
import type { IncomingHeaders } from '../../src/protocol/message.js';
import { normalizeHeaders, validateMethod } from '../../src/protocol/fields.js';
import { type ResponseHead, ResponseParser } from '../../src/protocol/h1/parser.js';
import { type EncodedHead, LAST_CHUNK, chunkHeader, encodeRequestHead, encodeRequestHeadReusing } from '../../src/protocol/h1/writer.js';

type Event = ['head', number, string, boolean, number | undefined] | ['body', string] | ['trailers', string] | ['complete'];

function recorder(): { events: Event[]; parser: ResponseParser } {
  const events: Event[] = [];
  const parser = new ResponseParser(
    {
      onHead: (h: ResponseHead) => {
        assert.equal(Object.getPrototypeOf(h.headers), null, 'header records have no prototype');
        events.push(['head', h.status, JSON.stringify(h.headers), h.keepAlive, h.keepAliveTimeoutMs]);
      },
      onBody: (chunk) => {
        const last = events[events.length - 1];
        if (last?.[0] === 'body') last[1] += chunk.toString('latin1');
        else events.push(['body', chunk.toString('latin1')]);
      },
      onTrailers: (t: IncomingHeaders) => {
        assert.equal(Object.getPrototypeOf(t), null, 'trailer records have no prototype');
        events.push(['trailers', JSON.stringify(t)]);
      },
      onComplete: () => events.push(['complete']),
    },
    { maxHeaderBytes: 1024, maxHeaderCount: 20 },
  );
  return { events, parser };
}

/** Feeds `wire` in pieces cut at `cuts`; returns the events, or the error code. */
function parse(wire: string, method = 'GET', cuts: number[] = [], eof = false): Event[] | string {
  const { events, parser } = recorder();
  parser.start(method);
  const bytes = Buffer.from(wire, 'latin1');
  let from = 0;
  try {
    for (const cut of [...cuts, bytes.length]) {
      if (cut > from) parser.execute(bytes.subarray(from, cut));
      from = Math.max(from, cut);
    }
    if (eof) parser.finish();
  } catch (err) {
    assert.ok(err instanceof MuxpoolError, String(err));
    return err.code;
  }
  return events;
}

const RESPONSES: Array<[string, string, string, boolean]> = [
  ['content-length', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a:  spaced  \r\n\r\nhello', 'GET', false],
  ['chunked + trailers', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\n', 'GET', false],
  ['chunked, no trailers', 'HTTP/1.1 200 OK\r\ntransfer-encoding: ,Chunked \r\n\r\n1\r\nz\r\n0\r\n\r\n', 'GET', false],
  ['1xx then final', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nlink: <x>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok', 'POST', false],
  ['close-delimited', 'HTTP/1.1 200 OK\r\n\r\nuntil eof', 'GET', true],
  ['HEAD ignores content-length', 'HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n', 'HEAD', false],
  ['bare LF line endings', 'HTTP/1.1 200 OK\ncontent-length: 2\n\nok', 'GET', false],
  ['HTTP/1.0 keep-alive with timeout', 'HTTP/1.0 200 OK\r\nconnection: keep-alive\r\nkeep-alive: timeout=5, max=100\r\ncontent-length: 0\r\n\r\n', 'GET', false],
  [
    'chunk sizes with more than 16 leading zeros',
    `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${'0'.repeat(40)}3\r\nabc\r\n${'0'.repeat(20)}\r\n\r\n`,
    'GET',
    false,
  ],
  ['HTTP/1.0 keep-alive, chunked', 'HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', 'GET', false],
  [
    'fields named after Object.prototype members',
    'HTTP/1.1 200 OK\r\nconstructor: foo\r\n__proto__: bar\r\ntoString: baz\r\nhasOwnProperty: 1\r\ncontent-length: 0\r\n\r\n',
    'GET',
    false,
  ],
];

test('every response parses the same whether it arrives whole, byte by byte, or split anywhere', () => {
  for (const [name, wire, method, eof] of RESPONSES) {
    const whole = parse(wire, method, [], eof);
    assert.ok(Array.isArray(whole), `${name}: ${String(whole)}`);
    assert.equal(whole[whole.length - 1]?.[0], 'complete', name);
    const everyByte = Array.from({ length: wire.length }, (_, i) => i);
    assert.deepEqual(parse(wire, method, everyByte, eof), whole, `${name}, byte by byte`);
    for (let cut = 1; cut < wire.length; cut++) assert.deepEqual(parse(wire, method, [cut], eof), whole, `${name}, cut at ${cut}`);
  }
});

test('parsed values: headers, trailers, keep-alive facts', () => {
  const cl = parse(RESPONSES[0]?.[1] as string) as Event[];
  assert.deepEqual(cl[0], ['head', 200, JSON.stringify({ 'content-length': '5', 'x-a': 'spaced' }), true, undefined]);
  assert.deepEqual(cl[1], ['body', 'hello']);
  const chunked = parse(RESPONSES[1]?.[1] as string) as Event[];
  assert.deepEqual(chunked.slice(1), [['body', 'abcde'], ['trailers', JSON.stringify({ 'x-t': '1' })], ['complete']]);
  const interim = parse(RESPONSES[3]?.[1] as string, 'POST') as Event[];
  assert.equal(interim[0]?.[1], 201, '1xx heads are skipped');
  const close = parse(RESPONSES[4]?.[1] as string, 'GET', [], true) as Event[];
  assert.equal(close[0]?.[3], false, 'close-delimited bodies end the connection');
  const http10 = parse(RESPONSES[7]?.[1] as string) as Event[];
  assert.equal(http10[0]?.[3], true);
  assert.equal(http10[0]?.[4], 5000);
  const closing = parse('HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n') as Event[];
  assert.equal(closing[0]?.[3], false);
  const zeros = parse(RESPONSES[8]?.[1] as string) as Event[];
  assert.deepEqual(zeros.slice(1), [['body', 'abc'], ['complete']], 'only the value of a chunk size must fit, not its digit count');
  const http10Chunked = parse(RESPONSES[9]?.[1] as string) as Event[];
  assert.equal(http10Chunked[0]?.[3], false, 'HTTP/1.0 with Transfer-Encoding: close after it (RFC 9112 §6.1), keep-alive or not');
  assert.deepEqual(http10Chunked[1], ['body', 'ok']);
  const both10 = parse('HTTP/1.0 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 0\r\n\r\n') as Event[];
  assert.equal(both10[0]?.[3], false, 'close wins over keep-alive');
  let protoHeaders: IncomingHeaders | undefined;
  const protoSink = new ResponseParser({ onHead: (h) => (protoHeaders = h.headers), onBody: () => {}, onTrailers: () => {}, onComplete: () => {} });
  protoSink.start('GET');
  protoSink.execute(Buffer.from(RESPONSES[10]?.[1] as string, 'latin1'));
  assert.equal(protoHeaders?.['constructor'], 'foo');
  assert.equal(protoHeaders?.['__proto__'], 'bar');
  assert.equal(protoHeaders?.['tostring'], 'baz');
  assert.equal(protoHeaders?.['toString'], undefined);
  assert.equal(protoHeaders?.['hasownproperty'], '1');
  assert.deepEqual(Object.keys(protoHeaders ?? {}), ['constructor', '__proto__', 'tostring', 'hasownproperty', 'content-length']);
  const cookies = parse('HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nvary: a\r\nvary: b\r\ncontent-length: 0\r\n\r\n') as Event[];
  assert.equal(cookies[0]?.[2], JSON.stringify({ 'set-cookie': ['a=1', 'b=2'], vary: 'a, b', 'content-length': '0' }));
});

test('malformed responses are typed errors', () => {
  const cases: Array<[string, string, boolean?]> = [
    ['HTTP/2 200 OK\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 99 OK\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\nbad header\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\nname : v\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\nx: a\r\n folded\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\nx: a\r\n\tfolded\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\n folded-first: a\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx: a\r\n folded\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    // RFC 9112 §6.3: both framings at once is an error, whatever the order, method or status.
    ['HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    // Only chunked is decoded; a final coding other than chunked is refused, not read to EOF.
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nzzz', 'MUXPOOL_ERR_H1_PARSE', true],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, identity\r\n\r\nzzz', 'MUXPOOL_ERR_H1_PARSE', true],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: \r\n\r\nzzz', 'MUXPOOL_ERR_H1_PARSE', true],
    ['HTTP/1.1 200 OK\r\nx: a\0b\r\ncontent-length: 0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\n: empty-name\r\ncontent-length: 0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\nna\x7fme: v\r\ncontent-length: 0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\nna\xe9me: v\r\ncontent-length: 0\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    [`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${'0'.repeat(10)}1${'0'.repeat(13)}\r\n`, 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\nx: a\rb\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 101 Switching Protocols\r\n\r\n', 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n', 'MUXPOOL_ERR_H1_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\ncontent-length: 0x10\r\n\r\n', 'MUXPOOL_ERR_H1_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\naX', 'MUXPOOL_ERR_H1_PARSE'],
    [`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${'f'.repeat(20)}\r\n`, 'MUXPOOL_ERR_H1_PARSE'],
    ['HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nab', 'MUXPOOL_ERR_H1_PARSE'],
    [`HTTP/1.1 200 OK\r\nx: ${'a'.repeat(2000)}`, 'MUXPOOL_ERR_HEADERS_TOO_LARGE'],
    [`HTTP/1.1 200 OK\r\n${'a: 1\r\n'.repeat(21)}\r\n`, 'MUXPOOL_ERR_HEADERS_TOO_LARGE'],
    ['HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort', 'MUXPOOL_ERR_BODY_TRUNCATED', true],
    ['HTTP/1.1 200 OK\r\ncontent', 'MUXPOOL_ERR_H1_PARSE', true],
    ['', 'MUXPOOL_ERR_CONNECTION_CLOSED', true],
  ];
  for (const [wire, code, eof] of cases) assert.equal(parse(wire, 'GET', [], eof === true), code, JSON.stringify(wire.slice(0, 60)));
});

test('a bare CR after the last chunk fails at once, whole or split (found by npm run fuzz)', () => {
  // Whole, the parser used to wait for a trailer section that could never be valid; fed byte by
  // byte, it failed. Both now fail with H1_PARSE.
  const wire = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\r\n';
  assert.equal(parse(wire), 'MUXPOOL_ERR_H1_PARSE');
  for (let cut = 1; cut < wire.length; cut++) assert.equal(parse(wire, 'GET', [cut]), 'MUXPOOL_ERR_H1_PARSE', `cut at ${cut}`);
  assert.equal(parse(wire, 'GET', Array.from({ length: wire.length }, (_, i) => i)), 'MUXPOOL_ERR_H1_PARSE');
  assert.equal(parse('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\rx: 1\r\n\r\n'), 'MUXPOOL_ERR_H1_PARSE');
});

test('a head that never ends is refused at the limit, not buffered forever', () => {
  const { parser } = recorder();
  parser.start('GET');
  parser.execute(Buffer.from('HTTP/1.1 200 OK\r\n'));
  assert.throws(() => {
    for (let i = 0; i < 100; i++) parser.execute(Buffer.from('x-filler: 0123456789\r\n'));
  }, { code: 'MUXPOOL_ERR_HEADERS_TOO_LARGE' });
});

test('writer: request line, host, framing; never two framings', () => {
  const head = {
    method: 'POST',
    path: '/a?b=1',
    authority: 'example.test:8080',
    scheme: 'http' as const,
    headers: ['accept', '*/*', 'content-length', '99', 'transfer-encoding', 'gzip'],
    contentLength: 4,
  };
  assert.equal(encodeRequestHead(head, 'length'), 'POST /a?b=1 HTTP/1.1\r\nhost: example.test:8080\r\naccept: */*\r\ncontent-length: 4\r\n\r\n');
  assert.equal(
    encodeRequestHead({ ...head, contentLength: undefined }, 'chunked'),
    'POST /a?b=1 HTTP/1.1\r\nhost: example.test:8080\r\naccept: */*\r\ntransfer-encoding: chunked\r\n\r\n',
  );
  assert.equal(encodeRequestHead({ ...head, method: 'GET', headers: [], contentLength: null }, 'none'), 'GET /a?b=1 HTTP/1.1\r\nhost: example.test:8080\r\n\r\n');
  assert.throws(() => encodeRequestHead({ ...head, path: '/a b' }, 'none'), { code: 'MUXPOOL_ERR_INVALID_URL' });
  assert.throws(() => encodeRequestHead({ ...head, path: '/a\r\nx: y' }, 'none'), { code: 'MUXPOOL_ERR_INVALID_URL' });
  assert.equal(chunkHeader(255), 'ff\r\n');
  assert.equal(LAST_CHUNK, '0\r\n\r\n');
});

test('fields: names lower-cased and validated, values trimmed, CR/LF/NUL refused', () => {
  assert.deepEqual(normalizeHeaders({ Accept: 'a', 'X-Multi': ['1', '2'], 'X-Num': 3, skipped: undefined }), ['accept', 'a', 'x-multi', '1', 'x-multi', '2', 'x-num', '3']);
  assert.deepEqual(normalizeHeaders([['X-A', '  b  ']]), ['x-a', 'b']);
  assert.deepEqual(normalizeHeaders(new Map([['K', 'v']])), ['k', 'v']);
  for (const bad of [{ 'x-a': 'b\r\nc: d' }, { 'x-a': 'b\nc' }, { 'x-a': 'nul\0' }, { 'bad name': 'v' }, { '': 'v' }, { 'x-é': 'v' }, { 'x-a': 'snow☃' }]) {
    assert.throws(() => normalizeHeaders(bad), { code: 'MUXPOOL_ERR_INVALID_HEADER' }, JSON.stringify(bad));
  }
  validateMethod('PROPFIND');
  for (const bad of ['', 'GE T', 'GET\r\n', 'Ü']) assert.throws(() => validateMethod(bad), { code: 'MUXPOOL_ERR_INVALID_METHOD' });
});

test('interim (1xx) responses are bounded by count as well as bytes: the 17th fails, whole or split', () => {
  const interim = 'HTTP/1.1 103 Early Hints\r\n\r\n';
  const final = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
  assert.ok(Array.isArray(parse(interim.repeat(16) + final)), '16 interim responses are skipped');
  assert.equal(parse(interim.repeat(17) + final), 'MUXPOOL_ERR_HEADERS_TOO_LARGE');
  assert.equal(parse(interim.repeat(17) + final, 'GET', [5, 40, 300]), 'MUXPOOL_ERR_HEADERS_TOO_LARGE');
});

test('a head identical to the last one is answered from the parser cache: same events, own header records, method counts', () => {
  const heads: IncomingHeaders[] = [];
  const events: string[] = [];
  const parser = new ResponseParser({
    onHead: (h) => {
      heads.push(h.headers);
      events.push(`head ${h.status} ${h.statusText} ${JSON.stringify(h.headers)} ${h.keepAlive} ${h.keepAliveTimeoutMs}`);
    },
    onBody: (chunk) => events.push(`body ${chunk.toString('latin1')}`),
    onTrailers: () => events.push('trailers'),
    onComplete: () => events.push('complete'),
  });
  const head = 'HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n';
  const exchange = (method: string, wire: string): string[] => {
    events.length = 0;
    parser.start(method);
    parser.execute(Buffer.from(wire, 'latin1'));
    return [...events];
  };
  const first = exchange('GET', `${head}hello`);
  assert.deepEqual(first.slice(1), ['body hello', 'complete']);
  // What the first receiver does to its record must not reach the next response.
  (heads[0]?.['set-cookie'] as string[]).push('c=3');
  (heads[0] as IncomingHeaders)['x-added'] = '1';
  assert.deepEqual(exchange('GET', `${head}world`), [first[0], 'body world', 'complete']);
  assert.notEqual(heads[1], heads[0]);
  // Nor what a receiver of a record from the cache does.
  (heads[1]?.['set-cookie'] as string[]).push('d=4');
  (heads[1] as IncomingHeaders)['x-added'] = '2';
  assert.deepEqual(exchange('GET', `${head}again`), [first[0], 'body again', 'complete']);
  // The same head answering HEAD announces a body that is not there (RFC 9110 §9.3.2).
  assert.deepEqual(exchange('HEAD', head), [first[0], 'complete']);
  // A different head is parsed afresh, and the body split over two reads still counts down.
  events.length = 0;
  parser.start('GET');
  parser.execute(Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nn', 'latin1'));
  parser.execute(Buffer.from('o', 'latin1'));
  assert.deepEqual(events, ['head 404 Not Found {"content-length":"2"} true undefined', 'body n', 'body o', 'complete']);
  assert.deepEqual(exchange('GET', 'HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno'), [events[0], 'body no', 'complete']);
});

test('every keep-alive response parses the same the second time on the same parser (the head cache changes nothing)', () => {
  for (const [name, wire, method, eof] of RESPONSES) {
    if (eof) continue;
    const once = parse(wire, method);
    assert.ok(Array.isArray(once), name);
    const { events, parser } = recorder();
    for (let i = 0; i < 2; i++) {
      parser.start(method);
      parser.execute(Buffer.from(wire, 'latin1'));
    }
    assert.deepEqual(events, [...once, ...once], name);
  }
});

test('raw fields: names as sent, values trimmed and sliced from the bytes of each head, repeats apart, value Buffers fresh per response', () => {
  const raws: Buffer[][] = [];
  const parser = new ResponseParser({
    onHead: (h: ResponseHead) => raws.push(h.raw.rawFields()),
    onBody: () => {},
    onTrailers: () => {},
    onComplete: () => {},
  });
  const head = 'HTTP/1.1 200 OK\r\nContent-Type:  text/plain \r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Empty:\r\ncontent-length: 2\r\n\r\n';
  const text = (raw: Buffer[]): string[] => raw.map((b) => b.toString('latin1'));
  const expected = ['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'X-Empty', '', 'content-length', '2'];
  // The first head is parsed; the identical second one is answered from the parser's last head,
  // here at another offset of its chunk (after junk the test slices off) and split in two.
  parser.start('GET');
  parser.execute(Buffer.from(`${head}ok`, 'latin1'));
  parser.start('GET');
  const second = Buffer.from(`xxxx${head}ok`, 'latin1').subarray(4);
  parser.execute(second.subarray(0, 20));
  parser.execute(second.subarray(20));
  parser.start('GET');
  parser.execute(Buffer.from(`zz${head}ok`, 'latin1').subarray(2));
  assert.equal(raws.length, 3);
  for (const raw of raws) assert.deepEqual(text(raw), expected);
  // Every response has Buffers of its own: writing into one changes no other.
  (raws[1]?.[1] as Buffer).fill(0x21);
  assert.deepEqual(text(raws[2] as Buffer[]), expected);
  assert.equal(text(raws[0] as Buffer[])[1], 'text/plain');
});

test('a request head equal to the last one reuses its text; any difference, even in a reused field array, encodes afresh', () => {
  const headers = ['accept', '*/*', 'user-agent', 'node'];
  const base = { method: 'GET', path: '/a', authority: 'example.test', scheme: 'https' as const, headers, contentLength: null };
  const variants = [
    base,
    base,
    { ...base, path: '/b' },
    { ...base, method: 'HEAD' },
    { ...base, authority: 'other.test' },
    { ...base, contentLength: 3 },
    { ...base, headers: ['accept', '*/*'] },
    { ...base, headers: ['accept', '*/*', 'user-agent', 'curl'] },
    base,
  ];
  let last: EncodedHead | undefined;
  let reused = 0;
  for (const head of variants) {
    for (const framing of ['none', 'length', 'chunked'] as const) {
      const next = encodeRequestHeadReusing(head, framing, last);
      if (next === last) reused++;
      last = next;
      assert.equal(last.text, encodeRequestHead(head, framing));
    }
  }
  // The caller changes the array it passed before: the next head is not the cached one.
  const before = encodeRequestHeadReusing(base, 'none', last);
  assert.equal(before.text, encodeRequestHead(base, 'none'));
  assert.equal(encodeRequestHeadReusing(base, 'none', before), before, 'the same head again is answered from the last');
  headers[3] = 'changed';
  const after = encodeRequestHeadReusing(base, 'none', before);
  assert.notEqual(after, before);
  assert.match(after.text, /user-agent: changed\r\n/);
  assert.equal(reused, 0, 'no two heads in a row above are the same with the same framing');
});
