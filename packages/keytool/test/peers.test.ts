/**
 * keytool against real tools: named-checkzone reads our zone, dnsmasq serves it and dig
 * returns what we wrote, testkey judges records served by DNS, opendkim-testkey and
 * opendkim-genkey agree with us, dkimpy verifies what our keys sign.
 */
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsServer, dkimpyVerify, findProgram, freePort, runProgram, startDnsmasq, tempDir } from '@inkan/testbed';
import { signMessage } from '@inkan/dkim-core';
import { adspRecord, dmarcRecord, type GenkeyResult, genkey, main, sspRecord, splitTxtStrings } from '../src/index.js';

const DOMAIN = 'example.org';
let dir: string;
let rsa: GenkeyResult;
let ed: GenkeyResult;
let other: GenkeyResult;
let small: GenkeyResult;
let big: GenkeyResult;
let odk: { record: string; keyFile: string };
let dns: DnsServer;

/** The quoted strings of a zone record, as written. */
function zoneStrings(zone: string): string[] {
  return [...zone.matchAll(/"([^"]*)"/g)].map((m) => m[1] as string);
}

/** A public key with a random odd modulus of `bits` bits (no private half: only its size matters here). */
function rsaSpki(bits: number): string {
  const n = randomBytes(bits / 8);
  n[0] = (n[0] as number) | 0x80;
  n[n.length - 1] = (n[n.length - 1] as number) | 1;
  return createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: 'AQAB' }, format: 'jwk' })
    .export({ format: 'der', type: 'spki' })
    .toString('base64');
}

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'inkan-keytool', ...args], { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

beforeAll(async () => {
  dir = tempDir('inkan-keytool-');
  rsa = await genkey({ domain: DOMAIN, selector: 'hoge', outdir: dir });
  ed = await genkey({ domain: DOMAIN, selector: 'ed', type: 'ed25519', outdir: dir, testing: true });
  other = await genkey({ domain: DOMAIN, selector: 'other', outdir: dir, bits: 1024 });
  small = await genkey({ domain: DOMAIN, selector: 'small', outdir: dir, bits: 1024 });
  big = await genkey({ domain: DOMAIN, selector: 'big', outdir: dir, bits: 4096 });
  // A key pair made by OpenDKIM's own tool.
  const odkDir = join(dir, 'opendkim');
  await runProgram('mkdir', ['-p', odkDir]);
  const made = await runProgram(findProgram('opendkim-genkey') ?? 'opendkim-genkey', [
    '-D',
    odkDir,
    '-d',
    DOMAIN,
    '-s',
    'odk',
    '-b',
    '2048',
  ]);
  if (made.code !== 0) throw new Error(`opendkim-genkey failed: ${made.stderr}`);
  odk = { record: zoneStrings(readFileSync(join(odkDir, 'odk.txt'), 'utf8')).join(''), keyFile: join(odkDir, 'odk.private') };
  dns = await startDnsmasq({
    [`hoge._domainkey.${DOMAIN}`]: { strings: zoneStrings(rsa.zone) },
    [`ed._domainkey.${DOMAIN}`]: { strings: zoneStrings(ed.zone) },
    [`small._domainkey.${DOMAIN}`]: { strings: zoneStrings(small.zone) },
    [`big._domainkey.${DOMAIN}`]: { strings: zoneStrings(big.zone) },
    [`mismatch._domainkey.${DOMAIN}`]: { strings: zoneStrings(other.zone) },
    [`revoked._domainkey.${DOMAIN}`]: 'v=DKIM1; k=rsa; p=',
    [`broken._domainkey.${DOMAIN}`]: 'v=DKIM1; k=rsa; p=MIIB; p=AAAA',
    [`odk._domainkey.${DOMAIN}`]: odk.record,
    [`huge._domainkey.${DOMAIN}`]: { strings: splitTxtStrings(`v=DKIM1; k=rsa; p=${rsaSpki(5120)}`) },
    [`tiny._domainkey.${DOMAIN}`]: {
      strings: splitTxtStrings(
        `v=DKIM1; k=rsa; p=${generateKeyPairSync('rsa', { modulusLength: 768 }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`,
      ),
    },
  });
});

afterAll(async () => {
  await dns?.stop();
});

describe('zone output', () => {
  it('named-checkzone accepts a zone built from our records', async () => {
    const zone = [
      `$ORIGIN ${DOMAIN}.`,
      '$TTL 3600',
      `@ IN SOA ns.${DOMAIN}. hostmaster.${DOMAIN}. 1 7200 900 1209600 300`,
      `@ IN NS ns.${DOMAIN}.`,
      'ns IN A 127.0.0.1',
      rsa.zone,
      ed.zone,
      big.zone,
      ...[
        dmarcRecord({ domain: DOMAIN, policy: 'reject', rua: [`mailto:dmarc@${DOMAIN}`] }),
        adspRecord(DOMAIN, 'all'),
        sspRecord(DOMAIN),
      ].map(
        (r) =>
          `${r.name} IN TXT ${splitTxtStrings(r.value)
            .map((s) => `"${s}"`)
            .join(' ')}`,
      ),
      '',
    ].join('\n');
    const file = join(dir, 'zone.db');
    writeFileSync(file, zone);
    const checker = findProgram('named-checkzone');
    expect(checker, 'named-checkzone (bind9-utils)').toBeDefined();
    const r = await runProgram(checker as string, ['-i', 'local', DOMAIN, file]);
    expect(`${r.stdout}${r.stderr}`).toMatch(/OK/);
    expect(r.code).toBe(0);
  });

  it('dnsmasq serves our strings and dig returns the exact p= we wrote', async () => {
    for (const r of [rsa, ed, big]) {
      const name = `${r.privateKeyFile.split('/').pop()?.replace('.private', '')}._domainkey.${DOMAIN}`;
      const out = await runProgram(findProgram('dig') ?? 'dig', [
        '+short',
        '+time=2',
        '+tries=1',
        '@127.0.0.1',
        '-p',
        String(dns.port),
        'TXT',
        name,
      ]);
      const joined = [...out.stdout.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
      expect(joined).toBe(r.record);
      expect(joined.endsWith(`p=${r.key.p}`)).toBe(true);
    }
  });
});

describe('testkey against records served by DNS', () => {
  const dnsArg = () => ['--dns', dns.server, '--timeout', '2000'];

  it('good RSA key with its private key: exit 0', async () => {
    const r = await cli(['testkey', '-d', DOMAIN, '-s', 'hoge', '-k', rsa.privateKeyFile, ...dnsArg()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/hoge\._domainkey\.example\.org: good/);
    expect(r.stdout).toMatch(/key: rsa 2048 bits/);
    expect(r.stdout).toMatch(/matches .*: yes/);
  });
  it('good Ed25519 testing key, JSON output', async () => {
    const r = await cli(['--json', 'testkey', '-d', DOMAIN, '-s', 'ed', '-k', ed.privateKeyFile, ...dnsArg()]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'good', keyType: 'ed25519', testing: true, keyMatches: true });
  });
  it('a 4096-bit key published as several strings', async () => {
    const r = await cli(['--json', 'testkey', '-d', DOMAIN, '-s', 'big', '-k', big.privateKeyFile, ...dnsArg()]);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'good', keyBits: 4096, keyMatches: true });
    expect(JSON.parse(r.stdout).strings.length).toBeGreaterThan(2);
  });
  it('a 1024-bit key passes with a warning', async () => {
    const r = await cli(['--json', 'testkey', '-d', DOMAIN, '-s', 'small', ...dnsArg()]);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'good', keyBits: 1024, warnings: [expect.stringMatching(/2048 is recommended/)] });
  });
  it("keys that verifiers refuse, too small or too large: exit 1, with the verifiers' reason", async () => {
    const tiny = await cli(['--json', 'testkey', '-d', DOMAIN, '-s', 'tiny', ...dnsArg()]);
    expect(tiny.code).toBe(1);
    expect(JSON.parse(tiny.stdout)).toMatchObject({
      status: 'problem',
      keyBits: 768,
      problems: ['key too small (768 bits, minimum 1024)'],
    });
    const huge = await cli(['--json', 'testkey', '-d', DOMAIN, '-s', 'huge', ...dnsArg()]);
    expect(huge.code).toBe(1);
    expect(JSON.parse(huge.stdout)).toMatchObject({ status: 'problem', problems: [expect.stringMatching(/^key too large/)] });
  });
  it('mismatched key: exit 1', async () => {
    const r = await cli(['testkey', '-d', DOMAIN, '-s', 'mismatch', '-k', rsa.privateKeyFile, ...dnsArg()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not the public half/);
  });
  it('revoked key: exit 1', async () => {
    const r = await cli(['testkey', '-d', DOMAIN, '-s', 'revoked', ...dnsArg()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/revoked/);
  });
  it('broken syntax: exit 1', async () => {
    const r = await cli(['testkey', '-d', DOMAIN, '-s', 'broken', ...dnsArg()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/duplicate tag "p="/);
  });
  it('missing record: exit 1', async () => {
    const r = await cli(['testkey', '-d', DOMAIN, '-s', 'nothere', ...dnsArg()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no TXT record/);
  });
  it('DNS server down: exit 2', async () => {
    const port = await freePort();
    const r = await cli(['testkey', '-d', DOMAIN, '-s', 'hoge', '--dns', `127.0.0.1:${port}`, '--timeout', '300']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/could not check/);
  });
  it('warns about a private key file others can read', async () => {
    const leaky = join(dir, 'leaky.private');
    writeFileSync(leaky, readFileSync(rsa.privateKeyFile), { mode: 0o644 });
    const r = await cli(['--json', 'testkey', '-d', DOMAIN, '-s', 'hoge', '-k', leaky, ...dnsArg()]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).problems).toEqual([expect.stringMatching(/readable by others \(mode 0644\)/)]);
  });
});

describe('OpenDKIM agrees', () => {
  it('opendkim-testkey accepts our published record with our private key, and rejects a mismatch', async () => {
    const conf = join(dir, 'testkey.conf');
    writeFileSync(conf, `Nameservers 127.0.0.1@${dns.port}\n`);
    const tool = findProgram('opendkim-testkey') ?? 'opendkim-testkey';
    const good = await runProgram(tool, ['-d', DOMAIN, '-s', 'hoge', '-k', rsa.privateKeyFile, '-x', conf, '-vvv']);
    expect(`${good.stdout}${good.stderr}`).toMatch(/key OK/);
    expect(good.code).toBe(0);
    // opendkim-testkey compares only RSA private keys; for Ed25519 it checks the record alone.
    const edRecord = await runProgram(tool, ['-d', DOMAIN, '-s', 'ed', '-x', conf, '-vvv']);
    expect(`${edRecord.stdout}${edRecord.stderr}`).toMatch(/key OK/);
    expect(edRecord.code).toBe(0);
    const bad = await runProgram(tool, ['-d', DOMAIN, '-s', 'mismatch', '-k', rsa.privateKeyFile, '-x', conf, '-vvv']);
    expect(bad.code).not.toBe(0);
  });

  it('our testkey accepts a record and key made by opendkim-genkey', async () => {
    const r = await cli(['--json', 'testkey', '-d', DOMAIN, '-s', 'odk', '-k', odk.keyFile, '--dns', dns.server]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'good', keyMatches: true, keyBits: 2048 });
  });

  it('record prints the same p= for an opendkim-genkey (PKCS#1) key as OpenDKIM published', async () => {
    const r = await cli(['record', '-k', odk.keyFile, '-s', 'odk', '--format', 'txt']);
    const p = /p=([A-Za-z0-9+/=]+)/.exec(odk.record)?.[1];
    expect(r.stdout.replace(/" "/g, '')).toContain(`p=${p}`);
  });
});

describe('keys we generate sign mail that dkimpy verifies', () => {
  it('RSA and Ed25519 keys from genkey', async () => {
    const message = Buffer.from(`From: joe@${DOMAIN}\r\nTo: a@example.net\r\nSubject: keytool\r\n\r\nHello\r\n`);
    const files: string[] = [];
    for (const r of [rsa, ed]) {
      const sig = await signMessage(message, {
        domain: DOMAIN,
        selector: r === rsa ? 'hoge' : 'ed',
        privateKey: readFileSync(r.privateKeyFile),
      });
      const file = join(dir, `${r === rsa ? 'rsa' : 'ed'}-signed.eml`);
      writeFileSync(file, Buffer.concat([Buffer.from(sig), message]));
      files.push(file);
    }
    const verdicts = await dkimpyVerify(dns.port, files);
    for (const v of verdicts) expect(v.signatures, v.file).toEqual([expect.objectContaining({ pass: true })]);
  });
});
