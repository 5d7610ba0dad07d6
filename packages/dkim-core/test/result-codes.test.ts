import { Buffer } from 'node:buffer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimKeyRecord, type DnsServer, startDnsmasq, startSlowDns, type SlowDns, type TestKeys } from '@inkan/testbed';
import {
  DnsKeyResolver,
  KeyLookupError,
  type MemoryKeyResolver,
  signMessage,
  VERIFICATION_CODES,
  type VerificationCode,
  type VerificationResult,
  type VerifierOptions,
  verifyMessage,
} from '../src/index.js';
import { keysAndResolver } from './key-fixture.js';

// Every failure class of the DKIM verifier gives its own code (and the result RFC 8601 names).

const MESSAGE = Buffer.from(
  'From: Joe <joe@example.org>\r\nTo: a@example.net\r\nSubject: codes\r\n\r\nHello.\r\nSecond line.\r\n',
  'latin1',
);

let keys: TestKeys;
let resolver: MemoryKeyResolver;

beforeAll(() => {
  ({ keys, resolver } = keysAndResolver((keys) => ({
    'small._domainkey.example.org': dkimKeyRecord(keys.rsa1024),
    'strict._domainkey.example.org': dkimKeyRecord(keys.rsa2048, 't=s'),
    'sha1only._domainkey.example.org': dkimKeyRecord(keys.rsa2048, 'h=sha1'),
    'edasrsa._domainkey.example.org': `v=DKIM1; k=rsa; p=${keys.ed25519.p}`,
    'revoked._domainkey.example.org': 'v=DKIM1; k=rsa; p=',
    'broken._domainkey.example.org': 'v=DKIM1; k=rsa; p=not!base64',
    'notakey._domainkey.example.org': 'v=DKIM1; k=rsa; p=AAAAAAAA',
    'web._domainkey.example.org': dkimKeyRecord(keys.rsa2048, 's=http'),
    'servfail._domainkey.example.org': new KeyLookupError('TEMPFAIL', 'SERVFAIL from the test resolver'),
    'slow._domainkey.example.org': new KeyLookupError('TEMPFAIL', 'no answer in time', { timedOut: true }),
  })));
});

async function signed(options: Partial<Parameters<typeof signMessage>[1]> = {}, message = MESSAGE, now?: () => number): Promise<Buffer> {
  const sig = await signMessage(
    message,
    { domain: 'example.org', selector: 'rsa', privateKey: keys.rsa2048.privateKey, ...options },
    now ? { now } : {},
  );
  return Buffer.concat([Buffer.from(sig, 'latin1'), message]);
}

/** The message with a hand-written DKIM-Signature value on top. */
const withSignature = (value: string): Buffer => Buffer.concat([Buffer.from(`DKIM-Signature: ${value}\r\n`, 'latin1'), MESSAGE]);
const B = 'dGhpcyBpcyBub3QgYSBzaWduYXR1cmU=';

const replace = (message: Buffer, from: string, to: string): Buffer => {
  const text = message.toString('latin1');
  if (!text.includes(from)) throw new Error(`test setup: "${from}" not in the message`);
  return Buffer.from(text.replace(from, to), 'latin1');
};

/** name, message, extra verifier options, expected result and code. */
type Case = [string, () => Promise<Buffer>, Partial<VerifierOptions>, VerificationResult['result'], VerificationCode];

