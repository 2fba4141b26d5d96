/**
 * Received (response and trailer) fields are checked from one place, fields.ts, and every
 * protocol applies the same rules (RFC 9110 §5.5, RFC 9113 §8.2.1, RFC 9114 §4.1.2); header
 * records have no prototype, so names such as `constructor` or `__proto__` read back as sent.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MuxpoolError } from '../../src/errors.js';
import { receivedFieldNameProblem, receivedFieldValueProblem } from '../../src/protocol/fields.js';
import { fromH3RequestFields, fromH3ResponseFields } from '../../src/protocol/h3/message.js';

const BAD_NAMES = ['', 'x y', 'x:y', 'x\r\ny', 'x\ny', 'x\0', 'é', 'x"y', 'x\ty'];
const BAD_VALUES = ['a\rb', 'a\nb', 'a\0b', '\r\n', '\0'];

test('fields.ts: names must be tokens (lower-case where asked), values free of CR, LF and NUL', () => {
  for (const name of BAD_NAMES) {
    assert.notEqual(receivedFieldNameProblem(name, false), undefined, JSON.stringify(name));
    assert.notEqual(receivedFieldNameProblem(name, true), undefined, JSON.stringify(name));
  }
  assert.equal(receivedFieldNameProblem('X-Mixed', false), undefined);
  assert.notEqual(receivedFieldNameProblem('X-Mixed', true), undefined);
  assert.equal(receivedFieldNameProblem("x-!#$%&'*+-.^_`|~09az", true), undefined);
  for (const value of BAD_VALUES) assert.notEqual(receivedFieldValueProblem('x', value), undefined, JSON.stringify(value));
  for (const value of ['', 'plain', 'tab\there', 'obs-text \xe9\xff', ' spaced ']) assert.equal(receivedFieldValueProblem('x', value), undefined);
});

function h3Fails(fields: Array<[string, string]>, trailers = false): MuxpoolError {
  try {
    fromH3ResponseFields(fields, 100, trailers);
  } catch (err) {
    assert.ok(err instanceof MuxpoolError);
    return err;
  }
  assert.fail(`accepted ${JSON.stringify(fields)}`);
}

test('HTTP/3: a response or trailer with an invalid name or value is malformed (H3_MESSAGE_ERROR)', () => {
  const cases: Array<[string, string]> = [...BAD_NAMES.map((n): [string, string] => [n, 'v']), ...BAD_VALUES.map((v): [string, string] => ['x', v]), ['Upper', 'v']];
  for (const field of cases) {
    for (const trailers of [false, true]) {
      const err = h3Fails(trailers ? [field] : [[':status', '200'], field], trailers);
      assert.equal(err.code, 'MUXPOOL_ERR_H3_PROTOCOL', JSON.stringify(field));
      assert.equal(err.wireCode, 0x10e, JSON.stringify(field));
      assert.equal(err.origin, 'remote');
    }
  }
  // The server side applies the same rules to requests.
  assert.throws(() => fromH3RequestFields([[':method', 'GET'], [':scheme', 'https'], [':path', '/'], ['x', 'a\nb']]), { wireCode: 0x10e });
  assert.throws(() => fromH3RequestFields([[':method', 'GET'], [':scheme', 'https'], [':path', '/\r\n']]), { wireCode: 0x10e });
});

test('header records of every protocol have no prototype: constructor, __proto__, toString read back as sent', () => {
  const named: Array<[string, string]> = [
    ['constructor', 'foo'],
    ['__proto__', 'bar'],
    ['tostring', 'baz'],
    ['hasownproperty', 'qux'],
  ];
  const h3 = fromH3ResponseFields([[':status', '200'], ...named], 100).headers;
  const h3Trailers = fromH3ResponseFields(named, 100, true).headers;
  const h3Request = fromH3RequestFields([[':method', 'GET'], [':scheme', 'https'], [':path', '/'], ...named]).headers;
  for (const [label, record] of [['h3', h3], ['h3 trailers', h3Trailers], ['h3 request', h3Request]] as const) {
    assert.equal(Object.getPrototypeOf(record), null, label);
    for (const [name, value] of named) assert.equal(record[name], value, `${label}: ${name}`);
    assert.equal(record['toString'], undefined, label);
  }
  // A repeated `constructor` field joins with itself, not with Object's constructor.
  assert.equal(fromH3ResponseFields([[':status', '200'], ['constructor', 'a'], ['constructor', 'b']], 100).headers['constructor'], 'a, b');
});
