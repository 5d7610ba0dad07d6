/**
 * DomainKeys signatures made to hurt a verifier: inherited JavaScript property names as tag
 * values, RSA keys too large or with huge exponents, a sender address with control
 * characters, and more signatures than the cap, which counts DKIM and DomainKeys together.
 */
import { Buffer } from 'node:buffer';
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatAuthenticationResults, type KeyResolver, MemoryKeyResolver, parseHeaderFields } from '@inkan/dkim-core';
import { countLoopTurns, makeKeys, type TestKeys } from '@inkan/testbed';
import { CombinedVerifier, verifyDkimAndDomainKeys, verifyDomainKeys } from '../src/index.js';
import { baseMessage } from './helpers.js';

const INHERITED = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'prototype'];

let keys: TestKeys;
let resolver: MemoryKeyResolver;

/** p= of an RSA public key with a random odd modulus and exponent of these sizes (no private key). */
function oddExponentKey(modulusBits: number, exponentBits: number): string {
  const odd = (bits: number) => {
    const b = randomBytes(bits / 8);
    b[0] = (b[0] as number) | 0x80;
    b[b.length - 1] = (b[b.length - 1] as number) | 1;
    return b.toString('base64url');
  };
  return createPublicKey({ key: { kty: 'RSA', n: odd(modulusBits), e: odd(exponentBits) }, format: 'jwk' })
    .export({ format: 'der', type: 'spki' })
    .toString('base64');
}

beforeAll(() => {
  keys = makeKeys();
  resolver = new MemoryKeyResolver({
    'dk._domainkey.example.org': `k=rsa; p=${keys.rsa2048.p}`,
    'big-e._domainkey.example.org': `k=rsa; p=${oddExponentKey(2048, 2040)}`,
  });
});

/** Random b= below any 2048-bit modulus: reaches the RSA operation, and fails there. */
const randomB = () => {
  const b = randomBytes(256);
  b[0] = (b[0] as number) & 0x7f;
  return b.toString('base64');
};

/** `message` under `dkim` DKIM-Signature and `dk` DomainKey-Signature fields (selector dk, bodies hashed right). */
function manySignatures(message: Buffer, dkim: number, dk: number, selector = 'dk'): Buffer {
  const body = message.subarray(message.indexOf('\r\n\r\n') + 4);
  const bh = createHash('sha256').update(body).digest('base64');
  const fields: string[] = [];
  for (let i = 0; i < dkim; i++)
    fields.push(`DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=example.org; s=${selector}; h=from; bh=${bh}; b=${randomB()}\r\n`);
  for (let i = 0; i < dk; i++) fields.push(`DomainKey-Signature: a=rsa-sha1; c=simple; d=example.org; s=${selector}; b=${randomB()}\r\n`);
  return Buffer.concat([Buffer.from(fields.join(''), 'latin1'), message]);
}

describe('DomainKey-Signature tags naming inherited properties', () => {
  it('a=, c=, q=: permerror with a reason, nothing thrown, the DKIM side unaffected', async () => {
    for (const name of INHERITED) {
      for (const tag of ['a', 'c', 'q']) {
        const field = `DomainKey-Signature: ${tag}=${name}; d=example.org; s=dk; b=${randomB()}\r\n`;
        const { domainkeys } = await verifyDkimAndDomainKeys(Buffer.concat([Buffer.from(field), baseMessage()]), { resolver });
        expect(domainkeys[0], `${tag}=${name}`).toMatchObject({ result: 'permerror', reason: expect.stringMatching(/unsupported/) });
      }
    }
  });
});

describe('RSA key limits for DomainKeys', () => {
  it('a huge exponent: policy, no RSA operation; maxKeyBits below the key: policy', async () => {
    const [r] = await verifyDomainKeys(manySignatures(baseMessage(), 0, 1, 'big-e'), { resolver });
    expect(r).toMatchObject({ result: 'policy', keyBits: 2048, reason: 'RSA public exponent too large (2040 bits, maximum 32)' });
    const [small] = await verifyDomainKeys(manySignatures(baseMessage(), 0, 1), { resolver, maxKeyBits: 1024 });
    expect(small).toMatchObject({ result: 'policy', reason: expect.stringMatching(/^key too large/) });
    const combined = await verifyDkimAndDomainKeys(manySignatures(baseMessage(), 1, 1), { resolver, maxKeyBits: 1024 });
    expect([...combined.dkim, ...combined.domainkeys].map((x) => x.result)).toEqual(['policy', 'policy']);
  });
});

