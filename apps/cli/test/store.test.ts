/** `inkan sign --store`: the keys a fleet shares, read from a private Redis (loopback). */
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimpyVerify, type DnsServer, type RedisServer, runProgram, startDnsmasq, startRedis, tempDir } from '@inkan/testbed';

const INKAN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'inkan.js');
let redis: RedisServer;
let dns: DnsServer;
let uri: string;
const records: Record<string, string> = {};

const inkan = (args: string[], input?: Buffer) =>
  runProgram(process.execPath, [INKAN, ...args], { ...(input ? { input } : {}), timeoutMs: 60_000 });

beforeAll(async () => {
  redis = await startRedis();
  uri = redis.url({ query: 'prefix=clitest:' });
  for (const [selector, type] of [
    ['strsa', 'rsa'],
    ['sted', 'ed25519'],
  ] as const) {
    const r = await inkan(['keygen', '--json', '--domain', 'example.org', '--selector', selector, '--type', type, '--store', uri]);
    expect(r.code, r.stderr).toBe(0);
    records[`${selector}._domainkey.example.org`] = JSON.parse(r.stdout).record;
  }
  dns = await startDnsmasq(records);
});

afterAll(async () => {
  await dns?.stop();
  await redis?.close();
});

describe('inkan sign --store', () => {
  it('signs with every usable key of the domain in the store, or the selector asked for; dkimpy passes', async () => {
    const message = Buffer.from('From: joe@example.org\r\nTo: x@example.net\r\nSubject: from the store\r\n\r\nHello\r\n');
    const all = await inkan(['sign', '-d', 'example.org', '--store', uri], message);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.match(/^DKIM-Signature:/gm)).toHaveLength(2);
    const one = await inkan(['sign', '-d', 'example.org', '--store', uri, '-s', 'sted'], message);
    expect(one.stdout.match(/^DKIM-Signature:/gm)).toHaveLength(1);
    expect(one.stdout).toMatch(/s=sted;/);
    const dir = tempDir('inkan-cli-store-');
    const files = [join(dir, 'all.eml'), join(dir, 'one.eml')];
    writeFileSync(files[0] as string, all.stdout);
    writeFileSync(files[1] as string, one.stdout);
    const verdicts = await dkimpyVerify(dns.port, files);
    expect(verdicts[0]?.signatures.map((s) => [s.s, s.pass]).sort()).toEqual([
      ['sted', true],
      ['strsa', true],
    ]);
    expect(verdicts[1]?.signatures.map((s) => [s.s, s.pass])).toEqual([['sted', true]]);
  });

  it('a domain without keys in the store is a usage error', async () => {
    const r = await inkan(['sign', '-d', 'other.example', '--store', uri], Buffer.from('From: a@other.example\r\n\r\nx\r\n'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/holds no usable key for other\.example/);
  });
});
