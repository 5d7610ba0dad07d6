import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { appendFolded, formatFoldedTags, parseDkimSignature, parseTagList, removeSignatureValue } from '../src/api/records.js';

const BASE = 'v=1; a=rsa-sha256; d=example.org; s=sel; h=from:to; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA';

describe('tag lists (RFC 6376 §3.2)', () => {
  it('tolerates folding whitespace around "=" and ";" and a trailing ";"', () => {
    const r = parseTagList(' a = 1 ;\r\n\tb=\r\n 2 3;');
    expect(r.ok).toBe(true);
    expect([...r.tags]).toEqual([
      ['a', '1'],
      ['b', '2 3'],
    ]);
  });
  it('rejects duplicate tags, tags without "=", and bad names', () => {
    expect(parseTagList('a=1; a=2')).toMatchObject({ ok: false, error: 'duplicate tag "a="' });
    expect(parseTagList('a=1; junk')).toMatchObject({ ok: false });
    expect(parseTagList('1a=1')).toMatchObject({ ok: false });
  });
  it('keeps names case-sensitive', () => {
    const r = parseTagList('A=1; a=2');
    expect(r.ok).toBe(true);
    expect(r.tags.get('A')).toBe('1');
  });
});

describe('DKIM-Signature parsing', () => {
  it('parses a minimal signature; missing c= means simple/simple, and i= defaults to @d', () => {
    const r = parseDkimSignature(BASE);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.signature).toMatchObject({
      headerCanonicalization: 'simple',
      bodyCanonicalization: 'simple',
      auid: '@example.org',
      signedHeaders: ['from', 'to'],
      keyType: 'rsa',
      hashAlgorithm: 'sha256',
    });
  });
  it('c=relaxed alone means relaxed/simple', () => {
    const r = parseDkimSignature(`${BASE}; c=relaxed`);
    expect(r.ok && [r.signature.headerCanonicalization, r.signature.bodyCanonicalization]).toEqual(['relaxed', 'simple']);
  });
  it('removes whitespace inside b= and bh=', () => {
    const r = parseDkimSignature(
      'v=1; a=rsa-sha256; d=e.org; s=s; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRk\r\n m5NMpJWZG3hSuFU=; b=AB\r\n\tCD',
    );
    expect(r.ok && r.signature.signatureB64).toBe('ABCD');
    expect(r.ok && r.signature.bodyHash.toString('base64')).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });

  const bad: [string, string, RegExp][] = [
    ['missing b=', 'v=1; a=rsa-sha256; d=e.org; s=s; h=from; bh=AAAA', /missing required tag b=/],
    ['duplicate tag', `${BASE}; d=other.org`, /duplicate tag "d="/],
    ['v=2', BASE.replace('v=1', 'v=2'), /unsupported version/],
    ['unknown algorithm', BASE.replace('rsa-sha256', 'rsa-md5'), /unknown algorithm/],
    ['unknown canonicalization', `${BASE}; c=fancy/simple`, /unknown canonicalization/],
    ['h= without From', BASE.replace('h=from:to', 'h=to:subject'), /From field not signed/],
    ['i= outside d=', `${BASE}; i=joe@example.com`, /outside domain/],
    ['x= before t=', `${BASE}; t=200; x=100`, /before timestamp/],
    ['non-numeric l=', `${BASE}; l=12a`, /body length/],
    ['bad base64 in b=', BASE.replace('b=AAAA', 'b=A*A'), /b= is not valid base64/],
    ['unknown q=', `${BASE}; q=http`, /query method/],
    ['malformed d=', BASE.replace('d=example.org', 'd=exa mple..org'), /malformed domain/],
  ];
  it.each(bad)('%s is an error with a reason', (_, value, reason) => {
    const r = parseDkimSignature(value);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(reason);
  });

  it('keeps the domain and selector when the signature is unusable', () => {
    const r = parseDkimSignature('v=1; a=rsa-sha256; d=example.org; s=sel; b=AAAA');
    expect(r).toMatchObject({ ok: false, sdid: 'example.org', selector: 'sel' });
  });

  it('accepts i= in a subdomain, and unknown tags', () => {
    const r = parseDkimSignature(`${BASE}; i=joe@mail.example.org; foo=bar`);
    expect(r.ok && r.signature.auid).toBe('joe@mail.example.org');
  });

  it('decodes z= copies', () => {
    const r = parseDkimSignature(`${BASE}; z=From:foo@eng.example.net|Subject:demo=20run`);
    expect(r.ok && r.signature.copiedHeaders).toEqual(['From:foo@eng.example.net', 'Subject:demo run']);
  });
});

describe('removing b= for hashing', () => {
  const raw = (s: string) => Buffer.from(s, 'latin1');
  it('empties b= and keeps everything else, bh= included', () => {
    const out = removeSignatureValue(raw('DKIM-Signature: a=1; bh=XYZ=; b=ab\r\n cd; c=x\r\n'));
    expect(out.toString('latin1')).toBe('DKIM-Signature: a=1; bh=XYZ=; b=; c=x\r\n');
  });
  it('finds "b =" with whitespace before the "="', () => {
    const out = removeSignatureValue(raw('DKIM-Signature: bh=Q; b\t= abc \r\n'));
    expect(out.toString('latin1')).toBe('DKIM-Signature: bh=Q; b\t=');
  });
});

describe('folding', () => {
  it('keeps every line within 78 columns and breaks h= at colons', () => {
    const names = Array.from({ length: 30 }, (_, i) => `x-header-number-${i}`);
    const field = formatFoldedTags('DKIM-Signature', [
      { name: 'v', value: '1' },
      { name: 'h', value: names.join(':'), breakAfter: ':' },
      { name: 'bh', value: 'A'.repeat(44), breakAfter: '' },
      { name: 'b', value: '' },
    ]);
    const full = appendFolded(field, 'B'.repeat(344));
    for (const line of full.split('\r\n')) expect(line.replace(/^\t/, ' '.repeat(8)).length).toBeLessThanOrEqual(78);
    const r = parseDkimSignature(full.slice('DKIM-Signature:'.length).replace('h=', 'a=rsa-sha256; d=e.org; s=s; h=from:'));
    expect(r.ok && r.signature.signedHeaders.slice(1)).toEqual(names);
    expect(r.ok && r.signature.signatureB64).toBe('B'.repeat(344));
    expect(full).toContain(`\r\n\tbh=${'A'.repeat(44)};`);
  });
});
