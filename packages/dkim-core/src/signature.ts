import { Buffer } from 'node:buffer';
import type { Canonicalization } from './canonicalization/body.js';
import type { HashAlgorithm } from './body-hash.js';
import type { ParseProblem } from './result.js';
import { clip, parseTagList, stripFws, trimFws } from './tag-list.js';

export type SigningAlgorithm = 'rsa-sha256' | 'ed25519-sha256';
/** Algorithms a signature may name; rsa-sha1 is parsed so that it can be refused by name. */
export type SignatureAlgorithm = SigningAlgorithm | 'rsa-sha1';
export type KeyType = 'rsa' | 'ed25519';

/**
 * What each a= value means. A Map, so that a= is looked up among own entries only: an a= of
 * "constructor" or "__proto__" is an unknown algorithm, not a property every object inherits.
 */
export const ALGORITHMS: ReadonlyMap<string, { keyType: KeyType; hash: HashAlgorithm }> = new Map([
  ['rsa-sha256', { keyType: 'rsa', hash: 'sha256' }],
  ['rsa-sha1', { keyType: 'rsa', hash: 'sha1' }],
  ['ed25519-sha256', { keyType: 'ed25519', hash: 'sha256' }],
]);

/** Key type and hash of an algorithm this library knows (for the signer, whose a= is its own). */
export function algorithmParts(name: SignatureAlgorithm): { keyType: KeyType; hash: HashAlgorithm } {
  return ALGORITHMS.get(name) as { keyType: KeyType; hash: HashAlgorithm };
}

/** A parsed DKIM-Signature (RFC 6376 §3.5), names as in the RFC where it has them. */
export interface DkimSignature {
  algorithm: SignatureAlgorithm;
  keyType: KeyType;
  hashAlgorithm: HashAlgorithm;
  /** b= decoded. */
  signature: Buffer;
  /** b= as written, folding whitespace removed. */
  signatureB64: string;
  /** bh= decoded. */
  bodyHash: Buffer;
  headerCanonicalization: Canonicalization;
  bodyCanonicalization: Canonicalization;
  /** d=, the Signing Domain Identifier. */
  sdid: string;
  /** s= */
  selector: string;
  /** i=, the Agent or User Identifier (defaults to "@" + d). */
  auid: string;
  /** Whether i= was given explicitly. */
  auidGiven: boolean;
  /** h=, in order, as written. */
  signedHeaders: string[];
  /** l= */
  bodyLength?: number;
  /** t= (seconds since the epoch) */
  timestamp?: number;
  /** x= (seconds since the epoch) */
  expiration?: number;
  /** z=, decoded into "Name:value" strings. */
  copiedHeaders?: string[];
  tags: Map<string, string>;
}

export type SignatureParseResult =
  | { ok: true; signature: DkimSignature }
  | ({ ok: false; sdid: string; selector: string; algorithm: string; signatureB64: string; auid?: string } & ParseProblem);

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Base64 of at least one octet; 4n+1 characters are not base64 (a last character alone encodes nothing). */
function isBase64Value(text: string): boolean {
  const data = text.replace(/=+$/, '').length;
  return BASE64.test(text) && data > 0 && data % 4 !== 1;
}
const DOMAIN = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.?$/;
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
/** Control characters (RFC 5234 CTL): never part of an identity, never let into a result. */
const CTL = /[\x00-\x1f\x7f]/;
/** A dot-atom local part (RFC 5322 atext and dots; UTF-8 octets too, RFC 6532), leniently: dots anywhere. */
const LOCAL_ATOMS = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\x80-\xff]*$/;
/** A quoted-string local part: printable characters and SP, or quoted-pairs of them. */
const LOCAL_QUOTED = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\x20-\x7e\x80-\xff])*"$/;

/** Characters that must not reach a result, made visible ("?"), for values of unusable signatures. */
function printable(text: string): string {
  return CTL.test(text) ? text.replace(/[\x00-\x1f\x7f]/g, '?') : text;
}

/**
 * Why a decoded i= is not "[ Local-part ] @ domain-name" (RFC 6376 §3.5), or undefined
 * when it is. Control characters (which dkim-quoted-printable can encode, =0A, =00) are
 * refused first: they would end up in Authentication-Results.
 */
function identityProblem(auid: string): string | undefined {
  if (CTL.test(auid)) return `identity i=${clip(auid)} contains control characters`;
  const at = auid.lastIndexOf('@');
  if (at < 0) return `malformed identity i=${clip(auid)}`;
  const local = auid.slice(0, at);
  if (!LOCAL_ATOMS.test(local) && !LOCAL_QUOTED.test(local)) return `malformed local part in identity i=${clip(auid)}`;
  if (!DOMAIN.test(auid.slice(at + 1))) return `malformed domain in identity i=${clip(auid)}`;
  return undefined;
}
const DIGITS = /^[0-9]{1,12}$/;

/** True when `domain` is `parent` or a subdomain of it (case-insensitive). */
export function isSameOrSubdomain(domain: string, parent: string): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '');
  const p = parent.toLowerCase().replace(/\.$/, '');
  return d === p || d.endsWith(`.${p}`);
}

