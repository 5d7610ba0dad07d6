import { readFileSync } from 'node:fs';
import type { Client, Pool, PoolClient } from 'pg';
import { loadPg } from './drivers.js';
import { backoffMs, type StoreLocation, type StoreTables } from './location.js';
import type {
  KeyStore,
  NewStoredKey,
  SnapshotOptions,
  StoreClientOptions,
  StoreSnapshot,
  StoredKey,
  StoredSigning,
  StoreWatcher,
  WatchEvents,
  WatchOptions,
} from './types.js';

/** A PostgreSQL identifier in double quotes (as pg's escapeIdentifier; here so that schemaSql needs no driver). */
function escapeIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** "schema.table" or "table", each part quoted. */
function qualified(name: string): string {
  return name
    .split('.')
    .map((part) => escapeIdentifier(part))
    .join('.');
}

/** The schema part of a qualified name, quoted and with its dot ("" for an unqualified one). */
function schemaOf(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? '' : `${escapeIdentifier(name.slice(0, dot))}.`;
}

function bare(name: string): string {
  return name.slice(name.indexOf('.') + 1);
}

/** The migration as shipped in the package (sql/ beside dist/ and src/), with the default names. */
const MIGRATION = new URL('../../sql/001_dkim_tables.sql', import.meta.url);
let migration: string | undefined;

/**
 * The names the shipped migration uses, each as it is written there: the three tables and
 * their triggers (quoted identifiers), the notify function, and the channel (a string literal,
 * and once in a comment).
 */
const DEFAULT_NAME =
  /"(dkim_keys|dkim_signing|dkim_internal_hosts)(_notify)?"|\binkan_dkim_notify\b|'inkan_dkim'|(?<=listening on )inkan_dkim\b/g;

/**
 * The PostgreSQL schema for the shared tables, as SQL: sql/001_dkim_tables.sql (the KeyTable,
 * the SigningTable, InternalHosts, and statement triggers that NOTIFY on every change, so a
 * change made with psql reaches every milterd too), read from the package, with the location's
 * table names and channel in place of the defaults. Idempotent: running it again changes nothing.
 */
export function schemaSql(o: { tables: StoreTables; channel: string }): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(o.channel)) throw new RangeError(`channel "${o.channel}" is not a plain identifier`);
  migration ??= readFileSync(MIGRATION, 'utf8');
  const tables: Record<string, string> = { dkim_keys: o.tables.keys, dkim_signing: o.tables.signing, dkim_internal_hosts: o.tables.hosts };
  const notify = `${schemaOf(o.tables.keys)}inkan_dkim_notify`;
  return migration.replace(DEFAULT_NAME, (match: string, table: string | undefined, trigger: string | undefined) => {
    if (table !== undefined) {
      const name = tables[table] as string;
      return trigger ? escapeIdentifier(`${bare(name)}_notify`) : qualified(name);
    }
    if (match === 'inkan_dkim_notify') return notify;
    return match.startsWith("'") ? `'${o.channel}'` : o.channel;
  });
}

function iso(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return value instanceof Date ? value.toISOString() : String(value);
}

/** The tables in a PostgreSQL database, through a small pool (connections are made on demand). */
export class PostgresKeyStore implements KeyStore {
  readonly location: StoreLocation;
  private readonly pool: Pool;
  private readonly t: { keys: string; signing: string; hosts: string };
  private readonly onError: ((error: Error) => void) | undefined;

  constructor(location: StoreLocation, options: StoreClientOptions = {}) {
    this.location = location;
    this.t = {
      keys: qualified(location.tables.keys),
      signing: qualified(location.tables.signing),
      hosts: qualified(location.tables.hosts),
    };
    const { Pool } = loadPg();
    this.pool = new Pool({
      connectionString: location.connection,
      max: 2,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      query_timeout: options.queryTimeoutMs ?? 10_000,
      keepAlive: true,
      application_name: options.clientName ?? 'inkan',
    });
    // An idle connection that the server closes is reported here, not thrown: the next
    // query simply opens a new one.
    this.onError = options.onError;
    this.pool.on('error', (error) => options.onError?.(error));
  }

