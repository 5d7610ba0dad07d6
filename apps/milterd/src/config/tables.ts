import type { KeyObject } from 'node:crypto';
import { type PrivateKeyInfo, parsePrivateKey, readPrivateKey } from '@inkan/dkim-core';
import type { Stats } from 'node:fs';
import { lstat, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { HostList, HostListError } from '../hosts.js';
import { groupsOf, nobody, type RunAs, resolveRunAs } from '../privileges.js';
import { ConfigError } from './errors.js';
import { type Config, type Dataset, holdsPrivateKey, isStoreDataset } from './options.js';

/** One key ready to sign with. */
export interface SigningKey {
  /** KeyTable name, or "selector" for Domain/Selector/KeyFile and SigningKeys. */
  name: string;
  /** d=; "%" means the domain of the From address. */
  domain: string;
  selector: string;
  keyFile: string;
  privateKey: KeyObject;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** i= from the SigningTable ("keyname:signer"); "%" means the domain of the From address. */
  identity?: string;
}

interface TableLine {
  where: string;
  fields: string[];
}

/** Read a dataset as lines of whitespace-separated fields ("#" comments, blank lines skipped). */
export async function readDatasetLines(dataset: Dataset): Promise<TableLine[]> {
  if (dataset.kind === 'postgresql' || dataset.kind === 'redis') {
    throw new ConfigError(dataset.url.replace(/\/\/[^@/]*@/, '//'), 'a store holds KeyTable, SigningTable and InternalHosts only');
  }
  if (dataset.kind === 'list') return dataset.values.map((v, i) => ({ where: `list item ${i + 1}`, fields: v.split(/[:=]/, 2) }));
  let text: string;
  try {
    text = await readFile(dataset.path, 'utf8');
  } catch (error) {
    throw new ConfigError(dataset.path, `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  // A key file named where a table or list belongs: say so without echoing any of it.
  if (holdsPrivateKey(text)) throw new ConfigError(dataset.path, 'holds a private key, not a table or list: check the file name');
  const out: TableLine[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line) out.push({ where: `${dataset.path}:${i + 1}`, fields: line.split(/\s+/) });
  });
  return out;
}

/** The plain values of a dataset (Domain, InternalHosts...): one per list item or file line. */
export async function readDatasetValues(dataset: Dataset): Promise<string[]> {
  if (dataset.kind === 'list') return dataset.values;
  return (await readDatasetLines(dataset)).flatMap((l) => l.fields);
}

/**
 * A host list (InternalHosts, ExternalIgnoreList, PeerList) from a dataset. An entry that is
 * not a host is named by file and line (or list item), never quoted: the file may be
 * something else named by mistake, such as /etc/shadow.
 */
export async function readHostList(dataset: Dataset, option: string): Promise<HostList> {
  const lines =
    dataset.kind === 'list'
      ? dataset.values.map((v, i) => ({ where: `${option} item ${i + 1}`, fields: [v] }))
      : await readDatasetLines(dataset);
  const entries = lines.flatMap((l) => l.fields);
  const sources = lines.flatMap((l) => l.fields.map(() => l.where));
  try {
    return new HostList(entries);
  } catch (error) {
    if (error instanceof HostListError) throw new ConfigError(sources[error.index] ?? option, `${option}: ${error.message}`);
    throw error;
  }
}

/**
 * A key name from a store row as errors show it: quoted if it looks like a name, else not at
 * all. (A SigningTable file's errors never quote names: the file may be something else.)
 */
function shownKeyName(name: string): string {
  return /^[A-Za-z0-9_%][A-Za-z0-9._%@+-]{0,252}$/.test(name) ? `key "${name}"` : 'a key name';
}

/**
 * Who may own a key file and the directories above it (RequireSafeKeys): root and the user
 * milterd runs as: UserID; started as root without one, nobody (unless AllowRoot); otherwise
 * the current user.
 */
export function keyOwners(config: Partial<Pick<Config, 'userId' | 'allowRoot'>>): number[] {
  let runAs = process.geteuid?.() ?? 0;
  try {
    if (config.userId) runAs = resolveRunAs(config.userId).uid;
    else if (runAs === 0 && config.allowRoot === false) runAs = nobody().uid;
  } catch {
    // An unknown user is reported where milterd changes user; until then, the current user.
  }
  return [...new Set([0, runAs])];
}

/** "uid 65534 (nobody)", or just the uid when the user database does not know it. */
function describeUid(uid: number): string {
  try {
    return `uid ${uid} (${resolveRunAs(String(uid)).user})`;
  } catch {
    return `uid ${uid}`;
  }
}

function describeOwners(owners: readonly number[]): string {
  return owners.map((uid) => (uid === 0 ? 'root' : describeUid(uid))).join(' or ');
}

/**
 * Refuse keys that others could read or change (RequireSafeKeys), as OpenSSH's StrictModes
 * does: the key file (the final target of a symbolic link) must be a regular file owned by
 * root or the run user and not readable or writable by others; a symbolic link on the way
 * must be owned by them too; and every directory from the key's up to / must be owned by
 * them and not writable by group or others, unless it has the sticky bit (as /tmp has:
 * others cannot then rename or remove what they do not own). Errors name the file, the
 * problem and the fix, never the file's content.
 */
export async function checkKeyFileSafety(path: string, where: string, owners: readonly number[] = keyOwners({})): Promise<void> {
  let named = '';
  const fail = (problem: string, fix: string): never => {
    throw new ConfigError(where, `key file ${path}${named} ${problem}: ${fix} (or RequireSafeKeys no)`);
  };
  const errorCode = (error: unknown) => (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  const absolute = resolvePath(path);
  let link: Stats;
  let target: string;
  try {
    link = await lstat(absolute);
    target = await realpath(absolute);
  } catch (error) {
    throw new ConfigError(where, `key file ${path}: ${errorCode(error)}`);
  }
  const whom = describeOwners(owners);
  if (link.isSymbolicLink()) {
    if (!owners.includes(link.uid))
      fail(
        `is a symbolic link owned by ${describeUid(link.uid)}, who could point it at another key`,
        `replace the link with one owned by ${whom}`,
      );
    await checkKeyDirectories(path, await realpath(dirname(absolute)), owners, fail);
  }
  if (target !== absolute) named = ` (a link to ${target})`;
  const st = await stat(target);
  if (st.isDirectory()) return; // reading it says EISDIR
  if (!st.isFile()) fail('is not a regular file (a FIFO or device could hang or change the key)', 'name the key file itself');
  const mode = st.mode & 0o777;
  const octal = mode.toString(8).padStart(4, '0');
  if (mode & 0o002) fail(`is writable by anyone (mode ${octal})`, `chmod o-w ${target}`);
  if (mode & 0o020) fail(`is writable by its group (mode ${octal})`, `chmod g-w ${target}`);
  if (mode & 0o004) fail(`is readable by anyone (mode ${octal})`, `chmod o-r ${target}`);
  if (!owners.includes(st.uid)) fail(`is owned by ${describeUid(st.uid)}, who could replace the key`, `chown it to ${whom}`);
  await checkKeyDirectories(path, dirname(target), owners, fail);
}

/** The directories from `start` (a real path) up to /: each owned by `owners`, and changeable by nobody else. */
async function checkKeyDirectories(
  path: string,
  start: string,
  owners: readonly number[],
  fail: (problem: string, fix: string) => never,
): Promise<void> {
  for (let dir = start; ; dir = dirname(dir)) {
    let st: Stats;
    try {
      st = await stat(dir);
    } catch (error) {
      throw new ConfigError(dir, `directory of key file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    const mode = st.mode & 0o7777;
    const octal = mode.toString(8).padStart(4, '0');
    if (!owners.includes(st.uid)) {
      fail(
        `is in directory ${dir}, owned by ${describeUid(st.uid)}, who could replace the key`,
        `chown ${dir} to ${describeOwners(owners)}, or keep the key in a directory they own`,
      );
    }
    if (mode & 0o022 && !(mode & 0o1000)) {
      const who = mode & 0o002 ? 'anyone' : 'its group';
      fail(
        `is in directory ${dir}, writable by ${who} (mode ${octal}), who could replace the key`,
        `chmod go-w ${dir}, or chmod +t ${dir}`,
      );
    }
    if (dirname(dir) === dir) return;
  }
}

/** A parsed key, or the ConfigError (at `where`) that says why there is none. */
function configKey<T>(where: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new ConfigError(where, (error as Error).message);
  }
}

function signingKey(name: string, domain: string, selector: string, info: PrivateKeyInfo, source: string): SigningKey {
  return { name, domain, selector, keyFile: source, privateKey: info.key, algorithm: info.algorithm };
}

/**
 * A signing key from PEM text, within dkim-core's limits (RSA of 1024 to 4096 bits, or
 * Ed25519). `source` names the key in errors (the key file, or the store row); `keyFile` is
 * what SigningKey records.
 */
export function keyFromPem(name: string, domain: string, selector: string, pem: string, source: string, where: string): SigningKey {
  return signingKey(
    name,
    domain,
    selector,
    configKey(where, () => parsePrivateKey(pem, source)),
    source,
  );
}

/**
 * The account milterd reads keys as after start-up when that is not the current one: root
 * changes to UserID (`named`), or to nobody without one unless AllowRoot; undefined otherwise.
 */
function laterReader(config: Pick<Config, 'userId' | 'allowRoot'>): { who: RunAs; named: boolean } | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  try {
    const who = config.userId ? resolveRunAs(config.userId) : config.allowRoot ? undefined : nobody();
    return who && who.uid !== 0 ? { who, named: config.userId !== undefined } : undefined;
  } catch {
    // An unknown user is reported where milterd changes user.
    return undefined;
  }
}

