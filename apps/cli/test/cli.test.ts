/**
 * `inkan` as a user runs it (the real bin in a child process), against real peers: keys from
 * dnsmasq, messages signed by dkimpy, Mail::DKIM and inkan, a running inkan-milterd and a
 * running OpenDKIM for milter-test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dkimKeyRecord,
  dkimpySign,
  dkimpyVerify,
  type DnsServer,
  findProgram,
  freePort,
  mailDkimDomainKeysSign,
  mailDkimSign,
  makeKeys,
  runProgram,
  startDnsmasq,
  startMilterdOnPort,
  tcpAccepting,
  tempDir,
  type TestKeys,
  waitFor,
} from '@inkan/testbed';
import { signMessage } from '@inkan/dkim-core';

const here = dirname(fileURLToPath(import.meta.url));
const INKAN = resolve(here, '..', 'bin', 'inkan.js');

let keys: TestKeys;
let dns: DnsServer;
let dir: string;
const children: ChildProcess[] = [];

const MESSAGE = Buffer.from(
  'From: Joe <joe@example.org>\nTo: Suzie <suzie@example.net>\nSubject: cli test\nDate: Sat, 28 Nov 2026 05:00:00 +0000\nMessage-ID: <cli@example.org>\n\nHello from the terminal.\n',
);
const crlf = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');

function inkan(args: string[], input?: Buffer) {
  return runProgram(process.execPath, [INKAN, ...args], { ...(input ? { input } : {}), timeoutMs: 60_000 });
}

function save(name: string, content: Buffer | string): string {
  const file = join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

beforeAll(async () => {
  keys = makeKeys();
  dir = tempDir('inkan-cli-');
  dns = await startDnsmasq({
    'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    'ed._domainkey.example.org': dkimKeyRecord(keys.ed25519),
    'dk._domainkey.example.org': `k=rsa; p=${keys.rsa1024.p}`,
  });
  save('rsa.private', keys.rsa2048.pem);
  save('ed.private', keys.ed25519.pem);
});

afterAll(async () => {
  for (const c of children) c.kill('SIGTERM');
  await dns?.stop();
});

describe('inkan verify', () => {
  it('--json on messages signed by dkimpy, Mail::DKIM and inkan: valid, tampered, DomainKeys; exit codes', async () => {
    const m = crlf(MESSAGE);
    const peer = {
      domain: 'example.org',
      selector: 'rsa',
      algorithm: 'rsa-sha256' as const,
      canonicalization: 'relaxed/relaxed',
      pem: keys.rsa2048.pkcs1Pem as string,
      message: m,
    };
    const byDkimpy = save('dkimpy.eml', Buffer.concat([Buffer.from(await dkimpySign(peer)), m]));
    const byPerl = save('maildkim.eml', Buffer.concat([Buffer.from(await mailDkimSign(peer)), m]));
    const byInkan = Buffer.concat([
      Buffer.from(await signMessage(m, { domain: 'example.org', selector: 'ed', privateKey: keys.ed25519.pem })),
      m,
    ]);
    // An LF-only copy, as saved by a Unix mail client: read as CRLF.
    const inkanLf = save('inkan-lf.eml', Buffer.from(byInkan.toString('latin1').replace(/\r\n/g, '\n'), 'latin1'));
    const tampered = save('tampered.eml', Buffer.from(byInkan.toString('latin1').replace('Hello from', 'Goodbye from'), 'latin1'));
    const dk = save(
      'domainkeys.eml',
      Buffer.concat([
        Buffer.from(
          await mailDkimDomainKeysSign({
            domain: 'example.org',
            selector: 'dk',
            canonicalization: 'simple',
            pem: keys.rsa1024.pkcs1Pem as string,
            message: m,
          }),
        ),
        m,
      ]),
    );
    const unsigned = save('unsigned.eml', MESSAGE);

    const good = await inkan(['verify', '--json', '--dns', dns.server, byDkimpy, byPerl, inkanLf, dk]);
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
    const lines = good.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(
      lines.map((l) => [l.file.split('/').pop(), l.signatures.map((s: { method: string; result: string }) => `${s.method}=${s.result}`)]),
    ).toEqual([
      ['dkimpy.eml', ['dkim=pass']],
      ['maildkim.eml', ['dkim=pass']],
      ['inkan-lf.eml', ['dkim=pass']],
      ['domainkeys.eml', ['domainkeys=pass']],
    ]);
    expect(lines[2].signatures[0]).toEqual({
      method: 'dkim',
      domain: 'example.org',
      selector: 'ed',
      algorithm: 'ed25519-sha256',
      result: 'pass',
      code: 'ok',
      reason: '',
      testing: false,
      keyBits: 256,
    });

    const bad = await inkan(['verify', '--json', '--dns', dns.server, byDkimpy, tampered, unsigned]);
    expect(bad.code).toBe(1);
    const badLines = bad.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(badLines[1].signatures[0]).toMatchObject({ result: 'fail', code: 'body-hash-mismatch', reason: 'body hash did not verify' });
    expect(badLines[2]).toEqual({ file: unsigned, signatures: [] });

    const missing = await inkan(['verify', join(dir, 'no-such.eml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read .*no-such\.eml: ENOENT/);
    expect((await inkan(['verify', '--bogus'])).code).toBe(2);
  });

  it('a batch with hostile signatures (a=constructor, DomainKeys a=__proto__, i= with =0A) and an unreadable file: every other file is still checked', async () => {
    const m = crlf(MESSAGE);
    const good = Buffer.concat([
      Buffer.from(await signMessage(m, { domain: 'example.org', selector: 'rsa', privateKey: keys.rsa2048.pem })),
      m,
    ]);
    const goodFile = save('batch-good.eml', good);
    const text = good.toString('latin1');
    const badAlgorithm = save('batch-constructor.eml', Buffer.from(text.replace('a=rsa-sha256', 'a=constructor'), 'latin1'));
    const proto = save(
      'batch-proto.eml',
      Buffer.concat([Buffer.from('DomainKey-Signature: a=__proto__; c=toString; d=example.org; s=dk; b=AAAA\r\n'), good]),
    );
    const newline = save(
      'batch-newline.eml',
      Buffer.from(text.replace('DKIM-Signature: ', 'DKIM-Signature: i=@example.org=0AAuthentication-Results:=20x; '), 'latin1'),
    );
    const r = await inkan([
      'verify',
      '--json',
      '--dns',
      dns.server,
      badAlgorithm,
      goodFile,
      join(dir, 'batch-missing.eml'),
      proto,
      newline,
      goodFile,
    ]);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(
      lines.map((l) => [l.file.split('/').pop(), l.signatures.map((s: { method: string; result: string }) => `${s.method}=${s.result}`)]),
    ).toEqual([
      ['batch-constructor.eml', ['dkim=permerror']],
      ['batch-good.eml', ['dkim=pass']],
      ['batch-proto.eml', ['dkim=pass', 'domainkeys=permerror']],
      ['batch-newline.eml', ['dkim=permerror']],
      ['batch-good.eml', ['dkim=pass']],
    ]);
    expect(lines[0].signatures[0].reason).toBe('unknown algorithm a=constructor');
    expect(lines[2].signatures[1].reason).toMatch(/unsupported algorithm a=__proto__/);
    expect(lines[3].signatures[0].reason).toMatch(/control characters/);
    expect(r.stderr).toMatch(/cannot read .*batch-missing\.eml: ENOENT/);
    expect(r.code).toBe(2); // an input could not be read
    const withoutMissing = await inkan(['verify', '--dns', dns.server, badAlgorithm, goodFile]);
    expect(withoutMissing.code).toBe(1); // the first file has no passing signature
    expect(withoutMissing.stdout).toMatch(/permerror .*unknown algorithm a=constructor/);
  });

  it('reads standard input and prints plain, aligned text when not on a terminal', async () => {
    const m = crlf(MESSAGE);
    const signed = Buffer.concat([
      Buffer.from(await signMessage(m, { domain: 'example.org', selector: 'rsa', privateKey: keys.rsa2048.pem })),
      m,
    ]);
    const r = await inkan(['verify', '--dns', dns.server], signed);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('-\n  dkim  pass  example.org  rsa  rsa-sha256  2048-bit\n');
  });
});

describe('inkan sign', () => {
  it('prints the signed message; two --selector/--key pairs sign twice; dkimpy passes both', async () => {
    const input = save('to-sign.eml', MESSAGE);
    const r = await runProgram(process.execPath, [
      INKAN,
      'sign',
      '-d',
      'example.org',
      '-s',
      'rsa',
      '-k',
      join(dir, 'rsa.private'),
      '-s',
      'ed',
      '-k',
      join(dir, 'ed.private'),
      input,
    ]);
    expect(r.code).toBe(0);
    const out = save('signed-by-cli.eml', r.stdout);
    expect(r.stdout.match(/^DKIM-Signature:/gm)).toHaveLength(2);
    const [v] = await dkimpyVerify(dns.port, [out]);
    expect(v?.signatures.map((s) => [s.a, s.pass])).toEqual([
      ['rsa-sha256', true],
      ['ed25519-sha256', true],
    ]);
  });
  it('a missing key is a usage error', async () => {
    const r = await inkan(['sign', '-d', 'example.org', '-s', 'x', '-k', join(dir, 'nope.private')], MESSAGE);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nope\.private: ENOENT/);
  });
  it('a file that is no key, or an RSA key under 1024 bits: refused by name (the same loader and limits as milterd)', async () => {
    const text = save('text.private', 'secret words, not a key\n');
    const notKey = await inkan(['sign', '-d', 'example.org', '-s', 'x', '-k', text], MESSAGE);
    expect(notKey.code).toBe(2);
    expect(notKey.stderr).toMatch(/key file .*text\.private does not hold a PEM private key/);
    expect(notKey.stderr).not.toMatch(/secret words/);
    const small = save(
      'small.private',
      generateKeyPairSync('rsa', { modulusLength: 768 }).privateKey.export({ format: 'pem', type: 'pkcs8' }),
    );
    const weak = await inkan(['sign', '-d', 'example.org', '-s', 'x', '-k', small], MESSAGE);
    expect(weak.code).toBe(2);
    expect(weak.stderr).toMatch(/small\.private is an RSA key of 768 bits, under 1024/);
  });
});

describe('inkan ar', () => {
  it('shows Authentication-Results as a table and as JSON', async () => {
    const file = save(
      'ar.eml',
      'Authentication-Results: mx.example.net; dkim=pass (2048-bit key) header.d=example.org header.s=rsa\r\nAuthentication-Results: other.example; spf=fail smtp.mailfrom=x@y\r\nFrom: a@example.org\r\n\r\nbody\r\n',
    );
    const table = await inkan(['ar', file]);
    expect(table.stdout).toMatch(/^authserv-id\s+method\s+result\s+reason\s+properties$/m);
    expect(table.stdout).toMatch(/^mx\.example\.net\s+dkim\s+pass\s+2048-bit key\s+header\.d=example\.org header\.s=rsa$/m);
    const json = JSON.parse((await inkan(['ar', '--json', file])).stdout);
    expect(json.map((a: { authservId: string }) => a.authservId)).toEqual(['mx.example.net', 'other.example']);
  });
});

describe('inkan keygen and testkey', () => {
  it('are the keytool commands, with the same flags', async () => {
    const out = tempDir('inkan-cli-keygen-');
    const r = await inkan(['keygen', '--domain', 'example.org', '--selector', 'cli', '--type', 'ed25519', '-D', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/cli\._domainkey\.example\.org\.\tIN\tTXT\t"v=DKIM1; k=ed25519; t=s; p=/);
    const t = await inkan([
      'testkey',
      '--domain',
      'example.org',
      '--selector',
      'rsa',
      '--dns',
      dns.server,
      '--key',
      join(dir, 'rsa.private'),
    ]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/good/);
  });
});

async function spawnReady(command: string, args: string[], ready: () => Promise<boolean>, what: string): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  await waitFor(ready, `${what}: ${output}`, 200);
  return child;
}

describe('inkan milter-test', () => {
  it('drives a running inkan-milterd: signs for an internal client, verifies for an outside one', async () => {
    const lines = [
      'Domain example.org',
      'Selector rsa',
      `KeyFile ${join(dir, 'rsa.private')}`,
      `Nameservers 127.0.0.1@${dns.port}`,
      'AuthservID mx.inkan.test',
      'AlwaysAddARHeader yes',
    ];
    const { milterd, port } = await startMilterdOnPort(join(dir, 'milterd.conf'), lines);
    try {
      const file = save('mt.eml', MESSAGE);
      const r = await inkan([
        'milter-test',
        '--socket',
        `inet:${port}@127.0.0.1`,
        '--from',
        'joe@example.org',
        '--rcpt',
        'suzie@example.net',
        file,
      ]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^negotiated: milter protocol 6$/m);
      expect(r.stdout).toMatch(/SMFIP_HDR_LEADSPC/);
      expect(r.stdout).toMatch(/insert header at 0: DKIM-Signature: v=1; a=rsa-sha256/);
      expect(r.stdout).toMatch(/^outcome: accept/m);
      const outside = await inkan(['milter-test', '--json', '--socket', `inet:${port}@127.0.0.1`, '--client-ip', '192.0.2.7', file]);
      const json = JSON.parse(outside.stdout);
      expect(json.modifications).toEqual(['insert header at 0: Authentication-Results: mx.inkan.test; dkim=none']);
    } finally {
      await milterd.stop();
    }
  });

  it('drives OpenDKIM, a real peer milter', async () => {
    const opendkim = findProgram('opendkim');
    expect(opendkim, 'opendkim (Debian package opendkim)').toBeDefined();
    const port = await freePort();
    const conf = save(
      'opendkim.conf',
      `Socket inet:${port}@127.0.0.1\nMode s\nDomain example.org\nSelector rsa\nKeyFile ${join(dir, 'rsa.private')}\nSyslog no\nRequireSafeKeys no\nBackground no\nUserID root\n`,
    );
    const child = await spawnReady(opendkim as string, ['-f', '-x', conf], () => tcpAccepting(port), 'opendkim');
    try {
      const file = save('mt-odk.eml', MESSAGE);
      const r = await inkan(['milter-test', '--json', '--socket', `inet:${port}@127.0.0.1`, '--from', 'joe@example.org', file]);
      expect(r.code, r.stderr).toBe(0);
      const json = JSON.parse(r.stdout);
      expect(json.negotiated.version).toBe(6);
      expect(json.modifications.join('\n')).toMatch(/DKIM-Signature: v=1; a=rsa-sha256;.*d=example\.org/s);
      expect(json.outcome.reply).toMatch(/accept|continue/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
