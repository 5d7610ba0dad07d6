import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { dkimKeyRecord, type TestKeys } from '@inkan/testbed';
import { DkimError, KeyLookupError, MemoryKeyResolver, Signer, Verifier, signMessage, splitMessage, verifyMessage } from '../src/index.js';
import { BodyHashSet } from '../src/api/canonicalization.js';
import { makeHeaderField } from '../src/api/message.js';
import { keysAndResolver } from './key-fixture.js';

const MESSAGE = Buffer.from(
  'From: Joe <joe@example.org>\r\nTo: Suzie <suzie@example.net>\r\nSubject: Is dinner ready?\r\n' +
    'Date: Fri, 11 Jul 2003 21:00:37 -0700\r\nMessage-ID: <1@example.org>\r\n\r\nHi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n',
  'latin1',
);

let keys: TestKeys;
let resolver: MemoryKeyResolver;

beforeAll(() => {
  ({ keys, resolver } = keysAndResolver((keys) => ({
    'small._domainkey.example.org': dkimKeyRecord(keys.rsa1024),
    'testing._domainkey.example.org': dkimKeyRecord(keys.rsa2048, 't=y'),
    'strict._domainkey.example.org': dkimKeyRecord(keys.rsa2048, 't=s'),
    'sha1only._domainkey.example.org': dkimKeyRecord(keys.rsa2048, 'h=sha1'),
    'revoked._domainkey.example.org': 'v=DKIM1; k=rsa; p=',
    'broken._domainkey.example.org': 'v=DKIM1; k=rsa; p=not!base64',
    'web._domainkey.example.org': dkimKeyRecord(keys.rsa2048, 's=http'),
    'dnsfail._domainkey.example.org': new KeyLookupError('TEMPFAIL', 'SERVFAIL'),
  })));
});

async function signed(options: Parameters<typeof signMessage>[1], message = MESSAGE, now?: () => number): Promise<Buffer> {
  const sig = await signMessage(message, options, now ? { now } : {});
  return Buffer.concat([Buffer.from(sig, 'latin1'), message]);
}

/** The first signature's h=, unfolded. */
function signedHeaderList(msg: Buffer): string | undefined {
  return /[\s;]h=([^;]*);/.exec(msg.toString('latin1'))?.[1]?.replace(/\s+/g, '');
}

const rsa = () => ({ domain: 'example.org', selector: 'rsa', privateKey: keys.rsa2048.privateKey });
const ed = () => ({ domain: 'example.org', selector: 'ed', privateKey: keys.ed25519.pem });

