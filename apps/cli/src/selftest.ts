import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { verifyMessage } from '@inkan/dkim-core';
import { CliError, type Io, paint } from './io.js';
import { makeResolver } from './resolver.js';
import { SmtpSink, sendMail } from './smtp.js';
import { type CommandContext, collect, positive } from './options.js';

export interface SelftestOptions {
  smtp: string;
  domain: string;
  from?: string;
  sink: string;
  dns?: string[];
  timeout: number;
  json?: boolean;
}

function hostPort(text: string, defaultPort: number, what: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(text);
  if (!m) throw new CliError(`${what}: "${text}" is not host[:port]`);
  return [m[1] as string, m[2] ? Number(m[2]) : defaultPort];
}

/**
 * `inkan selftest`: the local stand-in for mailing a reflector. A sink listens on a
 * loopback address; a test message goes through the MTA to inkan-selftest@[sink address];
 * the MTA (with the milter) delivers it to the sink, where it is checked for a DKIM
 * signature that verifies against DNS.
 */
export async function selftestCommand(o: SelftestOptions, io: Io): Promise<number> {
  const [mtaHost, mtaPort] = hostPort(o.smtp, 25, '--smtp');
  const [sinkHost, sinkPort] = hostPort(o.sink, 25, '--sink');
  const sink = new SmtpSink();
  try {
    await sink.listen(sinkHost, sinkPort);
  } catch (error) {
    throw new CliError(
      `cannot listen on ${sinkHost}:${sinkPort} for the returning message (${(error as NodeJS.ErrnoException).code}): port 25 needs root; or give --sink with a free address`,
    );
  }
  const tag = randomBytes(6).toString('hex');
  const from = o.from ?? `selftest@${o.domain}`;
  const to = `inkan-selftest@[${sinkHost}]`;
  const message = Buffer.from(
    [
      `From: inkan selftest <${from}>`,
      `To: <${to}>`,
      `Subject: inkan selftest ${tag}`,
      `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <selftest.${tag}@${o.domain}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      `This message was sent by "inkan selftest" on ${hostname()} to check DKIM signing.`,
      '',
    ].join('\r\n'),
    'latin1',
  );
  const lines: string[] = [];
  const c = io.stdoutTty;
  const report = (ok: boolean, text: string) => lines.push(`${ok ? paint(c, 'green', 'ok  ') : paint(c, 'red', 'FAIL')} ${text}`);
  let status = 1;
  const outcome: Record<string, unknown> = { tag, mta: `${mtaHost}:${mtaPort}`, sink: `${sinkHost}:${sinkPort}` };
  try {
    try {
      const accepted = await sendMail(mtaHost, mtaPort, from, to, message, o.timeout);
      report(true, `${mtaHost}:${mtaPort} accepted the test message (${accepted})`);
      outcome.sent = true;
    } catch (error) {
      report(false, (error as Error).message);
      lines.push('     Is the MTA running there, and does it accept mail from this host for relaying?');
      outcome.sent = false;
      return status;
    }
    const got = await sink.waitFor((r) => r.data.includes(`selftest ${tag}`), o.timeout);
    if (!got) {
      report(false, `the message did not come back to ${sinkHost}:${sinkPort} within ${o.timeout} ms`);
      lines.push(
        `     The MTA must deliver ${to} by SMTP to ${sinkHost}:${sinkPort}. A relayhost or a content filter may send it elsewhere;`,
        '     look at the MTA log for the test message (its queue shows where it went).',
      );
      outcome.returned = false;
      return status;
    }
    outcome.returned = true;
    report(true, 'the message came back through the MTA');
    const signatures = got.data.toString('latin1').match(/^DKIM-Signature:/gim)?.length ?? 0;
    outcome.signatures = signatures;
    if (signatures === 0) {
      report(false, 'it carries no DKIM-Signature');
      lines.push(
        '     Check that the MTA passes mail to the milter (Postfix: smtpd_milters and non_smtpd_milters;',
        '     Sendmail: INPUT_MAIL_FILTER), that this host is in InternalHosts, and that the From domain',
        `     ${o.domain} has a key (Domain/KeyFile, or the SigningTable). The milter's log says why it did not sign (LogWhy yes).`,
      );
      return status;
    }
    report(true, `it carries ${signatures} DKIM-Signature field${signatures > 1 ? 's' : ''}`);
    const resolver = await makeResolver({ ...(o.dns ? { dns: o.dns } : {}) });
    const results = await verifyMessage(got.data, { resolver });
    outcome.results = results.map((r) => ({
      domain: r.domain,
      selector: r.selector,
      algorithm: r.algorithm,
      result: r.result,
      code: r.code,
      reason: r.reason ?? '',
    }));
    for (const r of results) {
      report(r.result === 'pass', `${r.algorithm} signature d=${r.domain} s=${r.selector}: ${r.result}${r.reason ? ` (${r.reason})` : ''}`);
      if (r.result !== 'pass') {
        if (r.code === 'key-not-found')
          lines.push(`     Publish the key: inkan-keytool record --key KEYFILE --selector ${r.selector} --domain ${r.domain}`);
        else if (r.result === 'temperror') lines.push('     DNS did not answer: check the resolver, or pass --dns HOST:PORT.');
        else
          lines.push(
            `     Compare the published key with the private key: inkan-keytool testkey --domain ${r.domain} --selector ${r.selector} --key KEYFILE`,
          );
      }
    }
    status = results.length > 0 && results.every((r) => r.result === 'pass') ? 0 : 1;
    return status;
  } finally {
    await sink.close();
    if (o.json) io.stdout(`${JSON.stringify({ ...outcome, ok: status === 0 })}\n`);
    else io.stdout(`${lines.join('\n')}\n${status === 0 ? paint(c, 'green', 'selftest passed') : paint(c, 'red', 'selftest failed')}\n`);
  }
}

/** `inkan selftest`: its options and help. */
export function addSelftestCommand({ program, io, setExitCode }: CommandContext): void {
  program
    .command('selftest')
    .description('send a test message through your MTA back to a local sink and check its DKIM signature')
    .option('--smtp <host:port>', 'the MTA to send through', '127.0.0.1:25')
    .option('--domain <domain>', 'the domain whose signing is checked (From: selftest@DOMAIN)', 'example.org')
    .option('--from <address>', 'the From and envelope sender address (default selftest@DOMAIN)')
    .option('--sink <host[:port]>', 'where the message comes back: the MTA delivers inkan-selftest@[HOST] there', '127.0.0.2:25')
    .option('--dns <host:port>', 'name server for the key lookup (default: the system resolver)', collect)
    .option('--timeout <ms>', 'how long to wait for each step', positive('--timeout'), 60_000)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
The message goes to inkan-selftest@[127.0.0.2] by default: an MTA without a relayhost delivers
that address literal by SMTP to 127.0.0.2 port 25, where selftest listens (port 25 needs root).
Exit status: 0 the message came back signed and every signature verifies, 1 otherwise.

Examples:
  # inkan selftest --domain example.org
  # inkan selftest --smtp 127.0.0.1:587 --domain example.org --dns 127.0.0.1:53`,
    )
    .action(async (o) => {
      setExitCode(
        await selftestCommand(
          {
            smtp: o.smtp,
            domain: o.domain,
            ...(o.from ? { from: o.from } : {}),
            sink: o.sink,
            ...(o.dns ? { dns: o.dns } : {}),
            timeout: o.timeout,
            json: !!o.json,
          },
          io,
        ),
      );
    });
}
