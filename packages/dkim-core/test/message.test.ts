import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type HeaderField, MessageParser, normalizeLineEndings, parseHeaderFields, splitMessage } from '../src/index.js';
import { LineEndingNormalizer } from '../src/api/message.js';

const b = (s: string) => Buffer.from(s, 'latin1');

function parseInChunks(chunks: Buffer[], maxHeaderBytes?: number) {
  const headers: string[] = [];
  const body: Buffer[] = [];
  let eoh = 0;
  const parser = new MessageParser(
    {
      header: (f: HeaderField) => headers.push(f.raw.toString('latin1')),
      endOfHeaders: () => eoh++,
      body: (c: Buffer) => body.push(Buffer.from(c)),
    },
    maxHeaderBytes === undefined ? {} : { maxHeaderBytes },
  );
  for (const c of chunks) parser.write(c);
  parser.end();
  return { headers, body: Buffer.concat(body).toString('latin1'), eoh };
}

describe('message splitting', () => {
  it('keeps raw header fields with folding and line ends', () => {
    const fields = parseHeaderFields(b('A: 1\r\nB : two\r\n  lines\r\nC:\r\n'));
    expect(fields.map((f) => [f.name, f.raw.toString('latin1')])).toEqual([
      ['A', 'A: 1\r\n'],
      ['B', 'B : two\r\n  lines\r\n'],
      ['C', 'C:\r\n'],
    ]);
  });
  it('tolerates no body, no empty line, and an empty header', () => {
    expect(splitMessage(b('A: 1\r\n'))).toMatchObject({ hasBody: false });
    expect(splitMessage(b('A: 1\r\n\r\n')).body.length).toBe(0);
    const empty = splitMessage(b('\r\nbody'));
    expect(empty.headers).toEqual([]);
    expect(empty.body.toString()).toBe('body');
  });
  it('the streaming parser gives the same fields and body under any split', () => {
    const msg = fc
      .tuple(
        fc.array(fc.constantFrom('A: 1\r\n', 'Bb: x\r\n y\r\n', 'C:\r\n'), { maxLength: 5 }),
        fc.boolean(),
        fc.array(fc.constantFrom('x', '\r\n', '\r', '\n', ' '), { maxLength: 20 }),
      )
      .map(([h, sep, body]) => b(h.join('') + (sep ? '\r\n' : '') + body.join('')));
    fc.assert(
      fc.property(msg, fc.array(fc.nat(), { maxLength: 8 }), (m, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (m.length + 1)))].sort((x, y) => x - y);
        const chunks: Buffer[] = [];
        let from = 0;
        for (const p of points) {
          chunks.push(m.subarray(from, p));
          from = p;
        }
        chunks.push(m.subarray(from));
        const whole = splitMessage(m);
        const streamed = parseInChunks(chunks);
        expect(streamed.headers).toEqual(whole.headers.map((f) => f.raw.toString('latin1')));
        expect(streamed.body).toBe(whole.body.toString('latin1'));
        expect(streamed.eoh).toBe(1);
      }),
      { numRuns: 3000 },
    );
  });
  it('refuses a header section over the limit with a typed error', () => {
    expect(() => parseInChunks([b(`X: ${'a'.repeat(100)}\r\n`)], 50)).toThrow(/header section exceeds 50 bytes/);
  });
});

describe('line endings', () => {
  it('turns bare LF into CRLF and leaves CRLF alone, across chunks', () => {
    expect(normalizeLineEndings(b('a\nb\r\nc\n')).toString()).toBe('a\r\nb\r\nc\r\n');
    const n = new LineEndingNormalizer();
    expect(Buffer.concat([n.push(b('a\r')), n.push(b('\nb\n'))]).toString()).toBe('a\r\nb\r\n');
    const same = b('x\r\n');
    expect(normalizeLineEndings(same)).toBe(same);
  });
});
