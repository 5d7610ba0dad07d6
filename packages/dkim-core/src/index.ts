/**
 * @inkan/dkim-core: DKIM signing and verification (RFC 6376, RFC 8463, RFC 8301) and
 * Authentication-Results (RFC 8601). This entry is what an application needs; the building
 * blocks that inkan's other packages share are sub-paths (see the README):
 *
 * - @inkan/dkim-core/canonicalization: simple/relaxed canonicalizers, body and header hashing;
 * - @inkan/dkim-core/records: tag lists, DKIM-Signature and key-record parsing and formatting;
 * - @inkan/dkim-core/message: streaming message plumbing below MessageParser;
 * - @inkan/dkim-core/verification: the key-lookup and result skeleton a second verifier reuses.
 */
export { DkimError, type DkimErrorCode } from './errors.js';
export {
  type HeaderField,
  type LineEndings,
  type MessageInput,
  type MessageParserOptions,
  type MessageSink,
  type SplitMessage,
  MessageParser,
  headerValue,
  normalizeLineEndings,
  parseHeaderFields,
  splitMessage,
} from './message.js';
export { type Mailbox, type MailboxListResult, parseMailboxList } from './mailbox.js';
export type { Canonicalization } from './canonicalization/body.js';
export type { HashAlgorithm } from './body-hash.js';
export type { KeyType, SignatureAlgorithm, SigningAlgorithm } from './signature.js';
export { type KeyLimits, type PublicKeyPolicy, DEFAULT_MAX_KEY_BITS, DEFAULT_MIN_KEY_BITS } from './key-record.js';
export {
  type PrivateKeyInfo,
  MIN_SIGNING_KEY_BITS,
  MAX_SIGNING_KEY_BITS,
  MAX_PRIVATE_KEY_FILE_BYTES,
  parsePrivateKey,
  readPrivateKey,
} from './keys.js';
export {
  type KeyResolver,
  type KeyLookupErrorCode,
  type DnsKeyResolverOptions,
  KeyLookupError,
  DnsKeyResolver,
  MemoryKeyResolver,
  FileKeyResolver,
  CachingKeyResolver,
  type CachingKeyResolverOptions,
  parseKeysFile,
} from './resolver.js';
export { type AuthResult, type VerificationCode, type VerificationResult, VERIFICATION_CODES } from './result.js';
export {
  type AuthResultEntry,
  type AuthResultProperty,
  type AuthenticationResults,
  type FormatOptions,
  formatAuthenticationResults,
  parseAuthenticationResults,
  toAuthResultEntries,
} from './authentication-results.js';
export {
  type SignatureOptions,
  type SignerOptions,
  type SignatureField,
  Signer,
  signMessage,
  DEFAULT_SIGNED_HEADERS,
  DEFAULT_OVERSIGNED_HEADERS,
} from './signer.js';
export { type VerifierOptions, Verifier, verifyMessage } from './verifier.js';
