import { chmod, lchown, lstat, readFile, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Server, connect } from 'node:net';
import { MilterError, errorMessage } from './errors.js';

const stage = 'listen';

function code(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Does something accept connections on this unix socket? (Bounded by `timeoutMs`.) */
export function probeUnixSocket(path: string, timeoutMs = 2000): Promise<'live' | 'stale'> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('live'); // a peer that neither accepts nor refuses is still a peer
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve('live');
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      if (code(error) === 'ECONNREFUSED') resolve('stale');
      else if (code(error) === 'ENOENT') resolve('stale');
      else reject(new MilterError(stage, `cannot probe unix:${path}: ${errorMessage(error)}`, { cause: error }));
    });
  });
}

/**
 * Make `path` free for a new socket: nothing there is fine; a socket nobody listens on (left
 * by a dead process) is removed; a socket a live process listens on, or any other kind of
 * file, is refused with a clear error.
 */
export async function removeStaleSocket(path: string): Promise<'absent' | 'replaced'> {
  let stats: Awaited<ReturnType<typeof lstat>>;
  try {
    stats = await lstat(path);
  } catch (error) {
    if (code(error) === 'ENOENT') return 'absent';
    throw new MilterError(stage, `cannot inspect ${path}: ${errorMessage(error)}`, { cause: error });
  }
  if (!stats.isSocket()) throw new MilterError(stage, `${path} exists and is not a socket; refusing to replace it`);
  if ((await probeUnixSocket(path)) === 'live') {
    throw new MilterError(stage, `unix:${path} is in use by a running process; stop it or choose another path`);
  }
  try {
    await unlink(path);
  } catch (error) {
    if (code(error) !== 'ENOENT')
      throw new MilterError(stage, `cannot remove stale socket ${path}: ${errorMessage(error)}`, { cause: error });
  }
  return 'replaced';
}

/** A group id from a number, a numeric string or a name in /etc/group. */
export async function resolveGroup(group: string | number): Promise<number> {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  let text = '';
  try {
    text = await readFile('/etc/group', 'utf8');
  } catch (error) {
    throw new MilterError(stage, `cannot read /etc/group to find group "${group}": ${errorMessage(error)}`, { cause: error });
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new MilterError(stage, `unknown group "${group}"`);
}

/**
 * Is `dir` a directory only root or we can change entries of? Then acting on a path in it
 * by name cannot be redirected by someone else planting a symbolic link there.
 */
async function trustedDirectory(dir: string): Promise<boolean> {
  try {
    const st = await stat(dir);
    const euid = process.geteuid?.();
    return st.isDirectory() && (st.uid === 0 || st.uid === euid) && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/**
 * Listen on a unix socket with exactly `mode` and optionally `group`. Returns the socket
 * file's inode, so that close can remove only its own file.
 *
 * The socket file is given its mode and group as bind() creates it, never by name afterwards:
 * the directory is often writable by the milter's own (unprivileged) user, who could swap the
 * new socket for a symbolic link (or a hard link) to any file between bind() and a chmod() or
 * chown() by path, and a daemon still running as root would then change that file. (Binding
 * in a private temporary directory does not close this: its owner can still rename that
 * directory and plant another one by the same name.) So, around the synchronous bind inside
 * listen(): the umask is narrowed to `~mode` (the kernel creates the socket with exactly
 * `mode`), and the effective group id is switched to `group` (a new file takes the creator's
 * effective group, unless the directory is set-group-id); both are restored at once.
 * Node has no fchmodat()/fchown() on a socket path, so this is the way to do it atomically.
 *
 * Only when that could not be done (worker threads cannot change the umask; an unprivileged
 * process may not switch to a supplementary group; a set-group-id directory imposes its own
 * group) are the mode and group set by name, and then only in a directory that no one but
 * root or this user can change; elsewhere listening fails with a clear error.
 */
export async function listenUnix(server: Server, path: string, mode = 0o660, group?: string | number): Promise<number> {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new MilterError(stage, `invalid socket mode ${mode}`);
  await removeStaleSocket(path);
  const gid = group === undefined ? undefined : await resolveGroup(group);
  let restoreError: unknown;
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) =>
      reject(new MilterError(stage, `cannot listen on unix:${path}: ${errorMessage(error)}`, { cause: error }));
    server.once('error', onError);
    let previousUmask: number | undefined;
    let previousEgid: number | undefined;
    try {
      previousUmask = process.umask(~mode & 0o777);
    } catch {
      // worker threads cannot change the umask: the mode is checked (and set, if safe) below
    }
    if (gid !== undefined && typeof process.getegid === 'function' && typeof process.setegid === 'function' && process.getegid() !== gid) {
      try {
        const egid = process.getegid();
        process.setegid(gid);
        previousEgid = egid;
      } catch {
        // not allowed (an unprivileged process and a supplementary group): checked below
      }
    }
    try {
      // The bind happens synchronously inside listen(), so umask and group are restored right after it.
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      try {
        if (previousEgid !== undefined) process.setegid?.(previousEgid);
      } catch (error) {
        restoreError = error;
      }
      if (previousUmask !== undefined) process.umask(previousUmask);
    }
  });
  const fail = (message: string, cause?: unknown): never => {
    server.close();
    throw new MilterError(stage, message, cause === undefined ? undefined : { cause });
  };
  if (restoreError !== undefined)
    fail(`cannot switch the effective group back after binding unix:${path}: ${errorMessage(restoreError)}`, restoreError);
  let stats: Awaited<ReturnType<typeof lstat>>;
  try {
    stats = await lstat(path);
  } catch (error) {
    return fail(`unix:${path} is gone right after binding it: ${errorMessage(error)}`, error);
  }
  if (!stats.isSocket()) fail(`unix:${path} was replaced right after binding it; refusing to go on`);
  const wrongMode = (stats.mode & 0o777) !== mode;
  const wrongGroup = gid !== undefined && stats.gid !== gid;
  if (wrongMode || wrongGroup) {
    const what = [
      wrongMode ? `mode ${(stats.mode & 0o777).toString(8)} instead of ${mode.toString(8)}` : '',
      wrongGroup ? `group ${stats.gid} instead of ${gid}` : '',
    ]
      .filter(Boolean)
      .join(' and ');
    if (!(await trustedDirectory(dirname(path)))) {
      fail(
        `unix:${path} was created with ${what}, and its directory is writable by others, so fixing that by name is not safe; ` +
          'use a directory only root (or this user) can write to, or run as root',
      );
    }
    try {
      if (wrongMode) await chmod(path, mode);
      if (wrongGroup) await lchown(path, -1, gid as number);
    } catch (error) {
      fail(`cannot set permissions of unix:${path}: ${errorMessage(error)}`, error);
    }
  }
  return stats.ino;
}

/** Remove a socket file we created, unless another process has replaced it since. */
export async function unlinkOwnSocket(path: string, inode: number): Promise<void> {
  try {
    const stats = await lstat(path);
    if (stats.isSocket() && stats.ino === inode) await unlink(path);
  } catch {
    // already gone
  }
}
