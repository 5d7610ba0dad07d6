/**
 * Tables in a shared store, the parts around the fleet scenario: how the options name a
 * store, what is refused, the "should be signed" rule of a plan with unusable keys, and with
 * a private Redis: --check-config, SIGHUP reloads, the polling fallback, an emptied store.
 */
import { generateKeyPairSync } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, type RedisServer, redisMissing, runProgram, startRedis, tempDir } from '@inkan/testbed';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeLocationFor } from '../src/config/stores/store-plan.js';
import { keyFromPem, planFromTables, SigningPlan } from '../src/config/tables.js';
import { ConfigError, defaults, describeConfig, parseConfigText, parseDataset } from '../src/internal.js';
import { keytool, send } from './fleet.js';
import { startMilterd } from './helpers.js';

const pem = () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

describe('store datasets in the configuration', () => {
  it('KeyTable, SigningTable and InternalHosts take postgresql:// and redis:// URIs; --check-config output hides passwords', () => {
    expect(parseDataset('postgresql://inkan@127.0.0.1/mail?table=dkim_keys')).toEqual({
      kind: 'postgresql',
      url: 'postgresql://inkan@127.0.0.1/mail?table=dkim_keys',
    });
    expect(parseDataset('postgres://h/mail').kind).toBe('postgresql');
    expect(parseDataset('redis://127.0.0.1:6379/0?prefix=inkan:')).toEqual({
      kind: 'redis',
      url: 'redis://127.0.0.1:6379/0?prefix=inkan:',
    });
    expect(parseDataset('rediss://h:6380/1').kind).toBe('redis');
    const c = parseConfigText(
      'KeyTable postgresql://inkan:pw@db/mail?table=k\nSigningTable postgresql://inkan:pw@db/mail?table=s\n',
      'x.conf',
    );
    const text = describeConfig(c);
    expect(text).toContain('KeyTable postgresql://inkan:***@db/mail?table=k');
    expect(text).not.toContain(':pw@');
    const loc = storeLocationFor(c);
    expect(loc?.location.tables).toMatchObject({ keys: 'k', signing: 's' });
    expect(loc?.hosts).toBe(false);
  });

  it('refuses mixtures it cannot keep consistent, naming the option', () => {
    const conf = (text: string) => parseConfigText(text, 'x.conf', defaults());
    expect(() => storeLocationFor(conf('KeyTable redis://h/0\nSigningTable /etc/signing\n'))).toThrow(
      /KeyTable and SigningTable must both name the store/,
    );
    expect(() => storeLocationFor(conf('InternalHosts redis://h/0\n'))).toThrow(ConfigError);
    expect(() => storeLocationFor(conf('KeyTable redis://a/0\nSigningTable redis://b/0\n'))).toThrow(/different stores/);
    expect(() => storeLocationFor(conf('KeyTable redis://h/0?table=x\nSigningTable redis://h/0\n'))).toThrow(
      /^KeyTable: table= is for postgresql/,
    );
    expect(storeLocationFor(conf('KeyTable /etc/k\nSigningTable /etc/s\n'))).toBeUndefined();
  });

  it('a plan never lets mail that should be signed pass unsigned: not loaded, or only unusable keys, means hold', () => {
    const notLoaded = SigningPlan.notLoaded('not yet', { multiple: false, subDomains: false });
    expect(notLoaded.lookup('joe@example.org')).toEqual({ keys: [], hold: 'not yet' });
    const good = keyFromPem('k1', 'example.org', 's1', pem(), 'test key', 'here');
    const problems: string[] = [];
    const plan = planFromTables(
      new Map([['k1', good]]),
      [
        { where: 'row 1', pattern: 'example.org', names: ['k1', 'broken'] },
        { where: 'row 2', pattern: 'example.net', names: ['broken'] },
        { where: 'row 3', pattern: '', names: [] },
      ],
      { wildcard: false, multiple: false, subDomains: false },
      (e) => problems.push(e.message),
      new Map([['broken', 'bad PEM']]),
    );
    expect(plan.lookup('joe@example.org').keys.map((k) => k.selector)).toEqual(['s1']); // the usable key still signs
    expect(plan.lookup('joe@example.org').hold).toBeUndefined();
    expect(plan.lookup('ann@example.net')).toEqual({ keys: [], hold: expect.stringMatching(/no usable signing key for example\.net/) });
    expect(plan.lookup('x@example.com')).toEqual({ keys: [] });
    expect(problems).toEqual([
      'row 1: SigningTable names key "broken", which could not be loaded (bad PEM)',
      'row 2: SigningTable names key "broken", which could not be loaded (bad PEM)',
      'row 3: SigningTable lines read "pattern keyname"',
    ]);
    // Files stay strict: the same fault is a configuration error.
    expect(() =>
      planFromTables(new Map(), [{ where: 'f:1', pattern: 'a', names: ['x'] }], { wildcard: false, multiple: false, subDomains: false }),
    ).toThrow(ConfigError);
  });
});