/**
 * Why the account milterd runs as after start-up cannot read a key that root can (it loads
 * at start-up and a reload fails): a directory on the way it may not enter, or the key's
 * owner, group and other bits that apply to it; undefined when it can read it.
 */
async function unreadableBy(keyFile: string, who: RunAs, named: boolean): Promise<string | undefined> {
  let target: string;
  try {
    target = await realpath(resolvePath(keyFile));
  } catch {
    return undefined; // reading the key reports it
  }
  const groups = groupsOf(who);
  const allows = (st: Stats, bit: number) => {
    const shift = st.uid === who.uid ? 6 : groups.has(st.gid) ? 3 : 0;
    return ((st.mode >> shift) & bit) !== 0;
  };
  const whom = `${who.user} (uid ${who.uid}), the user milterd runs as after start (${named ? 'UserID' : 'no UserID: nobody'})`;
  const dirs: string[] = [];
  for (let d = dirname(target); ; d = dirname(d)) {
    dirs.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of dirs) {
    if (!allows(await stat(d), 1)) {
      return `key file ${keyFile} cannot be read by ${whom}: it may not enter ${d}; a reload would fail (let that user in, e.g. chmod o+x or chgrp the directory)`;
    }
  }
  if (!allows(await stat(target), 4)) {
    return `key file ${keyFile} cannot be read by ${whom}; it loads now, as root, but a reload would fail (chown ${who.user} it, or chgrp ${who.group} it with mode 0440)`;
  }
  return undefined;
}