describe('a sender address with control characters', () => {
  it('is a permerror, and the address is not reported (it would reach A-R)', async () => {
    const message = baseMessage({ from: '"a\x01b"@example.org' });
    const [r] = await verifyDomainKeys(manySignatures(message, 0, 1), { resolver });
    // dkim-core's parseMailboxList refuses the field: no usable sender.
    expect(r).toMatchObject({ result: 'permerror', code: 'sender-invalid' });
    expect(r?.identity).toBeUndefined();
    expect(formatAuthenticationResults('mx', [r!])).not.toMatch(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/);
  });

  it('a TAB inside a quoted local part (which the parser keeps) is refused the same way', async () => {
    const [r] = await verifyDomainKeys(manySignatures(baseMessage({ from: '"a\tb"@example.org' }), 0, 1), { resolver });
    expect(r).toMatchObject({ result: 'permerror', code: 'sender-invalid', reason: 'From address contains control characters' });
    expect(r?.identity).toBeUndefined();
  });
});

describe('one signature cap for DKIM and DomainKeys together', () => {
  const counting = () => {
    const names: string[] = [];
    const r: KeyResolver = {
      lookup: (name) => {
        names.push(name);
        return resolver.lookup(name);
      },
    };
    return { names, resolver: r };
  };
  it('12 DKIM + 12 DomainKeys, cap 10: ten DKIM checked, the rest "not verified", one key lookup', async () => {
    const c = counting();
    const { dkim, domainkeys } = await verifyDkimAndDomainKeys(manySignatures(baseMessage(), 12, 12), {
      resolver: c.resolver,
      maxSignatures: 10,
    });
    expect(dkim.map((r) => r.result)).toEqual([...Array(10).fill('fail'), 'policy', 'policy']);
    expect(domainkeys.map((r) => r.result)).toEqual(Array(12).fill('policy'));
    expect(new Set([...dkim.slice(10), ...domainkeys].map((r) => r.reason))).toEqual(new Set(['not verified: more than 10 signatures']));
    expect(c.names).toEqual(['dk._domainkey.example.org']);
  });
  it('3 DKIM + 12 DomainKeys, default cap (10): 3 + 7 checked, one check per event-loop turn', async () => {
    const {
      result: { dkim, domainkeys },
      turns,
    } = await countLoopTurns(() => verifyDkimAndDomainKeys(manySignatures(baseMessage(), 3, 12), { resolver }));
    expect(dkim.map((r) => r.result)).toEqual(Array(3).fill('fail'));
    expect(domainkeys.map((r) => r.result)).toEqual([...Array(7).fill('fail'), ...Array(5).fill('policy')]);
    expect(turns).toBeGreaterThanOrEqual(7);
  });
  it('a per-kind cap only lowers the shared one; a CombinedVerifier fed without endOfHeaders() still counts both', async () => {
    const { dkim, domainkeys } = await verifyDkimAndDomainKeys(manySignatures(baseMessage(), 4, 4), {
      resolver,
      maxSignatures: 6,
      dkim: { maxSignatures: 2 },
    });
    expect(dkim.map((r) => r.result)).toEqual(['fail', 'fail', 'policy', 'policy']);
    expect(domainkeys.map((r) => r.result)).toEqual(['fail', 'fail', 'fail', 'fail']);
    const kind = await verifyDkimAndDomainKeys(manySignatures(baseMessage(), 4, 4), {
      resolver,
      maxSignatures: 6,
      domainKeys: { maxSignatures: 1 },
    });
    expect(kind.dkim.map((r) => r.result)).toEqual(Array(4).fill('fail'));
    expect(kind.domainkeys.map((r) => r.reason)).toEqual([
      'signature did not verify',
      ...Array(3).fill('not verified: more than 1 signatures'),
    ]);
    const shared = await verifyDkimAndDomainKeys(manySignatures(baseMessage(), 4, 4), {
      resolver,
      maxSignatures: 6,
      domainKeys: { maxSignatures: 3 },
    });
    expect(shared.domainkeys.map((r) => r.reason)).toEqual([
      ...Array(2).fill('signature did not verify'),
      ...Array(2).fill('not verified: more than 6 signatures'),
    ]);
    const v = new CombinedVerifier({ resolver, maxSignatures: 2 });
    const message = manySignatures(baseMessage(), 2, 2);
    const split = message.indexOf('\r\n\r\n') + 2;
    for (const f of parseHeaderFields(message.subarray(0, split))) v.header(f);
    v.body(message.subarray(split + 2));
    const out = await v.finish();
    expect([...out.dkim, ...out.domainkeys].map((r) => r.result)).toEqual(['fail', 'fail', 'policy', 'policy']);
  });
});
