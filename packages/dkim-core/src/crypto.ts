import type { Buffer } from 'node:buffer';
import { createHash, type KeyObject, sign, verify } from 'node:crypto';
import type { KeyType } from './signature.js';
import type { HashAlgorithm } from './body-hash.js';

/**
 * Sign header data. RSA: PKCS#1 v1.5 over the hash. Ed25519 (RFC 8463): the signed
 * message is the SHA-256 digest of the data. Runs on libuv's thread pool.
 */
export function signData(keyType: KeyType, hash: HashAlgorithm, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const cb = (error: Error | null, signature: Buffer) => (error ? reject(error) : resolve(signature));
    if (keyType === 'ed25519') sign(null, createHash('sha256').update(data).digest(), key, cb);
    else sign(hash, data, key, cb);
  });
}

/** Check a signature over header data; false (never a throw) when it does not verify. */
export function verifyData(keyType: KeyType, hash: HashAlgorithm, data: Buffer, key: KeyObject, signature: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const cb = (error: Error | null, ok: boolean) => resolve(!error && ok);
    try {
      if (keyType === 'ed25519') verify(null, createHash('sha256').update(data).digest(), key, signature, cb);
      else verify(hash, data, key, signature, cb);
    } catch {
      resolve(false);
    }
  });
}
