/** `inkan selftest` against the private Postfix + inkan-milterd set-up used by the milterd tests. */
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dkimKeyRecord,
  type DnsServer,
  freePort,
  makeKeys,
  type MilterdProcess,
  type PostfixInstance,
  runProgram,
  startDnsmasq,
  startMilterd,
  startPostfix,
  tempDir,
} from '@inkan/testbed';

const here = dirname(fileURLToPath(import.meta.url));
const INKAN = resolve(here, '..', 'bin', 'inkan.js');

let dns: DnsServer;
let postfix: PostfixInstance;
let milterd: MilterdProcess;

beforeAll(async () => {
  const keys = makeKeys();
  const dir = tempDir('inkan-selftest-');
  writeFileSync(join(dir, 'rsa.private'), keys.rsa2048.pem, { mode: 0o600 });
  dns = await startDnsmasq({ 'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048) });
  const port = await freePort();
  milterd = await startMilterd(['-p', `inet:${port}@127.0.0.1`, '-d', 'example.org', '-s', 'rsa', '-k', join(dir, 'rsa.private')]);
  // No relayhost: the MTA delivers inkan-selftest@[127.0.0.2] itself, to 127.0.0.2:25.
  postfix = await startPostfix({ smtpdMilters: `inet:127.0.0.1:${port}`, mainCf: { relayhost: '' } });
});

afterAll(async () => {
  await postfix?.stop();
  await milterd?.stop();
  await dns?.stop();
});

describe.runIf(process.getuid?.() === 0)('inkan selftest (needs root for port 25)', () => {
  it('the message comes back signed and the signature verifies', async () => {
    const r = await runProgram(
      process.execPath,
      [INKAN, 'selftest', '--smtp', `127.0.0.1:${postfix.smtpPort}`, '--domain', 'example.org', '--dns', dns.server, '--timeout', '30000'],
      {
        timeoutMs: 90_000,
      },
    );
    expect(r.stdout, `${r.stderr}\n${postfix.maillog()}`).toMatch(/ok {3}the message came back through the MTA/);
    expect(r.stdout).toMatch(/ok {3}rsa-sha256 signature d=example\.org s=rsa: pass/);
    expect(r.stdout).toMatch(/selftest passed/);
    expect(r.code).toBe(0);
  });

  it('a key missing from DNS (NXDOMAIN): code key-not-found, and the hint says to publish it', async () => {
    const empty = await startDnsmasq({}, { zones: ['example.org'] });
    try {
      const args = [
        'selftest',
        '--smtp',
        `127.0.0.1:${postfix.smtpPort}`,
        '--domain',
        'example.org',
        '--dns',
        empty.server,
        '--timeout',
        '30000',
      ];
      const text = await runProgram(process.execPath, [INKAN, ...args], { timeoutMs: 90_000 });
      expect(text.code, `${text.stdout}\n${text.stderr}`).toBe(1);
      expect(text.stdout).toMatch(/rsa-sha256 signature d=example\.org s=rsa: permerror/);
      expect(text.stdout).toMatch(/Publish the key: inkan-keytool record --key KEYFILE --selector rsa --domain example\.org/);
      const json = await runProgram(process.execPath, [INKAN, ...args, '--json'], { timeoutMs: 90_000 });
      expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, results: [{ result: 'permerror', code: 'key-not-found' }] });
    } finally {
      await empty.stop();
    }
  });

  it('says what to check when the message comes back unsigned', async () => {
    const r = await runProgram(
      process.execPath,
      [INKAN, 'selftest', '--json', '--smtp', `127.0.0.1:${postfix.smtpPort}`, '--domain', 'unsigned.example', '--timeout', '30000'],
      {
        timeoutMs: 90_000,
      },
    );
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ sent: true, returned: true, signatures: 0, ok: false });
  });

  it('an MTA that is not there is reported, not thrown', async () => {
    const port = await freePort();
    const r = await runProgram(process.execPath, [
      INKAN,
      'selftest',
      '--smtp',
      `127.0.0.1:${port}`,
      '--sink',
      '127.0.0.3:25',
      '--timeout',
      '5000',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL cannot talk to 127\.0\.0\.1:\d+/);
  });
});