/** Decode dkim-quoted-printable (RFC 6376 §2.11), used by z=. */
export function decodeDkimQuotedPrintable(text: string): string {
  return stripFws(text).replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/** Encode for dkim-quoted-printable (RFC 6376 §2.11); "|" is encoded too, for z=. */
export function encodeDkimQuotedPrintable(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) {
    if (b >= 0x21 && b <= 0x7e && b !== 0x3b && b !== 0x3d && b !== 0x7c) out += String.fromCharCode(b);
    else out += `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Parse the value of a DKIM-Signature field (everything after the colon, as latin1).
 * Returns a reason naming the rule that failed, and whatever identifying tags could
 * be read, when the signature is unusable.
 */
export function parseDkimSignature(value: string): SignatureParseResult {
  const parsed = parseTagList(value);
  const tags = parsed.tags;
  const sdid = trimFws(tags.get('d') ?? '');
  const selector = trimFws(tags.get('s') ?? '');
  const algorithm = trimFws(tags.get('a') ?? '');
  const signatureB64 = stripFws(tags.get('b') ?? '');
  const fail = (error: string, code: ParseProblem['code'] = 'signature-syntax'): SignatureParseResult => ({
    ok: false,
    error,
    code,
    sdid: printable(sdid),
    selector: printable(selector),
    algorithm: printable(algorithm),
    signatureB64: printable(signatureB64),
    ...(tags.has('i') ? { auid: printable(trimFws(tags.get('i') ?? '')) } : {}),
  });
  if (!parsed.ok) return fail(parsed.error);

  for (const required of ['v', 'a', 'b', 'bh', 'd', 'h', 's']) {
    if (!tags.has(required)) return fail(`missing required tag ${required}=`);
  }
  if (tags.get('v') !== '1') return fail(`unsupported version v=${clip(tags.get('v') ?? '')}`);
  const alg = ALGORITHMS.get(algorithm);
  if (!alg) return fail(`unknown algorithm a=${clip(algorithm)}`, 'algorithm-unsupported');

  if (!isBase64Value(signatureB64)) return fail('b= is not valid base64');
  const bodyHashB64 = stripFws(tags.get('bh') ?? '');
  if (!isBase64Value(bodyHashB64)) return fail('bh= is not valid base64');

  let headerCanonicalization: Canonicalization = 'simple';
  let bodyCanonicalization: Canonicalization = 'simple';
  if (tags.has('c')) {
    const c = tags.get('c') ?? '';
    const m = /^(simple|relaxed)(?:\/(simple|relaxed))?$/.exec(c);
    if (!m) return fail(`unknown canonicalization c=${clip(c)}`);
    headerCanonicalization = m[1] as Canonicalization;
    bodyCanonicalization = (m[2] ?? 'simple') as Canonicalization;
  }

  if (!DOMAIN.test(sdid)) return fail(`malformed domain d=${clip(sdid)}`);
  if (!DOMAIN.test(selector)) return fail(`malformed selector s=${clip(selector)}`);

  const signedHeaders = (tags.get('h') ?? '').split(':').map(trimFws);
  if (signedHeaders.some((name) => !FIELD_NAME.test(name))) return fail('malformed header list h=');
  if (!signedHeaders.some((name) => name.toLowerCase() === 'from')) return fail('From field not signed (h= lacks from)', 'from-not-signed');

  let auid = `@${sdid}`;
  const auidGiven = tags.has('i');
  if (auidGiven) {
    auid = decodeDkimQuotedPrintable(tags.get('i') ?? '');
    const problem = identityProblem(auid);
    if (problem) return fail(problem);
    if (!isSameOrSubdomain(auid.slice(auid.lastIndexOf('@') + 1), sdid))
      return fail(`identity i=${clip(auid)} is outside domain d=${sdid}`, 'identity-mismatch');
  }

  const result: DkimSignature = {
    algorithm: algorithm as SignatureAlgorithm,
    keyType: alg.keyType,
    hashAlgorithm: alg.hash,
    signature: Buffer.from(signatureB64, 'base64'),
    signatureB64,
    bodyHash: Buffer.from(bodyHashB64, 'base64'),
    headerCanonicalization,
    bodyCanonicalization,
    sdid,
    selector,
    auid,
    auidGiven,
    signedHeaders,
    tags,
  };

  if (tags.has('l')) {
    const l = tags.get('l') ?? '';
    if (!/^[0-9]{1,76}$/.test(l)) return fail(`malformed body length l=${clip(l)}`);
    const n = Number(l);
    if (!Number.isSafeInteger(n)) return fail(`body length l=${clip(l)} is too large`);
    result.bodyLength = n;
  }
  if (tags.has('q')) {
    const methods = (tags.get('q') ?? '').split(':').map(trimFws);
    if (!methods.some((m) => m.toLowerCase() === 'dns/txt' || m.toLowerCase() === 'dns')) {
      return fail(`no supported query method in q=${clip(tags.get('q') ?? '')}`);
    }
  }
  if (tags.has('t')) {
    const t = tags.get('t') ?? '';
    if (!DIGITS.test(t)) return fail(`malformed timestamp t=${clip(t)}`);
    result.timestamp = Number(t);
  }
  if (tags.has('x')) {
    const x = tags.get('x') ?? '';
    if (!DIGITS.test(x)) return fail(`malformed expiration x=${clip(x)}`);
    result.expiration = Number(x);
    if (result.timestamp !== undefined && result.expiration < result.timestamp) {
      return fail('expiration x= is before timestamp t=');
    }
  }
  if (tags.has('z')) {
    result.copiedHeaders = stripFws(tags.get('z') ?? '')
      .split('|')
      .map((part) => decodeDkimQuotedPrintable(part));
  }
  return { ok: true, signature: result };
}

/**
 * The signature field with the value of b= removed (RFC 6376 §3.7): everything between
 * "b=" and the next ";" (or the end) goes, everything else stays byte for byte. The
 * tag is found by name, so "b =" counts, and bh= is never touched.
 */
export function removeSignatureValue(raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  const colon = text.indexOf(':');
  let pos = colon + 1;
  while (pos <= text.length) {
    let end = text.indexOf(';', pos);
    if (end < 0) end = text.length;
    const eq = text.indexOf('=', pos);
    if (eq >= 0 && eq < end && trimFws(text.slice(pos, eq)) === 'b') {
      return Buffer.concat([raw.subarray(0, eq + 1), raw.subarray(end)]);
    }
    pos = end + 1;
  }
  return raw;
}

/** A tag for formatting: where its value may be broken when folding. */
export interface FormatTag {
  name: string;
  value: string;
  /** Characters after which a fold may go; "" means anywhere (base64). Absent: never. */
  breakAfter?: string;
}

const MAX_LINE = 78;
const TAB_WIDTH = 8;

function columns(line: string): number {
  return line.startsWith('\t') ? TAB_WIDTH + line.length - 1 : line.length;
}

/** Largest cut position in `text` that leaves at most `room` characters before it. */
function findCut(text: string, room: number, minCut: number, breakAfter: string): number {
  const limit = Math.min(room, text.length - 1);
  for (let cut = limit; cut >= minCut && cut > 0; cut--) {
    if (breakAfter === '' || breakAfter.includes(text[cut - 1] as string)) return cut;
  }
  return -1;
}

function firstCut(text: string, minCut: number, breakAfter: string): number {
  for (let cut = Math.max(minCut, 1); cut < text.length; cut++) {
    if (breakAfter === '' || breakAfter.includes(text[cut - 1] as string)) return cut;
  }
  return -1;
}

/**
 * Format a tag list as a header field folded at 78 columns ("name=value;" items
 * separated by spaces; folds are CRLF + HTAB, counted as 8 columns). A long value is
 * broken where its tag allows, never inside "name=". No final CRLF.
 */
export function formatFoldedTags(fieldName: string, tags: FormatTag[]): string {
  const lines: string[] = [];
  let line = `${fieldName}:`;
  tags.forEach((tag, index) => {
    const item = `${tag.name}=${tag.value}${index === tags.length - 1 ? '' : ';'}`;
    if (columns(line) + 1 + item.length <= MAX_LINE) {
      line += ` ${item}`;
      return;
    }
    if (tag.breakAfter === undefined || TAB_WIDTH + item.length <= MAX_LINE) {
      // Whole on a fresh line rather than broken.
      lines.push(line);
      line = `\t${item}`;
      return;
    }
    let minCut = tag.name.length + 1;
    if (columns(line) + 1 + minCut + 8 <= MAX_LINE) line += ' ';
    else {
      lines.push(line);
      line = '\t';
    }
    let rest = item;
    let fresh = line === '\t';
    while (columns(line) + rest.length > MAX_LINE) {
      let cut = findCut(rest, MAX_LINE - columns(line), minCut, tag.breakAfter);
      if (cut < 0 && !fresh) {
        lines.push(line.trimEnd());
        line = '\t';
        fresh = true;
        continue;
      }
      if (cut < 0) {
        // Nothing fits even on a fresh line: overflow to the first allowed break.
        cut = firstCut(rest, minCut, tag.breakAfter);
        if (cut < 0) break;
      }
      lines.push(line + rest.slice(0, cut));
      line = '\t';
      rest = rest.slice(cut);
      fresh = true;
      minCut = 1;
    }
    line += rest;
  });
  lines.push(line);
  return lines.join('\r\n');
}

/**
 * Append a value that may be folded anywhere (base64) to a formatted field, keeping
 * every line within 78 columns. Used to add b= to the exact text that was signed.
 */
export function appendFolded(field: string, value: string): string {
  const lastBreak = field.lastIndexOf('\n');
  let col = columns(field.slice(lastBreak + 1));
  let out = field;
  let rest = value;
  while (col + rest.length > MAX_LINE) {
    const room = MAX_LINE - col;
    if (room > 0) out += rest.slice(0, room);
    rest = rest.slice(Math.max(room, 0));
    out += '\r\n\t';
    col = TAB_WIDTH;
  }
  return out + rest;
}
