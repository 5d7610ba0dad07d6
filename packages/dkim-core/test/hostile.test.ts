/**
 * Signatures and keys made to hurt a verifier: tag values that are names every JavaScript
 * object inherits, identities carrying control characters into Authentication-Results, RSA
 * keys with huge exponents or moduli, and many signatures on one message.
 */
import { Buffer } from 'node:buffer';
import { generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { countLoopTurns, dkimKeyRecord, makeKeys, type TestKeys } from '@inkan/testbed';
import { checkImportedKey, checkKeyRecordSize } from '../src/key-record.js';
import {
  formatAuthenticationResults,
  MemoryKeyResolver,
  parseAuthenticationResults,
  signMessage,
  type VerificationResult,
  verifyMessage,
} from '../src/index.js';
import { acceptPublicKey, importPublicKey, parseDkimSignature } from '../src/api/records.js';
import { rsaPublicKeyB64, withManySignatures } from '../bench/hostile.js';

const MESSAGE = Buffer.from('From: Joe <joe@example.org>\r\nTo: Suzie <suzie@example.net>\r\nSubject: hostile\r\n\r\nHello.\r\n', 'latin1');
const INHERITED = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__', 'prototype'];
const CTL_IN_OUTPUT = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|\r?\n(?![ \t])/;

let keys: TestKeys;
let resolver: MemoryKeyResolver;

beforeAll(() => {
  keys = makeKeys();
  const e3 = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 });
  const records: Record<string, string> = {
    'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    // 3072-bit modulus, 3071-bit exponent: each check would cost about 100 normal ones
    'huge-e._domainkey.example.org': `v=DKIM1; k=rsa; p=${rsaPublicKeyB64(3072, 3071)}`,
    'big-e._domainkey.example.org': `v=DKIM1; k=rsa; p=${rsaPublicKeyB64(2048, 2047)}`,
    'e33._domainkey.example.org': `v=DKIM1; k=rsa; p=${rsaPublicKeyB64(2048, 33)}`,
    'e3._domainkey.example.org': `v=DKIM1; k=rsa; p=${e3.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`,
  };
  for (const name of INHERITED) {
    records[`k-${name.toLowerCase()}._domainkey.example.org`] = `v=DKIM1; k=${name}; p=${keys.rsa2048.p}`;
    records[`h-${name.toLowerCase()}._domainkey.example.org`] = `v=DKIM1; h=${name}; p=${keys.rsa2048.p}`;
    records[`s-${name.toLowerCase()}._domainkey.example.org`] = `v=DKIM1; s=${name}; p=${keys.rsa2048.p}`;
    records[`t-${name.toLowerCase()}._domainkey.example.org`] = `v=DKIM1; t=${name}; p=${keys.rsa2048.p}`;
  }
  resolver = new MemoryKeyResolver(records);
  Object.assign(signers, { e3: e3.privateKey });
});

const signers: { e3?: import('node:crypto').KeyObject } = {};

async function signed(
  selector: string,
  extra: Partial<Parameters<typeof signMessage>[1]> = {},
  privateKey = keys.rsa2048.privateKey,
): Promise<Buffer> {
  const sig = await signMessage(MESSAGE, { domain: 'example.org', selector, privateKey, ...extra });
  return Buffer.concat([Buffer.from(sig, 'latin1'), MESSAGE]);
}

/** A DKIM-Signature field with one tag replaced (or added). */
function withTag(message: Buffer, tag: string, value: string): Buffer {
  const text = message.toString('latin1');
  const re = new RegExp(`([;:]\\s*)${tag}=[^;]*`);
  const out = re.test(text) ? text.replace(re, `$1${tag}=${value}`) : text.replace('DKIM-Signature: ', `DKIM-Signature: ${tag}=${value}; `);
  return Buffer.from(out, 'latin1');
}

