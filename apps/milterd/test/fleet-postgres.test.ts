/**
 * Fleet on PostgreSQL: a private server on a free loopback port, the shipped migration and
 * grants, inkan-keytool as inkan_admin, every milterd as inkan_milterd (SELECT only).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { postgresMissing, startPostgres } from '@inkan/testbed';
import { describe } from 'vitest';
import { fleetScenario } from './fleet.js';

const SQL = resolve(import.meta.dirname, '..', '..', '..', 'packages', 'keytool', 'sql');
const missing = postgresMissing();

describe.skipIf(missing !== undefined && !process.env.CI)(`fleet: tables in PostgreSQL${missing ? ` (${missing})` : ''}`, () => {
  fleetScenario(async () => {
    const pg = await startPostgres();
    const pw = { admin: `adm-${Math.random().toString(36).slice(2)}`, milterd: `mil-${Math.random().toString(36).slice(2)}` };
    // As in docs/fleet.md: tables owned by inkan_owner, who applies the migration and the grants.
    await pg.psql(`CREATE ROLE inkan_owner LOGIN PASSWORD 'owner';
CREATE DATABASE mail OWNER inkan_owner;
CREATE ROLE inkan_admin LOGIN PASSWORD '${pw.admin}';
CREATE ROLE inkan_milterd LOGIN PASSWORD '${pw.milterd}';
CREATE ROLE inkan_dns LOGIN PASSWORD 'dns';
REVOKE CONNECT ON DATABASE mail FROM PUBLIC;
GRANT CONNECT ON DATABASE mail TO inkan_owner, inkan_admin, inkan_milterd, inkan_dns;`);
    const owner = { user: 'inkan_owner', password: 'owner', database: 'mail' };
    await pg.psql(readFileSync(resolve(SQL, '001_dkim_tables.sql'), 'utf8'), owner);
    await pg.psql(readFileSync(resolve(SQL, 'grants.sql'), 'utf8'), owner);
    const milterd = (table: string) =>
      pg.url({ user: 'inkan_milterd', password: pw.milterd, database: 'mail', query: `table=${table}&poll=5&retry=2` });
    const adminUri = pg.url({ user: 'inkan_admin', password: pw.admin, database: 'mail' });
    return {
      kind: 'postgresql',
      adminUri,
      milterdConfig: (o = {}) =>
        `KeyTable ${milterd('dkim_keys')}\nSigningTable ${milterd('dkim_signing')}\n${o.hosts ? `InternalHosts ${milterd('dkim_internal_hosts')}\n` : ''}`,
      secrets: [pw.milterd, pw.admin],
      async insertBadRows(goodPem) {
        // Straight SQL as inkan_admin, as an administrator with psql might: the triggers notify.
        const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
        await pg.psql(
          `BEGIN;
INSERT INTO dkim_keys (name, domain, selector, private_key) VALUES ('missing._domainkey.bad-missing.example', 'bad-missing.example', 'missing', NULL);
INSERT INTO dkim_keys (name, domain, selector, private_key) VALUES ('pem._domainkey.bad-pem.example', 'bad-pem.example', 'pem', '-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n');
INSERT INTO dkim_keys (name, domain, selector, private_key) VALUES ('nodomain._domainkey', '', 'nodomain', ${q(goodPem)});
INSERT INTO dkim_signing (pattern, key_name) VALUES ('bad-missing.example', 'missing._domainkey.bad-missing.example'),
  ('bad-pem.example', 'pem._domainkey.bad-pem.example'), ('bad-nodomain.example', 'nodomain._domainkey'),
  ('dangling.example', 'nosuchkey._domainkey.dangling.example');
COMMIT;`,
          { user: 'inkan_admin', password: pw.admin, database: 'mail' },
        );
      },
      stop: () => pg.stop(),
      start: () => pg.start(),
      close: () => pg.close(),
    };
  });
});
