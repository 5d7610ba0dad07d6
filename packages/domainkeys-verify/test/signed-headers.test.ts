import { describe, expect, it } from 'vitest';
import { selectDomainKeysFields } from '../src/index.js';
import { fields } from './helpers.js';

const names = (list: { raw: Buffer }[]) => list.map((f) => f.raw.toString('latin1').trim());

const AFTER = fields(
  'Received: one',
  'From: joe@example.org',
  'To: a@example.net',
  'Received: two',
  'Subject: hello',
  'X-Tag: 1',
  'x-tag: 2',
  'Date: today',
);

describe('selectDomainKeysFields', () => {
  it('takes every field in message order without h=', () => {
    expect(names(selectDomainKeysFields(AFTER, undefined))).toEqual(names(AFTER));
    expect(names(selectDomainKeysFields(AFTER, []))).toEqual(names(AFTER));
  });

  it('takes the h= names in h= order, skipping names that are not there', () => {
    expect(names(selectDomainKeysFields(AFTER, ['subject', 'from', 'cc', 'date']))).toEqual([
      'Subject: hello',
      'From: joe@example.org',
      'Date: today',
    ]);
  });

  it('takes every occurrence of a listed name, grouped at its mention (RFC 4870 3.3 "h")', () => {
    expect(names(selectDomainKeysFields(AFTER, ['from', 'x-tag', 'received']))).toEqual([
      'From: joe@example.org',
      'X-Tag: 1',
      'x-tag: 2',
      'Received: one',
      'Received: two',
    ]);
  });

  it('with a name listed twice, the later mention takes the last occurrence and the first the rest', () => {
    expect(names(selectDomainKeysFields(AFTER, ['received', 'from', 'received']))).toEqual([
      'Received: one',
      'From: joe@example.org',
      'Received: two',
    ]);
    expect(names(selectDomainKeysFields(AFTER, ['received', 'received', 'received', 'from']))).toEqual([
      'Received: one',
      'Received: two',
      'From: joe@example.org',
    ]);
  });

  it('does not treat a line without a colon as a named field', () => {
    const odd = fields('From joe', 'From: joe@example.org');
    expect(names(selectDomainKeysFields(odd, ['from']))).toEqual(['From: joe@example.org']);
    expect(names(selectDomainKeysFields(odd, undefined))).toEqual(['From joe', 'From: joe@example.org']);
  });
});
