import { readFileSync } from 'node:fs';
import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { genkey } from '@inkan/keytool';
import {
  createMilterServer,
  formatPostfixMilter,
  formatSendmailFilter,
  type MilterListener,
  type MilterLogger,
  parseSocketSpec,
  type SocketSpec,
} from '@inkan/milter-protocol';
import type { Logger } from 'pino';
import { parseCommandLine } from './cli.js';
import { ConfigError } from './config/errors.js';
import { readHostList } from './config/tables.js';
import type { HostList } from './hosts.js';
import type { Config } from './config/options.js';
import { StoreRegistry } from './config/stores/store-plan.js';
import { createFilter, MILTERD_NEGOTIATION, type Runtime } from './filter.js';
import { createLogger, flushLogger } from './log.js';
import { isLoopbackHost, parseMetricsListen } from './loopback.js';
import type { Metrics } from './metrics.js';
import { dropPrivileges, nobody, type RunAs, resolveRunAs } from './privileges.js';
import { buildRuntime, describeConfig, loadConfig } from './runtime.js';

export const EX_USAGE = 64;
export const EX_CONFIG = 78;

const version = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** Where the first run keeps its development key. */
function stateDirectory(config: Config): string {
  if (config.stateDirectory) return config.stateDirectory;
  if (process.env.INKAN_STATE_DIR) return process.env.INKAN_STATE_DIR;
  if (process.getuid?.() === 0) return '/var/lib/inkan';
  return join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'inkan');
}

/** First run: a development key for example.org, made once, and what to do with it. */
async function firstRunSetup(config: Config, print: (text: string) => void): Promise<void> {
  const dir = stateDirectory(config);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keyFile = join(dir, 'dev.private');
  let record: string;
  try {
    await readFile(keyFile);
    record = (await readFile(join(dir, 'dev.txt'), 'utf8')).trim();
  } catch {
    const made = await genkey({ domain: 'example.org', selector: 'dev', outdir: dir, testing: true, force: true });
    record = made.zone.trim();
  }
  config.domain = { kind: 'list', values: ['example.org'] };
  config.selector = 'dev';
  config.keyFile = keyFile;
  const spec = parseSocketSpec(config.socket);
  print(
    [
      'inkan-milterd: first run on built-in defaults (no arguments given).',
      `  signing key for example.org, selector dev: ${keyFile}`,
      '  DNS record to publish (zone of example.org):',
      `    ${record.replace(/\n/g, '\n    ')}`,
      '  Postfix (main.cf):',
      `    ${formatPostfixMilter(spec)}`,
      `    ${formatPostfixMilter(spec, 'non_smtpd_milters')}`,
      '    milter_default_action = tempfail',
      '  Sendmail (.mc, then rebuild sendmail.cf):',
      `    ${formatSendmailFilter('inkan', spec, { onFailure: 'T' })}`,
      '  For real use: inkan-milterd -x /etc/inkan/milterd.conf (see --help).',
      '',
    ].join('\n'),
  );
}

function bridge(logger: Logger): MilterLogger {
  const log: MilterLogger = (level, message, details) => logger[level](details ?? {}, message);
  log.enabled = (level) => logger.isLevelEnabled(level);
  return log;
}

/** The MTA hosts allowed to connect over TCP (MilterPeers), if any. */
async function readPeerList(config: Config): Promise<HostList | undefined> {
  if (!config.milterPeers) return undefined;
  // A bad entry is named by file and line (or list item), never quoted.
  return readHostList(config.milterPeers, 'MilterPeers');
}

/**
 * The rules about where milterd may listen, judged the same by --check-config and start-up:
 * an inet Socket off loopback needs MilterPeers; MetricsListen must be a loopback address:port.
 * Loopback means an IP address in 127.0.0.0/8 or ::1 (or, for Socket, the name localhost).
 */
export function checkListenRules(config: Config): void {
  let spec: SocketSpec;
  try {
    spec = parseSocketSpec(config.socket);
  } catch (error) {
    throw new ConfigError('Socket', (error as Error).message);
  }
  if (spec.kind !== 'unix' && !isLoopbackHost(spec.host, { allowLocalhost: true }) && !config.milterPeers) {
    throw new ConfigError(
      'Socket',
      `${config.socket} is not a loopback address: name the MTA hosts allowed to connect with MilterPeers (PeerList is OpenDKIM's list of SMTP clients passed unprocessed)`,
    );
  }
  if (config.metricsListen) {
    try {
      parseMetricsListen(config.metricsListen);
    } catch (error) {
      throw new ConfigError('MetricsListen', (error as Error).message);
    }
  }
}

const PID_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Is a process with this id running (one we may not signal counts too)? */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM';
  }
}

/**
 * Write our pid to PidFile without ever following a symbolic link or writing into a file
 * someone else created: the file is created anew (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0644). If
 * something is already there: a regular file naming a process that is not running is stale
 * and replaced (once); a live pid, or anything that is not a regular file (a symbolic link
 * planted there, a directory), is refused with an error naming the file, and left as it is.
 */
