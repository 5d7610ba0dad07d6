/**
 * inkan-milterd under a real Postfix, signing: mail submitted over SMTP from 127.0.0.1 and
 * through Postfix's sendmail command arrives signed, over an inet and a unix socket, and
 * dkimpy and Mail::DKIM (keys from dnsmasq) verify it. Dual signing: RSA and Ed25519 at once.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dkimKeyRecord,
  dkimpyVerify,
  type DnsServer,
  freePort,
  mailDkimVerify,
  makeKeys,
  type PostfixInstance,
  startDnsmasq,
  startPostfix,
  subjectOf,
  tempDir,
  type TestKeys,
} from '@inkan/testbed';
import { type MilterdProcess, startMilterd } from './helpers.js';

let keys: TestKeys;
let dns: DnsServer;
let dir: string;
const running: { stop(): Promise<unknown> }[] = [];

const message = (subject: string) =>
  `From: Joe <joe@example.org>\r\nTo: Suzie <suzie@example.net>\r\nSubject: ${subject}\r\nDate: Sat, 28 Nov 2026 05:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.org>\r\n\r\nHello  from inkan.\r\n\r\n`;

beforeAll(async () => {
  keys = makeKeys();
  dir = tempDir('inkan-milterd-sign-');
  chmodSync(dir, 0o755); // the postfix user must reach the unix socket in it
  writeFileSync(join(dir, 'rsa.private'), keys.rsa2048.pem, { mode: 0o600 });
  writeFileSync(join(dir, 'ed.private'), keys.ed25519.pem, { mode: 0o600 });
  dns = await startDnsmasq({
    'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    'ed._domainkey.example.org': dkimKeyRecord(keys.ed25519),
  });
  running.push(dns);
});

afterAll(async () => {
  for (const r of running.reverse()) await r.stop().catch(() => {});
});

async function verifyDelivered(postfix: PostfixInstance, count: number, algorithms: string[]) {
  const delivered = await postfix.waitForDelivered(count);
  const files = delivered.map((m) => m.file);
  const py = await dkimpyVerify(dns.port, files);
  const perl = await mailDkimVerify(dns.port, files);
  for (const m of delivered) {
    const v = py.find((x) => x.file === m.file);
    expect(
      v?.signatures.map((s) => [s.a, s.pass]),
      `dkimpy on ${m.file}`,
    ).toEqual(algorithms.map((a) => [a, true]));
    const p = perl.find((x) => x.file === m.file);
    const rsa = p?.signatures.find((s) => s.a === 'rsa-sha256');
    expect(rsa?.result, `Mail::DKIM on ${m.file}`).toBe('pass');
  }
  return delivered;
}

describe('signing under Postfix, inet socket', () => {
  let milterd: MilterdProcess;
  let postfix: PostfixInstance;

  beforeAll(async () => {
    const port = await freePort();
    milterd = await startMilterd(['-p', `inet:${port}@127.0.0.1`, '-d', 'example.org', '-s', 'rsa', '-k', join(dir, 'rsa.private')]);
    running.push(milterd);
    postfix = await startPostfix({ smtpdMilters: `inet:127.0.0.1:${port}` });
    running.push(postfix);
  });

  it('SMTP from 127.0.0.1 and the sendmail command both arrive signed; dkimpy and Mail::DKIM pass them', async () => {
    const smtp = await postfix.sendSmtp({ from: 'joe@example.org', to: ['suzie@example.net'], data: message('over SMTP') });
    expect(smtp.data?.code).toBe(250);
    const local = await postfix.sendmail(message('through sendmail'), { from: 'joe@example.org', to: ['suzie@example.net'] });
    expect(local.code).toBe(0);
    const delivered = await verifyDelivered(postfix, 2, ['rsa-sha256']);
    expect(delivered.map((m) => subjectOf(m.data)).sort()).toEqual(['over SMTP', 'through sendmail']);
    expect(milterd.output()).toMatch(/"msg":"signed"/);
  });

  it('mail from a domain without keys passes unsigned', async () => {
    const before = postfix.sink.messages.length;
    await postfix.sendSmtp({
      from: 'x@other.example',
      to: ['suzie@example.net'],
      data: message('other').replace('joe@example.org', 'x@other.example'),
    });
    const delivered = await postfix.waitForDelivered(before + 1);
    expect(delivered.at(-1)?.data.toString('latin1')).not.toMatch(/DKIM-Signature/i);
  });
});

describe('dual signing under Postfix, unix socket', () => {
  let postfix: PostfixInstance;

  beforeAll(async () => {
    const socket = join(dir, 'milter.sock');
    const conf = join(dir, 'dual.conf');
    writeFileSync(
      conf,
      [
        `Socket local:${socket}`,
        'Domain example.org',
        `SigningKeys rsa:${join(dir, 'rsa.private')}, ed:${join(dir, 'ed.private')}`,
        '# the postfix user is not in our group here, so the socket is open to all',
        'UMask 000',
        '',
      ].join('\n'),
    );
    const milterd = await startMilterd(['-x', conf]);
    running.push(milterd);
    postfix = await startPostfix({ smtpdMilters: `unix:${socket}` });
    running.push(postfix);
  });

  it('one message arrives with an RSA and an Ed25519 signature, both verified by dkimpy', async () => {
    await postfix.sendSmtp({ from: 'joe@example.org', to: ['suzie@example.net'], data: message('dual') });
    await postfix.sendmail(message('dual via sendmail'), { from: 'joe@example.org', to: ['suzie@example.net'] });
    const delivered = await verifyDelivered(postfix, 2, ['rsa-sha256', 'ed25519-sha256']);
    for (const m of delivered) expect(m.data.toString('latin1').match(/^DKIM-Signature:/gim)).toHaveLength(2);
  });
});
