/** `npx @inkan/keytool` as a user runs it: the packed packages installed into a temp project. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runProgram, tempDir } from '@inkan/testbed';

const here = dirname(fileURLToPath(import.meta.url));
const packages = resolve(here, '..', '..');

function pnpm(args: string[], cwd: string): string {
  const execPath = process.env.npm_execpath;
  if (execPath && /pnpm/.test(execPath)) return execFileSync(process.execPath, [execPath, ...args], { cwd, encoding: 'utf8' });
  return execFileSync('pnpm', args, { cwd, encoding: 'utf8' });
}

let project: string;
let keytoolTarball: string;
/** A user's shell has none of the npm_* variables that pnpm sets for the test run. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));

beforeAll(async () => {
  const out = tempDir('inkan-keytool-pack-');
  for (const pkg of ['dkim-core', 'keytool']) pnpm(['pack', '--pack-destination', out], join(packages, pkg));
  const tarballs = readdirSync(out)
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => join(out, f));
  expect(tarballs).toHaveLength(2);
  keytoolTarball = tarballs.find((f) => /keytool-[^/]*\.tgz$/.test(f)) as string;
  project = join(out, 'admin');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'admin', private: true }));
  const r = await runProgram('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], { cwd: project, env, timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`npm install failed: ${r.stderr}`);
}, 240_000);

describe('packed @inkan/keytool', () => {
  it('npx inkan-keytool genkey writes a key and a record', async () => {
    const r = await runProgram('npx', ['--no-install', 'inkan-keytool', 'genkey', '--domain', 'example.org', '--selector', 'hoge', '--type', 'ed25519'], {
      cwd: project,
      env,
      timeoutMs: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Wrote .*hoge\.private \(Ed25519 private key, 0600\)/);
    expect(r.stdout).toMatch(/hoge\._domainkey\tIN\tTXT\t"v=DKIM1; k=ed25519; t=s; p=/);
    expect(statSync(join(project, 'hoge.private')).mode & 0o777).toBe(0o600);
  });

  it('npx inkan-keytool --help lists the commands, with examples per command', async () => {
    const r = await runProgram('npx', ['--no-install', 'inkan-keytool', '--help'], { cwd: project, env });
    for (const command of ['genkey', 'record', 'testkey', 'policy', 'rotate']) expect(r.stdout).toContain(command);
    const sub = await runProgram('npx', ['--no-install', 'inkan-keytool', 'testkey', '--help'], { cwd: project, env });
    expect(sub.stdout).toMatch(/Examples:/);
    expect(sub.stdout).toMatch(/Exit status: 0/);
  });

  it('ships the PostgreSQL migration, and store init --print reads it from there (no pg needed)', async () => {
    const listing = execFileSync('tar', ['-tzf', keytoolTarball], { encoding: 'utf8' }).split('\n');
    expect(listing).toContain('package/sql/001_dkim_tables.sql');
    expect(listing).toContain('package/sql/grants.sql');
    const shipped = readFileSync(join(project, 'node_modules', '@inkan', 'keytool', 'sql', '001_dkim_tables.sql'), 'utf8');
    const print = (uri: string) => runProgram('npx', ['--no-install', 'inkan-keytool', 'store', 'init', '--print', '--store', uri], { cwd: project, env, timeoutMs: 60_000 });
    const plain = await print('postgresql://127.0.0.1/mail');
    expect([plain.code, plain.stderr]).toEqual([0, '']);
    expect(plain.stdout).toBe(shipped);
    const named = await print('postgresql://127.0.0.1/mail?keys=k&signing=s&hosts=h&channel=c');
    expect(named.stdout).toBe(
      shipped
        .replace(/"dkim_(keys|signing|internal_hosts)(_notify)?"/g, (_m, t: string, n: string | undefined) => `"${t === 'internal_hosts' ? 'h' : (t as string)[0]}${n ?? ''}"`)
        .replace(/'inkan_dkim'/g, "'c'")
        .replace('listening on inkan_dkim.', 'listening on c.'),
    );
  });
});