/** Where loadSigningPlan reports what does not stop it (a key that only root can read while milterd falls back to nobody). */
export interface PlanWarnings {
  warn?(message: string): void;
}

async function loadKey(
  name: string,
  domain: string,
  selector: string,
  keyFile: string,
  where: string,
  config: Config,
  report: PlanWarnings,
): Promise<SigningKey> {
  if (config.requireSafeKeys) await checkKeyFileSafety(keyFile, where, keyOwners(config));
  const reader = laterReader(config);
  const unreadable = reader ? await unreadableBy(keyFile, reader.who, reader.named) : undefined;
  if (unreadable && reader?.named) throw new ConfigError(where, unreadable);
  // Without UserID (a first try as root, the built-in defaults) it is a warning: set UserID to make it an error.
  if (unreadable) report.warn?.(`${where}: ${unreadable}; set UserID to the user that should read it, or AllowRoot yes`);
  let read: PrivateKeyInfo;
  try {
    read = await readPrivateKey(keyFile);
  } catch (error) {
    throw new ConfigError(where, (error as Error).message);
  }
  const key = signingKey(name, domain, selector, read, keyFile);
  if (config.signatureAlgorithmSet && key.algorithm !== config.signatureAlgorithm) {
    // As OpenDKIM: the configured algorithm is the one used, and a key of the other type cannot make it.
    throw new ConfigError(
      where,
      `SignatureAlgorithm is ${config.signatureAlgorithm}, but ${keyFile} is ${key.algorithm === 'rsa-sha256' ? 'an RSA' : 'an Ed25519'} key: use a key of that type, or remove SignatureAlgorithm (each key then signs with its own algorithm)`,
    );
  }
  return key;
}

