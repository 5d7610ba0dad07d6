/**
 * DNS answering slowly, or never: a delaying forwarder on loopback (startSlowDns) in front of
 * dnsmasq. Key lookups end within DNSTimeout as temperror, On-DNSError applies, no
 * transaction waits longer than DNSTimeout, and progress keepalives keep a real Postfix with
 * a short milter_content_timeout from giving up on a lookup that is slow but in time.
 *
 * The Postfix case uses a 4 s answer (Postfix waits 2 s, DNSTimeout is 10 s): node:dns on
 * Node 20 (c-ares 1.34) never waits more than about 5 s for one answer, whatever its timeout.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAuthenticationResults, signMessage } from '@inkan/dkim-core';
import {
  authenticationResults,
  dkimKeyRecord,
  type DnsServer,
  freePort,
  makeKeys,
  type SlowDns,
  startDnsmasq,
  startPostfix,
  startSlowDns,
  tempDir,
  type TestKeys,
} from '@inkan/testbed';
import { startMilterd, type TimedTransaction, timedTransaction } from './helpers.js';

const AUTHSERV = 'mx.inkan.test';
/** What a reply may take beyond DNSTimeout: scheduling, verification, the loopback round trips. */
const MARGIN_MS = 1000;

let keys: TestKeys;
let dir: string;
let dns: DnsServer;
let slow: SlowDns;
let counter = 0;

beforeAll(async () => {
  keys = makeKeys();
  dir = tempDir('inkan-faults-dns-');
  dns = await startDnsmasq({
    'rsa._domainkey.sender.example': dkimKeyRecord(keys.rsa2048),
    'ed._domainkey.sender.example': dkimKeyRecord(keys.ed25519),
  });
  slow = await startSlowDns({ upstream: dns });
});

afterAll(async () => {
  await slow?.stop();
  await dns?.stop();
});

/** A message from sender.example signed with the rsa key, and the ed25519 one too if `both`. */
async function signed(subject: string, both = false): Promise<Buffer> {
  counter++;
  const plain = Buffer.from(
    `From: Alice <alice@sender.example>\r\nTo: bob@example.org\r\nSubject: ${subject}\r\nMessage-ID: <slow.${counter}.${Date.now()}@sender.example>\r\n\r\nSlow DNS: ${subject}.\r\n`,
  );
  const fields = [await signMessage(plain, { domain: 'sender.example', selector: 'rsa', privateKey: keys.rsa2048.pem })];
  if (both) fields.push(await signMessage(plain, { domain: 'sender.example', selector: 'ed', privateKey: keys.ed25519.pem }));
  return Buffer.concat([Buffer.from(fields.join('')), plain]);
}

function authResults(tx: TimedTransaction): string {
  const ar = tx.endOfMessage.modifications.find((m) => m.type === 'insertHeader' && m.name === 'Authentication-Results');
  return ar && 'value' in ar ? ar.value.toString('latin1') : '';
}

function writeConf(name: string, port: number, lines: string[]): string {
  const conf = join(dir, name);
  writeFileSync(
    conf,
    [`Socket inet:${port}@127.0.0.1`, 'Mode v', `AuthservID ${AUTHSERV}`, `Nameservers 127.0.0.1@${slow.port}`, ...lines, ''].join('\n'),
  );
  return conf;
}

