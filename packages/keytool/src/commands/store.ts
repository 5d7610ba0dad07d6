import { type Command, Option } from 'commander';
import type { StoreListing } from '../store/admin.js';
import type { KeyStore } from '../store/types.js';
import { type CommandContext, intArg, json, listArg } from './shared.js';

/** The store module, loaded only when a store command runs (it brings the drivers). */
type StoreModule = typeof import('../store/index.js');

/** What each `store` subcommand is given. */
interface StoreContext extends CommandContext {
  /** The `store` command the subcommands hang from. */
  store: Command;
}

function storeOption(): Option {
  return new Option('--store <uri>', 'the store: postgresql://USER@HOST/DB or redis://[USER@]HOST:PORT/DB?prefix=inkan:')
    .env('INKAN_STORE')
    .makeOptionMandatory();
}

/** Open the store at uri, run work on it, close it. */
async function withStore<T>(uri: string, work: (store: KeyStore, m: StoreModule) => Promise<T>): Promise<T> {
  const m = await import('../store/index.js');
  const store = m.openKeyStore(uri);
  try {
    return await work(store, m);
  } finally {
    await store.close();
  }
}

function addInit({ store, io }: StoreContext): void {
  store
    .command('init')
    .description('create the PostgreSQL tables and triggers (Redis needs nothing); --print shows the SQL instead')
    .addOption(storeOption())
    .option('--print', 'print the SQL (the migration) instead of running it')
    .action(async (o) => {
      const m = await import('../store/index.js');
      const location = m.parseStoreUri(o.store);
      if (location.kind !== 'postgresql') {
        io.stdout(`${location.display}: Redis needs no schema (keys live under ${location.prefix}).\n`);
        return;
      }
      if (o.print) {
        io.stdout(m.schemaSql(location));
        return;
      }
      await withStore(o.store, (s) => s.init());
      io.stdout(
        `Created the tables ${location.tables.keys}, ${location.tables.signing} and ${location.tables.hosts} in ${location.display} (notifying ${location.channel}).\n`,
      );
    });
}

/** The store listing as lines for people. */
function listingLines(listing: StoreListing): string[] {
  const lines = ['Keys:'];
  if (listing.keys.length === 0) lines.push('  (none)');
  for (const k of listing.keys) {
    const detail =
      k.state === 'signing'
        ? `signing for ${k.patterns.join(', ')}`
        : k.state === 'retired'
          ? `retired ${k.retiredAt ?? ''}`.trim()
          : 'not used for signing';
    lines.push(`  ${k.name}  ${k.type ?? '?'}  ${detail}`);
  }
  lines.push('SigningTable:');
  if (listing.signing.length === 0) lines.push('  (none)');
  for (const e of listing.signing)
    lines.push(`  ${e.pattern}  ${e.keyNames.join(' ')}${e.missing.length > 0 ? `  (missing: ${e.missing.join(', ')})` : ''}`);
  if (listing.hosts.length > 0) lines.push(`InternalHosts: ${listing.hosts.join(', ')}`);
  for (const p of listing.problems) lines.push(`problem: ${p.where}: ${p.message}`);
  return lines;
}

function addList({ store, io, asJson }: StoreContext): void {
  store
    .command('list')
    .description('the keys (without private halves), the SigningTable and InternalHosts')
    .addOption(storeOption())
    .action(async (o) => {
      const listing = await withStore(o.store, (s, m) => m.listStore(s));
      if (asJson()) io.stdout(json(listing));
      else io.stdout(`${listingLines(listing).join('\n')}\n`);
    });
}

function addSign({ store, io, asJson }: StoreContext): void {
  store
    .command('sign')
    .description('make a SigningTable pattern sign with a key in the store (added to the keys it has)')
    .addOption(storeOption())
    .requiredOption('-p, --pattern <pattern>', 'sender pattern: user@domain, domain, .parent or *')
    .requiredOption('-d, --domain <domain>', "the key's domain")
    .requiredOption('-s, --selector <name>', "the key's selector")
    .option('--replace', 'replace the keys the pattern had instead of adding to them')
    .action(async (o) => {
      const r = await withStore(o.store, (s, m) => m.signWith(s, o.pattern, o.domain, o.selector, !!o.replace));
      if (asJson()) io.stdout(json(r));
      else io.stdout(`${r.pattern} now signs with ${r.keyNames.join(', ')}\n`);
    });
}

