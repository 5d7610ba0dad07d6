import { createHash } from 'node:crypto';
import type { KeyStore, openKeyStore, StoreRole, StoreSnapshot, StoreWatcher, watchStore } from '@inkan/keytool/store';
import { backoffMs, combineLocations, parseStoreUri, type StoreLocation } from '@inkan/keytool/store/location';
import type { Logger } from 'pino';
import { HostList } from '../../hosts.js';
import type { Metrics } from '../../metrics.js';
import { ConfigError } from '../errors.js';
import { type Config, isStoreDataset } from '../options.js';
import { keyFromPem, planFromTables, type SigningKey, SigningPlan } from '../tables.js';

/** keytool's store client and watcher, loaded only when a store is configured (with them pg or ioredis, megabytes a daemon without a store never needs). */
export interface StoreDrivers {
  openKeyStore: typeof openKeyStore;
  watchStore: typeof watchStore;
}

export async function loadDrivers(): Promise<StoreDrivers> {
  const { openKeyStore, watchStore } = await import('@inkan/keytool/store');
  return { openKeyStore, watchStore };
}

/** Clients matching every address: InternalHosts before a store's hosts table has loaded (so that mail is held, not passed). */
const UNKNOWN_HOSTS = new HostList(['0.0.0.0/0', '::/0']);

/** The store a configuration names for KeyTable and SigningTable (and InternalHosts), or undefined for files. */
export function storeLocationFor(config: Config): { location: StoreLocation; hosts: boolean } | undefined {
  const named: { option: string; role: StoreRole; url: string }[] = [];
  if (isStoreDataset(config.keyTable)) named.push({ option: 'KeyTable', role: 'keys', url: config.keyTable.url });
  if (isStoreDataset(config.signingTable)) named.push({ option: 'SigningTable', role: 'signing', url: config.signingTable.url });
  if (isStoreDataset(config.internalHosts)) named.push({ option: 'InternalHosts', role: 'hosts', url: config.internalHosts.url });
  if (named.length === 0) return undefined;
  if (!isStoreDataset(config.keyTable) || !isStoreDataset(config.signingTable)) {
    throw new ConfigError(
      'configuration',
      'KeyTable and SigningTable must both name the store (InternalHosts may too, but only with them)',
    );
  }
  const parts = named.map((n) => {
    try {
      return { role: n.role, location: parseStoreUri(n.url, n.role) };
    } catch (error) {
      throw new ConfigError(n.option, (error as Error).message);
    }
  });
  try {
    return { location: combineLocations(parts), hosts: isStoreDataset(config.internalHosts) };
  } catch (error) {
    throw new ConfigError('configuration', (error as Error).message);
  }
}

export interface SharedTablesOptions {
  logger: Logger;
  metrics?: Metrics;
  /** Read InternalHosts from the store too. */
  hosts: boolean;
  /** The store client and watcher (see loadDrivers). */
  drivers: StoreDrivers;
  /** Passed to the clients (tests use short ones). */
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
}

/** Tables built from one read of the store. */
interface Built {
  plan: SigningPlan;
  hosts?: HostList;
  problems: string[];
  keys: number;
  entries: number;
}

/**
 * KeyTable, SigningTable (and InternalHosts) held in a shared store, kept in memory and
 * refreshed on change: a NOTIFY (PostgreSQL) or a pub/sub message (Redis), a reconnection,
 * a SIGHUP, or the periodic poll. Each refresh reads every table in one transaction and
 * swaps in a new plan only when that read succeeded; rows that are wrong are logged and
 * left out, and senders whose keys they were are held (tempfailed), never passed unsigned.
 * When the store cannot be reached the last good tables stay in use, the outage is logged
 * and shown in metrics, and reads are retried with backoff.
 */
export class SharedTables {
  readonly location: StoreLocation;
  private readonly store: KeyStore;
  private readonly watcher: StoreWatcher;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly withHosts: boolean;
  private readonly planOptions: { multiple: boolean; subDomains: boolean };
  private current: SigningPlan;
  private currentHosts: HostList | undefined;
  private fingerprint: string | undefined;
  private running: Promise<void> | undefined;
  private again: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private downSince: number | undefined;
  private closed = false;
  /** When the tables in use were read (ms since the epoch; 0 before the first read). */
  loadedAt = 0;

  constructor(config: Config, location: StoreLocation, options: SharedTablesOptions) {
    this.location = location;
    this.logger = options.logger.child({ store: location.display });
    this.metrics = options.metrics;
    this.withHosts = options.hosts;
    this.planOptions = { multiple: config.multipleSignatures, subDomains: config.subDomains };
    this.current = SigningPlan.notLoaded(`the signing tables in ${location.display} have not loaded yet`, this.planOptions);
    const clientOptions = {
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      queryTimeoutMs: options.queryTimeoutMs ?? 10_000,
      clientName: 'inkan-milterd',
      onError: (error: Error) => this.logger.debug({ error: error.message }, 'store connection error'),
    };
    this.store = options.drivers.openKeyStore(location, { ...clientOptions, reconnect: true });
    const events = {
      changed: (what: string) => this.refresh(`changed (${what})`),
      connected: () => this.refresh('watch connected'),
      lost: (error: Error) => {
        this.logger.debug({ error: error.message }, 'lost the change notifications; reconnecting');
        // The first loss is the quickest sign of an outage; after that the reads retry on their own backoff.
        if (this.downSince === undefined) this.refresh('watch connection lost');
      },
    };
    this.watcher = options.drivers.watchStore(location, events, clientOptions);
    this.metrics?.storeUp.set({ store: location.display }, 0);
    this.metrics?.storeLoaded.set({ store: location.display }, 0);
  }

