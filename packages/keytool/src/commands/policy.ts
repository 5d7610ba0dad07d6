import { type Command, Option } from 'commander';
import { adspRecord, dmarcRecord, type PolicyRecord, sspRecord } from '../policy.js';
import { formatQuotedStrings } from '../record.js';
import { type CommandContext, intArg, json, repeatable } from './shared.js';

function printPolicy({ io, asJson }: CommandContext, record: PolicyRecord): void {
  if (asJson()) {
    io.stdout(json(record));
    return;
  }
  if (record.historic) io.stdout(`; historic: ${record.historic}\n`);
  io.stdout(`${record.name}\tIN\tTXT\t${formatQuotedStrings(record.value)}\n`);
}

function addDmarc(policy: Command, ctx: CommandContext): void {
  policy
    .command('dmarc')
    .description('the _dmarc record (RFC 7489)')
    .requiredOption('-d, --domain <domain>', 'the domain')
    .addOption(
      new Option('-p, --p <policy>', 'what receivers should do with failing mail')
        .choices(['none', 'quarantine', 'reject'])
        .makeOptionMandatory(),
    )
    .addOption(new Option('--sp <policy>', 'policy for subdomains').choices(['none', 'quarantine', 'reject']))
    .option('--rua <mailto>', 'aggregate report address (repeatable)', repeatable)
    .option('--ruf <mailto>', 'failure report address (repeatable)', repeatable)
    .option('--pct <n>', 'percentage of mail the policy applies to', intArg('--pct', 0, 100))
    .addOption(new Option('--adkim <mode>', 'DKIM alignment: relaxed or strict').choices(['r', 's']))
    .addOption(new Option('--aspf <mode>', 'SPF alignment: relaxed or strict').choices(['r', 's']))
    .addHelpText('after', '\nExample:\n  $ inkan-keytool policy dmarc --domain example.org --p quarantine --rua mailto:dmarc@example.org')
    .action((o) => {
      printPolicy(
        ctx,
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
}

function addAdsp(policy: Command, ctx: CommandContext): void {
  policy
    .command('adsp')
    .description('the historic ADSP record (RFC 5617, Historic since 2013)')
    .requiredOption('-d, --domain <domain>', 'the domain')
    .addOption(new Option('--dkim <policy>', 'signing practice').choices(['unknown', 'all', 'discardable']).default('unknown'))
    .addHelpText('after', '\nExample:\n  $ inkan-keytool policy adsp --domain example.org --dkim all')
    .action((o) => printPolicy(ctx, adspRecord(o.domain, o.dkim)));
}

function addSsp(policy: Command, ctx: CommandContext): void {
  policy
    .command('ssp')
    .description('the historic pre-ADSP _policy record ("t=y; o=~"), for old checkers')
    .requiredOption('-d, --domain <domain>', 'the domain')
    .option('--signs-all', 'o=- (every message is signed) instead of o=~')
    .option('--no-testing', 'leave out t=y')
    .addHelpText('after', '\nExample:\n  $ inkan-keytool policy ssp --domain example.org')
    .action((o) => printPolicy(ctx, sspRecord(o.domain, { testing: o.testing, signsAll: !!o.signsAll })));
}

/** inkan-keytool policy dmarc|adsp|ssp: policy records to publish. */
export function addPolicyCommands(ctx: CommandContext): void {
  const policy = ctx.program.command('policy').description('print policy records (DMARC; historic ADSP and SSP)');
  addDmarc(policy, ctx);
  addAdsp(policy, ctx);
  addSsp(policy, ctx);
}
