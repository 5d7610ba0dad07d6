import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Canonicalization, parseHeaderFields } from '../src/index.js';
import { BodyHasher, createBodyCanonicalizer, relaxedHeader, canonicalizeHeader } from '../src/api/canonicalization.js';
import { canonicalizationReference as reference } from '@inkan/testbed';

const b = (s: string) => Buffer.from(s, 'latin1');

function canonicalize(c: Canonicalization, chunks: Buffer[]): string {
  const out: Buffer[] = [];
  const canon = createBodyCanonicalizer(c, (bytes) => out.push(Buffer.from(bytes)));
  for (const chunk of chunks) canon.update(chunk);
  canon.finish();
  return Buffer.concat(out).toString('latin1');
}

/** The slow reference body canonicalizations (RFC 6376 §3.4.3, §3.4.4), from the testbed. */
const REFERENCE_BODY: Record<Canonicalization, (body: string) => string> = { simple: reference.simpleBody, relaxed: reference.relaxedBody };

/** Split bytes at the given cut points. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

/** Bodies rich in the bytes canonicalization cares about. */
const bodyArb = fc
  .array(fc.constantFrom('a', 'Z', ' ', '  ', '\t', '\r\n', '\r', '\n', '\r\n\r\n', ' \r\n', '\xe9', '\x00', '.'), { maxLength: 60 })
  .map((parts) => b(parts.join('')));

describe('simple body canonicalization', () => {
  const table: [string, string][] = [
    ['', '\r\n'],
    ['\r\n', '\r\n'],
    ['\r\n\r\n\r\n', '\r\n'],
    ['abc', 'abc\r\n'],
    ['abc\r\n', 'abc\r\n'],
    ['abc\r\n\r\n\r\n', 'abc\r\n'],
    [' abc \r\n\r\n x\r\n\r\n', ' abc \r\n\r\n x\r\n'],
    ['abc\r', 'abc\r\r\n'],
    ['abc\n\n', 'abc\n\n\r\n'],
    ['a\r\n \r\n', 'a\r\n \r\n'],
  ];
  it.each(table)('%j becomes %j', (input, expected) => {
    expect(canonicalize('simple', [b(input)])).toBe(expected);
  });
});

describe('relaxed body canonicalization', () => {
  const table: [string, string][] = [
    ['', ''],
    ['\r\n', ''],
    ['\r\n\r\n', ''],
    [' \r\n\t\r\n', ''],
    ['abc', 'abc\r\n'],
    ['abc  def \t\r\n', 'abc def\r\n'],
    [' \tabc\r\n', ' abc\r\n'],
    ['a\r\n \r\n\r\nb\r\n\r\n', 'a\r\n\r\n\r\nb\r\n'],
    ['a \rb', 'a \rb\r\n'],
    ['a\r', 'a\r\r\n'],
    ['x\t\ty', 'x y\r\n'],
  ];
  it.each(table)('%j becomes %j', (input, expected) => {
    expect(canonicalize('relaxed', [b(input)])).toBe(expected);
  });
});

