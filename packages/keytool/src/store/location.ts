/**
 * Where shared key and signing tables live: a PostgreSQL database or a Redis database,
 * named by a URI as administrators already name datasets in opendkim.conf, e.g.
 *
 *   postgresql://inkan_milterd@db.example.org/mail?table=dkim_keys
 *   redis://inkan-milterd@cache.example.org:6379/0?prefix=inkan:
 *
 * The query parameters that inkan reads (table names, prefix, polling, reconnect) are taken
 * out before the rest of the URI goes to the database client.
 */

export type StoreKind = 'postgresql' | 'redis';

/** Which table a URI was given for: the KeyTable, the SigningTable or InternalHosts. */
export type StoreRole = 'keys' | 'signing' | 'hosts';

export interface StoreTables {
  /** The KeyTable: name, domain, selector, private_key, record, created_at, retired_at. */
  keys: string;
  /** The SigningTable: pattern, key_name. */
  signing: string;
  /** InternalHosts: host. */
  hosts: string;
}

export interface StoreLocation {
  kind: StoreKind;
  /** The URI for the database client, without inkan's own parameters. */
  connection: string;
  /** The URI with any password replaced by "***", for logs. */
  display: string;
  /** PostgreSQL table (or view) names, possibly schema-qualified. */
  tables: StoreTables;
  /** PostgreSQL: the LISTEN/NOTIFY channel. Redis: the pub/sub channel (prefix + "changed"). */
  channel: string;
  /** Redis: the prefix of every key. */
  prefix: string;
  /** Re-read the tables this often even without a notification (seconds; 0: never). */
  pollSeconds: number;
  /** Longest wait between reconnection attempts (seconds); waits start at 0.5 s and double. */
  retrySeconds: number;
}

