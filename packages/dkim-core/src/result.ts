/** RFC 8601's result vocabulary for DKIM and DomainKeys. */
export type AuthResult = 'pass' | 'fail' | 'neutral' | 'policy' | 'temperror' | 'permerror' | 'none';

/**
 * Why a signature got its result, for programs: a closed set, so that a caller can switch on
 * it instead of reading `reason` (which is for people and may change wording). The result
 * each code comes with is given after the dash.
 *
 * - `ok` — pass: the signature verified.
 * - `header-limit` — policy: the header section went over a limit (fields or bytes); nothing
 *   was verified.
 * - `too-many-signatures` — policy: the signature is past the cap on signatures checked per
 *   message.
 * - `signature-syntax` — permerror: the signature field cannot be used: a tag list that does
 *   not parse, a missing or malformed tag, an unsupported version, canonicalization or query
 *   method, a malformed i=.
 * - `algorithm-unsupported` — permerror: a= names an algorithm this verifier does not know or
 *   does not accept (rsa-sha1 for DKIM, RFC 8301).
 * - `from-not-signed` — permerror: DKIM h= does not list From (RFC 6376 §5.4).
 * - `identity-mismatch` — permerror: the identity is outside the signing domain: DKIM i= not
 *   in d= or a subdomain; the DomainKeys sender not in d= or a subdomain (RFC 4870 §3.4.3).
 * - `sender-invalid` — permerror: DomainKeys only: no signed Sender or From address, or one
 *   with control characters.
 * - `signature-expired` — permerror: x= is in the past (beyond the allowed clock skew).
 * - `key-not-found` — permerror: no key at the selector (NXDOMAIN, or no TXT record).
 * - `dns-error` — temperror: the key lookup failed (SERVFAIL, REFUSED, no server reachable,
 *   or a resolver that threw something else).
 * - `dns-timeout` — temperror: the key lookup got no answer in time.
 * - `key-syntax` — permerror: no TXT record at the selector parses as a key record, or p= is
 *   not a usable public key.
 * - `key-revoked` — permerror: the key record has an empty p=.
 * - `key-mismatch` — permerror: the key does not fit the signature's algorithm (key k=
 *   another key type, key h= without the hash algorithm).
 * - `key-restricted` — permerror: the key record does not allow this use (s= without email,
 *   t=s with an identity in a subdomain, DomainKeys g= not matching the sender).
 * - `key-too-small` — permerror: an RSA key below the minimum size (RFC 8301).
 * - `key-too-large` — policy: an RSA key (or public exponent) over the local maximum.
 * - `body-length-exceeded` — permerror: l= is longer than the canonicalized body.
 * - `body-hash-mismatch` — fail: the body hash (bh=) did not match the body.
 * - `bad-signature` — fail: the signature (b=) did not verify.
 * - `local-policy` — policy: set by a caller, not by the verifiers: a local rule withheld a
 *   result that would otherwise pass (e.g. milterd for a message with several From fields).
 */
export const VERIFICATION_CODES = [
  'ok',
  'header-limit',
  'too-many-signatures',
  'signature-syntax',
  'algorithm-unsupported',
  'from-not-signed',
  'identity-mismatch',
  'sender-invalid',
  'signature-expired',
  'key-not-found',
  'dns-error',
  'dns-timeout',
  'key-syntax',
  'key-revoked',
  'key-mismatch',
  'key-restricted',
  'key-too-small',
  'key-too-large',
  'body-length-exceeded',
  'body-hash-mismatch',
  'bad-signature',
  'local-policy',
] as const;

/** One of VERIFICATION_CODES; see above for what each means. */
export type VerificationCode = (typeof VERIFICATION_CODES)[number];

/** The outcome of checking one signature; the same shape for DKIM and DomainKeys. */
export interface VerificationResult {
  method: 'dkim' | 'domainkeys';
  result: AuthResult;
  /** Why, for programs (see VerificationCode): "ok" on pass, one of the failure codes otherwise. */
  code: VerificationCode;
  /** Why, in words naming the rule (absent on pass). */
  reason?: string;
  /** d= (the SDID). */
  domain: string;
  /** s= */
  selector: string;
  /** i= for DKIM (default "@" + d); the sender address for DomainKeys. */
  identity?: string;
  /** For DomainKeys: which header the identity came from. */
  identityHeader?: 'from' | 'sender';
  /** a= as written. */
  algorithm: string;
  /** Size of the public key in bits, when the key was read. */
  keyBits?: number;
  /** The key record had t=y. */
  testing: boolean;
  /** b= without whitespace, to tell signatures apart (header.b, RFC 6008). */
  headerB?: string;
  /** l= when the signature had one. */
  bodyLength?: number;
  /** With l=: canonicalized body octets after the signed part. */
  unsignedBodyBytes?: number;
  /** h= as written. */
  signedHeaders?: string[];
}

/** A result other than pass, with its code and reason: what a failed check gives. */
export interface Verdict {
  result: Exclude<AuthResult, 'pass' | 'none'>;
  code: Exclude<VerificationCode, 'ok'>;
  reason: string;
}

/** Why a signature field could not be parsed: the reason and its code. */
export interface ParseProblem {
  error: string;
  code: 'signature-syntax' | 'algorithm-unsupported' | 'from-not-signed' | 'identity-mismatch';
}

/**
 * Why a signature is not checked at all, if it is not: the header section went over a
 * limit or the signature is past the cap ("policy"), or it could not be parsed ("permerror").
 */
export function uncheckedOutcome(
  overLimit: string | undefined,
  index: number,
  maxSignatures: number,
  parseProblem: ParseProblem | undefined,
  /** The cap named in the reason, when it is not maxSignatures (a cap shared with another kind of signature). */
  cap = maxSignatures,
): Verdict | undefined {
  if (overLimit) return { result: 'policy', code: 'header-limit', reason: `not verified: ${overLimit}` };
  if (index >= maxSignatures) return { result: 'policy', code: 'too-many-signatures', reason: `not verified: more than ${cap} signatures` };
  if (parseProblem !== undefined) return { result: 'permerror', code: parseProblem.code, reason: parseProblem.error };
  return undefined;
}
