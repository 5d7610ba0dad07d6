import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { main as keytool } from '@inkan/keytool';
import { arCommand } from './ar.js';
import { type Io, processIo } from './io.js';
import { milterTestCommand } from './milter-test.js';
import { selftestCommand } from './selftest.js';
import { signCommand } from './sign.js';
import { verifyCommand } from './verify.js';

const version = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

const collect = (value: string, previous: string[] = []) => [...previous, value];
const list = (value: string) =>
  value
    .split(/[,:]/)
    .map((s) => s.trim())
    .filter(Boolean);
const positive = (name: string) => (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`${name} must be a positive whole number`);
  return Number(value);
};

/** The `inkan` command line. Returns the exit status: 0 ok, 1 a check failed, 2 usage or I/O error. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  let code = 0;
  const program = new Command('inkan')
    .description('Sign, verify and inspect DKIM mail at the terminal, and test a running milter.')
    .version(version, '-V, --version')
    .configureOutput({ writeOut: (t) => io.stdout(t), writeErr: io.stderr })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');

  program
    .command('verify')
    .description('verify every DKIM and DomainKeys signature (stdin when no file is named)')
    .argument('[files...]', 'messages (LF-only files are read as CRLF)')
    .option('--dns <host:port>', 'ask this name server for keys (repeatable)', collect)
    .option('--keys <file>', 'read keys from a zone-style file first ("sel._domainkey.example.org v=DKIM1; p=...")')
    .option('--timeout <ms>', 'milliseconds per DNS try', positive('--timeout'), 5000)
    .option('--json', 'one JSON object per message, one per line')
    .addHelpText(
      'after',
      `
Exit status: 0 when every message has at least one passing signature, 1 otherwise, 2 on usage or I/O errors.
A file that cannot be read is named on stderr; the other files are still checked.

Examples:
  $ inkan verify message.eml
  $ inkan verify --json --dns 127.0.0.1:5353 ~/Maildir/cur/*
  $ inkan verify --keys test-keys.txt < message.eml`,
    )
    .action(async (files: string[], o) => {
      code = await verifyCommand(files, { ...(o.dns ? { dns: o.dns } : {}), ...(o.keys ? { keys: o.keys } : {}), json: !!o.json, timeout: o.timeout }, io);
    });

  program
    .command('sign')
    .description('print the message signed (stdin when no file is named)')
    .argument('[file]', 'the message')
    .requiredOption('-d, --domain <domain>', 'signing domain (d=)')
    .option('-s, --selector <name>', 'selector; repeat with --key to sign more than once', collect)
    .option('-k, --key <file>', 'private key (PEM) for the selector at the same position', collect)
    .option('--store <uri>', 'take the keys of the domain (or of the --selector given) from a shared store: postgresql://... or redis://...')
    .addOption(new Option('-a, --algorithm <alg>', 'rsa-sha256 or ed25519-sha256 (default: from the key)').choices(['rsa-sha256', 'ed25519-sha256']))
    .option('-c, --canonicalization <c>', 'header/body canonicalization', 'relaxed/relaxed')
    .option('--headers <list>', 'fields to sign when present (comma list)', list)
    .option('--oversign <list>', 'fields to list once more than they occur (default: from)', list)
    .addHelpText(
      'after',
      `
Examples:
  $ inkan sign -d example.org -s hoge -k hoge.private message.eml > signed.eml
  $ inkan sign -d example.org -s rsa2026 -k rsa.private -s ed2026 -k ed.private message.eml
  $ inkan sign -d example.org --store redis://127.0.0.1:6379/0?prefix=inkan: message.eml`,
    )
    .action(async (file: string | undefined, o) => {
      code = await signCommand(
        file,
        {
          domain: o.domain,
          selector: o.selector ?? [],
          key: o.key ?? [],
          ...(o.store ? { store: o.store } : {}),
          ...(o.algorithm ? { algorithm: o.algorithm } : {}),
          canonicalization: o.canonicalization,
          ...(o.headers ? { headers: o.headers } : {}),
          ...(o.oversign ? { oversign: o.oversign } : {}),
        },
        io,
      );
    });

  for (const [name, sub, about] of [
    ['keygen', 'genkey', 'generate a key pair and its DNS record (inkan-keytool genkey)'],
    ['testkey', 'testkey', 'check the record DNS serves for a selector (inkan-keytool testkey)'],
  ] as const) {
    program
      .command(name)
      .description(about)
      .allowUnknownOption()
      .helpOption(false)
      .argument('[args...]')
      .action(async (args: string[]) => {
        code = await keytool(['node', 'inkan-keytool', sub, ...args], { stdout: (t) => io.stdout(t), stderr: io.stderr });
      });
  }

  program
    .command('milter-test')
    .description('drive a running milter through one full transaction and print what it does')
    .argument('<file>', 'the message ("-" for stdin)')
    .requiredOption('--socket <spec>', 'the milter: inet:port@host, unix:/path, inet:host:port')
    .option('--from <address>', 'envelope sender', 'sender@example.org')
    .option('--rcpt <address>', 'recipient (repeatable)', collect)
    .option('--client-ip <ip>', 'the SMTP client the milter is told about', '127.0.0.1')
    .option('--client-name <host>', 'its host name (default: [ip])')
    .option('--helo <name>', 'HELO name', 'client.example.org')
    .option('--auth <user>', 'pretend the client authenticated as this user ({auth_authen})')
    .option('--queue-id <id>', 'the {i} macro', 'INKANTEST')
    .option('--timeout <ms>', 'milliseconds to wait for each reply', positive('--timeout'), 30_000)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ inkan milter-test --socket inet:8891@127.0.0.1 message.eml
  $ inkan milter-test --socket unix:/var/run/milter/dkim --client-ip 192.0.2.7 --rcpt postmaster@example.org inbound.eml`,
    )
    .action(async (file: string, o) => {
      code = await milterTestCommand(
        file,
        {
          socket: o.socket,
          from: o.from,
          rcpt: o.rcpt ?? ['recipient@example.net'],
          clientIp: o.clientIp,
          ...(o.clientName ? { clientName: o.clientName } : {}),
          helo: o.helo,
          ...(o.auth ? { auth: o.auth } : {}),
          queueId: o.queueId,
          json: !!o.json,
          timeout: o.timeout,
        },
        io,
      );
    });

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
      code = await selftestCommand(
        { smtp: o.smtp, domain: o.domain, ...(o.from ? { from: o.from } : {}), sink: o.sink, ...(o.dns ? { dns: o.dns } : {}), timeout: o.timeout, json: !!o.json },
        io,
      );
    });

  program
    .command('ar')
    .description('show the Authentication-Results fields of a message as a table')
    .argument('[file]', 'the message (stdin when absent)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ inkan ar received.eml')
    .action(async (file: string | undefined, o) => {
      code = await arCommand(file, { json: !!o.json }, io);
    });

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? 0 : 2;
    }
    io.stderr(`inkan: ${(error as Error).message}\n`);
    return 2;
  }
  return code;
}
