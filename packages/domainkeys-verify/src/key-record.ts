import { clip, type DkimKeyRecord, parseKeyRecord, trimFws } from '@inkan/dkim-core/records';
import { type Verdict, verdict } from '@inkan/dkim-core/verification';

/**
 * A DomainKeys key record (RFC 4870 §3.2.3), read with dkim-core's DKIM key record
 * parser (the two share their syntax: k=, p=, t=, n=, and DKIM's v=, h=, s=), plus
 * the DomainKeys granularity g=.
 */
export interface DomainKeysKeyRecord extends DkimKeyRecord {
  /** g= as written; "*" (any local part) when absent or empty. */
  granularity: string;
}

export type DomainKeysKeyRecordParseResult = { ok: true; record: DomainKeysKeyRecord } | { ok: false; error: string };

/** Parse one key record (the strings of one TXT record, joined). Never throws. */
export function parseDomainKeysKeyRecord(text: string): DomainKeysKeyRecordParseResult {
  const parsed = parseKeyRecord(text);
  if (!parsed.ok) return parsed;
  const g = trimFws(parsed.record.tags.get('g') ?? '');
  // RFC 4870 §3.2.3: an empty g= matches any local part (unlike DKIM's old g=).
  return { ok: true, record: { ...parsed.record, granularity: g === '' ? '*' : g } };
}

/**
 * Whether a key's granularity allows the sender's local part (RFC 4870 §3.2.3 "g"):
 * the local part must equal g=, where one "*" in g= stands for any run of characters.
 * Local parts compare case-sensitively, as RFC 5321 treats them.
 */
export function granularityMatches(granularity: string, localPart: string): boolean {
  const star = granularity.indexOf('*');
  if (star < 0) return localPart === granularity;
  const begins = granularity.slice(0, star);
  const ends = granularity.slice(star + 1);
  return localPart.length >= begins.length + ends.length && localPart.startsWith(begins) && localPart.endsWith(ends);
}

/**
 * DomainKeys' own rules for a key record's tags (RFC 4870 §3.2.3): h= (if any) with sha1, g=
 * matching the sender's local part, t=s holding the sender to d= itself. The verdict, or
 * undefined when they allow the key. The key itself (revoked, k=rsa, size, parse) is
 * dkim-core's acceptPublicKey, s= its acceptKey, as for DKIM.
 */
export function checkDomainKeysKey(
  record: DomainKeysKeyRecord,
  sender: { localPart: string; domain?: string },
  domain: string,
): Verdict | undefined {
  if (record.hashAlgorithms && !record.hashAlgorithms.includes('sha1'))
    return verdict('permerror', 'key-mismatch', 'key h= does not allow sha1');
  if (!granularityMatches(record.granularity, sender.localPart)) {
    return verdict('permerror', 'key-restricted', `key granularity g=${clip(record.granularity)} does not match the sender's local part`);
  }
  if (record.strict && (sender.domain ?? '').replace(/\.$/, '') !== domain) {
    return verdict('permerror', 'key-restricted', 'key t=s forbids a sender in a subdomain of d=');
  }
  return undefined;
}