export interface TableEntry {
  pattern: string;
  regex?: RegExp;
  keys: SigningKey[];
  /** Set when the entry names keys that could not be loaded: its mail is held (tempfail), not passed unsigned. */
  unusable?: string;
}

/** What the plan says about one sender. */
export interface PlanLookup {
  keys: SigningKey[];
  /** Mail from this sender should be signed but cannot be now (tempfail it): why. */
  hold?: string;
}

/** Which keys sign a message, from the signing table or from Domain + keys. */
export class SigningPlan {
  readonly keys: SigningKey[];
  private readonly entries: TableEntry[];
  private readonly wildcard: boolean;
  private readonly multiple: boolean;
  private readonly subDomains: boolean;

  constructor(keys: SigningKey[], entries: TableEntry[], options: { wildcard: boolean; multiple: boolean; subDomains: boolean }) {
    this.keys = keys;
    this.entries = entries;
    this.wildcard = options.wildcard;
    this.multiple = options.multiple;
    this.subDomains = options.subDomains;
  }

  /** A plan with no tables yet (a store not loaded): mail that could be ours is held, not passed unsigned. */
  static notLoaded(reason: string, options: { multiple: boolean; subDomains: boolean }): SigningPlan {
    const plan = new SigningPlan([], [], { ...options, wildcard: false });
    plan.unavailable = reason;
    return plan;
  }

  /** Set on a plan whose tables have not loaded: why. */
  unavailable?: string;

  get empty(): boolean {
    return this.keys.length === 0;
  }

  /** The keys for a From address (lowercased user@domain), with "%" resolved; [] when none applies. */
  keysFor(address: string): SigningKey[] {
    return this.lookup(address).keys;
  }

  /** The keys for a From address, and whether its mail must be held because they are unusable. */
  lookup(address: string): PlanLookup {
    if (this.unavailable !== undefined) return { keys: [], hold: this.unavailable };
    const at = address.lastIndexOf('@');
    const domain = (at >= 0 ? address.slice(at + 1) : address).toLowerCase();
    const local = at >= 0 ? address.slice(0, at) : '';
    const found: SigningKey[] = [];
    const unusable: string[] = [];
    const take = (e: TableEntry) => {
      found.push(...e.keys);
      if (e.unusable) unusable.push(e.unusable);
    };
    if (this.wildcard) {
      for (const e of this.entries) {
        if (e.regex?.test(`${local}@${domain}`)) {
          take(e);
          if (!this.multiple) break;
        }
      }
    } else {
      // OpenDKIM's order: user@host, host, user@.parent and .parent for each parent domain
      // (nearest first), user@*, *. SubDomains also lets a bare parent domain match.
      const labels = domain.split('.');
      const parents = labels.slice(1).map((_, i) => labels.slice(i + 1).join('.'));
      const candidates = [`${local}@${domain}`, domain, ...parents.map((p) => `${local}@.${p}`), ...parents.map((p) => `.${p}`)];
      if (this.subDomains) candidates.push(...parents.slice(0, -1));
      candidates.push(`${local}@*`, '*');
      for (const c of new Set(candidates)) {
        const e = this.entries.find((x) => x.pattern === c);
        if (e) {
          take(e);
          if (!this.multiple) break;
        }
      }
    }
    const keys = found.map((k) => {
      const d = k.domain === '%' ? domain : k.domain;
      const { identity, ...rest } = k;
      // "%" in the signer is the From domain; an i= outside d= is left out, as OpenDKIM does.
      const i = identity?.replace(/%/g, domain);
      const iDomain = i?.slice(i.lastIndexOf('@') + 1).toLowerCase();
      const fits = i !== undefined && i.includes('@') && (iDomain === d.toLowerCase() || iDomain?.endsWith(`.${d.toLowerCase()}`));
      return { ...rest, domain: d, ...(fits ? { identity: i } : {}) };
    });
    return keys.length === 0 && unusable.length > 0 ? { keys, hold: unusable.join('; ') } : { keys };
  }
}

