-- inkan: who may read and change the shared DKIM tables (PostgreSQL), after 001_dkim_tables.sql.
-- Run as the owner of the tables. Create the three roles first, each with its own password:
--   CREATE ROLE inkan_admin   LOGIN PASSWORD '...';  -- inkan-keytool: adds, rotates, retires keys
--   CREATE ROLE inkan_milterd LOGIN PASSWORD '...';  -- every inkan-milterd host: reads, private keys included
--   CREATE ROLE inkan_dns     LOGIN PASSWORD '...';  -- DNS automation, monitoring: public halves only
-- and let only them connect:
--   REVOKE CONNECT ON DATABASE mail FROM PUBLIC;
--   GRANT CONNECT ON DATABASE mail TO inkan_admin, inkan_milterd, inkan_dns;
REVOKE ALL ON dkim_keys, dkim_signing, dkim_internal_hosts FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON dkim_keys, dkim_signing, dkim_internal_hosts TO inkan_admin;

GRANT SELECT ON dkim_keys, dkim_signing, dkim_internal_hosts TO inkan_milterd;

-- Every column but private_key: inkan-keytool store list works, the private keys stay out of reach.
GRANT SELECT (name, domain, selector, record, created_at, retired_at) ON dkim_keys TO inkan_dns;
GRANT SELECT ON dkim_signing, dkim_internal_hosts TO inkan_dns;
