import type { Buffer } from 'node:buffer';
import {
  DkimError,
  type HeaderField,
  type KeyResolver,
  type LineEndings,
  type MessageInput,
  type MessageSink,
  type VerificationResult,
  Verifier,
  type VerifierOptions,
} from '@inkan/dkim-core';
import { notVerified, verifyWhole } from '@inkan/dkim-core/verification';
import { DomainKeysVerifier, type DomainKeysVerifierOptions } from './verifier.js';

export interface CombinedVerifierOptions {
  /** One resolver for both kinds of key lookup. */
  resolver: KeyResolver;
  /** Options for dkim-core's Verifier (its resolver is the one above). */
  dkim?: Omit<VerifierOptions, 'resolver'>;
  /** Options for the DomainKeysVerifier (its resolver is the one above). */
  domainKeys?: Omit<DomainKeysVerifierOptions, 'resolver'>;
  /**
   * Signatures checked per message, DKIM and DomainKeys together (default 10): DKIM
   * signatures first, top down, then DomainKeys ones; the rest get "policy" ("not
   * verified: more than N signatures") and cost no key lookup. A per-kind
   * maxSignatures in `dkim` or `domainKeys` can only lower it.
   */
  maxSignatures?: number;
  /** RSA keys larger than this are never used, for both kinds: "policy" (default 4096). */
  maxKeyBits?: number;
  /** Header bytes accepted per message (default 1 MiB), for the parser of verifyDkimAndDomainKeys(). */
  maxHeaderBytes?: number;
  /** verifyDkimAndDomainKeys() only: bare LFs become CRLF first ('normalize', the default) or not ('as-is'). */
  lineEndings?: LineEndings;
}

export interface CombinedResults {
  /** One result per DKIM-Signature, top first. */
  dkim: VerificationResult[];
  /** One result per DomainKey-Signature, top first. */
  domainkeys: VerificationResult[];
}

const DEFAULT_MAX_SIGNATURES = 10;

/** Passes lookups on, each name only once; lives as long as one message. */
class OncePerName implements KeyResolver {
  private readonly resolver: KeyResolver;
  private readonly answers = new Map<string, Promise<string[]>>();

  constructor(resolver: KeyResolver) {
    this.resolver = resolver;
  }

  lookup(name: string): Promise<string[]> {
    const key = name.toLowerCase().replace(/\.$/, '');
    let answer = this.answers.get(key);
    if (!answer) {
      answer = Promise.resolve().then(() => this.resolver.lookup(name));
      this.answers.set(key, answer);
    }
    return answer;
  }
}

/**
 * A MessageSink that hands every header field and body chunk to both dkim-core's
 * Verifier and a DomainKeysVerifier, so that one pass over a message gives DKIM and
 * DomainKeys results (for a milter, which sees the message once).
 */
export class CombinedVerifier implements MessageSink {
  readonly dkim: Verifier;
  readonly domainKeys: DomainKeysVerifier;
  /** DKIM-Signature fields seen so far. */
  private dkimFields = 0;
  private readonly dkimMax: number;
  private readonly maxSignatures: number;
  private started = false;

  constructor(options: CombinedVerifierOptions) {
    if (!options?.resolver) throw new DkimError('INVALID_OPTION', 'CombinedVerifier needs a resolver');
    // A DKIM and a DomainKeys signature often share a selector: ask DNS once per message.
    const resolver = new OncePerName(options.resolver);
    const max = options.maxSignatures ?? DEFAULT_MAX_SIGNATURES;
    this.maxSignatures = max;
    this.dkimMax = Math.min(options.dkim?.maxSignatures ?? max, max);
    const maxKeyBits = (kind?: { maxKeyBits?: number }) => kind?.maxKeyBits ?? options.maxKeyBits;
    const dkimKeyBits = maxKeyBits(options.dkim);
    const dkKeyBits = maxKeyBits(options.domainKeys);
    this.dkim = new Verifier({
      ...options.dkim,
      resolver,
      maxSignatures: this.dkimMax,
      ...(dkimKeyBits !== undefined ? { maxKeyBits: dkimKeyBits } : {}),
    });
    this.domainKeys = new DomainKeysVerifier({
      ...options.domainKeys,
      resolver,
      ...(dkKeyBits !== undefined ? { maxKeyBits: dkKeyBits } : {}),
    });
  }

  header(field: HeaderField): void {
    if (field.name.toLowerCase() === 'dkim-signature') this.dkimFields++;
    this.dkim.header(field);
    this.domainKeys.header(field);
  }

  endOfHeaders(): void {
    if (this.started) return;
    this.started = true;
    // The DKIM signatures within their cap count against the DomainKeys ones too.
    this.domainKeys.shareSignatureCap(this.maxSignatures, Math.min(this.dkimFields, this.dkimMax));
    this.dkim.endOfHeaders();
    this.domainKeys.endOfHeaders();
  }

  body(chunk: Buffer): void {
    if (!this.started) this.endOfHeaders();
    this.dkim.body(chunk);
    this.domainKeys.body(chunk);
  }

  /** Both kinds' results; the checks run one after another (the key lookups all started at endOfHeaders). */
  async finish(): Promise<CombinedResults> {
    if (!this.started) this.endOfHeaders();
    const dkim = await this.dkim.finish();
    const domainkeys = await this.domainKeys.finish();
    return { dkim, domainkeys };
  }
}

/**
 * Verify the DKIM and DomainKeys signatures of a message in one pass: one
 * MessageParser feeding both verifiers. Never throws for bad mail.
 */
export async function verifyDkimAndDomainKeys(message: MessageInput, options: CombinedVerifierOptions): Promise<CombinedResults> {
  return verifyWhole(message, new CombinedVerifier(options), options, (why) => ({
    dkim: [notVerified('dkim', why)],
    domainkeys: [notVerified('domainkeys', why)],
  }));
}
