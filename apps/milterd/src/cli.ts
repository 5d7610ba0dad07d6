import { existsSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { describeOptions } from './config/options.js';
import type { Overrides } from './runtime.js';

export interface Invocation {
  configFile?: string;
  overrides: Overrides;
  checkConfig: boolean;
  /** No arguments at all: the first-run defaults. */
  firstRun: boolean;
  /** -h / -V: printed, nothing to run. */
  done?: number;
  warnings: string[];
}

const ACTION_LETTERS: Record<string, string> = { a: 'accept', r: 'reject', t: 'tempfail', d: 'discard', q: 'quarantine' };
const ACTION_KEYS: Record<string, string> = {
  bad: 'On-BadSignature',
  badsignature: 'On-BadSignature',
  dns: 'On-DNSError',
  dnserror: 'On-DNSError',
  int: 'On-InternalError',
  internal: 'On-InternalError',
  key: 'On-KeyNotFound',
  keynotfound: 'On-KeyNotFound',
  no: 'On-NoSignature',
  nosignature: 'On-NoSignature',
  sec: 'On-Security',
  security: 'On-Security',
  sig: 'On-SignatureError',
  signatureerror: 'On-SignatureError',
};

/**
 * Parse the dkim-filter command line. Flags become opendkim.conf options applied over
 * the config file, so `-d example.org` and `Domain example.org` are the same thing.
 */
export function parseCommandLine(argv: string[], version: string, write: (text: string) => void): Invocation {
  const inv: Invocation = { overrides: [], checkConfig: false, firstRun: argv.length <= 2, warnings: [] };
  const set = (name: string) => (value: string) => {
    inv.overrides.push([name, value]);
    return value;
  };
  const program = new Command('inkan-milterd')
    .description('The inkan DKIM milter for Postfix and Sendmail: signs outgoing mail, verifies incoming DKIM and DomainKeys signatures.')
    .version(version, '-V, --version')
    .helpOption('-h, --help')
    .configureOutput({ writeOut: write, writeErr: write })
    .exitOverride()
    .addOption(new Option('-x, --config <file>', 'configuration file (opendkim.conf syntax)'))
    .addOption(
      new Option('-c <file>', 'configuration file, as -x (a canonicalization such as relaxed/simple is also taken, as dkim-filter did)'),
    )
    .option('-p, --socket <spec>', 'socket: local:/path, unix:/path, inet:port@host, inet6:port@host', set('Socket'))
    .option('-P, --pid-file <file>', 'write the process id here', set('PidFile'))
    .option('-u, --user <user[:group]>', 'run as this user (and group) after start', set('UserID'))
    .option('-l, --syslog', 'log to syslog (facility mail)')
    .option('-d, --domain <domains>', 'domains to sign for: a comma list or a file', set('Domain'))
    .option('-s, --selector <name>', 'selector', set('Selector'))
    .option('-k, --key <file>', 'private key', set('KeyFile'))
    .option('-b, --mode <modes>', 's (sign), v (verify) or sv', set('Mode'))
    .option('-i, --internal <hosts>', 'internal hosts: a comma list or a file', set('InternalHosts'))
    .option('-I, --ignore <hosts>', 'external hosts allowed to send for our domains', set('ExternalIgnoreList'))
    .option('-S, --algorithm <alg>', 'rsa-sha256 or ed25519-sha256', set('SignatureAlgorithm'))
    .option('-T, --dns-timeout <secs>', 'DNS timeout in seconds', set('DNSTimeout'))
    .option(
      '-C, --actions <list>',
      'actions, e.g. bad=r,dns=t,int=t,key=a,no=a,sec=t,sig=a (a accept, r reject, t tempfail, d discard, q quarantine)',
    )
    .option('-D, --subdomains', 'sign mail from subdomains of the domains')
    .option('-W, --log-why', 'log why each message was or was not signed or verified')
    .option('-f, --foreground', 'stay in the foreground (always the case; for compatibility)')
    .option('-n, --check-config', 'check the configuration, print it (keys by path only), and exit (-n as in opendkim)')
    .addHelpText(
      'after',
      `
Without any argument, inkan-milterd starts on built-in defaults for a first try: it makes a
development key for example.org if there is none, listens on inet:8891@127.0.0.1 and prints
the DNS record and the Postfix and Sendmail lines to use.

Examples:
  $ inkan-milterd -p local:/var/run/milter/dkim -P /var/run/milter/inkan.pid -l \\
      -d example.org -s hoge -k /etc/mail/hoge.private -u milter:mail
  $ inkan-milterd -x /etc/inkan/milterd.conf
  $ inkan-milterd -x /etc/inkan/milterd.conf --check-config

Configuration file options (opendkim.conf syntax, "Name value" per line):
${describeOptions()}`,
    );
  try {
    program.parse(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      inv.done = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 64;
      return inv;
    }
    throw error;
  }
  const o = program.opts<Record<string, string | boolean | undefined>>();
  if (typeof o.config === 'string') inv.configFile = o.config;
  if (typeof o.c === 'string') {
    if (/^(simple|relaxed)(\/(simple|relaxed))?$/.test(o.c) && !existsSync(o.c)) {
      inv.overrides.push(['Canonicalization', o.c]);
      inv.warnings.push(`-c ${o.c} taken as a canonicalization, as dkim-filter did; -c now names a config file`);
    } else inv.configFile = o.c;
  }
  if (o.syslog) inv.overrides.push(['Syslog', 'yes']);
  if (o.subdomains) inv.overrides.push(['SubDomains', 'yes']);
  if (o.logWhy) inv.overrides.push(['LogWhy', 'yes']);
  if (o.checkConfig) inv.checkConfig = true;
  if (typeof o.actions === 'string') {
    for (const item of o.actions.split(',')) {
      const [key, letter] = item.split('=').map((s) => s.trim().toLowerCase());
      const name = ACTION_KEYS[key ?? ''];
      const action = ACTION_LETTERS[(letter ?? '').slice(0, 1)];
      if (!name || !action)
        throw new Error(`-C: "${item}" is not key=action (keys: bad, dns, int, key, no, sec, sig; actions: a, r, t, d, q)`);
      inv.overrides.push([name, action]);
    }
  }
  return inv;
}
