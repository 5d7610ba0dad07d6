/**
 * Private keys are loaded by dkim-core's one loader, with one set of limits: RSA of 1024 to
 * 4096 bits or Ed25519, PEM, at most 64 KiB. milterd refuses anything else at --check-config
 * and at start-up (exit 78), for KeyFile and KeyTable alike, naming the file and quoting none of it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort, runProgram, tempDir } from '@inkan/testbed';
import { EX_CONFIG } from '../src/index.js';
import { expectRefusedConfigs } from './helpers.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'inkan-milterd.js');
let dir: string;
const files: Record<string, string> = {};
/** Lines of the PEM bodies written: none may appear in any output. */
const secrets: string[] = [];

function write(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  files[name] = path;
  return path;
}

function pemOf(key: ReturnType<typeof generateKeyPairSync>['privateKey'], type: 'pkcs8' | 'pkcs1' | 'sec1'): string {
  const pem = key.export({ format: 'pem', type } as never).toString();
  secrets.push(...pem.split('\n').filter((l) => l.length > 40 && !l.startsWith('-----')));
  return pem;
}

beforeAll(() => {
  dir = tempDir('inkan-key-limits-');
  chmodSync(dir, 0o755);
  // 4160 bits: over the 4096 limit, and quicker to make than 8192 (about 1.5 s against 7).
  write('big.private', pemOf(generateKeyPairSync('rsa', { modulusLength: 4160 }).privateKey, 'pkcs1'));
  write('small.private', pemOf(generateKeyPairSync('rsa', { modulusLength: 768 }).privateKey, 'pkcs8'));
  write('ec.private', pemOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'sec1'));
  write('notakey.private', 'these are not the keys you are looking for\n');
  write('huge.private', Buffer.alloc(100 * 1024, 'A'));
  write('public.private', generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString());
});

function expectNothingQuoted(output: string, label: string): void {
  for (const line of secrets) expect(output.includes(line), `${label}: key material in the output`).toBe(false);
  expect(output, label).not.toMatch(/looking for|AAAAAAAAAAAAAAAA|PRIVATE KEY-----|PUBLIC KEY-----/);
}

const refusals = (): [string, RegExp][] => [
  ['big', /big\.private is an RSA key of 4160 bits, over 4096, which verifiers do not use/],
  ['small', /small\.private is an RSA key of 768 bits, under 1024/],
  ['ec', /ec\.private holds a key of type ec; DKIM signs with rsa or ed25519/],
  ['notakey', /notakey\.private does not hold a PEM private key/],
  ['huge', /huge\.private is 102400 bytes, more than any private key \(at most 64 KiB\)/],
  ['public', /public\.private holds a public key, not a private key/],
];

describe('private key limits (dkim-core readPrivateKey)', () => {
  it('--check-config refuses each bad key, as KeyFile and through a KeyTable', async () => {
    const configs: [string, string, RegExp][] = [];
    for (const [name, error] of refusals()) {
      configs.push([`keyfile-${name}`, `Domain example.org\nSelector s\nKeyFile ${files[`${name}.private`]}\n`, error]);
      const table = join(dir, `${name}.keytable`);
      writeFileSync(table, `k example.org:s:${files[`${name}.private`]}\n`);
      const signing = join(dir, `${name}.signingtable`);
      writeFileSync(signing, '*@example.org k\n');
      configs.push([`keytable-${name}`, `KeyTable ${table}\nSigningTable refile:${signing}\n`, error]);
    }
    await expectRefusedConfigs({ dir, configs, code: EX_CONFIG, inspect: expectNothingQuoted });
  });

  it('start-up refuses them too: exit 78 before listening', async () => {
    const port = await freePort();
    const runs = await Promise.all(
      refusals().map(([name]) =>
        runProgram(
          process.execPath,
          [BIN, '-d', 'example.org', '-s', 's', '-k', files[`${name}.private`] as string, '-p', `inet:${port}@127.0.0.1`],
          {
            timeoutMs: 30_000,
            env: { ...process.env, INKAN_LOG_LEVEL: 'trace' },
          },
        ),
      ),
    );
    for (const [i, [name, error]] of refusals().entries()) {
      const r = runs[i] as Awaited<ReturnType<typeof runProgram>>;
      expect(r.code, `${name}: ${r.stderr}`).toBe(EX_CONFIG);
      expect(r.stderr, name).toMatch(error);
      expectNothingQuoted(r.stdout + r.stderr, name);
    }
  });
});
