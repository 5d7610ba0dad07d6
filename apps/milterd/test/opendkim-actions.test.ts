/**
 * The On-* actions as OpenDKIM documents and classifies them (issue #17), against running
 * inkan-milterd processes driven with the milter client; keys come from dnsmasq:
 * - defaults: On-DNSError tempfail (a key lookup that failed is tried again, never passed
 *   unchecked), On-SignatureError reject (a message that cannot be signed is never passed
 *   on unsigned);
 * - a bad signature, a revoked key, and a signature that cannot be checked all get
 *   On-BadSignature; no key at the selector gets On-KeyNotFound;
 * - a key in testing mode (t=y): a failing signature is accepted even with On-BadSignature
 *   reject, and Authentication-Results says "test mode".
 */
import { Buffer } from 'node:buffer';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAuthenticationResults, signMessage } from '@inkan/dkim-core';
import { dkimKeyRecord, type DnsServer, freePort, makeKeys, startDnsmasq, tempDir, type TestKeys } from '@inkan/testbed';
import { type MilterdProcess, startMilterd, timedTransaction } from './helpers.js';

const AUTHSERV = 'mx.inkan.test';
const INSIDE = { address: '127.0.0.1', hostname: 'localhost' };

let keys: TestKeys;
let dns: DnsServer;
let dir: string;
const running: { stop(): Promise<unknown> }[] = [];
let counter = 0;

beforeAll(async () => {
  keys = makeKeys();
  dir = tempDir('inkan-actions-');
  dns = await startDnsmasq({
    'good._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    'testing._domainkey.example.org': dkimKeyRecord(keys.rsa1024, 't=y'),
    'revoked._domainkey.example.org': 'v=DKIM1; k=rsa; p=',
  });
  running.push(dns);
});

afterAll(async () => {
  for (const r of running.reverse()) await r.stop().catch(() => {});
});

async function daemon(name: string, lines: string[]): Promise<string> {
  const port = await freePort();
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, [`Socket inet:${port}@127.0.0.1`, ...lines, 'LogWhy yes', ''].join('\n'));
  const milterd: MilterdProcess = await startMilterd(['-x', conf]);
  running.push(milterd);
  return `inet:${port}@127.0.0.1`;
}

function message(from = 'joe@example.org'): Buffer {
  counter++;
  return Buffer.from(
    `From: Joe <${from}>\r\nTo: Suzie <suzie@example.net>\r\nSubject: actions ${counter}\r\nMessage-ID: <actions.${counter}@example.org>\r\n\r\nHello, ${counter}.\r\n`,
    'latin1',
  );
}

/** A message signed by d=`domain` s=`selector` with `key`, its body changed after signing when `tamper`. */
async function signed(selector: string, key: keyof TestKeys, tamper: boolean, domain = 'example.org'): Promise<Buffer> {
  const m = message(`joe@${domain}`);
  const field = await signMessage(m, { domain, selector, privateKey: keys[key].privateKey });
  const sent = tamper ? Buffer.concat([m, Buffer.from('Changed on the way.\r\n', 'latin1')]) : m;
  return Buffer.concat([Buffer.from(field, 'latin1'), sent]);
}

async function send(spec: string, msg: Buffer, client?: { address: string; hostname: string }) {
  const tx = await timedTransaction(spec, msg, { sender: 'joe@example.org', ...(client ? { client } : {}) });
  const ar = tx.endOfMessage.modifications.filter((m) => m.type === 'insertHeader' && m.name === 'Authentication-Results');
  const value = ar.length > 0 ? (ar[0] as { value: Buffer }).value.toString('latin1') : undefined;
  return { reply: tx.endOfMessage.reply, ar: value, entries: value ? (parseAuthenticationResults(value)?.results ?? []) : [] };
}

/** "451 4.7.5 DKIM: ..." for a reply code, else the reply type. */
function replyOf(reply: { type: string; text?: string }): string {
  return reply.type === 'replyCode' ? (reply.text ?? '') : reply.type;
}

describe('OpenDKIM defaults (no On-* set)', () => {
  let spec: string;
  beforeAll(async () => {
    // Nameservers answer only for example.org; example.net gets REFUSED (a DNS error).
    spec = await daemon('defaults', [
      'Mode v',
      `AuthservID ${AUTHSERV}`,
      `Nameservers 127.0.0.1@${dns.port}`,
      'DNSTimeout 2',
      'QueryCache no',
    ]);
  });

  it('On-DNSError tempfail: a key lookup that failed is 451 (the MTA tries again), not passed unchecked', async () => {
    const r = await send(spec, await signed('any', 'rsa2048', false, 'example.net'));
    expect(replyOf(r.reply)).toMatch(/^451 4\.\d+\.\d+ DKIM: DNS error/);
  });

  it('the other verdicts keep accept: bad signature, revoked key, no key, no signature', async () => {
    for (const msg of [
      await signed('good', 'rsa2048', true),
      await signed('revoked', 'rsa2048', false),
      await signed('absent', 'rsa2048', false),
      message(),
    ]) {
      const r = await send(spec, msg);
      expect(r.reply.type).toBe('accept');
    }
    const good = await send(spec, await signed('good', 'rsa2048', false));
    expect(good.reply.type).toBe('accept');
    expect(good.entries.map((e) => e.result)).toEqual(['pass']);
  });
});

