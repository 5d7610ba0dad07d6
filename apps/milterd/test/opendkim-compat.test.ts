/**
 * OpenDKIM drop-in (issue #17): every option of opendkim.conf(5) is in the compatibility
 * table, the docs are rendered from it, and the real binary reports every unknown or refused
 * option of a file in one run, warns once per not-applicable option, and takes Debian's stock
 * /etc/opendkim.conf and a multi-domain KeyTable/SigningTable configuration unchanged.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { runTransaction } from '@inkan/milter-protocol';
import { freePort, makeKeys, runProgram, tempDir } from '@inkan/testbed';
import { type MilterdProcess, startMilterd } from './helpers.js';
import { ConfigError } from '../src/config/errors.js';
import { defaults, parseConfigText } from '../src/config/options.js';
import { OPENDKIM_OPTIONS, refusalText, renderFlagsTable, renderOptionsTable, warningText } from '../src/config/opendkim-compat.js';
import { EX_CONFIG } from '../src/index.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'inkan-milterd.js');
const DOC = join(import.meta.dirname, '..', 'docs', 'opendkim-options.md');
const MAN = '/usr/share/man/man5/opendkim.conf.5.gz';
const run = (args: string[]) => runProgram(process.execPath, [BIN, ...args], { timeoutMs: 30_000 });

/** opendkim.conf(5) of Debian's OpenDKIM 2.11.0~beta2, for machines without the package. */
const MAN_NAMES_2_11 = `AllowSHA1Only AlwaysAddARHeader AuthservID AuthservIDWithJobID AutoRestart AutoRestartCount AutoRestartRate
Background BaseDirectory BodyLengthDB BogusKey CaptureUnknownErrors Canonicalization ChangeRootDirectory ClockDrift Diagnostics
DiagnosticDirectory DisableCryptoInit DNSConnect DNSTimeout Domain DomainKeysCompat DontSignMailTo EnableCoredumps ExemptDomains
ExternalIgnoreList FinalPolicyScript FixCRLF IdentityHeader IdentityHeaderRemove IgnoreMalformedMail Include InternalHosts
KeepAuthResults KeepTemporaryFiles KeyFile KeyTable LDAPAuthMechanism LDAPAuthName LDAPAuthRealm LDAPAuthUser LDAPBindPassword
LDAPBindUser LDAPDisableCache LDAPKeepaliveIdle LDAPKeepaliveInterval LDAPKeepaliveProbes LDAPTimeout LDAPUseTLS LogResults LogWhy
MacroList MaximumHeaders MaximumSignaturesToVerify MaximumSignedBytes MilterDebug Minimum MinimumKeyBits Mode MTA MTACommand
MultipleSignatures MustBeSigned Nameservers NoHeaderB OmitHeaders On-BadSignature On-Default On-DNSError On-InternalError
On-KeyNotFound On-NoSignature On-Security On-SignatureError OversignHeaders PeerList PidFile POPDBFile Quarantine QueryCache
RedirectFailuresTo RemoveARAll RemoveARFrom RemoveOldSignatures ReplaceHeaders ReplaceRules ReportAddress ReportBccAddress
RequestReports RequiredHeaders RequireSafeKeys ResignAll ResignMailTo ResolverConfiguration ResolverTracing ScreenPolicyScript
SelectCanonicalizationHeader Selector SenderHeaders SenderMacro SendReports SetupPolicyScript SignatureAlgorithm SignatureTTL
SignHeaders SigningTable SMTPURI Socket SoftStart SoftwareHeader Statistics StatisticsName StatisticsPolicyScript StatisticsPrefix
StrictHeaders StrictTestMode SubDomains Syslog SyslogFacility SyslogName SyslogSuccess TemporaryDirectory TestDNSData
TestPublicKeys TrustAnchorFile TrustSignaturesFrom UMask UnprotectedKey UserID VBR-Certifiers VBR-PurgeFields VBR-TrustedCertifiers
VBR-TrustedCertifiersOnly VBR-Type WeakSyntaxChecks`.split(/\s+/);