async function writePidFile(path: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const file = await open(path, PID_FLAGS, 0o644);
      try {
        await file.chmod(0o644); // whatever the process umask (fchmod: on this file, not a path)
        await file.writeFile(`${process.pid}\n`);
      } finally {
        await file.close();
      }
      return;
    } catch (error) {
      if (errorCode(error) !== 'EEXIST' && errorCode(error) !== 'ELOOP') throw new Error(`PidFile ${path}: ${(error as Error).message}`);
    }
    const stats = await lstat(path).catch(() => undefined);
    if (stats && !stats.isFile()) {
      throw new Error(
        `PidFile ${path} exists and is not a regular file (${stats.isSymbolicLink() ? 'a symbolic link' : 'not a file'}); refusing to use it: remove it`,
      );
    }
    if (stats) {
      const text = await readPidText(path);
      const pid = Number(text.trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new Error(
          `PidFile ${path} names process ${pid}, which is running: is another inkan-milterd running? Stop it, or remove the file`,
        );
      }
      if (attempt > 0) throw new Error(`PidFile ${path} keeps coming back; refusing to use it`);
      await unlink(path).catch((e: unknown) => {
        if (errorCode(e) !== 'ENOENT') throw new Error(`PidFile ${path}: cannot remove the stale file: ${(e as Error).message}`);
      });
    } else if (attempt > 0) {
      throw new Error(`PidFile ${path} cannot be created`);
    }
  }
}

/** The text of a pid file, opened without following a symbolic link ('' when it cannot be read). */
async function readPidText(path: string): Promise<string> {
  try {
    const file = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      return (await file.read(Buffer.alloc(32), 0, 32, 0)).buffer.toString('latin1').replace(/\0+$/, '');
    } finally {
      await file.close();
    }
  } catch {
    return '';
  }
}

/** Remove PidFile on stop, only if it still holds our pid (a successor may have written its own). */
async function removePidFile(path: string, logger: Logger): Promise<void> {
  const text = await readPidText(path);
  if (text.trim() !== String(process.pid)) {
    logger.warn({ pidFile: path }, 'the pid file no longer holds our pid; leaving it');
    return;
  }
  await unlink(path).catch((e: NodeJS.ErrnoException) => logger.warn({ error: e.code }, 'could not remove the pid file'));
}

export interface Daemon {
  listener: MilterListener;
  /** Re-read configuration, tables and keys; keeps the old ones on error. */
  reload(): Promise<boolean>;
  /** Stop accepting, let messages in flight finish (up to graceMs), close. */
  stop(graceMs?: number): Promise<void>;
}

/** Start serving with a loaded configuration (no signal handling: see main()). */
export async function startDaemon(
  config: Config,
  options: { logger: Logger; configFile?: string; reloadConfig?: () => Promise<Config>; runAs?: RunAs; firstRun?: boolean } = {
    logger: createLogger({ syslog: false, facility: 'mail' }),
  },
): Promise<Daemon> {
  const { logger } = options;
  checkListenRules(config);
  // prom-client is loaded only when metrics are asked for (it is megabytes of RSS otherwise).
  const metrics: Metrics | undefined = config.metricsListen ? new (await import('./metrics.js')).Metrics() : undefined;
  // Tables in a shared store live as long as the daemon, across reloads.
  const stores = new StoreRegistry(logger, metrics);
  let runtime: Runtime;
  try {
    runtime = await buildRuntime(config, logger, metrics, stores);
  } catch (error) {
    await stores.closeAll();
    throw error;
  }
  let inFlight = 0;
  const idle: (() => void)[] = [];
  const filter = createFilter(() => runtime);
  let spec: SocketSpec = parseSocketSpec(config.socket);
  if (spec.kind === 'unix') {
    spec = { ...spec, mode: 0o777 & ~config.umask, ...(options.runAs ? { group: options.runAs.gid } : {}) };
  }
  const peers = await readPeerList(config);
  const server = createMilterServer({
    handler: (ctx) => {
      const h = filter(ctx);
      metrics?.connections.inc();
      // A message counts as in flight from MAIL until its end of message or abort, once:
      // an end of message or abort without MAIL (a confused or hostile client) changes nothing.
      let counted = false;
      const done = () => {
        if (!counted) return;
        counted = false;
        inFlight--;
        if (inFlight === 0) for (const f of idle.splice(0)) f();
      };
      return {
        ...h,
        mail: (sender, c) => {
          if (!counted) inFlight++;
          counted = true;
          return h.mail?.(sender, c);
        },
        endOfMessage: async (modifier, c) => {
          try {
            return await h.endOfMessage?.(modifier, c);
          } finally {
            done();
          }
        },
        abort: (c) => {
          done();
          return h.abort?.(c);
        },
        close: () => {
          metrics?.connections.dec();
        },
      };
    },
    ...MILTERD_NEGOTIATION,
    // A silent connection (no command, or a packet left half sent) is closed; a busy handler is not silence.
    idleTimeoutMs: config.milterIdleTimeout * 1000,
    progressIntervalMs: config.milterProgressInterval * 1000,
    logger: bridge(logger),
    // Hostile clients: connections past MaximumConnections are closed at once; a packet
    // announced longer than MaximumPacketSize closes its connection before its data is kept;
    // all connections together hold at most MaximumBufferedBytes of packets (the one holding
    // the most is closed). The MTA applies its milter default action to a closed connection.
    maxConnections: config.maximumConnections,
    maxPacketSize: config.maximumPacketSize,
    maxBufferedBytes: config.maximumBufferedBytes,
    ...(peers ? { allowPeer: (address: string) => (peers as HostList).matches(address) } : {}),
  });
  let listener: MilterListener;
  try {
    listener = await server.listen(spec);
  } catch (error) {
    await stores.closeAll();
    throw error;
  }
  try {
    if (config.pidFile) await writePidFile(config.pidFile);
    if (metrics && config.metricsListen) logger.info({ metrics: await metrics.listen(config.metricsListen) }, 'metrics listening');
  } catch (error) {
    await server.close();
    await metrics?.close();
    await stores.closeAll();
    throw error;
  }

  return {
    listener,
    async reload() {
      try {
        const next = options.reloadConfig ? await options.reloadConfig() : config;
        runtime = await buildRuntime(next, logger, metrics, stores);
        logger.info({ keys: runtime.plan.keys.map((k) => `${k.selector}:${k.keyFile}`) }, 'configuration reloaded');
        return true;
      } catch (error) {
        logger.error({ error: (error as Error).message }, 'reload failed; keeping the previous configuration');
        return false;
      } finally {
        await stores.keepOnly(runtime.tables);
      }
    },
    async stop(graceMs = 30_000) {
      logger.info({ inFlight }, 'stopping: no new connections; letting messages in flight finish');
      const listenersClosed = listener.close();
      if (inFlight > 0) {
        await Promise.race([new Promise<void>((r) => idle.push(r)), new Promise((r) => setTimeout(r, graceMs).unref())]);
      }
      await server.close();
      await listenersClosed;
      await stores.closeAll();
      await metrics?.close();
      if (config.pidFile) await removePidFile(config.pidFile, logger);
      logger.info('stopped');
    },
  };
}

