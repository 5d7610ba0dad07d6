/**
 * The six public packages as a CommonJS user gets them: packed with pnpm, installed with npm into
 * a fresh "type": "commonjs" project, then loaded with require() (Node >= 20.19 loads the ESM
 * build) and with import(). Also: keytool's store drivers (pg, ioredis) are optional peers, so an
 * install without them loads everything and names the package to install when a store is used.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProgram, tempDir } from '@inkan/testbed';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PACKAGES = ['packages/dkim-core', 'packages/domainkeys-verify', 'packages/milter-protocol', 'packages/keytool', 'apps/milterd', 'apps/cli'];

/** Each entry point a user may load, and a function it must export. */
const ENTRY_POINTS: Record<string, string> = {
  '@inkan/dkim-core': 'signMessage',
  '@inkan/domainkeys-verify': 'verifyDkimAndDomainKeys',
  '@inkan/milter-protocol': 'parseSocketSpec',
  '@inkan/keytool': 'genkey',
  '@inkan/keytool/store': 'openKeyStore',
  '@inkan/keytool/store/location': 'parseStoreUri',
  '@inkan/milterd': 'buildRuntime',
  '@inkan/cli': 'main',
};

function pnpm(args: string[], cwd: string): string {
  const execPath = process.env.npm_execpath;
  if (execPath && /pnpm/.test(execPath)) return execFileSync(process.execPath, [execPath, ...args], { cwd, encoding: 'utf8' });
  return execFileSync('pnpm', args, { cwd, encoding: 'utf8' });
}

/** A user's shell has none of the npm_* variables pnpm sets for the test run, nor a NODE_PATH that could find the workspace's drivers. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') && k !== 'NODE_PATH'));

let work: string;
let project: string;

async function node(script: string, cwd = project): Promise<{ code: number | null; stdout: string; stderr: string }> {
  writeFileSync(join(cwd, 'check.js'), script);
  return runProgram(process.execPath, ['check.js'], { cwd, env, timeoutMs: 60_000 });
}

beforeAll(async () => {
  work = tempDir('inkan-packed-cjs-');
  const out = join(work, 'tarballs');
  mkdirSync(out);
  for (const pkg of PACKAGES) pnpm(['pack', '--pack-destination', out], join(root, pkg));
  const tarballs = readdirSync(out)
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => join(out, f));
  expect(tarballs).toHaveLength(PACKAGES.length);
  project = join(work, 'user');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'cjs-user', version: '1.0.0', private: true, type: 'commonjs' }));
  const r = await runProgram('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], { cwd: project, env, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`npm install failed: ${r.stderr}`);
}, 360_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed packages in a CommonJS project', () => {
  it('require() loads every entry point, and signMessage signs', async () => {
    const r = await node(`'use strict';
const { generateKeyPairSync } = require('node:crypto');
const entries = ${JSON.stringify(ENTRY_POINTS)};
const found = {};
for (const [spec, name] of Object.entries(entries)) found[spec] = typeof require(spec)[name];
const { signMessage } = require('@inkan/dkim-core');
const { privateKey } = generateKeyPairSync('ed25519');
signMessage(Buffer.from('From: a@example.org\\r\\nSubject: hi\\r\\n\\r\\nHello\\r\\n'), { domain: 'example.org', selector: 's1', privateKey })
  .then((header) => console.log(JSON.stringify({ found, header })));
`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { found, header } = JSON.parse(r.stdout) as { found: Record<string, string>; header: string };
    expect(found).toEqual(Object.fromEntries(Object.keys(ENTRY_POINTS).map((spec) => [spec, 'function'])));
    expect(header).toMatch(/^DKIM-Signature: v=1; a=ed25519-sha256; .*d=example\.org; s=s1;/s);
  });

  it('import() from CommonJS gives the same modules as require()', async () => {
    const r = await node(`'use strict';
const entries = ${JSON.stringify(ENTRY_POINTS)};
(async () => {
  const result = {};
  for (const [spec, name] of Object.entries(entries)) {
    const imported = await import(spec);
    result[spec] = { type: typeof imported[name], same: imported[name] === require(spec)[name] };
  }
  console.log(JSON.stringify(result));
})();
`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(Object.fromEntries(Object.keys(ENTRY_POINTS).map((spec) => [spec, { type: 'function', same: true }])));
  });

  it('keytool without pg and ioredis: loads, and a store names the package to install', async () => {
    // keytool's own dependencies only, copied out of the install (milterd there depends on the drivers).
    const bare = join(work, 'bare');
    for (const pkg of ['@inkan/keytool', '@inkan/dkim-core', 'commander']) {
      cpSync(join(project, 'node_modules', pkg), join(bare, 'node_modules', pkg), { recursive: true });
    }
    writeFileSync(join(bare, 'package.json'), JSON.stringify({ name: 'bare', private: true, type: 'commonjs' }));
    const r = await node(
      `'use strict';
const { openKeyStore, watchStore, MissingDriverError } = require('@inkan/keytool/store');
const missing = {};
const quiet = { changed() {}, connected() {}, lost() {} };
for (const uri of ['postgresql://inkan@127.0.0.1/mail', 'redis://127.0.0.1:6379/0']) {
  for (const [how, open] of [['open', () => openKeyStore(uri)], ['watch', () => watchStore(uri, quiet)]]) {
    try {
      open().close();
    } catch (error) {
      if (!(error instanceof MissingDriverError)) throw error;
      missing[how + ' ' + uri] = error.packageName;
    }
  }
}
for (const driver of ['pg', 'ioredis']) {
  try {
    require.resolve(driver);
    missing[driver] = 'resolvable';
  } catch {}
}
console.log(JSON.stringify(missing));
`,
      bare,
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      'open postgresql://inkan@127.0.0.1/mail': 'pg',
      'watch postgresql://inkan@127.0.0.1/mail': 'pg',
      'open redis://127.0.0.1:6379/0': 'ioredis',
      'watch redis://127.0.0.1:6379/0': 'ioredis',
    });

    const keytool = join(bare, 'node_modules', '@inkan', 'keytool', 'bin', 'inkan-keytool.js');
    const list = await runProgram(process.execPath, [keytool, 'store', 'list', '--store', 'postgresql://inkan@127.0.0.1/mail'], { cwd: bare, env, timeoutMs: 60_000 });
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(/^inkan-keytool: a postgresql:\/\/ store needs the pg package, which is not installed: npm install pg /);
    const genkey = await runProgram(process.execPath, [keytool, 'genkey', '-d', 'example.org', '-s', 'k1', '-t', 'ed25519', '-D', join(bare, 'keys')], { cwd: bare, env, timeoutMs: 60_000 });
    expect(genkey.code).toBe(0);
    expect(genkey.stdout).toMatch(/k1\._domainkey\tIN\tTXT\t"v=DKIM1; k=ed25519; /);
  });
});
