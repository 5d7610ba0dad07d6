/**
 * @inkan/dkim-core/verification: the skeleton of DKIM verification that a second verifier
 * (inkan's DomainKeys) reuses, so both reach verdicts the same way: the key-record fetch
 * with its DNS outcomes, one lookup per (selector, domain), key acceptance, the pending and
 * concluded result of one signature, a whole-message run, and a yield to the event loop
 * between costly checks.
 */
export { type KeyFetchResult, fetchKeyRecord } from '../resolver.js';
export { type ParseProblem, type Verdict, uncheckedOutcome } from '../result.js';
export {
  type KeyAcceptance,
  type SignatureTags,
  type WholeMessageOptions,
  KeyLookups,
  acceptKey,
  concluded,
  notVerified,
  pendingResult,
  verdict,
  verifyWhole,
} from '../verification.js';
export { yieldToEventLoop } from '../crypto.js';