/** The PARAMETERS of the installed man page (".TP" then ".I Name"), or the committed list. */
function manPageNames(): string[] {
  if (!existsSync(MAN)) return MAN_NAMES_2_11;
  const roff = gunzipSync(readFileSync(MAN)).toString('latin1');
  const parameters = roff.slice(roff.indexOf('.SH PARAMETERS'), roff.indexOf('.SH NOTES'));
  return [...parameters.matchAll(/^\.TP[ \t]*\n\.I (\S+)/gm)].map((m) => m[1] as string);
}

/** The text between <!-- name:start --> and <!-- name:end --> of the doc. */
function section(doc: string, name: string): string {
  const start = doc.indexOf(`<!-- ${name}:start -->`);
  const end = doc.indexOf(`<!-- ${name}:end -->`);
  expect(start, `docs/opendkim-options.md has <!-- ${name}:start -->`).toBeGreaterThanOrEqual(0);
  return doc.slice(doc.indexOf('\n', start) + 1, end).trim();
}

describe('the option table', () => {
  it('has every option of opendkim.conf(5), once, and nothing else', () => {
    const man = manPageNames();
    expect(man.length).toBeGreaterThanOrEqual(135);
    const ours = OPENDKIM_OPTIONS.map((o) => o.name);
    expect(new Set(ours).size).toBe(ours.length);
    expect([...ours].sort()).toEqual([...man].sort());
  });

  it('is the table in docs/opendkim-options.md (INKAN_UPDATE_DOCS=1 rewrites it)', () => {
    let doc = readFileSync(DOC, 'utf8');
    if (process.env.INKAN_UPDATE_DOCS === '1') {
      for (const [name, table] of [
        ['options', renderOptionsTable()],
        ['flags', renderFlagsTable()],
      ] as const) {
        const start = doc.indexOf(`<!-- ${name}:start -->`);
        const end = doc.indexOf(`<!-- ${name}:end -->`);
        doc = `${doc.slice(0, doc.indexOf('\n', start) + 1)}${table}\n${doc.slice(end)}`;
      }
      writeFileSync(DOC, doc);
    }
    expect(section(doc, 'options')).toBe(renderOptionsTable());
    expect(section(doc, 'flags')).toBe(renderFlagsTable());
    for (const name of manPageNames()) expect(doc).toContain(`| ${name} |`);
  });

  it('gives every option a meaning and every warning or refusal a reason', () => {
    for (const o of OPENDKIM_OPTIONS) {
      expect(o.meaning, o.name).not.toBe('');
      if (o.status !== 'implemented') expect(o.note.length, o.name).toBeGreaterThan(10);
    }
  });

  it('implemented options are read; the others warn or stop with their own hint', () => {
    for (const o of OPENDKIM_OPTIONS) {
      // A value no option takes silently: each option gets its own outcome.
      const text = `${o.name} something-else\n`;
      const warnings: string[] = [];
      let error: unknown;
      try {
        parseConfigText(text, 'x.conf', defaults(), warnings);
      } catch (e) {
        error = e;
      }
      const message = error instanceof Error ? error.message : '';
      expect(message, o.name).not.toMatch(/unknown option/);
      if (o.status === 'warn') {
        expect(error, o.name).toBeUndefined();
        expect(warnings, o.name).toEqual([`x.conf:1: ${warningText(o)}`]);
      } else if (o.status === 'refuse') {
        expect(error, o.name).toBeInstanceOf(ConfigError);
        expect(message, o.name).toBe(`x.conf:1: ${refusalText(o)}`);
      } else {
        expect(warnings, o.name).toEqual([]);
      }
    }
  });

  it('accepts warn and refuse options silently with values that mean what inkan does', () => {
    const warnings: string[] = [];
    parseConfigText(
      'Background no\nAutoRestart No\nQuarantine false\nSyslogSuccess yes\nUnprotectedKey none\nClockDrift 300\n',
      'x.conf',
      defaults(),
      warnings,
    );
    expect(warnings).toEqual([]);
  });
});