  /** The signing plan in use: the last complete, good read of the store. */
  get plan(): SigningPlan {
    return this.current;
  }

  /** InternalHosts from the store (every client until it has loaded, so that their mail is held). */
  get hosts(): HostList {
    return this.currentHosts ?? UNKNOWN_HOSTS;
  }

  get loaded(): boolean {
    return this.current.unavailable === undefined;
  }

  /** First read (waits for it, bounded by the client timeouts), then watch and poll. */
  async start(): Promise<void> {
    await this.refreshNow('start');
    if (this.closed) return;
    this.watcher.start();
    if (this.location.pollSeconds > 0) {
      this.pollTimer = setInterval(() => this.refresh('poll'), this.location.pollSeconds * 1000);
      this.pollTimer.unref();
    }
  }

  /** Read once (for --check-config): throws when the store cannot be read. */
  async readOnce(): Promise<{ keys: number; entries: number; problems: string[] }> {
    const snapshot = await this.store.snapshot({ privateKeys: true, hosts: this.withHosts });
    const built = this.build(snapshot);
    return { keys: built.keys, entries: built.entries, problems: built.problems };
  }

  /** Ask for a re-read; reads already under way are followed by one more, never run twice at once. */
  refresh(reason: string): void {
    if (this.closed) return;
    void this.refreshNow(reason);
  }

  private refreshNow(reason: string): Promise<void> {
    if (this.running) {
      this.again = reason;
      return this.running;
    }
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    this.running = this.load(reason)
      .catch((error: Error) => {
        // Not expected (every fault of a row is a problem line): keep the tables in use.
        this.logger.error({ error: error.message, reason }, 'could not build tables from the store: keeping the ones in use');
      })
      .finally(() => {
        this.running = undefined;
        const next = this.again;
        this.again = undefined;
        if (next !== undefined && !this.closed) void this.refreshNow(next);
      });
    return this.running;
  }

  private async load(reason: string): Promise<void> {
    const started = Date.now();
    const label = { store: this.location.display };
    let snapshot: StoreSnapshot;
    try {
      snapshot = await this.store.snapshot({ privateKeys: true, hosts: this.withHosts });
    } catch (error) {
      if (this.closed) return;
      this.metrics?.storeReloads.inc({ ...label, result: 'failed' });
      this.unreachable(error as Error, reason);
      return;
    }
    if (this.closed) return;
    this.reachable();
    const fingerprint = createHash('sha256').update(JSON.stringify(snapshot)).digest('hex');
    if (fingerprint === this.fingerprint) {
      this.metrics?.storeReloads.inc({ ...label, result: 'unchanged' });
      return;
    }
    const built = this.build(snapshot);
    for (const problem of built.problems) this.logger.error({ problem }, 'bad row in the shared tables: left out (the rest is in use)');
    if (this.loaded && this.current.keys.length > 0 && built.keys === 0 && built.entries === 0) {
      // A store that comes back empty (a Redis restarted without its data, a truncated
      // table) would stop all signing at once: keep what we have and say so.
      this.metrics?.storeReloads.inc({ ...label, result: 'refused' });
      this.logger.error(
        { keys: this.current.keys.length },
        'the store returned empty tables: keeping the previous ones (restart milterd to start from empty tables)',
      );
      this.fingerprint = fingerprint;
      return;
    }
    if (this.withHosts && built.hosts && built.hosts.entries.length === 0 && this.currentHosts && this.currentHosts.entries.length > 0) {
      this.metrics?.storeReloads.inc({ ...label, result: 'refused' });
      this.logger.error('the store returned an empty InternalHosts list: keeping the previous tables');
      this.fingerprint = fingerprint;
      return;
    }
    this.current = built.plan;
    if (built.hosts) this.currentHosts = built.hosts;
    this.fingerprint = fingerprint;
    this.loadedAt = Date.now();
    this.metrics?.storeReloads.inc({ ...label, result: 'changed' });
    this.metrics?.storeLoaded.set(label, this.loadedAt / 1000);
    this.metrics?.storeKeys.set(label, built.keys);
    this.metrics?.storeBadRows.set(label, built.problems.length);
    this.logger.info(
      {
        reason,
        keys: built.plan.keys.map((k) => `${k.selector}._domainkey.${k.domain}`),
        entries: built.entries,
        ...(built.hosts ? { internalHosts: built.hosts.entries.length } : {}),
        badRows: built.problems.length,
        ms: Date.now() - started,
      },
      'signing tables loaded from the store',
    );
  }

