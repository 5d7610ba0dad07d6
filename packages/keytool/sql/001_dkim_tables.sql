-- inkan: shared DKIM key and signing tables for many inkan-milterd hosts (migration 001).
-- Apply once per database, as its owner:
--   psql "postgresql://OWNER@HOST/DATABASE" -v ON_ERROR_STOP=1 -f 001_dkim_tables.sql
-- or: inkan-keytool store init --store "postgresql://OWNER@HOST/DATABASE"
-- Running it again changes nothing. Needs PostgreSQL 11 or later.
BEGIN;

-- The KeyTable: one row per key. inkan-keytool names keys SELECTOR._domainkey.DOMAIN.
-- private_key is the PEM private key (PKCS#8 or PKCS#1); NULL once the key is retired.
-- record is the TXT data to publish at SELECTOR._domainkey.DOMAIN (the public half).
CREATE TABLE IF NOT EXISTS "dkim_keys" (
  name        text PRIMARY KEY,
  domain      text NOT NULL,
  selector    text NOT NULL,
  private_key text,
  record      text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  retired_at  timestamptz,
  UNIQUE (domain, selector)
);

-- The SigningTable: which keys sign mail from which senders, as in OpenDKIM's SigningTable
-- file: a pattern is user@domain, domain, .parent (with SubDomains) or *; one row per key
-- (several rows for one pattern sign with several keys under MultipleSignatures).
CREATE TABLE IF NOT EXISTS "dkim_signing" (
  pattern  text NOT NULL,
  key_name text NOT NULL,
  PRIMARY KEY (pattern, key_name)
);

-- InternalHosts (optional): addresses, CIDR blocks and host names whose mail is signed.
CREATE TABLE IF NOT EXISTS "dkim_internal_hosts" (
  host text PRIMARY KEY
);

-- Every change, by inkan-keytool or by hand, notifies the milterds listening on inkan_dkim.
CREATE OR REPLACE FUNCTION inkan_dkim_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(TG_ARGV[0], TG_TABLE_NAME);
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS "dkim_keys_notify" ON "dkim_keys";
CREATE TRIGGER "dkim_keys_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "dkim_keys"
  FOR EACH STATEMENT EXECUTE FUNCTION inkan_dkim_notify('inkan_dkim');

DROP TRIGGER IF EXISTS "dkim_signing_notify" ON "dkim_signing";
CREATE TRIGGER "dkim_signing_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "dkim_signing"
  FOR EACH STATEMENT EXECUTE FUNCTION inkan_dkim_notify('inkan_dkim');

DROP TRIGGER IF EXISTS "dkim_internal_hosts_notify" ON "dkim_internal_hosts";
CREATE TRIGGER "dkim_internal_hosts_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "dkim_internal_hosts"
  FOR EACH STATEMENT EXECUTE FUNCTION inkan_dkim_notify('inkan_dkim');

COMMIT;
