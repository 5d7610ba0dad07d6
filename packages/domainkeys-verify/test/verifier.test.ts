import { Buffer } from 'node:buffer';
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { KeyLookupError, MemoryKeyResolver, MessageParser, formatAuthenticationResults } from '@inkan/dkim-core';
import { makeKeys, mailDkimDomainKeysSign, type TestKeys } from '@inkan/testbed';
import {
  CombinedVerifier,
  DomainKeysVerifier,
  type DomainKeysVerifierOptions,
  verifyDkimAndDomainKeys,
  verifyDomainKeys,
} from '../src/index.js';
import { baseMessage, chunks, splitAt } from './helpers.js';

// Unit tests: messages signed by Mail::DKIM (the harness), keys from a MemoryKeyResolver.

let keys: TestKeys;
let weak: { pem: string; p: string };
let resolver: MemoryKeyResolver;
const signed: Record<string, Buffer> = {};

async function dkSign(
  message: Buffer,
  o: { canonicalization: 'simple' | 'nofws'; selector?: string; headers?: string[]; withDkim?: boolean; pem?: string },
): Promise<Buffer> {
  const fieldsText = await mailDkimDomainKeysSign({
    domain: 'example.org',
    selector: o.selector ?? 'dk',
    canonicalization: o.canonicalization,
    pem: o.pem ?? keys.rsa2048.pem,
    message,
    ...(o.headers ? { headers: o.headers } : {}),
    ...(o.withDkim ? { withDkim: true } : {}),
  });
  return Buffer.concat([Buffer.from(fieldsText, 'latin1'), message]);
}

const replace = (message: Buffer, from: string, to: string): Buffer => {
  const text = message.toString('latin1');
  if (!text.includes(from)) throw new Error(`test setup: "${from}" not in message`);
  return Buffer.from(text.replace(from, to), 'latin1');
};

beforeAll(async () => {
  keys = makeKeys();
  const small = generateKeyPairSync('rsa', { modulusLength: 768 });
  weak = {
    pem: small.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    p: small.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
  };
  resolver = new MemoryKeyResolver({
    'dk._domainkey.example.org': `k=rsa; p=${keys.rsa2048.p}`,
    'testing._domainkey.example.org': `k=rsa; t=y; p=${keys.rsa1024.p}`,
    'weak._domainkey.example.org': `k=rsa; p=${weak.p}`,
    'dnsfail._domainkey.example.org': new KeyLookupError('TEMPFAIL', 'SERVFAIL from the test resolver'),
  });
  const message = baseMessage();
  signed.simple = await dkSign(message, { canonicalization: 'simple' });
  signed.nofws = await dkSign(message, { canonicalization: 'nofws', headers: ['from', 'to', 'subject', 'date'] });
  signed.testing = await dkSign(message, { canonicalization: 'simple', selector: 'testing', pem: keys.rsa1024.pem });
  signed.weak = await dkSign(message, { canonicalization: 'simple', selector: 'weak', pem: weak.pem });
  signed.dnsfail = await dkSign(message, { canonicalization: 'simple', selector: 'dnsfail' });
  signed.both = await dkSign(message, { canonicalization: 'nofws', withDkim: true });
  signed.sender = await dkSign(baseMessage({ from: 'alice@example.com', sender: 'List <list@example.org>' }), {
    canonicalization: 'simple',
  });
  // Two DomainKeys signatures, the upper one covering the lower one.
  signed.stacked = await dkSign(signed.simple, { canonicalization: 'nofws' });
});

