/**
 * @inkan/dkim-core/verification: the parts of DKIM verification a second verifier (inkan's
 * DomainKeys) reuses: the key-record fetch with its DNS outcomes, the result of a signature
 * left unchecked, and a yield to the event loop between costly checks.
 */
export { type KeyFetchResult, fetchKeyRecord } from '../resolver.js';
export { uncheckedOutcome } from '../result.js';
export { yieldToEventLoop } from '../crypto.js';
