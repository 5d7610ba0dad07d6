import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logTail, waitForBanner, waitForDelivery } from './postfix.js';
import { type SmtpSendOptions, type SmtpSendResult, sendSmtp } from './smtp-client.js';
import {
  type RunResult,
  findProcesses,
  findProgram,
  freePort,
  parentOf,
  readUser,
  runProgram,
  signalAll,
  tempDir,
  waitFor,
} from './process.js';
import { type DeliveredMessage, type SmtpSink, startSmtpSink } from './smtp-sink.js';

/**
 * A private Sendmail 8.17 for tests, taken from Debian's own packages without installing them
 * (sendmail-bin conflicts with postfix): `apt-get download` sendmail-bin, sendmail-cf and m4
 * (plus libwrap0 and any other library package the binary needs that is not installed),
 * `dpkg -x` them into a cache folder, and run that binary with `-C` on configs built by the
 * extracted m4 from the extracted sendmail-cf macros:
 *
 * - the MTA (sendmail.cf): a daemon on 127.0.0.1 at a free port, its own queue, an
 *   INPUT_MAIL_FILTER line exactly as administrators write it, relaying everything to an
 *   in-process SMTP sink;
 * - the MSP (submit.cf): what `sendmail -t` and mail(1) use on Debian; it queues in its own
 *   client queue and relays by SMTP to the MTA (the only way local mail meets a milter).
 *
 * Two things of this machine type are worked around by a small LD_PRELOAD library compiled
 * here at run time (C source below, cc is needed): gethostname() returns a fully qualified
 * name (an unqualified host name makes every sendmail run sleep 60 s trying to qualify it),
 * and syslog() writes to the instance's log file (sendmail logs only through syslog, and a
 * container often has no /dev/log). Everything runs as root on loopback; stop() ends every
 * process of the instance and removes its temp folder. Nothing here reads outside the
 * repository, the cache folder and the temp folder.
 */

// ---------------------------------------------------------------------------------------
// The distribution: extracted packages + the preload library, cached between runs

export interface SendmailDistribution {
  /** The cache folder holding everything below. */
  dir: string;
  /** Where the packages are extracted (dpkg -x). */
  root: string;
  /** The real sendmail binary (setgid bit removed, see prepareSendmail). */
  binary: string;
  /** LD_LIBRARY_PATH for the extracted libraries (libwrap.so.0, ...). */
  libraryPath: string;
  /** The extracted sendmail-cf macros (…/usr/share/sendmail/cf). */
  cfDir: string;
  /** The extracted m4 that builds the .cf files. */
  m4: string;
  /** The compiled LD_PRELOAD library (see PRELOAD_SOURCE). */
  preload: string;
  /** The .deb files used, e.g. sendmail-bin_8.17.1.9-2+deb12u2_amd64.deb. */
  packages: string[];
  /** Debian version of sendmail-bin, e.g. 8.17.1.9-2+deb12u2. */
  packageVersion: string;
  /** True when this call found a ready cache; false when it downloaded and built it. */
  cached: boolean;
  /** How long this call took. */
  preparedMs: number;
}

/**
 * The LD_PRELOAD library (compiled at run time into the cache folder):
 * - gethostname() answers INKAN_SM_HOSTNAME, a qualified name, so sendmail never sleeps 60 s
 *   in its "unqualified host name" retry loop;
 * - openlog/syslog/vsyslog (and glibc's fortified __syslog_chk, which Debian's binary calls)
 *   append one line per message to INKAN_SM_LOG, so every instance has its own log.
 * Both variables are read in a constructor, before main(): sendmail rebuilds its environment.
 */
