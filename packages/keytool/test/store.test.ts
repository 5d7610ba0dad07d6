/**
 * inkan-keytool and the shared store: URIs, the shipped migration, and the store commands
 * (genkey --store, sign, rotate, retire, list, hosts) against a private PostgreSQL and a
 * private Redis on loopback, each with the accounts and grants of docs/fleet.md.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  postgresMissing,
  type PostgresServer,
  type RedisServer,
  redisMissing,
  runProgram,
  startPostgres,
  startRedis,
  tempDir,
  waitFor,
} from '@inkan/testbed';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combineLocations, DEFAULT_CHANNEL, DEFAULT_TABLES, parseStoreUri, schemaSql, watchStore } from '../src/store/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = resolve(here, '..', 'bin', 'inkan-keytool.js');
const SQL = resolve(here, '..', 'sql');

async function keytool(args: string[], cwd?: string) {
  return runProgram(process.execPath, [BIN, ...args], { timeoutMs: 60_000, ...(cwd ? { cwd } : {}) });
}

async function ok(args: string[], cwd?: string): Promise<string> {
  const r = await keytool(args, cwd);
  if (r.code !== 0) throw new Error(`inkan-keytool ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

describe('store URIs', () => {
  it('postgresql:// with table= for the dataset it names; inkan parameters are not passed on; passwords are masked', () => {
    const l = parseStoreUri('postgresql://inkan:s3cret@db.example.org:5433/mail?table=my_keys&poll=30&retry=5&sslmode=require', 'keys');
    expect(l.kind).toBe('postgresql');
    expect(l.tables).toEqual({ ...DEFAULT_TABLES, keys: 'my_keys' });
    expect(l.connection).toBe('postgresql://inkan:s3cret@db.example.org:5433/mail?sslmode=require');
    expect(l.display).toBe('postgresql://inkan:***@db.example.org:5433/mail?sslmode=require');
    expect([l.pollSeconds, l.retrySeconds, l.channel]).toEqual([30, 5, DEFAULT_CHANNEL]);
    expect(parseStoreUri('postgres://h/mail?keys=a.k&signing=a.s').tables).toEqual({
      keys: 'a.k',
      signing: 'a.s',
      hosts: 'dkim_internal_hosts',
    });
  });

  it('redis:// with prefix=; defaults', () => {
    const l = parseStoreUri('redis://127.0.0.1:6379/2?prefix=mail:dkim:');
    expect([l.kind, l.prefix, l.channel, l.connection, l.pollSeconds, l.retrySeconds]).toEqual([
      'redis',
      'mail:dkim:',
      'mail:dkim:changed',
      'redis://127.0.0.1:6379/2',
      60,
      30,
    ]);
    expect(parseStoreUri('rediss://u:p@h:6380').prefix).toBe('inkan:');
  });

  it('refuses what it does not understand', () => {
    expect(() => parseStoreUri('mysql://h/db')).toThrow(/not a store/);
    expect(() => parseStoreUri('redis://h/0?table=x', 'keys')).toThrow(/table= is for postgresql/);
    expect(() => parseStoreUri('postgresql://h/mail?table=x')).toThrow(/names the table of one dataset/);
    expect(() => parseStoreUri('postgresql://h/mail?keys=x;drop')).toThrow(/not a plain/);
    expect(() => parseStoreUri('postgresql://h/')).toThrow(/needs a database name/);
    expect(() => parseStoreUri('redis://h/zero')).toThrow(/database number/);
    expect(() => parseStoreUri('redis://h/0?poll=soon')).toThrow(/poll= takes a number/);
    const a = parseStoreUri('postgresql://h/mail?table=k', 'keys');
    const b = parseStoreUri('postgresql://other/mail?table=s', 'signing');
    expect(() =>
      combineLocations([
        { role: 'keys', location: a },
        { role: 'signing', location: b },
      ]),
    ).toThrow(/different stores/);
    const c = parseStoreUri('postgresql://h/mail?table=s&poll=5', 'signing');
    expect(
      combineLocations([
        { role: 'keys', location: a },
        { role: 'signing', location: c },
      ]).tables,
    ).toMatchObject({ keys: 'k', signing: 's' });
  });

  it('the shipped migration is the schema inkan-keytool store init creates', () => {
    expect(readFileSync(join(SQL, '001_dkim_tables.sql'), 'utf8')).toBe(schemaSql({ tables: DEFAULT_TABLES, channel: DEFAULT_CHANNEL }));
  });

  it('other table names and channel: every default name in the migration is replaced, nothing else changes', () => {
    const sql = schemaSql({ tables: { keys: 'mail.k', signing: 's', hosts: 'h' }, channel: 'chan' });
    expect(sql).not.toMatch(/dkim_keys|dkim_signing|dkim_internal_hosts|'inkan_dkim'|listening on inkan_dkim/);
    for (const line of [
      'CREATE TABLE IF NOT EXISTS "mail"."k" (',
      'CREATE TABLE IF NOT EXISTS "s" (',
      'CREATE TABLE IF NOT EXISTS "h" (',
      'CREATE OR REPLACE FUNCTION "mail".inkan_dkim_notify() RETURNS trigger LANGUAGE plpgsql AS $$',
      'DROP TRIGGER IF EXISTS "k_notify" ON "mail"."k";',
      'CREATE TRIGGER "h_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "h"',
      `  FOR EACH STATEMENT EXECUTE FUNCTION "mail".inkan_dkim_notify('chan');`,
      '-- Every change, by inkan-keytool or by hand, notifies the milterds listening on chan.',
    ]) {
      expect(sql.split('\n')).toContain(line);
    }
    // The same lines, the same comments: only the names differ.
    expect(sql.split('\n').length).toBe(readFileSync(join(SQL, '001_dkim_tables.sql'), 'utf8').split('\n').length);
    expect(() => schemaSql({ tables: DEFAULT_TABLES, channel: "x'); DROP TABLE t; --" })).toThrow(/not a plain identifier/);
  });
});

interface Accounts {
  kind: 'postgresql' | 'redis';
  admin: string;
  dns: string;
  /** The account every inkan-milterd reads and watches with. */
  milterd: string;
  /** What a change of InternalHosts is announced as (NOTIFY payload, or pub/sub message). */
  hostsChange: string;
  /** Try to read private keys as the DNS account: should be refused. */
  dnsReadsPrivate(): Promise<unknown>;
  /** Try to write as the milterd account: should be refused. */
  milterdWrites(): Promise<unknown>;
}

