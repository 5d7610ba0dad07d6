import type { Buffer } from 'node:buffer';
import { BodyHashSet, type BodyHasher } from './body-hash.js';
import { verifyData, yieldToEventLoop } from './crypto.js';
import { DkimError } from './errors.js';
import { headerHashInput, selectSignedFields } from './header-hash.js';
import { type DkimKeyRecord, parseKeyRecord } from './key-record.js';
import { HeaderCollector, type HeaderField, headerValue, type LineEndings, type MessageInput, type MessageSink } from './message.js';
import type { KeyFetchResult, KeyResolver } from './resolver.js';
import { uncheckedOutcome, type Verdict, type VerificationResult } from './result.js';
import { type DkimSignature, parseDkimSignature, removeSignatureValue } from './signature.js';
import { acceptKey, concluded, KeyLookups, notVerified, pendingResult, verdict, verifyWhole } from './verification.js';

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
    const lookups = new KeyLookups(this.options.resolver, parseKeyRecord);
    for (const [index, field] of sigFields.entries()) {
      const parsed = parseDkimSignature(headerValue(field).toString('latin1'));
      const tags = parsed.ok ? parsed.signature : parsed;
      const result = pendingResult('dkim', {
        domain: tags.sdid,
        selector: tags.selector,
        algorithm: tags.algorithm,
        signatureB64: tags.signatureB64,
      });
      if (tags.auid) result.identity = tags.auid;
      const unchecked = uncheckedOutcome(this.collected.overLimit, index, max, parsed.ok ? undefined : parsed);
      if (unchecked || !parsed.ok) {
        checks.push({ result: unchecked ? concluded(result, unchecked) : result });
        continue;
      }
      const sig = parsed.signature;
      result.signedHeaders = sig.signedHeaders;
      if (sig.bodyLength !== undefined) result.bodyLength = sig.bodyLength;
      if (sig.algorithm === 'rsa-sha1') {
        checks.push({ result: concluded(result, verdict('permerror', 'algorithm-unsupported', 'rsa-sha1 is not accepted (RFC 8301)')) });
        continue;
      }
      if (sig.expiration !== undefined && sig.expiration + (this.options.clockSkew ?? 300) < now) {
        checks.push({ result: concluded(result, verdict('permerror', 'signature-expired', `signature expired at x=${sig.expiration}`)) });
        continue;
      }
      const key = lookups.get(sig.selector, sig.sdid);
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
    const accepted = await acceptKey(result, key, { ...this.options, signature: sig }, (record) => keyUnsuitable(record, sig));
    if (!accepted.ok) return concluded(result, accepted.verdict);
    const body = hasher.digest();
    if (sig.bodyLength !== undefined) {
      if (sig.bodyLength > body.canonicalLength) {
        return concluded(
          result,
          verdict('permerror', 'body-length-exceeded', `l=${sig.bodyLength} is longer than the body (${body.canonicalLength} octets)`),
        );
      }
      result.unsignedBodyBytes = body.canonicalLength - body.hashedLength;
    }
    if (!body.hash.equals(sig.bodyHash)) return concluded(result, verdict('fail', 'body-hash-mismatch', 'body hash did not verify'));
    await yieldToEventLoop();
    const good = verifyData(sig.keyType, sig.hashAlgorithm, headerData, accepted.key, sig.signature);
    if (!good) return concluded(result, verdict('fail', 'bad-signature', 'signature did not verify'));
    return concluded(result, 'pass');
  }
}

/** DKIM's own rules for a key record's tags (RFC 6376 §3.6.1): h= fits a=, t=s holds i= to d= (k= is acceptPublicKey's). */
function keyUnsuitable(record: DkimKeyRecord, sig: DkimSignature): Verdict | undefined {
  if (record.hashAlgorithms && !record.hashAlgorithms.includes(sig.hashAlgorithm)) {
    return verdict('permerror', 'key-mismatch', `key h= does not allow ${sig.hashAlgorithm}`);
  }
  if (record.strict && sig.auidGiven) {
    const auidDomain = sig.auid.slice(sig.auid.lastIndexOf('@') + 1);
    if (auidDomain.toLowerCase().replace(/\.$/, '') !== sig.sdid.toLowerCase().replace(/\.$/, '')) {
      return verdict('permerror', 'key-restricted', 'key t=s forbids an i= in a subdomain of d=');
    }
  }
  return undefined;
}

/**
 * Verify every DKIM-Signature of a message given as a Buffer or a stream of chunks
 * (bounded memory: only the header is held). Bare LF line endings are read as CRLF
 * unless lineEndings is 'as-is'. Never throws for bad mail.
 */
export async function verifyMessage(message: MessageInput, options: VerifierOptions): Promise<VerificationResult[]> {
  return verifyWhole(message, new Verifier(options), options, (why) => [notVerified('dkim', why)]);
}
