import { Buffer } from 'node:buffer';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { clip, parseTagList, stripFws, trimFws } from './tag-list.js';

/** A DKIM key record (RFC 6376 §3.6.1, RFC 8463). */
export interface DkimKeyRecord {
  /** v= when present (it must be "DKIM1"). */
  version?: string;
  /** k=, default "rsa". */
  keyType: string;
  /** h=: hash algorithms the key may be used with; undefined means any. */
  hashAlgorithms?: string[];
  /** p= with folding whitespace removed; "" means the key was revoked. */
  publicKey: string;
  /** s=: service types, default ["*"]. */
  serviceTypes: string[];
  /** t= flags. */
  flags: string[];
  /** t=y: the domain is testing DKIM. */
  testing: boolean;
  /** t=s: i= must be in d= exactly, not a subdomain. */
  strict: boolean;
  /** n= */
  notes?: string;
  tags: Map<string, string>;
}

export type KeyRecordParseResult = { ok: true; record: DkimKeyRecord } | { ok: false; error: string };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Clean what some name servers and zone editors leave in TXT data: stray double
 * quotes around or between the strings of a record (mailauth #30).
 */
function unquote(text: string): string {
  let t = trimFws(text);
  if (t.startsWith('"') && t.endsWith('"') && t.length >= 2) t = t.slice(1, -1);
  return t.replace(/"[ \t]*"/g, '');
}

/** Parse one key record: the strings of one TXT resource record, already joined. */
export function parseKeyRecord(text: string): KeyRecordParseResult {
  const parsed = parseTagList(unquote(text));
  if (!parsed.ok) return { ok: false, error: `bad key record: ${parsed.error}` };
  const tags = parsed.tags;
  const version = tags.get('v');
  if (version !== undefined && version !== 'DKIM1') return { ok: false, error: `bad key record: v=${clip(version)} is not DKIM1` };
  if (!tags.has('p')) return { ok: false, error: 'bad key record: no p= tag' };
  const publicKey = stripFws(tags.get('p') ?? '');
  if (!BASE64.test(publicKey)) return { ok: false, error: 'bad key record: p= is not valid base64' };
  const list = (value: string | undefined): string[] | undefined =>
    value === undefined
      ? undefined
      : value
          .split(':')
          .map(trimFws)
          .filter((s) => s !== '');
  const flags = list(tags.get('t')) ?? [];
  const record: DkimKeyRecord = {
    keyType: trimFws(tags.get('k') ?? 'rsa').toLowerCase(),
    publicKey,
    serviceTypes: list(tags.get('s')) ?? ['*'],
    flags,
    testing: flags.includes('y'),
    strict: flags.includes('s'),
    tags,
  };
  if (version !== undefined) record.version = version;
  const hashes = list(tags.get('h'));
  if (hashes) record.hashAlgorithms = hashes.map((h) => h.toLowerCase());
  if (tags.has('n')) record.notes = tags.get('n');
  return { ok: true, record };
}

/** A key ready for node:crypto, or why it cannot be used. */
export type ImportedKey = { ok: true; key: KeyObject; bits?: number; publicExponent?: bigint } | { ok: false; error: string };

/** RSA keys smaller than this never pass (RFC 8301). */
export const DEFAULT_MIN_KEY_BITS = 1024;
/** RSA keys larger than this are not used (local policy; RFC 6376 §3.3.3 asks for up to 2048). */
export const DEFAULT_MAX_KEY_BITS = 4096;
/** The largest RSA public exponent used: 2^32 - 1 (65537 in practice; Windows and Go cap it near here too). */
export const MAX_RSA_PUBLIC_EXPONENT = 2n ** 32n - 1n;
/** Bytes of SubjectPublicKeyInfo around the modulus and the exponent, with room to spare. */
const SPKI_OVERHEAD = 64;

/** Limits on the public keys a verifier uses. */
export interface KeyLimits {
  /** RSA keys smaller than this never pass: permerror (default 1024, RFC 8301). */
  minKeyBits?: number;
  /** RSA keys larger than this are never used: policy (default 4096). */
  maxKeyBits?: number;
}

/** Why a key is refused, as a result: "policy" for local limits, "permerror" for what is no valid RSA key. */
export interface KeyRefusal {
  result: 'policy' | 'permerror';
  /** key-too-large (policy), key-too-small, or key-syntax (no valid RSA key). */
  code: 'key-too-large' | 'key-too-small' | 'key-syntax';
  reason: string;
}

/**
 * Before importing: a p= longer than any RSA key within maxKeyBits can be (a modulus and an
 * exponent of maxKeyBits each) is refused unread, so that no time or import-cache memory
 * goes to it.
 */
export function checkKeyRecordSize(keyType: string, publicKeyB64: string, limits: KeyLimits = {}): KeyRefusal | undefined {
  if (keyType !== 'rsa') return undefined;
  const maxBits = limits.maxKeyBits ?? DEFAULT_MAX_KEY_BITS;
  const octets = Math.floor((publicKeyB64.replace(/=+$/, '').length * 3) / 4);
  // Room for a modulus and an exponent of maxKeyBits each: whatever fits is read, and
  // refused afterwards with the precise reason (modulus or exponent).
  const most = 2 * Math.ceil(maxBits / 8) + SPKI_OVERHEAD;
  if (octets <= most) return undefined;
  return {
    result: 'policy',
    code: 'key-too-large',
    reason: `key too large (p= holds ${octets} octets, more than an RSA key of ${maxBits} bits can)`,
  };
}

/**
 * After importing, before any use: an RSA key must be within [minKeyBits, maxKeyBits] and
 * have an odd public exponent from 3 to 2^32 - 1. A huge exponent makes every verification
 * cost as much as a private-key operation (a 3071-bit one: about 100 times a normal one).
 */
export function checkImportedKey(
  keyType: string,
  imported: { bits?: number; publicExponent?: bigint },
  limits: KeyLimits = {},
): KeyRefusal | undefined {
  if (keyType !== 'rsa') return undefined;
  const { bits, publicExponent: e } = imported;
  const minBits = limits.minKeyBits ?? DEFAULT_MIN_KEY_BITS;
  const maxBits = limits.maxKeyBits ?? DEFAULT_MAX_KEY_BITS;
  if (bits !== undefined && bits < minBits)
    return { result: 'permerror', code: 'key-too-small', reason: `key too small (${bits} bits, minimum ${minBits})` };
  if (bits !== undefined && bits > maxBits)
    return { result: 'policy', code: 'key-too-large', reason: `key too large (${bits} bits, maximum ${maxBits})` };
  if (e !== undefined) {
    // RFC 8017 §3.1: 3 <= e, and e is odd (coprime to the even lambda(n)).
    if (e < 3n || e % 2n === 0n)
      return { result: 'permerror', code: 'key-syntax', reason: 'not a valid RSA key (the public exponent must be odd and at least 3)' };
    if (e > MAX_RSA_PUBLIC_EXPONENT)
      return {
        result: 'policy',
        code: 'key-too-large',
        reason: `RSA public exponent too large (${e.toString(2).length} bits, maximum 32)`,
      };
  }
  return undefined;
}

/** What acceptPublicKey checks a key against: the limits, and the signature it is to verify. */
export interface PublicKeyPolicy extends KeyLimits {
  /** The signature the key is for: its key type must be the record's k= (a= names it in reasons). */
  signature?: { keyType: string; algorithm: string };
}

/** Why acceptPublicKey refused a key, for programs (a subset of VerificationCode). */
export type PublicKeyRefusalCode = KeyRefusal['code'] | 'key-revoked' | 'key-mismatch';

/** A key from a key record that may be used, or why not ("policy" for local limits, "permerror" for the rest). */
export type PublicKeyAcceptance =
  | { ok: true; key: KeyObject; keyType: 'rsa' | 'ed25519'; bits: number; publicExponent?: bigint }
  | { ok: false; result: 'policy' | 'permerror'; code: PublicKeyRefusalCode; reason: string; bits?: number };

/**
 * The one rule for the public key of a DKIM or DomainKeys key record: not revoked (empty p=);
 * k= fits the signature's algorithm; k= is rsa or ed25519; p= no longer than an RSA key within
 * maxKeyBits can be (refused unread); p= parses (RSA: SubjectPublicKeyInfo or RSAPublicKey;
 * Ed25519: the raw 32 octets); RSA within [minKeyBits, maxKeyBits] bits with an odd exponent
 * from 3 to 2^32 - 1. A refusal carries the key size when the key was read.
 */
export function acceptPublicKey(record: { keyType: string; publicKey: string }, policy: PublicKeyPolicy = {}): PublicKeyAcceptance {
  const { keyType, publicKey } = record;
  if (publicKey === '') return { ok: false, result: 'permerror', code: 'key-revoked', reason: 'key revoked (empty p=)' };
  if (policy.signature && keyType !== policy.signature.keyType) {
    return {
      ok: false,
      result: 'permerror',
      code: 'key-mismatch',
      reason: `key type k=${clip(keyType)} does not match a=${clip(policy.signature.algorithm)}`,
    };
  }
  if (keyType !== 'rsa' && keyType !== 'ed25519')
    return { ok: false, result: 'permerror', code: 'key-syntax', reason: `unknown key type k=${clip(keyType)}` };
  const tooLong = checkKeyRecordSize(keyType, publicKey, policy);
  if (tooLong) return { ok: false, ...tooLong };
  const imported = importPublicKey(keyType, publicKey);
  if (!imported.ok) return { ok: false, result: 'permerror', code: 'key-syntax', reason: imported.error };
  const bits = imported.bits ?? imported.key.asymmetricKeyDetails?.modulusLength ?? 0;
  const refused = checkImportedKey(keyType, imported, policy);
  if (refused) return { ok: false, ...refused, bits };
  const accepted: PublicKeyAcceptance = { ok: true, key: imported.key, keyType, bits };
  if (imported.publicExponent !== undefined) accepted.publicExponent = imported.publicExponent;
  return accepted;
}

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const importCache = new Map<string, ImportedKey>();
const IMPORT_CACHE_LIMIT = 1000;

/**
 * Turn p= into a public KeyObject. RSA: SubjectPublicKeyInfo, or a bare RSAPublicKey
 * (tolerated, as most verifiers do). Ed25519: the raw 32-byte key (RFC 8463).
 * Results are cached, because parsing costs more than an RSA verification.
 */
export function importPublicKey(keyType: string, publicKeyB64: string): ImportedKey {
  const cacheKey = `${keyType}:${publicKeyB64}`;
  const cached = importCache.get(cacheKey);
  if (cached) {
    importCache.delete(cacheKey);
    importCache.set(cacheKey, cached);
    return cached;
  }
  const result = importUncached(keyType, Buffer.from(publicKeyB64, 'base64'));
  importCache.set(cacheKey, result);
  if (importCache.size > IMPORT_CACHE_LIMIT) importCache.delete(importCache.keys().next().value as string);
  return result;
}

function importUncached(keyType: string, der: Buffer): ImportedKey {
  if (keyType === 'ed25519') {
    if (der.length !== 32) {
      return {
        ok: false,
        error:
          der.length === 44 && der.subarray(0, 12).equals(ED25519_SPKI_PREFIX)
            ? 'ed25519 p= must be the raw 32-byte key, not a SubjectPublicKeyInfo'
            : `ed25519 p= must be 32 bytes, got ${der.length}`,
      };
    }
    try {
      const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, der]), format: 'der', type: 'spki' });
      return { ok: true, key, bits: 256 };
    } catch {
      return { ok: false, error: 'ed25519 p= is not a valid public key' };
    }
  }
  if (keyType !== 'rsa') return { ok: false, error: `unknown key type k=${clip(keyType)}` };
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      const key = createPublicKey({ key: der, format: 'der', type });
      if (key.asymmetricKeyType !== 'rsa') return { ok: false, error: `p= holds a ${key.asymmetricKeyType} key, not rsa` };
      const details = key.asymmetricKeyDetails;
      const imported: ImportedKey = { ok: true, key };
      if (details?.modulusLength !== undefined) imported.bits = details.modulusLength;
      if (details?.publicExponent !== undefined) imported.publicExponent = details.publicExponent;
      return imported;
    } catch {
      // try the next encoding
    }
  }
  return { ok: false, error: 'p= is not a valid RSA public key' };
}
