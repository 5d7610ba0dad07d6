/**
 * Key problems that OpenDKIM refuses and inkan-milterd now refuses the same way, both in
 * `--check-config` and at start-up (issue #17), against the real program:
 * - SignatureAlgorithm (or -S) names one algorithm and a key is of the other type (it signed
 *   with the key's own algorithm before); without SignatureAlgorithm each key keeps its own.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKeys, runProgram, tempDir, type TestKeys } from '@inkan/testbed';
import { startMilterd } from './helpers.js';
import { EX_CONFIG } from '../src/index.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'inkan-milterd.js');

let keys: TestKeys;
let dir: string;
const running: { stop(): Promise<unknown> }[] = [];

beforeAll(() => {
  keys = makeKeys();
  dir = tempDir('inkan-keys-');
});

afterAll(async () => {
  for (const r of running.reverse()) await r.stop().catch(() => {});
});

function config(name: string, lines: string[]): string {
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, [`Socket inet:0@127.0.0.1`, 'AllowRoot yes', 'RequireSafeKeys no', ...lines, ''].join('\n'));
  return conf;
}

/** --check-config and a start-up both refuse `args` with exit code EX_CONFIG and `error`. */
async function refusedBoth(args: string[], error: RegExp): Promise<void> {
  const check = await runProgram(process.execPath, [BIN, ...args, '--check-config'], { timeoutMs: 30_000 });
  expect(check.code, check.stdout + check.stderr).toBe(EX_CONFIG);
  expect(check.stderr).toMatch(error);
  const started = await startMilterd(args, { expectExit: true });
  running.push(started);
  expect(await started.exited).toBe(EX_CONFIG);
  expect(started.output()).toMatch(error);
}

describe('SignatureAlgorithm and the key type', () => {
  let rsaFile: string;
  let edFile: string;
  beforeAll(() => {
    rsaFile = join(dir, 'rsa.private');
    edFile = join(dir, 'ed.private');
    writeFileSync(rsaFile, keys.rsa2048.pem, { mode: 0o600 });
    writeFileSync(edFile, keys.ed25519.pem, { mode: 0o600 });
  });

  it('SignatureAlgorithm ed25519-sha256 with an RSA key: refused by --check-config and at start-up', async () => {
    const conf = config('ed-alg-rsa-key', ['Domain example.org', 'Selector one', `KeyFile ${rsaFile}`, 'SignatureAlgorithm ed25519-sha256']);
    await refusedBoth(['-x', conf], /SignatureAlgorithm is ed25519-sha256, but .*rsa\.private is an RSA key/);
  });

  it('-S rsa-sha256 with an Ed25519 key in a KeyTable: refused, naming the KeyTable line', async () => {
    const keyTable = join(dir, 'KeyTable');
    const signingTable = join(dir, 'SigningTable');
    writeFileSync(keyTable, `ed example.org:ed:${edFile}\n`);
    writeFileSync(signingTable, 'example.org ed\n');
    const conf = config('keytable', [`KeyTable ${keyTable}`, `SigningTable ${signingTable}`]);
    await refusedBoth(['-x', conf, '-S', 'rsa-sha256'], /KeyTable:1: SignatureAlgorithm is rsa-sha256, but .*ed\.private is an Ed25519 key/);
  });

  it('without SignatureAlgorithm, an RSA and an Ed25519 key both pass (each signs with its own)', async () => {
    const conf = config('both', ['Domain example.org', `SigningKeys rsa:${rsaFile}, ed:${edFile}`]);
    const check = await runProgram(process.execPath, [BIN, '-x', conf, '--check-config'], { timeoutMs: 30_000 });
    expect(check.code, check.stderr).toBe(0);
    const matching = await runProgram(process.execPath, [BIN, '-x', config('matching', ['Domain example.org', 'Selector one', `KeyFile ${edFile}`, 'SignatureAlgorithm ed25519-sha256']), '--check-config'], { timeoutMs: 30_000 });
    expect(matching.code, matching.stderr).toBe(0);
  });
});
