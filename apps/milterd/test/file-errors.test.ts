/**
 * Errors name files and lines, never their content: a file that is something else (here a
 * shadow-like file with fake password hashes) named as the configuration (-x), KeyTable,
 * SigningTable, InternalHosts, ExternalIgnoreList or PeerList is refused with its name and
 * line, and no part of its lines reaches stdout or stderr, with --check-config and at start-up.
 * Values given on the command line are still quoted back (they are the user's own typing).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeKeys, runProgram, tempDir } from '@inkan/testbed';
import { EX_CONFIG } from '../src/index.js';
import { expectRefusedConfigs } from './helpers.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'inkan-milterd.js');
const run = (args: string[]) =>
  runProgram(process.execPath, [BIN, ...args], { timeoutMs: 30_000, env: { ...process.env, INKAN_LOG_LEVEL: 'trace' } });

/** Text of the fake shadow file that must never be shown: every piece carries CANARY, or is a hash marker. */
const SECRETS = ['CANARY', '$y$', 'j9T', '$6$', 'root:', '19700', '/home/joe', '/bin/bash'];
const SHADOW = [
  'root:$y$j9T$CANARYsaltQx1Yz$CANARYhashAbCdEfGhIjKlMnOpQrStUvWxYz0123456789:19700:0:99999:7:::',
  'daemon:*:19700:0:99999:7:::',
  'alice:$6$CANARYsalt6$CANARYhash6.AbCdEfGhIjKlMnOp/QrStUv:19700:0:99999:7:::',
  // A passwd-like line with spaces (several fields), and a "name value" line with a secret value.
  'joe:x:1000:1000:Joe CANARYgecos,,,:/home/joe:/bin/bash',
  'password CANARY$y$j9T$tokenvalue',
  '',
].join('\n');

let dir: string;
let shadow: string;
let keyTable: string;
let keyFile: string;

beforeAll(() => {
  dir = tempDir('inkan-file-errors-');
  shadow = join(dir, 'shadow');
  writeFileSync(shadow, SHADOW, { mode: 0o600 });
  keyFile = join(dir, 'k.private');
  writeFileSync(keyFile, makeKeys().ed25519.pem, { mode: 0o600 });
  keyTable = join(dir, 'key.table');
  writeFileSync(keyTable, `k example.org:sel:${keyFile}\n`);
});

function expectNoSecrets(text: string, what: string): void {
  for (const secret of SECRETS) expect(text.includes(secret), `${what}: "${secret}" shown in:\n${text}`).toBe(false);
}

