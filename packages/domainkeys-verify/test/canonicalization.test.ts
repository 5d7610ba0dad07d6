import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DomainKeysCanonicalization, canonicalizeDomainKeysHeader, createDomainKeysBodyCanonicalizer } from '../src/index.js';
import { canonicalizationReference } from '@inkan/testbed';
import { fields, splitAt } from './helpers.js';

/** Run the streaming canonicalizer over a body cut into pieces; what it writes, joined. */
function stream(c: DomainKeysCanonicalization, parts: Buffer[]): Buffer {
  const out: Buffer[] = [];
  const canonicalizer = createDomainKeysBodyCanonicalizer(c, (bytes) => out.push(Buffer.from(bytes)));
  for (const p of parts) canonicalizer.update(p);
  canonicalizer.finish();
  return Buffer.concat(out);
}

const body = (c: DomainKeysCanonicalization, text: string) => stream(c, [Buffer.from(text, 'latin1')]).toString('latin1');

/** RFC 4870 §3.4.2 written out the plain way (the testbed's slow reference), as a second opinion for the streaming code. */
function reference(c: DomainKeysCanonicalization, bodyText: string): string {
  return c === 'nofws' ? canonicalizationReference.domainKeysNofwsBody(bodyText) : canonicalizationReference.domainKeysSimpleBody(bodyText);
}

describe('simple body', () => {
  const cases: [string, string][] = [
    ['', ''],
    ['\r\n', ''],
    ['\r\n\r\n\r\n', ''],
    ['abc\r\n', '\r\nabc\r\n'],
    ['abc\r\n\r\n\r\n', '\r\nabc\r\n'],
    ['\r\n\r\nabc\r\n', '\r\n\r\n\r\nabc\r\n'],
    ['abc', '\r\nabc'],
    ['abc\r\n\r\nx', '\r\nabc\r\n\r\nx'],
    [' \r\n', '\r\n \r\n'],
    ['\r', '\r\n\r'],
    ['\r\n\r', '\r\n\r\n\r'],
    ['a\r\r\n\r\n', '\r\na\r\r\n'],
    ['a\nb\r\n', '\r\na\nb\r\n'],
    ['\n\r\n', '\r\n\n\r\n'],
    ['  two  spaces \t\r\n', '\r\n  two  spaces \t\r\n'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} -> ${JSON.stringify(expected)}`, () => {
      expect(body('simple', input)).toBe(expected);
      expect(reference('simple', input)).toBe(expected);
    });
  }
});

describe('nofws body', () => {
  const cases: [string, string][] = [
    ['', ''],
    [' \t\r\n', ''],
    ['a b\r\n \r\n', '\r\nab\r\n'],
    ['a\rb\nc\r\n', '\r\nabc\r\n'],
    ['abc', '\r\nabc'],
    ['abc \t', '\r\nabc'],
    ['\r \n', ''],
    ['x\r \ny\r\n', '\r\nx\r\ny\r\n'],
    ['\r\r\n', ''],
    ['a\r\r\n\r\nb\r\n', '\r\na\r\n\r\nb\r\n'],
    ['  \r\n\t\r\nword\r\n  \r\n', '\r\n\r\n\r\nword\r\n'],
    ['\r', ''],
    ['\n', ''],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} -> ${JSON.stringify(expected)}`, () => {
      expect(body('nofws', input)).toBe(expected);
      expect(reference('nofws', input)).toBe(expected);
    });
  }
});

describe('headers', () => {
  it('simple keeps the field as received, folding and all', () => {
    const [f] = fields('Subject:  Is dinner\r\n\tready? ');
    expect(canonicalizeDomainKeysHeader(f!, 'simple').toString('latin1')).toBe('Subject:  Is dinner\r\n\tready? \r\n');
  });
  it('simple adds the CRLF a last field without one lacks', () => {
    const f = { name: 'Subject', raw: Buffer.from('Subject: x', 'latin1') };
    expect(canonicalizeDomainKeysHeader(f, 'simple').toString('latin1')).toBe('Subject: x\r\n');
  });
  it('nofws unfolds and drops every SP, HTAB, CR and LF', () => {
    const [f] = fields('Subject :  Is dinner\r\n\tready? ');
    expect(canonicalizeDomainKeysHeader(f!, 'nofws').toString('latin1')).toBe('Subject:Isdinnerready?\r\n');
  });
  it('keeps 8-bit bytes as they are', () => {
    const raw = Buffer.from([0x53, 0x3a, 0x20, 0xe9, 0xff, 0x0d, 0x0a]);
    expect(canonicalizeDomainKeysHeader({ name: 'S', raw }, 'nofws')).toEqual(Buffer.from([0x53, 0x3a, 0xe9, 0xff, 0x0d, 0x0a]));
    expect(canonicalizeDomainKeysHeader({ name: 'S', raw }, 'simple')).toEqual(raw);
  });
});

describe('streaming', () => {
  const piece = fc.constantFrom('a', 'b', ' ', '\t', '\r', '\n', '\r\n', '\r\n\r\n', 'word', '\xe9');
  const bodyText = fc.array(piece, { maxLength: 40 }).map((p) => p.join(''));
  const cuts = fc.array(fc.nat({ max: 200 }), { maxLength: 12 });

  for (const c of ['simple', 'nofws'] as const) {
    it(`${c}: any split of the body gives the same bytes, and the same as the plain reading`, () => {
      fc.assert(
        fc.property(bodyText, cuts, (text, at) => {
          const data = Buffer.from(text, 'latin1');
          const whole = stream(c, [data]);
          expect(stream(c, splitAt(data, at))).toEqual(whole);
          expect(whole.toString('latin1')).toBe(reference(c, text));
        }),
        { numRuns: 500 },
      );
    });

    it(`${c}: byte-by-byte feeding gives the same bytes`, () => {
      const data = Buffer.from(' a \r\n\r\r\n\t\r\nb\rc\nd\r\n\r\n\r\n', 'latin1');
      const single = [...data].map((b) => Buffer.from([b]));
      expect(stream(c, single)).toEqual(stream(c, [data]));
    });
  }

  it('handles long runs of empty lines without building them up in one piece', () => {
    const data = Buffer.from(`${'\r\n'.repeat(20_000)}x\r\n${'\r\n'.repeat(20_000)}`, 'latin1');
    const out = stream('simple', [data]).toString('latin1');
    expect(out).toBe(`${'\r\n'.repeat(20_001)}x\r\n`);
    expect(stream('nofws', splitAt(data, [1, 3, 40_001])).toString('latin1')).toBe(out);
  });
});
