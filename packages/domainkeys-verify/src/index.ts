/**
 * @inkan/domainkeys-verify: DomainKeys (RFC 4870) verification, verify only, on
 * dkim-core's message parser, key resolvers and result types.
 */
export {
  type DomainKeysCanonicalization,
  NofwsDomainKeysBody,
  SimpleDomainKeysBody,
  canonicalizeDomainKeysHeader,
  createDomainKeysBodyCanonicalizer,
} from './canonicalization.js';
export { type DomainKeySignature, type DomainKeySignatureParseResult, parseDomainKeySignature } from './signature.js';
export { selectDomainKeysFields } from './signed-headers.js';
export { type SenderAddress, determineSender, firstMailbox } from './sender.js';
export {
  type DomainKeysKeyRecord,
  type DomainKeysKeyRecordParseResult,
  parseDomainKeysKeyRecord,
  granularityMatches,
  checkDomainKeysKey,
} from './key-record.js';
export { type DomainKeysVerifierOptions, DOMAINKEY_SIGNATURE, DomainKeysVerifier, verifyDomainKeys } from './verifier.js';
export { type CombinedVerifierOptions, type CombinedResults, CombinedVerifier, verifyDkimAndDomainKeys } from './combined.js';
