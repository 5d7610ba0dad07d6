/**
 * Faults: the DNS server going away mid-run, and inkan-milterd killed with SIGKILL while
 * Postfix is sending. Nothing is lost; DNS trouble becomes temperror and On-DNSError.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signMessage } from '@inkan/dkim-core';
import { runTransaction } from '@inkan/milter-protocol';
import { dkimKeyRecord, type DnsServer, freePort, makeKeys, startDnsmasq, startPostfix, tempDir, type TestKeys } from '@inkan/testbed';
import { OUTAGE_MESSAGES, sendThroughOutage, startMilterd } from './helpers.js';

let keys: TestKeys;
let dir: string;

beforeAll(() => {
  keys = makeKeys();
  dir = tempDir('inkan-faults-');
});

describe('DNS server stopped mid-run', () => {
  let dns: DnsServer | undefined;
  afterAll(async () => {
    await dns?.stop();
  });

  it('verdicts turn temperror and On-DNSError applies; the transaction still ends', async () => {
    dns = await startDnsmasq({ 'rsa._domainkey.sender.example': dkimKeyRecord(keys.rsa2048) });
    const port = await freePort();
    const conf = join(dir, 'dns.conf');
    writeFileSync(
      conf,
      `Socket inet:${port}@127.0.0.1\nMode v\nNameservers 127.0.0.1@${dns.port}\nDNSTimeout 1\nQueryCache no\nOn-DNSError tempfail\nAuthservID mx.inkan.test\n`,
    );
    const milterd = await startMilterd(['-x', conf]);
    try {
      const plain = Buffer.from('From: a@sender.example\r\nTo: b@example.org\r\nSubject: dns\r\n\r\nhello\r\n');
      const signed = Buffer.concat([
        Buffer.from(await signMessage(plain, { domain: 'sender.example', selector: 'rsa', privateKey: keys.rsa2048.pem })),
        plain,
      ]);
      const tx = () =>
        runTransaction(
          `inet:${port}@127.0.0.1`,
          {
            client: { address: '192.0.2.7', hostname: 'outside.example' },
            sender: 'a@sender.example',
            recipients: ['b@example.org'],
            message: signed,
          },
          { timeoutMs: 30_000 },
        );
      const before = await tx();
      expect(before.outcome.reply).toEqual({ type: 'accept' });
      await dns.stop();
      dns = undefined;
      const after = await tx();
      expect(after.outcome.reply).toMatchObject({ type: 'replyCode', text: expect.stringMatching(/^451 4\.7\.5 DKIM: DNS error/) });
      const ar = after.endOfMessage?.modifications.find((m) => m.type === 'insertHeader');
      expect(ar && 'value' in ar ? ar.value.toString() : '').toMatch(/dkim=temperror/);
    } finally {
      await milterd.stop();
    }
  });
});

describe('inkan-milterd killed (SIGKILL) while Postfix sends 2,000 messages', () => {
  it('every message is delivered exactly once and signed after a restart', { timeout: 900_000 }, async () => {
    const keyFile = join(dir, 'kill.private');
    writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
    const port = await freePort();
    const args = ['-p', `inet:${port}@127.0.0.1`, '-d', 'example.org', '-s', 'rsa', '-k', keyFile];
    let milterd = await startMilterd(args);
    const postfix = await startPostfix({ smtpdMilters: `inet:127.0.0.1:${port}`, milterDefaultAction: 'tempfail' });
    try {
      const run = await sendThroughOutage(
        postfix,
        async () => {
          milterd.child.kill('SIGKILL');
          await milterd.exited;
        },
        async () => {
          milterd = await startMilterd(args);
        },
        { count: OUTAGE_MESSAGES, concurrency: 8 },
      );
      console.log(
        `SIGKILL under load: ${run.sent} messages in ${run.seconds.toFixed(1)} s, ${run.resent} tempfailed at SMTP and resent, ${run.queued} queued while it was down; all delivered once and signed`,
      );
    } finally {
      await postfix.stop();
      await milterd.stop();
    }
  });
});