/** The inkan-milterd program. Returns the exit code once it has stopped. */
export async function main(argv: string[]): Promise<number> {
  const print = (t: string) => process.stdout.write(t);
  let inv: ReturnType<typeof parseCommandLine>;
  try {
    inv = parseCommandLine(argv, version, print);
  } catch (error) {
    process.stderr.write(`inkan-milterd: ${(error as Error).message}\n`);
    return EX_USAGE;
  }
  if (inv.done !== undefined) return inv.done;
  let config: Config;
  try {
    config = await loadConfig(inv.configFile, inv.overrides, inv.warnings);
  } catch (error) {
    process.stderr.write(`inkan-milterd: ${(error as Error).message}\n`);
    return EX_CONFIG;
  }
  const logger = createLogger({ syslog: config.syslog, facility: config.syslogFacility });
  for (const w of inv.warnings) logger.warn(w);
  logger.info({ version, argv: argv.slice(2), config: inv.configFile }, 'starting');

  try {
    if (inv.firstRun) await firstRunSetup(config, print);
    if (inv.checkConfig) {
      checkListenRules(config);
      await buildRuntime(config, logger);
      await readPeerList(config);
      print(describeConfig(config));
      return 0;
    }
    let runAs: RunAs | undefined;
    if (process.getuid?.() === 0) {
      if (config.userId) runAs = resolveRunAs(config.userId);
      else if (!config.allowRoot) runAs = nobody();
    }
    const daemon = await startDaemon(config, {
      logger,
      ...(runAs ? { runAs } : {}),
      reloadConfig: () =>
        loadConfig(inv.configFile, inv.overrides).then((c) =>
          inv.firstRun ? { ...c, domain: config.domain, selector: config.selector, keyFile: config.keyFile } : c,
        ),
    });
    if (runAs) {
      dropPrivileges(runAs);
      logger.info(
        { user: runAs.user, uid: runAs.uid, group: runAs.group, gid: runAs.gid, groups: process.getgroups?.() },
        config.userId
          ? 'running as the configured user'
          : 'no UserID configured: dropped root to nobody (set UserID, or AllowRoot yes to keep root)',
      );
    } else if (process.getuid?.() === 0) logger.warn('running as root (AllowRoot yes)');
    logger.info({ socket: daemon.listener.address, pid: process.pid }, 'ready');

    return await new Promise<number>((resolve) => {
      let stopping = false;
      process.on('SIGHUP', () => {
        void daemon.reload();
      });
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'signal received');
        // The last lines get a bounded time to drain: a stalled log reader does not keep milterd up.
        void daemon
          .stop()
          .then(() => flushLogger(logger))
          .then(() => resolve(0));
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
  } catch (error) {
    const configError = error instanceof ConfigError;
    logger.fatal({ error: (error as Error).message }, configError ? 'configuration error' : 'cannot start');
    process.stderr.write(`inkan-milterd: ${(error as Error).message}\n`);
    return configError ? EX_CONFIG : 1;
  }
}