const PRELOAD_SOURCE = `/* inkan test harness: LD_PRELOAD library for a private sendmail (see sendmail.ts) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static char inkan_host[256];
static char inkan_log[1024];
static char inkan_ident[64] = "sendmail";

__attribute__((constructor)) static void inkan_init(void) {
  const char *h = getenv("INKAN_SM_HOSTNAME");
  const char *l = getenv("INKAN_SM_LOG");
  if (h != NULL) strncpy(inkan_host, h, sizeof inkan_host - 1);
  if (l != NULL) strncpy(inkan_log, l, sizeof inkan_log - 1);
}

int gethostname(char *name, size_t len) {
  struct utsname u;
  const char *h = inkan_host;
  if (h[0] == '\\0') {
    if (uname(&u) < 0) return -1;
    h = u.nodename;
  }
  if (strlen(h) >= len) { errno = ENAMETOOLONG; return -1; }
  strcpy(name, h);
  return 0;
}

void openlog(const char *ident, int option, int facility) {
  (void)option;
  (void)facility;
  if (ident != NULL) {
    strncpy(inkan_ident, ident, sizeof inkan_ident - 1);
    inkan_ident[sizeof inkan_ident - 1] = '\\0';
  }
}

void closelog(void) {}

void vsyslog(int priority, const char *format, va_list ap) {
  static const char *const names[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};
  char line[8192];
  int saved = errno, n, fd;
  time_t now = time(NULL);
  struct tm tm;
  if (inkan_log[0] == '\\0') return;
  localtime_r(&now, &tm);
  n = (int)strftime(line, sizeof line, "%b %e %H:%M:%S ", &tm);
  n += snprintf(line + n, sizeof line - n, "%s[%d]: %s: ", inkan_ident, (int)getpid(), names[priority & 7]);
  errno = saved; /* for %m */
  if (n < (int)sizeof line) n += vsnprintf(line + n, sizeof line - n, format, ap);
  if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
  while (n > 0 && line[n - 1] == '\\n') n--;
  line[n++] = '\\n';
  /* one write() per line on an O_APPEND file: lines of concurrent processes never mix */
  fd = open(inkan_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
  }
  errno = saved;
}

void syslog(int priority, const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  vsyslog(priority, format, ap);
  va_end(ap);
}

void __vsyslog_chk(int priority, int flag, const char *format, va_list ap) {
  (void)flag;
  vsyslog(priority, format, ap);
}

void __syslog_chk(int priority, int flag, const char *format, ...) {
  va_list ap;
  (void)flag;
  va_start(ap, format);
  vsyslog(priority, format, ap);
  va_end(ap);
}
`;

/**
 * The packages that make up the test Sendmail; the library packages they depend on are added
 * when they are not installed (libwrap0 on a machine with postfix, for one). m4 is taken even
 * if the system has one, so that the .cf files are built the same everywhere.
 */
const BASE_PACKAGES = ['sendmail-bin', 'sendmail-cf', 'm4'];
const READY = '.inkan-ready.json';

function cacheRoot(): string {
  return process.env.INKAN_SENDMAIL_CACHE ?? join(tmpdir(), `inkan-sendmail-cache-${process.getuid?.() ?? 'user'}`);
}

/** Why the test Sendmail cannot be set up here, or undefined when it can (or is cached). */
export function sendmailMissing(): string | undefined {
  if (process.platform !== 'linux') return 'the test Sendmail needs Linux (Debian packages)';
  if (process.getuid?.() !== 0) return 'a private Sendmail daemon needs root';
  if (!findProgram('apt-get') || !findProgram('dpkg')) return "apt-get and dpkg are needed to fetch and extract Debian's sendmail-bin";
  if (!findProgram('cc') && !findProgram('gcc'))
    return "a C compiler (Debian packages gcc libc6-dev) is needed to build the harness's preload library";
  return undefined;
}

/** The cache folder must be ours and writable only by us: a binary from it runs as root. */
function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const st = statSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    throw new Error(`${dir} is not a directory owned by uid ${uid} and writable only by it; remove it or set INKAN_SENDMAIL_CACHE`);
  }
}

function packageName(spec: string): string {
  // "libfoo1 (>= 1.2) | libbar" -> "libfoo1"; "perl:any" -> "perl"
  return (spec.split('|')[0] ?? '').trim().split(/[\s(]/)[0]?.split(':')[0] ?? '';
}

async function installedPackages(names: string[]): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const r = await runProgram('dpkg-query', ['-W', '-f=${Package} ${Status}\\n', ...names], { timeoutMs: 30_000 });
  const out = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const [name, ...status] = line.trim().split(/\s+/);
    if (name && status.join(' ') === 'install ok installed') out.add(name.split(':')[0] as string);
  }
  return out;
}

async function downloadPackages(names: string[], into: string): Promise<void> {
  if (names.length === 0) return;
  const apt = findProgram('apt-get');
  if (!apt) throw new Error('apt-get is not available to download Debian packages');
  // One call for all: each apt-get run spends seconds loading its cache.
  const r = await runProgram(apt, ['download', '-q', ...names], { cwd: into, timeoutMs: 300_000 });
  const have = readdirSync(into);
  const missing = names.filter((n) => !have.some((f) => f.startsWith(`${n}_`) && f.endsWith('.deb')));
  if (r.code !== 0 || missing.length > 0) {
    throw new Error(
      `apt-get download ${names.join(' ')} failed (${r.code}), missing: ${missing.join(' ')} (stale package lists? run apt-get update)\n${r.stderr}`,
    );
  }
}

