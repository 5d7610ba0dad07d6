import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { acceptPublicKey, importPublicKey, parseKeyRecord } from '../src/api/records.js';

describe('key records (RFC 6376 §3.6.1)', () => {
  it('reads the tags with their defaults', () => {
    const r = parseKeyRecord('v=DKIM1; p=AAAA');
    expect(r).toMatchObject({
      ok: true,
      record: { keyType: 'rsa', serviceTypes: ['*'], testing: false, strict: false, publicKey: 'AAAA' },
    });
  });
  it('reads h=, s=, t=y:s, n= and ignores unknown tags', () => {
    const r = parseKeyRecord('v=DKIM1; h=sha256:sha1; k=ed25519; n=a note; s=email; t=y:s; foo=bar; p=AA AA');
    expect(r).toMatchObject({
      ok: true,
      record: {
        hashAlgorithms: ['sha256', 'sha1'],
        keyType: 'ed25519',
        notes: 'a note',
        serviceTypes: ['email'],
        testing: true,
        strict: true,
        publicKey: 'AAAA',
      },
    });
  });
  it('an empty p= is a revoked key, not an error', () => {
    expect(parseKeyRecord('v=DKIM1; k=rsa; p=')).toMatchObject({ ok: true, record: { publicKey: '' } });
  });
  it('errors: no p=, wrong v=, duplicate tags, bad base64', () => {
    expect(parseKeyRecord('v=DKIM1; k=rsa')).toMatchObject({ ok: false, error: expect.stringMatching(/no p=/) });
    expect(parseKeyRecord('v=DKIM2; p=AAAA')).toMatchObject({ ok: false, error: expect.stringMatching(/not DKIM1/) });
    expect(parseKeyRecord('p=AAAA; p=BBBB')).toMatchObject({ ok: false, error: expect.stringMatching(/duplicate/) });
    expect(parseKeyRecord('p=AA*A')).toMatchObject({ ok: false, error: expect.stringMatching(/base64/) });
  });
  it('strips stray quotes some DNS tools leave in TXT data', () => {
    expect(parseKeyRecord('"v=DKIM1; k=rsa; " "p=AAAA"')).toMatchObject({ ok: true, record: { publicKey: 'AAAA' } });
  });
});

describe('public key import', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
  const ed = generateKeyPairSync('ed25519').publicKey;
  const edSpki = ed.export({ format: 'der', type: 'spki' });

  it('RSA from SubjectPublicKeyInfo and from a bare RSAPublicKey', () => {
    const spki = importPublicKey('rsa', rsa.export({ format: 'der', type: 'spki' }).toString('base64'));
    const pkcs1 = importPublicKey('rsa', rsa.export({ format: 'der', type: 'pkcs1' }).toString('base64'));
    expect(spki).toMatchObject({ ok: true, bits: 1024 });
    expect(pkcs1).toMatchObject({ ok: true, bits: 1024 });
  });
  it('Ed25519 only as the raw 32-byte key (RFC 8463)', () => {
    expect(importPublicKey('ed25519', edSpki.subarray(12).toString('base64'))).toMatchObject({ ok: true });
    expect(importPublicKey('ed25519', edSpki.toString('base64'))).toMatchObject({ ok: false, error: expect.stringMatching(/raw 32-byte/) });
  });
  it('garbage and unknown key types are errors, not exceptions', () => {
    expect(importPublicKey('rsa', 'AAAA')).toMatchObject({ ok: false });
    expect(importPublicKey('dsa', 'AAAA')).toMatchObject({ ok: false, error: expect.stringMatching(/unknown key type/) });
  });
});

describe('acceptPublicKey: the one rule for a published key', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  const small = generateKeyPairSync('rsa', { modulusLength: 768 }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  const ed = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
  const rsaSig = { keyType: 'rsa', algorithm: 'rsa-sha256' };
  const edSig = { keyType: 'ed25519', algorithm: 'ed25519-sha256' };

  it('accepts RSA from 1024 bits and a raw Ed25519 key, each for its own algorithm', () => {
    const r = acceptPublicKey({ keyType: 'rsa', publicKey: rsa }, { signature: rsaSig });
    expect(r).toMatchObject({ ok: true, keyType: 'rsa', bits: 1024, publicExponent: 65537n });
    expect(r.ok && r.key.type).toBe('public');
    expect(acceptPublicKey({ keyType: 'ed25519', publicKey: ed.subarray(12).toString('base64') }, { signature: edSig })).toMatchObject({
      ok: true,
      keyType: 'ed25519',
      bits: 256,
    });
  });
  it('refuses, with a result, a code and a reason: revoked, k= against a=, unknown k=, garbage, too small, Ed25519 as SPKI', () => {
    const refusals: [{ keyType: string; publicKey: string }, { keyType: string; algorithm: string } | undefined, string, string, RegExp][] =
      [
        [{ keyType: 'rsa', publicKey: '' }, rsaSig, 'permerror', 'key-revoked', /^key revoked \(empty p=\)$/],
        [{ keyType: 'rsa', publicKey: rsa }, edSig, 'permerror', 'key-mismatch', /^key type k=rsa does not match a=ed25519-sha256$/],
        [
          { keyType: 'ed25519', publicKey: rsa },
          { keyType: 'rsa', algorithm: 'rsa-sha1' },
          'permerror',
          'key-mismatch',
          /does not match a=rsa-sha1/,
        ],
        [{ keyType: 'dsa', publicKey: rsa }, undefined, 'permerror', 'key-syntax', /^unknown key type k=dsa$/],
        [{ keyType: 'rsa', publicKey: 'AAAA' }, rsaSig, 'permerror', 'key-syntax', /not a valid RSA public key/],
        [{ keyType: 'rsa', publicKey: small }, rsaSig, 'permerror', 'key-too-small', /^key too small \(768 bits, minimum 1024\)$/],
        [{ keyType: 'ed25519', publicKey: ed.toString('base64') }, edSig, 'permerror', 'key-syntax', /raw 32-byte/],
        [
          { keyType: 'ed25519', publicKey: ed.subarray(13).toString('base64') },
          edSig,
          'permerror',
          'key-syntax',
          /must be 32 bytes, got 31/,
        ],
      ];
    for (const [record, signature, result, code, reason] of refusals) {
      expect(acceptPublicKey(record, signature ? { signature } : {}), JSON.stringify(record).slice(0, 60)).toMatchObject({
        ok: false,
        result,
        code,
        reason: expect.stringMatching(reason),
      });
    }
  });
});
