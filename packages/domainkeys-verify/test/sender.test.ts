import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { determineSender, firstMailbox } from '../src/index.js';
import { fields } from './helpers.js';

describe('firstMailbox', () => {
  const cases: [string, string | undefined][] = [
    [' joe@example.org', 'joe@example.org'],
    [' Joe SixPack <joe@example.org>', 'joe@example.org'],
    [' "SixPack, Joe" <joe@example.org>', 'joe@example.org'],
    [' joe@example.org (Joe SixPack)', 'joe@example.org'],
    [' (comment (nested) <x@y.z>) Joe <joe@example.org>', 'joe@example.org'],
    [' "Joe <fake@evil.test>" <joe@example.org>', 'joe@example.org'],
    [' joe@example.org, suzie@example.net', 'joe@example.org'],
    [' Joe\r\n <joe@example.org>', 'joe@example.org'],
    [' Team: joe@example.org, suzie@example.net;', 'joe@example.org'],
    [' undisclosed-recipients:;', undefined],
    [' <@relay.example.net:joe@example.org>', 'joe@example.org'],
    [' "joe smith"@example.org', '"joe smith"@example.org'],
    [' joe', undefined],
    [' Team: a@example.org;', 'a@example.org'],
    [' Team: "A" <a@example.org>, b@x.org;', 'a@example.org'],
    ['', undefined],
    [' <>', undefined],
  ];
  for (const [value, expected] of cases) {
    it(`${JSON.stringify(value)} -> ${expected}`, () => {
      expect(firstMailbox(value)).toBe(expected);
    });
  }

  it('never throws on any text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (text) => {
        const r = firstMailbox(text);
        expect(r === undefined || typeof r === 'string').toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('determineSender (RFC 4870 3.2)', () => {
  it('takes From when there is no Sender', () => {
    expect(determineSender(fields('To: a@b.example', 'From: Joe <joe@example.org>'))).toEqual({
      address: 'joe@example.org',
      localPart: 'joe',
      domain: 'example.org',
      header: 'from',
    });
  });

  it('prefers Sender over From', () => {
    expect(determineSender(fields('From: alice@example.com', 'Sender: List <list@Lists.Example.ORG>'))).toMatchObject({
      address: 'list@Lists.Example.ORG',
      domain: 'lists.example.org',
      header: 'sender',
    });
  });

  it('falls back to From when Sender holds no address', () => {
    expect(determineSender(fields('Sender: nobody:;', 'From: joe@example.org'))?.header).toBe('from');
  });

  it('uses the last of several in hashing order, as Mail::DKIM does', () => {
    expect(determineSender(fields('From: a@one.example', 'From: b@two.example'))?.address).toBe('b@two.example');
  });

  it('reads a folded From field', () => {
    expect(determineSender(fields('From: "A very long display name"', ' <joe@example.org>'))?.address).toBe('joe@example.org');
  });

  it('has nothing when neither is there', () => {
    expect(determineSender(fields('To: a@b.example', 'Subject: x'))).toBeUndefined();
  });

  it('a From that is no address list ("joe", no "@") gives no sender; a Sender like that falls back to From', () => {
    expect(determineSender(fields('From: joe'))).toBeUndefined();
    expect(determineSender(fields('Sender: joe', 'From: Joe <joe@example.org>'))).toMatchObject({
      address: 'joe@example.org',
      header: 'from',
    });
  });

  it('reads an RFC 6854 group From, and a UTF-8 local part as its octets', () => {
    expect(determineSender(fields('From: Team: a@Example.ORG;'))).toEqual({
      address: 'a@Example.ORG',
      localPart: 'a',
      domain: 'example.org',
      header: 'from',
    });
    const utf8 = Buffer.from('From: J\u00f6rg <j\u00f6rg@example.org>', 'utf8').toString('latin1');
    const sender = determineSender(fields(utf8));
    expect(Buffer.from(sender?.localPart ?? '', 'latin1').toString('utf8')).toBe('j\u00f6rg');
  });
});
