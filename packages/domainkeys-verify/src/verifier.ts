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
import { HeaderCollector } from '@inkan/dkim-core/message';
import { isSameOrSubdomain } from '@inkan/dkim-core/records';
import {
  acceptKey,
  concluded,
  type KeyFetchResult,
  KeyLookups,
  notVerified,
  pendingResult,
  uncheckedOutcome,
  verdict,
  verifyWhole,
  yieldToEventLoop,
} from '@inkan/dkim-core/verification';
import { canonicalizeDomainKeysHeader, createDomainKeysBodyCanonicalizer, type DomainKeysCanonicalization } from './canonicalization.js';
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
    const lookups = new KeyLookups(this.options.resolver, parseDomainKeysKeyRecord);
    let seen = 0;
    for (const [position, field] of this.collected.fields.entries()) {
      if (field.name.toLowerCase() !== DOMAINKEY_SIGNATURE) continue;
      const index = seen++;
      const parsed = parseDomainKeySignature(headerValue(field).toString('latin1'));
      const result = pendingResult('domainkeys', parsed.ok ? parsed.signature : parsed);
      const unchecked = uncheckedOutcome(this.collected.overLimit, index, max, parsed.ok ? undefined : parsed, cap);
      if (unchecked || !parsed.ok) {
        checks.push({ result: unchecked ? concluded(result, unchecked) : result });
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
        checks.push({
          result: concluded(result, verdict('permerror', 'sender-invalid', 'no signed Sender or From address (RFC 4870 3.2)')),
        });
        continue;
      }
      if (CTL.test(sender.address)) {
        // It would go into Authentication-Results as header.from: refused, and not shown.
        delete result.identity;
        const reason = `${sender.header === 'sender' ? 'Sender' : 'From'} address contains control characters`;
        checks.push({ result: concluded(result, verdict('permerror', 'sender-invalid', reason)) });
        continue;
      }
      if (!isSameOrSubdomain(sender.domain, sig.domain)) {
        const where = sender.header === 'sender' ? 'Sender' : 'From';
        const reason = `${where} address is not in d=${sig.domain} or a subdomain (RFC 4870 3.4.3)`;
        checks.push({ result: concluded(result, verdict('permerror', 'identity-mismatch', reason)) });
        continue;
      }
      const key = lookups.get(sig.selector, sig.domain);
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
    const policy = { ...this.options, signature: { keyType: 'rsa', algorithm: sig.algorithm } };
    const accepted = await acceptKey(result, key, policy, (record) => checkDomainKeysKey(record, sender, sig.domain));
    if (!accepted.ok) return concluded(result, accepted.verdict);
    await yieldToEventLoop();
    let good = false;
    try {
      good = hash.verify(accepted.key, sig.signature);
    } catch {
      good = false;
    }
    if (!good) return concluded(result, verdict('fail', 'bad-signature', 'signature did not verify'));
    return concluded(result, 'pass');
  }
}

/**
 * Verify every DomainKey-Signature of a message given as a Buffer or a stream of
 * chunks (bounded memory: only the header is held). Never throws for bad mail.
 */
export async function verifyDomainKeys(message: MessageInput, options: DomainKeysVerifierOptions): Promise<VerificationResult[]> {
  return verifyWhole(message, new DomainKeysVerifier(options), options, (why) => [notVerified('domainkeys', why)]);
}
