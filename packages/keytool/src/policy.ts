/** Policy records published beside DKIM keys. Only DMARC is current; ADSP and SSP are historic. */

export interface PolicyRecord {
  /** Owner name, fully qualified with a final dot. */
  name: string;
  /** TXT data. */
  value: string;
  /** Why this record is historic, when it is. */
  historic?: string;
}

export interface DmarcOptions {
  domain: string;
  policy: 'none' | 'quarantine' | 'reject';
  subdomainPolicy?: 'none' | 'quarantine' | 'reject';
  rua?: string[];
  ruf?: string[];
  pct?: number;
  adkim?: 'r' | 's';
  aspf?: 'r' | 's';
}

const fqdn = (name: string) => `${name.replace(/\.$/, '')}.`;

/** The _dmarc record (RFC 7489). */
export function dmarcRecord(o: DmarcOptions): PolicyRecord {
  const tags = ['v=DMARC1', `p=${o.policy}`];
  if (o.subdomainPolicy) tags.push(`sp=${o.subdomainPolicy}`);
  for (const [tag, uris] of [
    ['rua', o.rua],
    ['ruf', o.ruf],
  ] as const) {
    if (!uris || uris.length === 0) continue;
    for (const uri of uris)
      if (!/^mailto:[^\s,;!]+@[^\s,;!]+$/.test(uri)) throw new RangeError(`${tag} must be mailto: addresses, got "${uri}"`);
    tags.push(`${tag}=${uris.join(',')}`);
  }
  if (o.pct !== undefined) {
    if (!Number.isInteger(o.pct) || o.pct < 0 || o.pct > 100) throw new RangeError('pct must be a whole number from 0 to 100');
    if (o.pct !== 100) tags.push(`pct=${o.pct}`);
  }
  if (o.adkim && o.adkim !== 'r') tags.push(`adkim=${o.adkim}`);
  if (o.aspf && o.aspf !== 'r') tags.push(`aspf=${o.aspf}`);
  return { name: fqdn(`_dmarc.${o.domain}`), value: tags.join('; ') };
}

/** ADSP (RFC 5617), moved to Historic in 2013: no receiver acts on it any more. */
export function adspRecord(domain: string, dkim: 'unknown' | 'all' | 'discardable'): PolicyRecord {
  return {
    name: fqdn(`_adsp._domainkey.${domain}`),
    value: `dkim=${dkim}`,
    historic: 'ADSP (RFC 5617) was declared Historic in 2013; publish DMARC instead',
  };
}

/** The pre-ADSP sender signing policy record read by old dkim-filter era checkers. */
export function sspRecord(domain: string, options: { testing?: boolean; signsAll?: boolean } = {}): PolicyRecord {
  const tags = [...(options.testing === false ? [] : ['t=y']), `o=${options.signsAll ? '-' : '~'}`];
  return {
    name: fqdn(`_policy._domainkey.${domain}`),
    value: tags.join('; '),
    historic: 'the SSP/_policy record predates ADSP and was never standardized; publish DMARC instead',
  };
}
