export { DkimError, type DkimErrorCode } from './errors.js';
export {
  type HeaderField,
  type LineEndings,
  type MessageInput,
  type MessageSink,
  type MessageParserOptions,
  type SplitMessage,
  MessageParser,
  HeaderCollector,
  LineEndingNormalizer,
  DEFAULT_MAX_HEADER_BYTES,
  feedMessage,
  headerValue,
  makeHeaderField,
  normalizeLineEndings,
  parseHeaderFields,
  splitMessage,
} from './message.js';
export { type TagListResult, parseTagList, trimFws, stripFws, clip } from './tag-list.js';
export { type Mailbox, type MailboxListResult, parseMailboxList } from './mailbox.js';
export {
  type BodyCanonicalizer,
  type ByteSink,
  type Canonicalization,
  RelaxedBodyCanonicalizer,
  SimpleBodyCanonicalizer,
  createBodyCanonicalizer,
  emitCrlfs,
} from './canonicalization/body.js';
export { canonicalizeHeader, relaxedHeader } from './canonicalization/header.js';
export { BodyHasher, BodyHashSet, type BodyHashResult, type HashAlgorithm } from './body-hash.js';
export {
  type DkimSignature,
  type SignatureAlgorithm,
  type SigningAlgorithm,
  type SignatureParseResult,
  type KeyType,
  type FormatTag,
  parseDkimSignature,
  removeSignatureValue,
  formatFoldedTags,
  appendFolded,
  isSameOrSubdomain,
  encodeDkimQuotedPrintable,
  decodeDkimQuotedPrintable,
} from './signature.js';
export {
  type DkimKeyRecord,
  type ImportedKey,
  type KeyLimits,
  type KeyRecordParseResult,
  type KeyRefusal,
  type PublicKeyAcceptance,
  type PublicKeyPolicy,
  type PublicKeyRefusalCode,
  DEFAULT_MAX_KEY_BITS,
  DEFAULT_MIN_KEY_BITS,
  MAX_RSA_PUBLIC_EXPONENT,
  acceptPublicKey,
  parseKeyRecord,
  importPublicKey,
} from './key-record.js';
export { yieldToEventLoop } from './crypto.js';
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
  fetchKeyRecord,
  type KeyFetchResult,
  normalizeServer,
} from './resolver.js';
export { selectSignedFields, headerHashInput } from './header-hash.js';
export {
  type AuthResult,
  type ParseProblem,
  type Verdict,
  type VerificationCode,
  type VerificationResult,
  VERIFICATION_CODES,
  uncheckedOutcome,
} from './result.js';
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
} from './verification.js';
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
