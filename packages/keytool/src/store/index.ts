import { type StoreLocation, type StoreRole, parseStoreUri } from './location.js';
import { PostgresKeyStore, PostgresWatcher } from './postgres.js';
import { RedisKeyStore, RedisWatcher } from './redis.js';
import type { KeyStore, StoreClientOptions, StoreWatcher, WatchEvents, WatchOptions } from './types.js';

export {
  type StoreKind,
  type StoreRole,
  type StoreTables,
  type StoreLocation,
  DEFAULT_TABLES,
  DEFAULT_CHANNEL,
  DEFAULT_PREFIX,
  DEFAULT_POLL_SECONDS,
  DEFAULT_RETRY_SECONDS,
  isStoreUri,
  parseStoreUri,
  sameDatabase,
  combineLocations,
  backoffMs,
} from './location.js';
export type {
  KeyStore,
  StoredKey,
  StoredSigning,
  StoreProblem,
  StoreSnapshot,
  SnapshotOptions,
  NewStoredKey,
  StoreClientOptions,
  StoreWatcher,
  WatchEvents,
  WatchOptions,
} from './types.js';
export { MissingDriverError } from './missing-driver.js';
export { PostgresKeyStore, schemaSql } from './postgres.js';
export { RedisKeyStore, redisKeys } from './redis.js';
export {
  keyName,
  listStore,
  publishKey,
  rotateSelector,
  retireSelector,
  signWith,
  type StoreListing,
  type ListedKey,
  type PublishOptions,
  type PublishResult,
} from './admin.js';

/**
 * Open the store a URI names. Connections are made on first use; `reconnect` keeps a Redis
 * connection coming back with backoff (PostgreSQL connects per use through a pool).
 * Its driver (pg or ioredis, optional peer dependencies) is loaded here: MissingDriverError
 * names the package to install when it is not.
 */
export function openKeyStore(
  where: string | StoreLocation,
  options: StoreClientOptions & { reconnect?: boolean; role?: StoreRole } = {},
): KeyStore {
  const location = typeof where === 'string' ? parseStoreUri(where, options.role) : where;
  return location.kind === 'postgresql' ? new PostgresKeyStore(location, options) : new RedisKeyStore(location, options);
}

/**
 * Watch the store for changes on a connection of its own: LISTEN for the tables' NOTIFY
 * (PostgreSQL) or SUBSCRIBE to PREFIXchanged (Redis). Nothing connects before start(); the
 * watcher reconnects by itself with backoff and reports through `events`. Its driver is
 * loaded here, as for openKeyStore (MissingDriverError names the package to install).
 */
export function watchStore(
  where: string | StoreLocation,
  events: WatchEvents,
  options: WatchOptions & { role?: StoreRole } = {},
): StoreWatcher {
  const location = typeof where === 'string' ? parseStoreUri(where, options.role) : where;
  return location.kind === 'postgresql' ? new PostgresWatcher(location, events, options) : new RedisWatcher(location, events, options);
}