describe('On-BadSignature reject (the rest accept)', () => {
  let spec: string;
  beforeAll(async () => {
    spec = await daemon('bad-reject', [
      'Mode v',
      `AuthservID ${AUTHSERV}`,
      `Nameservers 127.0.0.1@${dns.port}`,
      'On-Default accept',
      'On-BadSignature reject',
      'On-SignatureError accept',
    ]);
  });

  it('a failing signature, a revoked key and a signature that cannot be checked are On-BadSignature (550)', async () => {
    const bad = await send(spec, await signed('good', 'rsa2048', true));
    expect(replyOf(bad.reply)).toMatch(/^550 5\.\d+\.\d+ DKIM: bad signature: body hash/);
    const revoked = await send(spec, await signed('revoked', 'rsa2048', false));
    expect(replyOf(revoked.reply)).toMatch(/^550 5\.\d+\.\d+ DKIM: bad signature: key revoked/);
    const broken = Buffer.concat([
      Buffer.from('DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=good; h=from; bh=AAAA\r\n', 'latin1'),
      message(),
    ]);
    const unreadable = await send(spec, broken);
    expect(replyOf(unreadable.reply)).toMatch(/^550 5\.\d+\.\d+ DKIM: bad signature: /);
  });

  it('no key at the selector is On-KeyNotFound (accept here), not On-BadSignature', async () => {
    const r = await send(spec, await signed('absent', 'rsa2048', false));
    expect(r.reply.type).toBe('accept');
    expect(r.entries.map((e) => e.result)).toEqual(['permerror']);
  });

  it('t=y: a failing signature from a key in testing mode is accepted, and A-R says test mode', async () => {
    const r = await send(spec, await signed('testing', 'rsa1024', true));
    expect(r.reply.type).toBe('accept');
    expect(r.entries.map((e) => e.result)).toEqual(['fail']);
    expect(r.ar).toMatch(/test mode/);
    // The same key passing stays a pass.
    const ok = await send(spec, await signed('testing', 'rsa1024', false));
    expect(ok.entries.map((e) => e.result)).toEqual(['pass']);
  });
});

describe('On-SignatureError: a message that cannot be signed', () => {
  it('default reject: 550, never passed on unsigned (it was On-InternalError tempfail)', async () => {
    // "Domain *" signs with d= the From domain; a domain literal is a valid From address but no d=.
    // (A key the signer cannot use, such as RSA over 4096 bits, is refused at start-up since #19.)
    const keyFile = join(dir, 'any.private');
    writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
    const spec = await daemon('sign-error', ['Mode s', 'Domain *', 'Selector any', `KeyFile ${keyFile}`, 'AllowRoot yes']);
    const r = await send(spec, message('joe@[127.0.0.1]'), INSIDE);
    expect(replyOf(r.reply)).toMatch(/^550 5\.7\.0 DKIM: cannot sign: invalid domain "\[127\.0\.0\.1\]"/);
    // the same daemon signs a From with a domain name
    const ok = await send(spec, message('joe@example.org'), INSIDE);
    expect(replyOf(ok.reply)).not.toMatch(/^5/);
  });
});

describe('SignatureTTL', () => {
  it('x= is t= plus SignatureTTL; without it (OpenDKIM default 0) no x=', async () => {
    const keyFile = join(dir, 'ttl.private');
    writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
    const signatureOf = async (spec: string) => {
      const tx = await timedTransaction(spec, message(), { sender: 'joe@example.org', client: INSIDE });
      const field = tx.endOfMessage.modifications.find((m) => m.type === 'insertHeader' && m.name === 'DKIM-Signature') as
        | { value: Buffer }
        | undefined;
      return (field?.value.toString('latin1') ?? '').replace(/\s+/g, '');
    };
    const lines = ['Mode s', 'Domain example.org', 'Selector good', `KeyFile ${keyFile}`, 'AllowRoot yes'];
    const withTtl = await signatureOf(await daemon('ttl', [...lines, 'SignatureTTL 3600']));
    const t = Number(/;t=(\d+)/.exec(withTtl)?.[1]);
    expect(t).toBeGreaterThan(0);
    expect(Number(/;x=(\d+)/.exec(withTtl)?.[1])).toBe(t + 3600);
    const without = await signatureOf(await daemon('no-ttl', lines));
    expect(without).toMatch(/;t=\d+/);
    expect(without).not.toMatch(/;x=/);
  });
});
