/**
 * @inkan/dkim-core/records: DKIM's text formats. Tag lists (RFC 6376 section 3.2), shared by
 * signatures, key records and DomainKeys; the DKIM-Signature field (parse, strip b=, fold,
 * dkim-quoted-printable); the DKIM key record and the checks a public key must pass.
 */
export { type TagListResult, parseTagList, trimFws, stripFws, clip } from '../tag-list.js';
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
} from '../signature.js';
export {
  type DkimKeyRecord,
  type ImportedKey,
  type KeyLimits,
  type KeyRecordParseResult,
  type KeyRefusal,
  type PublicKeyAcceptance,
  type PublicKeyPolicy,
  type PublicKeyRefusalCode,
  MAX_RSA_PUBLIC_EXPONENT,
  acceptPublicKey,
  parseKeyRecord,
  importPublicKey,
} from '../key-record.js';