function addUnsign({ store, io, asJson }: StoreContext): void {
  store
    .command('unsign')
    .description('remove a SigningTable pattern (its mail is then no longer signed)')
    .addOption(storeOption())
    .requiredOption('-p, --pattern <pattern>', 'the pattern')
    .action(async (o) => {
      const removed = await withStore(o.store, (s) => s.removeSigning(o.pattern));
      if (!removed) throw new Error(`the SigningTable has no pattern ${o.pattern}`);
      if (asJson()) io.stdout(json({ pattern: o.pattern, removed }));
      else io.stdout(`${o.pattern} removed from the SigningTable\n`);
    });
}

function addRotate({ store, io, asJson }: StoreContext): void {
  store
    .command('rotate')
    .description("switch a domain's signing to another selector in the store (publish its record in DNS first)")
    .addOption(storeOption())
    .requiredOption('-d, --domain <domain>', 'the signing domain')
    .requiredOption('-s, --selector <name>', 'the new selector (already in the store: genkey --store)')
    .option('--replace <selectors>', "only replace these selectors (default: the domain's other keys of the same type)", listArg)
    .option('--ttl <seconds>', 'TTL of the key records, for the wait before retiring', intArg('--ttl', 0, 10_000_000), 86_400)
    .action(async (o) => {
      const r = await withStore(o.store, (s, m) => m.rotateSelector(s, o.domain, o.selector, o.replace));
      if (asJson()) {
        io.stdout(json(r));
        return;
      }
      io.stdout(
        [
          `${r.patterns.join(', ')} now sign${r.patterns.length === 1 ? 's' : ''} with ${r.name} (every milterd uses it within seconds).`,
          `Replaced: ${r.replaced.join(', ')}.`,
          `Keep the old records in DNS for at least the TTL (${o.ttl} s) plus the time mail may sit in queues, then:`,
          ...r.replacedSelectors.map((sel) => `  inkan-keytool store retire --store URI --domain ${o.domain} --selector ${sel}`),
          '',
        ].join('\n'),
      );
    });
}

function addRetire({ store, io, asJson }: StoreContext): void {
  store
    .command('retire')
    .description('erase the private half of a selector no SigningTable entry uses (the row stays, marked retired)')
    .addOption(storeOption())
    .requiredOption('-d, --domain <domain>', 'the signing domain')
    .requiredOption('-s, --selector <name>', 'the selector to retire')
    .action(async (o) => {
      const r = await withStore(o.store, (s, m) => m.retireSelector(s, o.domain, o.selector));
      if (asJson()) io.stdout(json(r));
      else
        io.stdout(
          `${r.name} retired: its private key is gone from the store. Revoke it in DNS: publish "v=DKIM1; p=" at ${r.name} for a while, then remove it.\n`,
        );
    });
}

function addHosts({ store, io, asJson }: StoreContext): void {
  store
    .command('hosts')
    .description('show InternalHosts in the store, or replace them with --set')
    .addOption(storeOption())
    .option('--set <list>', 'comma-separated addresses, CIDR blocks and host names')
    .action(async (o) => {
      const hosts = await withStore(o.store, async (s) => {
        if (typeof o.set === 'string') {
          const list = o.set
            .split(/[,\s]+/)
            .map((h: string) => h.trim())
            .filter(Boolean);
          await s.setHosts(list);
          return list;
        }
        return (await s.snapshot({ privateKeys: false, hosts: true })).hosts ?? [];
      });
      if (asJson()) io.stdout(json({ hosts }));
      else io.stdout(`${hosts.join('\n')}${hosts.length > 0 ? '\n' : ''}`);
    });
}

/** inkan-keytool store ...: the shared tables in PostgreSQL or Redis. */
export function addStoreCommands(ctx: CommandContext): void {
  const store = ctx.program
    .command('store')
    .description('keys and signing tables shared by many milterd hosts, in PostgreSQL or Redis')
    .addHelpText(
      'after',
      `
The URI may carry: table names keys=, signing=, hosts= and channel= (PostgreSQL), prefix= (Redis).
INKAN_STORE may hold the URI instead of --store. Who may read private keys is up to the store's
own accounts (see docs/fleet.md).

Examples:
  $ inkan-keytool store init --store postgresql://inkan_owner@db.example.org/mail
  $ inkan-keytool genkey -d example.org -s 202607 --store postgresql://inkan_admin@db.example.org/mail
  $ inkan-keytool store sign --store redis://127.0.0.1:6379/0 --pattern example.org --domain example.org --selector 202607
  $ inkan-keytool store rotate --store redis://127.0.0.1:6379/0 --domain example.org --selector 202608
  $ inkan-keytool store retire --store redis://127.0.0.1:6379/0 --domain example.org --selector 202607
  $ inkan-keytool store list --store redis://127.0.0.1:6379/0`,
    );
  const sub: StoreContext = { ...ctx, store };
  for (const add of [addInit, addList, addSign, addUnsign, addRotate, addRetire, addHosts]) add(sub);
}
