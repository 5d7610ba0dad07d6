/**
 * DomainKeys canonicalization (RFC 4870 §3.4.2): the streaming simple and nofws body
 * canonicalizers against the slow reference, whole, in input-derived chunks and byte by
 * byte; the input read as a header block, every field's simple and nofws form compared
 * with the reference.
 */
import { Buffer } from 'node:buffer';
import { parseHeaderFields } from '@inkan/dkim-core';
import { type DomainKeysCanonicalization, canonicalizeDomainKeysHeader, createDomainKeysBodyCanonicalizer } from '@inkan/domainkeys-verify';
import { canonicalizationReference as reference } from '@inkan/testbed';
import { type FuzzTarget, check, chunks, show, splitPoints } from '../target.js';

const BODY_REFERENCE: Record<DomainKeysCanonicalization, (body: string) => string> = {
  simple: reference.domainKeysSimpleBody,
  nofws: reference.domainKeysNofwsBody,
};
const HEADER_REFERENCE: Record<DomainKeysCanonicalization, (field: string) => string> = {
  simple: reference.domainKeysSimpleHeader,
  nofws: reference.domainKeysNofwsHeader,
};

function canonicalize(c: DomainKeysCanonicalization, pieces: readonly Buffer[]): string {
  const out: Buffer[] = [];
  const canonicalizer = createDomainKeysBodyCanonicalizer(c, (bytes) => out.push(Buffer.from(bytes)));
  for (const piece of pieces) canonicalizer.update(piece);
  canonicalizer.finish();
  return Buffer.concat(out).toString('latin1');
}

export const target: FuzzTarget = {
  name: 'domainkeys-canonicalization',
  description: 'DomainKeys simple/nofws body and header canonicalization against a slow reference',
  maxLength: 2048,
  dictionary: [
    ' ',
    '\t',
    '\r\n',
    '\r',
    '\n',
    ' \r\n',
    '\r \n',
    '\r\n\r\n',
    '\r\n ',
    '\r\n\t',
    '\r\r\n',
    'Subject:',
    'From: a@example.org',
    'x',
  ],
  fuzz(data) {
    for (const c of ['simple', 'nofws'] as const) {
      const expected = BODY_REFERENCE[c](data.toString('latin1'));
      const whole = canonicalize(c, [data]);
      check(whole === expected, () => `${c} body, one chunk: ${show(whole)} but the reference gives ${show(expected)}`);
      const sizes = splitPoints(data, data.length, 32);
      const split = canonicalize(c, chunks(data, sizes));
      check(
        split === expected,
        () => `${c} body in chunks ${show(sizes.slice(0, 20))}: ${show(split)} but the reference gives ${show(expected)}`,
      );
      if (data.length <= 512) {
        const single = canonicalize(c, chunks(data, new Array<number>(data.length).fill(1)));
        check(single === expected, () => `${c} body byte by byte: ${show(single)} but the reference gives ${show(expected)}`);
      }
      for (const field of parseHeaderFields(data)) {
        const got = canonicalizeDomainKeysHeader(field, c).toString('latin1');
        const want = HEADER_REFERENCE[c](field.raw.toString('latin1'));
        check(got === want, () => `${c} header ${show(field.raw)}: ${show(got)} but the reference gives ${show(want)}`);
      }
    }
  },
};
