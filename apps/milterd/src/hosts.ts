import { isIP } from 'node:net';

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
 * How an entry is spelled, in the order OpenDKIM looks the spellings up for one candidate:
 * "!x", "x", "![x]", "[x]". When several spellings of one candidate are listed, the one
 * OpenDKIM tries first decides; an even rank says no, an odd one yes.
 */
const Rank = { Excluded: 0, Listed: 1, ExcludedBracketed: 2, ListedBracketed: 3 } as const;
type Rank = (typeof Rank)[keyof typeof Rank];

/** The entries of one address family: exact addresses, and networks by prefix length. */
interface Family {
  readonly bits: number;
  readonly exact: Map<bigint, Rank>;
  /** networks[len] holds the networks of that prefix length (masked), when any is listed. */
  readonly networks: (Map<bigint, Rank> | undefined)[];
  /** The prefix lengths that have entries, longest first. */
  lengths: number[];
}

function family(bits: number): Family {
  return { bits, exact: new Map(), networks: new Array<Map<bigint, Rank> | undefined>(bits + 1), lengths: [] };
}

/** Keeps the rank OpenDKIM would reach first for one key. */
function keep(map: Map<bigint, Rank>, key: bigint, rank: Rank): void {
  const had = map.get(key);
  if (had === undefined || rank < had) map.set(key, rank);
}

/**
 * A list of hosts as InternalHosts, ExternalIgnoreList and PeerList hold them: addresses,
 * CIDR blocks (IPv4 and IPv6), and host names ("mx.example.org" exactly, ".example.org" for
 * every host under it). "!" before an entry excludes it. The most specific entry decides, as
 * OpenDKIM's dkimf_checkhost and dkimf_checkip do, and a client matches when its name or its
 * address does (a name excluded does not stop a listed address, nor the other way round):
 *
 * - name: the full name, then each parent with its leading dot (".b.example.com",
 *   ".example.com", ".com"); the first of these that is listed, excluded or not, decides;
 * - address: the address itself, then its network at every prefix length from /32 (/128) down
 *   to /0; the first listed, excluded or not, decides. So "!192.168.1.128/30" inside
 *   "192.168.1.0/24" leaves out four addresses, and "192.168.1.129" inside that /30 brings one back.
 */
export class HostList {
  private readonly names = new Map<string, Rank>();
  private readonly v4 = family(32);
  private readonly v6 = family(128);
  readonly entries: readonly string[];

  constructor(entries: readonly string[]) {
    this.entries = entries;
    for (const [index, raw] of entries.entries()) {
      const trimmed = raw.trim();
      const negate = trimmed.startsWith('!');
      const entry = (negate ? trimmed.slice(1) : trimmed).trim().toLowerCase();
      if (!entry) continue;
      const slash = entry.indexOf('/');
      const spelled = slash >= 0 ? entry.slice(0, slash) : entry;
      const bracketed = spelled.startsWith('[') && spelled.endsWith(']');
      const ip = parseAddress(bracketed ? spelled.slice(1, -1) : spelled);
      if (ip) {
        const rank = bracketed ? (negate ? Rank.ExcludedBracketed : Rank.ListedBracketed) : negate ? Rank.Excluded : Rank.Listed;
        let { value, bits } = ip;
        let prefix: number | undefined;
        if (slash >= 0) {
          const text = entry.slice(slash + 1);
          prefix = /^\d{1,3}$/.test(text) ? Number(text) : NaN;
          if (!(prefix >= 0 && prefix <= bits)) throw new HostListError(index, `bad prefix length (0-${bits})`);
        }
        // An IPv4-mapped IPv6 entry (::ffff:192.0.2.1, ::ffff:192.0.2.0/120) is its IPv4
        // form, as clients are (normalizeAddress); a mapped block wider than /96 stays IPv6.
        if (bits === 128 && value >> 32n === 0xffffn && (prefix === undefined || prefix >= 96)) {
          value &= 0xffffffffn;
          bits = 32;
          if (prefix !== undefined) prefix -= 96;
        }
        const fam = bits === 32 ? this.v4 : this.v6;
        if (prefix === undefined) {
          keep(fam.exact, value, rank);
          continue;
        }
        // OpenDKIM looks up the client's network with the host bits cleared, so an entry with
        // host bits set ("192.168.1.5/24") never matches there; inkan takes it as the network
        // it is in (192.168.1.0/24), which is surely what was meant.
        let networks = fam.networks[prefix];
        if (!networks) {
          networks = fam.networks[prefix] = new Map();
          fam.lengths = [...fam.lengths, prefix].sort((a, b) => b - a);
        }
        keep(networks, networkOf(value, prefix, bits), rank);
        continue;
      }
      if (slash >= 0 || !/^\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/.test(entry)) {
        throw new HostListError(index, 'not an address, a CIDR block or a host name');
      }
      const name = entry.replace(/\.$/, '');
      const had = this.names.get(name);
      if (had === undefined || negate) this.names.set(name, negate ? Rank.Excluded : Rank.Listed);
    }
  }