export const DEFAULT_TABLES: StoreTables = { keys: 'dkim_keys', signing: 'dkim_signing', hosts: 'dkim_internal_hosts' };
export const DEFAULT_CHANNEL = 'inkan_dkim';
export const DEFAULT_PREFIX = 'inkan:';
export const DEFAULT_POLL_SECONDS = 60;
export const DEFAULT_RETRY_SECONDS = 30;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,62}(?:\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;

/** Does a dataset value name a store (rather than a file or a list)? */
export function isStoreUri(value: string): boolean {
  return /^(postgres(ql)?|rediss?):\/\//i.test(value.trim());
}

function seconds(value: string, name: string, max: number): number {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new RangeError(`${name} takes a number of seconds, not "${value}"`);
  const n = Number(value);
  if (n > max) throw new RangeError(`${name} is at most ${max} seconds`);
  return n;
}

/**
 * Parse a store URI. `role` says which dataset it was given for, so that `table=` names that
 * table; `keys=`, `signing=` and `hosts=` name each table explicitly (useful to inkan-keytool,
 * which writes both). Throws RangeError on anything it does not understand.
 */
export function parseStoreUri(uri: string, role?: StoreRole): StoreLocation {
  let url: URL;
  try {
    url = new URL(uri.trim());
  } catch {
    throw new RangeError(`"${uri}" is not a URI`);
  }
  const scheme = url.protocol.replace(/:$/, '').toLowerCase();
  const kind: StoreKind | undefined =
    scheme === 'postgresql' || scheme === 'postgres' ? 'postgresql' : scheme === 'redis' || scheme === 'rediss' ? 'redis' : undefined;
  if (!kind) throw new RangeError(`"${scheme}:" is not a store (use postgresql:// or redis://)`);
  if (!url.hostname) throw new RangeError(`${scheme}:// needs a host`);

  const tables: StoreTables = { ...DEFAULT_TABLES };
  let channel = DEFAULT_CHANNEL;
  let prefix = DEFAULT_PREFIX;
  let pollSeconds = DEFAULT_POLL_SECONDS;
  let retrySeconds = DEFAULT_RETRY_SECONDS;
  const ours = ['table', 'keys', 'signing', 'hosts', 'channel', 'prefix', 'poll', 'retry'];
  for (const [name, value] of url.searchParams) {
    switch (name) {
      case 'table':
        if (kind !== 'postgresql') throw new RangeError('table= is for postgresql:// (Redis takes prefix=)');
        if (!role) throw new RangeError('table= names the table of one dataset; here use keys=, signing= and hosts=');
        tables[role] = value;
        break;
      case 'keys':
      case 'signing':
      case 'hosts':
        if (kind !== 'postgresql') throw new RangeError(`${name}= is for postgresql:// (Redis takes prefix=)`);
        tables[name] = value;
        break;
      case 'channel':
        if (kind !== 'postgresql') throw new RangeError('channel= is for postgresql:// (Redis uses PREFIXchanged)');
        channel = value;
        break;
      case 'prefix':
        if (kind !== 'redis') throw new RangeError('prefix= is for redis:// (PostgreSQL takes table=)');
        prefix = value;
        break;
      case 'poll':
        pollSeconds = seconds(value, 'poll=', 86_400);
        break;
      case 'retry':
        retrySeconds = seconds(value, 'retry=', 3600);
        if (retrySeconds < 0.5) throw new RangeError('retry= is at least 0.5 seconds');
        break;
      default:
        break;
    }
  }
  for (const [name, value] of Object.entries(tables)) {
    if (!TABLE.test(value))
      throw new RangeError(
        `${name === 'keys' ? 'the key table' : name === 'signing' ? 'the signing table' : 'the hosts table'} "${value}" is not a plain (schema.)table name`,
      );
  }
  if (!IDENTIFIER.test(channel)) throw new RangeError(`channel "${channel}" is not a plain identifier`);
  if (!/^[\x21-\x7e]{0,64}$/.test(prefix))
    throw new RangeError(`prefix "${prefix}" must be printable ASCII without spaces (at most 64 characters)`);
  for (const name of ours) url.searchParams.delete(name);

  if (kind === 'redis') {
    const db = url.pathname.replace(/^\//, '');
    if (db !== '' && !/^\d{1,2}$/.test(db)) throw new RangeError(`redis:// takes a database number as its path (/0), not "/${db}"`);
  } else if (url.pathname.replace(/^\//, '') === '') {
    throw new RangeError('postgresql:// needs a database name as its path (/mail)');
  }
  const connection = url.toString();
  const shown = new URL(connection);
  if (shown.password) shown.password = '***';
  // Two prefixes in one Redis database are two stores: say which.
  const display = kind === 'redis' ? `${shown}${shown.search ? '&' : '?'}prefix=${prefix}` : shown.toString();
  return {
    kind,
    connection,
    display,
    tables,
    channel: kind === 'redis' ? `${prefix}changed` : channel,
    prefix,
    pollSeconds,
    retrySeconds,
  };
}

/** Do two locations reach the same database (whatever tables they name)? */
export function sameDatabase(a: StoreLocation, b: StoreLocation): boolean {
  return a.kind === b.kind && a.connection === b.connection && (a.kind === 'postgresql' ? a.channel === b.channel : a.prefix === b.prefix);
}

/**
 * One location for tables given separately (KeyTable and SigningTable URIs naming the same
 * database): the tables each URI named for its role, the shortest poll and retry.
 */
export function combineLocations(parts: { role: StoreRole; location: StoreLocation }[]): StoreLocation {
  const first = parts[0];
  if (!first) throw new RangeError('no store named');
  const tables = { ...first.location.tables };
  for (const p of parts) {
    if (!sameDatabase(first.location, p.location)) {
      throw new RangeError(`${first.location.display} and ${p.location.display} are different stores; the tables must share one database`);
    }
    tables[p.role] = p.location.tables[p.role];
  }
  const polls = parts.map((p) => p.location.pollSeconds).filter((s) => s > 0);
  return {
    ...first.location,
    tables,
    pollSeconds: polls.length > 0 ? Math.min(...polls) : 0,
    retrySeconds: Math.min(...parts.map((p) => p.location.retrySeconds)),
  };
}

/** How long to wait before reconnection attempt `n` (1-based): 0.5 s doubling up to `max` seconds. */
export function backoffMs(attempt: number, maxSeconds: number): number {
  return Math.min(500 * 2 ** Math.max(0, Math.min(attempt - 1, 20)), maxSeconds * 1000);
}
