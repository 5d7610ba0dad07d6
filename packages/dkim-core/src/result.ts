/** RFC 8601's result vocabulary for DKIM and DomainKeys. */
export type AuthResult = 'pass' | 'fail' | 'neutral' | 'policy' | 'temperror' | 'permerror' | 'none';

/** The outcome of checking one signature; the same shape for DKIM and DomainKeys. */
export interface VerificationResult {
  method: 'dkim' | 'domainkeys';
  result: AuthResult;
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

/**
 * Why a signature is not checked at all, if it is not: the header section went over a
 * limit or the signature is past the cap ("policy"), or it could not be parsed ("permerror").
 */
export function uncheckedOutcome(
  overLimit: string | undefined,
  index: number,
  maxSignatures: number,
  parseError: string | undefined,
  /** The cap named in the reason, when it is not maxSignatures (a cap shared with another kind of signature). */
  cap = maxSignatures,
): Pick<VerificationResult, 'result' | 'reason'> | undefined {
  if (overLimit) return { result: 'policy', reason: `not verified: ${overLimit}` };
  if (index >= maxSignatures) return { result: 'policy', reason: `not verified: more than ${cap} signatures` };
  if (parseError !== undefined) return { result: 'permerror', reason: parseError };
  return undefined;
}
