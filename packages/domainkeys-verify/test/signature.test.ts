import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryKeyResolver } from '@inkan/dkim-core';
import { parseDomainKeySignature, verifyDomainKeys } from '../src/index.js';
import { baseMessage } from './helpers.js';

const B = 'dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ==';
const GOOD = `a=rsa-sha1; q=dns; c=nofws; s=brisbane; d=example.org;\r\n  h=from:To : subject;\r\n  b=${B.slice(0, 20)}\r\n  ${B.slice(20)}`;

describe('parseDomainKeySignature', () => {
  it('reads every tag', () => {
    const r = parseDomainKeySignature(GOOD);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.signature).toMatchObject({
      algorithm: 'rsa-sha1',
      canonicalization: 'nofws',
      domain: 'example.org',
      selector: 'brisbane',
      query: 'dns',
      signatureB64: B,
      headers: ['from', 'to', 'subject'],
      headersAsWritten: ['from', 'To', 'subject'],
    });
    expect(r.signature.signature.toString('latin1')).toBe('this is not a real signature');
  });

  it('applies the defaults: a=rsa-sha1, c=simple, q=dns, no h=', () => {
    const r = parseDomainKeySignature(`d=Example.ORG; s=sel; b=${B}`);
    expect(r.ok && r.signature).toMatchObject({ algorithm: 'rsa-sha1', canonicalization: 'simple', query: 'dns', domain: 'example.org' });
    expect(r.ok && r.signature.headers).toBeUndefined();
  });

  it('takes an empty c= as simple and an empty h= as no h=, as Mail::DKIM does', () => {
    const r = parseDomainKeySignature(`c=; h=; d=example.org; s=sel; b=${B}`);
    expect(r.ok && r.signature.canonicalization).toBe('simple');
    expect(r.ok && r.signature.headers).toBeUndefined();
  });

  it('ignores unknown tags and upper-case values of known ones', () => {
    const r = parseDomainKeySignature(`a=RSA-SHA1; c=NoFWS; q=DNS; x=whatever; d=example.org; s=sel; b=${B}`);
    expect(r.ok && r.signature.canonicalization).toBe('nofws');
  });

  const bad: [string, string, RegExp][] = [
    ['no d=', `s=sel; b=${B}`, /no d= tag/],
    ['empty d=', `d=; s=sel; b=${B}`, /d= is empty/],
    ['bad d=', `d=exa mple..org; s=sel; b=${B}`, /not a domain name/],
    ['no s=', `d=example.org; b=${B}`, /no s= tag/],
    ['empty s=', `d=example.org; s=; b=${B}`, /s= is empty/],
    ['no b=', 'd=example.org; s=sel', /no b= tag/],
    ['empty b=', 'd=example.org; s=sel; b=', /b= is empty/],
    ['bad b=', 'd=example.org; s=sel; b=!!!', /b= is not valid base64/],
    ['a=rsa-sha256', `a=rsa-sha256; d=example.org; s=sel; b=${B}`, /unsupported algorithm a=rsa-sha256/],
    ['c=relaxed', `c=relaxed; d=example.org; s=sel; b=${B}`, /unsupported canonicalization c=relaxed/],
    ['empty q=', `q=; d=example.org; s=sel; b=${B}`, /unsupported query method q=/],
    ['q=dns/txt', `q=dns/txt; d=example.org; s=sel; b=${B}`, /unsupported query method q=dns\/txt/],
    ['duplicate tag', `d=example.org; d=example.com; s=sel; b=${B}`, /duplicate tag "d="/],
    ['tag without =', `d=example.org; s=sel; nonsense; b=${B}`, /has no "="/],
  ];
  for (const [name, value, reason] of bad) {
    it(`rejects ${name} with a reason`, () => {
      const r = parseDomainKeySignature(value);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatch(reason);
    });
  }

  it('still names d=, s= and b= when it rejects a signature', () => {
    const r = parseDomainKeySignature(`c=bogus; d=Example.org; s=sel; b=${B}`);
    expect(r).toMatchObject({ ok: false, domain: 'example.org', selector: 'sel', signatureB64: B, algorithm: 'rsa-sha1' });
  });
});

describe('fuzzed DomainKey-Signature fields', () => {
  const tagName = fc.constantFrom('a', 'b', 'c', 'd', 'h', 'q', 's', 'x', 'A', '', ' d', 'b b', '1');
  const tagValue = fc.oneof(
    fc.constantFrom('rsa-sha1', 'simple', 'nofws', 'dns', 'example.org', 'sel', B, 'from:to', '', ' ', '\r\n ', '=', ';', ':::'),
    fc.string({ maxLength: 30 }),
    fc.uint8Array({ maxLength: 30 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
  );
  const tagList = fc
    .tuple(
      fc.array(fc.tuple(tagName, fc.constantFrom('=', '', ' = ', '=='), tagValue), { maxLength: 10 }),
      fc.constantFrom(';', '; ', ';\r\n\t'),
    )
    .map(([tags, separator]) => tags.map(([n, eq, v]) => `${n}${eq}${v}`).join(separator));
  const resolver = new MemoryKeyResolver({ 'sel._domainkey.example.org': 'k=rsa; p=' });

  it('parsing never throws', () => {
    fc.assert(
      fc.property(fc.oneof(tagList, fc.string({ maxLength: 200 })), (value) => {
        const r = parseDomainKeySignature(value);
        expect(typeof r.ok).toBe('boolean');
        if (!r.ok) expect(r.error.length).toBeGreaterThan(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('verifying a message that carries one never throws and gives one domainkeys result', async () => {
    await fc.assert(
      fc.asyncProperty(tagList, async (value) => {
        // Header text is bytes: a fuzzed value may hold any octet except a bare line break.
        const field = Buffer.from(`DomainKey-Signature: ${value.replace(/\r\n(?![ \t])|[\r\n]/g, ' ')}\r\n`, 'latin1');
        const results = await verifyDomainKeys(Buffer.concat([field, baseMessage()]), { resolver });
        expect(results).toHaveLength(1);
        expect(results[0]!.method).toBe('domainkeys');
        expect(['permerror', 'fail', 'temperror']).toContain(results[0]!.result);
        if (results[0]!.result !== 'pass') expect(results[0]!.reason).toBeTruthy();
      }),
      { numRuns: 300 },
    );
  });
});
