/**
 * The key is chosen by the From field as dkim-core's parseMailboxList reads it (RFC 5322 and
 * RFC 6854 forms), through the milter protocol: an RFC 6854 group From ("Team: a@example.org;")
 * is signed with example.org's key, and dkimpy verifies the signature with the key from dnsmasq.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimKeyRecord, dkimpyVerify, type DnsServer, freePort, makeKeys, startDnsmasq, tempDir, type TestKeys } from '@inkan/testbed';
import { insertedSignatures, type MilterdProcess, startMilterd, timedTransaction, withSignatures, writeDaemonKey } from './helpers.js';

let keys: TestKeys;
let dir: string;
let dns: DnsServer;
let milterd: MilterdProcess;
let port: number;

beforeAll(async () => {
  keys = makeKeys();
  dir = tempDir('inkan-from-forms-');
  dns = await startDnsmasq({
    'org._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    'net._domainkey.example.net': dkimKeyRecord(keys.ed25519),
  });
  writeDaemonKey(join(dir, 'org.private'), keys.rsa2048.pem);
  writeDaemonKey(join(dir, 'net.private'), keys.ed25519.pem);
  writeFileSync(
    join(dir, 'key.table'),
    `org example.org:org:${join(dir, 'org.private')}\nnet example.net:net:${join(dir, 'net.private')}\n`,
  );
  writeFileSync(join(dir, 'signing.table'), '*@example.org org\n*@example.net net\n');
  port = await freePort();
  const conf = join(dir, 'milterd.conf');
  writeFileSync(
    conf,
    `Socket inet:${port}@127.0.0.1\nKeyTable ${join(dir, 'key.table')}\nSigningTable refile:${join(dir, 'signing.table')}\nLogWhy yes\n`,
  );
  milterd = await startMilterd(['-x', conf]);
});

afterAll(async () => {
  await milterd?.stop();
  await dns?.stop();
});

let counter = 0;
/** Send a message with this From value from an internal client; the signed copy's file and the d= of each signature. */
async function send(from: string): Promise<{ file: string; domains: string[] }> {
  counter++;
  const message = Buffer.concat([
    Buffer.from('From:'),
    Buffer.from(from, 'latin1'),
    Buffer.from(
      `\r\nTo: suzie@example.net\r\nSubject: from forms ${counter}\r\nMessage-ID: <forms.${counter}@example.org>\r\n\r\nBody ${counter}.\r\n`,
    ),
  ]);
  const tx = await timedTransaction(`inet:${port}@127.0.0.1`, message, {
    client: { address: '127.0.0.1', hostname: 'localhost' },
    sender: 'a@example.org',
  });
  const m = tx.endOfMessage.modifications;
  const file = join(dir, `signed-${counter}.eml`);
  writeFileSync(file, withSignatures(message, m));
  return { file, domains: insertedSignatures(m).map((f) => /\bd=([^;\s]+)/.exec(f)?.[1] ?? '') };
}

describe('the signing key follows the From mailbox, whatever its form', () => {
  it('an RFC 6854 group From is signed with the key of its mailbox, and dkimpy verifies it', async () => {
    const forms: [string, string][] = [
      [' Team: a@example.org;', 'example.org'],
      [' Team: "A" <a@example.net>, b@example.org;', 'example.net'],
      [' "Joe (not <x@example.net>)" <joe@example.org>', 'example.org'],
      [' (comment <x@example.org>) joe@example.net', 'example.net'],
      ['\r\n\tJoe\r\n <joe@Example.ORG>', 'example.org'],
    ];
    const sent = [];
    for (const [from, domain] of forms) {
      const s = await send(from);
      expect(s.domains, from).toEqual([domain]);
      sent.push(s);
    }
    const verdicts = await dkimpyVerify(
      dns.port,
      sent.map((s) => s.file),
    );
    expect(verdicts.map((v) => v.signatures.map((s) => [s.d, s.pass]))).toEqual(forms.map(([, d]) => [[d, true]]));
  });

  it('an empty group or a From that is no address list is not signed, and the log says why', async () => {
    for (const from of [' undisclosed-recipients:;', ' John Smith@example.org']) {
      const s = await send(from);
      expect(s.domains, from).toEqual([]);
    }
    await milterd.waitForOutput(/not signed: no From address[\s\S]*not signed: no From address/);
  });
});
