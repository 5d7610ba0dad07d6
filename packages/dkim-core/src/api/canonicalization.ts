/**
 * @inkan/dkim-core/canonicalization: the pieces signing and verification hash with, for
 * other signature schemes and tools built on dkim-core. Body canonicalizers (simple and
 * relaxed, RFC 6376 section 3.4) stream across chunk boundaries; BodyHashSet shares one
 * hasher per distinct (canonicalization, hash, length limit); selectSignedFields and
 * headerHashInput build the header hash input of one signature.
 */
export {
  type BodyCanonicalizer,
  type ByteSink,
  type Canonicalization,
  RelaxedBodyCanonicalizer,
  SimpleBodyCanonicalizer,
  createBodyCanonicalizer,
  emitCrlfs,
} from '../canonicalization/body.js';
export { canonicalizeHeader, relaxedHeader } from '../canonicalization/header.js';
export { BodyHasher, BodyHashSet, type BodyHashResult, type HashAlgorithm } from '../body-hash.js';
export { selectSignedFields, headerHashInput } from '../header-hash.js';
