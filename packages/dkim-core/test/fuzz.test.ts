/** Hostile input: whatever the signature header or key record says, verifyMessage gives results, never throws. */
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryKeyResolver, parseAuthenticationResults, parseKeysFile, verifyMessage } from '../src/index.js';
import { parseDkimSignature, parseKeyRecord } from '../src/api/records.js';

const RESULTS = ['pass', 'fail', 'neutral', 'policy', 'temperror', 'permerror', 'none'];
const BODY = 'From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n';

/** Pieces that make near-valid signatures, so fuzzing reaches deep code, plus raw noise. */
const sigPiece = fc.oneof(
  fc.constantFrom(
    'v=1',
    'v=2',
    'a=rsa-sha256',
    'a=ed25519-sha256',
    'a=rsa-sha1',
    'a=',
    'd=example.org',
    'd=',
    'd=..',
    's=sel',
    's=',
    'h=from',
    'h=from:to:from:from',
    'h=',
    'h=::',
    'bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
    'bh=***',
    'b=AAAA',
    'b=',
    'c=relaxed/relaxed',
    'c=simple',
    'c=/',
    'l=0',
    'l=99999999999999999999999',
    'l=-1',
    'i=@example.org',
    'i=x@evil.example',
    'i=@',
    't=1',
    'x=0',
    'x=99999999999',
    'z=a:b|c',
    'q=dns/txt',
    'q=',
    ';',
    '=',
    '\r\n ',
    '\t',
  ),
  fc.string({ maxLength: 20 }),
);
const keyPiece = fc.oneof(
  fc.constantFrom(
    'v=DKIM1',
    'v=DKIM2',
    'k=rsa',
    'k=ed25519',
    'k=',
    'p=',
    'p=AAAA',
    'p=MIGfMA0',
    'h=sha256',
    'h=',
    's=email',
    's=*',
    't=y:s',
    't=',
    'n=x',
    '"',
    ';',
    '=',
  ),
  fc.string({ maxLength: 20 }),
);

describe('fuzzed input never throws', () => {
  it('signature headers and key records', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sigPiece, { maxLength: 14 }), fc.array(keyPiece, { maxLength: 8 }), async (sig, key) => {
        const value = sig.join('; ');
        expect(() => parseDkimSignature(value)).not.toThrow();
        expect(() => parseKeyRecord(key.join('; '))).not.toThrow();
        const resolver = new MemoryKeyResolver({ 'sel._domainkey.example.org': key.join('; ') });
        const message = Buffer.concat([Buffer.from(`DKIM-Signature: ${value}\r\n`, 'latin1'), Buffer.from(BODY)]);
        const results = await verifyMessage(message, { resolver });
        expect(results).toHaveLength(1);
        expect(RESULTS).toContain(results[0]?.result);
        if (results[0]?.result !== 'pass') expect(results[0]?.reason).toBeTruthy();
      }),
      { numRuns: 3000 },
    );
  });

  it('random bytes as a whole message', async () => {
    const resolver = new MemoryKeyResolver();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
        const msg = Buffer.concat([Buffer.from('DKIM-Signature:'), Buffer.from(bytes)]);
        const results = await verifyMessage(msg, { resolver });
        for (const r of results) expect(RESULTS).toContain(r.result);
      }),
      { numRuns: 2000 },
    );
  });

  it('Authentication-Results and keys-file parsers', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        expect(() => parseAuthenticationResults(text)).not.toThrow();
        try {
          parseKeysFile(text);
        } catch (error) {
          // A keys file that cannot be read is reported with a file:line message.
          expect((error as Error).message).toMatch(/^keys file:\d+: /);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
