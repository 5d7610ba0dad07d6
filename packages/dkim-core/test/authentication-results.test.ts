import { describe, expect, it } from 'vitest';
import {
  type AuthenticationResults,
  formatAuthenticationResults,
  parseAuthenticationResults,
  type VerificationResult,
} from '../src/index.js';

const dkim = (over: Partial<VerificationResult> = {}): VerificationResult => ({
  method: 'dkim',
  result: 'pass',
  code: 'ok',
  domain: 'example.org',
  selector: 'sel',
  identity: '@example.org',
  algorithm: 'rsa-sha256',
  keyBits: 2048,
  testing: false,
  headerB: 'ABCDefgh12345678',
  ...over,
});

/** One table drives both directions: results → text, and text → parsed entries. */
const table: { name: string; results: VerificationResult[]; text: string; parsed: AuthenticationResults }[] = [
  {
    name: 'a pass',
    results: [dkim()],
    text: 'mx.example.net; dkim=pass (2048-bit key) header.d=example.org header.i=@example.org header.s=sel header.a=rsa-sha256 header.b=ABCDefgh',
    parsed: {
      authservId: 'mx.example.net',
      results: [
        {
          method: 'dkim',
          result: 'pass',
          comments: ['2048-bit key'],
          properties: [
            { ptype: 'header', property: 'd', value: 'example.org' },
            { ptype: 'header', property: 'i', value: '@example.org' },
            { ptype: 'header', property: 's', value: 'sel' },
            { ptype: 'header', property: 'a', value: 'rsa-sha256' },
            { ptype: 'header', property: 'b', value: 'ABCDefgh' },
          ],
        },
      ],
    },
  },
  {
    name: 'a failure with a reason, and a testing key',
    results: [dkim({ result: 'fail', reason: 'body hash did not verify', testing: true, headerB: 'a/b+cdefXYZ' })],
    text: 'mx.example.net; dkim=fail (2048-bit key; test mode) reason="body hash did not verify" header.d=example.org header.i=@example.org header.s=sel header.a=rsa-sha256 header.b="a/b+cdef"',
    parsed: {
      authservId: 'mx.example.net',
      results: [
        {
          method: 'dkim',
          result: 'fail',
          reason: 'body hash did not verify',
          comments: ['2048-bit key; test mode'],
          properties: [
            { ptype: 'header', property: 'd', value: 'example.org' },
            { ptype: 'header', property: 'i', value: '@example.org' },
            { ptype: 'header', property: 's', value: 'sel' },
            { ptype: 'header', property: 'a', value: 'rsa-sha256' },
            { ptype: 'header', property: 'b', value: 'a/b+cdef' },
          ],
        },
      ],
    },
  },
  {
    name: 'nothing checked',
    results: [],
    text: 'mx.example.net; none',
    parsed: { authservId: 'mx.example.net', results: [] },
  },
  {
    name: 'DomainKeys naming the sender header',
    results: [
      {
        method: 'domainkeys',
        result: 'pass',
        code: 'ok',
        domain: 'example.org',
        selector: 'old',
        identity: 'joe@example.org',
        identityHeader: 'sender',
        algorithm: 'rsa-sha1',
        keyBits: 1024,
        testing: true,
      },
    ],
    text: 'mx.example.net; domainkeys=pass (1024-bit key; test mode) header.sender=joe@example.org header.d=example.org header.s=old',
    parsed: {
      authservId: 'mx.example.net',
      results: [
        {
          method: 'domainkeys',
          result: 'pass',
          comments: ['1024-bit key; test mode'],
          properties: [
            { ptype: 'header', property: 'sender', value: 'joe@example.org' },
            { ptype: 'header', property: 'd', value: 'example.org' },
            { ptype: 'header', property: 's', value: 'old' },
          ],
        },
      ],
    },
  },
];

describe('Authentication-Results (RFC 8601)', () => {
  for (const row of table) {
    it(`formats ${row.name}`, () => {
      expect(formatAuthenticationResults('mx.example.net', row.results, { newline: '' })).toBe(row.text);
    });
    it(`parses ${row.name}`, () => {
      expect(parseAuthenticationResults(row.text)).toEqual(row.parsed);
    });
    it(`round-trips ${row.name} through the folded form`, () => {
      const folded = formatAuthenticationResults('mx.example.net', row.results);
      for (const line of folded.split('\r\n')) expect(line.length + 24).toBeLessThanOrEqual(78 + 24);
      expect(parseAuthenticationResults(folded)).toEqual(row.parsed);
    });
  }

  it('header.b grows past 8 characters until two signatures differ (RFC 6008)', () => {
    const text = formatAuthenticationResults('mx', [dkim({ headerB: 'SAMEPREFIXone' }), dkim({ headerB: 'SAMEPREFIXtwo' })], {
      newline: '',
    });
    expect(text).toContain('header.b=SAMEPREFIXo;');
    expect(text).toContain('header.b=SAMEPREFIXt');
  });

  it('parses fields written by others: versions, comments anywhere, several methods', () => {
    const parsed = parseAuthenticationResults(
      'example.com 1 (our server);\r\n  spf=pass smtp.mailfrom=example.net;\r\n  dkim=pass (good signature) header.d=example.net (the domain);\r\n  dmarc/1=fail policy.dmarc=reject',
    );
    expect(parsed?.authservId).toBe('example.com');
    expect(parsed?.version).toBe(1);
    expect(parsed?.results.map((r) => `${r.method}=${r.result}`)).toEqual(['spf=pass', 'dkim=pass', 'dmarc=fail']);
    expect(parsed?.results[2]?.methodVersion).toBe(1);
    expect(parsed?.results[1]?.properties).toEqual([{ ptype: 'header', property: 'd', value: 'example.net' }]);
  });

  it('returns null for text that is not an Authentication-Results value', () => {
    expect(parseAuthenticationResults('')).toBeNull();
    expect(parseAuthenticationResults('host; dkim')).toBeNull();
    expect(parseAuthenticationResults('host; dkim=pass (unclosed')).toBeNull();
    expect(parseAuthenticationResults('host; =pass')).toBeNull();
  });
});