  /** A pooled connection for `work`, with a listener for errors that arrive between its queries (without one they would crash the process). */
  private async checkout<T>(work: (client: PoolClient, broken: () => void) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    const onError = (error: Error) => {
      broken = true;
      this.onError?.(error);
    };
    client.on('error', onError);
    try {
      return await work(client, () => {
        broken = true;
      });
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  private async transaction<T>(work: (client: PoolClient) => Promise<T>, readOnly = false): Promise<T> {
    return this.checkout(async (client, broken) => {
      await client.query(readOnly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
      try {
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(broken);
        throw error;
      }
    });
  }

  async init(): Promise<void> {
    await this.checkout(async (client, broken) => {
      try {
        await client.query(schemaSql(this.location));
      } catch (error) {
        await client.query('ROLLBACK').catch(broken);
        throw error;
      }
    });
  }

  async snapshot(options: SnapshotOptions = {}): Promise<StoreSnapshot> {
    const withPrivate = options.privateKeys !== false;
    return this.transaction(async (client) => {
      const keyRows = await client.query<Record<string, unknown>>(
        `SELECT name, domain, selector, ${withPrivate ? 'private_key, ' : ''}record, created_at, retired_at FROM ${this.t.keys} ORDER BY name`,
      );
      const signingRows = await client.query<{ pattern: string | null; key_name: string | null }>(
        `SELECT pattern, key_name FROM ${this.t.signing} ORDER BY pattern, key_name`,
      );
      const hostRows = options.hosts
        ? await client.query<{ host: string | null }>(`SELECT host FROM ${this.t.hosts} ORDER BY host`)
        : undefined;
      const snapshot: StoreSnapshot = { keys: [], signing: [], problems: [] };
      for (const row of keyRows.rows) {
        const name = row.name === null || row.name === undefined ? '' : String(row.name);
        const key: StoredKey = {
          name,
          domain: (row.domain as string | null) ?? null,
          selector: (row.selector as string | null) ?? null,
          record: (row.record as string | null) ?? null,
          createdAt: iso(row.created_at),
          retiredAt: iso(row.retired_at),
          where: `${this.location.tables.keys} name=${name}`,
        };
        if (withPrivate) key.privateKey = (row.private_key as string | null) ?? null;
        snapshot.keys.push(key);
      }
      const byPattern = new Map<string, StoredSigning>();
      for (const row of signingRows.rows) {
        if (!row.pattern || !row.key_name) {
          snapshot.problems.push({
            where: `${this.location.tables.signing} pattern=${row.pattern ?? ''}`,
            message: 'a SigningTable row needs both a pattern and a key_name',
          });
          continue;
        }
        const entry = byPattern.get(row.pattern) ?? {
          pattern: row.pattern,
          keyNames: [],
          where: `${this.location.tables.signing} pattern=${row.pattern}`,
        };
        entry.keyNames.push(row.key_name);
        byPattern.set(row.pattern, entry);
      }
      snapshot.signing = [...byPattern.values()];
      if (hostRows) snapshot.hosts = hostRows.rows.map((r) => r.host ?? '').filter(Boolean);
      return snapshot;
    }, true);
  }

  async addKey(key: NewStoredKey): Promise<void> {
    await this.transaction(async (client) => {
      const clash = await client.query(`SELECT name FROM ${this.t.keys} WHERE name = $1 OR (domain = $2 AND selector = $3)`, [
        key.name,
        key.domain,
        key.selector,
      ]);
      if ((clash.rowCount ?? 0) > 0)
        throw new Error(`the store already has a key ${key.name} (selector ${key.selector} of ${key.domain}); choose another selector`);
      await client.query(`INSERT INTO ${this.t.keys} (name, domain, selector, private_key, record) VALUES ($1, $2, $3, $4, $5)`, [
        key.name,
        key.domain,
        key.selector,
        key.privateKey,
        key.record,
      ]);
    });
  }

  async setSigning(pattern: string, keyNames: string[]): Promise<void> {
    await this.transaction(async (client) => {
      await client.query(`DELETE FROM ${this.t.signing} WHERE pattern = $1`, [pattern]);
      for (const name of new Set(keyNames))
        await client.query(`INSERT INTO ${this.t.signing} (pattern, key_name) VALUES ($1, $2)`, [pattern, name]);
    });
  }

  async removeSigning(pattern: string): Promise<boolean> {
    const r = await this.pool.query(`DELETE FROM ${this.t.signing} WHERE pattern = $1`, [pattern]);
    return (r.rowCount ?? 0) > 0;
  }

  async repoint(from: string[], to: string): Promise<string[]> {
    return this.transaction(async (client) => {
      const affected = await client.query<{ pattern: string }>(
        `SELECT DISTINCT pattern FROM ${this.t.signing} WHERE key_name = ANY($1::text[]) ORDER BY pattern`,
        [from],
      );
      const patterns = affected.rows.map((r) => r.pattern);
      if (patterns.length === 0) return [];
      await client.query(`DELETE FROM ${this.t.signing} WHERE key_name = ANY($1::text[]) AND pattern = ANY($2::text[])`, [from, patterns]);
      for (const pattern of patterns) {
        await client.query(`INSERT INTO ${this.t.signing} (pattern, key_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [pattern, to]);
      }
      return patterns;
    });
  }

  async retireKey(name: string): Promise<void> {
    const r = await this.pool.query(
      `UPDATE ${this.t.keys} SET private_key = NULL, retired_at = coalesce(retired_at, now()) WHERE name = $1`,
      [name],
    );
    if ((r.rowCount ?? 0) === 0) throw new Error(`the store has no key ${name}`);
  }

  async setHosts(hosts: string[]): Promise<void> {
    await this.transaction(async (client) => {
      await client.query(`DELETE FROM ${this.t.hosts}`);
      for (const host of new Set(hosts)) await client.query(`INSERT INTO ${this.t.hosts} (host) VALUES ($1)`, [host]);
    });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * LISTEN for the NOTIFY that the tables' triggers send on every change (see the migration),
 * on a connection of its own. When the connection goes, it comes back with backoff (0.5 s
 * doubling up to the location's retry=), and says so, so that the tables are re-read.
 */
export class PostgresWatcher implements StoreWatcher {
  private readonly Client: typeof Client;
  private client: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed = false;

  constructor(
    private readonly location: StoreLocation,
    private readonly events: WatchEvents,
    private readonly options: WatchOptions = {},
  ) {
    this.Client = loadPg().Client;
  }

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new this.Client({
      connectionString: this.location.connection,
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 5000,
      keepAlive: true,
      application_name: this.options.clientName ?? 'inkan-milterd listen',
    });
    this.client = client;
    let gone = false;
    const lost = (error: Error) => {
      if (gone) return;
      gone = true;
      if (this.client === client) this.client = undefined;
      client.removeAllListeners('notification');
      client.end().catch(() => {});
      if (this.closed) return;
      this.events.lost(error);
      this.attempt++;
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          void this.connect();
        },
        backoffMs(this.attempt, this.location.retrySeconds),
      );
      this.timer.unref();
    };
    client.on('error', (error) => lost(error));
    client.on('end', () => lost(new Error('the LISTEN connection closed')));
    client.on('notification', (n) => {
      if (n.channel === this.location.channel) this.events.changed(n.payload ?? 'notify');
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${escapeIdentifier(this.location.channel)}`);
    } catch (error) {
      lost(error as Error);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.attempt = 0;
    this.events.connected();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners('notification');
      await client.end().catch(() => {});
    }
  }
}
