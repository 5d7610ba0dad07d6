import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findProcesses, findProgram, freePort, parentOf, pidAlive, readUser, signalAll, tempDir, waitFor } from './process.js';

/**
 * A private rspamd (Debian's 3.4) as a signing milter: its rspamd_proxy worker in milter mode
 * scans in-process (self_scan) and its dkim_signing module signs for clients on loopback.
 * Everything it writes (config, run, db, log, temp files) is under one temporary folder; it
 * listens on a loopback TCP port and a unix socket only, and asks only the DNS server it is
 * given. No Redis: without one the modules that need it stay off.
 */
export interface RspamdOptions {
  /**
   * 'dkim-only': no rules and no modules but dkim (which holds the signer) and dkim_signing.
   * 'stock': Debian's /etc/rspamd configuration as installed, with this instance's sockets,
   * folders and DNS server; fuzzy_check is off (it would ask rspamd.com's servers).
   */
  modules: 'dkim-only' | 'stock';
  /** rspamd_proxy worker processes (the `count` of the worker). */
  workers: number;
  /** PEM private key (PKCS#1 or PKCS#8) for `selector._domainkey.domain`. */
  keyFile: string;
  domain: string;
  selector: string;
  /** "127.0.0.1:port" of the DNS server rspamd may ask (give a loopback one, e.g. dnsmasq). */
  nameserver: string;
  /** rspamd's log level ('notice' unless told: one line per message). */
  logLevel?: 'error' | 'warning' | 'notice' | 'info';
}

export interface RspamdInstance {
  /** Milter socket specs, as milter clients take them. */
  tcp: string;
  unix: string;
  port: number;
  socketPath: string;
  dir: string;
  /** The main process and its workers, now. */
  pids(): number[];
  /** CPU seconds (user + system) used so far by the main process and its live workers. */
  cpuSeconds(): number;
  /** The tail of rspamd's log (for error messages). */
  logTail(): string;
  stop(): Promise<void>;
}

/** Why rspamd cannot run here, or undefined when it can. */
export function rspamdMissing(): string | undefined {
  if (!findProgram('rspamd')) return 'rspamd is not installed (Debian package rspamd)';
  if (!existsSync('/etc/rspamd/rspamd.conf')) return 'rspamd has no /etc/rspamd/rspamd.conf';
  if (process.getuid?.() === 0 && !readUser('_rspamd')) return 'there is no _rspamd user';
  return undefined;
}

function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** The proxy worker's settings: both sockets, milter mode, scanning in the worker itself. */
function proxyWorker(port: number, socketPath: string, workers: number): string {
  return [
    `bind_socket = "127.0.0.1:${port}";`,
    `bind_socket = "${socketPath} mode=0666";`,
    'milter = yes;',
    'timeout = 120s;',
    'upstream "local" { default = yes; self_scan = yes; }',
    `count = ${workers};`,
    '',
  ].join('\n');
}

function signing(options: RspamdOptions, keyPath: string): string {
  // Sign for loopback clients (sign_local) with the From domain's key; the bench's envelope
  // and From agree, and there is no authenticated user to match.
  return [
    'allow_username_mismatch = true;',
    `domain { "${options.domain}" { path = "${keyPath}"; selector = "${options.selector}"; } }`,
    '',
  ].join('\n');
}

