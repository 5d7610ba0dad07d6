import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
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
export const MIN_RSA_BITS = 1024;
export const MAX_RSA_BITS = 4096;

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

/** Read a PEM private key (PKCS#1 or PKCS#8, RSA or Ed25519). Errors name the file. */
export async function readPrivateKeyFile(path: string): Promise<GeneratedKey> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch {
    throw new Error(`${path} does not hold a PEM private key (PKCS#1 or PKCS#8)`);
  }
  return describe(key);
}
