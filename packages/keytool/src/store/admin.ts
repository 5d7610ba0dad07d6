import { checkNames, type KeySpec, newKeyPair } from '../genkey.js';
import type { GeneratedKey } from '../keys.js';
import type { KeyStore, StoredKey } from './types.js';

/** The name inkan-keytool gives a key in the store: SELECTOR._domainkey.DOMAIN (its DNS name). */
export function keyName(domain: string, selector: string): string {
  return `${selector}._domainkey.${domain.toLowerCase().replace(/\.$/, '')}`;
}

export interface PublishOptions extends KeySpec {
  /** SigningTable patterns to add the key to right away (do this only once DNS serves the record). */
  sign?: string[];
}

export interface PublishResult {
  name: string;
  key: GeneratedKey;
  record: string;
  signing: string[];
}

/** Generate a key pair and put it in the store (the private half never touches the disk). */
export async function publishKey(store: KeyStore, o: PublishOptions): Promise<PublishResult> {
  checkNames(o.domain, o.selector);
  const domain = o.domain.toLowerCase().replace(/\.$/, '');
  const { key, record } = await newKeyPair(o);
  const name = keyName(domain, o.selector);
  await store.addKey({ name, domain, selector: o.selector, privateKey: key.privatePem, record });
  const signing: string[] = [];
  if (o.sign && o.sign.length > 0) {
    const current = await store.snapshot({ privateKeys: false });
    for (const pattern of o.sign) {
      const p = pattern.toLowerCase();
      const entry = current.signing.find((e) => e.pattern.toLowerCase() === p);
      await store.setSigning(entry?.pattern ?? p, [...(entry?.keyNames ?? []), name]);
      signing.push(entry?.pattern ?? p);
    }
  }
  return { name, key, record, signing };
}

export interface ListedKey {
  name: string;
  domain: string | null;
  selector: string | null;
  /** k= of the record. */
  type: string | null;
  /** signing: a SigningTable entry uses it; unused: published but not (yet, or any more) used; retired: its private half is gone. */
  state: 'signing' | 'unused' | 'retired';
  patterns: string[];
  record: string | null;
  createdAt: string | null;
  retiredAt: string | null;
}

export interface StoreListing {
  keys: ListedKey[];
  signing: { pattern: string; keyNames: string[]; missing: string[] }[];
  hosts: string[];
  problems: { where: string; message: string }[];
}

function recordType(record: string | null): string | null {
  if (!record) return null;
  return /(?:^|;)\s*k=([a-z0-9]+)/i.exec(record)?.[1]?.toLowerCase() ?? 'rsa';
}

/** What the store holds, without reading private keys (an account without that right can list). */
export async function listStore(store: KeyStore): Promise<StoreListing> {
  const snap = await store.snapshot({ privateKeys: false, hosts: true });
  const names = new Set(snap.keys.map((k) => k.name));
  return {
    keys: snap.keys.map((k) => {
      const patterns = snap.signing.filter((e) => e.keyNames.includes(k.name)).map((e) => e.pattern);
      return {
        name: k.name,
        domain: k.domain,
        selector: k.selector,
        type: recordType(k.record),
        state: k.retiredAt ? 'retired' : patterns.length > 0 ? 'signing' : 'unused',
        patterns,
        record: k.record,
        createdAt: k.createdAt,
        retiredAt: k.retiredAt,
      };
    }),
    signing: snap.signing.map((e) => ({ pattern: e.pattern, keyNames: e.keyNames, missing: e.keyNames.filter((n) => !names.has(n)) })),
    hosts: snap.hosts ?? [],
    problems: snap.problems,
  };
}

function findKey(keys: StoredKey[], domain: string, selector: string): StoredKey | undefined {
  const d = domain.toLowerCase().replace(/\.$/, '');
  return keys.find((k) => k.name === keyName(d, selector)) ?? keys.find((k) => k.domain?.toLowerCase() === d && k.selector === selector);
}

/**
 * Switch signing for a domain to another selector already in the store (published in DNS
 * first): every SigningTable entry using one of the domain's other keys of the same type
 * (or the selectors in `replace`) uses the new key instead, in one transaction.
 */
export async function rotateSelector(
  store: KeyStore,
  domain: string,
  selector: string,
  replace?: string[],
): Promise<{ name: string; replaced: string[]; replacedSelectors: string[]; patterns: string[] }> {
  const snap = await store.snapshot({ privateKeys: false });
  const target = findKey(snap.keys, domain, selector);
  if (!target) throw new Error(`the store has no selector ${selector} for ${domain}: add it first with genkey --store`);
  if (target.retiredAt) throw new Error(`${target.name} is retired; generate a new selector instead`);
  const d = domain.toLowerCase().replace(/\.$/, '');
  let from: StoredKey[];
  if (replace && replace.length > 0) {
    from = replace.map((s) => {
      const k = findKey(snap.keys, d, s);
      if (!k) throw new Error(`the store has no selector ${s} for ${domain}`);
      return k;
    });
  } else {
    const type = recordType(target.record);
    from = snap.keys.filter(
      (k) =>
        k.name !== target.name &&
        k.domain?.toLowerCase() === d &&
        (type === null || recordType(k.record) === null || recordType(k.record) === type),
    );
  }
  from = from.filter((k) => k.name !== target.name);
  const names = from.map((k) => k.name);
  const patterns = names.length > 0 ? await store.repoint(names, target.name) : [];
  if (patterns.length === 0)
    throw new Error(
      `no SigningTable entry uses another key of ${domain}; add one with: store sign --pattern ${d} --domain ${d} --selector ${selector}`,
    );
  return { name: target.name, replaced: names, replacedSelectors: from.map((k) => k.selector ?? k.name), patterns };
}

/** Make a SigningTable pattern sign with a key of the store: added to the keys it has, or instead of them. */
export async function signWith(
  store: KeyStore,
  pattern: string,
  domain: string,
  selector: string,
  replace = false,
): Promise<{ pattern: string; keyNames: string[] }> {
  const snap = await store.snapshot({ privateKeys: false });
  const key = findKey(snap.keys, domain, selector);
  if (!key) throw new Error(`the store has no selector ${selector} for ${domain}: add it with genkey --store`);
  if (key.retiredAt) throw new Error(`${key.name} is retired`);
  const p = pattern.toLowerCase();
  const entry = snap.signing.find((e) => e.pattern.toLowerCase() === p);
  const keyNames = replace ? [key.name] : [...new Set([...(entry?.keyNames ?? []), key.name])];
  await store.setSigning(entry?.pattern ?? p, keyNames);
  return { pattern: entry?.pattern ?? p, keyNames };
}

/** Retire a selector: its private half is erased; refused while a SigningTable entry still uses it. */
export async function retireSelector(store: KeyStore, domain: string, selector: string): Promise<{ name: string; record: string | null }> {
  const snap = await store.snapshot({ privateKeys: false });
  const key = findKey(snap.keys, domain, selector);
  if (!key) throw new Error(`the store has no selector ${selector} for ${domain}`);
  const users = snap.signing.filter((e) => e.keyNames.includes(key.name)).map((e) => e.pattern);
  if (users.length > 0) throw new Error(`${key.name} still signs for ${users.join(', ')}: rotate to another selector first`);
  await store.retireKey(key.name);
  return { name: key.name, record: key.record };
}
