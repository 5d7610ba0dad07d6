import { loadIoredis } from './drivers.js';
import { backoffMs, type StoreLocation } from './location.js';
import type { Redis, RedisOptions } from 'ioredis';
import type {
  KeyStore,
  NewStoredKey,
  SnapshotOptions,
  StoreClientOptions,
  StoreSnapshot,
  StoredKey,
  StoreWatcher,
  WatchEvents,
  WatchOptions,
} from './types.js';

/**
 * The Redis key layout, under a prefix (default "inkan:"):
 *
 *   PREFIXkeys      hash  key name -> JSON {"domain","selector","record","created","retired"}
 *   PREFIXprivate   hash  key name -> PEM private key (absent once retired)
 *   PREFIXsigning   hash  SigningTable pattern -> key name(s), separated by spaces
 *   PREFIXhosts     set   InternalHosts entries
 *   PREFIXchanged   pub/sub channel: every change publishes the name of what changed
 *
 * Private keys have a hash of their own so that Redis ACLs can keep them from accounts
 * that only need the public half (~PREFIXkeys but not ~PREFIXprivate).
 */
export function redisKeys(prefix: string) {
  return {
    keys: `${prefix}keys`,
    private: `${prefix}private`,
    signing: `${prefix}signing`,
    hosts: `${prefix}hosts`,
    channel: `${prefix}changed`,
  };
}

interface KeyMeta {
  domain?: unknown;
  selector?: unknown;
  record?: unknown;
  created?: unknown;
  retired?: unknown;
}

const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** ioredis options for a connection to this location. */
function redisOptions(location: StoreLocation, options: StoreClientOptions & { reconnect?: boolean }): RedisOptions {
  return {
    connectTimeout: options.connectTimeoutMs ?? 5000,
    commandTimeout: options.queryTimeoutMs ?? 10_000,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    ...(options.clientName ? { connectionName: options.clientName } : {}),
    retryStrategy: options.reconnect ? (times: number) => backoffMs(times, location.retrySeconds) : () => null,
  };
}

/** The tables in a Redis database (one connection; MULTI/EXEC for every read and write). */
export class RedisKeyStore implements KeyStore {
  readonly location: StoreLocation;
  private readonly redis: Redis;
  private readonly k: ReturnType<typeof redisKeys>;
  private connecting: Promise<void> | undefined;

  constructor(location: StoreLocation, options: StoreClientOptions & { reconnect?: boolean } = {}) {
    this.location = location;
    this.k = redisKeys(location.prefix);
    const { Redis } = loadIoredis();
    this.redis = new Redis(location.connection, redisOptions(location, options));
    this.redis.on('error', (error: Error) => options.onError?.(error));
  }

  private async ready(): Promise<Redis> {
    if (this.redis.status === 'wait') this.connecting ??= this.redis.connect();
    if (this.connecting) {
      try {
        await this.connecting;
      } finally {
        this.connecting = undefined;
      }
    }
    return this.redis;
  }

  async init(): Promise<void> {
    await this.ready();
  }

  async snapshot(options: SnapshotOptions = {}): Promise<StoreSnapshot> {
    const withPrivate = options.privateKeys !== false;
    const redis = await this.ready();
    const multi = redis.multi().hgetall(this.k.keys).hgetall(this.k.signing);
    if (withPrivate) multi.hgetall(this.k.private);
    if (options.hosts) multi.smembers(this.k.hosts);
    const replies = await multi.exec();
    if (!replies) throw new Error('the Redis transaction was aborted');
    for (const [error] of replies) if (error) throw error;
    const keys = (replies[0]?.[1] ?? {}) as Record<string, string>;
    const signing = (replies[1]?.[1] ?? {}) as Record<string, string>;
    const privates = withPrivate ? ((replies[2]?.[1] ?? {}) as Record<string, string>) : {};
    const snapshot: StoreSnapshot = { keys: [], signing: [], problems: [] };
    for (const [name, json] of Object.entries(keys).sort(([a], [b]) => a.localeCompare(b))) {
      const where = `${this.k.keys} ${name}`;
      let meta: KeyMeta;
      try {
        meta = JSON.parse(json) as KeyMeta;
        if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new Error('not an object');
      } catch {
        snapshot.problems.push({ where, message: 'the value is not a JSON object such as {"domain":"example.org","selector":"sel"}' });
        continue;
      }
      const key: StoredKey = {
        name,
        domain: text(meta.domain),
        selector: text(meta.selector),
        record: text(meta.record),
        createdAt: text(meta.created),
        retiredAt: text(meta.retired),
        where,
      };
      if (withPrivate) key.privateKey = privates[name] ?? null;
      snapshot.keys.push(key);
    }
    for (const [pattern, names] of Object.entries(signing).sort(([a], [b]) => a.localeCompare(b))) {
      const keyNames = names.split(/[\s,]+/).filter(Boolean);
      const where = `${this.k.signing} ${pattern}`;
      if (keyNames.length === 0) snapshot.problems.push({ where, message: 'a SigningTable entry needs at least one key name' });
      else snapshot.signing.push({ pattern, keyNames, where });
    }
    if (options.hosts) snapshot.hosts = ((replies[withPrivate ? 3 : 2]?.[1] ?? []) as string[]).sort();
    return snapshot;
  }

