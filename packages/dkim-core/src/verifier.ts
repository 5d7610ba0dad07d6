import type { Buffer } from 'node:buffer';
import { BodyHashSet, type BodyHasher } from './body-hash.js';
import { verifyData, yieldToEventLoop } from './crypto.js';
import { DkimError } from './errors.js';
import { headerHashInput, selectSignedFields } from './header-hash.js';
import { acceptPublicKey, type DkimKeyRecord, parseKeyRecord } from './key-record.js';
import {
  DEFAULT_MAX_HEADER_BYTES,
  feedMessage,
  HeaderCollector,
  type HeaderField,
  headerValue,
  type LineEndings,
  type MessageInput,
  type MessageSink,
} from './message.js';
import { fetchKeyRecord, type KeyFetchResult, type KeyResolver } from './resolver.js';
import { uncheckedOutcome, type VerificationResult } from './result.js';
import { type DkimSignature, parseDkimSignature, removeSignatureValue } from './signature.js';

export interface VerifierOptions {
  /** Where public keys come from (DnsKeyResolver, MemoryKeyResolver, FileKeyResolver, ...). */
  resolver: KeyResolver;
  /** Signatures checked per message; the rest get "policy" (default 10). */
  maxSignatures?: number;
  /** RSA keys smaller than this never pass (default 1024, RFC 8301). */
  minKeyBits?: number;
  /**
   * RSA keys larger than this are never used: "policy" (default 4096). Public exponents
   * over 2^32 - 1 are refused the same way, so no key makes a check cost much more than usual.
   */
  maxKeyBits?: number;
  /** Seconds of tolerance when checking x= (default 300). */
  clockSkew?: number;
  /** Current time in milliseconds (default Date.now). */
  now?: () => number;
  /** Header fields accepted per message (default 1000); more and nothing is verified. */
  maxHeaderFields?: number;
  /** Header bytes accepted per message (default 1 MiB). */
  maxHeaderBytes?: number;
  /**
   * Body hashers shared with a Signer on the same message. When given, the caller
   * feeds the body to the set (bodyHashes.update) and body() here does nothing.
   */
  bodyHashes?: BodyHashSet;
  /**
   * verifyMessage only: 'normalize' (default) reads each bare LF of the message as CRLF,
   * as it was (or will be) on the wire, so an LF-only copy of a signed message verifies;
   * 'as-is' checks the bytes as given. A Verifier's header() and body() take fields and
   * chunks as given; to stream raw bytes into one, use MessageParser with this option.
   */
  lineEndings?: LineEndings;
}

type KeyOutcome = KeyFetchResult<DkimKeyRecord>;

interface Check {
  result: VerificationResult;
  signature?: DkimSignature;
  hasher?: BodyHasher;
  headerData?: Buffer;
  key?: Promise<KeyOutcome>;
}

/**
 * Verifies every DKIM-Signature of one message as it streams past: feed header
 * fields, call endOfHeaders() (key lookups start there), feed body chunks, then await
 * finish(). For a whole message at once, see verifyMessage().
 */
export class Verifier implements MessageSink {
  private readonly options: VerifierOptions;
  private readonly bodyHashes: BodyHashSet;
  private readonly ownsBodyHashes: boolean;
  private readonly collected: HeaderCollector;
  private checks: Check[] | undefined;

  constructor(options: VerifierOptions) {
    if (!options?.resolver) throw new DkimError('INVALID_OPTION', 'Verifier needs a resolver');
    this.options = options;
    this.collected = new HeaderCollector(options);
    this.ownsBodyHashes = !options.bodyHashes;
    this.bodyHashes = options.bodyHashes ?? new BodyHashSet();
  }

  header(field: HeaderField): void {
    if (this.checks) throw new DkimError('INVALID_OPTION', 'header() after endOfHeaders()');
    this.collected.add(field);
  }