/** The same administrator's session against either store. */
function storeCommands(setup: () => Promise<Accounts>) {
  let a: Accounts;
  let cwd: string;
  beforeAll(async () => {
    a = await setup();
    cwd = tempDir('inkan-keytool-store-');
  });
  afterAll(() => {
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  it('genkey --store keeps the private key in the store only; sign, rotate (same key type), retire; list', async () => {
    const s1 = JSON.parse(
      await ok(['--json', 'genkey', '-d', 'example.org', '-s', 's1', '--store', a.admin, '--sign', 'example.org'], cwd),
    );
    expect(s1).toMatchObject({ name: 's1._domainkey.example.org', type: 'rsa', bits: 2048, signing: ['example.org'] });
    expect(s1.record).toMatch(/^v=DKIM1; k=rsa; t=s; p=/);
    expect(readdirSync(cwd)).toEqual([]); // nothing written to disk
    const text = await ok(
      ['genkey', '-d', 'example.org', '-s', 'ed1', '--type', 'ed25519', '--store', a.admin, '--sign', 'example.org'],
      cwd,
    );
    expect(text).toMatch(/Stored ed1\._domainkey\.example\.org in .* \(Ed25519 private key, in the store only\)/);
    expect(text).toMatch(/ed1\._domainkey\.example\.org\.\tIN\tTXT\t"v=DKIM1; k=ed25519; t=s; p=/);
    expect(text).toMatch(/:\*\*\*@127\.0\.0\.1/); // the URI is shown without its password
    expect(text).not.toContain('admin-pw');
    await ok(['genkey', '-d', 'example.org', '-s', 's2', '--store', a.admin], cwd);
    await ok(['genkey', '-d', 'example.net', '-s', 'n1', '--store', a.admin], cwd);
    const dup = await keytool(['genkey', '-d', 'example.org', '-s', 's2', '--store', a.admin], cwd);
    expect([dup.code, dup.stderr]).toEqual([1, expect.stringMatching(/already has a key s2\._domainkey\.example\.org/)]);

    await ok(['store', 'sign', '--store', a.admin, '--pattern', '*@example.net', '--domain', 'example.net', '--selector', 'n1']);
    const rotated = await ok(['store', 'rotate', '--store', a.admin, '--domain', 'example.org', '--selector', 's2']);
    expect(rotated).toMatch(/example\.org now signs with s2\._domainkey\.example\.org/);
    expect(rotated).toMatch(/Replaced: s1\._domainkey\.example\.org\./); // not the Ed25519 key
    expect(rotated).toMatch(/store retire --store URI --domain example\.org --selector s1/);

    const inUse = await keytool(['store', 'retire', '--store', a.admin, '--domain', 'example.org', '--selector', 'ed1']);
    expect([inUse.code, inUse.stderr]).toEqual([
      1,
      expect.stringMatching(/ed1\._domainkey\.example\.org still signs for example\.org: rotate to another selector first/),
    ]);
    expect(await ok(['store', 'retire', '--store', a.admin, '--domain', 'example.org', '--selector', 's1'])).toMatch(
      /s1\._domainkey\.example\.org retired/,
    );
    const missing = await keytool(['store', 'rotate', '--store', a.admin, '--domain', 'example.org', '--selector', 'nope']);
    expect(missing.stderr).toMatch(/no selector nope for example\.org/);

    await ok(['store', 'hosts', '--store', a.admin, '--set', '10.0.0.0/8, mx.example.org']);
    const listing = JSON.parse(await ok(['--json', 'store', 'list', '--store', a.admin]));
    expect(
      listing.keys.map((k: { name: string; type: string; state: string; patterns: string[] }) => [k.name, k.type, k.state, k.patterns]),
    ).toEqual([
      ['ed1._domainkey.example.org', 'ed25519', 'signing', ['example.org']],
      ['n1._domainkey.example.net', 'rsa', 'signing', ['*@example.net']],
      ['s1._domainkey.example.org', 'rsa', 'retired', []],
      ['s2._domainkey.example.org', 'rsa', 'signing', ['example.org']],
    ]);
    for (const e of listing.signing) e.keyNames.sort(); // PostgreSQL lists them by name, Redis as stored
    expect(listing.signing).toEqual([
      { pattern: '*@example.net', keyNames: ['n1._domainkey.example.net'], missing: [] },
      { pattern: 'example.org', keyNames: ['ed1._domainkey.example.org', 's2._domainkey.example.org'], missing: [] },
    ]);
    expect(listing.hosts).toEqual(['10.0.0.0/8', 'mx.example.org']);
    expect(JSON.stringify(listing)).not.toMatch(/PRIVATE KEY/);
    expect(await ok(['store', 'unsign', '--store', a.admin, '--pattern', '*@example.net'])).toMatch(/removed/);
  });

  it('the accounts: the DNS account lists keys but cannot read private ones; the milterd account cannot write', async () => {
    const text = await ok(['store', 'list', '--store', a.dns]);
    expect(text).toMatch(/s2\._domainkey\.example\.org {2}rsa {2}signing for example\.org/);
    expect(text).toMatch(/s1\._domainkey\.example\.org {2}rsa {2}retired/);
    await expect(a.dnsReadsPrivate()).rejects.toThrow(/permission denied|NOPERM/);
    await expect(a.milterdWrites()).rejects.toThrow(/permission denied|NOPERM/);
    const refused = await keytool(['genkey', '-d', 'example.org', '-s', 'x1', '--store', a.dns]);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringMatching(/permission denied|NOPERM/)]);
  });

  it('watchStore: the milterd account hears of a change made by inkan-keytool, on a connection of its own; close() ends it', async () => {
    const changes: string[] = [];
    let connected = 0;
    const lost: string[] = [];
    const watcher = watchStore(
      a.milterd,
      { changed: (what) => changes.push(what), connected: () => connected++, lost: (e) => lost.push(e.message) },
      { connectTimeoutMs: 2000 },
    );
    try {
      expect(connected).toBe(0); // nothing connects before start()
      watcher.start();
      await waitFor(() => connected === 1, 'the watcher connected');
      await ok(['store', 'hosts', '--store', a.admin, '--set', '10.1.0.0/16']);
      await waitFor(() => changes.length > 0, 'the change was announced');
      expect(changes).toEqual([a.hostsChange]);
    } finally {
      await watcher.close();
    }
    await ok(['store', 'hosts', '--store', a.admin, '--set', '10.2.0.0/16']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(changes).toEqual([a.hostsChange]); // closed: heard nothing more
    expect(lost).toEqual([]);
  });
}

const pgMissing = postgresMissing();
describe.skipIf(pgMissing !== undefined && !process.env.CI)(`store commands on PostgreSQL${pgMissing ? ` (${pgMissing})` : ''}`, () => {
  let pg: PostgresServer;
  afterAll(async () => {
    await pg?.close();
  });
  storeCommands(async () => {
    pg = await startPostgres();
    // The set-up of docs/fleet.md: the tables belong to inkan_owner, who also runs the grants.
    await pg.psql(`CREATE ROLE inkan_owner LOGIN PASSWORD 'owner-pw';
CREATE DATABASE mail OWNER inkan_owner;
CREATE ROLE inkan_admin LOGIN PASSWORD 'admin-pw';
CREATE ROLE inkan_milterd LOGIN PASSWORD 'milterd-pw';
CREATE ROLE inkan_dns LOGIN PASSWORD 'dns-pw';`);
    // store init as the owner, twice: the second run changes nothing.
    const owner = pg.url({ user: 'inkan_owner', password: 'owner-pw', database: 'mail' });
    expect(await ok(['store', 'init', '--store', owner])).toMatch(/Created the tables dkim_keys, dkim_signing and dkim_internal_hosts/);
    await ok(['store', 'init', '--store', owner]);
    expect(await ok(['store', 'init', '--print', '--store', owner])).toBe(readFileSync(join(SQL, '001_dkim_tables.sql'), 'utf8'));
    await pg.psql(readFileSync(join(SQL, 'grants.sql'), 'utf8'), { user: 'inkan_owner', password: 'owner-pw', database: 'mail' });
    const as = async (user: string, password: string, sql: string) => {
      const c = new Client({ connectionString: pg.url({ user, password, database: 'mail' }) });
      await c.connect();
      try {
        return await c.query(sql);
      } finally {
        await c.end();
      }
    };
    return {
      kind: 'postgresql',
      admin: pg.url({ user: 'inkan_admin', password: 'admin-pw', database: 'mail' }),
      dns: pg.url({ user: 'inkan_dns', password: 'dns-pw', database: 'mail' }),
      milterd: pg.url({ user: 'inkan_milterd', password: 'milterd-pw', database: 'mail' }),
      hostsChange: 'dkim_internal_hosts',
      dnsReadsPrivate: () => as('inkan_dns', 'dns-pw', 'SELECT private_key FROM dkim_keys'),
      milterdWrites: () => as('inkan_milterd', 'milterd-pw', "UPDATE dkim_signing SET key_name = 'x'"),
    };
  });
});

describe.skipIf(pgMissing !== undefined && !process.env.CI)(`the migration with other names${pgMissing ? ` (${pgMissing})` : ''}`, () => {
  let pg: PostgresServer;
  afterAll(async () => {
    await pg?.close();
  });
  it('store init with keys=, signing=, hosts= and channel= creates those tables, and their triggers notify that channel', async () => {
    pg = await startPostgres();
    await pg.psql('CREATE SCHEMA other;');
    const uri = pg.url({ query: 'keys=other.my_keys&signing=my_signing&hosts=my_hosts&channel=my_channel' });
    expect(await ok(['store', 'init', '--store', uri])).toMatch(
      /Created the tables other\.my_keys, my_signing and my_hosts in .* \(notifying my_channel\)/,
    );
    await ok(['store', 'init', '--store', uri]);
    const changes: string[] = [];
    let connected = false;
    const watcher = watchStore(uri, { changed: (what) => changes.push(what), connected: () => (connected = true), lost: () => {} });
    try {
      watcher.start();
      await waitFor(() => connected, 'the watcher connected');
      await ok(['genkey', '-d', 'example.org', '-s', 'o1', '--type', 'ed25519', '--store', uri, '--sign', 'example.org']);
      await waitFor(() => changes.includes('my_keys') && changes.includes('my_signing'), 'both changes announced on my_channel');
    } finally {
      await watcher.close();
    }
    const listing = JSON.parse(await ok(['--json', 'store', 'list', '--store', uri]));
    expect(listing.keys.map((k: { name: string }) => k.name)).toEqual(['o1._domainkey.example.org']);
  });
});

const noRedis = redisMissing();
describe.skipIf(noRedis !== undefined && !process.env.CI)(`store commands on Redis${noRedis ? ` (${noRedis})` : ''}`, () => {
  let redis: RedisServer;
  afterAll(async () => {
    await redis?.close();
  });
  storeCommands(async () => {
    redis = await startRedis({
      acl: [
        'user inkan-admin on >admin-pw resetkeys ~inkan:* resetchannels &inkan:changed -@all +@read +@write +@transaction +publish +ping +info +select +client|setname',
        'user inkan-milterd on >milterd-pw resetkeys %R~inkan:* resetchannels &inkan:changed -@all +hgetall +smembers +multi +exec +discard +subscribe +ping +info +select +client|setname',
        'user inkan-dns on >dns-pw resetkeys %R~inkan:keys %R~inkan:signing %R~inkan:hosts -@all +hgetall +smembers +multi +exec +discard +ping +info +select',
      ],
    });
    expect(await ok(['store', 'init', '--store', redis.url()])).toMatch(/Redis needs no schema/);
    const as = async (user: string, password: string, work: (r: Redis) => Promise<unknown>) => {
      const r = new Redis(redis.url({ user, password }), { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
      await r.connect();
      try {
        return await work(r);
      } finally {
        r.disconnect();
      }
    };
    return {
      kind: 'redis',
      admin: redis.url({ user: 'inkan-admin', password: 'admin-pw' }),
      dns: redis.url({ user: 'inkan-dns', password: 'dns-pw' }),
      milterd: redis.url({ user: 'inkan-milterd', password: 'milterd-pw' }),
      hostsChange: 'inkan:hosts',
      dnsReadsPrivate: () => as('inkan-dns', 'dns-pw', (r) => r.hgetall('inkan:private')),
      milterdWrites: () => as('inkan-milterd', 'milterd-pw', (r) => r.hset('inkan:signing', 'evil.example', 'x')),
    };
  });
});
