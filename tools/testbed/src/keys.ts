import { generateKeyPairSync, type KeyObject } from 'node:crypto';

export interface TestKey {
  type: 'rsa' | 'ed25519';
  privateKey: KeyObject;
  /** PKCS#8 PEM */
  pem: string;
  /** PKCS#1 PEM (RSA only), the form opendkim-genkey writes. */
  pkcs1Pem?: string;
  /** The p= value for the key record. */
  p: string;
}

/** An RSA test key, which always has its PKCS#1 form. */
export type RsaTestKey = TestKey & { pkcs1Pem: string };

export interface TestKeys {
  rsa2048: RsaTestKey;
  rsa1024: RsaTestKey;
  ed25519: TestKey;
}

function rsa(bits: number): RsaTestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    type: 'rsa',
    privateKey,
    pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    pkcs1Pem: privateKey.export({ format: 'pem', type: 'pkcs1' }).toString(),
    p: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
  };
}

function ed25519(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return {
    type: 'ed25519',
    privateKey,
    pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    p: spki.subarray(spki.length - 32).toString('base64'),
  };
}

/** Fresh keys for one test run. */
export function makeKeys(): TestKeys {
  return { rsa2048: rsa(2048), rsa1024: rsa(1024), ed25519: ed25519() };
}

/** "v=DKIM1; k=...; p=..." for a key, with extra tags (e.g. "t=y") before p=. */
export function dkimKeyRecord(key: TestKey, extra = ''): string {
  return `v=DKIM1; k=${key.type};${extra ? ` ${extra};` : ''} p=${key.p}`;
}
