/**
 * DNSTimeout means what it says, in a real inkan-milterd: after a run of quick answers, key
 * answers that take 1.2, 2.5 and 4.5 s (DNSTimeout 5) still verify (dkim=pass), and one that
 * never comes is dkim=temperror at DNSTimeout. (On c-ares 1.34, Node.js 20, one channel waits
 * only about 1 s for an answer once its server has answered fast three times.)
 * dnsmasq behind a delaying forwarder (startSlowDns), both on loopback.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signMessage } from '@inkan/dkim-core';
import {
  dkimKeyRecord,
  type DnsServer,
  freePort,
  makeKeys,
  type SlowDns,
  startDnsmasq,
  startSlowDns,
  tempDir,
  type TestKeys,
} from '@inkan/testbed';
import { type MilterdProcess, startMilterd, type TimedTransaction, timedTransaction } from './helpers.js';

const SELECTORS = ['fast', 's1200', 's2500', 's4500', 'never'] as const;
const keyName = (selector: string) => `${selector}._domainkey.sender.example`;

let keys: TestKeys;
let dns: DnsServer;
let slow: SlowDns;
let milterd: MilterdProcess;
let spec: string;
let counter = 0;

beforeAll(async () => {
  keys = makeKeys();
  dns = await startDnsmasq(Object.fromEntries(SELECTORS.map((s) => [keyName(s), dkimKeyRecord(keys.ed25519)])));
  slow = await startSlowDns({ upstream: dns });
  const port = await freePort();
  spec = `inet:${port}@127.0.0.1`;
  const conf = join(tempDir('inkan-dns-timeout-'), 'verify.conf');
  writeFileSync(
    conf,
    [
      `Socket ${spec}`,
      'Mode v',
      'AuthservID mx.inkan.test',
      `Nameservers 127.0.0.1@${slow.port}`,
      'DNSTimeout 5',
      'QueryCache no',
      'On-DNSError accept',
      'LogWhy yes',
      '',
    ].join('\n'),
  );
  milterd = await startMilterd(['-x', conf]);
});

afterAll(async () => {
  await milterd?.stop();
  await slow?.stop();
  await dns?.stop();
});

async function signed(selector: string): Promise<Buffer> {
  counter++;
  const plain = Buffer.from(
    `From: Alice <alice@sender.example>\r\nTo: bob@example.org\r\nSubject: key ${selector}\r\nMessage-ID: <dt.${counter}@sender.example>\r\n\r\nHello ${counter}.\r\n`,
  );
  return Buffer.concat([
    Buffer.from(await signMessage(plain, { domain: 'sender.example', selector, privateKey: keys.ed25519.pem })),
    plain,
  ]);
}

function authResults(tx: TimedTransaction): string {
  const ar = tx.endOfMessage.modifications.find((m) => m.type === 'insertHeader' && m.name === 'Authentication-Results');
  return ar && 'value' in ar ? ar.value.toString('latin1') : '';
}

describe('inkan-milterd with DNSTimeout 5: keys that come slowly after quick ones', () => {
  it('verifies keys answered 1.2, 2.5 and 4.5 s late (dkim=pass); no answer is dkim=temperror after DNSTimeout', async () => {
    for (let i = 0; i < 20; i++) expect(authResults(await timedTransaction(spec, await signed('fast')))).toMatch(/dkim=pass/);

    slow.setDelay(1200, keyName('s1200'));
    slow.setDelay(2500, keyName('s2500'));
    slow.setDelay(4500, keyName('s4500'));
    slow.setDelay('never', keyName('never'));
    const late = ['s1200', 's2500', 's4500', 'never'];
    const runs = await Promise.all(late.map(async (selector) => timedTransaction(spec, await signed(selector))));
    const results = runs.map(authResults);
    for (const [i, selector] of late.entries()) {
      console.log(
        `${selector}: ${/dkim=(\w+)/.exec(results[i] ?? '')?.[1]} after ${Math.round(runs[i]?.afterHeadersMs ?? 0)} ms, ${slow.queriesFor(keyName(selector))} queries`,
      );
    }
    expect(results.slice(0, 3)).toEqual([
      expect.stringMatching(/dkim=pass/),
      expect.stringMatching(/dkim=pass/),
      expect.stringMatching(/dkim=pass/),
    ]);
    expect(results[3]).toMatch(/dkim=temperror/);
    expect(runs[3]?.afterHeadersMs).toBeGreaterThanOrEqual(4500);
    // One query a second until DNSTimeout, no more.
    expect(slow.queriesFor(keyName('never'))).toBe(5);
    await milterd.waitForOutput(/DNS lookup of never\._domainkey\.sender\.example timed out after 5 s/);
  });
});