describe('body canonicalization properties', () => {
  for (const c of ['simple', 'relaxed'] as const) {
    it(`${c}: equals the whole-buffer reference on random bodies`, () => {
      fc.assert(
        fc.property(bodyArb, (body) => {
          expect(canonicalize(c, [body])).toBe(REFERENCE_BODY[c](body.toString('latin1')));
        }),
        { numRuns: 2000 },
      );
    });

    it(`${c}: any split of the same bytes gives the same output and digest`, () => {
      fc.assert(
        fc.property(bodyArb, fc.array(fc.nat(), { maxLength: 12 }), (body, cuts) => {
          const whole = canonicalize(c, [body]);
          const chunks = split(body, cuts);
          expect(canonicalize(c, chunks)).toBe(whole);
          const one = new BodyHasher(c, 'sha256');
          one.update(body);
          const many = new BodyHasher(c, 'sha256');
          for (const chunk of chunks) many.update(chunk);
          expect(many.digest().hash.equals(one.digest().hash)).toBe(true);
        }),
        { numRuns: 2000 },
      );
    });

    it(`${c}: byte-at-a-time equals whole`, () => {
      fc.assert(
        fc.property(bodyArb, (body) => {
          const bytes = [...body].map((x) => Buffer.from([x]));
          expect(canonicalize(c, bytes)).toBe(canonicalize(c, [body]));
        }),
        { numRuns: 500 },
      );
    });
  }

  // Chunks of up to 8 KiB take a byte loop, larger ones native searches: both paths, in
  // any mix, with state carried between them, must agree with the reference.
  it('relaxed: small-chunk and large-chunk paths agree in any mix', () => {
    const bigArb = fc
      .array(fc.tuple(bodyArb, fc.nat({ max: 12_000 }), fc.constantFrom('x', ' ', '\r\n', '\t', 'ab ')), { minLength: 1, maxLength: 4 })
      .map((parts) =>
        Buffer.concat(parts.map(([body, n, filler]) => Buffer.concat([body, b(filler.repeat(Math.ceil(n / filler.length)))]))),
      );
    fc.assert(
      fc.property(bigArb, fc.array(fc.nat(), { maxLength: 8 }), (body, cuts) => {
        expect(canonicalize('relaxed', split(body, cuts))).toBe(reference.relaxedBody(body.toString('latin1')));
      }),
      { numRuns: 300 },
    );
  });

  it('a long run of trailing empty lines split into many chunks', () => {
    const body = b(`text\r\n${'\r\n'.repeat(50_000)}`);
    expect(canonicalize('simple', split(body, [7, 8, 9, 100, 1001, 50_001]))).toBe('text\r\n');
    expect(canonicalize('relaxed', split(body, [5, 6, 99]))).toBe('text\r\n');
    const inner = b(`a${'\r\n'.repeat(20_000)}b`);
    expect(canonicalize('simple', [inner])).toBe(`a${'\r\n'.repeat(20_000)}b\r\n`);
  });
});

describe('length limit (l=)', () => {
  it('hashes only the first l octets of the canonical body and counts the rest', () => {
    const limited = new BodyHasher('simple', 'sha256', 5);
    limited.update(b('Hello world\r\n'));
    const full = new BodyHasher('simple', 'sha256');
    full.update(b('Hello'));
    const r = limited.digest();
    expect(r.canonicalLength).toBe(13);
    expect(r.hashedLength).toBe(5);
    // The digest of the first five octets, not of a canonicalized "Hello".
    expect(r.hash.equals(createHash('sha256').update('Hello').digest())).toBe(true);
    expect(full.digest().canonicalLength).toBe(7);
  });

  it('l=0 signs none of the body', () => {
    const h = new BodyHasher('relaxed', 'sha256', 0);
    h.update(b('anything\r\n'));
    expect(h.digest().hash.toString('base64')).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });
});

describe('header canonicalization', () => {
  it('relaxed: lowercases the name, unfolds, reduces and trims whitespace, also before the colon', () => {
    expect(relaxedHeader(b('SubJect \t:  Hello\r\n \t World  \r\n')).toString('latin1')).toBe('subject:Hello World');
    expect(relaxedHeader(b('X-Empty:   \r\n')).toString('latin1')).toBe('x-empty:');
    expect(relaxedHeader(b('A:b\r\n\tc')).toString('latin1')).toBe('a:b c');
  });

  it('simple: the field as it arrived, without its final CRLF', () => {
    const [field] = parseHeaderFields(b('SubJect :  Hello\r\n \t World  \r\n'));
    expect(canonicalizeHeader(field as never, 'simple').toString('latin1')).toBe('SubJect :  Hello\r\n \t World  ');
  });

  it('relaxed equals the reference on random header fields', () => {
    const name = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,10}$/);
    const valuePart = fc.constantFrom('x', 'Y', ' ', '\t', '  ', '\r\n ', '\r\n\t', ':', '\xfc', '=');
    fc.assert(
      fc.property(name, fc.constantFrom('', ' ', '\t '), fc.array(valuePart, { maxLength: 20 }), (n, ws, parts) => {
        const field = `${n}${ws}:${parts.join('')}\r\n`;
        expect(relaxedHeader(b(field)).toString('latin1')).toBe(reference.relaxedHeader(field.slice(0, -2)));
      }),
      { numRuns: 2000 },
    );
  });
});
