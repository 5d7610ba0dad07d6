import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MemoryKeyResolver, normalizeLineEndings, verifyMessage } from '../src/index.js';
import { BodyHasher } from '../src/api/canonicalization.js';

const fixture = (name: string) => normalizeLineEndings(readFileSync(new URL(`./fixtures/${name}`, import.meta.url)));

describe('published test vectors', () => {
  it('RFC 6376 Appendix A.2, verified with the Appendix C key (simple/simple, 1024-bit RSA)', async () => {
    const resolver = new MemoryKeyResolver({
      // RFC 6376 Appendix C.
      'brisbane._domainkey.example.com':
        'v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB',
    });
    const results = await verifyMessage(fixture('rfc6376-a2.eml.txt'), { resolver });
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({
      result: 'pass',
      domain: 'example.com',
      selector: 'brisbane',
      identity: 'joe@football.example.com',
      keyBits: 1024,
    });
  });

  it('RFC 8463 Appendix A: both the Ed25519 and the RSA signature pass', async () => {
    const resolver = new MemoryKeyResolver({
      // RFC 8463 Appendix A.2.
      'brisbane._domainkey.football.example.com': 'v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=',
      'test._domainkey.football.example.com':
        'v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB',
    });
    const results = await verifyMessage(fixture('rfc8463-a.eml.txt'), { resolver, now: () => 1528637909_000 });
    expect(results.map((r) => [r.algorithm, r.selector, r.result])).toEqual([
      ['ed25519-sha256', 'brisbane', 'pass'],
      ['rsa-sha256', 'test', 'pass'],
    ]);
  });

  it('RFC 8463: the same Ed25519 key published as k=rsa does not verify', async () => {
    const resolver = new MemoryKeyResolver({
      'brisbane._domainkey.football.example.com': 'v=DKIM1; k=rsa; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=',
      'test._domainkey.football.example.com': 'v=DKIM1; p=',
    });
    const results = await verifyMessage(fixture('rfc8463-a.eml.txt'), { resolver });
    expect(results[0]).toMatchObject({ result: 'permerror', reason: expect.stringContaining('does not match') });
    expect(results[1]).toMatchObject({ result: 'permerror', reason: expect.stringContaining('revoked') });
  });

  it('RFC 4871 erratum 1376: the empty-body hashes', () => {
    const hash = (c: 'simple' | 'relaxed', alg: 'sha256' | 'sha1') => new BodyHasher(c, alg).digest().hash.toString('base64');
    expect(hash('simple', 'sha256')).toBe('frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=');
    expect(hash('simple', 'sha1')).toBe('uoq1oCgLlTqpdDX/iUbLy7J1Wic=');
    expect(hash('relaxed', 'sha256')).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    expect(hash('relaxed', 'sha1')).toBe('2jmj7l5rSw0yVb/vlWAYkK/YBwk=');
  });
});
