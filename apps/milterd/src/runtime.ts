import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { CachingKeyResolver, DnsKeyResolver, type KeyResolver, MemoryKeyResolver, parseKeysFile } from '@inkan/dkim-core';
import type { Logger } from 'pino';
import { ConfigError } from './config/errors.js';
import { type Config, defaults, parseConfigText, setOption } from './config/options.js';
import type { StoreLocation } from '@inkan/keytool/store/location';
import { loadDrivers, SharedTables, type StoreRegistry, storeLocationFor } from './config/stores/store-plan.js';
import { loadSigningPlan, readHostList, SigningPlan } from './config/tables.js';
import type { Runtime } from './filter.js';
import { HostList } from './hosts.js';
import type { Metrics } from './metrics.js';

/** Options given on the command line, applied over the config file ("Name" -> value). */
export type Overrides = [name: string, value: string][];

/** Read the config file (if any) and apply command-line overrides on top. */
export async function loadConfig(configFile: string | undefined, overrides: Overrides, warnings?: string[]): Promise<Config> {
  const config = defaults();
  if (configFile) {
    let text: string;
    try {
      text = await readFile(configFile, 'utf8');
    } catch (error) {
      throw new ConfigError(configFile, `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    parseConfigText(text, configFile, config, warnings);
  }
  for (const [name, value] of overrides)
    setOption(config, name, value, `command line (${name})`, { echo: true, ...(warnings ? { warnings } : {}) });
  return config;
}

/** A resolver that records lookup latency. */
function timed(resolver: KeyResolver, metrics: Metrics | undefined): KeyResolver {
  if (!metrics) return resolver;
  return {
    async lookup(name) {
      const end = metrics.lookupSeconds.startTimer();
      try {
        return await resolver.lookup(name);
      } finally {
        end();
      }
    },
  };
}

/** Tables in a store, read once and let go (no daemon to keep them): for --check-config. */
async function readStoreOnce(config: Config, location: StoreLocation, hosts: boolean, logger: Logger): Promise<void> {
  const tables = new SharedTables(config, location, { logger, hosts, drivers: await loadDrivers() });
  try {
    const r = await tables.readOnce();
    for (const problem of r.problems) logger.warn({ problem }, 'bad row in the shared tables: it would be left out');
    logger.info({ store: location.display, keys: r.keys, entries: r.entries }, 'store read');
  } catch (error) {
    throw new Error(`cannot read the tables in ${location.display}: ${(error as Error).message}`);
  } finally {
    await tables.close();
  }
}

/**
 * OpenDKIM's test options (TestPublicKeys, TestDNSData): every key record from their files,
 * none from DNS, with a warning; undefined when neither is set.
 */
async function testKeys(config: Config, logger: Logger): Promise<KeyResolver | undefined> {
  const files: [string, string][] = [];
  if (config.testPublicKeys) files.push(['TestPublicKeys', config.testPublicKeys]);
  if (config.testDnsData) {
    if (config.testDnsData.kind !== 'file') throw new ConfigError('TestDNSData', 'takes a file (file:/path), read as TestPublicKeys');
    files.push(['TestDNSData', config.testDnsData.path]);
  }
  if (files.length === 0) return undefined;
  const keys = new MemoryKeyResolver();
  for (const [option, path] of files) {
    let text: string;
    try {
      text = await readFile(path, 'latin1');
    } catch (error) {
      throw new ConfigError(option, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    try {
      for (const [name, records] of parseKeysFile(text, path)) keys.set(name, records);
    } catch (error) {
      // The line is named, never quoted (a file named by mistake must not reach the log).
      const line = /:(\d+): /.exec((error as Error).message)?.[1];
      throw new ConfigError(`${path}${line ? `:${line}` : ''}`, `${option}: not a "name record" line (zone-style quoting allowed)`);
    }
    logger.warn({ option, file: path }, `${option}: key records come from ${path}, not from DNS: for tests only, never on a mail server`);
  }
  return keys;
}

/**
 * Build everything a message needs from a configuration: keys, tables, host lists, resolver.
 * Tables in a store come from `stores`, which keeps them fresh across messages and reloads:
 * the runtime reads the current plan (and InternalHosts) from them for every message.
 */
export async function buildRuntime(config: Config, logger: Logger, metrics?: Metrics, stores?: StoreRegistry): Promise<Runtime> {
  const inStore = storeLocationFor(config);
  let tables: SharedTables | undefined;
  if (inStore) {
    if (stores) tables = await stores.acquire(config, inStore.location, inStore.hosts);
    else await readStoreOnce(config, inStore.location, inStore.hosts, logger);
  }
  const plan = tables
    ? tables.plan
    : inStore
      ? SigningPlan.notLoaded('the store was only checked', { multiple: false, subDomains: false })
      : await loadSigningPlan(config, { warn: (message) => logger.warn(message) });
  // Errors name the file and line (or list item) of a bad entry, never the entry.
  const internalHosts = inStore?.hosts ? new HostList([]) : await readHostList(config.internalHosts, 'InternalHosts');
  const externalIgnore = config.externalIgnoreList ? await readHostList(config.externalIgnoreList, 'ExternalIgnoreList') : undefined;
  const peerList = config.peerList ? await readHostList(config.peerList, 'PeerList') : undefined;
  // A lookup ends within DNSTimeout whatever the servers do (OpenDKIM bounds a query the same
  // way): one query a second while no answer has come, each waiting for its own answer.
  const resolver =
    (await testKeys(config, logger)) ??
    new DnsKeyResolver({
      ...(config.nameservers && config.nameservers.length > 0 ? { servers: config.nameservers } : {}),
      timeout: config.dnsTimeout * 1000,
    });
  const runtime: Runtime = {
    config,
    plan,
    internalHosts,
    ...(externalIgnore ? { externalIgnore } : {}),
    ...(peerList ? { peerList } : {}),
    resolver: config.queryCache ? new CachingKeyResolver(timed(resolver, metrics)) : timed(resolver, metrics),
    // HOSTNAME is OpenDKIM's word for this host's name; unset, each message takes the MTA's name (macro j).
    authservId: config.authservId && config.authservId !== 'HOSTNAME' ? config.authservId : hostname(),
    logger,
    ...(metrics ? { metrics } : {}),
    ...(tables ? { tables } : {}),
  };
  if (tables) {
    const shared = tables;
    // Each message reads the tables in use when it starts being signed.
    Object.defineProperty(runtime, 'plan', { get: () => shared.plan, enumerable: true });
    if (inStore?.hosts) Object.defineProperty(runtime, 'internalHosts', { get: () => shared.hosts, enumerable: true });
  }
  return runtime;
}

/** A URI with its password (if any) shown as ***. */
function maskPassword(uri: string): string {
  try {
    const url = new URL(uri);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return uri.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  }
}

/** The effective configuration as opendkim.conf text, keys named by path only. */
export function describeConfig(config: Config): string {
  const lines: string[] = [];
  const put = (name: string, value: unknown) => {
    if (value === undefined) return;
    if (Array.isArray(value)) lines.push(`${name} ${value.join(', ')}`);
    else if (typeof value === 'boolean') lines.push(`${name} ${value ? 'yes' : 'no'}`);
    else if (typeof value === 'object' && value !== null && 'kind' in value) {
      const d = value as { kind: string; values?: string[]; path?: string; url?: string };
      if (d.url !== undefined) lines.push(`${name} ${maskPassword(d.url)}`);
      else lines.push(`${name} ${d.kind === 'list' ? `csl:${(d.values ?? []).join(',')}` : `${d.kind}:${d.path}`}`);
    } else lines.push(`${name} ${String(value)}`);
  };
  put('Mode', `${config.mode.sign ? 's' : ''}${config.mode.verify ? 'v' : ''}`);
  put('Socket', config.socket);
  put('Domain', config.domain);
  put('Selector', config.selector);
  put('KeyFile', config.keyFile);
  if (config.signingKeys.length) put('SigningKeys', config.signingKeys);
  put('KeyTable', config.keyTable);
  put('SigningTable', config.signingTable);
  put('MultipleSignatures', config.multipleSignatures);
  put('InternalHosts', config.internalHosts);
  put('ExternalIgnoreList', config.externalIgnoreList);
  put('MilterPeers', config.milterPeers);
  put('PeerList', config.peerList);
  put('PidFile', config.pidFile);
  put('UserID', config.userId);
  put('UMask', config.umask.toString(8).padStart(3, '0'));
  put('Syslog', config.syslog);
  put('SyslogFacility', config.syslogFacility);
  put('Canonicalization', config.canonicalization);
  put('SignatureAlgorithm', config.signatureAlgorithm);
  put('SignHeaders', config.signHeaders);
  put('OversignHeaders', config.oversignHeaders);
  put('OmitHeaders', config.omitHeaders);
  put('MinimumKeyBits', config.minimumKeyBits);
  put('SubDomains', config.subDomains);
  put(
    'AuthservID',
    config.authservId && config.authservId !== 'HOSTNAME'
      ? config.authservId
      : config.authservId
        ? hostname()
        : `(the MTA's name, macro j; else ${hostname()})`,
  );
  put('AlwaysAddARHeader', config.alwaysAddArHeader);
  put('Nameservers', config.nameservers);
  put('DNSTimeout', config.dnsTimeout);
  put('QueryCache', config.queryCache);
  put('RequireSafeKeys', config.requireSafeKeys);
  put('On-BadSignature', config.onBadSignature);
  put('On-DNSError', config.onDnsError);
  put('On-KeyNotFound', config.onKeyNotFound);
  put('On-InternalError', config.onInternalError);
  put('On-NoSignature', config.onNoSignature);
  put('On-SignatureError', config.onSignatureError);
  put('On-Security', config.onSecurity);
  put('MaximumSignaturesToVerify', config.maximumSignaturesToVerify);
  put('LogWhy', config.logWhy);
  put('MetricsListen', config.metricsListen);
  put('MilterIdleTimeout', config.milterIdleTimeout);
  put('MilterProgressInterval', config.milterProgressInterval);
  put('MaximumHeaderFields', config.maximumHeaders);
  put('MaximumHeaderBytes', config.maximumHeaderBytes);
  put('MaximumConnections', config.maximumConnections);
  put('MaximumPacketSize', config.maximumPacketSize);
  put('MaximumBufferedBytes', config.maximumBufferedBytes);
  put('MaximumKeyBits', config.maximumKeyBits);
  put('UnixClientsInternal', config.unixClientsInternal);
  put('SignatureTTL', config.signatureTtl);
  put('TestPublicKeys', config.testPublicKeys);
  put('TestDNSData', config.testDnsData);
  return `${lines.join('\n')}\n`;
}
