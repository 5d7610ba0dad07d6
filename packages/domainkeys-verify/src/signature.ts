import { Buffer } from 'node:buffer';
import { clip, parseTagList, stripFws, trimFws } from '@inkan/dkim-core/records';
import type { ParseProblem } from '@inkan/dkim-core/verification';
import type { DomainKeysCanonicalization } from './canonicalization.js';

/** A parsed DomainKey-Signature header field (RFC 4870 §3.3). */
export interface DomainKeySignature {
  /** a=, lower-cased; "rsa-sha1" (the only one there is) when absent. */
  algorithm: 'rsa-sha1';
  /** b= decoded. */
  signature: Buffer;
  /** b= with folding whitespace removed. */
  signatureB64: string;
  /** c=, lower-cased; "simple" when absent or empty. */
  canonicalization: DomainKeysCanonicalization;
  /** d=, lower-cased. */
  domain: string;
  /** s= */
  selector: string;
  /** h= split at colons, lower-cased, empty names dropped; undefined without h= (or with an empty one). */
  headers?: string[];
  /** h= names as written (for results). */
  headersAsWritten?: string[];
  /** q=; "dns" is the only query method. */
  query: 'dns';
  tags: Map<string, string>;
}

export type DomainKeySignatureParseResult =
  | { ok: true; signature: DomainKeySignature }
  | ({ ok: false; domain: string; selector: string; algorithm: string; signatureB64: string } & ParseProblem);

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Labels of letters, digits, "-" and "_" (selectors and test domains use "_"), dots between. */
const DOMAIN = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.?$/;

/**
 * Parse the value of a DomainKey-Signature field (after the colon; latin1 text).
 * Never throws: what breaks RFC 4870 §3.3 comes back as an error naming the rule,
 * together with whatever d=, s=, a= and b= could be read, for the result.
 *
 * Defaults follow RFC 4870 and Mail::DKIM: a= rsa-sha1, c= simple (also for an empty
 * c=), q= dns when absent (an empty or other q= is an error). Unknown tags are ignored.
 */
export function parseDomainKeySignature(value: string): DomainKeySignatureParseResult {
  const parsed = parseTagList(value);
  const tags = parsed.tags;
  const domain = trimFws(tags.get('d') ?? '').toLowerCase();
  const selector = trimFws(tags.get('s') ?? '');
  const aTag = trimFws(tags.get('a') ?? '').toLowerCase();
  const algorithm = aTag === '' ? 'rsa-sha1' : aTag;
  const signatureB64 = stripFws(tags.get('b') ?? '');
  // What an unusable signature reports goes into results and A-R: control characters shown as "?".
  const shown = (text: string) => text.replace(/[\x00-\x1f\x7f]/g, '?');
  const fail = (error: string, code: ParseProblem['code'] = 'signature-syntax'): DomainKeySignatureParseResult => ({
    ok: false,
    error,
    code,
    domain: shown(domain),
    selector: shown(selector),
    algorithm: shown(algorithm),
    signatureB64: shown(signatureB64),
  });

  if (!parsed.ok) return fail(`malformed DomainKey-Signature: ${parsed.error}`);
  if (algorithm !== 'rsa-sha1')
    return fail(`unsupported algorithm a=${clip(algorithm)} (RFC 4870 3.3: only rsa-sha1)`, 'algorithm-unsupported');

  if (!tags.has('b')) return fail('DomainKey-Signature has no b= tag (RFC 4870 3.3: b= is required)');
  if (signatureB64 === '') return fail('DomainKey-Signature b= is empty');
  // 4n+1 characters are not base64 either (a last character alone encodes nothing).
  const data = signatureB64.replace(/=+$/, '').length;
  if (!BASE64.test(signatureB64) || data === 0 || data % 4 === 1) return fail('DomainKey-Signature b= is not valid base64');

  const cTag = trimFws(tags.get('c') ?? '').toLowerCase();
  const canonicalization = cTag === '' ? 'simple' : cTag;
  if (canonicalization !== 'simple' && canonicalization !== 'nofws') {
    return fail(`unsupported canonicalization c=${clip(canonicalization)} (RFC 4870 3.3: simple or nofws)`);
  }

  if (tags.has('q')) {
    const q = trimFws(tags.get('q') ?? '').toLowerCase();
    if (q !== 'dns') return fail(`unsupported query method q=${clip(q)} (RFC 4870 3.3: only dns)`);
  }

  if (!tags.has('d')) return fail('DomainKey-Signature has no d= tag (RFC 4870 3.3: d= is required)');
  if (domain === '') return fail('DomainKey-Signature d= is empty');
  if (!DOMAIN.test(domain)) return fail(`DomainKey-Signature d=${clip(domain)} is not a domain name`);

  if (!tags.has('s')) return fail('DomainKey-Signature has no s= tag (RFC 4870 3.3: s= is required)');
  if (selector === '') return fail('DomainKey-Signature s= is empty');
  if (!DOMAIN.test(selector) || selector.endsWith('.')) {
    return fail(`DomainKey-Signature s=${clip(selector)} is not a valid selector`);
  }

  const signature: DomainKeySignature = {
    algorithm: 'rsa-sha1',
    signature: Buffer.from(signatureB64, 'base64'),
    signatureB64,
    canonicalization,
    domain: domain.replace(/\.$/, ''),
    selector,
    query: 'dns',
    tags,
  };
  const hTag = tags.get('h');
  if (hTag !== undefined) {
    const written = hTag
      .split(':')
      .map(trimFws)
      .filter((name) => name !== '');
    if (written.length > 0) {
      signature.headersAsWritten = written;
      signature.headers = written.map((name) => name.toLowerCase());
    }
  }
  return { ok: true, signature };
}