describe('DomainKeysVerifier', () => {
  it('passes a message signed with c=simple and no h=', async () => {
    const [r] = await verifyDomainKeys(signed.simple!, { resolver });
    expect(r).toMatchObject({
      method: 'domainkeys',
      result: 'pass',
      domain: 'example.org',
      selector: 'dk',
      algorithm: 'rsa-sha1',
      identity: 'joe@example.org',
      identityHeader: 'from',
      keyBits: 2048,
      testing: false,
    });
    expect(r!.reason).toBeUndefined();
    expect(r!.headerB).toMatch(/^[A-Za-z0-9+/]+=*$/);
  });

  it('passes a message signed with c=nofws and h=, and reports h=', async () => {
    const [r] = await verifyDomainKeys(signed.nofws!, { resolver });
    expect(r).toMatchObject({ result: 'pass', signedHeaders: ['from', 'to', 'subject', 'date'] });
  });

  it('reads a stream of chunks (an async iterable) as well as a Buffer', async () => {
    const [r] = await verifyDomainKeys(chunks(splitAt(signed.nofws!, [5, 100, 101, 400, 401, 402])), { resolver });
    expect(r!.result).toBe('pass');
  });

  it('takes a message with bare LF line ends (as nodemailer writes them) as CRLF, unless lineEndings is as-is', async () => {
    const lf = (m: Buffer) => Buffer.from(m.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    const [simple] = await verifyDomainKeys(lf(signed.simple!), { resolver });
    expect(simple!.result).toBe('pass');
    const [asIs] = await verifyDomainKeys(lf(signed.simple!), { resolver, lineEndings: 'as-is' });
    expect(asIs!.result).toBe('fail');
    const both = await verifyDkimAndDomainKeys(chunks(splitAt(lf(signed.both!), [1, 50, 51, 300])), { resolver });
    expect([both.dkim[0]?.result, both.domainkeys[0]?.result]).toEqual(['pass', 'pass']);
  });

  it('names the Sender when there is one', async () => {
    // header.b is a token, or a quoted string when its 8 characters hold a "/" (a tspecial).
    const [r] = await verifyDomainKeys(signed.sender!, { resolver });
    expect(r).toMatchObject({ result: 'pass', identity: 'list@example.org', identityHeader: 'sender' });
    expect(formatAuthenticationResults('mx.example.net', [r!], { newline: '' })).toMatch(
      /^mx\.example\.net; domainkeys=pass \(2048-bit key\) header\.sender=list@example\.org header\.d=example\.org header\.s=dk header\.b=("?)[A-Za-z0-9+/]{8}\1$/,
    );
  });

  it('marks a t=y key as testing, and Authentication-Results says so', async () => {
    const [r] = await verifyDomainKeys(signed.testing!, { resolver });
    expect(r).toMatchObject({ result: 'pass', testing: true, keyBits: 1024 });
    expect(formatAuthenticationResults('mx.example.net', [r!], { newline: '' })).toMatch(
      /^mx\.example\.net; domainkeys=pass \(1024-bit key; test mode\) header\.from=joe@example\.org header\.d=example\.org header\.s=testing header\.b=/,
    );
  });

  it('gives temperror when the key lookup fails for now', async () => {
    const [r] = await verifyDomainKeys(signed.dnsfail!, { resolver });
    expect(r).toMatchObject({ result: 'temperror', reason: expect.stringMatching(/SERVFAIL/) });
  });

  it('refuses keys under minKeyBits (default 1024) and accepts them when the floor is lowered', async () => {
    const [r] = await verifyDomainKeys(signed.weak!, { resolver });
    expect(r).toMatchObject({ result: 'permerror', keyBits: 768, reason: 'key too small (768 bits, minimum 1024)' });
    const [lowered] = await verifyDomainKeys(signed.weak!, { resolver, minKeyBits: 512 });
    expect(lowered!.result).toBe('pass');
  });

  it('refuses a revoked key and a key of another type, as the DKIM verifier does (acceptPublicKey)', async () => {
    const other = new MemoryKeyResolver({
      'dk._domainkey.example.org': `k=ed25519; p=${keys.ed25519.p}`,
      'weak._domainkey.example.org': 'k=rsa; p=',
    });
    const [ed] = await verifyDomainKeys(signed.simple!, { resolver: other });
    expect(ed).toMatchObject({ result: 'permerror', reason: 'key type k=ed25519 does not match a=rsa-sha1' });
    const [revoked] = await verifyDomainKeys(signed.weak!, { resolver: other });
    expect(revoked).toMatchObject({ result: 'permerror', reason: 'key revoked (empty p=)' });
  });

  it('checks each of several signatures against the fields below it', async () => {
    const results = await verifyDomainKeys(signed.stacked!, { resolver });
    expect(results.map((r) => r.result)).toEqual(['pass', 'pass']);
    const tampered = replace(signed.stacked!, 'Joe.', 'Jim.');
    expect((await verifyDomainKeys(tampered, { resolver })).map((r) => r.result)).toEqual(['fail', 'fail']);
  });

  it('verifies at most maxSignatures and reports the rest as policy', async () => {
    const results = await verifyDomainKeys(signed.stacked!, { resolver, maxSignatures: 1 });
    expect(results.map((r) => r.result)).toEqual(['pass', 'policy']);
    expect(results[1]!.reason).toMatch(/more than 1 signatures/);
  });

  it('reports policy when the header section is over the limit', async () => {
    const results = await verifyDomainKeys(signed.simple!, { resolver, maxHeaderBytes: 100 });
    expect(results).toEqual([expect.objectContaining({ method: 'domainkeys', result: 'policy' })]);
    expect(await verifyDomainKeys(signed.simple!, { resolver, maxHeaderFields: 3 })).toEqual([
      expect.objectContaining({ result: 'policy', reason: 'not verified: more than 3 header fields' }),
    ]);
  });

  it('gives nothing for a message without DomainKey-Signature', async () => {
    expect(await verifyDomainKeys(baseMessage(), { resolver })).toEqual([]);
  });

  it("works as a MessageSink behind dkim-core's MessageParser", async () => {
    const verifier = new DomainKeysVerifier({ resolver });
    const parser = new MessageParser(verifier);
    for (const part of splitAt(signed.simple!, [1, 2, 3, 50, 300])) parser.write(part);
    parser.end();
    expect((await verifier.finish())[0]!.result).toBe('pass');
  });

  it('needs a resolver', () => {
    expect(() => new DomainKeysVerifier({} as never)).toThrow(/resolver/);
  });
});

describe('result codes (signatures by Mail::DKIM)', () => {
  const codes = async (message: Buffer, options: Partial<DomainKeysVerifierOptions> = {}) =>
    (await verifyDomainKeys(message, { resolver, ...options })).map((r) => [r.result, r.code]);

  beforeAll(() => {
    resolver
      .set('revoked._domainkey.example.org', 'k=rsa; p=')
      .set('granular._domainkey.example.org', `k=rsa; g=bob; p=${keys.rsa2048.p}`)
      .set('web._domainkey.example.org', `k=rsa; s=http; p=${keys.rsa2048.p}`)
      .set('garbled._domainkey.example.org', 'k=rsa; p=AAAA; p=AAAA')
      .set('slow._domainkey.example.org', new KeyLookupError('TEMPFAIL', 'no answer in time', { timedOut: true }));
  });

  it('ok, bad-signature, dns-error, dns-timeout, key-too-small, too-many-signatures, header-limit', async () => {
    expect(await codes(signed.simple!)).toEqual([['pass', 'ok']]);
    expect(await codes(replace(signed.simple!, 'Joe.', 'Jim.'))).toEqual([['fail', 'bad-signature']]);
    expect(await codes(signed.dnsfail!)).toEqual([['temperror', 'dns-error']]);
    expect(await codes(await dkSign(baseMessage(), { canonicalization: 'simple', selector: 'slow' }))).toEqual([
      ['temperror', 'dns-timeout'],
    ]);
    expect(await codes(signed.weak!)).toEqual([['permerror', 'key-too-small']]);
    expect(await codes(signed.stacked!, { maxSignatures: 1 })).toEqual([
      ['pass', 'ok'],
      ['policy', 'too-many-signatures'],
    ]);
    expect(await codes(signed.simple!, { maxHeaderBytes: 100 })).toEqual([['policy', 'header-limit']]);
    expect(await codes(signed.simple!, { maxHeaderFields: 3 })).toEqual([['policy', 'header-limit']]);
  });

  it('key-not-found, key-syntax, key-revoked, key-restricted (g=, s=)', async () => {
    const by = (selector: string) => dkSign(baseMessage(), { canonicalization: 'simple', selector });
    expect(await codes(await by('nothere'))).toEqual([['permerror', 'key-not-found']]);
    expect(await codes(await by('garbled'))).toEqual([['permerror', 'key-syntax']]);
    expect(await codes(await by('revoked'))).toEqual([['permerror', 'key-revoked']]);
    expect(await codes(await by('granular'))).toEqual([['permerror', 'key-restricted']]);
    expect(await codes(await by('web'))).toEqual([['permerror', 'key-restricted']]);
  });

  it('signature-syntax, algorithm-unsupported, sender-invalid, identity-mismatch', async () => {
    const withField = (value: string, message = baseMessage()) =>
      Buffer.concat([Buffer.from(`DomainKey-Signature: ${value}\r\n`, 'latin1'), message]);
    const b = 'dGhpcyBpcyBub3QgYSBzaWduYXR1cmU=';
    expect(await codes(withField('a=rsa-sha1; d=example.org; s=dk; c=simple'))).toEqual([['permerror', 'signature-syntax']]);
    expect(await codes(withField(`a=rsa-sha256; d=example.org; s=dk; b=${b}`))).toEqual([['permerror', 'algorithm-unsupported']]);
    expect(await codes(withField(`a=rsa-sha1; d=example.org; s=dk; h=to:subject; b=${b}`))).toEqual([['permerror', 'sender-invalid']]);
    expect(await codes(withField(`a=rsa-sha1; d=example.org; s=dk; b=${b}`, baseMessage({ from: 'joe@example.com' })))).toEqual([
      ['permerror', 'identity-mismatch'],
    ]);
  });
});

describe('chunk-split invariance of the verdict', () => {
  const cuts = fc.array(fc.nat({ max: 1200 }), { maxLength: 10 });
  for (const name of ['simple', 'nofws'] as const) {
    it(`${name}: any split gives pass, and any split of a tampered body gives fail`, async () => {
      const good = signed[name]!;
      const bad = replace(good, 'game.', 'game!');
      await fc.assert(
        fc.asyncProperty(cuts, async (at) => {
          const [ok] = await verifyDomainKeys(chunks(splitAt(good, at)), { resolver });
          expect(ok!.result).toBe('pass');
          const [ko] = await verifyDomainKeys(chunks(splitAt(bad, at)), { resolver });
          expect(ko!.result).toBe('fail');
        }),
        { numRuns: 60 },
      );
    });
  }
});

describe('DKIM and DomainKeys in one pass', () => {
  it('gives both results from one parser', async () => {
    const r = await verifyDkimAndDomainKeys(signed.both!, { resolver });
    expect(r.dkim.map((x) => [x.method, x.result])).toEqual([['dkim', 'pass']]);
    expect(r.domainkeys.map((x) => [x.method, x.result])).toEqual([['domainkeys', 'pass']]);
    const text = formatAuthenticationResults('mx.example.net', [...r.dkim, ...r.domainkeys], { newline: '' });
    expect(text).toMatch(/dkim=pass .*; domainkeys=pass \(2048-bit key\) header\.from=joe@example\.org header\.d=example\.org/);
  });

  it('fails both when the body changes, whatever the chunking', async () => {
    const bad = replace(signed.both!, 'hungry', 'angry');
    const verifier = new CombinedVerifier({ resolver });
    const parser = new MessageParser(verifier);
    for (const part of splitAt(bad, [7, 8, 9, 333, 500])) parser.write(part);
    parser.end();
    const r = await verifier.finish();
    expect([r.dkim[0]!.result, r.domainkeys[0]!.result]).toEqual(['fail', 'fail']);
  });

  it('asks the resolver once for a selector both signatures use', async () => {
    const asked: string[] = [];
    const counting = {
      lookup: (name: string) => {
        asked.push(name);
        return resolver.lookup(name);
      },
    };
    const r = await verifyDkimAndDomainKeys(signed.both!, { resolver: counting });
    expect([r.dkim[0]!.result, r.domainkeys[0]!.result]).toEqual(['pass', 'pass']);
    expect(asked).toEqual(['dk._domainkey.example.org']);
  });

  it('passes options through to each verifier', async () => {
    const r = await verifyDkimAndDomainKeys(signed.both!, { resolver, domainKeys: { minKeyBits: 4096 }, dkim: { minKeyBits: 1024 } });
    expect(r.dkim[0]!.result).toBe('pass');
    expect(r.domainkeys[0]).toMatchObject({ result: 'permerror', reason: 'key too small (2048 bits, minimum 4096)' });
  });
});

describe('bad mail never throws', () => {
  it('random bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
        const message = Buffer.concat([Buffer.from('DomainKey-Signature: d=example.org; s=dk; b=AAAA\r\n', 'latin1'), Buffer.from(bytes)]);
        const r = await verifyDkimAndDomainKeys(message, { resolver });
        expect(r.domainkeys.length).toBeGreaterThanOrEqual(1);
        for (const x of r.domainkeys) expect(x.result).not.toBe('pass');
      }),
      { numRuns: 200 },
    );
  });

  it('a signed message with its lines cut short or doubled', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: 1500 }), fc.nat({ max: 1500 }), async (a, b) => {
        const m = signed.nofws!;
        const lo = Math.min(a, b, m.length);
        const hi = Math.min(Math.max(a, b), m.length);
        const mangled = Buffer.concat([m.subarray(0, lo), m.subarray(lo, hi), m.subarray(lo)]);
        const r = await verifyDomainKeys(mangled, { resolver });
        for (const x of r) expect(['pass', 'fail', 'permerror']).toContain(x.result);
      }),
      { numRuns: 100 },
    );
  });
});
