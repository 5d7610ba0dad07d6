import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DkimError, MAX_PRIVATE_KEY_FILE_BYTES, parsePrivateKey, readPrivateKey } from '../src/index.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
const ed = generateKeyPairSync('ed25519');
const pkcs8 = rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const pkcs1 = rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
const edPem = ed.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
/** A line of the RSA key's body: no error may contain it. */
const bodyLine = pkcs8.split('\n')[3] as string;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'inkan-keys-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function refusal(run: () => unknown): DkimError {
  try {
    run();
  } catch (error) {
    expect(DkimError.isInstance(error)).toBe(true);
    expect((error as Error).message).not.toContain(bodyLine);
    return error as DkimError;
  }
  throw new Error('expected a refusal');
}

async function readRefusal(path: string): Promise<DkimError> {
  const error = await readPrivateKey(path).then(
    () => {
      throw new Error(`expected ${path} to be refused`);
    },
    (e: unknown) => e as DkimError,
  );
  expect(DkimError.isInstance(error)).toBe(true);
  expect(error.message).toContain(path);
  expect(error.message).not.toContain(bodyLine);
  return error;
}

describe('parsePrivateKey', () => {
  it('reads PKCS#8 and PKCS#1 RSA and PKCS#8 Ed25519, as text, bytes or a KeyObject', () => {
    expect(parsePrivateKey(pkcs8)).toMatchObject({ keyType: 'rsa', bits: 1024, algorithm: 'rsa-sha256' });
    expect(parsePrivateKey(Buffer.from(pkcs1))).toMatchObject({ keyType: 'rsa', bits: 1024, algorithm: 'rsa-sha256' });
    expect(parsePrivateKey(edPem)).toMatchObject({ keyType: 'ed25519', bits: 256, algorithm: 'ed25519-sha256' });
    expect(parsePrivateKey(ed.privateKey).key).toBe(ed.privateKey);
  });
  it('refuses what cannot sign DKIM, naming the source and quoting nothing', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 768 }).privateKey;
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const encrypted = rsa.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-128-cbc', passphrase: 'x' }).toString();
    const cases: [unknown, RegExp][] = [
      [small, /^row 7 is an RSA key of 768 bits, under 1024/],
      [ec, /^row 7 holds a key of type ec/],
      [rsa.publicKey, /^row 7 is a public key, not a private key/],
      [rsa.publicKey.export({ format: 'pem', type: 'spki' }), /^row 7 holds a public key/],
      [encrypted, /^row 7 is encrypted with a passphrase/],
      [pkcs8.replace(bodyLine, `${bodyLine.slice(0, 10)}!${bodyLine.slice(11)}`), /^row 7 does not hold a PEM private key/],
      ['A'.repeat(MAX_PRIVATE_KEY_FILE_BYTES + 1), /^row 7 is larger than any private key/],
    ];
    for (const [input, reason] of cases) {
      const error = refusal(() => parsePrivateKey(input as string, 'row 7'));
      expect(error.code).toBe('KEY_UNUSABLE');
      expect(error.message).toMatch(reason);
    }
  });
  it('refuses RSA keys over 4096 bits', () => {
    const big = generateKeyPairSync('rsa', { modulusLength: 4160 }).privateKey;
    expect(refusal(() => parsePrivateKey(big)).message).toBe(
      'the private key is an RSA key of 4160 bits, over 4096, which verifiers do not use',
    );
  });
});

describe('readPrivateKey', () => {
  it('reads a key file', async () => {
    const file = join(dir, 'good.private');
    writeFileSync(file, edPem);
    expect(await readPrivateKey(file)).toMatchObject({ keyType: 'ed25519' });
  });
  it('missing, a directory, a device: KEY_UNREADABLE or refused before reading', async () => {
    expect(await readRefusal(join(dir, 'nothere.private'))).toMatchObject({
      code: 'KEY_UNREADABLE',
      message: expect.stringMatching(/: ENOENT$/),
    });
    mkdirSync(join(dir, 'adir'));
    expect(await readRefusal(join(dir, 'adir'))).toMatchObject({ code: 'KEY_UNREADABLE', message: expect.stringMatching(/: EISDIR$/) });
    // /dev/zero never ends: it must be refused, not read.
    expect(await readRefusal('/dev/zero')).toMatchObject({ code: 'KEY_UNUSABLE', message: 'key file /dev/zero is not a regular file' });
  });
  it('a file over 64 KiB is refused by its size, a key with junk around it is not a key', async () => {
    const big = join(dir, 'big.private');
    writeFileSync(big, `${pkcs8}\n${'#'.repeat(MAX_PRIVATE_KEY_FILE_BYTES)}`);
    expect((await readRefusal(big)).message).toMatch(/is \d+ bytes, more than any private key \(at most 64 KiB\)/);
    const text = join(dir, 'text.private');
    writeFileSync(text, 'hello\n');
    expect((await readRefusal(text)).message).toBe(`key file ${text} does not hold a PEM private key (PKCS#8 or PKCS#1)`);
  });
});
