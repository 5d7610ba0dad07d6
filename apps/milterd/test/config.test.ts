import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeKeys, tempDir } from '@inkan/testbed';
import type { VerificationCode, VerificationResult } from '@inkan/dkim-core';
import {
  ConfigError,
  defaults,
  fromAddress,
  HostList,
  loadConfig,
  loadSigningPlan,
  parseCommandLine,
  parseConfigText,
  verdictAction,
} from '../src/internal.js';

describe('opendkim.conf syntax', () => {
  it('reads options, comments and lists; names are case-insensitive', () => {
    const c = parseConfigText(
      [
        '# inkan test',
        'Mode            sv',
        'domain          example.org, example.net',
        'Selector hoge   # trailing comment',
        'KeyFile /etc/mail/hoge.private',
        'UMask 002',
        'On-BadSignature reject',
        'Canonicalization relaxed/simple',
        'OversignHeaders From,Subject',
        'SyslogFacility local3',
        'AlwaysAddARHeader yes',
        'Nameservers 127.0.0.1@5353, ::1',
        '',
      ].join('\n'),
      'test.conf',
    );
    expect(c.domain).toEqual({ kind: 'list', values: ['example.org', 'example.net'] });
    expect(c.selector).toBe('hoge');
    expect(c.umask).toBe(0o002);
    expect(c.onBadSignature).toBe('reject');
    expect(c.canonicalization).toBe('relaxed/simple');
    expect(c.oversignHeaders).toEqual(['From', 'Subject']);
    expect(c.alwaysAddArHeader).toBe(true);
    expect(c.nameservers).toEqual(['127.0.0.1@5353', '::1']);
  });

  const errors: [string, RegExp][] = [
    ['Frobnicate yes', /^milterd\.conf:2: unknown option "Frobnicate"; see inkan-milterd --help and docs\/opendkim-options\.md$/],
    ['Mode x', /^milterd\.conf:2: Mode takes s, v or sv/],
    ['UMask 9', /^milterd\.conf:2: UMask takes an octal number/],
    ['On-DNSError maybe', /^milterd\.conf:2: On-DNSError takes one of accept, reject/],
    ['SignatureAlgorithm rsa-sha1', /RFC 8301/],
    ['MinimumKeyBits lots', /whole number/],
    ['MinimumKeyBits 99999999999999999999999', /^milterd\.conf:2: MinimumKeyBits: the number is too large$/],
    ['Selector', /Selector needs a value/],
    ['Syslog perhaps', /Syslog takes yes or no/],
  ];
  it.each(errors)('%s is an error naming file and line', (line, message) => {
    expect(() => parseConfigText(`# first line\n${line}\n`, 'milterd.conf')).toThrow(message);
  });

  it('command-line flags override the config file', async () => {
    const dir = tempDir();
    const file = join(dir, 'milterd.conf');
    writeFileSync(file, 'Socket inet:9999@127.0.0.1\nSelector fromfile\n');
    const inv = parseCommandLine(['node', 'inkan-milterd', '-x', file, '-s', 'fromflag', '-b', 'v', '-C', 'bad=r,dns=t'], '1', () => {});
    const c = await loadConfig(inv.configFile, inv.overrides);
    expect(c.selector).toBe('fromflag');
    expect(c.socket).toBe('inet:9999@127.0.0.1');
    expect(c.mode).toEqual({ sign: false, verify: true });
    expect([c.onBadSignature, c.onDnsError]).toEqual(['reject', 'tempfail']);
  });

  it('takes the dkim-filter command line', () => {
    const inv = parseCommandLine(
      [
        'node',
        'inkan-milterd',
        '-p',
        'local:/var/run/milter/dkim',
        '-P',
        '/var/run/milter/inkan.pid',
        '-l',
        '-d',
        'example.org',
        '-s',
        'hoge',
        '-k',
        '/etc/mail/hoge.private',
        '-u',
        'milter:mail',
        '-c',
        'relaxed/simple',
      ],
      '1',
      () => {},
    );
    expect(Object.fromEntries(inv.overrides)).toMatchObject({
      Socket: 'local:/var/run/milter/dkim',
      PidFile: '/var/run/milter/inkan.pid',
      Syslog: 'yes',
      Domain: 'example.org',
      Selector: 'hoge',
      KeyFile: '/etc/mail/hoge.private',
      UserID: 'milter:mail',
      Canonicalization: 'relaxed/simple',
    });
    expect(inv.warnings[0]).toMatch(/canonicalization/);
    expect(inv.firstRun).toBe(false);
  });
});

