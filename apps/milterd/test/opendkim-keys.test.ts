/**
 * Key problems that OpenDKIM refuses and inkan-milterd now refuses the same way, both in
 * `--check-config` and at start-up (issue #17), against the real program:
 * - SignatureAlgorithm (or -S) names one algorithm and a key is of the other type (it signed
 *   with the key's own algorithm before); without SignatureAlgorithm each key keeps its own.
 * - a key that root can read but the user milterd runs as (UserID) cannot: it loaded at
 *   start-up and failed at the first reload. Started as root without UserID, milterd falls
 *   back to nobody; there the same finding is a warning (a first try as root must start).
 *   The tests run as root, so the key is chowned and chmodded for real.
 */
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKeys, runProgram, tempDir, type TestKeys } from '@inkan/testbed';
import { resolveRunAs } from '../src/privileges.js';
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
  const started = await startMilterd(args, { ready: 'none' });
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
    const conf = config('ed-alg-rsa-key', [
      'Domain example.org',
      'Selector one',
      `KeyFile ${rsaFile}`,
      'SignatureAlgorithm ed25519-sha256',
    ]);
    await refusedBoth(['-x', conf], /SignatureAlgorithm is ed25519-sha256, but .*rsa\.private is an RSA key/);
  });

  it('-S rsa-sha256 with an Ed25519 key in a KeyTable: refused, naming the KeyTable line', async () => {
    const keyTable = join(dir, 'KeyTable');
    const signingTable = join(dir, 'SigningTable');
    writeFileSync(keyTable, `ed example.org:ed:${edFile}\n`);
    writeFileSync(signingTable, 'example.org ed\n');
    const conf = config('keytable', [`KeyTable ${keyTable}`, `SigningTable ${signingTable}`]);
    await refusedBoth(
      ['-x', conf, '-S', 'rsa-sha256'],
      /KeyTable:1: SignatureAlgorithm is rsa-sha256, but .*ed\.private is an Ed25519 key/,
    );
  });

  it('without SignatureAlgorithm, an RSA and an Ed25519 key both pass (each signs with its own)', async () => {
    const conf = config('both', ['Domain example.org', `SigningKeys rsa:${rsaFile}, ed:${edFile}`]);
    const check = await runProgram(process.execPath, [BIN, '-x', conf, '--check-config'], { timeoutMs: 30_000 });
    expect(check.code, check.stderr).toBe(0);
    const matching = await runProgram(
      process.execPath,
      [
        BIN,
        '-x',
        config('matching', ['Domain example.org', 'Selector one', `KeyFile ${edFile}`, 'SignatureAlgorithm ed25519-sha256']),
        '--check-config',
      ],
      { timeoutMs: 30_000 },
    );
    expect(matching.code, matching.stderr).toBe(0);
  });
});

describe('a key the run user cannot read', () => {
  it('UserID nobody, key root 0600: refused by --check-config and at start-up (without UserID: a warning); chowned to nobody it passes', async () => {
    const nobody = resolveRunAs('nobody');
    // A directory everyone may enter, so that only the key's own mode decides.
    const open = join(dir, 'open');
    mkdirSync(open, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const keyFile = join(open, 'root-only.private');
    writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
    chownSync(keyFile, 0, 0);
    const lines = ['Domain example.org', 'Selector one', `KeyFile ${keyFile}`, 'UserID nobody'];
    const conf = join(dir, 'root-only.conf');
    // RequireSafeKeys stays on (root-owned 0600 is a safe key); AllowRoot does not matter with UserID.
    writeFileSync(conf, ['Socket inet:0@127.0.0.1', ...lines, ''].join('\n'));
    await refusedBoth(
      ['-x', conf],
      /key file .*root-only\.private cannot be read by nobody \(uid \d+\), the user milterd runs as after start/,
    );
    // No UserID: started as root, milterd falls back to nobody: the same finding, as a warning.
    const noUser = join(dir, 'root-only-no-user.conf');
    writeFileSync(noUser, ['Socket inet:0@127.0.0.1', ...lines.slice(0, 3), ''].join('\n'));
    const warned = await runProgram(process.execPath, [BIN, '-x', noUser, '--check-config'], { timeoutMs: 30_000 });
    expect(warned.code, warned.stdout + warned.stderr).toBe(0);
    expect(warned.stdout + warned.stderr).toMatch(
      /key file .*root-only\.private cannot be read by nobody \(uid \d+\), the user milterd runs as after start \(no UserID: nobody\).*set UserID/,
    );
    const started = await startMilterd(['-x', noUser]);
    running.push(started);
    expect(started.output()).toMatch(/"level":40.*cannot be read by nobody/);
    chownSync(keyFile, nobody.uid, nobody.gid);
    const check = await runProgram(process.execPath, [BIN, '-x', conf, '--check-config'], { timeoutMs: 30_000 });
    expect(check.code, check.stderr).toBe(0);
  });

  it('a directory on the way that the run user may not enter: refused, naming the directory', async () => {
    const closed = join(dir, 'closed');
    mkdirSync(closed, { mode: 0o700 });
    chmodSync(dir, 0o755);
    const keyFile = join(closed, 'key.private');
    writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o644 });
    const conf = config('closed', ['Domain example.org', 'Selector one', `KeyFile ${keyFile}`, 'UserID nobody']);
    await refusedBoth(['-x', conf], /cannot be read by nobody .*: it may not enter .*closed;/);
  });
});
