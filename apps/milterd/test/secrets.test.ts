/**
 * Private keys never leave their files: no piece of a key's PEM body (nor of its DER in hex)
 * appears in inkan-milterd's log at any level (trace included), in its error messages, or in
 * --check-config's dump, across a start, signing, good and failed reloads, a corrupt key file,
 * and key files named where a configuration, a table or a host list belongs.
 */
import { createPrivateKey } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runTransaction } from '@inkan/milter-protocol';
import { freePort, makeKeys, runProgram, tempDir, type TestKey, type TestKeys, waitFor } from '@inkan/testbed';
import { EX_CONFIG } from '../src/index.js';
import { expectRefusedConfigs, startMilterd } from './helpers.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'inkan-milterd.js');
const TRACE = { ...process.env, INKAN_LOG_LEVEL: 'trace' };
let keys: TestKeys;
let dir: string;
let rsaFile: string;
let edFile: string;

beforeAll(() => {
  keys = makeKeys();
  dir = tempDir('inkan-secrets-');
  chmodSync(dir, 0o755);
  rsaFile = join(dir, 'rsa.private');
  edFile = join(dir, 'ed.private');
  // Readable by the account a root-started daemon drops to, so that reloads can read them.
  writeFileSync(rsaFile, keys.rsa2048.pem, { mode: 0o600 });
  writeFileSync(edFile, keys.ed25519.pem, { mode: 0o600 });
  if (process.getuid?.() === 0) {
    for (const f of [rsaFile, edFile]) chmodSync(f, 0o644);
  }
});

/** Every 16-character piece (step 4) of a key's PEM body and 24-hex-digit piece of its DER. */
function pieces(key: TestKey): string[] {
  const pemBody = key.pem
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('');
  const derHex = createPrivateKey(key.pem).export({ format: 'der', type: 'pkcs8' }).toString('hex');
  const out: string[] = [];
  for (let i = 0; i + 16 <= pemBody.length; i += 4) out.push(pemBody.slice(i, i + 16));
  for (let i = 0; i + 24 <= derHex.length; i += 8) out.push(derHex.slice(i, i + 24), derHex.slice(i, i + 24).toUpperCase());
  return out;
}

/** Fail with the piece found, if any piece of either key is in `text`. */
function expectNoKeyMaterial(text: string, what: string): void {
  expect(text.length, `${what}: nothing captured`).toBeGreaterThan(0);
  for (const key of [keys.rsa2048, keys.ed25519]) {
    const found = pieces(key).find((p) => text.includes(p));
    expect(found, `${what}: key material in the output`).toBeUndefined();
  }
  expect(text, what).not.toMatch(/PRIVATE KEY-----/);
}

const run = (args: string[]) => runProgram(process.execPath, [BIN, ...args], { timeoutMs: 30_000, env: TRACE });
const message = (subject: string) =>
  Buffer.from(`From: Joe <joe@example.org>\r\nTo: suzie@example.net\r\nSubject: ${subject}\r\n\r\nsecrets\r\n`);

