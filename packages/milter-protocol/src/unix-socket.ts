import { chmod, chown, lstat, readFile, unlink } from 'node:fs/promises';
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
    if (code(error) !== 'ENOENT') throw new MilterError(stage, `cannot remove stale socket ${path}: ${errorMessage(error)}`, { cause: error });
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
 * Listen on a unix socket with exactly `mode` (the process umask is narrowed around the
 * bind, so the socket never exists with wider permissions) and optionally `group`.
 * Returns the socket file's inode, so that close can remove only its own file.
 */
export async function listenUnix(server: Server, path: string, mode = 0o660, group?: string | number): Promise<number> {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new MilterError(stage, `invalid socket mode ${mode}`);
  await removeStaleSocket(path);
  const gid = group === undefined ? undefined : await resolveGroup(group);
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(new MilterError(stage, `cannot listen on unix:${path}: ${errorMessage(error)}`, { cause: error }));
    server.once('error', onError);
    let previous: number | undefined;
    try {
      previous = process.umask(~mode & 0o777);
    } catch {
      // worker threads cannot change the umask; chmod below still sets the mode
    }
    try {
      // The bind happens synchronously inside listen(), so the umask is restored right after it.
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
  });
  try {
    await chmod(path, mode);
    if (gid !== undefined) await chown(path, -1, gid);
  } catch (error) {
    server.close();
    throw new MilterError(stage, `cannot set permissions of unix:${path}: ${errorMessage(error)}`, { cause: error });
  }
  return (await lstat(path)).ino;
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