/** One SigningTable line: a pattern and the key names it signs with. */
export interface SigningRow {
  where: string;
  pattern: string;
  names: string[];
}

/**
 * Build a plan from a loaded KeyTable and the SigningTable rows. Without `problem`, any
 * fault is a ConfigError (files at start-up or reload). With it (tables in a store), a faulty
 * row is reported and left out: an entry naming a key that is missing or could not be loaded
 * still matches its senders, so their mail is held (tempfailed) rather than passed unsigned.
 */
export function planFromTables(
  table: Map<string, SigningKey>,
  rows: SigningRow[],
  options: { wildcard: boolean; multiple: boolean; subDomains: boolean },
  problem?: (error: ConfigError) => void,
  unloadable: Map<string, string> = new Map(),
): SigningPlan {
  const entries: TableEntry[] = [];
  for (const row of rows) {
    if (!row.pattern || row.names.length === 0) {
      const error = new ConfigError(row.where, 'SigningTable lines read "pattern keyname"');
      if (!problem) throw error;
      problem(error);
      continue;
    }
    const keys: SigningKey[] = [];
    const missing: string[] = [];
    for (const value of row.names) {
      // OpenDKIM's value: the key name, then optionally ":" and the signer (i=).
      const colon = value.indexOf(':');
      const n = colon >= 0 ? value.slice(0, colon) : value;
      const signer = colon >= 0 ? value.slice(colon + 1) : '';
      const key = table.get(n);
      if (key) keys.push(signer ? { ...key, identity: signer } : key);
      else {
        const error = new ConfigError(
          row.where,
          unloadable.has(n)
            ? `SigningTable names key "${n}", which could not be loaded (${unloadable.get(n)})`
            : `SigningTable names ${problem ? shownKeyName(n) : 'a key'}, which KeyTable does not have`,
        );
        if (!problem) throw error;
        problem(error);
        missing.push(n);
      }
    }
    const entry: TableEntry = { pattern: row.pattern.toLowerCase(), keys };
    if (missing.length > 0)
      entry.unusable = `no usable signing key for ${row.pattern} (${missing.map(shownKeyName).join(', ')}: see the log)`;
    if (options.wildcard) entry.regex = globToRegex(row.pattern);
    const existing = !options.wildcard ? entries.find((e) => e.pattern === entry.pattern) : undefined;
    if (existing) {
      existing.keys.push(...keys);
      if (entry.unusable) existing.unusable = existing.unusable ? `${existing.unusable}; ${entry.unusable}` : entry.unusable;
    } else entries.push(entry);
  }
  return new SigningPlan([...table.values()], entries, options);
}

