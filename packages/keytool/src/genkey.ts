import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { type GeneratedKey, generateDkimKey, type KeyKind } from './keys.js';
import type { Owner } from './owner.js';
import { formatKeyRecord, formatZoneRecord } from './record.js';
import { exists, type WriteOptions, writeFileAtomic } from './secure-file.js';

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
  /** The folder genkey had to create (the topmost new one), when outdir did not exist. */
  createdFolder?: string;
  /** The mode of the folders it created (0700, or 0750 with an owner so that the group can reach the key). */
  createdFolderMode?: number;
  privateKeyFile: string;
  recordFile: string;
  /** TXT data of the key record. */
  record: string;
  /** The zone-file form written to SELECTOR.txt. */
  zone: string;
}

const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$/;
const DOMAIN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9-]+\.?$|^localhost$/;

/** sysexits.h: an output file or folder cannot be created. */
export const EX_CANTCREAT = 73;
/** sysexits.h: not permitted (here: --owner without the right to chown). */
export const EX_NOPERM = 77;

/** A genkey failure with the exit status the command line should end with. */
export class GenkeyError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'GenkeyError';
  }
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'a file of that name is in the way',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'the folder is gone',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the name is too long',
};

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code && REASONS[code]) return `${REASONS[code]} (${code})`;
  return code ?? (error as Error).message;
}

/** Whether this process holds CAP_CHOWN (Linux; false where /proc cannot tell). */
function hasCapChown(): boolean {
  try {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('CapEff:'));
    return line ? (BigInt(`0x${line.slice(7).trim()}`) & 1n) === 1n : false;
  } catch {
    return false;
  }
}

function whoAmI(uid: number): string {
  try {
    return `${userInfo().username} (uid ${uid})`;
  } catch {
    return `uid ${uid}`;
  }
}

/**
 * Refuse an owner this process cannot give a file to, before anything is written. Only root
 * (or CAP_CHOWN) may give a file away; anyone may keep it and pick one of their own groups.
 */
function checkOwner(owner: Owner, file: string): void {
  const uid = process.geteuid?.();
  if (uid === undefined || uid === 0 || hasCapChown()) return;
  const gid = process.getegid?.();
  const groups = process.getgroups?.() ?? [];
  if (owner.uid === uid && (owner.gid === gid || groups.includes(owner.gid))) return;
  throw ownerError(owner, file, uid);
}

function ownerError(owner: Owner, file: string, uid: number): GenkeyError {
  const what =
    owner.uid === uid
      ? `giving it to the group ${owner.group} needs root or membership of ${owner.group}`
      : `changing a file's owner to ${owner.user} needs root`;
  return new GenkeyError(
    `cannot give ${file} to ${owner.user}:${owner.group} (--owner): ${what}, and this runs as ${whoAmI(uid)}. Run genkey as root, or leave out --owner; nothing was written.`,
    EX_NOPERM,
  );
}

/**
 * Make sure outdir is a folder: create it (and missing parents) when it does not exist,
 * 0700, or 0750 and given to the owner so that the owner's group can reach the key.
 * Returns the topmost folder created, if any.
 */
async function ensureFolder(outdir: string, owner: Owner | undefined): Promise<{ created: string; mode: number } | undefined> {
  try {
    if ((await stat(outdir)).isDirectory()) return undefined;
    throw new GenkeyError(`cannot write into ${outdir}: it is a file, not a folder`, EX_CANTCREAT);
  } catch (error) {
    if (error instanceof GenkeyError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new GenkeyError(`cannot use the folder ${outdir}: ${reason(error)}`, EX_CANTCREAT);
  }
  const mode = owner ? 0o750 : 0o700;
  let first: string | undefined;
  try {
    first = await mkdir(outdir, { recursive: true, mode });
    if (!first) return undefined; // made meanwhile by someone else
    // every folder from the first one created down to outdir: exactly this mode (whatever the umask), and the owner
    const folders = [first];
    for (const part of relative(first, outdir).split(sep).filter(Boolean)) folders.push(join(folders[folders.length - 1] as string, part));
    for (const folder of folders) {
      if (owner) await chown(folder, owner.uid, owner.gid);
      await chmod(folder, mode);
    }
  } catch (error) {
    throw new GenkeyError(`cannot create the folder ${outdir}: ${reason(error)}`, EX_CANTCREAT);
  }
  return { created: first, mode };
}

/** writeFileAtomic, with its failures told by the file's own name (not the temporary one). */
async function writeKeyFile(file: string, content: string, options: WriteOptions): Promise<void> {
  try {
    await writeFileAtomic(file, content, options);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!code) throw error;
    if (code === 'EPERM' && options.owner) throw ownerError(options.owner, file, process.geteuid?.() ?? -1);
    throw new GenkeyError(`cannot create ${file}: ${reason(error)}`, EX_CANTCREAT);
  }
}

export function checkNames(domain: string, selector: string): void {
  if (!DOMAIN.test(domain)) throw new RangeError(`"${domain}" is not a domain name`);
  if (!SELECTOR.test(selector))
    throw new RangeError(`"${selector}" is not a valid selector (letters, digits, "-", "_", dots between labels)`);
}

/** A new key pair as the spec asks, and the TXT record that publishes its public half. */
export async function newKeyPair(o: KeySpec): Promise<{ key: GeneratedKey; record: string }> {
  const key = await generateDkimKey(o.type ?? 'rsa', o.bits);
  const record = formatKeyRecord({
    type: key.type,
    p: key.p,
    ...(o.testing ? { testing: true } : {}),
    ...(o.subdomains ? { subdomains: true } : {}),
    ...(o.hashAlgorithms ? { hashAlgorithms: o.hashAlgorithms } : {}),
    ...(o.note !== undefined ? { note: o.note } : {}),
  });
  return { key, record };
}

/**
 * Generate a key pair for one selector: SELECTOR.private (PKCS#8 PEM, 0600, or 0440 and
 * chowned with an owner) and SELECTOR.txt (the zone-file record). Refuses to replace
 * either file without force; checks both, and that the owner can be given, before writing
 * anything. A missing outdir is created (see GenkeyResult.createdFolder). Failures to
 * create are GenkeyErrors with exitCode EX_CANTCREAT, an owner it may not give EX_NOPERM.
 */
export async function genkey(o: GenkeyOptions): Promise<GenkeyResult> {
  checkNames(o.domain, o.selector);
  const outdir = resolve(o.outdir ?? '.');
  const privateKeyFile = join(outdir, `${o.selector}.private`);
  const recordFile = join(outdir, `${o.selector}.txt`);
  if (o.owner) checkOwner(o.owner, privateKeyFile);
  if (!o.force) {
    for (const file of [privateKeyFile, recordFile]) if (await exists(file)) throw new Error(`${file} exists: use --force to replace it`);
  }
  const { key, record } = await newKeyPair(o);
  const zone = formatZoneRecord(record, { selector: o.selector, domain: o.domain, comment: `DKIM key ${o.selector} for ${o.domain}` });
  const folder = await ensureFolder(outdir, o.owner);
  await writeKeyFile(privateKeyFile, key.privatePem, { force: !!o.force, mode: 0o600, ...(o.owner ? { owner: o.owner } : {}) });
  await writeKeyFile(recordFile, zone, { force: !!o.force, mode: 0o644 });
  return {
    key,
    ...(folder ? { createdFolder: folder.created, createdFolderMode: folder.mode } : {}),
    privateKeyFile,
    recordFile,
    record,
    zone,
  };
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