  /** Turn one read into a plan: every fault is a problem line, never an exception. */
  private build(snapshot: StoreSnapshot): Built {
    const problems = snapshot.problems.map((p) => `${p.where}: ${p.message}`);
    const table = new Map<string, SigningKey>();
    const unloadable = new Map<string, string>();
    for (const row of snapshot.keys) {
      const what = row.selector ? `selector ${row.selector}` : `key ${row.name}`;
      let fault: string | undefined;
      if (row.retiredAt) fault = 'it is retired';
      else if (!row.name) fault = 'a key row without a name';
      else if (!row.domain) fault = `${what} has no domain`;
      else if (!row.selector) fault = `key ${row.name} has no selector`;
      else if (!row.privateKey) fault = `${what} of ${row.domain} has no private key`;
      if (fault) {
        if (!row.retiredAt) problems.push(`${row.where}: ${fault}`);
        unloadable.set(row.name, fault);
        continue;
      }
      try {
        const key = keyFromPem(
          row.name,
          (row.domain as string).toLowerCase(),
          row.selector as string,
          row.privateKey as string,
          `${what} of ${row.domain}`,
          row.where,
        );
        table.set(row.name, key);
      } catch (error) {
        problems.push((error as Error).message);
        unloadable.set(row.name, (error as Error).message.slice(row.where.length + 2));
      }
    }
    const rows = snapshot.signing.map((e) => ({ where: e.where, pattern: e.pattern, names: e.keyNames }));
    const plan = planFromTables(table, rows, { ...this.planOptions, wildcard: false }, (error) => problems.push(error.message), unloadable);
    let hosts: HostList | undefined;
    if (snapshot.hosts) {
      const good: string[] = [];
      for (const entry of snapshot.hosts) {
        try {
          new HostList([entry]);
          good.push(entry);
        } catch (error) {
          problems.push(
            `${this.location.kind === 'postgresql' ? this.location.tables.hosts : `${this.location.prefix}hosts`} ${entry}: ${(error as Error).message}`,
          );
        }
      }
      hosts = new HostList(good);
    }
    return { plan, ...(hosts ? { hosts } : {}), problems, keys: table.size, entries: rows.length };
  }

  private unreachable(error: Error, reason: string): void {
    this.failures++;
    this.metrics?.storeUp.set({ store: this.location.display }, 0);
    const wait = backoffMs(this.failures, this.location.retrySeconds);
    if (this.downSince === undefined) {
      this.downSince = Date.now();
      if (this.loaded) {
        this.logger.error(
          { error: error.message, reason, loadedAt: new Date(this.loadedAt).toISOString(), retryMs: wait },
          'store unreachable: keeping the last good tables, still signing with them; retrying with backoff',
        );
      } else {
        this.logger.error(
          { error: error.message, reason, retryMs: wait },
          'store unreachable and no tables loaded yet: mail to sign is tempfailed until they load; retrying with backoff',
        );
      }
    } else {
      this.logger.warn({ error: error.message, attempt: this.failures, retryMs: wait }, 'store still unreachable');
    }
    if (this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.refresh('retry');
    }, wait);
    this.retryTimer.unref();
  }

  private reachable(): void {
    this.metrics?.storeUp.set({ store: this.location.display }, 1);
    if (this.downSince !== undefined) {
      this.logger.info(
        { downSeconds: Math.round((Date.now() - this.downSince) / 100) / 10, attempts: this.failures },
        'store reachable again',
      );
    }
    this.downSince = undefined;
    this.failures = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    await this.watcher.close();
    await this.running?.catch(() => {});
    await this.store.close().catch(() => {});
  }
}

/**
 * The shared tables a daemon keeps across SIGHUP reloads: a reload that names the same store
 * (with the same options) keeps its connections and last good tables, and re-reads them.
 */
export class StoreRegistry {
  private readonly open = new Map<string, SharedTables>();

  constructor(
    private readonly logger: Logger,
    private readonly metrics?: Metrics,
  ) {}

  async acquire(config: Config, location: StoreLocation, hosts: boolean): Promise<SharedTables> {
    const id = JSON.stringify([location, hosts, config.multipleSignatures, config.subDomains]);
    const existing = this.open.get(id);
    if (existing) {
      existing.refresh('reload');
      return existing;
    }
    const drivers = await loadDrivers();
    const tables = new SharedTables(config, location, {
      logger: this.logger,
      hosts,
      drivers,
      ...(this.metrics ? { metrics: this.metrics } : {}),
    });
    this.open.set(id, tables);
    await tables.start();
    return tables;
  }

  /** Close every store but the one in use. */
  async keepOnly(inUse: SharedTables | undefined): Promise<void> {
    for (const [id, tables] of this.open) {
      if (tables === inUse) continue;
      this.open.delete(id);
      await tables.close();
      const display = tables.location.display;
      if (this.metrics && ![...this.open.values()].some((t) => t.location.display === display)) {
        for (const gauge of [this.metrics.storeUp, this.metrics.storeLoaded, this.metrics.storeKeys, this.metrics.storeBadRows])
          gauge.remove({ store: display });
      }
    }
  }

  async closeAll(): Promise<void> {
    await this.keepOnly(undefined);
  }
}
