import { BlockList, isIP } from 'node:net';

/**
 * An entry of a host list that is not one: `index` says which (from 0). The message never
 * quotes the entry (it may come from a file that is not a host list at all, such as
 * /etc/shadow); readHostList turns the index into the file and line.
 */
export class HostListError extends Error {
  readonly index: number;

  constructor(index: number, message: string) {
    super(message);
    this.name = 'HostListError';
    this.index = index;
  }
}

/**
 * A list of hosts as InternalHosts and ExternalIgnoreList hold them: addresses, CIDR
 * blocks (IPv4 and IPv6, matched with node:net's BlockList), and host names ("mx.example.org"
 * exactly, ".example.org" for every host under it). "!" before an entry excludes it.
 */
export class HostList {
  private readonly include = new BlockList();
  private readonly exclude = new BlockList();
  private readonly names: { name: string; negate: boolean }[] = [];
  readonly entries: readonly string[];

  constructor(entries: readonly string[]) {
    this.entries = entries;
    for (const [index, raw] of entries.entries()) {
      const negate = raw.startsWith('!');
      const entry = (negate ? raw.slice(1) : raw).trim().toLowerCase();
      if (!entry) continue;
      const list = negate ? this.exclude : this.include;
      const slash = entry.indexOf('/');
      const address = slash >= 0 ? entry.slice(0, slash) : entry;
      const family = isIP(address.replace(/^\[|\]$/g, ''));
      if (family !== 0) {
        const bare = address.replace(/^\[|\]$/g, '');
        const type = family === 4 ? 'ipv4' : 'ipv6';
        if (slash >= 0) {
          const prefix = Number(entry.slice(slash + 1));
          if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) throw new HostListError(index, `bad prefix length (0-${family === 4 ? 32 : 128})`);
          list.addSubnet(bare, prefix, type);
        } else list.addAddress(bare, type);
        continue;
      }
      if (!/^\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/.test(entry)) throw new HostListError(index, 'not an address, a CIDR block or a host name');
      this.names.push({ name: entry.replace(/\.$/, ''), negate });
    }
  }

  /** Does a client (address and/or host name as the MTA reported them) match? */
  matches(address: string | undefined, hostname?: string): boolean {
    const host = hostname?.toLowerCase().replace(/\.$/, '');
    const nameHit = (negate: boolean) =>
      host !== undefined &&
      !host.startsWith('[') &&
      this.names.some((n) => n.negate === negate && (n.name.startsWith('.') ? host.endsWith(n.name) : host === n.name));
    const ip = normalizeAddress(address);
    if (ip) {
      const type = isIP(ip) === 4 ? 'ipv4' : 'ipv6';
      if (this.exclude.check(ip, type)) return false;
      if (nameHit(true)) return false;
      if (this.include.check(ip, type)) return true;
    } else if (nameHit(true)) return false;
    return nameHit(false);
  }
}

/** An address as MTAs send it ("IPv6:...", "[1.2.3.4]", IPv4-mapped IPv6) in plain form. */
export function normalizeAddress(address: string | undefined): string | undefined {
  if (!address) return undefined;
  let a = address.trim().replace(/^\[|\]$/g, '');
  if (/^ipv6:/i.test(a)) a = a.slice(5);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1] as string;
  return isIP(a) ? a : undefined;
}
