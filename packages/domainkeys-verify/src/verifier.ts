import type { Buffer } from 'node:buffer';
import { createVerify, type Verify } from 'node:crypto';
import {
  DkimError,
  type HeaderField,
  headerValue,
  type KeyResolver,
  type LineEndings,
  type MessageInput,
  type MessageSink,
  type VerificationResult,
} from '@inkan/dkim-core';
import type { BodyCanonicalizer } from '@inkan/dkim-core/canonicalization';
import { DEFAULT_MAX_HEADER_BYTES, feedMessage, HeaderCollector } from '@inkan/dkim-core/message';
import { acceptPublicKey, isSameOrSubdomain } from '@inkan/dkim-core/records';
import {
  fetchKeyRecord,
  type KeyFetchResult,
  uncheckedOutcome,
  yieldToEventLoop,
} from '@inkan/dkim-core/verification';
import {
  canonicalizeDomainKeysHeader,
  createDomainKeysBodyCanonicalizer,
  type DomainKeysCanonicalization,
} from './canonicalization.js';
import { checkDomainKeysKey, type DomainKeysKeyRecord, parseDomainKeysKeyRecord } from './key-record.js';
import { determineSender, type SenderAddress } from './sender.js';
import { type DomainKeySignature, parseDomainKeySignature } from './signature.js';
import { selectDomainKeysFields } from './signed-headers.js';

export interface DomainKeysVerifierOptions {
  /** Where keys come from: the same KeyResolver dkim-core's Verifier uses. */
  resolver: KeyResolver;
  /** DomainKey-Signature fields checked per message; the rest get "policy" (default 10). */
  maxSignatures?: number;
  /**
   * RSA keys smaller than this never pass: permerror "key too small" (default 1024, as
   * RFC 8301 asks of DKIM). Historic DomainKeys keys were often 512 or 768 bits; set
   * 512 to accept them.
   */
  minKeyBits?: number;
  /**
   * RSA keys larger than this are never used: "policy" (default 4096). Public exponents
   * over 2^32 - 1 are refused the same way, so no key makes a check cost much more than usual.
   */
  maxKeyBits?: number;
  /** Header fields accepted per message (default 1000); more and nothing is verified. */
  maxHeaderFields?: number;
  /** Header bytes accepted per message (default 1 MiB). */
  maxHeaderBytes?: number;
  /**
   * verifyDomainKeys() only: a bare LF in the message becomes CRLF first ('normalize', the
   * default, as dkim-core's verifyMessage), or the bytes are taken as they are ('as-is').
   */
  lineEndings?: LineEndings;
}

/** Control characters: never let into a result. */
const CTL = /[\x00-\x1f\x7f]/;

/** The field name, for finding signatures; compare lower-cased. */
export const DOMAINKEY_SIGNATURE = 'domainkey-signature';

type KeyOutcome = KeyFetchResult<DomainKeysKeyRecord>;

interface Check {
  result: VerificationResult;
  signature?: DomainKeySignature;
  sender?: SenderAddress;
  /** SHA-1 over the canonicalized header fields, then the canonicalized body. */
  hash?: Verify;
  key?: Promise<KeyOutcome>;
}

/**
 * Verifies every DomainKey-Signature of one message as it streams past (RFC 4870),
 * as a dkim-core MessageSink: feed header fields, call endOfHeaders() (key lookups
 * start there), feed body chunks, then await finish(). Only the header is held; the
 * body goes through one canonicalizer per c= value into one SHA-1 per signature.
 */
export class DomainKeysVerifier implements MessageSink {
  private readonly options: DomainKeysVerifierOptions;
  private readonly collected: HeaderCollector;
  private checks: Check[] | undefined;
  private readonly canonicalizers = new Map<DomainKeysCanonicalization, BodyCanonicalizer>();
  /** A cap on signatures shared with another kind (DKIM), and how much of it that kind used. */
  private shared: { cap: number; used: number } | undefined;

  constructor(options: DomainKeysVerifierOptions) {
    if (!options?.resolver) throw new DkimError('INVALID_OPTION', 'DomainKeysVerifier needs a resolver');
    this.options = options;
    this.collected = new HeaderCollector(options);
  }

  header(field: HeaderField): void {
    if (this.checks) throw new DkimError('INVALID_OPTION', 'header() after endOfHeaders()');
    this.collected.add(field);
  }

  /**
   * For this message, at most `cap` signatures are checked in all, and `used` of them went
   * to another kind (DKIM, checked first): this verifier checks what is left (and never
   * more than its own maxSignatures). Call before endOfHeaders().
   */
  shareSignatureCap(cap: number, used: number): void {
    if (this.checks) throw new DkimError('INVALID_OPTION', 'shareSignatureCap() after endOfHeaders()');
    this.shared = { cap, used: Math.min(Math.max(0, used), cap) };
  }

