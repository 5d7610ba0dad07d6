/**
 * inkan-milterd under a real Postfix, verifying inbound mail: valid, tampered, testing-key,
 * missing-key and DomainKeys signatures from an outside domain each get the right
 * Authentication-Results; forged A-R fields claiming our authserv-id are all removed.
 */
import { Buffer } from 'node:buffer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authenticationResults,
  dkimKeyRecord,
  dkimpySign,
  type DnsServer,
  headerValues,
  mailDkimDomainKeysSign,
  makeKeys,
  type PostfixInstance,
  startDnsmasq,
  startPostfix,
  subjectOf,
  type TestKeys,
  tempDir,
} from '@inkan/testbed';
import { parseAuthenticationResults, signMessage } from '@inkan/dkim-core';
import { type MilterdProcess, startVerifyingMilterd } from './helpers.js';

const AUTHSERV = 'mx.inkan.test';
let keys: TestKeys;
let dns: DnsServer;
let milterd: MilterdProcess;
let postfix: PostfixInstance;

const base = (subject: string, from = 'alice@sender.example') =>
  Buffer.from(
    `From: Alice <${from}>\r\nTo: bob@example.org\r\nSubject: ${subject}\r\nDate: Sat, 28 Nov 2026 05:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@sender.example>\r\n\r\nInbound test: ${subject}.\r\n`,
    'latin1',
  );

beforeAll(async () => {
  keys = makeKeys();
  dns = await startDnsmasq({
    'good._domainkey.sender.example': dkimKeyRecord(keys.rsa2048),
    'testing._domainkey.sender.example': dkimKeyRecord(keys.ed25519, 't=y'),
    'dk._domainkey.sender.example': `k=rsa; p=${keys.rsa1024.p}`,
  });
  const dir = tempDir('inkan-milterd-verify-');
  let port: number;
  ({ milterd, port } = await startVerifyingMilterd(dir, dns.port, AUTHSERV));
  postfix = await startPostfix({ smtpdMilters: `inet:127.0.0.1:${port}` });
}, 120_000);

afterAll(async () => {
  await postfix?.stop();
  await milterd?.stop();
  await dns?.stop();
});

/** Send each message, then return each delivered copy, by subject. */
async function deliver(messages: Record<string, Buffer>): Promise<Record<string, Buffer>> {
  const before = postfix.sink.messages.length;
  for (const data of Object.values(messages)) {
    const r = await postfix.sendSmtp({ from: 'alice@sender.example', to: ['bob@example.org'], data });
    expect(r.data?.code, r.data?.text).toBe(250);
  }
  const delivered = (await postfix.waitForDelivered(before + Object.keys(messages).length)).slice(before);
  return Object.fromEntries(delivered.map((m) => [subjectOf(m.data) ?? '', m.data]));
}

describe('verifying inbound mail under Postfix', () => {
  it('adds one Authentication-Results with the right result for each kind of signature', async () => {
    const valid = base('valid');
    const tampered = base('tampered');
    const testing = base('testing key');
    const missing = base('missing key');
    const dk = base('domainkeys');
    const sign = async (msg: Buffer, selector: string, key = keys.rsa2048) =>
      Buffer.concat([Buffer.from(await signMessage(msg, { domain: 'sender.example', selector, privateKey: key.pem })), msg]);
    const signedTampered = Buffer.from((await sign(tampered, 'good')).toString('latin1').replace('Inbound test', 'Inbound TEST'), 'latin1');
    const byDkimpy = Buffer.concat([
      Buffer.from(
        await dkimpySign({
          domain: 'sender.example',
          selector: 'testing',
          algorithm: 'ed25519-sha256',
          canonicalization: 'relaxed/relaxed',
          pem: keys.ed25519.pem,
          message: testing,
        }),
      ),
      testing,
    ]);
    const dkSigned = Buffer.concat([
      Buffer.from(
        await mailDkimDomainKeysSign({
          domain: 'sender.example',
          selector: 'dk',
          canonicalization: 'nofws',
          pem: keys.rsa1024.pkcs1Pem as string,
          message: dk,
        }),
      ),
      dk,
    ]);
    const out = await deliver({
      valid: await sign(valid, 'good'),
      tampered: signedTampered,
      testing: byDkimpy,
      missing: await sign(missing, 'nosuchkey'),
      dk: dkSigned,
    });
    /** The results in the one Authentication-Results field, which must be ours. */
    const parsed = (subject: string) => {
      const ar = authenticationResults(out[subject] ?? '', parseAuthenticationResults);
      expect(
        ar.map((a) => a.authservId),
        subject,
      ).toEqual([AUTHSERV]);
      return ar[0]?.results ?? [];
    };
    expect(parsed('valid')).toEqual([
      expect.objectContaining({
        method: 'dkim',
        result: 'pass',
        properties: expect.arrayContaining([{ ptype: 'header', property: 'd', value: 'sender.example' }]),
      }),
    ]);
    expect(parsed('tampered')).toEqual([expect.objectContaining({ method: 'dkim', result: 'fail', reason: 'body hash did not verify' })]);
    expect(parsed('testing key')).toEqual([
      expect.objectContaining({ method: 'dkim', result: 'pass', comments: [expect.stringMatching(/test mode/)] }),
    ]);
    expect(parsed('missing key')).toEqual([
      expect.objectContaining({ method: 'dkim', result: 'permerror', reason: expect.stringMatching(/no key record/) }),
    ]);
    expect(parsed('domainkeys')).toEqual([
      expect.objectContaining({
        method: 'domainkeys',
        result: 'pass',
        properties: expect.arrayContaining([{ ptype: 'header', property: 'from', value: 'alice@sender.example' }]),
      }),
    ]);
    console.log(`sample: Authentication-Results: ${headerValues(out.valid ?? '', 'Authentication-Results')[0]}`);
  });

  it('removes every forged Authentication-Results claiming our authserv-id, keeps the others', async () => {
    const ours = AUTHSERV;
    const forged = Buffer.concat([
      Buffer.from(`Authentication-Results: ${ours}; dkim=pass header.d=sender.example\r\n`),
      Buffer.from('Authentication-Results: other.example; spf=pass smtp.mailfrom=sender.example\r\n'),
      Buffer.from(`Authentication-Results: ${ours.toUpperCase()}; dkim=pass header.d=forged.example\r\n`),
      base('forged'),
    ]);
    const out = await deliver({ forged });
    expect(authenticationResults(out.forged ?? '', parseAuthenticationResults, 'other.example')).toHaveLength(1);
    const mine = authenticationResults(out.forged ?? '', parseAuthenticationResults, ours);
    expect(mine).toHaveLength(1);
    expect(mine[0]?.results).toEqual([{ method: 'dkim', result: 'none', properties: [] }]);
    expect(milterd.output()).toMatch(/"removedAuthenticationResults":2/);
  });
});