describe('the real binary', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('inkan-odkim-');
  });

  it('reports every unknown and refused option of a file in one run, by file:line, with hints', async () => {
    const conf = join(dir, 'many.conf');
    writeFileSync(
      conf,
      [
        'Mode sv',
        'BaseDirectory /var/lib/opendkim',
        'Selectr mail',
        'AutoRestart yes',
        'KeyTable ldap://ldap.example/dc=example',
        'BodyLengthDB csl:list@example.org',
        'password=hunter2-not-an-option',
        'On-BadSignature sometimes',
        'Background yes',
        '',
      ].join('\n'),
    );
    const r = await run(['-x', conf, '--check-config']);
    expect(r.code).toBe(EX_CONFIG);
    const err = r.stderr;
    expect(err).toContain(`${conf}: 6 problems:`);
    expect(err).toContain(`${conf}:2: BaseDirectory is not supported: inkan does not change directory`);
    expect(err).toContain(`${conf}:3: unknown option "Selectr" (did you mean Selector?)`);
    expect(err).toContain(`${conf}:5: KeyTable: ldap: datasets are not supported`);
    expect(err).toContain(`${conf}:6: BodyLengthDB is not supported: inkan never signs with l=`);
    expect(err).toContain(`${conf}:7: this line is not an option`);
    expect(err).toContain(`${conf}:8: On-BadSignature takes one of`);
    // Values read from the file are never echoed.
    expect(`${r.stdout}${err}`).not.toMatch(/hunter2|sometimes|ldap\.example|list@example/);
  });

  it('warns once per not-applicable option and starts', async () => {
    const conf = join(dir, 'warn.conf');
    writeFileSync(conf, 'AutoRestart yes\nAutoRestartRate 10/1h\nBackground yes\nSoftwareHeader yes\nMode v\n');
    const r = await run(['-x', conf, '--check-config']);
    expect(r.code, r.stderr).toBe(0);
    for (const [line, name] of [
      [1, 'AutoRestart'],
      [2, 'AutoRestartRate'],
      [3, 'Background'],
      [4, 'SoftwareHeader'],
    ] as const) {
      const matches = r.stdout.split('\n').filter((l) => l.includes(`${conf}:${line}: ${name} ignored:`));
      expect(matches, name).toHaveLength(1);
    }
  });

  it("takes Debian's stock /etc/opendkim.conf unchanged", async () => {
    // The file as Debian ships it (its non-comment lines), or the installed one when there is one.
    const stock = existsSync('/etc/opendkim.conf')
      ? readFileSync('/etc/opendkim.conf', 'utf8')
      : [
          'Syslog\t\t\tyes',
          'SyslogSuccess\t\tyes',
          'Canonicalization\trelaxed/simple',
          'OversignHeaders\t\tFrom',
          'UserID\t\t\topendkim',
          'UMask\t\t\t007',
          'Socket\t\t\tlocal:/run/opendkim/opendkim.sock',
          'PidFile\t\t\t/run/opendkim/opendkim.pid',
          'TrustAnchorFile\t\t/usr/share/dns/root.key',
          '',
        ].join('\n');
    const conf = join(dir, 'opendkim.conf');
    writeFileSync(conf, stock);
    const r = await run(['-x', conf, '--check-config']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Canonicalization relaxed\/simple$/m);
    expect(r.stdout).toMatch(/^OversignHeaders from$/im);
    expect(r.stdout).toMatch(/^Socket local:\/run\/opendkim\/opendkim\.sock$/m);
    expect(r.stdout).toContain('TrustAnchorFile ignored: inkan does not validate DNSSEC itself');
  });

  it('takes a multi-domain KeyTable/SigningTable configuration unchanged', async () => {
    const keys = makeKeys();
    const base = join(dir, 'multi');
    mkdirSync(join(base, 'keys'), { recursive: true });
    const keyTable: string[] = [];
    const signingTable: string[] = [];
    for (const domain of ['example.com', 'example.net', 'example.org']) {
      const keyFile = join(base, 'keys', `${domain}.private`);
      writeFileSync(keyFile, keys.rsa2048.pkcs1Pem, { mode: 0o600 });
      chmodSync(keyFile, 0o600);
      keyTable.push(`mail._domainkey.${domain} ${domain}:mail:${keyFile}`);
      signingTable.push(`*@${domain} mail._domainkey.${domain}`);
    }
    writeFileSync(join(base, 'key.table'), `${keyTable.join('\n')}\n`);
    writeFileSync(join(base, 'signing.table'), `${signingTable.join('\n')}\n`);
    writeFileSync(join(base, 'trusted.hosts'), '127.0.0.1\n::1\nlocalhost\n10.1.0.0/16\n');
    const conf = join(base, 'opendkim.conf');
    writeFileSync(
      conf,
      [
        '# a typical multi-domain opendkim.conf',
        'AutoRestart             Yes',
        'AutoRestartRate         10/1h',
        'Syslog                  yes',
        'SyslogSuccess           Yes',
        'LogWhy                  Yes',
        'UMask                   002',
        'Canonicalization        relaxed/simple',
        'Mode                    sv',
        'SignatureAlgorithm      rsa-sha256',
        'OversignHeaders         From',
        `ExternalIgnoreList      refile:${join(base, 'trusted.hosts')}`,
        `InternalHosts           refile:${join(base, 'trusted.hosts')}`,
        `KeyTable                ${join(base, 'key.table')}`,
        `SigningTable            refile:${join(base, 'signing.table')}`,
        'Socket                  inet:8891@127.0.0.1',
        'PidFile                 /run/opendkim/opendkim.pid',
        'TrustAnchorFile         /usr/share/dns/root.key',
        '',
      ].join('\n'),
    );
    const r = await run(['-x', conf, '--check-config']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/^SigningTable refile:/m);
    expect(r.stdout).toMatch(/^LogWhy yes$/m);
    expect(r.stdout + r.stderr).not.toMatch(/only a refile: table/);
    // The same table as a plain file: its "*@domain" lines never match (as in OpenDKIM), and that is said, by line.
    const plain = join(base, 'opendkim-plain.conf');
    writeFileSync(plain, readFileSync(conf, 'utf8').replace(`SigningTable            refile:`, 'SigningTable            file:'));
    const p = await run(['-x', plain, '--check-config']);
    expect(p.code, `${p.stdout}\n${p.stderr}`).toBe(0);
    for (const line of [1, 2, 3])
      expect(p.stdout + p.stderr).toMatch(
        new RegExp(`signing\\.table:${line}: this SigningTable pattern has a \\S{1,6}, which only a refile: table reads as a wildcard`),
      );
  });
});

