import { describe, expect, it } from 'vitest';
import { checkDomainKeysKey, granularityMatches, parseDomainKeysKeyRecord } from '../src/index.js';

const P =
  'MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKJ2lzDLZ8XlVambQfMXn3LRGKOD5o6lMIgulclWjZwP56LRqdg5ZX15bhc/GsvW8xW/R5Sh1NnkJNyL/cqY1a+sCAwEAAQ==';
const joe = { localPart: 'joe', domain: 'example.org' };

function record(text: string) {
  const r = parseDomainKeysKeyRecord(text);
  if (!r.ok) throw new Error(r.error);
  return r.record;
}

describe('parseDomainKeysKeyRecord', () => {
  it('reads k, p, g, t and n', () => {
    expect(record(`g=jo*; k=rsa; t=y; n=notes here; p=${P}`)).toMatchObject({
      keyType: 'rsa',
      publicKey: P,
      granularity: 'jo*',
      testing: true,
      notes: 'notes here',
    });
  });

  it('defaults g= to "*" and treats an empty g= as "*" too (RFC 4870, unlike DKIM)', () => {
    expect(record(`p=${P}`).granularity).toBe('*');
    expect(record(`g=; p=${P}`).granularity).toBe('*');
  });

  it('rejects what dkim-core rejects in a key record', () => {
    expect(parseDomainKeysKeyRecord('k=rsa')).toMatchObject({ ok: false, error: expect.stringMatching(/no p= tag/) });
    expect(parseDomainKeysKeyRecord('p=@@@')).toMatchObject({ ok: false, error: expect.stringMatching(/base64/) });
    expect(parseDomainKeysKeyRecord(`v=DKIM2; p=${P}`)).toMatchObject({ ok: false });
  });
});

describe('granularityMatches', () => {
  const cases: [string, string, boolean][] = [
    ['*', 'anyone', true],
    ['*', '', true],
    ['joe', 'joe', true],
    ['joe', 'Joe', false],
    ['joe', 'joey', false],
    ['jo*', 'joe', true],
    ['jo*', 'j', false],
    ['*-news', 'daily-news', true],
    ['*-news', 'news', false],
    ['a*z', 'az', true],
    ['a*z', 'abcz', true],
    ['a*z', 'abc', false],
  ];
  for (const [g, local, ok] of cases) {
    it(`g=${g} ${ok ? 'allows' : 'refuses'} "${local}"`, () => {
      expect(granularityMatches(g, local)).toBe(ok);
    });
  }
});

describe('checkDomainKeysKey', () => {
  it('accepts a plain key', () => {
    expect(checkDomainKeysKey(record(`k=rsa; p=${P}`), joe, 'example.org')).toBeUndefined();
  });
  it('leaves the key itself to acceptPublicKey (revoked, k=, size) and s= to acceptKey', () => {
    expect(checkDomainKeysKey(record('k=rsa; p='), joe, 'example.org')).toBeUndefined();
    expect(checkDomainKeysKey(record(`k=ed25519; p=${P}`), joe, 'example.org')).toBeUndefined();
    expect(checkDomainKeysKey(record(`s=http; p=${P}`), joe, 'example.org')).toBeUndefined();
  });
  const refused: [string, string, string, RegExp][] = [
    ['a key for sha256 only', `h=sha256; p=${P}`, 'key-mismatch', /h= does not allow sha1/],
    ['another local part', `g=bob; p=${P}`, 'key-restricted', /granularity/],
  ];
  for (const [name, text, code, reason] of refused) {
    it(`refuses ${name}`, () => {
      expect(checkDomainKeysKey(record(text), joe, 'example.org')).toEqual({
        result: 'permerror',
        code,
        reason: expect.stringMatching(reason),
      });
    });
  }
  it('with t=s, refuses a sender in a subdomain of d=', () => {
    const key = record(`t=s; p=${P}`);
    expect(checkDomainKeysKey(key, joe, 'example.org')).toBeUndefined();
    expect(checkDomainKeysKey(key, { localPart: 'joe', domain: 'mail.example.org' }, 'example.org')).toMatchObject({
      code: 'key-restricted',
      reason: expect.stringMatching(/t=s/),
    });
  });
});
