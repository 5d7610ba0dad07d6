import { randomBytes } from 'node:crypto';
import { link, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Owner } from './owner.js';

export interface WriteOptions {
  /** Replace an existing file (default: refuse). */
  force?: boolean;
  /** Mode of the file (default 0600 for secrets). */
  mode?: number;
  /** Hand the file to this owner; the mode then becomes ownerMode. */
  owner?: Owner;
  /** Mode after chown (default 0440: owner and group read, as root:mail keys are kept). */
  ownerMode?: number;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Write a file atomically. It is created under a temporary name with its final mode
 * already set (never wider, even for a moment), written, flushed, given its owner, and
 * only then put in place: by link() when it must not replace a file (so a file that
 * appears meanwhile is not clobbered), by rename() with force.
 */
export async function writeFileAtomic(path: string, content: string | Buffer, options: WriteOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o600;
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = await open(tmp, 'wx', mode & 0o600);
  try {
    await fd.writeFile(content);
    await fd.sync();
    if (options.owner) {
      await fd.chown(options.owner.uid, options.owner.gid);
      await fd.chmod(options.ownerMode ?? 0o440);
    } else if (mode !== (mode & 0o600)) {
      await fd.chmod(mode);
    }
  } catch (error) {
    await fd.close();
    await unlink(tmp).catch(() => {});
    throw error;
  }
  await fd.close();
  try {
    if (options.force) await rename(tmp, path);
    else {
      await link(tmp, path);
      await unlink(tmp);
    }
  } catch (error) {
    await unlink(tmp).catch(() => {});
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`${path} exists: use --force to replace it`);
    throw error;
  }
}
