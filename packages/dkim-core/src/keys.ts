import { Buffer } from 'node:buffer';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { open } from 'node:fs/promises';
import { DkimError } from './errors.js';
import type { KeyType, SigningAlgorithm } from './signature.js';

/** RSA signing keys smaller than this are refused (RFC 8301). */
export const MIN_SIGNING_KEY_BITS = 1024;
/** RSA signing keys larger than this are refused: verifiers (ours by default) do not use them. */
export const MAX_SIGNING_KEY_BITS = 4096;
/** A private key file larger than this is refused unread (a 4096-bit RSA key in PEM is about 3.3 KiB). */
export const MAX_PRIVATE_KEY_FILE_BYTES = 64 * 1024;

/** A private key that may sign DKIM, with what the signer and the tables need to know of it. */
export interface PrivateKeyInfo {
  key: KeyObject;
  keyType: KeyType;
  /** RSA: the modulus size; Ed25519: 256. */
  bits: number;
  /** The one algorithm the key signs with. */
  algorithm: SigningAlgorithm;
}

const parsed = new Map<string, PrivateKeyInfo>();
const PARSED_LIMIT = 100;

/**
 * Check a private KeyObject against the one set of limits: RSA of 1024 to 4096 bits, or
 * Ed25519. `source` names the key in errors (a file name, a store row).
 */
export function checkPrivateKey(key: KeyObject, source = 'the private key'): PrivateKeyInfo {
  if (key.type !== 'private') throw new DkimError('KEY_UNUSABLE', `${source} is a ${key.type} key, not a private key`);
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return { key, keyType: 'ed25519', bits: 256, algorithm: 'ed25519-sha256' };
  if (type !== 'rsa') throw new DkimError('KEY_UNUSABLE', `${source} holds a key of type ${type}; DKIM signs with rsa or ed25519`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_SIGNING_KEY_BITS) {
    throw new DkimError(
      'KEY_UNUSABLE',
      `${source} is an RSA key of ${bits} bits, under ${MIN_SIGNING_KEY_BITS}, which verifiers reject (RFC 8301)`,
    );
  }
  if (bits > MAX_SIGNING_KEY_BITS) {
    throw new DkimError(
      'KEY_UNUSABLE',
      `${source} is an RSA key of ${bits} bits, over ${MAX_SIGNING_KEY_BITS}, which verifiers do not use`,
    );
  }
  return { key, keyType: 'rsa', bits, algorithm: 'rsa-sha256' };
}

/**
 * Parse a PEM private key (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY"; RSA of 1024 to
 * 4096 bits, or Ed25519) and check it. A KeyObject is only checked. Parsed keys are cached by
 * their text, as parsing costs as much as a signature. Errors (DkimError KEY_UNUSABLE) name
 * `source` and never quote the text.
 */
export function parsePrivateKey(input: string | Buffer | KeyObject, source = 'the private key'): PrivateKeyInfo {
  if (typeof input === 'object' && !Buffer.isBuffer(input)) return checkPrivateKey(input, source);
  const pem = typeof input === 'string' ? input : input.toString('latin1');
  const cached = parsed.get(pem);
  if (cached) return cached;
  if (pem.length > MAX_PRIVATE_KEY_FILE_BYTES) {
    throw new DkimError('KEY_UNUSABLE', `${source} is larger than any private key (over ${MAX_PRIVATE_KEY_FILE_BYTES / 1024} KiB)`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new DkimError('KEY_UNUSABLE', `${source} ${whyNotAKey(pem)}`);
  }
  const info = checkPrivateKey(key, source);
  parsed.set(pem, info);
  if (parsed.size > PARSED_LIMIT) parsed.delete(parsed.keys().next().value as string);
  return info;
}

/** What is wrong with text that createPrivateKey refused, judged from its PEM labels only. */
function whyNotAKey(pem: string): string {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(pem)) {
    return 'is encrypted with a passphrase: store it unencrypted, readable only by the user that signs';
  }
  if (/-----BEGIN (RSA )?PUBLIC KEY-----/.test(pem)) return 'holds a public key, not a private key';
  return 'does not hold a PEM private key (PKCS#8 or PKCS#1)';
}

/**
 * Read and parse a private key file (see parsePrivateKey). A file that is not a regular file
 * or is over 64 KiB is refused before its content is read. Errors name the file, never its
 * content: KEY_UNREADABLE when it cannot be read, KEY_UNUSABLE when it holds no usable key.
 */
export async function readPrivateKey(path: string): Promise<PrivateKeyInfo> {
  const unreadable = (error: unknown) =>
    new DkimError('KEY_UNREADABLE', `cannot read key file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw unreadable(error);
  }
  let bytes: Buffer;
  try {
    const st = await handle.stat().catch((error: unknown) => {
      throw unreadable(error);
    });
    if (st.isDirectory()) throw new DkimError('KEY_UNREADABLE', `cannot read key file ${path}: EISDIR`);
    if (!st.isFile()) throw new DkimError('KEY_UNUSABLE', `key file ${path} is not a regular file`);
    if (st.size > MAX_PRIVATE_KEY_FILE_BYTES) {
      throw new DkimError(
        'KEY_UNUSABLE',
        `key file ${path} is ${st.size} bytes, more than any private key (at most ${MAX_PRIVATE_KEY_FILE_BYTES / 1024} KiB)`,
      );
    }
    // Read at most one byte over the cap, whatever the size said (the file may grow meanwhile).
    const buffer = Buffer.alloc(MAX_PRIVATE_KEY_FILE_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length).catch((error: unknown) => {
        throw unreadable(error);
      });
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > MAX_PRIVATE_KEY_FILE_BYTES)
      throw new DkimError(
        'KEY_UNUSABLE',
        `key file ${path} is larger than any private key (over ${MAX_PRIVATE_KEY_FILE_BYTES / 1024} KiB)`,
      );
    bytes = buffer.subarray(0, length);
  } finally {
    await handle.close().catch(() => {});
  }
  return parsePrivateKey(bytes, `key file ${path}`);
}