describe('signing plan', () => {
  const keys = makeKeys();
  const dir = tempDir();
  const rsaFile = join(dir, 'rsa.private');
  const edFile = join(dir, 'ed.private');
  writeFileSync(rsaFile, keys.rsa2048.pem, { mode: 0o600 });
  writeFileSync(edFile, keys.ed25519.pem, { mode: 0o440 });

  it('Domain + Selector/KeyFile + SigningKeys: every key signs every domain (dual signing)', async () => {
    const c = {
      ...defaults(),
      domain: { kind: 'list' as const, values: ['example.org'] },
      selector: 'rsa',
      keyFile: rsaFile,
      signingKeys: [`ed:${edFile}`],
    };
    const plan = await loadSigningPlan(c);
    expect(plan.keysFor('joe@example.org').map((k) => [k.domain, k.selector, k.algorithm])).toEqual([
      ['example.org', 'rsa', 'rsa-sha256'],
      ['example.org', 'ed', 'ed25519-sha256'],
    ]);
    expect(plan.keysFor('joe@sub.example.org')).toEqual([]);
    const sub = await loadSigningPlan({ ...c, subDomains: true });
    expect(sub.keysFor('joe@sub.example.org').map((k) => k.domain)).toEqual(['example.org', 'example.org']);
  });

  it('KeyTable + SigningTable with refile: wildcards and % for the From domain', async () => {
    writeFileSync(join(dir, 'keytable'), `rsakey example.org:rsa:${rsaFile}\nedkey %:ed:${edFile}\n`);
    writeFileSync(join(dir, 'signingtable'), '*@example.org rsakey\n*@*.example.net edkey\n');
    const c = {
      ...defaults(),
      keyTable: { kind: 'file' as const, path: join(dir, 'keytable') },
      signingTable: { kind: 'refile' as const, path: join(dir, 'signingtable') },
    };
    const plan = await loadSigningPlan(c);
    expect(plan.keysFor('a@example.org').map((k) => k.selector)).toEqual(['rsa']);
    expect(plan.keysFor('b@mx.example.net').map((k) => [k.domain, k.selector])).toEqual([['mx.example.net', 'ed']]);
    expect(plan.keysFor('c@example.com')).toEqual([]);
  });

  it("SigningTable (file): OpenDKIM's lookup order and keyname:signer for i= (% is the From domain; an i= outside d= is left out)", async () => {
    writeFileSync(
      join(dir, 'kt-order'),
      `k-user example.org:user:${rsaFile}\nk-parent example.org:parent:${rsaFile}\nk-userparent example.org:userparent:${rsaFile}\nk-star example.org:star:${rsaFile}\nk-anyuser example.org:anyuser:${rsaFile}\n`,
    );
    writeFileSync(
      join(dir, 'st-order'),
      [
        'joe@mx.example.org k-user:Joe.Signer@mx.example.org',
        '.example.org k-parent:%',
        'ann@.example.org k-userparent:ann@%',
        'bob@* k-anyuser:bob@elsewhere.example',
        '* k-star',
        '',
      ].join('\n'),
    );
    const c = {
      ...defaults(),
      keyTable: { kind: 'file' as const, path: join(dir, 'kt-order') },
      signingTable: { kind: 'file' as const, path: join(dir, 'st-order') },
    };
    const plan = await loadSigningPlan(c);
    const pick = (from: string) => plan.keysFor(from).map((k) => [k.selector, k.identity]);
    // user@host first; the signer keeps its spelling
    expect(pick('joe@mx.example.org')).toEqual([['user', 'Joe.Signer@mx.example.org']]);
    // user@.parent before .parent, both without SubDomains; "%" in the signer is the From domain
    expect(pick('ann@a.b.example.org')).toEqual([['userparent', 'ann@a.b.example.org']]);
    // "%" alone is not an address: no i=
    expect(pick('zed@mx.example.org')).toEqual([['parent', undefined]]);
    // user@* before *; a signer outside d= (example.org) is left out, as OpenDKIM does
    expect(pick('bob@example.net')).toEqual([['anyuser', undefined]]);
    expect(pick('eve@example.net')).toEqual([['star', undefined]]);
    const all = await loadSigningPlan({ ...c, multipleSignatures: true });
    expect(all.keysFor('ann@x.example.org').map((k) => k.selector)).toEqual(['userparent', 'parent', 'star']);
  });

  it('errors name the table line, a missing key, and unsafe permissions', async () => {
    writeFileSync(join(dir, 'badtable'), 'rsakey example.org:rsa\n');
    const c = {
      ...defaults(),
      keyTable: { kind: 'file' as const, path: join(dir, 'badtable') },
      signingTable: { kind: 'list' as const, values: [] },
    };
    await expect(loadSigningPlan(c)).rejects.toThrow(/badtable:1: KeyTable lines read/);
    const missing = {
      ...defaults(),
      domain: { kind: 'list' as const, values: ['example.org'] },
      selector: 's',
      keyFile: join(dir, 'nope.private'),
    };
    await expect(loadSigningPlan(missing)).rejects.toThrow(/nope\.private: ENOENT/);
    const leaky = join(dir, 'leaky.private');
    writeFileSync(leaky, keys.rsa2048.pem);
    chmodSync(leaky, 0o644);
    await expect(loadSigningPlan({ ...missing, keyFile: leaky })).rejects.toThrow(/readable by anyone \(mode 0644\)/);
    await expect(loadSigningPlan({ ...missing, keyFile: leaky, requireSafeKeys: false })).resolves.toBeDefined();
    await expect(loadSigningPlan({ ...missing, keyFile: leaky })).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('hosts, addresses, verdicts', () => {
  it('InternalHosts: addresses, CIDRs (v4 and v6), names, suffixes and exclusions', () => {
    const hosts = new HostList(['127.0.0.1', '::1', '192.0.2.0/24', '2001:db8::/32', 'mx.example.org', '.corp.example', '!192.0.2.66']);
    expect(hosts.matches('127.0.0.1')).toBe(true);
    expect(hosts.matches('192.0.2.10')).toBe(true);
    expect(hosts.matches('192.0.2.66')).toBe(false);
    expect(hosts.matches('IPv6:2001:db8::1')).toBe(true);
    expect(hosts.matches('::ffff:127.0.0.1')).toBe(true);
    expect(hosts.matches('198.51.100.1', 'mx.example.org')).toBe(true);
    expect(hosts.matches('198.51.100.1', 'a.b.corp.example')).toBe(true);
    expect(hosts.matches('198.51.100.1', 'evil.example')).toBe(false);
    expect(() => new HostList(['10.0.0.0/33'])).toThrow(/prefix/);
  });

  it('finds the From address', () => {
    expect(fromAddress(' "Joe, Jr." <Joe@Example.ORG> (comment)')).toBe('joe@example.org');
    expect(fromAddress(' joe@example.org')).toBe('joe@example.org');
    expect(fromAddress(' undisclosed')).toBeUndefined();
  });

  it('picks the action the results call for', () => {
    const c = { ...defaults(), onBadSignature: 'reject' as const, onDnsError: 'tempfail' as const };
    const r = (result: 'pass' | 'fail' | 'temperror' | 'permerror', code: VerificationCode, reason?: string): VerificationResult => ({
      method: 'dkim' as const,
      result,
      code,
      domain: 'd',
      selector: 's',
      algorithm: 'a',
      testing: false,
      ...(reason ? { reason } : {}),
    });
    expect(verdictAction(c, []).action).toBe('accept');
    expect(verdictAction(c, [r('fail', 'bad-signature', 'x'), r('pass', 'ok')]).action).toBe('accept');
    expect(verdictAction(c, [r('fail', 'body-hash-mismatch', 'body hash did not verify')]).action).toBe('reject');
    expect(verdictAction(c, [r('temperror', 'dns-timeout', 'timeout')]).action).toBe('tempfail');
    expect(verdictAction(c, [r('temperror', 'dns-error', 'SERVFAIL')]).action).toBe('tempfail');
    expect(verdictAction(c, [r('permerror', 'key-not-found', 'no key record at x')]).action).toBe('accept');
    // The code decides, not the words: On-KeyNotFound for key-not-found whatever the reason says, and not for other codes.
    expect(verdictAction({ ...c, onKeyNotFound: 'reject' }, [r('permerror', 'key-not-found', 'the selector has no key')]).action).toBe(
      'reject',
    );
    expect(verdictAction({ ...c, onKeyNotFound: 'accept' }, [r('permerror', 'key-syntax', 'no key record here parses')]).action).toBe(
      'reject',
    );
    // As OpenDKIM: a revoked key or a signature that cannot be checked is a bad signature, not On-SignatureError.
    expect(verdictAction({ ...c, onSignatureError: 'accept' }, [r('permerror', 'key-revoked', 'key revoked (empty p=)')]).action).toBe(
      'reject',
    );
    expect(
      verdictAction({ ...c, onSignatureError: 'accept' }, [r('permerror', 'signature-syntax', 'signature has no b= tag')]).action,
    ).toBe('reject');
    // A key in testing mode (t=y): a failure is never rejected, tempfailed or discarded; quarantine stays.
    const testing = { ...r('fail', 'body-hash-mismatch', 'body hash did not verify'), testing: true };
    expect(verdictAction(c, [testing]).action).toBe('accept');
    expect(verdictAction({ ...c, onBadSignature: 'discard' }, [testing]).action).toBe('accept');
    expect(verdictAction({ ...c, onBadSignature: 'quarantine' }, [testing]).action).toBe('quarantine');
  });

  it("has OpenDKIM's On-* defaults", () => {
    const d = defaults();
    expect([d.onBadSignature, d.onDnsError, d.onInternalError, d.onKeyNotFound, d.onNoSignature, d.onSecurity, d.onSignatureError]).toEqual(
      ['accept', 'tempfail', 'tempfail', 'accept', 'accept', 'tempfail', 'reject'],
    );
  });
});
