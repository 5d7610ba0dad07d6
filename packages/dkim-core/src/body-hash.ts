import { Buffer } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { type BodyCanonicalizer, type Canonicalization, createBodyCanonicalizer } from './canonicalization/body.js';

export type HashAlgorithm = 'sha256' | 'sha1';

const STAGE_SIZE = 16 * 1024;
const STAGE_DIRECT = 4 * 1024;

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
  private stage: Buffer | undefined;
  private staged = 0;

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
      this.flushStage();
      this.result = { hash: this.hash.digest(), canonicalLength: this.length, hashedLength: this.hashed };
    }
    return this.result;
  }

  private consume(bytes: Buffer): void {
    this.length += bytes.length;
    let part = bytes;
    if (this.limit !== undefined) {
      const room = this.limit - this.hashed;
      if (room <= 0) return;
      if (part.length > room) part = part.subarray(0, room);
    }
    this.hashed += part.length;
    // Canonicalizers emit many small pieces; gather them so that the hash is fed in
    // large blocks (each update() call costs far more than copying a few bytes).
    if (part.length >= STAGE_DIRECT) {
      this.flushStage();
      this.hash.update(part);
      return;
    }
    if (!this.stage) this.stage = Buffer.allocUnsafe(STAGE_SIZE);
    if (this.staged + part.length > STAGE_SIZE) this.flushStage();
    this.staged += part.copy(this.stage, this.staged);
  }

  private flushStage(): void {
    if (this.staged > 0 && this.stage) {
      this.hash.update(this.stage.subarray(0, this.staged));
      this.staged = 0;
    }
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