const cases: Case[] = [
  ['a good signature', () => signed(), {}, 'pass', 'ok'],
  ['a header over the field limit', () => signed(), { maxHeaderFields: 2 }, 'policy', 'header-limit'],
  ['a header over the byte limit', () => signed(), { maxHeaderBytes: 100 }, 'policy', 'header-limit'],
  [
    'a tag list that does not parse',
    async () => withSignature('v=1; a=rsa-sha256; d=example.org; s=rsa; h=from; bh; b=x'),
    {},
    'permerror',
    'signature-syntax',
  ],
  [
    'a missing bh=',
    async () => withSignature(`v=1; a=rsa-sha256; d=example.org; s=rsa; h=from; b=${B}`),
    {},
    'permerror',
    'signature-syntax',
  ],
  [
    'an unknown algorithm',
    async () => withSignature(`v=1; a=dsa-sha256; d=example.org; s=rsa; h=from; bh=${B}; b=${B}`),
    {},
    'permerror',
    'algorithm-unsupported',
  ],
  [
    'rsa-sha1 (RFC 8301)',
    async () => withSignature(`v=1; a=rsa-sha1; d=example.org; s=rsa; h=from; bh=${B}; b=${B}`),
    {},
    'permerror',
    'algorithm-unsupported',
  ],
  [
    'an h= without From',
    async () => withSignature(`v=1; a=rsa-sha256; d=example.org; s=rsa; h=subject; bh=${B}; b=${B}`),
    {},
    'permerror',
    'from-not-signed',
  ],
  [
    'an i= outside d=',
    async () => withSignature(`v=1; a=rsa-sha256; d=example.org; i=joe@example.net; s=rsa; h=from; bh=${B}; b=${B}`),
    {},
    'permerror',
    'identity-mismatch',
  ],
  ['an expired signature', () => signed({ expiresIn: 60 }, MESSAGE, () => Date.now() - 3_600_000), {}, 'permerror', 'signature-expired'],
  ['no key at the selector', () => signed({ selector: 'nothere' }), {}, 'permerror', 'key-not-found'],
  ['a lookup the server failed', () => signed({ selector: 'servfail' }), {}, 'temperror', 'dns-error'],
  ['a lookup that timed out', () => signed({ selector: 'slow' }), {}, 'temperror', 'dns-timeout'],
  ['a key record that does not parse', () => signed({ selector: 'broken' }), {}, 'permerror', 'key-syntax'],
  ['a p= that is no RSA key', () => signed({ selector: 'notakey' }), {}, 'permerror', 'key-syntax'],
  ['a revoked key', () => signed({ selector: 'revoked' }), {}, 'permerror', 'key-revoked'],
  [
    'an Ed25519 key published as k=rsa',
    () => signed({ selector: 'edasrsa', privateKey: keys.ed25519.privateKey }),
    {},
    'permerror',
    'key-mismatch',
  ],
  ['a key for sha1 only', () => signed({ selector: 'sha1only' }), {}, 'permerror', 'key-mismatch'],
  ['a key not for email (s=http)', () => signed({ selector: 'web' }), {}, 'permerror', 'key-restricted'],
  [
    't=s with an i= in a subdomain',
    () => signed({ selector: 'strict', identity: 'joe@mail.example.org' }),
    {},
    'permerror',
    'key-restricted',
  ],
  [
    'a key under minKeyBits',
    () => signed({ selector: 'small', privateKey: keys.rsa1024.privateKey }),
    { minKeyBits: 2048 },
    'permerror',
    'key-too-small',
  ],
  ['a key over maxKeyBits (read, then refused)', () => signed(), { maxKeyBits: 1024 }, 'policy', 'key-too-large'],
  ['a key over maxKeyBits (refused unread)', () => signed(), { maxKeyBits: 512, minKeyBits: 512 }, 'policy', 'key-too-large'],
  [
    'an l= longer than the body',
    async () => replace(await signed({ bodyLength: true }), 'Second line.\r\n', ''),
    {},
    'permerror',
    'body-length-exceeded',
  ],
  ['a changed body', async () => replace(await signed(), 'Hello.', 'Hullo.'), {}, 'fail', 'body-hash-mismatch'],
  ['a changed Subject', async () => replace(await signed(), 'Subject: codes', 'Subject: edited'), {}, 'fail', 'bad-signature'],
];

describe('VerificationResult.code', () => {
  it('the table below covers every code the verifier gives (local-policy is for callers, too-many-signatures has its own test)', () => {
    const covered = new Set(cases.map((c) => c[4]));
    expect(VERIFICATION_CODES.filter((c) => !covered.has(c))).toEqual(['too-many-signatures', 'sender-invalid', 'local-policy']);
  });

  for (const [name, make, options, result, code] of cases) {
    it(`${name}: ${result}, ${code}`, async () => {
      const [r] = await verifyMessage(await make(), { resolver, ...options });
      expect(r).toMatchObject({ result, code });
      if (code === 'ok') expect(r?.reason).toBeUndefined();
      else expect(r?.reason).toMatch(/\S/);
    });
  }

  it('past the signature cap: policy, too-many-signatures; the first is still checked', async () => {
    const once = await signed();
    const twice = Buffer.concat([
      Buffer.from(await signMessage(once, { domain: 'example.org', selector: 'rsa', privateKey: keys.rsa2048.privateKey }), 'latin1'),
      once,
    ]);
    const results = await verifyMessage(twice, { resolver, maxSignatures: 1 });
    expect(results.map((r) => [r.result, r.code])).toEqual([
      ['pass', 'ok'],
      ['policy', 'too-many-signatures'],
    ]);
  });
});

describe('key lookup codes against a real DNS server (dnsmasq on loopback)', () => {
  let dns: DnsServer;
  let slow: SlowDns;

  beforeAll(async () => {
    dns = await startDnsmasq({ 'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048) });
    slow = await startSlowDns({ upstream: { port: dns.port }, delayMs: 'never' });
  });
  afterAll(async () => {
    await slow?.stop();
    await dns?.stop();
  });

  it('NXDOMAIN in a zone the server holds: key-not-found; a zone it refuses: dns-error; no answer: dns-timeout', async () => {
    const resolver = new DnsKeyResolver({ servers: [dns.server], timeout: 2000, tries: 1 });
    const [found] = await verifyMessage(await signed(), { resolver });
    expect(found).toMatchObject({ result: 'pass', code: 'ok' });
    const [missing] = await verifyMessage(await signed({ selector: 'nothere' }), { resolver });
    expect(missing).toMatchObject({ result: 'permerror', code: 'key-not-found' });
    // dnsmasq has no upstream: a name outside its zones is REFUSED, a server failure.
    const [refused] = await verifyMessage(
      await signed(
        { domain: 'elsewhere.test' },
        Buffer.from(MESSAGE.toString('latin1').replace('joe@example.org', 'joe@elsewhere.test'), 'latin1'),
      ),
      { resolver },
    );
    expect(refused).toMatchObject({ result: 'temperror', code: 'dns-error' });
    const silent = new DnsKeyResolver({ servers: [slow.server], timeout: 500, tries: 1 });
    const [timedOut] = await verifyMessage(await signed(), { resolver: silent });
    expect(timedOut).toMatchObject({ result: 'temperror', code: 'dns-timeout' });
  });
});
