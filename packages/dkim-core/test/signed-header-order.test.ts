/**
 * h= as OpenDKIM writes it: the signed fields in message order, each name spelled as in
 * the message, then the oversigned names. The header hash follows h= the way a verifier
 * reads it (per name, bottom-up), so inkan, dkimpy and OpenDKIM all pass the signature.
 */
import { Buffer } from 'node:buffer';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimKeyRecord, dkimpyVerify, type DnsServer, opendkimVerify, startDnsmasq, tempDir, type TestKeys } from '@inkan/testbed';
import { type MemoryKeyResolver, signMessage, verifyMessage } from '../src/index.js';
import { keysAndResolver } from './key-fixture.js';

/** Unsigned fields, odd spellings, and two Cc fields with another signed field between them. */
const MESSAGE = Buffer.from(
  [
    'Received: from client.example.org by mx.example.org; Sat, 28 Nov 2026 05:00:00 +0000',
    'Subject: Is dinner ready?',
    'FROM: Joe <joe@example.org>',
    'X-Mailer: none of your business',
    'cc: Ann <ann@example.net>',
    'Date: Sat, 28 Nov 2026 05:00:00 +0000',
    'CC: Bob <bob@example.net>',
    'to: Suzie <suzie@example.net>',
    '',
    'Hi.',
    '',
  ].join('\r\n'),
  'latin1',
);

const IN_ORDER = 'Subject:FROM:cc:Date:CC:to';

let keys: TestKeys;
let resolver: MemoryKeyResolver;

beforeAll(() => {
  ({ keys, resolver } = keysAndResolver());
});

const rsa = (more: object = {}) => ({ domain: 'example.org', selector: 'rsa', privateKey: keys.rsa2048.privateKey, ...more });

async function signed(options: Parameters<typeof signMessage>[1], message = MESSAGE): Promise<Buffer> {
  return Buffer.concat([Buffer.from(await signMessage(message, options), 'latin1'), message]);
}

/** The first signature's h=, unfolded. */
function hTag(msg: Buffer): string | undefined {
  return /[\s;]h=([^;]*);/.exec(msg.toString('latin1'))?.[1]?.replace(/\s+/g, '');
}

async function verdict(msg: Buffer | string): Promise<string | undefined> {
  const bytes = typeof msg === 'string' ? Buffer.from(msg, 'latin1') : msg;
  return (await verifyMessage(bytes, { resolver }))[0]?.result;
}

describe('h= order and spelling', () => {
  it('lists the signed fields top to bottom as spelled in the message, then the oversigned names', async () => {
    // From is oversigned by default: spelled as its last instance.
    expect(hTag(await signed(rsa()))).toBe(`${IN_ORDER}:FROM`);
    // An oversigned name absent from the message is spelled as configured; configured order is kept.
    const msg = await signed(rsa({ oversignHeaders: ['X-Absent', 'from', 'Cc'] }));
    expect(hTag(msg)).toBe(`${IN_ORDER}:X-Absent:FROM:CC`);
    expect(await verdict(msg)).toBe('pass');
  });

  it('keeps the set of signed fields: SignHeaders decide which, not their order', async () => {
    const msg = await signed(rsa({ headers: ['to', 'cc', 'from'], oversignHeaders: [] }));
    expect(hTag(msg)).toBe('FROM:cc:CC:to');
  });

  it('verifies in inkan under every canonicalization, with Ed25519 too', async () => {
    for (const canonicalization of ['simple/simple', 'relaxed/relaxed', 'simple/relaxed', 'relaxed/simple']) {
      expect(await verdict(await signed(rsa({ canonicalization }))), canonicalization).toBe('pass');
    }
    const ed = await signed({ domain: 'example.org', selector: 'ed', privateKey: keys.ed25519.pem, canonicalization: 'simple/simple' });
    expect(await verdict(ed)).toBe('pass');
  });

  it('repeated fields are hashed bottom-up per name, as a verifier reads h=', async () => {
    const text = (await signed(rsa({ canonicalization: 'simple/simple' }))).toString('latin1');
    // Both Cc fields are signed: changing either, or swapping them, fails.
    expect(await verdict(text.replace('cc: Ann', 'cc: Eve'))).toBe('fail');
    expect(await verdict(text.replace('CC: Bob', 'CC: Eve'))).toBe('fail');
    const swapped = text.replace('cc: Ann <ann@', 'cc: Bob <bob@').replace('CC: Bob <bob@example.net>', 'CC: Ann <ann@example.net>');
    expect(await verdict(swapped)).toBe('fail');
    // Cc is not oversigned: a third one above the signed two is not covered; one below takes a signed place.
    expect(await verdict(text.replace('Received:', 'Cc: Eve <eve@example.net>\r\nReceived:'))).toBe('pass');
    expect(await verdict(text.replace('to: Suzie', 'Cc: Eve <eve@example.net>\r\nto: Suzie'))).toBe('fail');
    // From is oversigned: a second From anywhere fails.
    expect(await verdict(text.replace('Received:', 'From: Eve <eve@example.org>\r\nReceived:'))).toBe('fail');
  });
});

describe('dkimpy and OpenDKIM verify the reordered h=', () => {
  let dns: DnsServer;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('inkan-horder-');
    dns = await startDnsmasq({
      'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
      'ed._domainkey.example.org': dkimKeyRecord(keys.ed25519),
    });
  });

  afterAll(async () => {
    await dns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes in both, simple and relaxed header canonicalization', async () => {
    const files: string[] = [];
    for (const [selector, privateKey] of [
      ['rsa', keys.rsa2048.privateKey],
      ['ed', keys.ed25519.pem],
    ] as const) {
      for (const canonicalization of ['simple/simple', 'relaxed/relaxed']) {
        const msg = await signed({
          domain: 'example.org',
          selector,
          privateKey,
          canonicalization,
          oversignHeaders: ['From', 'Cc', 'X-Absent'],
        });
        expect(hTag(msg)).toBe(`${IN_ORDER}:FROM:CC:X-Absent`);
        const file = join(dir, `${selector}-${canonicalization.replace('/', '-')}.eml`);
        writeFileSync(file, msg);
        files.push(file);
      }
    }
    const py = await dkimpyVerify(dns.port, files);
    for (const file of files) {
      expect(py.find((v) => v.file === file)?.signatures, `dkimpy on ${file}`).toEqual([expect.objectContaining({ pass: true })]);
      const od = await opendkimVerify(dns.port, file);
      expect(od.pass, `opendkim on ${file}: ${od.output}`).toBe(true);
    }
  });
});