describe('sign then verify', () => {
  for (const canonicalization of ['simple/simple', 'simple/relaxed', 'relaxed/simple', 'relaxed/relaxed']) {
    for (const [name, opts] of [
      ['rsa-sha256', rsa],
      ['ed25519-sha256', ed],
    ] as const) {
      it(`${name} ${canonicalization}`, async () => {
        const msg = await signed({ ...opts(), canonicalization });
        const [r] = await verifyMessage(msg, { resolver });
        expect(r).toMatchObject({ result: 'pass', algorithm: name, domain: 'example.org', testing: false });
      });
    }
  }

  it('RSA signatures are good whether made alone (on the main thread) or with others in progress (on the thread pool)', async () => {
    const alone = await signed(rsa());
    const together = await Promise.all(
      Array.from({ length: 6 }, (_, i) => signed(rsa(), Buffer.concat([MESSAGE, Buffer.from(`line ${i}\r\n`)]))),
    );
    // a Signer left unfinished (an aborted message) must not stop the others from signing
    const abandoned = new Signer(rsa());
    abandoned.header(makeHeaderField('From', ' a@example.org'));
    const afterwards = await signed(rsa());
    for (const msg of [alone, ...together, afterwards]) expect((await verifyMessage(msg, { resolver }))[0]?.result).toBe('pass');
  });

  it('signs RSA and Ed25519 in one pass with one body hash', async () => {
    const bodyHashes = new BodyHashSet();
    const signer = new Signer([rsa(), ed()], { bodyHashes });
    const { headers, body } = splitMessage(MESSAGE);
    for (const h of headers) signer.header(h);
    signer.endOfHeaders();
    bodyHashes.update(body);
    const fields = await signer.finish();
    expect(bodyHashes.size).toBe(1);
    expect(fields.map((f) => f.name)).toEqual(['DKIM-Signature', 'DKIM-Signature']);
    const msg = Buffer.concat([Buffer.from(fields.map((f) => `${f.field}\r\n`).join(''), 'latin1'), MESSAGE]);
    const results = await verifyMessage(msg, { resolver });
    expect(results.map((r) => [r.algorithm, r.result])).toEqual([
      ['rsa-sha256', 'pass'],
      ['ed25519-sha256', 'pass'],
    ]);
  });

  it('verifies from a stream of tiny chunks the same as from a Buffer', async () => {
    const msg = await signed(rsa());
    const chunks = [...msg].map((x) => Buffer.from([x]));
    const [r] = await verifyMessage(Readable.from(chunks), { resolver });
    expect(r?.result).toBe('pass');
  });

  it('signs a stream without holding the body', async () => {
    const big = Buffer.concat([MESSAGE, Buffer.alloc(3 * 1024 * 1024, 'x\r\n')]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < big.length; i += 65536) chunks.push(big.subarray(i, i + 65536));
    const sig = await signMessage(Readable.from(chunks), rsa());
    const [r] = await verifyMessage(Buffer.concat([Buffer.from(sig), big]), { resolver });
    expect(r?.result).toBe('pass');
  });

  it('oversigns From by default so that a second From breaks the signature', async () => {
    const msg = await signed(rsa());
    expect(signedHeaderList(msg)).toBe('From:To:Subject:Date:Message-ID:From');
    const withExtra = Buffer.from(msg.toString('latin1').replace('From: Joe', 'From: Mallory <m@evil.example>\r\nFrom: Joe'), 'latin1');
    const [r] = await verifyMessage(withExtra, { resolver });
    expect(r?.result).toBe('fail');
  });

  it('signs only the listed fields that are present, plus oversigned ones', async () => {
    const msg = await signed({ ...rsa(), headers: ['from', 'subject', 'x-absent'], oversignHeaders: ['from', 'subject'] });
    expect(signedHeaderList(msg)).toBe('From:Subject:From:Subject');
  });

  it('tampering with the body, Subject or From fails', async () => {
    const msg = (await signed(rsa())).toString('latin1');
    for (const [from, to, reason] of [
      ['hungry yet', 'hungry now', 'body hash did not verify'],
      ['Is dinner ready?', 'Is lunch ready?', 'signature did not verify'],
      ['From: Joe <joe@', 'From: Joe <bob@', 'signature did not verify'],
    ]) {
      const [r] = await verifyMessage(Buffer.from(msg.replace(from as string, to as string), 'latin1'), { resolver });
      expect(r).toMatchObject({ result: 'fail', reason });
    }
  });

  it('relaxed survives whitespace changes and header refolding; simple does not', async () => {
    const relaxed = (await signed({ ...rsa(), canonicalization: 'relaxed/relaxed' })).toString('latin1');
    const simple = (await signed({ ...rsa(), canonicalization: 'simple/simple' })).toString('latin1');
    const mangle = (s: string) =>
      s.replace('Subject: Is dinner', 'Subject:   Is\r\n  dinner').replace('hungry yet?\r\n', 'hungry   yet?  \r\n\r\n\r\n');
    expect((await verifyMessage(Buffer.from(mangle(relaxed), 'latin1'), { resolver }))[0]?.result).toBe('pass');
    expect((await verifyMessage(Buffer.from(mangle(simple), 'latin1'), { resolver }))[0]?.result).toBe('fail');
  });

  it('l= signs a body prefix and reports the unsigned rest', async () => {
    const msg = await signed({ ...rsa(), bodyLength: true });
    const appended = Buffer.concat([msg, Buffer.from('Appended by a list\r\n')]);
    const [r] = await verifyMessage(appended, { resolver });
    expect(r).toMatchObject({ result: 'pass', unsignedBodyBytes: 20 });
  });

  it('l= longer than the body is a permerror', async () => {
    const msg = (await signed({ ...rsa(), bodyLength: true })).toString('latin1');
    const truncated = msg.replace('Are you hungry yet?\r\n', '');
    const [r] = await verifyMessage(Buffer.from(truncated, 'latin1'), { resolver });
    expect(r).toMatchObject({ result: 'permerror', reason: expect.stringMatching(/longer than the body/) });
  });

  it('i=, x=, z= are written and honoured', async () => {
    const now = () => 1_700_000_000_000;
    const msg = await signed({ ...rsa(), identity: 'joe@mail.example.org', expiresIn: 3600, copyHeaders: true }, MESSAGE, now);
    const text = msg.toString('latin1');
    expect(text).toMatch(/i=joe@mail\.example\.org;/);
    expect(text).toMatch(/t=1700000000;/);
    expect(text).toMatch(/x=1700003600;/);
    expect(text).toMatch(/z=From:Joe=20<joe@example\.org>/);
    expect((await verifyMessage(msg, { resolver, now }))[0]).toMatchObject({ result: 'pass', identity: 'joe@mail.example.org' });
    const later = () => 1_700_010_000_000;
    expect((await verifyMessage(msg, { resolver, now: later }))[0]).toMatchObject({
      result: 'permerror',
      reason: expect.stringMatching(/expired/),
    });
  });

  it('random messages round-trip in every canonicalization', async () => {
    const line = fc.array(fc.constantFrom('a', 'b', ' ', '\t', '\xe4', '=', ':'), { maxLength: 30 }).map((p) => p.join(''));
    await fc.assert(
      fc.asyncProperty(
        line,
        fc.array(line, { maxLength: 8 }),
        fc.constantFrom('simple/simple', 'simple/relaxed', 'relaxed/simple', 'relaxed/relaxed'),
        async (subject, bodyLines, canonicalization) => {
          const message = Buffer.from(`From: a@example.org\r\nSubject:${subject}\r\n\r\n${bodyLines.join('\r\n')}`, 'latin1');
          const msg = await signed({ ...ed(), canonicalization }, message);
          const [r] = await verifyMessage(msg, { resolver });
          expect(r?.result).toBe('pass');
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('verification outcomes', () => {
  const withSelector = async (selector: string) => {
    const msg = (await signed(rsa())).toString('latin1').replace('s=rsa;', `s=${selector};`);
    return (await verifyMessage(Buffer.from(msg, 'latin1'), { resolver }))[0];
  };

  it('a message without signatures gives no results', async () => {
    expect(await verifyMessage(MESSAGE, { resolver })).toEqual([]);
  });
  it('missing key: permerror', async () => {
    expect(await withSelector('nokey')).toMatchObject({ result: 'permerror', reason: expect.stringMatching(/no key record/) });
  });
  it('DNS failure: temperror', async () => {
    expect(await withSelector('dnsfail')).toMatchObject({ result: 'temperror' });
  });
  it('revoked key: permerror', async () => {
    expect(await withSelector('revoked')).toMatchObject({ result: 'permerror', reason: expect.stringMatching(/revoked/) });
  });
  it('unreadable key: permerror', async () => {
    expect(await withSelector('broken')).toMatchObject({ result: 'permerror' });
  });
  it('key h= without sha256: permerror', async () => {
    expect(await withSelector('sha1only')).toMatchObject({ result: 'permerror', reason: expect.stringMatching(/h=/) });
  });
  it('key s= without email: permerror', async () => {
    expect(await withSelector('web')).toMatchObject({ result: 'permerror', reason: expect.stringMatching(/s=/) });
  });
  it('testing key (t=y): the result says so', async () => {
    expect(await withSelector('testing')).toMatchObject({ testing: true, keyBits: 2048 });
  });
  it('t=s forbids i= in a subdomain', async () => {
    const msg = (await signed({ ...rsa(), identity: 'joe@sub.example.org' })).toString('latin1').replace('s=rsa;', 's=strict;');
    expect((await verifyMessage(Buffer.from(msg, 'latin1'), { resolver }))[0]).toMatchObject({
      result: 'permerror',
      reason: expect.stringMatching(/t=s/),
    });
  });
  it('a 1024-bit key passes by default and fails a 2048-bit minimum', async () => {
    const msg = await signed({ domain: 'example.org', selector: 'small', privateKey: keys.rsa1024.pem });
    expect((await verifyMessage(msg, { resolver }))[0]).toMatchObject({ result: 'pass', keyBits: 1024 });
    expect((await verifyMessage(msg, { resolver, minKeyBits: 2048 }))[0]).toMatchObject({
      result: 'permerror',
      reason: expect.stringMatching(/too small/),
    });
  });
  it('a 512-bit key never passes', async () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 512 });
    const p = weak.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    const r = new MemoryKeyResolver({ 'weak._domainkey.example.org': `v=DKIM1; p=${p}` });
    // Signed by hand-crafting: the signer refuses such keys, so swap the selector on a good signature.
    const msg = (await signed(rsa())).toString('latin1').replace('s=rsa;', 's=weak;');
    expect((await verifyMessage(Buffer.from(msg, 'latin1'), { resolver: r }))[0]).toMatchObject({
      result: 'permerror',
      reason: expect.stringMatching(/too small \(512/),
    });
  });
  it('rsa-sha1 is refused (RFC 8301)', async () => {
    const msg = (await signed(rsa())).toString('latin1').replace('a=rsa-sha256', 'a=rsa-sha1');
    expect((await verifyMessage(Buffer.from(msg, 'latin1'), { resolver }))[0]).toMatchObject({
      result: 'permerror',
      reason: expect.stringMatching(/RFC 8301/),
    });
  });
  it('an Ed25519 signature against an RSA key record: permerror', async () => {
    const msg = (await signed(ed())).toString('latin1').replace('s=ed;', 's=rsa;');
    expect((await verifyMessage(Buffer.from(msg, 'latin1'), { resolver }))[0]).toMatchObject({
      result: 'permerror',
      reason: expect.stringMatching(/does not match/),
    });
  });
  it('one bad signature does not hide a good one', async () => {
    const good = await signMessage(MESSAGE, rsa());
    const bad = good.replace(/b=[^;]*$/, 'b=AAAA\r\n');
    const results = await verifyMessage(Buffer.concat([Buffer.from(bad + good), MESSAGE]), { resolver });
    expect(results.map((r) => r.result)).toEqual(['fail', 'pass']);
  });
  it('verifies at most maxSignatures; the rest are policy', async () => {
    const sig = await signMessage(MESSAGE, rsa());
    const msg = Buffer.concat([Buffer.from(sig.repeat(4)), MESSAGE]);
    const results = await verifyMessage(msg, { resolver, maxSignatures: 2 });
    expect(results.map((r) => r.result)).toEqual(['pass', 'pass', 'policy', 'policy']);
  });
  it('a header section over the limit gives a policy result, not an exception', async () => {
    const msg = Buffer.concat([Buffer.from(await signMessage(MESSAGE, rsa())), Buffer.from(`X-Big: ${'a'.repeat(2000)}\r\n`), MESSAGE]);
    const results = await verifyMessage(msg, { resolver, maxHeaderBytes: 1000 });
    expect(results[0]).toMatchObject({ result: 'policy' });
  });
  it('one lookup per distinct key name, started at end of headers', async () => {
    const names: string[] = [];
    const counting = {
      lookup: async (name: string) => {
        names.push(name);
        return resolver.lookup(name);
      },
    };
    const sig = await signMessage(MESSAGE, rsa());
    const v = new Verifier({ resolver: counting });
    const { headers, body } = splitMessage(Buffer.concat([Buffer.from(sig + sig), MESSAGE]));
    for (const h of headers) v.header(h);
    v.endOfHeaders();
    expect(names).toEqual(['rsa._domainkey.example.org']);
    v.body(body);
    expect((await v.finish()).map((r) => r.result)).toEqual(['pass', 'pass']);
  });
  it('a slow key lookup does not hold up body hashing', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = {
      lookup: async (name: string) => {
        await gate;
        return resolver.lookup(name);
      },
    };
    const msg = await signed(rsa());
    const v = new Verifier({ resolver: slow });
    const { headers, body } = splitMessage(msg);
    for (const h of headers) v.header(h);
    v.endOfHeaders();
    v.body(body);
    const done = v.finish();
    release();
    expect((await done)[0]?.result).toBe('pass');
  });
});

describe('signer input checks', () => {
  it('refuses RSA keys under 1024 bits, mismatched algorithms, and bad identities', () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey;
    expect(() => new Signer({ domain: 'example.org', selector: 's', privateKey: weak })).toThrow(/RSA key of 512 bits, under 1024/);
    expect(() => new Signer({ ...rsa(), algorithm: 'ed25519-sha256' })).toThrow(DkimError);
    expect(() => new Signer({ ...rsa(), identity: 'joe@example.com' })).toThrow(/must be an address in example.org/);
    expect(() => new Signer({ ...rsa(), privateKey: 'not a pem' })).toThrow(/the private key does not hold a PEM private key/);
    expect(() => new Signer({ ...rsa(), canonicalization: 'fancy' })).toThrow(/canonicalization/);
  });
  it('reads PKCS#1 and PKCS#8 PEM', async () => {
    for (const pem of [keys.rsa2048.pem, keys.rsa2048.pkcs1Pem as string]) {
      const msg = await signed({ domain: 'example.org', selector: 'rsa', privateKey: pem });
      expect((await verifyMessage(msg, { resolver }))[0]?.result).toBe('pass');
    }
  });
  it('refuses a message without From', async () => {
    await expect(signMessage(Buffer.from('Subject: x\r\n\r\nbody\r\n'), rsa())).rejects.toMatchObject({ code: 'NO_FROM' });
  });
});