  /** Run a read-check-write transaction under WATCH, retrying (a few times) if another writer got in between. */
  private async optimistic<T>(
    watch: string,
    work: (redis: Redis) => Promise<{ multi: ReturnType<Redis['multi']>; result: T } | { result: T; multi?: undefined }>,
  ): Promise<T> {
    const redis = await this.ready();
    for (let attempt = 0; attempt < 5; attempt++) {
      await redis.watch(watch);
      let step: Awaited<ReturnType<typeof work>>;
      try {
        step = await work(redis);
      } catch (error) {
        await redis.unwatch();
        throw error;
      }
      if (!step.multi) {
        await redis.unwatch();
        return step.result;
      }
      const replies = await step.multi.publish(this.k.channel, watch).exec();
      if (replies) {
        for (const [error] of replies) if (error) throw error;
        return step.result;
      }
    }
    throw new Error(`${watch} kept changing under concurrent writers; try again`);
  }

  async addKey(key: NewStoredKey): Promise<void> {
    await this.optimistic(this.k.keys, async (redis) => {
      const all = await redis.hgetall(this.k.keys);
      for (const [name, json] of Object.entries(all)) {
        let meta: KeyMeta = {};
        try {
          meta = JSON.parse(json) as KeyMeta;
        } catch {
          // unreadable rows cannot clash
        }
        if (name === key.name || (meta.domain === key.domain && meta.selector === key.selector)) {
          throw new Error(`the store already has a key ${name} (selector ${key.selector} of ${key.domain}); choose another selector`);
        }
      }
      const meta = { domain: key.domain, selector: key.selector, record: key.record, created: new Date().toISOString(), retired: null };
      return {
        multi: redis.multi().hset(this.k.keys, key.name, JSON.stringify(meta)).hset(this.k.private, key.name, key.privateKey),
        result: undefined,
      };
    });
  }

  async setSigning(pattern: string, keyNames: string[]): Promise<void> {
    const redis = await this.ready();
    const replies = await redis
      .multi()
      .hset(this.k.signing, pattern, [...new Set(keyNames)].join(' '))
      .publish(this.k.channel, this.k.signing)
      .exec();
    for (const [error] of replies ?? []) if (error) throw error;
  }

  async removeSigning(pattern: string): Promise<boolean> {
    const redis = await this.ready();
    const replies = await redis.multi().hdel(this.k.signing, pattern).publish(this.k.channel, this.k.signing).exec();
    for (const [error] of replies ?? []) if (error) throw error;
    return Number(replies?.[0]?.[1] ?? 0) > 0;
  }

  async repoint(from: string[], to: string): Promise<string[]> {
    return this.optimistic(this.k.signing, async (redis) => {
      const all = await redis.hgetall(this.k.signing);
      const changed: [string, string][] = [];
      for (const [pattern, names] of Object.entries(all)) {
        const list = names.split(/[\s,]+/).filter(Boolean);
        if (!list.some((n) => from.includes(n))) continue;
        const next = [...new Set(list.map((n) => (from.includes(n) ? to : n)))];
        changed.push([pattern, next.join(' ')]);
      }
      changed.sort(([a], [b]) => a.localeCompare(b));
      if (changed.length === 0) return { result: [] };
      const multi = redis.multi();
      for (const [pattern, names] of changed) multi.hset(this.k.signing, pattern, names);
      return { multi, result: changed.map(([p]) => p) };
    });
  }

  async retireKey(name: string): Promise<void> {
    await this.optimistic(this.k.keys, async (redis) => {
      const json = await redis.hget(this.k.keys, name);
      if (json === null) throw new Error(`the store has no key ${name}`);
      let meta: KeyMeta = {};
      try {
        meta = JSON.parse(json) as KeyMeta;
      } catch {
        // replaced below
      }
      const retired = { ...meta, retired: text(meta.retired) ?? new Date().toISOString() };
      return { multi: redis.multi().hset(this.k.keys, name, JSON.stringify(retired)).hdel(this.k.private, name), result: undefined };
    });
  }

  async setHosts(hosts: string[]): Promise<void> {
    const redis = await this.ready();
    const multi = redis.multi().del(this.k.hosts);
    if (hosts.length > 0) multi.sadd(this.k.hosts, ...new Set(hosts));
    const replies = await multi.publish(this.k.channel, this.k.hosts).exec();
    for (const [error] of replies ?? []) if (error) throw error;
  }

  async close(): Promise<void> {
    if (this.redis.status !== 'ready') {
      this.redis.disconnect();
      return;
    }
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}

/**
 * SUBSCRIBE to PREFIXchanged, where every change is published, on a connection of its own.
 * ioredis reconnects it with backoff (0.5 s doubling up to retry=); each time it is ready
 * again the channel is subscribed anew and the tables are re-read.
 */
export class RedisWatcher implements StoreWatcher {
  private readonly redis: Redis;
  private closed = false;
  private up = false;

  constructor(
    location: StoreLocation,
    private readonly events: WatchEvents,
    options: WatchOptions = {},
  ) {
    const { Redis } = loadIoredis();
    this.redis = new Redis(location.connection, {
      ...redisOptions(location, {
        reconnect: true,
        connectTimeoutMs: options.connectTimeoutMs ?? 5000,
        clientName: options.clientName ?? 'inkan-milterd-watch',
      }),
      autoResubscribe: false,
      maxRetriesPerRequest: null,
    });
    this.redis.on('error', (error: Error) => this.down(error));
    this.redis.on('close', () => this.down(new Error('the subscription connection closed')));
    this.redis.on('message', (channel: string, message: string) => {
      if (channel === location.channel) events.changed(message);
    });
    this.redis.on('ready', () => {
      this.redis.subscribe(location.channel).then(
        () => {
          if (this.closed) return;
          this.up = true;
          events.connected();
        },
        (error: Error) => this.down(error),
      );
    });
  }

  private down(error: Error): void {
    if (this.closed || !this.up) return;
    this.up = false;
    this.events.lost(error);
  }

  start(): void {
    this.redis.connect().catch(() => {
      // retried by ioredis (retryStrategy) until close()
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.redis.disconnect(false);
  }
}