describe('tag values that name inherited JavaScript properties', () => {
  it('a=, c=, q= in DKIM-Signature: permerror for that signature only, nothing thrown', async () => {
    const good = await signed('rsa');
    for (const name of INHERITED) {
      for (const tag of ['a', 'c', 'q']) {
        const bad = withTag(good, tag, name);
        // The bad signature above a good copy of the same one: the good one still passes.
        const both = Buffer.concat([bad.subarray(0, bad.indexOf('From: ')), good]);
        const results = await verifyMessage(both, { resolver });
        expect(
          results.map((r) => r.result),
          `${tag}=${name}`,
        ).toEqual(['permerror', 'pass']);
        expect(results[0]?.reason).toMatch(tag === 'a' ? /unknown algorithm/ : tag === 'c' ? /unknown canonicalization/ : /query method/);
      }
    }
  });

  it('k=, h=, s=, t= in key records: permerror (k=, h=, s=) or ignored (t=), never a throw', async () => {
    for (const name of INHERITED) {
      const lower = name.toLowerCase();
      const results = await Promise.all(
        ['k', 'h', 's', 't'].map(async (tag) => (await verifyMessage(await signed(`${tag}-${lower}`), { resolver }))[0]),
      );
      expect(
        results.map((r) => r?.result),
        name,
      ).toEqual(['permerror', 'permerror', 'permerror', 'pass']);
    }
  });

  it('parseDkimSignature refuses inherited names as algorithms', () => {
    for (const name of INHERITED) {
      const r = parseDkimSignature(`v=1; a=${name}; d=example.org; s=x; h=from; bh=AAAA; b=AAAA`);
      expect(r).toMatchObject({ ok: false, error: `unknown algorithm a=${name}` });
    }
  });
});

describe('control characters in i= (dkim-quoted-printable =0A, =0D, =00)', () => {
  const BASE = 'v=1; a=rsa-sha256; d=example.org; s=x; h=from; bh=AAAA; b=AAAA';
  it('an identity that decodes to a control character is a permerror naming it', () => {
    for (const i of [
      'joe=0A@example.org',
      '@example.org=0D=0AAuthentication-Results:=20x',
      'joe=00@example.org',
      'a=7Fb@example.org',
      '=09@example.org',
    ]) {
      const r = parseDkimSignature(`${BASE}; i=${i}`);
      expect(r.ok, i).toBe(false);
      if (!r.ok) {
        expect(r.error).toMatch(/control characters/);
        expect(r.error).not.toMatch(/[\x00-\x1f\x7f]/);
        expect(r.auid).toBe(i); // reported as written (encoded), which is printable
      }
    }
  });
  it('other malformed identities are refused; usual ones still parse', () => {
    expect(parseDkimSignature(`${BASE}; i=a,b@example.org`)).toMatchObject({ ok: false, error: expect.stringMatching(/local part/) });
    expect(parseDkimSignature(`${BASE}; i=joe@exa(mple.org`)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/malformed domain/),
    });
    for (const i of ['@example.org', 'joe@example.org', 'joe.q+tag@mail.example.org', '"joe q"@example.org', 'j=C3=B6e@example.org']) {
      expect(parseDkimSignature(`${BASE}; i=${i}`).ok, i).toBe(true);
    }
  });
  it('a signature whose i= forges a field gets an A-R with no line break and no forged field', async () => {
    const good = await signed('rsa', { identity: 'joe@example.org' });
    const forged = withTag(good, 'i', '@example.org=0AAuthentication-Results:=20mx.example.net=3B=20dkim=3Dpass');
    const results = await verifyMessage(forged, { resolver });
    expect(results[0]).toMatchObject({ result: 'permerror', reason: expect.stringMatching(/control characters/) });
    const ar = formatAuthenticationResults('mx.example.net', results);
    expect(ar).not.toMatch(CTL_IN_OUTPUT);
    expect(ar.split(/\r\n(?=[ \t])/).length).toBeGreaterThan(0);
    expect(ar).not.toMatch(/(^|\n)Authentication-Results:/);
  });
});

