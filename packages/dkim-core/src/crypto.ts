import type { Buffer } from 'node:buffer';
import { createHash, type KeyObject, sign, verify } from 'node:crypto';
import type { KeyType } from './signature.js';
import type { HashAlgorithm } from './body-hash.js';

/**
 * Sign header data. RSA: PKCS#1 v1.5 over the hash, on libuv's thread pool so that the
 * event loop does not wait for it while other messages are in progress (`alone`: none is).
 * Ed25519 (RFC 8463): the signed message is the SHA-256 digest of the data.
 */
export function signData(keyType: KeyType, hash: HashAlgorithm, data: Buffer, key: KeyObject, alone = false): Promise<Buffer> {
  // Ed25519 signs in about 50 µs: handing that to the thread pool costs more than it saves.
  // So does an RSA key up to 2048 bits (about 1 ms) when no other message is being signed:
  // the trip to the pool and back (tens of µs each way) is then pure delay.
  if (keyType === 'ed25519' || (alone && (key.asymmetricKeyDetails?.modulusLength ?? Number.POSITIVE_INFINITY) <= 2048)) {
    try {
      return Promise.resolve(keyType === 'ed25519' ? sign(null, createHash('sha256').update(data).digest(), key) : sign(hash, data, key));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return new Promise((resolve, reject) => {
    sign(hash, data, key, (error: Error | null, signature: Buffer) => (error ? reject(error) : resolve(signature)));
  });
}

/**
 * Check a signature over header data; false (never a throw) when it does not verify.
 * Synchronous: an RSA-2048 verification takes about 30 µs and Ed25519 about 140 µs,
 * less than handing the job to the thread pool and back costs.
 */
export function verifyData(keyType: KeyType, hash: HashAlgorithm, data: Buffer, key: KeyObject, signature: Buffer): boolean {
  try {
    if (keyType === 'ed25519') return verify(null, createHash('sha256').update(data).digest(), key, signature);
    return verify(hash, data, key, signature);
  } catch {
    return false;
  }
}

/**
 * Resolves on a later turn of the event loop (after pending I/O). Verifiers await it
 * before each signature check, so that a message with many signatures never holds the
 * loop for more than one check while other sessions wait.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