/** Start a private rspamd; stop it with stop(). */
export async function startRspamd(options: RspamdOptions): Promise<RspamdInstance> {
  const missing = rspamdMissing();
  if (missing) throw new Error(missing);
  if (!Number.isInteger(options.workers) || options.workers < 1 || options.workers > 32) throw new Error('workers must be 1..32');
  const rspamd = findProgram('rspamd') as string;
  const dir = tempDir('inkan-rspamd-');
  chmodSync(dir, 0o755); // an MTA's processes must reach the unix socket
  const [run, db, log, local] = ['run', 'db', 'log', 'local'].map((d) => join(dir, d)) as [string, string, string, string];
  for (const d of [run, db, log, join(local, 'local.d'), join(local, 'override.d')]) mkdirSync(d, { recursive: true });
  const keyPath = join(dir, 'dkim.key');
  copyFileSync(options.keyFile, keyPath);
  chmodSync(keyPath, 0o600);
  const port = await freePort();
  const socketPath = join(run, 'proxy.sock');
  const logFile = join(log, 'rspamd.log');
  const level = options.logLevel ?? 'notice';
  const localAddrs = '"127.0.0.0/8"';
  let conf: string;
  if (options.modules === 'dkim-only') {
    conf = join(dir, 'rspamd.conf');
    writeFileSync(
      conf,
      [
        'options {',
        `  pidfile = "${join(run, 'rspamd.pid')}";`,
        `  tempdir = "${run}";`,
        `  dns { nameserver = ["${options.nameserver}"]; timeout = 1s; retransmits = 1; }`,
        `  local_addrs = ${localAddrs};`,
        '  filters = "dkim";', // the C modules to load: dkim only (dkim_signing signs through it)
        '}',
        `logging { type = "file"; filename = "${logFile}"; level = "${level}"; }`,
        `worker "rspamd_proxy" {\n${proxyWorker(port, socketPath, options.workers)}}`,
        'modules { path = "$PLUGINSDIR"; }', // Lua plugins without a section of their own stay off
        'dkim { }',
        `dkim_signing {\n${signing(options, keyPath)}}`,
        '',
      ].join('\n'),
    );
  } else {
    conf = '/etc/rspamd/rspamd.conf';
    const override = (name: string, text: string) => writeFileSync(join(local, 'override.d', name), text);
    const localD = (name: string, text: string) => writeFileSync(join(local, 'local.d', name), text);
    override('logging.inc', `type = "file";\nfilename = "${logFile}";\nlevel = "${level}";\n`);
    localD('options.inc', `dns { nameserver = ["${options.nameserver}"]; }\nlocal_addrs = ${localAddrs};\ntempdir = "${run}";\n`);
    override('worker-proxy.inc', proxyWorker(port, socketPath, options.workers));
    // The proxy scans by itself; the normal worker would only listen on a fixed port.
    override('worker-normal.inc', 'enabled = false;\n');
    override('worker-controller.inc', `bind_socket = "127.0.0.1:${await freePort()}";\n`);
    localD('dkim_signing.conf', signing(options, keyPath));
    // Off: these ask hosts on the Internet (rspamd.com's fuzzy storage; DNS block lists, whose
    // queries time out through dnsmasq here although it answers NXDOMAIN).
    for (const module of ['fuzzy_check', 'rbl']) localD(`${module}.conf`, 'enabled = false;\n');
  }
  const owner = process.getuid?.() === 0 ? readUser('_rspamd') : undefined;
  if (owner) for (const p of [dir, run, db, log, keyPath]) chownSync(p, owner.uid, owner.gid);
  const args = [
    '-f',
    '-c',
    conf,
    '--var',
    `DBDIR=${db}`,
    '--var',
    `RUNDIR=${run}`,
    '--var',
    `LOGDIR=${log}`,
    '--var',
    `LOCAL_CONFDIR=${local}`,
  ];
  if (owner) args.push('-u', '_rspamd', '-g', '_rspamd');
  const child: ChildProcess = spawn(rspamd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const mainPid = child.pid as number;
  const children = () => findProcesses((pid) => parentOf(pid) === mainPid);
  const proxies = () => children().filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('rspamd_proxy'));
  const logTail = () => {
    try {
      return readFileSync(logFile, 'latin1').slice(-2000);
    } catch {
      return stderr.slice(-2000);
    }
  };
  const stop = async () => {
    if (!exited) {
      const gone = new Promise((r) => child.once('exit', r));
      const workers = children();
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (!exited) child.kill('SIGKILL');
      await waitFor(() => workers.every((p) => !pidAlive(p)), 'rspamd workers to end', 40, 50).catch(() => signalAll(workers, 'SIGKILL'));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Loading the configuration compiles the URL suffix list (seconds); the stock rules take longer.
    await waitFor(() => exited || (existsSync(socketPath) && proxies().length === options.workers), 'rspamd to listen', 600, 100);
    if (exited) throw new Error(`rspamd exited: ${logTail()}`);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${stderr.slice(-1500)}`);
  }
  return {
    tcp: `inet:${port}@127.0.0.1`,
    unix: `unix:${socketPath}`,
    port,
    socketPath,
    dir,
    pids: () => [mainPid, ...children()],
    cpuSeconds: () => [mainPid, ...children()].reduce((sum, pid) => sum + cpuOf(pid), 0),
    logTail,
    stop,
  };
}
