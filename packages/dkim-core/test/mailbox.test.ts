import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Mailbox, parseMailboxList } from '../src/index.js';

const box = (address: string, extra: Partial<Mailbox> = {}): Mailbox => {
  const at = address.lastIndexOf('@');
  return { address, localPart: address.slice(0, at), domain: address.slice(at + 1), ...extra };
};

describe('parseMailboxList: RFC 5322 and RFC 6854 forms', () => {
  const cases: [string, string, Mailbox[]][] = [
    ['bare addr-spec', ' joe@example.org', [box('joe@example.org')]],
    ['no space after the colon', 'joe@example.org', [box('joe@example.org')]],
    ['name-addr', ' Joe SixPack <joe@example.org>', [box('joe@example.org', { displayName: 'Joe SixPack' })]],
    ['angle-addr without a name', ' <joe@example.org>', [box('joe@example.org')]],
    ['quoted display name with a comma', ' "SixPack, Joe" <joe@example.org>', [box('joe@example.org', { displayName: 'SixPack, Joe' })]],
    [
      'escaped quotes in a display name',
      ' "Joe \\"the\\" SixPack" <joe@example.org>',
      [box('joe@example.org', { displayName: 'Joe "the" SixPack' })],
    ],
    [
      'an address inside a quoted display name is not the address',
      ' "Joe <fake@evil.test>" <joe@example.org>',
      [box('joe@example.org', { displayName: 'Joe <fake@evil.test>' })],
    ],
    ['comment after an addr-spec', ' joe@example.org (Joe SixPack)', [box('joe@example.org')]],
    [
      'nested comment holding an address',
      ' (comment (nested <x@y.z>) \\) ) Joe <joe@example.org>',
      [box('joe@example.org', { displayName: 'Joe' })],
    ],
    ['comments inside the addr-spec', ' joe(a)@(b)example.org', [box('joe@example.org')]],
    ['obsolete whitespace around dots and @', ' joe . q @ example . org', [box('joe.q@example.org')]],
    ['obs-phrase with a dot', ' Joe Q. Public <jqp@example.org>', [box('jqp@example.org', { displayName: 'Joe Q. Public' })]],
    ['obsolete source route', ' <@relay1.example,@relay2.example:joe@example.org>', [box('joe@example.org')]],
    ['folded value', ' "Joe\r\n SixPack"\r\n <joe@example.org>', [box('joe@example.org', { displayName: 'Joe SixPack' })]],
    ['folded with bare LF (as a milter may see it)', ' Joe\n\t<joe@example.org>', [box('joe@example.org', { displayName: 'Joe' })]],
    ['quoted local part', ' "joe smith"@example.org', [box('"joe smith"@example.org')]],
    ['quoted local part with an escaped quote', ' "joe\\"s"@example.org', [box('"joe\\"s"@example.org')]],
    ['domain literal', ' joe@[192.0.2.1]', [box('joe@[192.0.2.1]')]],
    [
      'several mailboxes',
      ' joe@example.org, Suzie <suzie@example.net>',
      [box('joe@example.org'), box('suzie@example.net', { displayName: 'Suzie' })],
    ],
    ['empty list elements (obs-mbox-list)', ' , joe@example.org,, ', [box('joe@example.org')]],
    ['RFC 6854 group of one', ' Team: a@example.org;', [box('a@example.org', { group: 'Team' })]],
    [
      'RFC 6854 group with a name-addr and an addr-spec',
      ' Team: "A" <a@example.org>, b@x.org;',
      [box('a@example.org', { displayName: 'A', group: 'Team' }), box('b@x.org', { group: 'Team' })],
    ],
    ['empty group', ' undisclosed-recipients:;', []],
    ['empty group with a comment', ' undisclosed-recipients: (none) ;', []],
    ['quoted group name', ' "The Team": a@example.org;', [box('a@example.org', { group: 'The Team' })]],
    ['group, then a mailbox', ' Team: a@example.org;, b@example.net', [box('a@example.org', { group: 'Team' }), box('b@example.net')]],
    ['group without the closing ";"', ' Team: a@example.org', [box('a@example.org', { group: 'Team' })]],
    ['empty value', '', []],
    ['only whitespace and a comment', ' (nobody) ', []],
  ];
  for (const [name, value, mailboxes] of cases) {
    it(`${name}: ${JSON.stringify(value)}`, () => {
      expect(parseMailboxList(Buffer.from(value, 'latin1'))).toEqual({ ok: true, mailboxes });
      expect(parseMailboxList(value)).toEqual({ ok: true, mailboxes });
    });
  }

  it('passes a UTF-8 local part and domain through as their octets (RFC 6532)', () => {
    const raw = Buffer.from(' Jörg <jörg@bücher.example>', 'utf8');
    const r = parseMailboxList(raw);
    expect(r.ok).toBe(true);
    const [m] = r.ok ? r.mailboxes : [];
    expect(Buffer.from(m?.address ?? '', 'latin1')).toEqual(Buffer.from('jörg@bücher.example', 'utf8'));
    expect(Buffer.from(m?.localPart ?? '', 'latin1')).toEqual(Buffer.from('jörg', 'utf8'));
    expect(Buffer.from(m?.displayName ?? '', 'latin1')).toEqual(Buffer.from('Jörg', 'utf8'));
  });

  const garbage: [string, string, RegExp][] = [
    ['a word without an address', ' joe', /expected "@"/],
    ['words without a dot before @', ' John Smith@example.org', /not a local part/],
    ['a stray ";" after a mailbox', ' a@example.org;', /expected ","/],
    ['empty angle brackets', ' <>', /expected a local part/],
    ['an unclosed angle bracket', ' Joe <joe@example.org', /expected ">"/],
    ['an unclosed comment', ' joe@example.org (oops', /unclosed comment/],
    ['an unclosed quoted string', ' "Joe <joe@example.org>', /unclosed quoted string/],
    ['a missing domain', ' joe@', /expected a domain/],
    ['an empty domain label', ' joe@example..org', /expected a domain/],
    ['a control character', ' joe@exa\x00mple.org', /control character/],
    ['a character no address has', ' joe@example.org\\', /unexpected/],
    ['a nested group', ' A: B: c@example.org;;', /expected "@"/],
    ['a character beyond one octet (a string that was decoded, not latin1)', ' jörg@example.org'.replace('ö', '\u4e2d'), /unexpected/],
  ];
  for (const [name, value, error] of garbage) {
    it(`refuses ${name}: ${JSON.stringify(value)}`, () => {
      const r = parseMailboxList(value);
      expect(r).toEqual({ ok: false, error: expect.stringMatching(error) });
      if (!r.ok) expect(r.error).toMatch(/^not an address list: /);
    });
  }

  it('never throws, and what it gives is an addr-spec with one "@" outside quotes and no whitespace', () => {
    const alphabet = fc.constantFrom(...'ab@.<>,;:()"\\[] \t\r\n\x00é'.split(''));
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 60 }).map((a) => a.join('')),
        (text) => {
          const r = parseMailboxList(text);
          if (!r.ok) {
            expect(r.error.length).toBeGreaterThan(0);
            return;
          }
          for (const m of r.mailboxes) {
            expect(m.address).toBe(`${m.localPart}@${m.domain}`);
            expect(m.domain).not.toMatch(/[@\s]/);
            expect(m.localPart.startsWith('"') || !/[\s@]/.test(m.localPart)).toBe(true);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('is linear: 100,000 nested parentheses and a 200 kB list take well under a second', () => {
    const started = performance.now();
    expect(parseMailboxList(`${'('.repeat(100_000)}${')'.repeat(100_000)} a@example.org`)).toMatchObject({
      ok: true,
      mailboxes: [{ address: 'a@example.org' }],
    });
    const many = Array.from({ length: 10_000 }, (_, i) => `u${i}@example.org`).join(', ');
    const r = parseMailboxList(many);
    expect(r.ok && r.mailboxes.length).toBe(10_000);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
