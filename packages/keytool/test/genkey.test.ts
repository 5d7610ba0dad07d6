/**
 * genkey's output folder and --owner, as an admin meets them: a folder that does not exist
 * yet, one that cannot be made, a folder the user may not write, and --owner without root.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runProgram, tempDir } from '@inkan/testbed';
import { EX_CANTCREAT, EX_NOPERM, main, resolveOwner } from '../src/index.js';

const bin = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'inkan-keytool.js');

async function keytool(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'inkan-keytool', ...argv], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

const mode = (path: string) => statSync(path).mode & 0o777;
const nobody = (() => {
  try {
    return resolveOwner('nobody');
  } catch {
    return undefined;
  }
})();
const asRoot = process.getuid?.() === 0;

describe('genkey --outdir', () => {
  it('creates a missing nested folder, 0700 at every level, says so on stderr, and writes the key into it', async () => {
    const base = tempDir();
    const outdir = join(base, 'etc', 'dkim', 'example.org');
    const old = process.umask(0o022);
    let r: Awaited<ReturnType<typeof keytool>>;
    try {
      r = await keytool(['genkey', '-d', 'example.org', '-s', 'hoge', '--type', 'ed25519', '--outdir', outdir]);
    } finally {
      process.umask(old);
    }
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(
      `inkan-keytool: created the folder ${outdir} (mode 0700), with the missing folders above it from ${join(base, 'etc')}\n`,
    );
    for (const folder of [join(base, 'etc'), join(base, 'etc', 'dkim'), outdir]) expect(mode(folder), folder).toBe(0o700);
    expect(readdirSync(outdir).sort()).toEqual(['hoge.private', 'hoge.txt']);
    expect(mode(join(outdir, 'hoge.private'))).toBe(0o600);
    expect(r.stdout).toContain(`Wrote ${join(outdir, 'hoge.private')} (Ed25519 private key, 0600)`);
  });

  it('says nothing on stderr when the folder exists', async () => {
    const dir = tempDir();
    const r = await keytool(['genkey', '-d', 'example.org', '-s', 'hoge', '--type', 'ed25519', '-D', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('names the folder it cannot create (under a regular file) and exits EX_CANTCREAT (73)', async () => {
    const base = tempDir();
    writeFileSync(join(base, 'keys'), 'a file, not a folder\n');
    const outdir = join(base, 'keys', 'example.org');
    const r = await keytool(['genkey', '-d', 'example.org', '-s', 'hoge', '--type', 'ed25519', '-D', outdir]);
    expect(EX_CANTCREAT).toBe(73);
    expect(r.code).toBe(73);
    expect(r.stderr).toBe(`inkan-keytool: cannot create the folder ${outdir}: a part of the path is a file, not a folder (ENOTDIR)\n`);
    expect(r.stdout).toBe('');
    expect(readdirSync(base)).toEqual(['keys']);

    const onFile = await keytool(['genkey', '-d', 'example.org', '-s', 'hoge', '--type', 'ed25519', '-D', join(base, 'keys')]);
    expect(onFile.code).toBe(73);
    expect(onFile.stderr).toBe(`inkan-keytool: cannot write into ${join(base, 'keys')}: it is a file, not a folder\n`);
  });
});

describe.skipIf(!asRoot || !nobody)('genkey as a user who is not root (run as nobody)', () => {
  /** A folder under a fresh temp dir that nobody can reach; writable by nobody when `nobodyOwns`. */
  function folder(nobodyOwns: boolean): string {
    const base = tempDir();
    chmodSync(base, 0o755);
    const dir = join(base, 'keys');
    mkdirSync(dir, { mode: 0o755 });
    if (nobodyOwns && nobody) chownSync(dir, nobody.uid, nobody.gid);
    return dir;
  }
  const asNobody = (args: string[]) =>
    runProgram(process.execPath, [bin, ...args], { uid: nobody?.uid ?? 65534, gid: nobody?.gid ?? 65534, cwd: '/', timeoutMs: 30_000 });

  it('--owner root:mail: a clear error naming the user and the file, exit EX_NOPERM (77), before anything is written', async () => {
    const dir = folder(true);
    const r = await asNobody(['genkey', '-d', 'example.org', '-s', 'hoge', '--type', 'ed25519', '-D', dir, '--owner', 'root:mail']);
    expect(EX_NOPERM).toBe(77);
    expect(r.code).toBe(77);
    expect(r.stderr).toBe(
      `inkan-keytool: cannot give ${join(dir, 'hoge.private')} to root:mail (--owner): changing a file's owner to root needs root, and this runs as nobody (uid ${nobody?.uid}). Run genkey as root, or leave out --owner; nothing was written.\n`,
    );
    expect(r.stderr).not.toMatch(/EPERM|fchown/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('--owner into a missing folder: refused before the folder is made', async () => {
    const dir = join(folder(true), 'new');
    const r = await asNobody(['genkey', '-d', 'example.org', '-s', 'hoge', '--type', 'ed25519', '-D', dir, '--owner', 'root:mail']);
    expect(r.code).toBe(77);
    expect(existsSync(dir)).toBe(false);
  });

  it('without --owner, into its own folder: works as before (0600, owned by nobody)', async () => {
    const dir = folder(true);
    const r = await asNobody(['genkey', '-d', 'example.org', '-s', 'hoge', '--type', 'ed25519', '-D', dir]);
    expect(r.code, r.stderr).toBe(0);
    const st = statSync(join(dir, 'hoge.private'));
    expect([st.uid, st.mode & 0o777]).toEqual([nobody?.uid, 0o600]);
  });

  it('into a folder it may not write: names the key file (not a hidden temp file), exit 73', async () => {
    const dir = folder(false);
    const r = await asNobody(['genkey', '-d', 'example.org', '-s', 'hoge', '--type', 'ed25519', '-D', dir]);
    expect(r.code).toBe(73);
    expect(r.stderr).toBe(`inkan-keytool: cannot create ${join(dir, 'hoge.private')}: permission denied (EACCES)\n`);
    expect(readdirSync(dir)).toEqual([]);
  });
});
