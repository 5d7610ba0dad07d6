import { exitCode, type TestKeyReport, testKey } from '../testkey.js';
import { type CommandContext, intArg, json, repeatable } from './shared.js';

/** The testkey report as lines for people. */
function reportLines(report: TestKeyReport, keyFile: string | undefined): string[] {
  const lines = [`${report.name}: ${report.status === 'good' ? 'good' : report.status === 'problem' ? 'PROBLEM' : 'could not check'}`];
  if (report.keyType)
    lines.push(`  key: ${report.keyType}${report.keyBits ? ` ${report.keyBits} bits` : ''}${report.testing ? ', testing (t=y)' : ''}`);
  if (report.strings)
    lines.push(
      `  published as ${report.strings.length} string${report.strings.length === 1 ? '' : 's'} (${report.strings.map((s) => s.length).join(' + ')} octets)`,
    );
  if (report.keyMatches !== undefined) lines.push(`  matches ${keyFile}: ${report.keyMatches ? 'yes' : 'NO'}`);
  for (const p of report.problems) lines.push(`  problem: ${p}`);
  for (const w of report.warnings) lines.push(`  warning: ${w}`);
  return lines;
}

/** inkan-keytool testkey: what DNS serves for a selector, and whether it matches a private key. */
export function addTestkeyCommand({ program, io, asJson, setExitCode }: CommandContext): void {
  program
    .command('testkey')
    .description('check the record DNS serves for a selector, and that it matches a private key')
    .requiredOption('-d, --domain <domain>', 'the signing domain')
    .requiredOption('-s, --selector <name>', 'the selector')
    .option('-k, --key <file>', 'the private key to compare with the published one')
    .option('--dns <host:port>', 'ask this name server (default: the system resolver)', repeatable)
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
      const report = await testKey({
        domain: o.domain,
        selector: o.selector,
        ...(o.key ? { keyFile: o.key } : {}),
        ...(o.dns ? { dns: o.dns } : {}),
        timeout: o.timeout,
      });
      const code = exitCode(report);
      setExitCode(code);
      if (asJson()) {
        io.stdout(json(report));
        return;
      }
      (code === 0 ? io.stdout : io.stderr)(`${reportLines(report, o.key).join('\n')}\n`);
    });
}