describe('private keys in logs and error messages', () => {
  it('start, signing, a good reload and a reload failing on a corrupt key, at log level trace', async () => {
    // RequireSafeKeys no: as root the keys are 0644 so the dropped daemon can re-read them.
    const port = await freePort();
    const conf = join(dir, 'milterd.conf');
    writeFileSync(
      conf,
      `Socket inet:${port}@127.0.0.1\nDomain example.org\nSelector rsa\nKeyFile ${rsaFile}\nSigningKeys ed:${edFile}\nRequireSafeKeys no\nLogWhy yes\n`,
    );
    const milterd = await startMilterd(['-x', conf], { env: { INKAN_LOG_LEVEL: 'trace' } });
    try {
      const tx = await runTransaction(`inet:${port}@127.0.0.1`, {
        sender: 'joe@example.org',
        recipients: ['suzie@example.net'],
        message: message('signed'),
      });
      expect(tx.endOfMessage?.modifications.filter((m) => m.type === 'insertHeader')).toHaveLength(2);
      process.kill(milterd.pid, 'SIGHUP');
      await milterd.waitForOutput(/"msg":"configuration reloaded"/);
      // Corrupt, with most of the key still in the file: the error must not quote it.
      const lines = keys.rsa2048.pem.split('\n');
      writeFileSync(rsaFile, [...lines.slice(0, 10), 'not base64 at all!', ...lines.slice(10)].join('\n'));
      process.kill(milterd.pid, 'SIGHUP');
      await milterd.waitForOutput(/reload failed; keeping the previous configuration/);
      expect(milterd.output()).toMatch(/rsa\.private does not hold a PEM private key/);
      await runTransaction(`inet:${port}@127.0.0.1`, {
        sender: 'joe@example.org',
        recipients: ['suzie@example.net'],
        message: message('after'),
      });
      await waitFor(() => (milterd.output().match(/"msg":"signed"/g) ?? []).length === 2, 'second signed message logged');
    } finally {
      await milterd.stop();
      writeFileSync(rsaFile, keys.rsa2048.pem);
    }
    expect(milterd.output()).toMatch(/"level":20/); // debug lines too: nothing was filtered out
    expectNoKeyMaterial(milterd.output(), 'daemon log');
  });

  it('a corrupt key file at start: exit 78, the error names the file and quotes none of it', async () => {
    const corrupt = join(dir, 'corrupt.private');
    writeFileSync(corrupt, keys.rsa2048.pem.replace(/\n(.{8})/, '\n$1!!'), { mode: 0o600 });
    const r = await run(['-d', 'example.org', '-s', 'rsa', '-k', corrupt, '-p', `inet:${await freePort()}@127.0.0.1`]);
    expect(r.code).toBe(EX_CONFIG);
    expect(r.stderr).toMatch(/corrupt\.private does not hold a PEM private key/);
    expectNoKeyMaterial(r.stdout + r.stderr, 'corrupt key at start');
  });

  it('--check-config prints keys by path only', async () => {
    const conf = join(dir, 'check.conf');
    writeFileSync(conf, `Domain example.org\nSelector rsa\nKeyFile ${rsaFile}\nSigningKeys ed:${edFile}\nRequireSafeKeys no\n`);
    const r = await run(['-x', conf, '--check-config']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`KeyFile ${rsaFile}`);
    expect(r.stdout).toContain(`SigningKeys ed:${edFile}`);
    expectNoKeyMaterial(r.stdout + r.stderr, '--check-config');
  });

  it('a key file named as the configuration, a table, a list or a host list: refused without quoting it', async () => {
    const table = join(dir, 'key.table');
    writeFileSync(table, `k example.org:rsa:${rsaFile}\n`);
    const tableError = /rsa\.private: holds a private key, not a table or list: check the file name/;
    const cases: [string, string, RegExp][] = [
      ['KeyTable', `KeyTable ${rsaFile}\nSigningTable ${table}\n`, tableError],
      ['SigningTable', `KeyTable ${table}\nSigningTable refile:${rsaFile}\n`, tableError],
      ['Domain', `Domain ${rsaFile}\nSelector ed\nKeyFile ${edFile}\n`, tableError],
      ['InternalHosts', `Domain example.org\nSelector ed\nKeyFile ${edFile}\nInternalHosts ${rsaFile}\n`, tableError],
      ['ExternalIgnoreList', `Mode v\nExternalIgnoreList ${rsaFile}\n`, tableError],
      ['PeerList', `Mode v\nPeerList ${rsaFile}\n`, tableError],
      [
        'a key pasted into the configuration',
        `Domain example.org\nSelector rsa\nKeyFile ${keys.rsa2048.pem}`,
        /pasted\.conf: holds a private key, not a configuration/,
      ],
    ];
    await expectRefusedConfigs({
      dir,
      configs: cases,
      extra: [['-x key', ['-x', rsaFile], /rsa\.private: holds a private key, not a configuration/]],
      fileNames: { 'a key pasted into the configuration': 'pasted.conf' },
      code: EX_CONFIG,
      inspect: expectNoKeyMaterial,
      env: TRACE,
    });
  });
});
