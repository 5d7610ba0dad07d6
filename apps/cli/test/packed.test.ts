/**
 * The six public packages as a Node user gets them from npm: packed with pnpm, installed with npm
 * from the tarballs into a fresh project outside the workspace, then used every way a user would:
 * import (ESM), require() (CommonJS, Node >= 20.19 loads the ESM build), tsc --strict with
 * nodenext and with bundler resolution, LF-only mail, `npx inkan-keytool genkey` into a new
 * folder, and every code example of the packages' READMEs, run verbatim from the README that
 * the tarball ships. keytool's store drivers (pg, ioredis) are optional peers: an install
 * without them loads everything and names the package to install when a store is used.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProgram, tempDir, waitFor } from '@inkan/testbed';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PACKAGES = [
  'packages/dkim-core',
  'packages/domainkeys-verify',
  'packages/milter-protocol',
  'packages/keytool',
  'apps/milterd',
  'apps/cli',
];

/** Each entry point a user may load, and a function it must export. */
const ENTRY_POINTS: Record<string, string> = {
  '@inkan/dkim-core': 'signMessage',
  '@inkan/dkim-core/canonicalization': 'createBodyCanonicalizer',
  '@inkan/dkim-core/records': 'parseTagList',
  '@inkan/dkim-core/message': 'feedMessage',
  '@inkan/dkim-core/verification': 'fetchKeyRecord',
  '@inkan/domainkeys-verify': 'verifyDkimAndDomainKeys',
  '@inkan/milter-protocol': 'parseSocketSpec',
  '@inkan/keytool': 'genkey',
  '@inkan/keytool/store': 'openKeyStore',
  '@inkan/keytool/store/location': 'parseStoreUri',
  '@inkan/milterd': 'buildRuntime',
  '@inkan/cli': 'main',
};

/** A message as an editor saves it: LF line ends. */
const LF_MESSAGE =
  'From: Joe <joe@example.org>\nTo: ann@example.net\nSubject: from a text editor\nDate: Sat, 05 Dec 2026 06:00:00 +0000\nMessage-ID: <lf-1@example.org>\n\nHello Ann,\n\nthis file has LF line ends.\n';

function pnpm(args: string[], cwd: string): string {
  const execPath = process.env.npm_execpath;
  if (execPath && /pnpm/.test(execPath)) return execFileSync(process.execPath, [execPath, ...args], { cwd, encoding: 'utf8' });
  return execFileSync('pnpm', args, { cwd, encoding: 'utf8' });
}

/** A user's shell has none of the npm_* variables pnpm sets for the test run, nor a NODE_PATH that could find the workspace's packages. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') && k !== 'NODE_PATH'));

let work: string;
let project: string;

async function node(file: string, script: string, cwd = project): Promise<{ code: number | null; stdout: string; stderr: string }> {
  writeFileSync(join(cwd, file), script);
  return runProgram(process.execPath, [file], { cwd, env, timeoutMs: 60_000 });
}

/** tsc from the workspace, on files in the project, with the user's tsconfig; its output ('' when clean). */
async function tsc(dir: string, files: string[], compilerOptions: Record<string, unknown>): Promise<string> {
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [join(root, 'node_modules', '@types')],
        ...compilerOptions,
      },
      files,
    }),
  );
  const r = await runProgram(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
    cwd: dir,
    env,
    timeoutMs: 120_000,
  });
  return `${r.stdout}${r.stderr}`.trim() || (r.code === 0 ? '' : `tsc exited ${r.code}`);
}