async function debDepends(deb: string): Promise<string[]> {
  const r = await runProgram('dpkg-deb', ['-f', deb, 'Depends', 'Pre-Depends'], { timeoutMs: 30_000 });
  const names: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const value = line.replace(/^[A-Za-z-]+:\s*/, '');
    for (const item of value.split(',')) {
      const name = packageName(item);
      if (name) names.push(name);
    }
  }
  return names;
}

function libraryDirs(root: string): string[] {
  const dirs: string[] = [];
  for (const base of ['lib', 'usr/lib']) {
    const path = join(root, base);
    if (!existsSync(path)) continue;
    for (const entry of readdirSync(path)) if (/-linux-gnu/.test(entry)) dirs.push(join(path, entry));
    dirs.push(path);
  }
  return dirs;
}

let prepared: Promise<SendmailDistribution> | undefined;

/**
 * Download, extract and prepare Debian's Sendmail once per cache folder (default
 * $TMPDIR/inkan-sendmail-cache-<uid>, or INKAN_SENDMAIL_CACHE). A fresh cache is built in a
 * staging folder and renamed into place, so concurrent runs never see half of one.
 */
export function prepareSendmail(): Promise<SendmailDistribution> {
  prepared ??= buildDistribution().catch((error: unknown) => {
    prepared = undefined;
    throw error;
  });
  return prepared;
}

