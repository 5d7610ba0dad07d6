import { InvalidArgumentError, Option } from 'commander';
import { genkey, type KeySpec } from '../genkey.js';
import { resolveOwner } from '../owner.js';
import { formatZoneRecord, splitTxtStrings } from '../record.js';
import { type CommandContext, type Io, intArg, json, listArg, repeatable, reportCreatedFolder } from './shared.js';

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

interface GenkeyFileOptions extends GenkeyFlags {
  outdir: string;
  owner?: string;
  force?: boolean;
}

interface GenkeyStoreOptions extends GenkeyFlags {
  store: string;
  sign?: string[];
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

/** genkey: the key pair goes into SELECTOR.private and SELECTOR.txt. */
async function genkeyIntoFiles(io: Io, asJson: boolean, o: GenkeyFileOptions): Promise<void> {
  const owner = o.owner ? resolveOwner(o.owner) : undefined;
  const r = await genkey({
    ...keySpec(o),
    outdir: o.outdir,
    ...(owner ? { owner } : {}),
    force: !!o.force,
  });
  reportCreatedFolder(io, r, owner);
  if (asJson) {
    io.stdout(
      json({
        privateKeyFile: r.privateKeyFile,
        recordFile: r.recordFile,
        type: r.key.type,
        bits: r.key.bits,
        record: r.record,
        strings: splitTxtStrings(r.record),
      }),
    );
    return;
  }
  const mode = owner ? `${owner.user}:${owner.group} 0440` : '0600';
  io.stdout(`Wrote ${r.privateKeyFile} (${r.key.type === 'rsa' ? `RSA ${r.key.bits}-bit` : 'Ed25519'} private key, ${mode})\n`);
  io.stdout(`Wrote ${r.recordFile}:\n\n${r.zone}\n`);
  io.stdout(nextSteps(o.domain, o.selector, r.privateKeyFile, r.recordFile));
}

/** genkey --store: the key pair goes into the store; only the public record is printed. */
async function genkeyIntoStore(io: Io, asJson: boolean, o: GenkeyStoreOptions): Promise<void> {
  const { openKeyStore, publishKey } = await import('../store/index.js');
  const store = openKeyStore(o.store);
  try {
    const r = await publishKey(store, {
      ...keySpec(o),
      ...(o.sign ? { sign: o.sign } : {}),
    });
    if (asJson) {
      io.stdout(
        json({
          name: r.name,
          store: store.location.display,
          type: r.key.type,
          bits: r.key.bits,
          record: r.record,
          strings: splitTxtStrings(r.record),
          signing: r.signing,
        }),
      );
      return;
    }
    const uri = store.location.display;
    io.stdout(
      `Stored ${r.name} in ${uri} (${r.key.type === 'rsa' ? `RSA ${r.key.bits}-bit` : 'Ed25519'} private key, in the store only)\n\n`,
    );
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

/** inkan-keytool genkey: a key pair for a selector, into files or a shared store. */
export function addGenkeyCommand({ program, io, asJson }: CommandContext): void {
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
    .option(
      '--sign <pattern>',
      'with --store: also sign mail matching this SigningTable pattern with it (repeatable; only once DNS serves the record)',
      repeatable,
    )
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
      if (o.store) return genkeyIntoStore(io, asJson(), o);
      if (o.sign) throw new InvalidArgumentError('--sign goes with --store');
      return genkeyIntoFiles(io, asJson(), o);
    });
}