/** The fenced code blocks of a README, in order, with their language. */
function codeBlocks(readme: string): { lang: string; code: string }[] {
  return [...readme.matchAll(/^```([a-z]*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1] as string, code: m[2] as string }));
}

beforeAll(async () => {
  work = tempDir('inkan-packed-');
  const out = join(work, 'tarballs');
  mkdirSync(out);
  for (const pkg of PACKAGES) pnpm(['pack', '--pack-destination', out], join(root, pkg));
  const tarballs = readdirSync(out)
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => join(out, f));
  expect(tarballs).toHaveLength(PACKAGES.length);
  project = join(work, 'user');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user', version: '1.0.0', private: true, type: 'commonjs' }));
  const r = await runProgram('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], {
    cwd: project,
    env,
    timeoutMs: 300_000,
  });
  if (r.code !== 0) throw new Error(`npm install failed: ${r.stderr}`);
}, 360_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed packages', () => {
  it('ship their build, README, LICENSE and package.json, and no source maps or tests', () => {
    for (const pkg of PACKAGES) {
      const name = JSON.parse(readFileSync(join(root, pkg, 'package.json'), 'utf8')).name as string;
      const dir = join(project, 'node_modules', name);
      const files = readdirSync(dir);
      expect(files, name).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'dist', 'package.json']));
      expect(files, name).not.toContain('test');
      expect(files, name).not.toContain('src');
      const maps = readdirSync(join(dir, 'dist'), { recursive: true }).filter((f) => String(f).endsWith('.map'));
      expect(maps, name).toEqual([]);
    }
  });

  it('import (ESM) loads every entry point and signs and verifies', async () => {
    const r = await node(
      'use.mjs',
      `import { generateKeyPairSync } from 'node:crypto';
import { signMessage, verifyMessage, MemoryKeyResolver, formatAuthenticationResults } from '@inkan/dkim-core';
const entries = ${JSON.stringify(ENTRY_POINTS)};
const found = {};
for (const [spec, name] of Object.entries(entries)) found[spec] = typeof (await import(spec))[name];
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const p = publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64');
const message = Buffer.from('From: a@example.org\\r\\nSubject: packed\\r\\n\\r\\nHello\\r\\n');
const sig = await signMessage(message, { domain: 'example.org', selector: 'ed', privateKey });
const resolver = new MemoryKeyResolver({ 'ed._domainkey.example.org': 'v=DKIM1; k=ed25519; p=' + p });
const results = await verifyMessage(Buffer.concat([Buffer.from(sig), message]), { resolver });
console.log(JSON.stringify({ found, ar: formatAuthenticationResults('mx.example.org', results, { newline: '' }) }));
`,
    );
    expect(r.stderr).toBe('');
    const { found, ar } = JSON.parse(r.stdout) as { found: Record<string, string>; ar: string };
    expect(found).toEqual(Object.fromEntries(Object.keys(ENTRY_POINTS).map((spec) => [spec, 'function'])));
    expect(ar).toMatch(/^mx\.example\.org; dkim=pass .*header\.a=ed25519-sha256/);
  });

  it('require() (CommonJS) loads every entry point, the same modules as import(), and signMessage signs', async () => {
    const r = await node(
      'use.js',
      `'use strict';
const { generateKeyPairSync } = require('node:crypto');
const entries = ${JSON.stringify(ENTRY_POINTS)};
(async () => {
  const found = {};
  for (const [spec, name] of Object.entries(entries)) {
    const required = require(spec)[name];
    found[spec] = { type: typeof required, same: (await import(spec))[name] === required };
  }
  const { signMessage } = require('@inkan/dkim-core');
  const { privateKey } = generateKeyPairSync('ed25519');
  const header = await signMessage(Buffer.from('From: a@example.org\\r\\nSubject: hi\\r\\n\\r\\nHello\\r\\n'), { domain: 'example.org', selector: 's1', privateKey });
  console.log(JSON.stringify({ found, header }));
})();
`,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { found, header } = JSON.parse(r.stdout) as { found: Record<string, unknown>; header: string };
    expect(found).toEqual(Object.fromEntries(Object.keys(ENTRY_POINTS).map((spec) => [spec, { type: 'function', same: true }])));
    expect(header).toMatch(/^DKIM-Signature: v=1; a=ed25519-sha256; .*d=example\.org; s=s1;/s);
  });

  it('type-check with tsc --strict (no skipLibCheck) under nodenext and under bundler resolution', async () => {
    const imports = Object.keys(ENTRY_POINTS)
      .map((spec, i) => `import * as m${i} from '${spec}';`)
      .join('\n');
    const source = `${imports}
import { type VerificationResult, type SignatureOptions, DnsKeyResolver, verifyMessage } from '@inkan/dkim-core';
import type { KeyStore } from '@inkan/keytool/store';
export const loaded = [${Object.keys(ENTRY_POINTS)
      .map((_, i) => `m${i}`)
      .join(', ')}];
export const options: SignatureOptions = { domain: 'example.org', selector: 's', privateKey: '...' };
const resolver = new DnsKeyResolver({ servers: ['127.0.0.1:53'], timeout: 1000 });
export async function check(message: Buffer): Promise<VerificationResult['result'][]> {
  return (await verifyMessage(message, { resolver })).map((r) => r.result);
}
export type Store = KeyStore;
// @ts-expect-error: the result vocabulary is closed
export const wrong: VerificationResult['result'] = 'ok';
`;
    writeFileSync(join(project, 'types.mts'), source);
    expect(await tsc(project, ['types.mts'], { module: 'NodeNext', moduleResolution: 'NodeNext' })).toBe('');
    writeFileSync(join(project, 'types.ts'), source);
    expect(await tsc(project, ['types.ts'], { module: 'ESNext', moduleResolution: 'Bundler' })).toBe('');
  });

  it('LF-only mail is signed as it travels (CRLF) and an LF copy of a signed message verifies', async () => {
    writeFileSync(join(project, 'lf.eml'), LF_MESSAGE);
    const r = await node(
      'lf.mjs',
      `import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { signMessage, verifyMessage, MemoryKeyResolver } from '@inkan/dkim-core';
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const p = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
const resolver = new MemoryKeyResolver({ 'lf._domainkey.example.org': 'v=DKIM1; k=rsa; p=' + p });
const lf = readFileSync('lf.eml');
const header = await signMessage(lf, { domain: 'example.org', selector: 'lf', privateKey });
const asSent = Buffer.from((header + lf.toString('latin1')).replace(/\\r?\\n/g, '\\r\\n'), 'latin1');
const lfCopy = Buffer.from(asSent.toString('latin1').replace(/\\r\\n/g, '\\n'), 'latin1');
const verdict = async (m, o = {}) => (await verifyMessage(m, { resolver, ...o })).map((x) => x.result).join();
console.log(JSON.stringify({ crlf: await verdict(asSent), lf: await verdict(lfCopy), asIs: await verdict(lfCopy, { lineEndings: 'as-is' }) }));
`,
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ crlf: 'pass', lf: 'pass', asIs: 'fail' });
  });

  it('npx inkan-keytool genkey writes into a folder it creates (0700), and a record inkan verify --keys reads', async () => {
    const folder = join(project, 'keys', 'example.org');
    const r = await runProgram(
      'npx',
      ['--no-install', 'inkan-keytool', 'genkey', '--domain', 'example.org', '--selector', 'sel1', '--outdir', folder],
      { cwd: project, env, timeoutMs: 60_000 },
    );
    expect(r.stderr).toMatch(/created .*keys\/example\.org/i);
    expect(r.code).toBe(0);
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    expect(statSync(join(folder, 'sel1.private')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(folder, 'sel1.txt'), 'utf8')).toMatch(
      /^sel1\._domainkey\.example\.org\.\tIN\tTXT\t\( "v=DKIM1; k=rsa; t=s; "/,
    );

    writeFileSync(join(project, 'lf.eml'), LF_MESSAGE);
    const signed = await runProgram(
      'npx',
      ['--no-install', 'inkan', 'sign', '-d', 'example.org', '-s', 'sel1', '-k', join(folder, 'sel1.private'), 'lf.eml'],
      { cwd: project, env, timeoutMs: 60_000 },
    );
    expect(signed.stderr).toBe('');
    writeFileSync(join(project, 'lf-signed.eml'), signed.stdout);
    const verified = await runProgram('npx', ['--no-install', 'inkan', 'verify', '--keys', join(folder, 'sel1.txt'), 'lf-signed.eml'], {
      cwd: project,
      env,
      timeoutMs: 60_000,
    });
    expect(verified.stdout).toMatch(/^lf-signed\.eml\n\s+dkim\s+pass\s+example\.org\s+sel1\s+rsa-sha256\s+2048-bit$/m);
    expect(verified.code).toBe(0);

    const help = await runProgram('npx', ['--no-install', 'inkan-keytool', 'testkey', '--help'], { cwd: project, env });
    expect(help.stdout).toMatch(/Examples:/);
  });

  it('keytool without pg and ioredis: loads, and a store names the package to install', async () => {
    // keytool's own dependencies only, copied out of the install (milterd there depends on the drivers).
    const bare = join(work, 'bare');
    for (const pkg of ['@inkan/keytool', '@inkan/dkim-core', 'commander']) {
      cpSync(join(project, 'node_modules', pkg), join(bare, 'node_modules', pkg), { recursive: true });
    }
    writeFileSync(join(bare, 'package.json'), JSON.stringify({ name: 'bare', private: true, type: 'commonjs' }));
    const r = await node(
      'check.js',
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
    const list = await runProgram(process.execPath, [keytool, 'store', 'list', '--store', 'postgresql://inkan@127.0.0.1/mail'], {
      cwd: bare,
      env,
      timeoutMs: 60_000,
    });
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(/^inkan-keytool: a postgresql:\/\/ store needs the pg package, which is not installed: npm install pg /);
  });

  it('keytool ships the PostgreSQL migration, and store init --print reads it from there (no pg needed)', async () => {
    const sql = join(project, 'node_modules', '@inkan', 'keytool', 'sql');
    expect(readdirSync(sql).sort()).toEqual(['001_dkim_tables.sql', 'grants.sql']);
    const shipped = readFileSync(join(sql, '001_dkim_tables.sql'), 'utf8');
    const print = (uri: string) =>
      runProgram('npx', ['--no-install', 'inkan-keytool', 'store', 'init', '--print', '--store', uri], {
        cwd: project,
        env,
        timeoutMs: 60_000,
      });
    const plain = await print('postgresql://127.0.0.1/mail');
    expect([plain.code, plain.stderr]).toEqual([0, '']);
    expect(plain.stdout).toBe(shipped);
    const named = await print('postgresql://127.0.0.1/mail?keys=k&signing=s&hosts=h&channel=c');
    expect(named.stdout).toBe(
      shipped
        .replace(
          /"dkim_(keys|signing|internal_hosts)(_notify)?"/g,
          (_m, t: string, n: string | undefined) => `"${t === 'internal_hosts' ? 'h' : (t as string)[0]}${n ?? ''}"`,
        )
        .replace(/'inkan_dkim'/g, "'c'")
        .replace('listening on inkan_dkim.', 'listening on c.'),
    );
  });
});

describe('the README examples, verbatim from the packed READMEs', () => {
  const readme = (name: string) => codeBlocks(readFileSync(join(project, 'node_modules', name, 'README.md'), 'utf8'));
  /** Each example runs in a folder of its own, with the files the README says it reads. */
  function exampleFolder(name: string): string {
    const dir = join(project, 'examples', name.replace('@inkan/', ''));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'message.eml'), LF_MESSAGE);
    return dir;
  }
  /** Run a shell block's commands (npm install lines are what the tarball install did). */
  async function shell(code: string, cwd: string): Promise<void> {
    for (const line of code.split('\n').filter((l) => l.trim() && !l.startsWith('#'))) {
      if (/^npm install @inkan\/[a-z-]+$/.test(line)) continue;
      const [command, ...args] = line.split(/\s+/);
      const r = await runProgram(command as string, args, { cwd, env, timeoutMs: 60_000 });
      expect(r.code, `${line}\n${r.stderr}`).toBe(0);
    }
  }
  /** A JS or TS block: type-checked strictly as TypeScript (nodenext), then run as an ES module. */
  async function script(code: string, cwd: string, file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    writeFileSync(join(cwd, `${file}.mts`), code);
    expect(await tsc(cwd, [`${file}.mts`], { module: 'NodeNext', moduleResolution: 'NodeNext', noUnusedLocals: false })).toBe('');
    return node(`${file}.mjs`, code, cwd);
  }

  it('@inkan/keytool and @inkan/dkim-core: genkey, sign, verify against the record genkey wrote', async () => {
    const dir = exampleFolder('@inkan/dkim-core');
    const keytool = readme('@inkan/keytool');
    expect(keytool.map((b) => b.lang)).toEqual(['sh']);
    await shell((keytool[0] as { code: string }).code, dir);
    expect(existsSync(join(dir, 'hoge.private'))).toBe(true);

    const blocks = readme('@inkan/dkim-core');
    expect(blocks.map((b) => b.lang)).toEqual(['sh', 'js', 'js', '']);
    await shell((blocks[0] as { code: string }).code, dir);
    const sign = await script((blocks[1] as { code: string }).code, dir, 'sign');
    expect(sign.stderr).toBe('');
    expect(readFileSync(join(dir, 'signed.eml'), 'latin1')).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; .*d=example\.org; s=hoge;/s);
    const verify = await script((blocks[2] as { code: string }).code, dir, 'verify');
    expect(verify.stderr).toBe('');
    expect(verify.stdout).toMatch(
      /^Authentication-Results: mx\.example\.org;\s+dkim=pass \(2048-bit key\)\s+header\.d=example\.org [\s\S]*header\.s=hoge/,
    );
    // the zone-style keys file block is a data file: FileKeyResolver reads it
    const keys = await node(
      'keys.mjs',
      `import { FileKeyResolver } from '@inkan/dkim-core';\nFileKeyResolver.fromText(${JSON.stringify((blocks[3] as { code: string }).code)});\nconsole.log('read');\n`,
      dir,
    );
    expect(keys.stdout.trim()).toBe('read');
  });

  it('@inkan/domainkeys-verify: one pass for DKIM and DomainKeys', async () => {
    const dir = exampleFolder('@inkan/domainkeys-verify');
    // a message with neither signature: the example prints no results and no error
    writeFileSync(join(dir, 'received.eml'), LF_MESSAGE);
    const blocks = readme('@inkan/domainkeys-verify');
    expect(blocks.map((b) => b.lang)).toEqual(['ts']);
    const r = await script((blocks[0] as { code: string }).code, dir, 'dk');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('0 mx.example.net; none');
  });

  it('@inkan/milterd: the dkim-filter command line is read as it stands (checked with --check-config: it names system paths and a run user)', async () => {
    const blocks = readme('@inkan/milterd');
    expect(blocks.map((b) => b.lang)).toEqual(['sh']);
    const words = (blocks[0] as { code: string }).code.replace(/\\\n/g, ' ').trim().split(/\s+/);
    expect(words[0]).toBe('inkan-milterd');
    const r = await runProgram('npx', ['--no-install', ...words, '--check-config'], { cwd: project, env, timeoutMs: 60_000 });
    // every option is known and valid; what stops it is the key file that this machine lacks
    expect(r.stderr.split('\n').filter((l) => l && !/Syslog yes, but there is no \/dev\/log/.test(l))).toEqual([
      'inkan-milterd: key hoge: key file /etc/mail/hoge.private: ENOENT',
    ]);
    expect(r.code).toBe(78);
  });

  it('@inkan/milter-protocol: the filter, driven by the MTA-side example; the config lines', async () => {
    const dir = exampleFolder('@inkan/milter-protocol');
    const blocks = readme('@inkan/milter-protocol');
    expect(blocks.map((b) => b.lang)).toEqual(['ts', 'ts', 'ts']);
    const [filterCode, configCode, clientCode] = blocks.map((b) => b.code) as [string, string, string];
    writeFileSync(join(dir, 'filter.mts'), filterCode);
    expect(await tsc(dir, ['filter.mts'], { module: 'NodeNext', moduleResolution: 'NodeNext' })).toBe('');
    writeFileSync(join(dir, 'filter.mjs'), filterCode);
    let filter: ChildProcess | undefined;
    let filterErr = '';
    try {
      filter = spawn(process.execPath, ['filter.mjs'], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
      filter.stderr?.on('data', (d: Buffer) => {
        filterErr += d.toString('latin1');
      });
      await waitFor(() => existsSync(join(dir, 'milter.sock')), 'the example filter to listen on milter.sock', 300);
      const client = await script(clientCode, dir, 'client');
      expect(client.stderr).toBe('');
      expect(client.stdout).toMatch(/^\{ stage: 'endOfMessage', reply: \{ type: 'continue' \} \}\n/);
      expect(client.stdout).toMatch(/type: 'addHeader',\s+name: 'X-Checked'/);
    } finally {
      filter?.kill('SIGTERM');
    }
    expect(filterErr).not.toMatch(/Error/);

    const config = await script(configCode, dir, 'config');
    expect(config.stderr).toBe('');
    const claimed = configCode
      .split('\n')
      .filter((l) => l.startsWith('// '))
      .map((l) => l.slice(3));
    expect(config.stdout.trim().split('\n')).toEqual(claimed);
  });
});
