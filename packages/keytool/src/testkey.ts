import { stat } from 'node:fs/promises';
import { DnsKeyResolver, KeyLookupError } from '@inkan/dkim-core';
import { acceptPublicKey, parseKeyRecord, parseTagList } from '@inkan/dkim-core/records';
import { readPrivateKeyFile } from './keys.js';

export interface TestKeyOptions {
  domain: string;
  selector: string;
  /** A private key file to compare with what DNS publishes. */
  keyFile?: string;
  /** Name servers ("host:port"); default: the system's. */
  dns?: string[];
  /** Milliseconds per try (default 5000). */
  timeout?: number;
}

export type TestKeyStatus = 'good' | 'problem' | 'unchecked';

export interface TestKeyReport {
  status: TestKeyStatus;
  /** The DNS name checked. */
  name: string;
  /** The TXT strings of the record used, as published. */
  strings?: string[];
  record?: string;
  keyType?: string;
  keyBits?: number;
  testing?: boolean;
  /** With a key file: whether the published key is its public half. */
  keyMatches?: boolean;
  problems: string[];
  warnings: string[];
}

/** Exit code for a report: 0 good, 1 a problem was found, 2 it could not be checked. */
export function exitCode(report: TestKeyReport): 0 | 1 | 2 {
  return report.status === 'good' ? 0 : report.status === 'problem' ? 1 : 2;
}

/**
 * Fetch SELECTOR._domainkey.DOMAIN and check it as a verifier would, plus what trips
 * administrators up: quoting mistakes, several records, weak keys, a published key that
 * is not the private key's, a private key file others can read.
 */
export async function testKey(o: TestKeyOptions): Promise<TestKeyReport> {
  const name = `${o.selector}._domainkey.${o.domain.replace(/\.$/, '')}`;
  const report: TestKeyReport = { status: 'good', name, problems: [], warnings: [] };
  const problem = (text: string) => report.problems.push(text);

  if (o.keyFile) {
    try {
      const st = await stat(o.keyFile);
      if (st.mode & 0o006)
        problem(
          `${o.keyFile} is ${st.mode & 0o004 ? 'readable' : 'writable'} by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): chmod o-rwx`,
        );
      else if (st.mode & 0o020)
        report.warnings.push(`${o.keyFile} is writable by its group (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`);
    } catch {
      // reported below when the key is read
    }
  }

  const resolver = new DnsKeyResolver({ ...(o.dns ? { servers: o.dns } : {}), timeout: o.timeout ?? 5000, tries: 2 });
  let records: string[][];
  try {
    records = await resolver.lookupStrings(name);
  } catch (error) {
    if (KeyLookupError.isInstance(error) && error.code === 'NOTFOUND') {
      problem(`no TXT record at ${name}: publish the record first (or wait for the zone to reach the servers)`);
      report.status = 'problem';
      return report;
    }
    report.status = 'unchecked';
    report.problems.push(`could not ask DNS: ${(error as Error).message}`);
    return report;
  }

  const dkimRecords = records.filter((strings) => /(^|;)\s*(v\s*=\s*DKIM1|p\s*=)/.test(strings.join('')));
  if (dkimRecords.length === 0) {
    problem(
      `the TXT record at ${name} is not a DKIM key record: "${records
        .map((s) => s.join(''))
        .join('", "')
        .slice(0, 80)}"`,
    );
  }
  if (dkimRecords.length > 1) problem(`${dkimRecords.length} DKIM key records at ${name}: verifiers may use either; keep one`);
  const strings = dkimRecords[0] ?? records[0] ?? [];
  const record = strings.join('');
  report.strings = strings;
  report.record = record;
  if (dkimRecords.length === 0) {
    report.status = 'problem';
    return report;
  }

  if (/["\\]/.test(record))
    problem(
      'the record contains quote or backslash characters: it was published with quoting mistakes (each string should be quoted once)',
    );
  const raw = parseTagList(record);
  if (raw.ok && raw.tags.has('v') && [...raw.tags.keys()][0] !== 'v') problem('v=DKIM1 must be the first tag of the record');
  const parsed = parseKeyRecord(record);
  if (!parsed.ok) {
    problem(parsed.error);
    report.status = 'problem';
    return report;
  }
  const r = parsed.record;
  report.keyType = r.keyType;
  report.testing = r.testing;
  if (r.testing) report.warnings.push('t=y: the domain is testing DKIM; remove t=y once signatures verify');
  if (/\s/.test(raw.tags.get('p') ?? '')) report.warnings.push('p= contains white space: allowed, but some verifiers choke on it');
  // What verifiers (ours with their default limits) refuse is a problem.
  const accepted = acceptPublicKey(r);
  if (accepted.bits !== undefined) report.keyBits = accepted.bits;
  if (!accepted.ok) problem(accepted.reason);
  else if (accepted.keyType === 'rsa' && accepted.bits < 2048)
    report.warnings.push(`RSA key of ${accepted.bits} bits: 2048 is recommended`);
  if (r.hashAlgorithms && !r.hashAlgorithms.includes('sha256'))
    problem(`h=${r.hashAlgorithms.join(':')} excludes sha256, which every current signature uses`);

  if (o.keyFile) {
    try {
      const key = await readPrivateKeyFile(o.keyFile);
      report.keyMatches = key.type === r.keyType && key.p === r.publicKey;
      if (!report.keyMatches) problem(`the published key is not the public half of ${o.keyFile}`);
    } catch (error) {
      problem((error as Error).message);
    }
  }
  report.status = report.problems.length > 0 ? 'problem' : 'good';
  return report;
}
