/**
 * The package as a user gets it: `pnpm pack`, installed with npm into a fresh project
 * outside the workspace, imported from plain JavaScript and type-checked from TypeScript.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runProgram, tempDir } from '@inkan/testbed';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const workspace = resolve(packageDir, '..', '..');

/** pnpm as the test runner was started (pnpm exec sets npm_execpath), else from PATH. */
function pnpm(args: string[], cwd: string): string {
  const execPath = process.env.npm_execpath;
  if (execPath && /pnpm/.test(execPath)) return execFileSync(process.execPath, [execPath, ...args], { cwd, encoding: 'utf8' });
  return execFileSync('pnpm', args, { cwd, encoding: 'utf8' });
}

let project: string;

beforeAll(async () => {
  const out = tempDir('inkan-pack-');
  pnpm(['pack', '--pack-destination', out], packageDir);
  const tarball = readdirSync(out).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('pnpm pack made no tarball');
  project = join(out, 'user-project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  const r = await runProgram('npm', ['install', '--no-audit', '--no-fund', '--offline', join(out, tarball)], { cwd: project, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`npm install of the packed package failed: ${r.stderr}`);
}, 180_000);

describe('packed @inkan/dkim-core', () => {
  it('ships only dist and metadata', () => {
    const files = readdirSync(join(project, 'node_modules', '@inkan', 'dkim-core'));
    expect(files.sort()).toEqual(['LICENSE', 'README.md', 'dist', 'package.json']);
  });

  it('is importable from plain JavaScript (ESM) and signs and verifies', async () => {
    writeFileSync(
      join(project, 'use.mjs'),
      `import { generateKeyPairSync } from 'node:crypto';
import { signMessage, verifyMessage, MemoryKeyResolver, formatAuthenticationResults } from '@inkan/dkim-core';
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const p = publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64');
const message = Buffer.from('From: a@example.org\\r\\nSubject: packed\\r\\n\\r\\nHello\\r\\n');
const sig = await signMessage(message, { domain: 'example.org', selector: 'ed', privateKey });
const resolver = new MemoryKeyResolver({ 'ed._domainkey.example.org': 'v=DKIM1; k=ed25519; p=' + p });
const results = await verifyMessage(Buffer.concat([Buffer.from(sig), message]), { resolver });
console.log(formatAuthenticationResults('mx.example.org', results, { newline: '' }));
`,
    );
    const r = await runProgram(process.execPath, ['use.mjs'], { cwd: project });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^mx\.example\.org; dkim=pass .*header\.a=ed25519-sha256/);
  });

  it('type-checks from TypeScript through the exports map', async () => {
    writeFileSync(
      join(project, 'use.ts'),
      `import { type VerificationResult, type SignatureOptions, DnsKeyResolver, verifyMessage } from '@inkan/dkim-core';
const options: SignatureOptions = { domain: 'example.org', selector: 's', privateKey: '...' };
const resolver = new DnsKeyResolver({ servers: ['127.0.0.1:53'], timeout: 1000 });
export async function check(message: Buffer): Promise<VerificationResult['result'][]> {
  void options;
  return (await verifyMessage(message, { resolver })).map((r) => r.result);
}
// @ts-expect-error: the result vocabulary is closed
const wrong: VerificationResult['result'] = 'ok';
void wrong;
`,
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          noEmit: true,
          types: ['node'],
          typeRoots: [join(workspace, 'node_modules', '@types')],
        },
        files: ['use.ts'],
      }),
    );
    const tsc = join(workspace, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await runProgram(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, timeoutMs: 120_000 });
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.code).toBe(0);
  });
});