describe('a milterd whose store cannot be reached at start', () => {
  for (const scheme of ['postgresql', 'redis'] as const) {
    it(`${scheme}: starts, tempfails mail to sign, verifies inbound mail, and stops promptly on SIGTERM`, async () => {
      const dir = tempDir('inkan-store-down-');
      const closed = await freePort();
      const port = await freePort();
      const url =
        scheme === 'postgresql' ? `postgresql://inkan:pw@127.0.0.1:${closed}/mail?retry=1` : `redis://127.0.0.1:${closed}/0?retry=1`;
      const conf = join(dir, 'down.conf');
      writeFileSync(conf, `Socket inet:${port}@127.0.0.1\nAllowRoot yes\nKeyTable ${url}\nSigningTable ${url}\n`);
      const milterd = await startMilterd(['-x', conf]);
      try {
        expect(milterd.output()).toMatch(/store unreachable and no tables loaded yet/);
        const held = await send(port, dir, 'joe@example.org');
        expect([held.outcome, held.selectors]).toEqual(['tempfail', []]);
        const inbound = await send(port, dir, 'someone@example.com', '203.0.113.5');
        expect(inbound.outcome).toBe('accept');
        expect(milterd.output()).not.toContain(':pw@');
      } finally {
        expect(await milterd.stop()).toBe(0);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

const missing = redisMissing();

describe.skipIf(missing !== undefined && !process.env.CI)('a milterd on Redis: check-config, SIGHUP, polling, an emptied store', () => {
  let redis: RedisServer;
  let dir: string;
  let admin: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    dir = tempDir('inkan-store-config-');
    admin = new Redis(redis.url(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    await keytool(['genkey', '-d', 'example.org', '-s', 'r1', '--store', redis.url(), '--sign', 'example.org']);
    await keytool(['genkey', '-d', 'example.org', '-s', 'r2', '--store', redis.url({ query: 'prefix=other:' }), '--sign', 'example.org']);
  });

  afterAll(async () => {
    admin?.disconnect();
    await redis?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const bin = join(import.meta.dirname, '..', 'bin', 'inkan-milterd.js');

  it('--check-config reads the store once and prints the URIs without passwords; an unreachable store fails it', async () => {
    const good = await runProgram(process.execPath, [bin, '--check-config', '-x', '/dev/null'], { timeoutMs: 30_000 });
    expect(good.code).toBe(0);
    const conf = join(dir, 'check.conf');
    const url = redis.url({ user: 'default', password: 'a-secret' });
    writeFileSync(conf, `KeyTable ${url}\nSigningTable ${url}\n`);
    const r = await runProgram(process.execPath, [bin, '-x', conf, '--check-config'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`KeyTable ${url.replace('a-secret', '***')}`);
    expect(r.stdout).not.toContain('a-secret');
    expect(r.stdout).toMatch(/"keys":1,"entries":1,"msg":"store read"/);
    const closed = await freePort();
    writeFileSync(conf, `KeyTable redis://127.0.0.1:${closed}/0?retry=1\nSigningTable redis://127.0.0.1:${closed}/0\n`);
    const refused = await runProgram(process.execPath, [bin, '-x', conf, '--check-config'], { timeoutMs: 30_000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/cannot read the tables in redis:\/\/127\.0\.0\.1:\d+\/0/);
  });

  it('SIGHUP keeps the store connection and re-reads it; a reload naming another prefix switches; changes without a notification arrive by polling; an emptied store is not taken', async () => {
    const port = await freePort();
    const conf = join(dir, 'hup.conf');
    const write = (prefix: string) =>
      writeFileSync(
        conf,
        `Socket inet:${port}@127.0.0.1\nAllowRoot yes\nKeyTable ${redis.url({ query: `prefix=${prefix}&poll=1&retry=1` })}\nSigningTable ${redis.url({ query: `prefix=${prefix}` })}\n`,
      );
    write('inkan:');
    const milterd = await startMilterd(['-x', conf]);
    try {
      expect((await send(port, dir, 'joe@example.org')).selectors).toEqual(['r1']);
      process.kill(milterd.pid, 'SIGHUP');
      await milterd.waitForOutput(/"msg":"configuration reloaded"/);
      expect((await send(port, dir, 'joe@example.org')).selectors).toEqual(['r1']);
      // Same store: the tables were kept (no second first load), not rebuilt from nothing.
      expect(milterd.output().match(/"reason":"start"/g)).toHaveLength(1);

      write('other:');
      process.kill(milterd.pid, 'SIGHUP');
      await milterd.waitForOutput(
        /"store":"redis:\/\/127\.0\.0\.1:\d+\/0\?prefix=other:"[^\n]*"msg":"signing tables loaded from the store"/,
      );
      expect((await send(port, dir, 'joe@example.org')).selectors).toEqual(['r2']);

      // A change made by hand, with no PUBLISH: the poll (every second here) finds it.
      await admin.hset('other:signing', 'example.net', 'r2._domainkey.example.org');
      let net: Awaited<ReturnType<typeof send>> | undefined;
      for (let i = 0; i < 100 && !net?.selectors.length; i++) {
        net = await send(port, dir, 'ann@example.net');
        if (!net.selectors.length) await new Promise((r) => setTimeout(r, 100));
      }
      expect(net?.domains).toEqual(['example.org']);
      expect(milterd.output()).toMatch(/"reason":"poll"[^\n]*"msg":"signing tables loaded from the store"/);

      // Everything under the prefix gone at once (a Redis that lost its data): keep signing.
      await admin.del('other:keys', 'other:private', 'other:signing');
      await admin.publish('other:changed', 'flushed');
      await milterd.waitForOutput(/the store returned empty tables: keeping the previous ones/);
      expect((await send(port, dir, 'joe@example.org')).selectors).toEqual(['r2']);
      expect(milterd.child.exitCode).toBeNull();
    } finally {
      await milterd.stop();
    }
  });
});
