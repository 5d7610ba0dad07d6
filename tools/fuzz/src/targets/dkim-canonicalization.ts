/**
 * DKIM canonicalization (RFC 6376 §3.4): the streaming simple and relaxed body
 * canonicalizers and BodyHasher (l=) against the slow reference, for the input whole,
 * in input-derived chunks and byte by byte; the same body repeated past 8 KiB so that the
 * large-chunk path of the relaxed canonicalizer runs too. The input is also read as a
 * header block, and every field's simple and relaxed form is compared with the reference.
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { type Canonicalization, normalizeLineEndings, parseHeaderFields } from '@inkan/dkim-core';
import { BodyHasher, canonicalizeHeader, createBodyCanonicalizer } from '@inkan/dkim-core/canonicalization';
import { canonicalizationReference as reference } from '@inkan/testbed';
import { type FuzzTarget, check, chunks, show, splitPoints } from '../target.js';

const REFERENCE: Record<Canonicalization, (body: string) => string> = { simple: reference.simpleBody, relaxed: reference.relaxedBody };

function canonicalize(c: Canonicalization, pieces: readonly Buffer[]): string {
  const out: Buffer[] = [];
  // The canonicalizer's output is only valid during the call: copy it.
  const canonicalizer = createBodyCanonicalizer(c, (bytes) => out.push(Buffer.from(bytes)));
  for (const piece of pieces) canonicalizer.update(piece);
  canonicalizer.finish();
  return Buffer.concat(out).toString('latin1');
}

function checkBody(c: Canonicalization, body: Buffer, maxChunk: number, byteByByte: boolean): void {
  const expected = REFERENCE[c](body.toString('latin1'));
  const whole = canonicalize(c, [body]);
  check(whole === expected, () => `${c} body, one chunk: ${show(whole)} but the reference gives ${show(expected)}`);
  const sizes = splitPoints(body, body.length, maxChunk);
  const split = canonicalize(c, chunks(body, sizes));
  check(
    split === expected,
    () => `${c} body in chunks ${show(sizes.slice(0, 20))}: ${show(split)} but the reference gives ${show(expected)}`,
  );
  if (byteByByte) {
    const single = canonicalize(c, chunks(body, new Array<number>(body.length).fill(1)));
    check(single === expected, () => `${c} body byte by byte: ${show(single)} but the reference gives ${show(expected)}`);
  }
  // l=: only the first `limit` canonical octets are hashed, all are counted.
  const limit = sizes.length > 1 ? (sizes[0] as number) * 7 : undefined;
  const hasher = new BodyHasher(c, 'sha256', limit);
  for (const piece of chunks(body, sizes)) hasher.update(piece);
  const result = hasher.digest();
  const canonical = Buffer.from(expected, 'latin1');
  const hashed = limit === undefined ? canonical : canonical.subarray(0, limit);
  check(
    result.canonicalLength === canonical.length,
    () => `${c} BodyHasher counted ${result.canonicalLength} octets, the reference has ${canonical.length}`,
  );
  check(
    result.hashedLength === hashed.length,
    () => `${c} BodyHasher with l=${limit} hashed ${result.hashedLength} octets, expected ${hashed.length}`,
  );
  check(result.hash.equals(createHash('sha256').update(hashed).digest()), () => `${c} BodyHasher with l=${limit}: wrong hash`);
}

function checkHeaders(input: Buffer): void {
  let block = normalizeLineEndings(input);
  if (!block.subarray(-2).equals(Buffer.from('\r\n'))) block = Buffer.concat([block, Buffer.from('\r\n')]);
  for (const field of parseHeaderFields(block)) {
    const text = field.raw.toString('latin1');
    check(text.endsWith('\r\n'), () => `header field ${show(text)} does not end in CRLF`);
    const bare = text.slice(0, -2);
    const simple = canonicalizeHeader(field, 'simple').toString('latin1');
    check(simple === reference.simpleHeader(bare), () => `simple header ${show(simple)} but the reference gives ${show(bare)}`);
    const relaxed = canonicalizeHeader(field, 'relaxed').toString('latin1');
    const colon = bare.indexOf(':');
    if (colon < 0 || !reference.FIELD_NAME.test(bare.slice(0, colon).replace(/[ \t]+$/, ''))) continue;
    const expected = reference.relaxedHeader(bare);
    check(relaxed === expected, () => `relaxed header of ${show(bare)}: ${show(relaxed)} but the reference gives ${show(expected)}`);
  }
}

export const target: FuzzTarget = {
  name: 'dkim-canonicalization',
  description: 'simple/relaxed body and header canonicalization, BodyHasher l=, against a slow reference',
  maxLength: 2048,
  dictionary: [
    ' ',
    '\t',
    '\r\n',
    '\r',
    '\n',
    ' \r\n',
    '\t\r\n',
    '\r\n\r\n',
    '\r\n ',
    '\r\n\t',
    '  \t ',
    'Subject:',
    'From: a@example.org',
    ' :',
    'x',
  ],
  fuzz(data) {
    for (const c of ['simple', 'relaxed'] as const) {
      checkBody(c, data, 64, data.length <= 512);
      if (data.length > 0 && data.length < 9000) {
        // Past 8 KiB a chunk takes the relaxed canonicalizer's large path.
        const big = Buffer.concat(new Array<Buffer>(Math.ceil(9000 / data.length)).fill(data));
        checkBody(c, big, 20_000, false);
      }
    }
    checkHeaders(data);
  },
};
