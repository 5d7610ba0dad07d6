import { InvalidArgumentError, Option } from 'commander';
import { resolve } from 'node:path';
import { genkey, nextSelector, selectorFromDate } from '../genkey.js';
import { resolveOwner } from '../owner.js';
import { type CommandContext, intArg, json, reportCreatedFolder } from './shared.js';

/** The steps from publishing the new selector to retiring the old one. */
function rotationSteps(domain: string, selector: string, old: string, privateKeyFile: string, recordFile: string, ttl: number): string[] {
  return [
    `1. Publish ${recordFile} as ${selector}._domainkey.${domain} (leave ${old}._domainkey.${domain} in place).`,
    `2. Check it: inkan-keytool testkey --domain ${domain} --selector ${selector} --key ${privateKeyFile}`,
    `3. Switch milterd to selector ${selector} and key ${privateKeyFile} (KeyTable/Selector), then reload it: kill -HUP $(cat /var/run/milter/inkan.pid)`,
    `4. Keep ${old}._domainkey.${domain} published for at least the record TTL (${ttl} s) plus the time mail may sit in queues (a few days), so that mail signed with it still verifies.`,
    `5. Retire ${old}: publish "v=DKIM1; p=" (revoked) for a while, then remove the record and delete the old private key.`,
  ];
}

/** inkan-keytool rotate: the next selector's key in files, and the steps to switch to it. */
export function addRotateCommand({ program, io, asJson }: CommandContext): void {
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
      if (selectorFromDate(o.selectorFormat, new Date()) === o.selectorFormat)
        throw new InvalidArgumentError('--selector-format needs YYYY, MM or DD');
      const owner = o.owner ? resolveOwner(o.owner) : undefined;
      const r = await genkey({ domain: o.domain, selector, type: o.type, bits: o.bits, outdir: o.outdir, ...(owner ? { owner } : {}) });
      reportCreatedFolder(io, r, owner);
      const steps = rotationSteps(o.domain, selector, o.current ?? 'OLD', r.privateKeyFile, r.recordFile, o.ttl);
      if (asJson()) {
        io.stdout(json({ selector, privateKeyFile: r.privateKeyFile, recordFile: r.recordFile, record: r.record, steps }));
        return;
      }
      io.stdout(
        `New selector ${selector}: wrote ${r.privateKeyFile} and ${r.recordFile}\n\n${r.zone}\nRotation steps:\n${steps.map((s) => `  ${s}`).join('\n')}\n`,
      );
    });
}
