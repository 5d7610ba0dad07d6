import { mkdirSync, readFileSync, statSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '@inkan/testbed';
import { parseKeyRecord } from '@inkan/dkim-core/records';
import {
  adspRecord,
  dmarcRecord,
  formatKeyRecord,
  formatZoneRecord,
  generateDkimKey,
  genkey,
  nextSelector,
  resolveOwner,
  selectorFromDate,
  splitTxtStrings,
  sspRecord,
  writeFileAtomic,
} from '../src/index.js';

describe('key records', () => {
  it('formats tags in order with p= last, t=s unless subdomains are allowed', () => {
    expect(formatKeyRecord({ type: 'rsa', p: 'AAAA' })).toBe('v=DKIM1; k=rsa; t=s; p=AAAA');
    expect(
      formatKeyRecord({
        type: 'ed25519',
        p: 'BB',
        testing: true,
        subdomains: true,
        hashAlgorithms: ['sha256'],
        note: 'hi there',
        emailOnly: true,
      }),
    ).toBe('v=DKIM1; h=sha256; k=ed25519; n=hi there; s=email; t=y; p=BB');
    expect(() => formatKeyRecord({ type: 'rsa', p: 'A', note: 'a;b' })).toThrow(/printable ASCII/);
  });

  it('splits into strings of at most 255 octets that join back to the record', async () => {
    for (const bits of [1024, 2048, 4096]) {
      const key = await generateDkimKey('rsa', bits);
      const record = formatKeyRecord({ type: 'rsa', p: key.p, testing: true });
      const strings = splitTxtStrings(record);
      expect(strings.join('')).toBe(record);
      for (const s of strings) expect(Buffer.byteLength(s)).toBeLessThanOrEqual(255);
      const parsed = parseKeyRecord(strings.join(''));
      expect(parsed.ok && parsed.record.publicKey).toBe(key.p);
    }
    expect(splitTxtStrings('v=DMARC1; p=reject')).toEqual(['v=DMARC1; p=reject']);
  });

  it('writes a zone record with the owner relative or fully qualified', () => {
    expect(formatZoneRecord('v=DKIM1; k=ed25519; p=AB', { selector: 'ed' })).toBe('ed._domainkey\tIN\tTXT\t"v=DKIM1; k=ed25519; p=AB"\n');
    expect(formatZoneRecord('v=DKIM1; p=AB', { selector: 's', domain: 'example.org' })).toMatch(/^s\._domainkey\.example\.org\.\t/);
  });
});

describe('policy records', () => {
  it('DMARC', () => {
    expect(dmarcRecord({ domain: 'example.org', policy: 'quarantine', rua: ['mailto:d@example.org'], pct: 50, adkim: 's' })).toEqual({
      name: '_dmarc.example.org.',
      value: 'v=DMARC1; p=quarantine; rua=mailto:d@example.org; pct=50; adkim=s',
    });
    expect(() => dmarcRecord({ domain: 'example.org', policy: 'none', rua: ['d@example.org'] })).toThrow(/mailto/);
  });
  it('historic ADSP and SSP say that they are historic', () => {
    expect(adspRecord('example.org', 'all')).toMatchObject({
      name: '_adsp._domainkey.example.org.',
      value: 'dkim=all',
      historic: expect.stringMatching(/Historic/),
    });
    expect(sspRecord('example.org')).toMatchObject({
      name: '_policy._domainkey.example.org.',
      value: 't=y; o=~',
      historic: expect.any(String),
    });
  });
});

describe('selectors for rotation', () => {
  it('names selectors from the date and skips taken ones', async () => {
    const date = new Date(Date.UTC(2026, 10, 28));
    expect(selectorFromDate('YYYYMM', date)).toBe('202611');
    expect(selectorFromDate('sYYYYMMDD', date)).toBe('s20261128');
    const dir = tempDir();
    expect(await nextSelector(dir, 'YYYYMM', date)).toBe('202611');
    writeFileSync(join(dir, '202611.private'), '');
    expect(await nextSelector(dir, 'YYYYMM', date)).toBe('202611b');
  });
});

describe('private key files', () => {
  it('are never readable by others, not even while being written (umask 0)', async () => {
    const dir = tempDir();
    const seen: { name: string; mode: number }[] = [];
    const watcher = watch(dir, (_event, name) => {
      if (!name) return;
      try {
        seen.push({ name, mode: statSync(join(dir, name)).mode & 0o777 });
      } catch {
        // already renamed or removed
      }
    });
    const old = process.umask(0);
    try {
      for (let i = 0; i < 5; i++) await genkey({ domain: 'example.org', selector: `s${i}`, type: 'ed25519', outdir: dir });
    } finally {
      process.umask(old);
    }
    await new Promise((r) => setTimeout(r, 100));
    watcher.close();
    for (let i = 0; i < 5; i++) expect(statSync(join(dir, `s${i}.private`)).mode & 0o777).toBe(0o600);
    const secrets = seen.filter((s) => s.name.includes('.private'));
    expect(secrets.length).toBeGreaterThan(0);
    for (const s of secrets) expect(s.mode & 0o077, `${s.name} had mode ${s.mode.toString(8)}`).toBe(0);
  });

  it('refuses to replace files without force, and replaces them with it', async () => {
    const dir = tempDir();
    const first = await genkey({ domain: 'example.org', selector: 'hoge', outdir: dir, bits: 1024 });
    await expect(genkey({ domain: 'example.org', selector: 'hoge', outdir: dir })).rejects.toThrow(/exists: use --force/);
    expect(readFileSync(first.privateKeyFile, 'utf8')).toBe(first.key.privatePem);
    const second = await genkey({ domain: 'example.org', selector: 'hoge', outdir: dir, bits: 1024, force: true });
    expect(readFileSync(first.privateKeyFile, 'utf8')).toBe(second.key.privatePem);
    await expect(writeFileAtomic(join(dir, 'hoge.txt'), 'x')).rejects.toThrow(/exists/);
  });

  it('with an owner: chowned and 0440, as for root:mail', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'keys'));
    const root = process.getuid?.() === 0;
    const owner = root
      ? resolveOwner('root:mail')
      : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, user: 'me', group: 'mine' };
    const r = await genkey({ domain: 'example.org', selector: 'hoge', type: 'ed25519', outdir: join(dir, 'keys'), owner });
    const st = statSync(r.privateKeyFile);
    expect(st.mode & 0o777).toBe(0o440);
    expect([st.uid, st.gid]).toEqual([owner.uid, owner.gid]);
  });

  it('refuses RSA sizes outside 1024..4096 and bad names', async () => {
    await expect(generateDkimKey('rsa', 512)).rejects.toThrow(/1024 to 4096/);
    await expect(genkey({ domain: 'not a domain', selector: 's' })).rejects.toThrow(/not a domain name/);
    await expect(genkey({ domain: 'example.org', selector: 'a b' })).rejects.toThrow(/not a valid selector/);
  });
});
