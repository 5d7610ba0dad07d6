import { describe, expect, it } from 'vitest';
import { HostList, normalizeAddress } from '../src/internal.js';
import { HostListError } from '../src/hosts.js';

/** Which of these clients (address, host name) the list takes in, keyed "address host". */
function verdicts(list: HostList, clients: readonly (readonly [string | undefined, string?])[]): Record<string, boolean> {
  return Object.fromEntries(clients.map(([address, host]) => [`${address ?? '-'} ${host ?? '-'}`, list.matches(address, host)]));
}

describe('HostList decides as OpenDKIM (most specific entry wins; name or address)', () => {
  // The example list of OpenDKIM's PeerList documentation, and what OpenDKIM makes of it.
  const peers = new HostList([
    '.example.com',
    '!nonpeer.example.com',
    '!.nonpeer.example.com',
    'allowed.nonpeer.example.com',
    'smtp.example.net',
    '192.168.1.0/24',
    '!192.168.1.64',
    '!192.168.1.128/30',
    '2001:db8::/64',
    '!2001:db8::99',
    '!2001:db8::fff0/126',
  ]);

  it('host names: the full name, then each parent with its dot; the first listed decides', () => {
    const names = [
      'peer.example.com',
      'bob.example.com',
      'bob.example.net',
      'nonpeer.example.com',
      'xyz.nonpeer.example.com',
      'allowed.nonpeer.example.com',
      'smtp.example.net',
    ];
    expect(
      verdicts(
        peers,
        names.map((n) => ['127.0.0.1', n] as const),
      ),
    ).toEqual({
      '127.0.0.1 peer.example.com': true,
      '127.0.0.1 bob.example.com': true,
      '127.0.0.1 bob.example.net': false,
      '127.0.0.1 nonpeer.example.com': false,
      '127.0.0.1 xyz.nonpeer.example.com': false,
      '127.0.0.1 allowed.nonpeer.example.com': true,
      '127.0.0.1 smtp.example.net': true,
    });
  });

  it('IPv4: the address, then its networks from /32 down to /0; the first listed decides', () => {
    const addresses = [
      '127.0.0.1',
      '192.168.1.1',
      '192.168.1.64',
      '192.168.1.127',
      '192.168.1.128',
      '192.168.1.129',
      '192.168.1.130',
      '192.168.1.131',
      '192.168.1.132',
      '192.168.2.1',
    ];
    expect(
      verdicts(
        peers,
        addresses.map((a) => [a, 'localhost'] as const),
      ),
    ).toEqual({
      '127.0.0.1 localhost': false,
      '192.168.1.1 localhost': true,
      '192.168.1.64 localhost': false,
      '192.168.1.127 localhost': true,
      '192.168.1.128 localhost': false,
      '192.168.1.129 localhost': false,
      '192.168.1.130 localhost': false,
      '192.168.1.131 localhost': false,
      '192.168.1.132 localhost': true,
      '192.168.2.1 localhost': false,
    });
  });

  it('IPv6: the same, from /128 down', () => {
    const addresses = [
      '9001:db8::8:800:200c:417a',
      '2001:db8::91',
      '2001:db8::99',
      '2001:db8::ffef',
      '2001:db8::fff0',
      '2001:db8::fff1',
      '2001:db8::fff2',
      '2001:db8::fff3',
      '2001:db8::fff4',
      '2001:db8:0:1::1',
    ];
    expect(
      verdicts(
        peers,
        addresses.map((a) => [a, 'localhost'] as const),
      ),
    ).toEqual({
      '9001:db8::8:800:200c:417a localhost': false,
      '2001:db8::91 localhost': true,
      '2001:db8::99 localhost': false,
      '2001:db8::ffef localhost': true,
      '2001:db8::fff0 localhost': false,
      '2001:db8::fff1 localhost': false,
      '2001:db8::fff2 localhost': false,
      '2001:db8::fff3 localhost': false,
      '2001:db8::fff4 localhost': true,
      '2001:db8:0:1::1 localhost': false,
    });
    // Spellings as MTAs send them, and an address written out in full.
    expect(peers.matches('IPv6:2001:db8::91')).toBe(true);
    expect(peers.matches('[IPv6:2001:0DB8:0:0:0:0:0:fff2]')).toBe(false);
    expect(peers.matches('2001:db8:0:0:0:0:0:fff4')).toBe(true);
  });

  it('a name check and an address check: either one listing the client is enough', () => {
    // An excluded name does not stop a listed address, and an excluded address does not stop a listed name.
    expect(peers.matches('192.168.1.1', 'nonpeer.example.com')).toBe(true);
    expect(peers.matches('192.168.1.64', 'peer.example.com')).toBe(true);
    expect(peers.matches('192.168.1.64', 'nonpeer.example.com')).toBe(false);
    // No name, or an unresolved client ("[address]"): only the address counts.
    expect(peers.matches('192.168.1.1')).toBe(true);
    expect(peers.matches('10.0.0.1', '[10.0.0.1]')).toBe(false);
    expect(peers.matches(undefined, 'peer.example.com')).toBe(true);
    expect(peers.matches(undefined, undefined)).toBe(false);
    // Names compare without case and without the root's trailing dot.
    expect(peers.matches(undefined, 'Peer.EXAMPLE.com.')).toBe(true);
    expect(peers.matches(undefined, 'XYZ.NonPeer.Example.Com')).toBe(false);
    // ".example.com" is what is under example.com, not example.com itself.
    expect(peers.matches(undefined, 'example.com')).toBe(false);
  });

  it('a more specific listed entry inside an excluded block is taken in', () => {
    const list = new HostList(['!10.0.0.0/8', '10.1.0.0/16', '!10.1.2.0/24', '10.1.2.3/32', '!.corp.example', 'ok.corp.example']);
    expect(
      verdicts(list, [
        ['10.9.9.9'],
        ['10.1.9.9'],
        ['10.1.2.9'],
        ['10.1.2.3'],
        [undefined, 'a.corp.example'],
        [undefined, 'ok.corp.example'],
        [undefined, 'a.ok.corp.example'],
      ]),
    ).toEqual({
      '10.9.9.9 -': false,
      '10.1.9.9 -': true,
      '10.1.2.9 -': false,
      '10.1.2.3 -': true,
      '- a.corp.example': false,
      '- ok.corp.example': true,
      '- a.ok.corp.example': false,
    });
  });

  it('one entry listed and excluded at once is excluded; an exact address outranks its /32', () => {
    expect(new HostList(['192.0.2.1', '!192.0.2.1']).matches('192.0.2.1')).toBe(false);
    expect(new HostList(['!192.0.2.0/24', '192.0.2.0/24']).matches('192.0.2.1')).toBe(false);
    expect(new HostList(['mx.example', '!mx.example']).matches(undefined, 'mx.example')).toBe(false);
    expect(new HostList(['192.0.2.1', '!192.0.2.1/32']).matches('192.0.2.1')).toBe(true);
    expect(new HostList(['!192.0.2.1', '192.0.2.1/32']).matches('192.0.2.1')).toBe(false);
  });

  it('bracketed entries, mapped IPv4, host bits, /0', () => {
    const list = new HostList(['[192.0.2.7]', '[198.51.100.0]/24', '::ffff:203.0.113.0/120', '192.168.1.5/24', '[2001:db8::1]']);
    expect(list.matches('192.0.2.7')).toBe(true);
    expect(list.matches('198.51.100.200')).toBe(true);
    expect(list.matches('203.0.113.9')).toBe(true);
    expect(list.matches('::ffff:203.0.113.9')).toBe(true);
    expect(list.matches('::ffff:cb00:7109')).toBe(true);
    // 192.168.1.5/24 is taken as the network it is in (OpenDKIM never matches it).
    expect(list.matches('192.168.1.200')).toBe(true);
    expect(list.matches('2001:db8::1')).toBe(true);
    expect(list.matches('2001:db8::2')).toBe(false);
    const everyone = new HostList(['0.0.0.0/0', '::/0', '!192.0.2.0/24']);
    expect([everyone.matches('8.8.8.8'), everyone.matches('2001:db8::5'), everyone.matches('192.0.2.5')]).toEqual([true, true, false]);
    // A bare "x" is tried before "![x]", as OpenDKIM does.
    expect(new HostList(['192.0.2.1', '![192.0.2.1]']).matches('192.0.2.1')).toBe(true);
    expect(new HostList(['[192.0.2.1]', '!192.0.2.1']).matches('192.0.2.1')).toBe(false);
  });

  it('bad entries are reported by index, never quoted; blank ones are skipped', () => {
    const bad = (entries: string[]) => {
      try {
        new HostList(entries);
      } catch (error) {
        expect(error).toBeInstanceOf(HostListError);
        return { index: (error as HostListError).index, message: (error as Error).message };
      }
      throw new Error('accepted');
    };
    expect(bad(['127.0.0.1', '10.0.0.0/33'])).toEqual({ index: 1, message: 'bad prefix length (0-32)' });
    expect(bad(['2001:db8::/129'])).toEqual({ index: 0, message: 'bad prefix length (0-128)' });
    expect(bad(['10.0.0.0/'])).toMatchObject({ index: 0 });
    expect(bad(['', 'root:$6$secret:19000:0:99999:7:::'])).toEqual({ index: 1, message: 'not an address, a CIDR block or a host name' });
    expect(bad(['mx.example/24'])).toMatchObject({ index: 0 });
    const list = new HostList(['', '  ', '!', ' 127.0.0.1 ']);
    expect(list.entries).toHaveLength(4);
    expect(list.matches('127.0.0.1')).toBe(true);
  });

  it('thousands of entries', () => {
    const entries: string[] = [];
    for (let i = 0; i < 4000; i++)
      entries.push(`10.${i >> 8}.${i & 255}.0/24`, `!10.${i >> 8}.${i & 255}.7`, `host${i}.example`, `2001:db8:${i.toString(16)}::/48`);
    const list = new HostList(entries);
    expect(list.matches('10.3.4.5')).toBe(true);
    expect(list.matches('10.3.4.7')).toBe(false);
    expect(list.matches('10.200.0.1')).toBe(false);
    expect(list.matches(undefined, 'host3999.example')).toBe(true);
    expect(list.matches('2001:db8:f9f::1')).toBe(true);
  });

  it('normalizeAddress reads the MTA spellings', () => {
    expect(['[192.0.2.1]', 'IPv6:::1', '::ffff:192.0.2.1', 'unknown', undefined].map(normalizeAddress)).toEqual([
      '192.0.2.1',
      '::1',
      '192.0.2.1',
      undefined,
      undefined,
    ]);
  });
});
