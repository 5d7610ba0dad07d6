import type { KeyObject } from 'node:crypto';
import { DkimError } from './errors.js';
import { acceptPublicKey, type DkimKeyRecord, type PublicKeyPolicy } from './key-record.js';
import { DEFAULT_MAX_HEADER_BYTES, feedMessage, type LineEndings, type MessageInput, type MessageSink } from './message.js';
import { fetchKeyRecord, type KeyFetchResult, type KeyResolver } from './resolver.js';
import type { VerificationResult, Verdict } from './result.js';

/*
 * The part of checking a signature that DKIM and DomainKeys share: the result that a check
 * starts from, one key lookup per key name and message, reading the key (revoked? for email?
 * within the size limits? importable?) and the verdict. What differs (signature syntax,
 * canonicalization, which fields are hashed, which key tags matter) stays with each protocol.
 */

/** What a result starts from: the identifying tags of a signature field, usable or not. */
export interface SignatureTags {
  domain: string;
  selector: string;
  algorithm: string;
  /** b= without whitespace ("" when absent). */
  signatureB64: string;
}

/** A result for one signature that has not been checked yet: permerror until it is. */
export function pendingResult(method: VerificationResult['method'], tags: SignatureTags): VerificationResult {
  const result: VerificationResult = {
    method,
    result: 'permerror',
    code: 'signature-syntax',
    domain: tags.domain,
    selector: tags.selector,
    algorithm: tags.algorithm,
    testing: false,
  };
  if (tags.signatureB64) result.headerB = tags.signatureB64;
  return result;
}

/** The result with its outcome: a verdict, or pass. */
export function concluded(result: VerificationResult, verdict: Verdict | 'pass'): VerificationResult {
  return verdict === 'pass' ? { ...result, result: 'pass', code: 'ok' } : { ...result, ...verdict };
}

/** A verdict from its parts. */
export function verdict(result: Verdict['result'], code: Verdict['code'], reason: string): Verdict {
  return { result, code, reason };
}

/** The lookup of each key name a message needs, started once: the same selector and domain share one. */
export class KeyLookups<R> {
  private readonly resolver: KeyResolver;
  private readonly parse: (text: string) => { ok: true; record: R } | { ok: false; error: string };
  private readonly started = new Map<string, Promise<KeyFetchResult<R>>>();

  constructor(resolver: KeyResolver, parse: (text: string) => { ok: true; record: R } | { ok: false; error: string }) {
    this.resolver = resolver;
    this.parse = parse;
  }

  /** The key at `selector`._domainkey.`domain`, looked up now unless it already is. */
  get(selector: string, domain: string): Promise<KeyFetchResult<R>> {
    const name = `${selector}._domainkey.${domain}`.toLowerCase();
    let lookup = this.started.get(name);
    if (!lookup) {
      lookup = fetchKeyRecord(this.resolver, name, this.parse);
      this.started.set(name, lookup);
    }
    return lookup;
  }
}

/** A key ready to check a signature with, or the verdict that ends the check. */
export type KeyAcceptance = { ok: true; key: KeyObject } | { ok: false; verdict: Verdict };

/**
 * Wait for a key and decide whether it may check this signature: the lookup must have found
 * a record, acceptPublicKey must accept its key (not revoked, k= fits the signature, within
 * the limits, importable), its s= must allow email, and `suits` (the protocol's own tag rules:
 * h=, t=s, g=) must not object. Sets `result.testing` (t=y) and `result.keyBits` on the way.
 */
export async function acceptKey<R extends DkimKeyRecord>(
  result: VerificationResult,
  lookup: Promise<KeyFetchResult<R>>,
  policy: PublicKeyPolicy,
  suits: (record: R) => Verdict | undefined,
): Promise<KeyAcceptance> {
  const outcome = await lookup;
  if (!outcome.ok) return { ok: false, verdict: verdict(outcome.result, outcome.code, outcome.reason) };
  const record = outcome.record;
  result.testing = record.testing;
  const accepted = acceptPublicKey(record, policy);
  if (accepted.bits !== undefined) result.keyBits = accepted.bits;
  if (!accepted.ok) return { ok: false, verdict: verdict(accepted.result, accepted.code, accepted.reason) };
  if (!record.serviceTypes.some((s) => s === '*' || s.toLowerCase() === 'email')) {
    return { ok: false, verdict: verdict('permerror', 'key-restricted', 'key s= does not include email') };
  }
  const unsuitable = suits(record);
  return unsuitable ? { ok: false, verdict: unsuitable } : { ok: true, key: accepted.key };
}

/** Options of the one-shot verification functions. */
export interface WholeMessageOptions {
  maxHeaderBytes?: number;
  lineEndings?: LineEndings;
}

/** The result for a message whose header section is over the limit: nothing was verified. */
export function notVerified(method: VerificationResult['method'], why: string): VerificationResult {
  return {
    method,
    result: 'policy',
    code: 'header-limit',
    reason: `not verified: ${why}`,
    domain: '',
    selector: '',
    algorithm: '',
    testing: false,
  };
}

/**
 * Feed a whole message (a Buffer or a stream of chunks) to a verifier and return what its
 * finish() gives; a header section over maxHeaderBytes gives `tooLarge(why)` instead. Bare LFs
 * become CRLF unless lineEndings is 'as-is'. Throws only for I/O failures of the input.
 */
export async function verifyWhole<T>(
  message: MessageInput,
  verifier: MessageSink & { finish(): Promise<T> },
  options: WholeMessageOptions,
  tooLarge: (why: string) => T,
): Promise<T> {
  try {
    await feedMessage(message, verifier, {
      maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      lineEndings: options.lineEndings ?? 'normalize',
    });
  } catch (error) {
    if (DkimError.isInstance(error) && error.code === 'MESSAGE_TOO_LARGE') return tooLarge(error.message);
    throw error;
  }
  return verifier.finish();
}