  /** Does a client (address and/or host name as the MTA reported them) match? */
  matches(address: string | undefined, hostname?: string): boolean {
    return this.nameMatches(hostname) || this.addressMatches(address);
  }

  /** dkimf_checkhost: the most specific of the name and its parents that is listed decides. */
  private nameMatches(hostname: string | undefined): boolean {
    if (this.names.size === 0 || !hostname) return false;
    const host = hostname.trim().toLowerCase().replace(/\.$/, '');
    // "[192.0.2.1]" is how an MTA names a client whose address has no name: not a name.
    if (!host || host.startsWith('[')) return false;
    for (let at = 0; at >= 0; at = host.indexOf('.', at + 1)) {
      const rank = this.names.get(host.slice(at));
      if (rank !== undefined) return rank === Rank.Listed;
    }
    return false;
  }

  /** dkimf_checkip: the address, then its networks from the longest prefix down, decide. */
  private addressMatches(address: string | undefined): boolean {
    const plain = normalizeAddress(address);
    let ip = plain === undefined ? undefined : parseAddress(plain);
    if (!ip) return false;
    if (ip.bits === 128 && ip.value >> 32n === 0xffffn) ip = { value: ip.value & 0xffffffffn, bits: 32 };
    const fam = ip.bits === 32 ? this.v4 : this.v6;
    const exact = fam.exact.get(ip.value);
    if (exact !== undefined) return exact % 2 === 1;
    for (const prefix of fam.lengths) {
      const rank = fam.networks[prefix]?.get(networkOf(ip.value, prefix, fam.bits));
      if (rank !== undefined) return rank % 2 === 1;
    }
    return false;
  }
}

/** The network of an address at a prefix length: its host bits cleared. */
function networkOf(value: bigint, prefix: number, bits: number): bigint {
  const host = BigInt(bits - prefix);
  return (value >> host) << host;
}

/** An IPv4 or IPv6 address (no brackets, no prefix) as a number, or undefined. */
function parseAddress(text: string): { value: bigint; bits: 32 | 128 } | undefined {
  const family = isIP(text);
  if (family === 4) return { value: parseV4(text), bits: 32 };
  if (family !== 6) return undefined;
  let rest = text.replace(/%.*$/, '');
  let tail: bigint[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(rest);
  if (dotted) {
    const v4 = parseV4(dotted[1] as string);
    tail = [v4 >> 16n, v4 & 0xffffn];
    rest = rest.slice(0, -(dotted[1] as string).length);
    if (rest.endsWith(':') && !rest.endsWith('::')) rest = rest.slice(0, -1);
  }
  const groups = (part: string) => (part ? part.split(':').map((g) => BigInt(`0x${g}`)) : []);
  const gap = rest.indexOf('::');
  const head = gap >= 0 ? groups(rest.slice(0, gap)) : groups(rest);
  const after = gap >= 0 ? [...groups(rest.slice(gap + 2)), ...tail] : [];
  const all = gap >= 0 ? [...head, ...new Array<bigint>(8 - head.length - after.length).fill(0n), ...after] : [...head, ...tail];
  let value = 0n;
  for (const g of all) value = (value << 16n) | g;
  return { value, bits: 128 };
}

function parseV4(text: string): bigint {
  return text.split('.').reduce((n, octet) => (n << 8n) | BigInt(Number(octet)), 0n);
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