describe('formatAuthenticationResults never writes a control character', () => {
  const base: VerificationResult = {
    method: 'dkim',
    result: 'permerror',
    code: 'signature-syntax',
    domain: 'example.org',
    selector: 's',
    algorithm: 'rsa-sha256',
    testing: false,
  };
  it('drops property values that hold one, "?" in reason and comments', () => {
    const ar = formatAuthenticationResults('mx\n.example.net', [
      { ...base, identity: 'joe\n@example.org', reason: 'bad\r\nAuthentication-Results: x; dkim=pass\x00' },
      { ...base, result: 'pass', domain: 'exa\r\n mple.org', selector: 'a\x00b', identity: 'joe@example.org' },
    ]);
    expect(ar).not.toMatch(CTL_IN_OUTPUT);
    expect(ar).not.toMatch(/[\x00\x7f]/);
    const parsed = parseAuthenticationResults(ar);
    expect(parsed?.authservId).toBe('mx?.example.net');
    expect(parsed?.results[0]?.reason).toBe('bad??Authentication-Results: x; dkim=pass?');
    expect(parsed?.results[0]?.properties.map((p) => p.property)).toEqual(['d', 's', 'a']);
    expect(parsed?.results[1]?.properties).toEqual([
      { ptype: 'header', property: 'i', value: 'joe@example.org' },
      { ptype: 'header', property: 'a', value: 'rsa-sha256' },
    ]);
    const entries = formatAuthenticationResults('mx', [
      { method: 'dk\nim', result: 'pass\r', comments: ['a\nb'], properties: [{ ptype: 'hea\x00der', property: 'd', value: 'x' }] },
    ]);
    expect(entries).not.toMatch(CTL_IN_OUTPUT);
  });
});