async function buildDistribution(): Promise<SendmailDistribution> {
  const started = Date.now();
  const missing = sendmailMissing();
  if (missing) throw new Error(missing);
  const cache = cacheRoot();
  ensurePrivateDir(cache);
  const key = createHash('sha256').update(PRELOAD_SOURCE).update(BASE_PACKAGES.join(' ')).update(process.arch).digest('hex').slice(0, 12);
  const dir = join(cache, `sendmail-${process.arch}-${key}`);
  const readyFile = join(dir, READY);
  const cached = existsSync(readyFile);
  if (!cached) {
    const staging = mkdtempSync(join(cache, 'staging-'));
    try {
      await buildInto(staging);
      try {
        renameSync(staging, dir);
      } catch {
        // another run finished first: use its copy
        if (!existsSync(readyFile)) throw new Error(`could not move ${staging} to ${dir}`);
      }
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }
  const saved = JSON.parse(readFileSync(readyFile, 'utf8')) as Pick<SendmailDistribution, 'packages' | 'packageVersion'>;
  const root = join(dir, 'root');
  return {
    dir,
    root,
    binary: join(root, 'usr', 'libexec', 'sendmail', 'sendmail'),
    libraryPath: libraryDirs(root).join(':'),
    cfDir: join(root, 'usr', 'share', 'sendmail', 'cf'),
    m4: join(root, 'usr', 'bin', 'm4'),
    preload: join(dir, 'lib', 'inkan-preload.so'),
    packages: saved.packages,
    packageVersion: saved.packageVersion,
    cached,
    preparedMs: Date.now() - started,
  };
}

async function buildInto(staging: string): Promise<void> {
  const debs = join(staging, 'debs');
  const root = join(staging, 'root');
  const lib = join(staging, 'lib');
  // The MSP runs as an unprivileged user: it must reach the binary, libraries and macros.
  for (const d of [staging, debs, root, lib]) {
    mkdirSync(d, { recursive: true });
    chmodSync(d, 0o755);
  }

  // 1. The packages, and every library package they (or a library they pull in) need that
  //    is not installed here.
  await downloadPackages(BASE_PACKAGES, debs);
  const seen = new Set(BASE_PACKAGES);
  for (let round = 0; round < 5; round++) {
    const libs = new Set<string>();
    for (const file of readdirSync(debs)) {
      if (!file.endsWith('.deb')) continue;
      for (const dep of await debDepends(join(debs, file))) if (/^lib/.test(dep) && !seen.has(dep)) libs.add(dep);
    }
    if (libs.size === 0) break;
    const installed = await installedPackages([...libs]);
    const needed = [...libs].filter((l) => !installed.has(l));
    for (const l of libs) seen.add(l);
    await downloadPackages(needed, debs);
  }
  const files = readdirSync(debs)
    .filter((f) => f.endsWith('.deb'))
    .sort();
  for (const file of files) {
    const r = await runProgram('dpkg', ['-x', join(debs, file), root], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`dpkg -x ${file} failed (${r.code}): ${r.stderr}`);
  }
  const binary = join(root, 'usr', 'libexec', 'sendmail', 'sendmail');
  if (!existsSync(binary)) throw new Error(`${binary} is not in sendmail-bin`);
  // Debian ships it setgid (root:smmsp); a set-id binary runs in glibc's secure mode, which
  // ignores LD_LIBRARY_PATH and LD_PRELOAD. Nothing here needs the bit: root runs it.
  chmodSync(binary, 0o755);
  const libraryPath = libraryDirs(root).join(':');
  const ldd = await runProgram('ldd', [binary], { env: { ...process.env, LD_LIBRARY_PATH: libraryPath } });
  const notFound = ldd.stdout.split('\n').filter((l) => l.includes('not found'));
  if (notFound.length > 0) throw new Error(`the extracted sendmail still lacks libraries:\n${notFound.join('\n')}`);

  // 2. The preload library: a qualified host name and a log file per instance.
  const cc = findProgram('cc') ?? findProgram('gcc');
  if (!cc) throw new Error('a C compiler (Debian packages gcc libc6-dev) is needed to build the preload library');
  writeFileSync(join(lib, 'inkan-preload.c'), PRELOAD_SOURCE);
  const built = await runProgram(
    cc,
    ['-shared', '-fPIC', '-O2', '-Wall', '-o', join(lib, 'inkan-preload.so'), join(lib, 'inkan-preload.c')],
    { timeoutMs: 120_000 },
  );
  if (built.code !== 0) throw new Error(`compiling the preload library failed (${built.code}): ${built.stderr}`);
  chmodSync(join(lib, 'inkan-preload.so'), 0o755);
  const sendmailBin = files.find((f) => f.startsWith('sendmail-bin_')) ?? '';
  writeFileSync(join(staging, READY), `${JSON.stringify({ packages: files, packageVersion: sendmailBin.split('_')[1] ?? '' }, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------
// Instances

export interface SendmailMilter {
  /** The S= equate exactly as in the .mc: "local:/path/to/socket" or "inet:PORT@127.0.0.1". */
  socket: string;
  /** The filter's name in INPUT_MAIL_FILTER. Default "inkan". */
  name?: string;
  /** The F= flags: "T" tempfails while the filter is unavailable, "R" rejects. Default "T". */
  flags?: string;
  /** The T= equate (e.g. "C:10s;S:10s;R:10s;E:5m"); default none, i.e. Sendmail's defaults. */
  timeouts?: string;
}

export interface SendmailOptions {
  /** The mail filter of the MTA; none: no INPUT_MAIL_FILTER line. */
  milter?: SendmailMilter;
  /** LogLevel (default 14, which includes the connection and milter chatter). */
  logLevel?: number;
  /** Milter.LogLevel (default: logLevel). */
  milterLogLevel?: number;
  /**
   * The MSP's RunAsUser and owner of its client queue, Debian's smmsp; default "nobody". The
   * local user of submit() is this account too (a user's clone has no smmsp and no setgid bit).
   */
  mspUser?: string;
  /** More lines for the MTA's .mc, before the mailers. */
  mtaMcExtra?: string[];
}

export type SendmailRole = 'mta' | 'msp';

export interface SendmailInstance {
  /** The temp folder holding everything of this instance. */
  dir: string;
  distribution: SendmailDistribution;
  /** The MTA's port on 127.0.0.1. */
  smtpPort: number;
  /** The instance's unique, fully qualified host name ($j, shown in its banner). */
  hostname: string;
  /** What the binary says about itself: "8.17.1.9". */
  version: string;
  /** The INPUT_MAIL_FILTER line of the MTA's .mc, as written ('' without a milter). */
  filterLine: string;
  /** The .mc sources and the generated .cf files. */
  mc: Record<SendmailRole, string>;
  cf: Record<SendmailRole, string>;
  /** Queue folders. */
  queueDir: Record<SendmailRole, string>;
  /** Where every message ends up. */
  sink: SmtpSink;
  /** Send a message to the MTA daemon. */
  sendSmtp(options: Omit<SmtpSendOptions, 'port' | 'host'>): Promise<SmtpSendResult>;
  /**
   * Submit as a local user does on Debian: `sendmail -t -i` with submit.cf (the MSP), run as
   * the MSP user; the MSP relays by SMTP to the MTA, or keeps the message in its queue.
   */
  submit(message: Buffer | string, args?: string[]): Promise<RunResult>;
  /**
   * The command line of sendmail.cf itself (`sendmail -C sendmail.cf -t -i -odi`), as root:
   * Sendmail never calls milters for such input. Here to show that pitfall.
   */
  submitToMta(message: Buffer | string, args?: string[]): Promise<RunResult>;
  /**
   * One queue run of the MTA or the MSP (Debian's cron: sendmail -Ac -q), in the foreground
   * (`-qf`), so that it has ended when this resolves. The MSP's runs as the MSP user.
   */
  runQueue(role: SendmailRole): Promise<RunResult>;
  /** `sendmail -bp` (mailq) of the MTA or the MSP queue. */
  listQueue(role: SendmailRole): Promise<string>;
  /** Number of messages in a queue (counts the qf files). */
  queueSize(role: SendmailRole): number;
  /** `sendmail -bt -d0.1`: version, "Compiled with:" (MILTER ...) and the system identity. */
  compileInfo(): Promise<string>;
  /** Wait (bounded) until the sink holds at least `count` messages. */
  waitForDelivered(count: number, tries?: number): Promise<DeliveredMessage[]>;
  /** The syslog lines of every sendmail process of this instance so far. */
  maillog(): string;
  /** What the daemon wrote on stdout/stderr. */
  daemonOutput(): string;
  stop(): Promise<void>;
}

/** Live sendmail processes of one instance: our binary, working in the instance's folder. */
function instanceProcesses(binary: string, dir: string): number[] {
  return findProcesses((pid) => {
    if (readlinkSync(`/proc/${pid}/exe`) !== binary) return false;
    const cwd = readlinkSync(`/proc/${pid}/cwd`);
    return cwd === dir || cwd.startsWith(`${dir}/`);
  });
}

const q = (s: string) => `\`${s}'`;

/** The folders and files of one instance, below its temp folder. */
interface Layout {
  dir: string;
  etc: string;
  run: string;
  queueDir: Record<SendmailRole, string>;
  /** The syslog lines of every sendmail process of the instance (by the preload library). */
  logFile: string;
}

/** A new temp folder with the instance's folders and files, owners and modes as on Debian. */
function createLayout(mspUser: { uid: number; gid: number }): Layout {
  const dir = realpathSync(tempDir('inkan-sendmail-'));
  chmodSync(dir, 0o755);
  const etc = join(dir, 'etc');
  const run = join(dir, 'run');
  const queueDir = { mta: join(dir, 'mqueue'), msp: join(dir, 'clientmqueue') };
  for (const d of [etc, run, queueDir.mta, queueDir.msp]) {
    mkdirSync(d, { recursive: true });
    chmodSync(d, 0o755); // whatever the umask: the MSP user reads etc/ and logs into run/
  }
  // The MTA queue is root's (Debian: root 0700); the client queue the MSP user's (smmsp 2770).
  chmodSync(queueDir.mta, 0o700);
  chownSync(queueDir.msp, mspUser.uid, mspUser.gid);
  chmodSync(queueDir.msp, 0o770);
  const logFile = join(run, 'maillog');
  writeFileSync(logFile, '');
  chmodSync(logFile, 0o666); // the MSP logs as its user
  // Statistics files are only updated if they exist; without them LogLevel > 12 logs noise.
  writeFileSync(join(run, 'sendmail.st'), '');
  writeFileSync(join(queueDir.msp, 'sm-client.st'), '');
  chownSync(join(queueDir.msp, 'sm-client.st'), mspUser.uid, mspUser.gid);
  // Sendmail's own service switch: host names and aliases from files only, never DNS.
  writeFileSync(join(etc, 'service.switch'), 'hosts\tfiles\naliases\tfiles\n');
  chmodSync(join(etc, 'service.switch'), 0o644);
  return { dir, etc, run, queueDir, logFile };
}

/** The INPUT_MAIL_FILTER line of the MTA's .mc ('' without a milter). */
function filterLineOf(milter: SendmailMilter | undefined): string {
  if (!milter) return '';
  const equates = [`S=${milter.socket}`, `F=${milter.flags ?? 'T'}`, ...(milter.timeouts ? [`T=${milter.timeouts}`] : [])].join(', ');
  return `INPUT_MAIL_FILTER(${q(milter.name ?? 'inkan')}, ${q(equates)})dnl`;
}

/** What the .mc sources of one instance are made from. */
interface McInput {
  dist: SendmailDistribution;
  layout: Layout;
  hostname: string;
  smtpPort: number;
  sinkPort: number;
  mspUserName: string;
  filterLine: string;
  options: SendmailOptions;
}

/** The lines both .mc files start with. */
function commonMc(i: McInput): string[] {
  return [
    `include(${q(join(i.dist.cfDir, 'm4', 'cf.m4'))})dnl`,
    `define(${q('confDOMAIN_NAME')}, ${q(i.hostname)})dnl`,
    `define(${q('confSERVICE_SWITCH_FILE')}, ${q(join(i.layout.etc, 'service.switch'))})dnl`,
    `define(${q('HELP_FILE')}, ${q(join(i.dist.root, 'etc', 'mail', 'helpfile'))})dnl`,
    `define(${q('confDONT_PROBE_INTERFACES')}, ${q('True')})dnl`,
    `define(${q('confTO_IDENT')}, ${q('0')})dnl`,
    `define(${q('confLOG_LEVEL')}, ${q(String(i.options.logLevel ?? 14))})dnl`,
  ];
}

/** sendmail.mc: the daemon on 127.0.0.1:smtpPort, relaying everything to the sink, with the milter. */
function mtaMc(i: McInput): string {
  const { layout, options } = i;
  return [
    'divert(-1)',
    `# inkan test MTA: 127.0.0.1:${i.smtpPort}, relays everything to the sink at 127.0.0.1:${i.sinkPort}`,
    'divert(0)dnl',
    ...commonMc(i),
    `VERSIONID(${q('inkan test MTA')})dnl`,
    `OSTYPE(${q('linux')})dnl`,
    `define(${q('QUEUE_DIR')}, ${q(layout.queueDir.mta)})dnl`,
    `define(${q('confPID_FILE')}, ${q(join(layout.run, 'sendmail.pid'))})dnl`,
    `define(${q('STATUS_FILE')}, ${q(join(layout.run, 'sendmail.st'))})dnl`,
    `define(${q('confHOST_STATUS_DIRECTORY')}, ${q('')})dnl`,
    `define(${q('ALIAS_FILE')}, ${q('')})dnl`,
    `define(${q('confMILTER_LOG_LEVEL')}, ${q(String(options.milterLogLevel ?? options.logLevel ?? 14))})dnl`,
    '# a busy test machine must not make it refuse or queue for load average',
    `define(${q('confQUEUE_LA')}, ${q('999')})dnl`,
    `define(${q('confREFUSE_LA')}, ${q('999')})dnl`,
    `define(${q('confDELAY_LA')}, ${q('0')})dnl`,
    '# deliver in the SMTP session itself: a background delivery child would outlive it',
    `define(${q('confDELIVERY_MODE')}, ${q('interactive')})dnl`,
    '# the socket lives below the temp folder, whose sticky bit Sendmail must trust',
    `define(${q('confDONT_BLAME_SENDMAIL')}, ${q('TrustStickyBit')})dnl`,
    `define(${q('SMART_HOST')}, ${q('relay:[127.0.0.1]')})dnl`,
    `define(${q('MAIL_HUB')}, ${q('relay:[127.0.0.1]')})dnl`,
    `define(${q('RELAY_MAILER_ARGS')}, ${q(`TCP $h ${i.sinkPort}`)})dnl`,
    `FEATURE(${q('nocanonify')})dnl`,
    `FEATURE(${q('accept_unresolvable_domains')})dnl`,
    `FEATURE(${q('no_default_msa')})dnl`,
    `DAEMON_OPTIONS(${q(`Port=${i.smtpPort}, Addr=127.0.0.1, Name=MTA`)})dnl`,
    ...(options.mtaMcExtra ?? []),
    ...(i.filterLine ? [i.filterLine] : []),
    `MAILER(${q('local')})dnl`,
    `MAILER(${q('smtp')})dnl`,
    '',
  ].join('\n');
}

/** submit.mc: the MSP, queueing in the client queue and relaying by SMTP to the MTA. */
function mspMc(i: McInput): string {
  const { layout } = i;
  return [
    'divert(-1)',
    `# inkan test MSP: sendmail -t queues in ${layout.queueDir.msp} and relays by SMTP to the MTA at 127.0.0.1:${i.smtpPort}`,
    'divert(0)dnl',
    ...commonMc(i),
    `VERSIONID(${q('inkan test MSP')})dnl`,
    `define(${q('confCF_VERSION')}, ${q('Submit')})dnl`,
    `define(${q('__OSTYPE__')}, ${q('')})dnl`,
    `define(${q('confTIME_ZONE')}, ${q('USE_TZ')})dnl`,
    `define(${q('confDONT_INIT_GROUPS')}, ${q('True')})dnl`,
    `define(${q('MSP_QUEUE_DIR')}, ${q(layout.queueDir.msp)})dnl`,
    `define(${q('STATUS_FILE')}, ${q(join(layout.queueDir.msp, 'sm-client.st'))})dnl`,
    `define(${q('confRUN_AS_USER')}, ${q(i.mspUserName)})dnl`,
    `define(${q('RELAY_MAILER_ARGS')}, ${q(`TCP $h ${i.smtpPort}`)})dnl`,
    `FEATURE(${q('msp')}, ${q('[127.0.0.1]')})dnl`,
    '',
  ].join('\n');
}

/** Write both .mc files and make sendmail.cf and submit.cf of them with m4; their paths. */
async function generateCf(
  dist: SendmailDistribution,
  etc: string,
  mc: Record<SendmailRole, string>,
): Promise<Record<SendmailRole, string>> {
  const cf = { mta: join(etc, 'sendmail.cf'), msp: join(etc, 'submit.cf') };
  for (const role of ['mta', 'msp'] as const) {
    const source = join(etc, role === 'mta' ? 'sendmail.mc' : 'submit.mc');
    writeFileSync(source, mc[role]);
    const r = await runProgram(dist.m4, [source], { cwd: etc });
    if (r.code !== 0 || !r.stdout.includes('\nV10/')) throw new Error(`m4 ${role} .mc failed (${r.code}): ${r.stderr}`);
    writeFileSync(cf[role], r.stdout);
    chmodSync(cf[role], 0o644);
  }
  return cf;
}

/** The environment of every sendmail process of an instance: our build, its preload, its log, its host name. */
function sendmailEnv(dist: SendmailDistribution, hostname: string, logFile: string): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    LD_LIBRARY_PATH: dist.libraryPath,
    INKAN_SM_HOSTNAME: hostname,
    INKAN_SM_LOG: logFile,
    LD_PRELOAD: dist.preload,
    ...(process.env.TZ ? { TZ: process.env.TZ } : {}),
  };
}

/** The MTA daemon as our child. */
interface Daemon {
  child: ChildProcess;
  /** What it wrote on stdout and stderr. */
  output(): string;
  exited(): boolean;
  /** Resolves when it has exited. */
  exit: Promise<void>;
}

/** The daemon in the foreground (-bD): our child, so it is reaped and stopped by us. */
function spawnDaemon(binary: string, cf: string, env: NodeJS.ProcessEnv, dir: string): Daemon {
  const child: ChildProcess = spawn(binary, ['-C', cf, '-bD'], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  child.once('error', (e) => {
    output += `spawn error: ${e.message}\n`;
  });
  return { child, output: () => output, exited: () => exited, exit };
}

/**
 * stop() of an instance (once): the daemon first, after its SMTP sessions have wound up, then
 * whatever of the instance is left (sessions, queue runners), the sink, the folder.
 */
function instanceStopper(binary: string, dir: string, daemon: Daemon, sink: SmtpSink): () => Promise<void> {
  let stopped = false;
  return async () => {
    if (stopped) return;
    stopped = true;
    const pid = daemon.child.pid;
    // Let SMTP sessions still being wound up end on their own, reaped by the daemon ...
    if (pid !== undefined && !daemon.exited()) {
      await waitFor(
        () => instanceProcesses(binary, dir).every((p) => p === pid || parentOf(p) !== pid),
        'sendmail sessions to end',
        100,
        50,
      ).catch(() => undefined);
      daemon.child.kill('SIGTERM');
      await within(daemon.exit, 10_000);
      if (!daemon.exited()) {
        daemon.child.kill('SIGKILL');
        await within(daemon.exit, 5_000);
      }
    }
    // ... then anything of this instance that is left (sessions, queue runners).
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const left = instanceProcesses(binary, dir);
      if (left.length === 0) break;
      signalAll(left, signal);
      await waitFor(() => instanceProcesses(binary, dir).length === 0, 'sendmail processes to exit', 100, 50).catch(() => undefined);
    }
    const survivors = instanceProcesses(binary, dir);
    await sink.stop();
    rmSync(dir, { recursive: true, force: true });
    if (survivors.length > 0) throw new Error(`sendmail processes ${survivors.join(', ')} of ${dir} survived SIGKILL`);
  };
}

/**
 * Start a private Sendmail MTA daemon on 127.0.0.1 (see the file comment), with its MSP.
 * Its banner is checked for this instance's unique host name, so a stray daemon on the same
 * port cannot be mistaken for it.
 */
export async function startSendmail(options: SendmailOptions = {}): Promise<SendmailInstance> {
  const dist = await prepareSendmail();
  const binary = realpathSync(dist.binary);
  const mspUserName = options.mspUser ?? 'nobody';
  const mspUser = readUser(mspUserName);
  if (!mspUser) throw new Error(`there is no user ${mspUserName} for the MSP`);
  const layout = createLayout(mspUser);
  const { dir, queueDir, logFile } = layout;
  const sink = await startSmtpSink({ dir: join(dir, 'sink') });
  const smtpPort = await freePort();
  const id = dir
    .slice(dir.lastIndexOf('-') + 1)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x');
  const hostname = `mta-${id}.inkan.test`;
  const filterLine = filterLineOf(options.milter);
  const mcInput: McInput = { dist, layout, hostname, smtpPort, sinkPort: sink.port, mspUserName, filterLine, options };
  const mc = { mta: mtaMc(mcInput), msp: mspMc(mcInput) };
  let cf: Record<SendmailRole, string>;
  try {
    cf = await generateCf(dist, layout.etc, mc);
  } catch (error) {
    await sink.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const env = sendmailEnv(dist, hostname, logFile);
  const sendmail = (role: SendmailRole, args: string[], o: { input?: Buffer | string; asMspUser?: boolean; timeoutMs?: number } = {}) =>
    runProgram(binary, ['-C', cf[role], ...args], {
      env,
      cwd: '/',
      ...(o.input !== undefined ? { input: o.input } : {}),
      timeoutMs: o.timeoutMs ?? 60_000,
      ...(o.asMspUser ? { uid: mspUser.uid, gid: mspUser.gid } : {}),
    });
  const daemon = spawnDaemon(binary, cf.mta, env, dir);
  const maillog = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const stop = instanceStopper(binary, dir, daemon, sink);

  try {
    await waitForBanner(smtpPort, hostname, 'Sendmail', daemon.exited);
    if (daemon.exited()) throw new Error('the Sendmail daemon exited');
  } catch (error) {
    const log = logTail(maillog(), 15);
    await stop();
    throw new Error(`${(error as Error).message}\n--- output ---\n${daemon.output()}\n--- maillog ---\n${log}`);
  }

  const compileInfo = async () => (await sendmail('mta', ['-bt', '-d0.1'], { input: '' })).stdout;
  const version = /Version (\S+)/.exec(await compileInfo())?.[1] ?? 'unknown';

  return {
    dir,
    distribution: dist,
    smtpPort,
    hostname,
    version,
    filterLine,
    mc,
    cf,
    queueDir,
    sink,
    sendSmtp: (o) => sendSmtp({ ...o, host: '127.0.0.1', port: smtpPort }),
    submit: (message, args = []) => sendmail('msp', ['-t', '-i', ...args], { input: message, asMspUser: true }),
    // -odi: deliver in this process (the default, background, would fork a delivery child)
    submitToMta: (message, args = []) => sendmail('mta', ['-t', '-i', '-odi', ...args], { input: message }),
    // -qf: one queue run in the foreground (plain -q forks a runner that outlives the command)
    runQueue: (role) => sendmail(role, ['-qf'], { asMspUser: role === 'msp' }),
    listQueue: async (role) => {
      const r = await sendmail(role, ['-bp'], { asMspUser: role === 'msp' });
      return `${r.stdout}${r.stderr}`;
    },
    queueSize: (role) => readdirSync(queueDir[role]).filter((f) => f.startsWith('qf')).length,
    compileInfo,
    waitForDelivered: (count, tries = 400) => waitForDelivery(sink, count, tries, maillog, 25),
    maillog,
    daemonOutput: daemon.output,
    stop,
  };
}

/** Wait for `promise`, but no longer than `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
