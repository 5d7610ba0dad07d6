import { Option } from 'commander';
import { readPrivateKeyFile } from '../keys.js';
import { formatKeyRecord, formatQuotedStrings, formatZoneRecord, splitTxtStrings } from '../record.js';
import { type CommandContext, json, listArg } from './shared.js';

/** inkan-keytool record: the DNS record of an existing private key. */
export function addRecordCommand({ program, io, asJson }: CommandContext): void {
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
      const format = asJson() ? 'json' : o.format;
      if (format === 'json') {
        io.stdout(
          json({
            name: `${o.selector}._domainkey${o.domain ? `.${o.domain}` : ''}`,
            type: key.type,
            bits: key.bits,
            record,
            strings: splitTxtStrings(record),
          }),
        );
      } else if (format === 'txt') io.stdout(`${formatQuotedStrings(record)}\n`);
      else io.stdout(formatZoneRecord(record, { selector: o.selector, ...(o.domain ? { domain: o.domain } : {}) }));
    });
}