  /** Parse the signatures, start their key lookups, hash their header fields. */
  endOfHeaders(): void {
    if (this.checks) return;
    const checks: Check[] = [];
    this.checks = checks;
    const own = this.options.maxSignatures ?? 10;
    const left = this.shared ? this.shared.cap - this.shared.used : Number.POSITIVE_INFINITY;
    const max = Math.min(own, left);
    // The reason names the cap that stopped us: the shared one when it is the tighter.
    const cap = this.shared && left < own ? this.shared.cap : own;
    const lookups = new Map<string, Promise<KeyOutcome>>();
    let seen = 0;
    for (const [position, field] of this.collected.fields.entries()) {
      if (field.name.toLowerCase() !== DOMAINKEY_SIGNATURE) continue;
      const index = seen++;
      const parsed = parseDomainKeySignature(headerValue(field).toString('latin1'));
      const result: VerificationResult = {
        method: 'domainkeys',
        result: 'permerror',
        domain: parsed.ok ? parsed.signature.domain : parsed.domain,
        selector: parsed.ok ? parsed.signature.selector : parsed.selector,
        algorithm: parsed.ok ? parsed.signature.algorithm : parsed.algorithm,
        testing: false,
      };
      const b = parsed.ok ? parsed.signature.signatureB64 : parsed.signatureB64;
      if (b) result.headerB = b;
      const unchecked = uncheckedOutcome(this.collected.overLimit, index, max, parsed.ok ? undefined : parsed.error, cap);
      if (unchecked || !parsed.ok) {
        checks.push({ result: { ...result, ...unchecked } });
        continue;
      }
      const sig = parsed.signature;
      if (sig.headersAsWritten) result.signedHeaders = sig.headersAsWritten;
      // RFC 4870 §3.4.2: only the fields below the signature are covered.
      const signed = selectDomainKeysFields(this.collected.fields.slice(position + 1), sig.headers);
      const sender = determineSender(signed);
      if (sender) {
        result.identity = sender.address;
        result.identityHeader = sender.header;
      }
      // RFC 4870 §3.2/§3.4.3: the sending domain must be d= or a subdomain of it.
      if (!sender) {
        checks.push({ result: { ...result, reason: 'no signed Sender or From address (RFC 4870 3.2)' } });
        continue;
      }
      if (CTL.test(sender.address)) {
        // It would go into Authentication-Results as header.from: refused, and not shown.
        delete result.identity;
        checks.push({ result: { ...result, reason: `${sender.header === 'sender' ? 'Sender' : 'From'} address contains control characters` } });
        continue;
      }
      if (sender.domain === undefined || !isSameOrSubdomain(sender.domain, sig.domain)) {
        const where = sender.header === 'sender' ? 'Sender' : 'From';
        checks.push({ result: { ...result, reason: `${where} address is not in d=${sig.domain} or a subdomain (RFC 4870 3.4.3)` } });
        continue;
      }
      const name = `${sig.selector}._domainkey.${sig.domain}`.toLowerCase();
      let key = lookups.get(name);
      if (!key) {
        key = fetchKeyRecord(this.options.resolver, name, parseDomainKeysKeyRecord);
        lookups.set(name, key);
      }
      const hash = createVerify('sha1');
      for (const f of signed) hash.update(canonicalizeDomainKeysHeader(f, sig.canonicalization));
      this.canonicalizerFor(sig.canonicalization);
      checks.push({ result, signature: sig, sender, hash, key });
    }
  }

  body(chunk: Buffer): void {
    if (!this.checks) this.endOfHeaders();
    for (const canonicalizer of this.canonicalizers.values()) canonicalizer.update(chunk);
  }

  /**
   * Finish the body, wait for keys, check every signature. One result per
   * DomainKey-Signature, top first. The checks run one at a time, each on its own turn of
   * the event loop.
   */
  async finish(): Promise<VerificationResult[]> {
    if (!this.checks) this.endOfHeaders();
    for (const canonicalizer of this.canonicalizers.values()) canonicalizer.finish();
    const results: VerificationResult[] = [];
    for (const check of this.checks as Check[]) results.push(await this.complete(check));
    return results;
  }

  private canonicalizerFor(c: DomainKeysCanonicalization): void {
    if (this.canonicalizers.has(c)) return;
    const canonicalizer = createDomainKeysBodyCanonicalizer(c, (bytes) => {
      for (const check of this.checks ?? []) {
        if (check.hash && check.signature?.canonicalization === c) check.hash.update(bytes);
      }
    });
    this.canonicalizers.set(c, canonicalizer);
  }

  private async complete(check: Check): Promise<VerificationResult> {
    const { result, signature: sig, sender, hash, key } = check;
    if (!sig || !sender || !hash || !key) return result;
    const fail = (kind: VerificationResult['result'], reason: string): VerificationResult => ({ ...result, result: kind, reason });
    const outcome = await key;
    if (!outcome.ok) return fail(outcome.result, outcome.reason);
    const record = outcome.record;
    result.testing = record.testing;
    const accepted = acceptPublicKey(record, { ...this.options, signature: { keyType: 'rsa', algorithm: sig.algorithm } });
    if (accepted.bits !== undefined) result.keyBits = accepted.bits;
    if (!accepted.ok) return fail(accepted.result, accepted.reason);
    const unusable = checkDomainKeysKey(record, sender, sig.domain);
    if (unusable) return fail('permerror', unusable);
    await yieldToEventLoop();
    let good = false;
    try {
      good = hash.verify(accepted.key, sig.signature);
    } catch {
      good = false;
    }
    if (!good) return fail('fail', 'signature did not verify');
    return { ...result, result: 'pass' };
  }
}

/**
 * Verify every DomainKey-Signature of a message given as a Buffer or a stream of
 * chunks (bounded memory: only the header is held). Never throws for bad mail.
 */
export async function verifyDomainKeys(message: MessageInput, options: DomainKeysVerifierOptions): Promise<VerificationResult[]> {
  const verifier = new DomainKeysVerifier(options);
  try {
    await feedMessage(message, verifier, { maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES, lineEndings: options.lineEndings ?? 'normalize' });
  } catch (error) {
    if (DkimError.isInstance(error) && error.code === 'MESSAGE_TOO_LARGE') {
      return [tooLarge(error.message)];
    }
    throw error;
  }
  return verifier.finish();
}

/** The one result for a message whose header section is over the limit. */
export function tooLarge(message: string): VerificationResult {
  return { method: 'domainkeys', result: 'policy', reason: `not verified: ${message}`, domain: '', selector: '', algorithm: '', testing: false };
}
