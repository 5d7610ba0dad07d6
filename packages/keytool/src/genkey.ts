import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type GeneratedKey, generateDkimKey, type KeyKind } from './keys.js';
import type { Owner } from './owner.js';
import { formatKeyRecord, formatZoneRecord } from './record.js';
import { exists, writeFileAtomic } from './secure-file.js';

/** What a new key is: its name and the tags of its DNS record. */
export interface KeySpec {
  domain: string;
  selector: string;
  type?: KeyKind;
  bits?: number;
  testing?: boolean;
  subdomains?: boolean;
  hashAlgorithms?: string[];
  note?: string;
}

export interface GenkeyOptions extends KeySpec {
  /** Folder for SELECTOR.private and SELECTOR.txt (default: the current folder). */
  outdir?: string;
  owner?: Owner;
  force?: boolean;
}

export interface GenkeyResult {
  key: GeneratedKey;
  privateKeyFile: string;
  recordFile: string;
  /** TXT data of the key record. */
  record: string;
  /** The zone-file form written to SELECTOR.txt. */
  zone: string;
}

const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$/;
const DOMAIN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9-]+\.?$|^localhost$/;

export function checkNames(domain: string, selector: string): void {
  if (!DOMAIN.test(domain)) throw new RangeError(`"${domain}" is not a domain name`);
  if (!SELECTOR.test(selector)) throw new RangeError(`"${selector}" is not a valid selector (letters, digits, "-", "_", dots between labels)`);
}

/**
 * Generate a key pair for one selector: SELECTOR.private (PKCS#8 PEM, 0600, or 0440 and
 * chowned with an owner) and SELECTOR.txt (the zone-file record). Refuses to replace
 * either file without force; checks both before writing anything.
 */
export async function genkey(o: GenkeyOptions): Promise<GenkeyResult> {
  checkNames(o.domain, o.selector);
  const outdir = resolve(o.outdir ?? '.');
  const privateKeyFile = join(outdir, `${o.selector}.private`);
  const recordFile = join(outdir, `${o.selector}.txt`);
  if (!o.force) {
    for (const file of [privateKeyFile, recordFile]) if (await exists(file)) throw new Error(`${file} exists: use --force to replace it`);
  }
  const key = await generateDkimKey(o.type ?? 'rsa', o.bits);
  const record = formatKeyRecord({
    type: key.type,
    p: key.p,
    ...(o.testing ? { testing: true } : {}),
    ...(o.subdomains ? { subdomains: true } : {}),
    ...(o.hashAlgorithms ? { hashAlgorithms: o.hashAlgorithms } : {}),
    ...(o.note !== undefined ? { note: o.note } : {}),
  });
  const zone = formatZoneRecord(record, { selector: o.selector, comment: `DKIM key ${o.selector} for ${o.domain}` });
  await writeFileAtomic(privateKeyFile, key.privatePem, { force: !!o.force, mode: 0o600, ...(o.owner ? { owner: o.owner } : {}) });
  await writeFileAtomic(recordFile, zone, { force: !!o.force, mode: 0o644 });
  return { key, privateKeyFile, recordFile, record, zone };
}

/** Format a selector from a date: YYYY, MM, DD are replaced (default format YYYYMM). */
export function selectorFromDate(format: string, date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return format
    .replace(/YYYY/g, String(date.getUTCFullYear()))
    .replace(/MM/g, pad(date.getUTCMonth() + 1))
    .replace(/DD/g, pad(date.getUTCDate()));
}

/** The next free selector for a rotation: the dated name, or with a, b, c... appended if taken. */
export async function nextSelector(outdir: string, format: string, date: Date): Promise<string> {
  const base = selectorFromDate(format, date);
  let taken: Set<string>;
  try {
    taken = new Set((await readdir(outdir)).filter((f) => f.endsWith('.private')).map((f) => f.slice(0, -'.private'.length)));
  } catch {
    taken = new Set();
  }
  if (!taken.has(base)) return base;
  for (const suffix of 'bcdefghijklmnopqrstuvwxyz') if (!taken.has(`${base}${suffix}`)) return `${base}${suffix}`;
  throw new Error(`no free selector left for ${base} in ${outdir}`);
}
