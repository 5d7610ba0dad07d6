import { Buffer } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { type BodyCanonicalizer, type Canonicalization, createBodyCanonicalizer } from './canonicalization/body.js';

export type HashAlgorithm = 'sha256' | 'sha1';

export interface BodyHashResult {
  /** The digest of the canonicalized body, up to the length limit. */
  hash: Buffer;
  /** Octets of canonicalized body in all (what l= counts). */
  canonicalLength: number;
  /** Octets that went into the hash (canonicalLength, or the limit if that is smaller). */
  hashedLength: number;
}

/**
 * Canonicalizes and hashes a body as it streams past. With a length limit (l=), only
 * that many canonicalized octets are hashed; the rest are still counted.
 */
export class BodyHasher {
  readonly canonicalization: Canonicalization;
  readonly algorithm: HashAlgorithm;
  readonly limit: number | undefined;
  private readonly hash: Hash;
  private readonly canonicalizer: BodyCanonicalizer;
  private length = 0;
  private hashed = 0;
  private result: BodyHashResult | undefined;

  constructor(canonicalization: Canonicalization, algorithm: HashAlgorithm, limit?: number) {
    this.canonicalization = canonicalization;
    this.algorithm = algorithm;
    this.limit = limit;
    this.hash = createHash(algorithm);
    this.canonicalizer = createBodyCanonicalizer(canonicalization, (bytes) => this.consume(bytes));
  }

  update(chunk: Buffer): void {
    if (this.result) throw new Error('BodyHasher.update() after digest()');
    this.canonicalizer.update(chunk);
  }

  digest(): BodyHashResult {
    if (!this.result) {
      this.canonicalizer.finish();
      this.result = { hash: this.hash.digest(), canonicalLength: this.length, hashedLength: this.hashed };
    }
    return this.result;
  }

  private consume(bytes: Buffer): void {
    this.length += bytes.length;
    if (this.limit === undefined) {
      this.hash.update(bytes);
      this.hashed += bytes.length;
      return;
    }
    const room = this.limit - this.hashed;
    if (room <= 0) return;
    const part = bytes.length <= room ? bytes : bytes.subarray(0, room);
    this.hash.update(part);
    this.hashed += part.length;
  }
}

/**
 * One BodyHasher per distinct (canonicalization, hash algorithm, length limit), shared
 * by every signature being made or checked on the same message.
 */
export class BodyHashSet {
  private readonly hashers = new Map<string, BodyHasher>();
  private list: BodyHasher[] = [];

  get(canonicalization: Canonicalization, algorithm: HashAlgorithm, limit?: number): BodyHasher {
    const key = `${canonicalization}/${algorithm}/${limit ?? ''}`;
    let hasher = this.hashers.get(key);
    if (!hasher) {
      hasher = new BodyHasher(canonicalization, algorithm, limit);
      this.hashers.set(key, hasher);
      this.list = [...this.hashers.values()];
    }
    return hasher;
  }

  get size(): number {
    return this.hashers.size;
  }

  update(chunk: Buffer): void {
    for (const hasher of this.list) hasher.update(chunk);
  }
}
