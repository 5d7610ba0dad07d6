/** Options for the key record published at SELECTOR._domainkey.DOMAIN. */
export interface KeyRecordOptions {
  type: 'rsa' | 'ed25519';
  /** p= */
  p: string;
  /** t=y: the domain is testing DKIM; verifiers treat failures leniently. */
  testing?: boolean;
  /** Allow i= in subdomains of d=. Without it the record carries t=s. */
  subdomains?: boolean;
  /** h=: hash algorithms the key may be used with. */
  hashAlgorithms?: string[];
  /** s=email: the key is for email only. */
  emailOnly?: boolean;
  /** n=: a note for people (characters that would break the record are refused). */
  note?: string;
}

/** The TXT data of a key record, tags in the usual order, p= last. */
export function formatKeyRecord(o: KeyRecordOptions): string {
  const tags = ['v=DKIM1'];
  if (o.hashAlgorithms && o.hashAlgorithms.length > 0) tags.push(`h=${o.hashAlgorithms.join(':')}`);
  tags.push(`k=${o.type}`);
  if (o.note !== undefined) {
    if (/[;"\\\r\n]/.test(o.note) || /[^\x20-\x7e]/.test(o.note))
      throw new RangeError('a note may hold printable ASCII only, without ; " or \\');
    tags.push(`n=${o.note}`);
  }
  if (o.emailOnly) tags.push('s=email');
  const flags = [...(o.testing ? ['y'] : []), ...(o.subdomains ? [] : ['s'])];
  if (flags.length > 0) tags.push(`t=${flags.join(':')}`);
  tags.push(`p=${o.p}`);
  return tags.join('; ');
}

/**
 * Split TXT data into character-strings of at most `max` octets (255 is the DNS limit),
 * breaking after "; " where that keeps pieces whole, else anywhere in p=.
 */
export function splitTxtStrings(record: string, max = 255): string[] {
  if (max < 1) throw new RangeError('max must be positive');
  if (record.length <= max) return [record];
  const out: string[] = [];
  const pIndex = record.lastIndexOf('p=');
  const head = pIndex >= 0 ? record.slice(0, pIndex) : record;
  const p = pIndex >= 0 ? record.slice(pIndex) : '';
  let rest = '';
  if (head.length > 0 && head.length <= max) out.push(head);
  else rest = head;
  rest += p;
  for (let i = 0; i < rest.length; i += max) out.push(rest.slice(i, i + max));
  return out.filter((s) => s.length > 0);
}

export interface ZoneRecordOptions {
  selector: string;
  /** With a domain, the owner is written fully qualified: sel._domainkey.example.org. */
  domain?: string;
  /** Appended as a zone-file comment. */
  comment?: string;
}

/** A zone-file TXT record: owner IN TXT ( "..." "..." ), one string per line. */
export function formatZoneRecord(record: string, o: ZoneRecordOptions): string {
  const owner = o.domain ? `${o.selector}._domainkey.${o.domain.replace(/\.$/, '')}.` : `${o.selector}._domainkey`;
  const strings = splitTxtStrings(record).map((s) => `"${s}"`);
  const comment = o.comment ? `  ; ${o.comment}` : '';
  if (strings.length === 1) return `${owner}\tIN\tTXT\t${strings[0]}${comment}\n`;
  return `${owner}\tIN\tTXT\t( ${strings.join('\n\t  ')} )${comment}\n`;
}

/** The record as quoted strings on one line, as DNS provider forms and nsupdate take it. */
export function formatQuotedStrings(record: string): string {
  return splitTxtStrings(record)
    .map((s) => `"${s}"`)
    .join(' ');
}
