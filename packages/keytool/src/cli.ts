import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { genkey, nextSelector, selectorFromDate } from './genkey.js';
import { readPrivateKeyFile } from './keys.js';
import { resolveOwner } from './owner.js';
import { adspRecord, dmarcRecord, type PolicyRecord, sspRecord } from './policy.js';
import { formatKeyRecord, formatQuotedStrings, formatZoneRecord, splitTxtStrings } from './record.js';
import { exitCode, testKey } from './testkey.js';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const defaultIo: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

const version = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

function intArg(name: string, min: number, max: number) {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

function listArg(value: string): string[] {
  return value
    .split(/[,:]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function nextSteps(domain: string, selector: string, privateKeyFile: string, recordFile: string): string {
  return [
    'Next:',
    `  1. Publish the record in ${recordFile} in the zone of ${domain}`,
    `     (name ${selector}._domainkey.${domain}, type TXT; keep the strings as they are).`,
    `  2. Check what DNS serves:  inkan-keytool testkey --domain ${domain} --selector ${selector} --key ${privateKeyFile}`,
    `  3. Configure milterd:      inkan-milterd -d ${domain} -s ${selector} -k ${privateKeyFile}`,
    '     (or in the config file: Domain, Selector and KeyFile).',
    '',
  ].join('\n');
}

function printPolicy(io: Io, asJson: boolean, record: PolicyRecord): void {
  if (asJson) {
    io.stdout(json(record));
    return;
  }
  if (record.historic) io.stdout(`; historic: ${record.historic}\n`);
  io.stdout(`${record.name}\tIN\tTXT\t${formatQuotedStrings(record.value)}\n`);
}

/** The inkan-keytool command line. Returns the exit code. */
export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  let code = 0;
  const program = new Command('inkan-keytool')
    .description('DKIM keys and DNS records: make key pairs, print the records to publish, check what DNS serves.')
    .version(version, '-V, --version')
    .option('--json', 'print JSON for scripts instead of text')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');

  program
    .command('genkey')
    .description('generate a key pair for a selector: SELECTOR.private and SELECTOR.txt')
    .requiredOption('-d, --domain <domain>', 'the signing domain (d=)')
    .requiredOption('-s, --selector <name>', 'the selector (s=)')
    .addOption(new Option('-t, --type <type>', 'key type').choices(['rsa', 'ed25519']).default('rsa'))
    .option('-b, --bits <n>', 'RSA key size (1024 to 4096)', intArg('--bits', 1024, 4096), 2048)
    .option('--testing', 'mark the key as in testing (t=y)')
    .option('--subdomains', 'allow i= in subdomains (otherwise the record says t=s)')
    .option('--hash-algs <list>', 'hash algorithms allowed with the key (h=), e.g. sha256', listArg)
    .option('--note <text>', 'a note in the record (n=)')
    .option('-D, --outdir <dir>', 'where to write the files', '.')
    .option('--owner <user:group>', 'chown the private key and make it 0440 (run as root), e.g. root:mail')
    .option('--force', 'replace existing files')
    .addHelpText(
      'after',
      `
Examples:
  $ inkan-keytool genkey --domain example.org --selector hoge
  $ inkan-keytool genkey -d example.org -s ed2026 --type ed25519 -D /etc/mail --owner root:mail
  $ inkan-keytool genkey -d example.org -s test1 --testing --bits 1024`,
    )
    .action(async (o) => {
      const owner = o.owner ? resolveOwner(o.owner) : undefined;
      const r = await genkey({
        domain: o.domain,
        selector: o.selector,
        type: o.type,
        bits: o.bits,
        testing: !!o.testing,
        subdomains: !!o.subdomains,
        ...(o.hashAlgs ? { hashAlgorithms: o.hashAlgs } : {}),
        ...(o.note !== undefined ? { note: o.note } : {}),
        outdir: o.outdir,
        ...(owner ? { owner } : {}),
        force: !!o.force,
      });
      if (program.opts().json) {
        io.stdout(json({ privateKeyFile: r.privateKeyFile, recordFile: r.recordFile, type: r.key.type, bits: r.key.bits, record: r.record, strings: splitTxtStrings(r.record) }));
        return;
      }
      const mode = owner ? `${owner.user}:${owner.group} 0440` : '0600';
      io.stdout(`Wrote ${r.privateKeyFile} (${r.key.type === 'rsa' ? `RSA ${r.key.bits}-bit` : 'Ed25519'} private key, ${mode})\n`);
      io.stdout(`Wrote ${r.recordFile}:\n\n${r.zone}\n`);
      io.stdout(nextSteps(o.domain, o.selector, r.privateKeyFile, r.recordFile));
    });

  program
    .command('record')
    .description('print the DNS record for an existing private key')
    .requiredOption('-k, --key <file>', 'private key (PEM, PKCS#1 or PKCS#8, RSA or Ed25519)')
    .requiredOption('-s, --selector <name>', 'the selector')
    .option('-d, --domain <domain>', 'write the owner name fully qualified')
    .addOption(new Option('-f, --format <format>', 'output form').choices(['zone', 'txt', 'json']).default('zone'))
    .option('--testing', 't=y')
    .option('--subdomains', 'allow i= in subdomains (otherwise t=s)')
    .option('--hash-algs <list>', 'h=', listArg)
    .addHelpText(
      'after',
      `
Examples:
  $ inkan-keytool record --key /etc/mail/hoge.private --selector hoge --domain example.org
  $ inkan-keytool record -k hoge.private -s hoge --format txt`,
    )
    .action(async (o) => {
      const key = await readPrivateKeyFile(o.key);
      const record = formatKeyRecord({
        type: key.type,
        p: key.p,
        testing: !!o.testing,
        subdomains: !!o.subdomains,
        ...(o.hashAlgs ? { hashAlgorithms: o.hashAlgs } : {}),
      });
      const format = program.opts().json ? 'json' : o.format;
      if (format === 'json') {
        io.stdout(json({ name: `${o.selector}._domainkey${o.domain ? `.${o.domain}` : ''}`, type: key.type, bits: key.bits, record, strings: splitTxtStrings(record) }));
      } else if (format === 'txt') io.stdout(`${formatQuotedStrings(record)}\n`);
      else io.stdout(formatZoneRecord(record, { selector: o.selector, ...(o.domain ? { domain: o.domain } : {}) }));
    });

  program
    .command('testkey')
    .description('check the record DNS serves for a selector, and that it matches a private key')
    .requiredOption('-d, --domain <domain>', 'the signing domain')
    .requiredOption('-s, --selector <name>', 'the selector')
    .option('-k, --key <file>', 'the private key to compare with the published one')
    .option('--dns <host:port>', 'ask this name server (default: the system resolver)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--timeout <ms>', 'milliseconds per DNS try', intArg('--timeout', 1, 60_000), 5000)
    .addHelpText(
      'after',
      `
Exit status: 0 the record is good, 1 a problem was found, 2 it could not be checked (DNS failure).

Examples:
  $ inkan-keytool testkey --domain example.org --selector hoge --key /etc/mail/hoge.private
  $ inkan-keytool testkey -d example.org -s hoge --dns 127.0.0.1:5353 --json`,
    )
    .action(async (o) => {
      const report = await testKey({ domain: o.domain, selector: o.selector, ...(o.key ? { keyFile: o.key } : {}), ...(o.dns ? { dns: o.dns } : {}), timeout: o.timeout });
      code = exitCode(report);
      if (program.opts().json) {
        io.stdout(json(report));
        return;
      }
      const lines = [`${report.name}: ${report.status === 'good' ? 'good' : report.status === 'problem' ? 'PROBLEM' : 'could not check'}`];
      if (report.keyType) lines.push(`  key: ${report.keyType}${report.keyBits ? ` ${report.keyBits} bits` : ''}${report.testing ? ', testing (t=y)' : ''}`);
      if (report.strings) lines.push(`  published as ${report.strings.length} string${report.strings.length === 1 ? '' : 's'} (${report.strings.map((s) => s.length).join(' + ')} octets)`);
      if (report.keyMatches !== undefined) lines.push(`  matches ${o.key}: ${report.keyMatches ? 'yes' : 'NO'}`);
      for (const p of report.problems) lines.push(`  problem: ${p}`);
      for (const w of report.warnings) lines.push(`  warning: ${w}`);
      (code === 0 ? io.stdout : io.stderr)(`${lines.join('\n')}\n`);
    });

  const policy = program.command('policy').description('print policy records (DMARC; historic ADSP and SSP)');
  policy
    .command('dmarc')
    .description('the _dmarc record (RFC 7489)')
    .requiredOption('-d, --domain <domain>', 'the domain')
    .addOption(new Option('-p, --p <policy>', 'what receivers should do with failing mail').choices(['none', 'quarantine', 'reject']).makeOptionMandatory())
    .addOption(new Option('--sp <policy>', 'policy for subdomains').choices(['none', 'quarantine', 'reject']))
    .option('--rua <mailto>', 'aggregate report address (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--ruf <mailto>', 'failure report address (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--pct <n>', 'percentage of mail the policy applies to', intArg('--pct', 0, 100))
    .addOption(new Option('--adkim <mode>', 'DKIM alignment: relaxed or strict').choices(['r', 's']))
    .addOption(new Option('--aspf <mode>', 'SPF alignment: relaxed or strict').choices(['r', 's']))
    .addHelpText('after', '\nExample:\n  $ inkan-keytool policy dmarc --domain example.org --p quarantine --rua mailto:dmarc@example.org')
    .action((o) => {
      printPolicy(
        io,
        !!program.opts().json,
        dmarcRecord({
          domain: o.domain,
          policy: o.p,
          ...(o.sp ? { subdomainPolicy: o.sp } : {}),
          ...(o.rua ? { rua: o.rua } : {}),
          ...(o.ruf ? { ruf: o.ruf } : {}),
          ...(o.pct !== undefined ? { pct: o.pct } : {}),
          ...(o.adkim ? { adkim: o.adkim } : {}),
          ...(o.aspf ? { aspf: o.aspf } : {}),
        }),
      );
    });
  policy
    .command('adsp')
    .description('the historic ADSP record (RFC 5617, Historic since 2013)')
    .requiredOption('-d, --domain <domain>', 'the domain')
    .addOption(new Option('--dkim <policy>', 'signing practice').choices(['unknown', 'all', 'discardable']).default('unknown'))
    .addHelpText('after', '\nExample:\n  $ inkan-keytool policy adsp --domain example.org --dkim all')
    .action((o) => printPolicy(io, !!program.opts().json, adspRecord(o.domain, o.dkim)));
  policy
    .command('ssp')
    .description('the historic pre-ADSP _policy record ("t=y; o=~"), for old checkers')
    .requiredOption('-d, --domain <domain>', 'the domain')
    .option('--signs-all', 'o=- (every message is signed) instead of o=~')
    .option('--no-testing', 'leave out t=y')
    .addHelpText('after', '\nExample:\n  $ inkan-keytool policy ssp --domain example.org')
    .action((o) => printPolicy(io, !!program.opts().json, sspRecord(o.domain, { testing: o.testing, signsAll: !!o.signsAll })));

  program
    .command('rotate')
    .description("generate the next selector's key and print the rotation steps")
    .requiredOption('-d, --domain <domain>', 'the signing domain')
    .option('--selector-format <format>', 'selector name from the date (YYYY, MM, DD)', 'YYYYMM')
    .option('--current <selector>', 'the selector in use now (named in the steps)')
    .addOption(new Option('-t, --type <type>', 'key type').choices(['rsa', 'ed25519']).default('rsa'))
    .option('-b, --bits <n>', 'RSA key size', intArg('--bits', 1024, 4096), 2048)
    .option('-D, --outdir <dir>', 'where the keys live', '.')
    .option('--owner <user:group>', 'chown the new private key and make it 0440')
    .option('--ttl <seconds>', 'TTL of the key records, for the wait before retiring', intArg('--ttl', 0, 10_000_000), 86_400)
    .addHelpText('after', '\nExample:\n  $ inkan-keytool rotate --domain example.org --current 202605 -D /etc/mail --owner root:mail')
    .action(async (o) => {
      const selector = await nextSelector(resolve(o.outdir), o.selectorFormat, new Date());
      if (selectorFromDate(o.selectorFormat, new Date()) === o.selectorFormat) throw new InvalidArgumentError('--selector-format needs YYYY, MM or DD');
      const owner = o.owner ? resolveOwner(o.owner) : undefined;
      const r = await genkey({ domain: o.domain, selector, type: o.type, bits: o.bits, outdir: o.outdir, ...(owner ? { owner } : {}) });
      const old = o.current ?? 'OLD';
      const steps = [
        `1. Publish ${r.recordFile} as ${selector}._domainkey.${o.domain} (leave ${old}._domainkey.${o.domain} in place).`,
        `2. Check it: inkan-keytool testkey --domain ${o.domain} --selector ${selector} --key ${r.privateKeyFile}`,
        `3. Switch milterd to selector ${selector} and key ${r.privateKeyFile} (KeyTable/Selector), then reload it: kill -HUP $(cat /var/run/milter/inkan.pid)`,
        `4. Keep ${old}._domainkey.${o.domain} published for at least the record TTL (${o.ttl} s) plus the time mail may sit in queues (a few days), so that mail signed with it still verifies.`,
        `5. Retire ${old}: publish "v=DKIM1; p=" (revoked) for a while, then remove the record and delete the old private key.`,
      ];
      if (program.opts().json) {
        io.stdout(json({ selector, privateKeyFile: r.privateKeyFile, recordFile: r.recordFile, record: r.record, steps }));
        return;
      }
      io.stdout(`New selector ${selector}: wrote ${r.privateKeyFile} and ${r.recordFile}\n\n${r.zone}\nRotation steps:\n${steps.map((s) => `  ${s}`).join('\n')}\n`);
    });

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? 0 : 2;
    }
    io.stderr(`inkan-keytool: ${(error as Error).message}\n`);
    return 1;
  }
  return code;
}