  /** Parse the signatures, start their key lookups and set up body hashing. */
  endOfHeaders(): void {
    if (this.checks) return;
    const checks: Check[] = [];
    this.checks = checks;
    const sigFields = this.collected.fields.filter((f) => f.name.toLowerCase() === 'dkim-signature');
    const max = this.options.maxSignatures ?? 10;
    const now = Math.floor((this.options.now ?? Date.now)() / 1000);
    const lookups = new Map<string, Promise<KeyOutcome>>();
    for (const [index, field] of sigFields.entries()) {
      const parsed = parseDkimSignature(headerValue(field).toString('latin1'));
      const base = {
        method: 'dkim' as const,
        testing: false,
        domain: parsed.ok ? parsed.signature.sdid : parsed.sdid,
        selector: parsed.ok ? parsed.signature.selector : parsed.selector,
        algorithm: parsed.ok ? parsed.signature.algorithm : parsed.algorithm,
      };
      const result: VerificationResult = { ...base, result: 'permerror' };
      const b = parsed.ok ? parsed.signature.signatureB64 : parsed.signatureB64;
      if (b) result.headerB = b;
      const identity = parsed.ok ? parsed.signature.auid : parsed.auid;
      if (identity) result.identity = identity;
      const unchecked = uncheckedOutcome(this.collected.overLimit, index, max, parsed.ok ? undefined : parsed.error);
      if (unchecked || !parsed.ok) {
        checks.push({ result: { ...result, ...unchecked } });
        continue;
      }
      const sig = parsed.signature;
      result.signedHeaders = sig.signedHeaders;
      if (sig.bodyLength !== undefined) result.bodyLength = sig.bodyLength;
      if (sig.algorithm === 'rsa-sha1') {
        checks.push({ result: { ...result, reason: 'rsa-sha1 is not accepted (RFC 8301)' } });
        continue;
      }
      if (sig.expiration !== undefined && sig.expiration + (this.options.clockSkew ?? 300) < now) {
        checks.push({ result: { ...result, reason: `signature expired at x=${sig.expiration}` } });
        continue;
      }
      const name = `${sig.selector}._domainkey.${sig.sdid}`.toLowerCase();
      let key = lookups.get(name);
      if (!key) {
        key = fetchKeyRecord(this.options.resolver, name, parseKeyRecord);
        lookups.set(name, key);
      }
      const selected = selectSignedFields(this.collected.fields, sig.signedHeaders);
      const signatureField = { name: field.name, raw: removeSignatureValue(field.raw) };
      checks.push({
        result,
        signature: sig,
        key,
        hasher: this.bodyHashes.get(sig.bodyCanonicalization, sig.hashAlgorithm, sig.bodyLength),
        headerData: headerHashInput(selected, signatureField, sig.headerCanonicalization),
      });
    }
  }

  body(chunk: Buffer): void {
    if (!this.checks) this.endOfHeaders();
    if (this.ownsBodyHashes) this.bodyHashes.update(chunk);
  }

  /**
   * Finish body hashing, wait for keys, check every signature. One result per
   * DKIM-Signature, top first. The keys were asked for at endOfHeaders(), all at once; the
   * checks run one at a time, each on its own turn of the event loop.
   */
  async finish(): Promise<VerificationResult[]> {
    if (!this.checks) this.endOfHeaders();
    const results: VerificationResult[] = [];
    for (const check of this.checks as Check[]) results.push(await this.complete(check));
    return results;
  }

  private async complete(check: Check): Promise<VerificationResult> {
    const { result, signature: sig, key, hasher, headerData } = check;
    if (!sig || !key || !hasher || !headerData) return result;
    const fail = (kind: VerificationResult['result'], reason: string): VerificationResult => ({ ...result, result: kind, reason });
    const outcome = await key;
    if (!outcome.ok) return fail(outcome.result, outcome.reason);
    const record = outcome.record;
    result.testing = record.testing;
    const accepted = acceptPublicKey(record, { ...this.options, signature: sig });
    if (accepted.bits !== undefined) result.keyBits = accepted.bits;
    if (!accepted.ok) return fail(accepted.result, accepted.reason);
    if (record.hashAlgorithms && !record.hashAlgorithms.includes(sig.hashAlgorithm)) {
      return fail('permerror', `key h= does not allow ${sig.hashAlgorithm}`);
    }
    if (!record.serviceTypes.some((s) => s === '*' || s.toLowerCase() === 'email')) {
      return fail('permerror', 'key s= does not include email');
    }
    if (record.strict && sig.auidGiven) {
      const auidDomain = sig.auid.slice(sig.auid.lastIndexOf('@') + 1);
      if (auidDomain.toLowerCase().replace(/\.$/, '') !== sig.sdid.toLowerCase().replace(/\.$/, '')) {
        return fail('permerror', 'key t=s forbids an i= in a subdomain of d=');
      }
    }
    const body = hasher.digest();
    if (sig.bodyLength !== undefined) {
      if (sig.bodyLength > body.canonicalLength) {
        return fail('permerror', `l=${sig.bodyLength} is longer than the body (${body.canonicalLength} octets)`);
      }
      result.unsignedBodyBytes = body.canonicalLength - body.hashedLength;
    }
    if (!body.hash.equals(sig.bodyHash)) return fail('fail', 'body hash did not verify');
    await yieldToEventLoop();
    const good = verifyData(sig.keyType, sig.hashAlgorithm, headerData, accepted.key, sig.signature);
    if (!good) return fail('fail', 'signature did not verify');
    return { ...result, result: 'pass' };
  }
}

/**
 * Verify every DKIM-Signature of a message given as a Buffer or a stream of chunks
 * (bounded memory: only the header is held). Bare LF line endings are read as CRLF
 * unless lineEndings is 'as-is'. Never throws for bad mail.
 */
export async function verifyMessage(message: MessageInput, options: VerifierOptions): Promise<VerificationResult[]> {
  const verifier = new Verifier(options);
  try {
    await feedMessage(message, verifier, {
      maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      lineEndings: options.lineEndings ?? 'normalize',
    });
  } catch (error) {
    if (DkimError.isInstance(error) && error.code === 'MESSAGE_TOO_LARGE') {
      return [{ method: 'dkim', result: 'policy', reason: `not verified: ${error.message}`, domain: '', selector: '', algorithm: '', testing: false }];
    }
    throw error;
  }
  return verifier.finish();
}