describe('files that are something else: named by file and line, their content never shown', () => {
  it('as -x, KeyTable, SigningTable, InternalHosts, ExternalIgnoreList and PeerList, with --check-config', async () => {
    const cases: [what: string, config: string, error: RegExp][] = [
      [
        'KeyTable',
        `KeyTable ${shadow}\nSigningTable ${keyTable}\n`,
        /shadow:1: KeyTable lines read "keyname domain:selector:\/path\/to\/key"/,
      ],
      ['SigningTable', `KeyTable ${keyTable}\nSigningTable refile:${shadow}\n`, /shadow:1: SigningTable lines read "pattern keyname"/],
      [
        'InternalHosts',
        `Domain example.org\nSelector sel\nKeyFile ${keyFile}\nInternalHosts ${shadow}\n`,
        /shadow:1: InternalHosts: not an address, a CIDR block or a host name/,
      ],
      [
        'ExternalIgnoreList',
        `Mode v\nExternalIgnoreList ${shadow}\n`,
        /shadow:1: ExternalIgnoreList: not an address, a CIDR block or a host name/,
      ],
      ['MilterPeers', `Mode v\nMilterPeers ${shadow}\n`, /shadow:1: MilterPeers: not an address, a CIDR block or a host name/],
    ];
    await expectRefusedConfigs({
      dir,
      configs: cases,
      extra: [['-x', ['-x', shadow], /shadow:1: this line is not an option/]],
      code: EX_CONFIG,
      inspect: expectNoSecrets,
      env: { INKAN_LOG_LEVEL: 'trace' },
    });
  });

  it('lines further down: key data or a passwd-like line in a KeyTable, a secret value in the configuration and in a SigningTable', async () => {
    const lines = SHADOW.split('\n');
    const gecos = join(dir, 'gecos.table');
    writeFileSync(gecos, `${lines[3]}\n`);
    const named = join(dir, 'named.conf');
    writeFileSync(named, `Mode v\n${lines[4]}\n`);
    const signing = join(dir, 'signing.table');
    writeFileSync(signing, `*@example.org k\n${lines[4]}\n`);
    const inline = join(dir, 'inline.table');
    writeFileSync(inline, 'k example.org:sel:MC4CAQAwBQYDK2VwBCIEICANARYkeydataAbCdEfGhIjKlMnOpQrStUv\n');
    const runs: [string, string, RegExp][] = [
      [
        'key data written into a KeyTable',
        `KeyTable ${inline}\nSigningTable ${keyTable}\n`,
        /inline\.table:1: KeyTable: the key must be named by its file's path/,
      ],
      [
        'passwd-like KeyTable',
        `KeyTable ${gecos}\nSigningTable ${keyTable}\n`,
        /gecos\.table:1: KeyTable: the domain \(before the first ":"\) is not a domain name or %/,
      ],
      [
        'SigningTable naming a secret',
        `KeyTable ${keyTable}\nSigningTable ${signing}\n`,
        /signing\.table:2: SigningTable names a key, which KeyTable does not have/,
      ],
    ];
    const confs = runs.map(([what, text]) => {
      const conf = join(dir, `${what.replace(/\W+/g, '-')}.conf`);
      writeFileSync(conf, `RequireSafeKeys no\n${text}`);
      return conf;
    });
    const results = await Promise.all([...confs.map((conf) => run(['-x', conf, '--check-config'])), run(['-x', named, '--check-config'])]);
    for (const [i, [what, , why]] of runs.entries()) {
      const r = results[i] as Awaited<ReturnType<typeof run>>;
      expect(r.code, `${what}: ${r.stderr}`).toBe(EX_CONFIG);
      expect(r.stderr, what).toMatch(why);
      expectNoSecrets(r.stdout + r.stderr, what);
    }
    // An option-like name may be named; its value never is.
    const r = results[runs.length] as Awaited<ReturnType<typeof run>>;
    expect(r.code).toBe(EX_CONFIG);
    expect(r.stderr).toMatch(/named\.conf:2: unknown option "password"/);
    expectNoSecrets(r.stdout + r.stderr, 'name value line');
  });

  it('at start-up (no --check-config): -x and InternalHosts; a bad value on the command line is still quoted back', async () => {
    const port = await freePort();
    const conf = join(dir, 'start.conf');
    writeFileSync(
      conf,
      `Socket inet:${port}@127.0.0.1\nRequireSafeKeys no\nDomain example.org\nSelector sel\nKeyFile ${keyFile}\nInternalHosts ${shadow}\n`,
    );
    const [asConfig, asHosts, flag] = await Promise.all([
      run(['-x', shadow, '-p', `inet:${port}@127.0.0.1`]),
      run(['-x', conf]),
      run(['-x', conf, '-T', 'soon']),
    ]);
    expect(asConfig.code, asConfig.stderr).toBe(EX_CONFIG);
    expect(asConfig.stderr).toMatch(/shadow:1: this line is not an option/);
    expectNoSecrets(asConfig.stdout + asConfig.stderr, 'start with -x shadow');
    expect(asHosts.code, asHosts.stderr).toBe(EX_CONFIG);
    expect(asHosts.stderr).toMatch(/shadow:1: InternalHosts: not an address, a CIDR block or a host name/);
    expectNoSecrets(asHosts.stdout + asHosts.stderr, 'start with InternalHosts shadow');
    expect(flag.code).toBe(EX_CONFIG);
    expect(flag.stderr).toMatch(/command line \(DNSTimeout\): DNSTimeout takes a whole number, not "soon"/);
  });
});
