import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findProcesses, findProgram, freePort, pidAlive, readUser, runProgram, signalAll, tempDir, waitFor } from './process.js';
import { type SmtpSendOptions, type SmtpSendResult, SmtpSession, sendSmtp } from './smtp-client.js';
import { type DeliveredMessage, type SmtpSink, type SmtpSinkOptions, startSmtpSink } from './smtp-sink.js';

/**
 * A private Postfix instance for tests: its own config, queue and data directories under a
 * temp dir, no chroot, smtpd on 127.0.0.1 at a free port, milters configurable, every
 * message relayed to an in-process SMTP sink (./smtp-sink.ts) that records it. Needs root
 * (Postfix's master runs as root) and the Debian package postfix. Nothing here reads outside
 * the repository and the temp dir; stop() takes everything down and removes the temp dir.
 */

/**
 * Why Postfix tests cannot run here, or undefined when they can. Under CI (CI=true) the
 * answer is always undefined: there the tests must run, and fail loudly if they cannot.
 */
export function postfixMissing(): string | undefined {
  if (process.env.CI === 'true') return undefined;
  if (!findProgram('postfix') || !findProgram('postconf')) return 'postfix is not installed (Debian package postfix)';
  if (process.getuid?.() !== 0) return 'a private Postfix instance needs root';
  if (!readUser('postfix')) return 'there is no postfix user';
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Postfix

export interface PostfixOptions {
  /** smtpd_milters, e.g. "inet:127.0.0.1:8891" or "unix:/tmp/x/milter.sock". Default none. */
  smtpdMilters?: string;
  /** non_smtpd_milters (sendmail(1), pickup). Default: the same as smtpdMilters. */
  nonSmtpdMilters?: string;
  /** milter_default_action. Default tempfail, so that a failing filter is visible. */
  milterDefaultAction?: 'accept' | 'reject' | 'tempfail' | 'quarantine';
  /** milter_protocol. Default 6. */
  milterProtocol?: string;
  /** More main.cf parameters (override the defaults). */
  mainCf?: Record<string, string>;
  /**
   * How the sink that every message is relayed to runs; default: on 127.0.0.1, recording
   * every message. Its folder is always the instance's.
   */
  sink?: Omit<SmtpSinkOptions, 'dir'>;
}

export interface PostfixInstance {
  /** The temp dir holding everything. */
  dir: string;
  /** config_directory, for `postfix -c`, `sendmail -C`, `postconf -c`. */
  configDir: string;
  /** smtpd's port on 127.0.0.1. */
  smtpPort: number;
  /** The unique myhostname of this instance (its banner shows it). */
  hostname: string;
  /** Postfix's mail_version. */
  version: string;
  /** Where every message ends up. */
  sink: SmtpSink;
  /** Send a message to this instance's smtpd. */
  sendSmtp(options: Omit<SmtpSendOptions, 'port' | 'host'>): Promise<SmtpSendResult>;
  /** Submit a message with this instance's sendmail(1): `sendmail -C dir -i -f from -- to...`. */
  sendmail(message: Buffer | string, options: { from: string; to: string[] }): Promise<{ code: number | null; stderr: string }>;
  /** Wait (bounded) until the sink has taken at least `count` messages; returns those it recorded. */
  waitForDelivered(count: number, tries?: number): Promise<DeliveredMessage[]>;
  /** The instance's log so far. */
  maillog(): string;
  stop(): Promise<void>;
}

/** Live processes whose environment has MAIL_CONFIG=configDir: every process of one instance. */
function instanceProcesses(configDir: string): number[] {
  const needle = Buffer.from(`MAIL_CONFIG=${configDir}\0`);
  return findProcesses((pid) => readFileSync(`/proc/${pid}/environ`).includes(needle));
}

const MASTER_CF = `# service  type  private unpriv chroot wakeup maxproc command
127.0.0.1:SMTP_PORT inet n   -      n      -      -       smtpd
pickup     unix  n       -      n      60     1       pickup
cleanup    unix  n       -      n      -      0       cleanup
qmgr       unix  n       -      n      300    1       qmgr
rewrite    unix  -       -      n      -      -       trivial-rewrite
bounce     unix  -       -      n      -      0       bounce
defer      unix  -       -      n      -      0       bounce
trace      unix  -       -      n      -      0       bounce
verify     unix  -       -      n      -      1       verify
flush      unix  n       -      n      1000?  0       flush
proxymap   unix  -       -      n      -      -       proxymap
smtp       unix  -       -      n      -      -       smtp
relay      unix  -       -      n      -      -       smtp
showq      unix  n       -      n      -      -       showq
error      unix  -       -      n      -      -       error
retry      unix  -       -      n      -      -       error
discard    unix  -       -      n      -      -       discard
anvil      unix  -       -      n      -      1       anvil
scache     unix  -       -      n      -      1       scache
postlog    unix-dgram n  -      n      -      1       postlogd
`;

/**
 * Start a private Postfix on 127.0.0.1 (see the file comment). Its banner is checked for this
 * instance's unique host name, so a stray instance on the same port cannot be mistaken for it.
 */
export async function startPostfix(options: PostfixOptions = {}): Promise<PostfixInstance> {
  const missing = postfixMissing();
  if (missing) throw new Error(missing);
  const postfix = findProgram('postfix') as string;
  const postconf = findProgram('postconf') as string;
  const owner = readUser('postfix') as { uid: number; gid: number };
  const dir = tempDir('inkan-postfix-');
  chmodSync(dir, 0o755);
  const configDir = join(dir, 'conf');
  const queueDir = join(dir, 'spool');
  const dataDir = join(dir, 'data');
  const maillogFile = join(dir, 'maillog');
  for (const d of [configDir, queueDir, dataDir]) mkdirSync(d, { recursive: true });
  chownSync(dataDir, owner.uid, owner.gid);
  const sink = await startSmtpSink({ ...options.sink, dir: join(dir, 'sink') });
  const smtpPort = await freePort();
  const id = dir
    .slice(dir.lastIndexOf('-') + 1)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x');
  const hostname = `mta-${id}.inkan.test`;
  const milters = options.smtpdMilters ?? '';
  const main: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: queueDir,
    data_directory: dataDir,
    maillog_file: maillogFile,
    maillog_file_prefixes: dir,
    syslog_name: `postfix-inkan-${id}`,
    myhostname: hostname,
    mydomain: 'inkan.test',
    myorigin: '$mydomain',
    mydestination: '',
    local_recipient_maps: '',
    relay_domains: '',
    alias_maps: '',
    alias_database: '',
    relayhost: `[${sink.host}]:${sink.port}`,
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    smtpd_relay_restrictions: 'permit_mynetworks, reject',
    smtp_dns_support_level: 'disabled',
    biff: 'no',
    smtpd_milters: milters,
    non_smtpd_milters: options.nonSmtpdMilters ?? milters,
    milter_default_action: options.milterDefaultAction ?? 'tempfail',
    milter_protocol: options.milterProtocol ?? '6',
    ...options.mainCf,
  };
  writeFileSync(
    join(configDir, 'main.cf'),
    `${Object.entries(main)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`,
  );
  writeFileSync(join(configDir, 'master.cf'), MASTER_CF.replace('SMTP_PORT', String(smtpPort)));
  const maillog = () => (existsSync(maillogFile) ? readFileSync(maillogFile, 'utf8') : '');
  const masterPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(queueDir, 'pid', 'master.pid'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const pid = masterPid();
    if (pid !== undefined && pidAlive(pid)) {
      await runProgram(postfix, ['-c', configDir, 'stop'], { timeoutMs: 20_000 }).catch(() => undefined);
      try {
        await waitFor(() => !pidAlive(pid), `Postfix master ${pid} to exit`, 200, 50);
      } catch {
        signalAll([pid], 'SIGKILL');
      }
    }
    // The master does not wait for its children; wait (bounded) until they are gone too.
    try {
      await waitFor(() => instanceProcesses(configDir).length === 0, 'Postfix processes to exit', 100, 50);
    } catch {
      signalAll(instanceProcesses(configDir), 'SIGKILL');
    }
    await sink.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  const version = (await runProgram(postconf, ['-c', configDir, '-h', 'mail_version'])).stdout.trim();
  const started = await runProgram(postfix, ['-c', configDir, 'start'], { timeoutMs: 60_000 });
  try {
    if (started.code !== 0) throw new Error(`postfix start exited with ${started.code}: ${started.stderr}`);
    await waitForBanner(smtpPort, hostname, 'Postfix smtpd');
  } catch (error) {
    const log = logTail(maillog(), 15);
    await stop();
    throw new Error(`${(error as Error).message}\n--- maillog ---\n${log}`);
  }

  const sendmailPath = (await runProgram(postconf, ['-c', configDir, '-h', 'sendmail_path'])).stdout.trim() || '/usr/sbin/sendmail';
  return {
    dir,
    configDir,
    smtpPort,
    hostname,
    version,
    sink,
    sendSmtp: (o) => sendSmtp({ ...o, host: '127.0.0.1', port: smtpPort }),
    async sendmail(message, o) {
      const r = await runProgram(sendmailPath, ['-C', configDir, '-i', '-f', o.from, '--', ...o.to], { input: message, timeoutMs: 60_000 });
      return { code: r.code, stderr: r.stderr };
    },
    waitForDelivered: (count, tries = 400) => waitForDelivery(sink, count, tries, maillog, 20),
    maillog,
    stop,
  };
}

// ---------------------------------------------------------------------------------------
// For every test MTA (Postfix here, Sendmail)

/** The last `count` lines of a log, to go with an error. */
export function logTail(log: string, count: number): string {
  return log.split('\n').slice(-count).join('\n');
}

/**
 * Wait (bounded) until the MTA instance of this unique host name answers on 127.0.0.1:port:
 * its banner must show the name, so a stray server on the same port cannot be mistaken for
 * it. `gone` ends the wait early (the server exited; the caller says so).
 */
export async function waitForBanner(port: number, hostname: string, what: string, gone: () => boolean = () => false): Promise<void> {
  await waitFor(
    async () => {
      if (gone()) return true;
      const banner = await smtpBanner(port);
      if (!banner.includes(hostname)) throw new Error(`port ${port} answers with "${banner}", not this instance`);
      return true;
    },
    `${what} on 127.0.0.1:${port}`,
    200,
    50,
  );
}

/** Wait (bounded) until the MTA's sink has taken `count` messages; on time-out the error ends with the MTA's log. */
export async function waitForDelivery(
  sink: SmtpSink,
  count: number,
  tries: number,
  maillog: () => string,
  logLines: number,
): Promise<DeliveredMessage[]> {
  try {
    return await sink.waitForMessages(count, tries);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- maillog ---\n${logTail(maillog(), logLines)}`);
  }
}

/** The first line a server sends on connect (bounded: 2 s), after which the client says QUIT. */
export async function smtpBanner(port: number): Promise<string> {
  const session = await SmtpSession.open({ port, helo: false, replyTimeoutMs: 2000, requireReady: false });
  await session.close();
  return session.banner.lines[0] as string;
}