describe('PeerList and AuthservID mean what OpenDKIM documents (real process)', () => {
  let milterd: MilterdProcess;
  let spec: string;
  beforeAll(async () => {
    const dir = tempDir('inkan-odkim-peers-');
    const keyFile = join(dir, 'mail.private');
    writeFileSync(keyFile, makeKeys().rsa2048.pkcs1Pem, { mode: 0o600 });
    const port = await freePort();
    spec = `inet:${port}@127.0.0.1`;
    const conf = join(dir, 'opendkim.conf');
    // A migrated file: PeerList names SMTP clients to leave alone, not the MTA (which connects from 127.0.0.1).
    writeFileSync(
      conf,
      [
        `Socket ${spec}`,
        'Domain *',
        'Selector mail',
        `KeyFile ${keyFile}`,
        'InternalHosts 127.0.0.1',
        'PeerList 192.0.2.9',
        'AlwaysAddARHeader yes',
        'Nameservers 127.0.0.1:9',
        'SignHeaders *,+List-Unsubscribe',
        'OmitHeaders *,+Subject',
        '',
      ].join('\n'),
    );
    milterd = await startMilterd(['-x', conf]);
    await milterd.waitForOutput(/ready/);
  });
  afterAll(async () => {
    await milterd?.stop();
  });

  const message = (from: string, extra = '') =>
    Buffer.from(
      `${extra}From: <${from}>\r\nTo: <b@example.net>\r\nSubject: hi\r\nList-Unsubscribe: <mailto:u@example.org>\r\n\r\nbody\r\n`,
      'latin1',
    );
  const signatureOf = (mods: readonly { type: string; name?: string; value?: Buffer }[]) =>
    mods
      .find((m) => m.type === 'insertHeader' && m.name === 'DKIM-Signature')
      ?.value?.toString('latin1')
      .replace(/\s+/g, '') ?? '';

  it('PeerList: a listed SMTP client is let through unprocessed; the MTA itself is served', async () => {
    const peer = await runTransaction(spec, {
      client: { address: '192.0.2.9', family: 'inet', hostname: 'peer.example' },
      sender: 'a@example.com',
      recipients: ['b@example.net'],
      message: message('a@example.com'),
    });
    expect(peer.outcome.stage).toBe('connect');
    expect(peer.outcome.reply?.type).toBe('accept');
    expect(peer.endOfMessage).toBeUndefined();
    const internal = await runTransaction(spec, {
      client: { address: '127.0.0.1', family: 'inet' },
      sender: 'a@example.org',
      recipients: ['b@example.net'],
      message: message('a@example.org'),
    });
    expect(signatureOf(internal.endOfMessage?.modifications ?? [])).toMatch(/d=example\.org;/);
  });

  it('Domain * signs for the From domain of any internal mail', async () => {
    const r = await runTransaction(spec, {
      client: { address: '127.0.0.1', family: 'inet' },
      sender: 'a@other.example',
      recipients: ['b@example.net'],
      message: message('a@other.example'),
    });
    expect(signatureOf(r.endOfMessage?.modifications ?? [])).toMatch(/d=other\.example;/);
  });

  it('SignHeaders *,+List-Unsubscribe and OmitHeaders *,+Subject edit the default lists', async () => {
    const r = await runTransaction(spec, {
      client: { address: '127.0.0.1', family: 'inet' },
      sender: 'a@example.org',
      recipients: ['b@example.net'],
      message: message('a@example.org'),
    });
    const h =
      /h=([^;]+)/
        .exec(signatureOf(r.endOfMessage?.modifications ?? []))?.[1]
        ?.toLowerCase()
        .split(':') ?? [];
    expect(h).toContain('from');
    expect(h).toContain('to');
    expect(h).toContain('list-unsubscribe');
    expect(h).not.toContain('subject');
  });

  it("AuthservID unset: the MTA's name (macro j); a forged Authentication-Results with it is removed", async () => {
    const r = await runTransaction(spec, {
      client: { address: '198.51.100.7', family: 'inet', hostname: 'sender.example' },
      macros: { C: { j: 'mx.example.net' } },
      sender: 'a@example.com',
      recipients: ['b@example.net'],
      message: message('a@example.com', 'Authentication-Results: mx.example.net; dkim=pass header.d=example.com\r\n'),
    });
    const mods = r.endOfMessage?.modifications ?? [];
    expect(mods.some((m) => m.type === 'changeHeader' && m.name === 'Authentication-Results' && m.value.length === 0)).toBe(true);
    const added = mods.find((m) => m.type === 'insertHeader' && m.name === 'Authentication-Results');
    expect(added && 'value' in added ? added.value.toString('latin1').trim() : '').toMatch(/^mx\.example\.net;\s+dkim=none/);
  });

  it("AuthservID HOSTNAME is this host's name", async () => {
    const dir = tempDir('inkan-odkim-asid-');
    const conf = join(dir, 'c.conf');
    writeFileSync(conf, 'Mode v\nAuthservID HOSTNAME\n');
    const r = await run(['-x', conf, '--check-config']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`\nAuthservID ${hostname()}\n`);
  });
});

describe('opendkim(8) habits', () => {
  it('-n checks the configuration like --check-config; a bad SyslogFacility is caught there', async () => {
    const dir = tempDir('inkan-odkim-n-');
    const good = join(dir, 'good.conf');
    writeFileSync(good, 'Mode v\nSyslogFacility local3\n');
    const ok = await run(['-x', good, '-n']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^Mode v$/m);
    const bad = join(dir, 'bad.conf');
    writeFileSync(bad, 'Mode v\nSyslogFacility maill\n');
    const r = await run(['-x', bad, '-n']);
    expect(r.code).toBe(EX_CONFIG);
    expect(r.stderr).toContain(`${bad}:2: SyslogFacility takes one of auth,`);
    expect(r.stderr).not.toContain('maill');
  });
});
