import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimKeyRecord, type DnsServer, freePort, makeKeys, startDnsmasq, type TestKeys } from '@inkan/testbed';
import {
  CachingKeyResolver,
  DnsKeyResolver,
  FileKeyResolver,
  KeyLookupError,
  parseKeysFile,
  signMessage,
  verifyMessage,
} from '../src/index.js';
import { normalizeServer } from '../src/resolver.js';
import { generateKeyPairSync } from 'node:crypto';

describe('DnsKeyResolver against a real DNS server (dnsmasq on loopback)', () => {
  let dns: DnsServer;
  let keys: TestKeys;
  let rsa4096: string;

  beforeAll(async () => {
    keys = makeKeys();
    rsa4096 = generateKeyPairSync('rsa', { modulusLength: 4096 }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    dns = await startDnsmasq({
      'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
      'big._domainkey.example.org': `v=DKIM1; k=rsa; p=${rsa4096}`,
      'two._domainkey.example.org': ['v=spf1 -all', dkimKeyRecord(keys.rsa2048)],
    });
  });
  afterAll(async () => {
    await dns?.stop();
  });

  it('joins the 255-octet strings of one record', async () => {
    const resolver = new DnsKeyResolver({ servers: [dns.server], timeout: 1000, tries: 1 });
    expect(await resolver.lookup('rsa._domainkey.example.org')).toEqual([dkimKeyRecord(keys.rsa2048)]);
  });

  it('fetches a 4096-bit key record (several strings, a large answer)', async () => {
    const resolver = new DnsKeyResolver({ servers: [dns.server] });
    expect(await resolver.lookup('big._domainkey.example.org')).toEqual([`v=DKIM1; k=rsa; p=${rsa4096}`]);
  });

  it('NXDOMAIN is NOTFOUND (permanent)', async () => {
    const resolver = new DnsKeyResolver({ servers: [dns.server], timeout: 1000, tries: 1 });
    await expect(resolver.lookup('nothere._domainkey.example.org')).rejects.toMatchObject({ code: 'NOTFOUND' });
  });

  it('no server answering is TEMPFAIL', async () => {
    const port = await freePort();
    const resolver = new DnsKeyResolver({ servers: [`127.0.0.1:${port}`], timeout: 200, tries: 1 });
    const error = await resolver.lookup('rsa._domainkey.example.org').catch((e: unknown) => e);
    expect(KeyLookupError.isInstance(error) && error.code).toBe('TEMPFAIL');
  });

  it('verifies through DNS, and picks the DKIM record among other TXT records', async () => {
    const resolver = new DnsKeyResolver({ servers: [dns.server] });
    const message = Buffer.from('From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n');
    for (const selector of ['rsa', 'two']) {
      const sig = await signMessage(message, { domain: 'example.org', selector, privateKey: keys.rsa2048.privateKey });
      const [r] = await verifyMessage(Buffer.concat([Buffer.from(sig), message]), { resolver });
      expect(r?.result).toBe('pass');
    }
  });

  it('accepts OpenDKIM-style "addr@port" server names', () => {
    expect(normalizeServer('127.0.0.1@5353')).toBe('127.0.0.1:5353');
    expect(normalizeServer('::1@53')).toBe('[::1]:53');
    expect(normalizeServer('127.0.0.1:53')).toBe('127.0.0.1:53');
  });
});

describe('keys files', () => {
  it('reads plain, quoted and parenthesized zone-style records, with comments', () => {
    const text = [
      '# test keys',
      'plain._domainkey.example.org  v=DKIM1; k=rsa; p=AAAA',
      'zone._domainkey.example.org. 300 IN TXT ( "v=DKIM1; k=ed25519; "   ; first part',
      '    "p=BBBB" )',
      'quoted._domainkey.example.org IN TXT "v=DKIM1; p=CC" "CC"',
      '',
    ].join('\n');
    const records = parseKeysFile(text);
    expect(records.get('plain._domainkey.example.org')).toEqual(['v=DKIM1; k=rsa; p=AAAA']);
    expect(records.get('zone._domainkey.example.org')).toEqual(['v=DKIM1; k=ed25519; p=BBBB']);
    expect(records.get('quoted._domainkey.example.org')).toEqual(['v=DKIM1; p=CCCC']);
  });

  it('names the file and line of what it cannot read', () => {
    expect(() => parseKeysFile('ok._domainkey.x v=DKIM1; p=A\nbad._domainkey.x ( "v=DKIM1;"\n', 'keys.txt')).toThrow(
      /keys\.txt:2: unclosed/,
    );
  });

  it('serves lookups like DNS, NOTFOUND for the rest', async () => {
    const r = FileKeyResolver.fromText('a._domainkey.example.org v=DKIM1; p=AAAA\n');
    expect(await r.lookup('A._domainkey.Example.org.')).toEqual(['v=DKIM1; p=AAAA']);
    await expect(r.lookup('b._domainkey.example.org')).rejects.toMatchObject({ code: 'NOTFOUND' });
  });
});

describe('CachingKeyResolver', () => {
  it('keeps answers for their lifetime, NOTFOUND for a shorter one, never temporary failures; one lookup for concurrent askers', async () => {
    let now = 0;
    const asked: string[] = [];
    let fail = false;
    const inner = {
      async lookup(name: string) {
        asked.push(name);
        await new Promise((r) => setTimeout(r, 5));
        if (fail) throw new KeyLookupError('TEMPFAIL', 'timeout');
        if (name.startsWith('missing')) throw new KeyLookupError('NOTFOUND', 'nxdomain');
        return ['v=DKIM1; p=AAAA'];
      },
    };
    const cache = new CachingKeyResolver(inner, { ttlSeconds: 300, negativeTtlSeconds: 60, now: () => now });
    const both = await Promise.all([cache.lookup('a._domainkey.x'), cache.lookup('A._domainkey.X.')]);
    expect(both).toEqual([['v=DKIM1; p=AAAA'], ['v=DKIM1; p=AAAA']]);
    expect(asked).toEqual(['a._domainkey.x']);
    now = 299_000;
    await cache.lookup('a._domainkey.x');
    expect(asked).toHaveLength(1);
    await expect(cache.lookup('missing._domainkey.x')).rejects.toMatchObject({ code: 'NOTFOUND' });
    await expect(cache.lookup('missing._domainkey.x')).rejects.toMatchObject({ code: 'NOTFOUND' });
    expect(asked).toHaveLength(2);
    now = 301_000;
    fail = true;
    await expect(cache.lookup('a._domainkey.x')).rejects.toMatchObject({ code: 'TEMPFAIL' });
    await expect(cache.lookup('a._domainkey.x')).rejects.toMatchObject({ code: 'TEMPFAIL' });
    expect(asked).toHaveLength(4);
  });

  it('is bounded', async () => {
    const cache = new CachingKeyResolver({ lookup: async () => ['v=DKIM1; p=AAAA'] }, { maxEntries: 3 });
    for (let i = 0; i < 10; i++) await cache.lookup(`s${i}._domainkey.x`);
    expect(cache.size).toBe(3);
  });
});