describe('DNS answering slowly, driven with the milter client', () => {
  it('On-DNSError tempfail: a lookup slower than DNSTimeout is temperror, tempfailed within DNSTimeout, with keepalives meanwhile', async () => {
    const port = await freePort();
    const conf = writeConf('slow-tempfail.conf', port, [
      'DNSTimeout 2',
      'QueryCache no',
      'On-DNSError tempfail',
      'MilterProgressInterval 1',
    ]);
    const milterd = await startMilterd(['-x', conf]);
    const spec = `inet:${port}@127.0.0.1`;
    try {
      // Slow but in time: the forwarder really forwards, and the answer is used.
      slow.setDelay(400);
      const inTime = await timedTransaction(spec, await signed('in time'));
      expect(inTime.endOfMessage.reply).toEqual({ type: 'accept' });
      expect(authResults(inTime)).toMatch(/dkim=pass/);
      expect(inTime.afterHeadersMs).toBeGreaterThanOrEqual(300);

      // Slower than DNSTimeout: temperror at DNSTimeout, not at c-ares's own (longer) retry schedule.
      slow.setDelay(5000);
      const queriesBefore = slow.queries;
      const late = await timedTransaction(spec, await signed('late'));
      expect(late.endOfMessage.reply).toMatchObject({ type: 'replyCode', text: expect.stringMatching(/^451 4\.7\.5 DKIM: DNS error/) });
      expect(authResults(late)).toMatch(/dkim=temperror/);
      expect(late.afterHeadersMs).toBeGreaterThanOrEqual(1800);
      expect(late.afterHeadersMs).toBeLessThan(2000 + MARGIN_MS);
      expect(late.endOfMessage.progress).toBeGreaterThanOrEqual(1);
      // One query, and one more at DNSTimeout/2 in case the first was lost.
      expect(slow.queries - queriesBefore).toBe(2);

      // No answer at all, two signatures (two lookups at once): still one DNSTimeout, both temperror.
      slow.setDelay('never');
      const never = await timedTransaction(spec, await signed('never', true));
      expect(never.endOfMessage.reply).toMatchObject({ type: 'replyCode', text: expect.stringMatching(/^451 4\.7\.5 DKIM: DNS error/) });
      expect(authResults(never).match(/dkim=temperror/g)).toHaveLength(2);
      expect(never.afterHeadersMs).toBeLessThan(2000 + MARGIN_MS);
      expect(never.totalMs).toBeLessThan(2000 + 2 * MARGIN_MS);
      await milterd.waitForOutput(/DNS lookup of rsa\._domainkey\.sender\.example timed out after 2 s/);
      console.log(
        `slow DNS, DNSTimeout 2 s: in time ${Math.round(inTime.afterHeadersMs)} ms; 5 s delay -> 451 after ${Math.round(late.afterHeadersMs)} ms ` +
          `(${late.endOfMessage.progress} keepalives); no answer, 2 lookups -> 451 after ${Math.round(never.afterHeadersMs)} ms; forwarder: ${slow.queries} queries, ${slow.dropped} dropped`,
      );
    } finally {
      slow.setDelay(0);
      await milterd.stop();
    }
  });

  it('On-DNSError accept (with QueryCache): the message passes with dkim=temperror; the failure is not cached', async () => {
    const port = await freePort();
    const conf = writeConf('slow-accept.conf', port, ['DNSTimeout 2', 'On-DNSError accept']);
    const milterd = await startMilterd(['-x', conf]);
    const spec = `inet:${port}@127.0.0.1`;
    try {
      slow.setDelay('never');
      const never = await timedTransaction(spec, await signed('accepted anyway'));
      expect(never.endOfMessage.reply).toEqual({ type: 'accept' });
      expect(authResults(never)).toMatch(/mx\.inkan\.test;\s+dkim=temperror/);
      expect(never.afterHeadersMs).toBeLessThan(2000 + MARGIN_MS);
      slow.setDelay(0);
      const back = await timedTransaction(spec, await signed('dns is back'));
      expect(back.endOfMessage.reply).toEqual({ type: 'accept' });
      expect(authResults(back)).toMatch(/dkim=pass/);
      console.log(
        `slow DNS, On-DNSError accept: no answer -> accept with temperror after ${Math.round(never.afterHeadersMs)} ms; DNS back -> pass`,
      );
    } finally {
      slow.setDelay(0);
      await milterd.stop();
    }
  });
});

describe('DNS slower than Postfix milter_content_timeout (2 s), faster than DNSTimeout (10 s)', () => {
  /** Send one signed message from outside through a Postfix whose milter is inkan-milterd with `progress` s keepalives. */
  async function throughPostfix(progress: number) {
    const port = await freePort();
    // 127.0.0.1 is the outside world here, so Postfix's mail is verified.
    const conf = writeConf(`postfix-progress-${progress}.conf`, port, [
      'InternalHosts 192.0.2.1',
      'DNSTimeout 10',
      'QueryCache no',
      'On-DNSError tempfail',
      `MilterProgressInterval ${progress}`,
    ]);
    const milterd = await startMilterd(['-x', conf]);
    const postfix = await startPostfix({
      smtpdMilters: `inet:127.0.0.1:${port}`,
      milterDefaultAction: 'tempfail',
      mainCf: { milter_content_timeout: '2s' },
    });
    try {
      slow.setDelay(4000);
      const started = performance.now();
      const r = await postfix.sendSmtp({
        from: 'alice@sender.example',
        to: ['bob@example.org'],
        data: await signed(`postfix progress ${progress}`),
        timeoutMs: 60_000,
      });
      const ms = performance.now() - started;
      slow.setDelay(0);
      const delivered = r.data?.code === 250 ? await postfix.waitForDelivered(1) : [];
      return { reply: r.data, ms, delivered, maillog: postfix.maillog(), log: milterd.output() };
    } finally {
      slow.setDelay(0);
      await postfix.stop();
      await milterd.stop();
    }
  }

  it('keepalives every second: delivered with dkim=pass after the 4 s lookup; Postfix logs no milter timeout', async () => {
    const { reply, ms, delivered, maillog } = await throughPostfix(1);
    expect(reply?.code, reply?.text).toBe(250);
    expect(ms).toBeGreaterThanOrEqual(3800);
    expect(delivered).toHaveLength(1);
    const ours = authenticationResults(delivered[0]?.data ?? '', parseAuthenticationResults, AUTHSERV);
    expect(ours.map((a) => a.results.map((r) => `${r.method}=${r.result}`))).toEqual([['dkim=pass']]);
    expect(maillog).not.toMatch(/milter.*(timed out|timeout)/i);
    console.log(
      `Postfix, milter_content_timeout 2 s, DNS 4 s, keepalives every 1 s: 250 after ${Math.round(ms)} ms, delivered with dkim=pass`,
    );
  });

  it('control, keepalives off (MilterProgressInterval 0): Postfix times out the milter and tempfails', async () => {
    const { reply, ms, maillog } = await throughPostfix(0);
    expect(Math.floor((reply?.code ?? 0) / 100), reply?.text).toBe(4);
    expect(ms).toBeLessThan(3800);
    expect(maillog).toMatch(/milter.*(timed out|timeout)/i);
    console.log(
      `control without keepalives: ${reply?.code} after ${Math.round(ms)} ms; Postfix: ${/[^\n]*milter[^\n]*(timed out|timeout)[^\n]*/i.exec(maillog)?.[0]?.replace(/^.*?(warning|milter)/, '$1')}`,
    );
  });
});
