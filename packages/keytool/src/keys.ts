import { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { MAX_SIGNING_KEY_BITS, MIN_SIGNING_KEY_BITS, readPrivateKey } from '@inkan/dkim-core';
import { promisify } from 'node:util';

export type KeyKind = 'rsa' | 'ed25519';

export interface GeneratedKey {
  type: KeyKind;
  bits: number;
  privateKey: KeyObject;
  /** PKCS#8 PEM, the form written to SELECTOR.private. */
  privatePem: string;
  /** The p= value: base64 SubjectPublicKeyInfo (RSA) or the raw 32-byte key (Ed25519, RFC 8463). */
  p: string;
}

export const DEFAULT_RSA_BITS = 2048;
export const MIN_RSA_BITS = MIN_SIGNING_KEY_BITS;
export const MAX_RSA_BITS = MAX_SIGNING_KEY_BITS;

const generate = promisify(generateKeyPair);

/** Generate a DKIM key pair: RSA (default 2048 bits, 1024 to 4096) or Ed25519. */
export async function generateDkimKey(type: KeyKind = 'rsa', bits = DEFAULT_RSA_BITS): Promise<GeneratedKey> {
  if (type === 'rsa') {
    if (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      throw new RangeError(`RSA keys must have ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits (got ${bits}); 2048 is recommended`);
    }
    const { privateKey } = await generate('rsa', { modulusLength: bits });
    return describe(privateKey);
  }
  if (type === 'ed25519') {
    const { privateKey } = await generate('ed25519');
    return describe(privateKey);
  }
  throw new RangeError(`unknown key type "${type}": use rsa or ed25519`);
}

/** The facts about a private key that DKIM needs. */
export function describe(privateKey: KeyObject): GeneratedKey {
  const kind = privateKey.asymmetricKeyType;
  if (kind !== 'rsa' && kind !== 'ed25519') throw new RangeError(`a ${kind} key cannot sign DKIM: use rsa or ed25519`);
  return {
    type: kind,
    bits: kind === 'rsa' ? (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) : 256,
    privateKey,
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    p: publicKeyValue(privateKey),
  };
}

/** The p= value for a private or public key. */
export function publicKeyValue(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const spki = pub.export({ format: 'der', type: 'spki' });
  return (pub.asymmetricKeyType === 'ed25519' ? spki.subarray(spki.length - 32) : spki).toString('base64');
}

/**
 * Read a private key file with dkim-core's readPrivateKey: PEM (PKCS#1 or PKCS#8), RSA of
 * 1024 to 4096 bits or Ed25519, at most 64 KiB. Errors name the file, never its content.
 */
export async function readPrivateKeyFile(path: string): Promise<GeneratedKey> {
  return describe((await readPrivateKey(path)).key);
}
