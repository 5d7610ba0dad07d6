import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { GenkeyError, type GenkeyResult, genkey, type KeySpec, nextSelector, selectorFromDate } from './genkey.js';
import { readPrivateKeyFile } from './keys.js';
import { type Owner, resolveOwner } from './owner.js';
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

/** The key-describing flags of genkey, as a KeySpec. */
function keySpec(o: GenkeyFlags): KeySpec {
  return {
    domain: o.domain,
    selector: o.selector,
    type: o.type,
    bits: o.bits,
    testing: !!o.testing,
    subdomains: !!o.subdomains,
    ...(o.hashAlgs ? { hashAlgorithms: o.hashAlgs } : {}),
    ...(o.note !== undefined ? { note: o.note } : {}),
  };
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

/** genkey made its output folder: say so on stderr (stdout stays the files and the record). */
function reportCreatedFolder(io: Io, r: GenkeyResult, owner: Owner | undefined): void {
  if (!r.createdFolder) return;
  const outdir = dirname(r.privateKeyFile);
  const mode = `mode 0${(r.createdFolderMode ?? 0o700).toString(8)}${owner ? `, ${owner.user}:${owner.group}` : ''}`;
  const above = r.createdFolder !== outdir ? `, with the missing folders above it from ${r.createdFolder}` : '';
  io.stderr(`inkan-keytool: created the folder ${outdir} (${mode})${above}\n`);
}

function printPolicy(io: Io, asJson: boolean, record: PolicyRecord): void {
  if (asJson) {
    io.stdout(json(record));
    return;
  }
  if (record.historic) io.stdout(`; historic: ${record.historic}\n`);
  io.stdout(`${record.name}\tIN\tTXT\t${formatQuotedStrings(record.value)}\n`);
}

/** The genkey flags that describe the key. */
interface GenkeyFlags {
  domain: string;
  selector: string;
  type: 'rsa' | 'ed25519';
  bits: number;
  testing?: boolean;
  subdomains?: boolean;
  hashAlgs?: string[];
  note?: string;
}

interface GenkeyStoreOptions extends GenkeyFlags {
  store: string;
  sign?: string[];
}

/** genkey --store: the key pair goes into the store; only the public record is printed. */
async function genkeyIntoStore(io: Io, asJson: boolean, o: GenkeyStoreOptions): Promise<void> {
  const { openKeyStore, publishKey } = await import('./store/index.js');
  const store = openKeyStore(o.store);
  try {
    const r = await publishKey(store, {
      ...keySpec(o),
      ...(o.sign ? { sign: o.sign } : {}),
    });
    if (asJson) {
      io.stdout(json({ name: r.name, store: store.location.display, type: r.key.type, bits: r.key.bits, record: r.record, strings: splitTxtStrings(r.record), signing: r.signing }));
      return;
    }
    const uri = store.location.display;
    io.stdout(`Stored ${r.name} in ${uri} (${r.key.type === 'rsa' ? `RSA ${r.key.bits}-bit` : 'Ed25519'} private key, in the store only)\n\n`);
    io.stdout(formatZoneRecord(r.record, { selector: o.selector, domain: o.domain, comment: `DKIM key ${o.selector} for ${o.domain}` }));
    const steps = [
      '',
      'Next:',
      `  1. Publish the record above in the zone of ${o.domain}.`,
      `  2. Check what DNS serves:  inkan-keytool testkey --domain ${o.domain} --selector ${o.selector}`,
    ];
    if (r.signing.length > 0) steps.push(`  Already signing for: ${r.signing.join(', ')} (every milterd uses it within seconds).`);
    else {
      steps.push(
        `  3. Sign with it:  inkan-keytool store sign --store URI --pattern ${o.domain} --domain ${o.domain} --selector ${o.selector}`,
        `     or replace the current key:  inkan-keytool store rotate --store URI --domain ${o.domain} --selector ${o.selector}`,
      );
    }
    io.stdout(`${steps.join('\n')}\n`);
  } finally {
    await store.close();
  }
}

/** inkan-keytool store ...: the shared tables in PostgreSQL or Redis. */
function addStoreCommands(program: Command, io: Io): void {
  const storeOption = () => new Option('--store <uri>', 'the store: postgresql://USER@HOST/DB or redis://[USER@]HOST:PORT/DB?prefix=inkan:').env('INKAN_STORE').makeOptionMandatory();
  const asJson = () => !!program.opts().json;
  const withStore = async <T>(uri: string, work: (store: import('./store/index.js').KeyStore, m: typeof import('./store/index.js')) => Promise<T>): Promise<T> => {
    const m = await import('./store/index.js');
    const store = m.openKeyStore(uri);
    try {
      return await work(store, m);
    } finally {
      await store.close();
    }
  };
  const store = program
    .command('store')
    .description('keys and signing tables shared by many milterd hosts, in PostgreSQL or Redis')
    .addHelpText(
      'after',
      `
The URI may carry: table names keys=, signing=, hosts= and channel= (PostgreSQL), prefix= (Redis).
INKAN_STORE may hold the URI instead of --store. Who may read private keys is up to the store's
own accounts (see docs/fleet.md).

Examples:
  $ inkan-keytool store init --store postgresql://inkan_owner@db.example.org/mail
  $ inkan-keytool genkey -d example.org -s 202607 --store postgresql://inkan_admin@db.example.org/mail
  $ inkan-keytool store sign --store redis://127.0.0.1:6379/0 --pattern example.org --domain example.org --selector 202607
  $ inkan-keytool store rotate --store redis://127.0.0.1:6379/0 --domain example.org --selector 202608
  $ inkan-keytool store retire --store redis://127.0.0.1:6379/0 --domain example.org --selector 202607
  $ inkan-keytool store list --store redis://127.0.0.1:6379/0`,
    );

  store
    .command('init')
    .description('create the PostgreSQL tables and triggers (Redis needs nothing); --print shows the SQL instead')
    .addOption(storeOption())
    .option('--print', 'print the SQL (the migration) instead of running it')
    .action(async (o) => {
      const m = await import('./store/index.js');
      const location = m.parseStoreUri(o.store);
      if (location.kind !== 'postgresql') {
        io.stdout(`${location.display}: Redis needs no schema (keys live under ${location.prefix}).\n`);
        return;
      }
      if (o.print) {
        io.stdout(m.schemaSql(location));
        return;
      }
      await withStore(o.store, (s) => s.init());
      io.stdout(`Created the tables ${location.tables.keys}, ${location.tables.signing} and ${location.tables.hosts} in ${location.display} (notifying ${location.channel}).\n`);
    });

  store
    .command('list')
    .description('the keys (without private halves), the SigningTable and InternalHosts')
    .addOption(storeOption())
    .action(async (o) => {
      const listing = await withStore(o.store, (s, m) => m.listStore(s));
      if (asJson()) {
        io.stdout(json(listing));
        return;
      }
      const lines = ['Keys:'];
      if (listing.keys.length === 0) lines.push('  (none)');
      for (const k of listing.keys) {
        const detail = k.state === 'signing' ? `signing for ${k.patterns.join(', ')}` : k.state === 'retired' ? `retired ${k.retiredAt ?? ''}`.trim() : 'not used for signing';
        lines.push(`  ${k.name}  ${k.type ?? '?'}  ${detail}`);
      }
      lines.push('SigningTable:');
      if (listing.signing.length === 0) lines.push('  (none)');
      for (const e of listing.signing) lines.push(`  ${e.pattern}  ${e.keyNames.join(' ')}${e.missing.length > 0 ? `  (missing: ${e.missing.join(', ')})` : ''}`);
      if (listing.hosts.length > 0) lines.push(`InternalHosts: ${listing.hosts.join(', ')}`);
      for (const p of listing.problems) lines.push(`problem: ${p.where}: ${p.message}`);
      io.stdout(`${lines.join('\n')}\n`);
    });

  store
    .command('sign')
    .description('make a SigningTable pattern sign with a key in the store (added to the keys it has)')
    .addOption(storeOption())
    .requiredOption('-p, --pattern <pattern>', 'sender pattern: user@domain, domain, .parent or *')
    .requiredOption('-d, --domain <domain>', "the key's domain")
    .requiredOption('-s, --selector <name>', "the key's selector")
    .option('--replace', 'replace the keys the pattern had instead of adding to them')
    .action(async (o) => {
      const r = await withStore(o.store, (s, m) => m.signWith(s, o.pattern, o.domain, o.selector, !!o.replace));
      if (asJson()) io.stdout(json(r));
      else io.stdout(`${r.pattern} now signs with ${r.keyNames.join(', ')}\n`);
    });

  store
    .command('unsign')
    .description('remove a SigningTable pattern (its mail is then no longer signed)')
    .addOption(storeOption())
    .requiredOption('-p, --pattern <pattern>', 'the pattern')
    .action(async (o) => {
      const removed = await withStore(o.store, (s) => s.removeSigning(o.pattern));
      if (!removed) throw new Error(`the SigningTable has no pattern ${o.pattern}`);
      if (asJson()) io.stdout(json({ pattern: o.pattern, removed }));
      else io.stdout(`${o.pattern} removed from the SigningTable\n`);
    });

  store
    .command('rotate')
    .description("switch a domain's signing to another selector in the store (publish its record in DNS first)")
    .addOption(storeOption())
    .requiredOption('-d, --domain <domain>', 'the signing domain')
    .requiredOption('-s, --selector <name>', 'the new selector (already in the store: genkey --store)')
    .option('--replace <selectors>', 'only replace these selectors (default: the domain\'s other keys of the same type)', listArg)
    .option('--ttl <seconds>', 'TTL of the key records, for the wait before retiring', intArg('--ttl', 0, 10_000_000), 86_400)
    .action(async (o) => {
      const r = await withStore(o.store, (s, m) => m.rotateSelector(s, o.domain, o.selector, o.replace));
      if (asJson()) {
        io.stdout(json(r));
        return;
      }
      io.stdout(
        [
          `${r.patterns.join(', ')} now sign${r.patterns.length === 1 ? 's' : ''} with ${r.name} (every milterd uses it within seconds).`,
          `Replaced: ${r.replaced.join(', ')}.`,
          `Keep the old records in DNS for at least the TTL (${o.ttl} s) plus the time mail may sit in queues, then:`,
          ...r.replacedSelectors.map((sel) => `  inkan-keytool store retire --store URI --domain ${o.domain} --selector ${sel}`),
          '',
        ].join('\n'),
      );
    });

  store
    .command('retire')
    .description('erase the private half of a selector no SigningTable entry uses (the row stays, marked retired)')
    .addOption(storeOption())
    .requiredOption('-d, --domain <domain>', 'the signing domain')
    .requiredOption('-s, --selector <name>', 'the selector to retire')
    .action(async (o) => {
      const r = await withStore(o.store, (s, m) => m.retireSelector(s, o.domain, o.selector));
      if (asJson()) io.stdout(json(r));
      else io.stdout(`${r.name} retired: its private key is gone from the store. Revoke it in DNS: publish "v=DKIM1; p=" at ${r.name} for a while, then remove it.\n`);
    });

  store
    .command('hosts')
    .description('show InternalHosts in the store, or replace them with --set')
    .addOption(storeOption())
    .option('--set <list>', 'comma-separated addresses, CIDR blocks and host names')
    .action(async (o) => {
      const hosts = await withStore(o.store, async (s) => {
        if (typeof o.set === 'string') {
          const list = o.set
            .split(/[,\s]+/)
            .map((h: string) => h.trim())
            .filter(Boolean);
          await s.setHosts(list);
          return list;
        }
        return (await s.snapshot({ privateKeys: false, hosts: true })).hosts ?? [];
      });
      if (asJson()) io.stdout(json({ hosts }));
      else io.stdout(`${hosts.join('\n')}${hosts.length > 0 ? '\n' : ''}`);
    });
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
    .option('-D, --outdir <dir>', 'where to write the files (a missing folder is created, 0700)', '.')
    .option('--owner <user:group>', 'chown the private key and make it 0440 (run as root), e.g. root:mail')
    .option('--force', 'replace existing files')
    .option('--store <uri>', 'put the key into this shared store (postgresql://... or redis://...) instead of files')
    .option('--sign <pattern>', 'with --store: also sign mail matching this SigningTable pattern with it (repeatable; only once DNS serves the record)', (v: string, prev: string[] = []) => [...prev, v])
    .addHelpText(
      'after',
      `
Exit status: 0 the files are written, 1 another error, 2 a usage error, 73 the folder or a file
could not be created, 77 --owner names someone this user may not give files to (needs root).

Examples:
  $ inkan-keytool genkey --domain example.org --selector hoge
  $ inkan-keytool genkey -d example.org -s ed2026 --type ed25519 -D /etc/mail --owner root:mail
  $ inkan-keytool genkey -d example.org -s test1 --testing --bits 1024
  $ inkan-keytool genkey -d example.org -s 202607 --store postgresql://inkan_admin@db.example.org/mail`,
    )
    .action(async (o) => {
      if (o.store) {
        await genkeyIntoStore(io, !!program.opts().json, o);
        return;
      }
      if (o.sign) throw new InvalidArgumentError('--sign goes with --store');
      const owner = o.owner ? resolveOwner(o.owner) : undefined;
      const r = await genkey({
        ...keySpec(o),
        outdir: o.outdir,
        ...(owner ? { owner } : {}),
        force: !!o.force,
      });
      reportCreatedFolder(io, r, owner);
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

  addStoreCommands(program, io);

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
      reportCreatedFolder(io, r, owner);
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
    return error instanceof GenkeyError ? error.exitCode : 1;
  }
  return code;
}