function globToRegex(pattern: string): RegExp {
  const body = pattern
    .toLowerCase()
    .split('*')
    .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/**
 * Build the signing plan and load every key (checking permissions with RequireSafeKeys).
 * Either KeyTable + SigningTable (OpenDKIM's tables, refile: for wildcards), or Domain with
 * Selector + KeyFile and/or SigningKeys ("selector:/path" pairs, for dual signing).
 */
export async function loadSigningPlan(config: Config, report: PlanWarnings = {}): Promise<SigningPlan> {
  const options = { wildcard: false, multiple: config.multipleSignatures, subDomains: config.subDomains };
  if (config.keyTable || config.signingTable) {
    if (!config.keyTable || !config.signingTable) throw new ConfigError('configuration', 'KeyTable and SigningTable go together');
    if (isStoreDataset(config.keyTable) || isStoreDataset(config.signingTable)) {
      throw new ConfigError(
        'configuration',
        'KeyTable and SigningTable in a store are kept by the daemon (see SharedTables), not read once',
      );
    }
    const table = new Map<string, SigningKey>();
    for (const line of await readDatasetLines(config.keyTable)) {
      const [name, spec] = line.fields;
      const parts = (spec ?? '').split(':');
      if (!name || parts.length < 3 || !parts[0] || !parts[1] || !parts[2]) {
        throw new ConfigError(line.where, 'KeyTable lines read "keyname domain:selector:/path/to/key"');
      }
      // Only a line that reads like a KeyTable line gets its key file named in later errors.
      const [domain, selector] = parts as [string, string];
      const keyFile = parts.slice(2).join(':');
      if (!/^(%|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?)$/.test(domain))
        throw new ConfigError(line.where, 'KeyTable: the domain (before the first ":") is not a domain name or %');
      if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(selector))
        throw new ConfigError(line.where, 'KeyTable: the selector (between the first two ":") is not a selector');
      if (!/^\.{0,2}\//.test(keyFile))
        throw new ConfigError(
          line.where,
          'KeyTable: the key must be named by its file\'s path, starting with "/" or "./" (keys written into the table are not read)',
        );
      table.set(name, await loadKey(name, domain, selector, keyFile, line.where, config, report));
    }
    const wildcard = config.signingTable.kind === 'refile';
    const rows = (await readDatasetLines(config.signingTable)).map(({ where, fields: [pattern, ...names] }) => ({
      where,
      pattern: pattern ?? '',
      names,
    }));
    if (!wildcard) {
      // OpenDKIM reads such a pattern literally in a file table too (it never matches): said, not silent.
      // "*" and "user@*" are literal keys OpenDKIM's lookup does try.
      for (const row of rows) {
        if (row.pattern.includes('*') && !/^(\*|[^*@]+@\*)$/.test(row.pattern)) {
          report.warn?.(
            `${row.where}: this SigningTable pattern has a "*", which only a refile: table reads as a wildcard; here (as in OpenDKIM) it matches no sender: write SigningTable refile:...`,
          );
        }
      }
    }
    return planFromTables(table, rows, { ...options, wildcard });
  }

  const pairs: [string, string][] = [];
  if (config.selector || config.keyFile) {
    if (!config.selector || !config.keyFile) throw new ConfigError('configuration', 'Selector and KeyFile go together');
    pairs.push([config.selector, config.keyFile]);
  }
  for (const [i, item] of config.signingKeys.entries()) {
    const colon = item.indexOf(':');
    if (colon <= 0 || colon === item.length - 1) throw new ConfigError('SigningKeys', `item ${i + 1} is not selector:/path/to/key`);
    pairs.push([item.slice(0, colon), item.slice(colon + 1)]);
  }
  if (pairs.length === 0) return new SigningPlan([], [], options);
  if (!config.domain) throw new ConfigError('configuration', 'signing keys are configured but no Domain to sign for');
  const domains = (await readDatasetValues(config.domain)).map((d) => d.toLowerCase());
  const keys: SigningKey[] = [];
  for (const [selector, keyFile] of pairs) keys.push(await loadKey(selector, '%', selector, keyFile, `key ${selector}`, config, report));
  // Every key signs for every Domain; with SubDomains, the parent domain signs its subdomains.
  // "*" (OpenDKIM's "any domain") signs with d= the From domain ("%").
  const entries: TableEntry[] = domains.map((d) => ({
    pattern: d,
    keys: keys.map((k) => ({ ...k, domain: d === '*' ? '%' : d })),
  }));
  return new SigningPlan(keys, entries, { ...options, multiple: false });
}