describe('RSA key limits', () => {
  it('a 3072-bit key with a 3071-bit exponent: policy, exponent too large; too long a p= is not even read', async () => {
    const msg = withManySignatures(MESSAGE, { domain: 'example.org', selector: 'huge-e', dkim: 1, domainKeys: 0, signatureBytes: 384 });
    const [r] = await verifyMessage(msg, { resolver });
    expect(r).toMatchObject({ result: 'policy', keyBits: 3072, reason: 'RSA public exponent too large (3071 bits, maximum 32)' });
    const [unread] = await verifyMessage(msg, { resolver, maxKeyBits: 2048 });
    expect(unread).toMatchObject({
      result: 'policy',
      reason: expect.stringMatching(/^key too large \(p= holds \d+ octets, more than an RSA key of 2048 bits can\)/),
    });
    expect(unread?.keyBits).toBeUndefined();
  });
  it('a 2048-bit key with a 2047-bit or a 33-bit exponent: policy, exponent too large', async () => {
    for (const selector of ['big-e', 'e33']) {
      const [r] = await verifyMessage(
        withManySignatures(MESSAGE, { domain: 'example.org', selector, dkim: 1, domainKeys: 0, signatureBytes: 256 }),
        { resolver },
      );
      expect(r, selector).toMatchObject({
        result: 'policy',
        keyBits: 2048,
        reason: expect.stringMatching(/^RSA public exponent too large \(\d+ bits, maximum 32\)/),
      });
    }
  });
  it('e = 3 is fine; maxKeyBits lowers the size cap (policy), minKeyBits stays a permerror', async () => {
    const msg = await signed('e3', {}, signers.e3);
    expect((await verifyMessage(msg, { resolver }))[0]).toMatchObject({ result: 'pass', keyBits: 2048 });
    expect((await verifyMessage(msg, { resolver, maxKeyBits: 1536 }))[0]).toMatchObject({
      result: 'policy',
      reason: 'key too large (2048 bits, maximum 1536)',
    });
    expect((await verifyMessage(msg, { resolver, minKeyBits: 3000 }))[0]).toMatchObject({
      result: 'permerror',
      reason: 'key too small (2048 bits, minimum 3000)',
    });
  });
  it('checkImportedKey: even and tiny exponents are no RSA key; ed25519 is not limited', () => {
    expect(checkImportedKey('rsa', { bits: 2048, publicExponent: 65537n })).toBeUndefined();
    expect(checkImportedKey('rsa', { bits: 2048, publicExponent: 2n ** 32n - 1n })).toBeUndefined();
    expect(checkImportedKey('rsa', { bits: 2048, publicExponent: 2n ** 32n + 1n })).toMatchObject({ result: 'policy' });
    expect(checkImportedKey('rsa', { bits: 2048, publicExponent: 65536n })).toMatchObject({ result: 'permerror' });
    expect(checkImportedKey('rsa', { bits: 2048, publicExponent: 1n })).toMatchObject({ result: 'permerror' });
    expect(checkImportedKey('rsa', { bits: 8192, publicExponent: 65537n })).toMatchObject({
      result: 'policy',
      reason: 'key too large (8192 bits, maximum 4096)',
    });
    expect(checkImportedKey('rsa', { bits: 8192, publicExponent: 65537n }, { maxKeyBits: 8192 })).toBeUndefined();
    expect(checkImportedKey('ed25519', { bits: 256 })).toBeUndefined();
  });
  it('checkKeyRecordSize: a normal 4096-bit key fits, a longer p= does not', () => {
    const p4096 = rsaPublicKeyB64(4096, 17);
    expect(checkKeyRecordSize('rsa', p4096)).toBeUndefined();
    expect(checkKeyRecordSize('rsa', p4096, { maxKeyBits: 1024 })).toMatchObject({ result: 'policy' });
    expect(checkKeyRecordSize('rsa', 'A'.repeat(100_000))).toMatchObject({ result: 'policy' });
    const imported = importPublicKey('rsa', p4096);
    expect(imported).toMatchObject({ ok: true, bits: 4096 });
    expect(imported.ok && imported.publicExponent?.toString(2).length).toBe(17);
  });
  it('acceptPublicKey: the size limits, checked before and after parsing, carry the key size when it was read', () => {
    const p4096 = rsaPublicKeyB64(4096, 17);
    expect(acceptPublicKey({ keyType: 'rsa', publicKey: p4096 })).toMatchObject({ ok: true, keyType: 'rsa', bits: 4096 });
    const unread = acceptPublicKey({ keyType: 'rsa', publicKey: p4096 }, { maxKeyBits: 1024 });
    expect(unread).toMatchObject({ ok: false, result: 'policy', reason: expect.stringMatching(/^key too large \(p= holds/) });
    expect(unread.bits).toBeUndefined();
    expect(acceptPublicKey({ keyType: 'rsa', publicKey: p4096 }, { maxKeyBits: 4095 })).toMatchObject({
      ok: false,
      result: 'policy',
      reason: 'key too large (4096 bits, maximum 4095)',
      bits: 4096,
    });
    expect(acceptPublicKey({ keyType: 'rsa', publicKey: p4096 }, { minKeyBits: 8192, maxKeyBits: 8192 })).toMatchObject({
      ok: false,
      result: 'permerror',
      bits: 4096,
    });
    expect(acceptPublicKey({ keyType: 'rsa', publicKey: rsaPublicKeyB64(2048, 2047) })).toMatchObject({
      ok: false,
      result: 'policy',
      reason: expect.stringMatching(/exponent too large/),
      bits: 2048,
    });
  });
});

describe('many signatures on one message', () => {
  it('checks one signature per turn of the event loop', async () => {
    let message = MESSAGE;
    for (let i = 0; i < 6; i++)
      message = Buffer.concat([
        Buffer.from(await signMessage(message, { domain: 'example.org', selector: 'rsa', privateKey: keys.rsa2048.privateKey }), 'latin1'),
        message,
      ]);
    const { result: results, turns } = await countLoopTurns(() => verifyMessage(message, { resolver }));
    expect(results.map((r) => r.result)).toEqual(Array(6).fill('pass'));
    // Six RSA checks, each after a yield: the other work on the loop ran between them.
    expect(turns).toBeGreaterThanOrEqual(6);
  });
  it('signatures past maxSignatures get policy and cost no key lookup', async () => {
    const names: string[] = [];
    const counting = {
      lookup: (name: string) => {
        names.push(name);
        return resolver.lookup(name);
      },
    };
    const msg = withManySignatures(MESSAGE, { domain: 'example.org', selector: 'rsa', dkim: 15, domainKeys: 0, signatureBytes: 256 });
    const results = await verifyMessage(msg, { resolver: counting, maxSignatures: 10 });
    expect(results.filter((r) => r.result === 'fail')).toHaveLength(10);
    expect(results.slice(10).map((r) => r.reason)).toEqual(Array(5).fill('not verified: more than 10 signatures'));
    expect(names).toEqual(['rsa._domainkey.example.org']);
  });
});
