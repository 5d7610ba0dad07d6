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
export type ImportedKey = { ok: true; key: KeyObject; bits?: number } | { ok: false; error: string };

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
      const bits = key.asymmetricKeyDetails?.modulusLength;
      return bits === undefined ? { ok: true, key } : { ok: true, key, bits };
    } catch {
      // try the next encoding
    }
  }
  return { ok: false, error: 'p= is not a valid RSA public key' };
}
