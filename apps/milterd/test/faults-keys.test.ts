/**
 * Key files going bad under a running inkan-milterd. Keys are read at start and on SIGHUP
 * only (never per message), into memory: a reload that cannot read or parse a key fails
 * as a whole, is logged with the file name (and no key material), and the keys in use stay
 * in use; the signatures made after it still verify (dkimpy). A daemon that cannot load its
 * keys does not start, so the MTA's milter_default_action (tempfail) holds the mail.
 *
 * "Unreadable" also works when the tests run as root: started as root without UserID,
 * milterd drops to nobody, and a mode 000 file is unreadable to nobody.
 */
import { chmodSync, chownSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dkimKeyRecord,
  dkimpyVerify,
  type DnsServer,
  freePort,
  makeKeys,
  runProgram,
  startDnsmasq,
  tempDir,
  type TestKeys,
  waitFor,
} from '@inkan/testbed';
import { EX_CONFIG, nobody } from '../src/internal.js';
import { insertedSignatures, type MilterdProcess, startMilterd, timedTransaction, withSignatures, writeDaemonKey } from './helpers.js';

const isRoot = process.getuid?.() === 0;
const BIN = join(import.meta.dirname, '..', 'bin', 'inkan-milterd.js');
let keys: TestKeys;
let dir: string;
let dns: DnsServer;
let counter = 0;

beforeAll(async () => {
  keys = makeKeys();
  dir = tempDir('inkan-faults-keys-');
  chmodSync(dir, 0o755); // nobody (the dropped daemon) must reach the keys to re-read them
  dns = await startDnsmasq({
    'one._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    'two._domainkey.example.org': dkimKeyRecord(keys.ed25519),
    'three._domainkey.example.net': dkimKeyRecord(keys.rsa1024),
  });
});

afterAll(async () => {
  await dns?.stop();
});

/** The PEM body (base64, lines joined): what must never be seen outside the key file. */
function body(pem: string): string {
  return pem
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('');
}

/** The first 16-character piece of the key's body found in `text`, if any. */
function leaked(text: string, pem: string): string | undefined {
  const b = body(pem);
  for (let i = 0; i + 16 <= b.length; i += 4) {
    const piece = b.slice(i, i + 16);
    if (text.includes(piece)) return piece;
  }
  return undefined;
}

/** Send one message from an internal client; returns the signed copy's file and the selectors. */
async function sign(port: number, from = 'joe@example.org'): Promise<{ file: string; selectors: string[]; reply: unknown }> {
  counter++;
  const message = Buffer.from(
    `From: Joe <${from}>\r\nTo: suzie@example.net\r\nSubject: keys ${counter}\r\nMessage-ID: <keys.${counter}.${Date.now()}@example.org>\r\n\r\nKey fault test ${counter}.\r\n`,
  );
  const tx = await timedTransaction(`inet:${port}@127.0.0.1`, message, {
    client: { address: '127.0.0.1', hostname: 'localhost' },
    sender: from,
  });
  const m = tx.endOfMessage.modifications;
  const file = join(dir, `signed-${counter}.eml`);
  writeFileSync(file, withSignatures(message, m));
  const selectors = insertedSignatures(m).map((f) => /\bs=([^;\s]+)/.exec(f)?.[1] ?? '');
  return { file, selectors, reply: tx.endOfMessage.reply };
}

/** SIGHUP, and wait (bounded) for the n-th reload outcome line; returns that line. */
async function hup(milterd: MilterdProcess, n: number): Promise<string> {
  process.kill(milterd.pid, 'SIGHUP');
  let line = '';
  await waitFor(() => {
    const lines = milterd
      .output()
      .split('\n')
      .filter((l) => /"msg":"(configuration reloaded|reload failed; keeping the previous configuration)"/.test(l));
    line = lines[n - 1] ?? '';
    return line !== '';
  }, `reload ${n}`);
  return line;
}

describe('a key file removed, unreadable, replaced or corrupted, then SIGHUP', () => {
  it('each reload fails naming the file, the keys in use keep signing, and their signatures verify', async () => {
    const one = join(dir, 'one.private');
    const two = join(dir, 'two.private');
    writeDaemonKey(one, keys.rsa2048.pem);
    writeDaemonKey(two, keys.ed25519.pem);
    const port = await freePort();
    const conf = join(dir, 'keys.conf');
    writeFileSync(conf, `Socket inet:${port}@127.0.0.1\nDomain example.org\nSelector one\nKeyFile ${one}\nSigningKeys two:${two}\n`);
    const milterd = await startMilterd(['-x', conf], { env: { INKAN_LOG_LEVEL: 'debug' } });
    const files: string[] = [];
    let reloads = 0;
    try {
      const first = await sign(port);
      expect(first.selectors).toEqual(['one', 'two']);
      files.push(first.file);
      // Reading the keys again as the dropped user works while they are fine.
      expect(await hup(milterd, ++reloads)).toMatch(/configuration reloaded/);

      const faults: [string, () => void, RegExp][] = [
        ['removed', () => unlinkSync(one), /cannot read key file .*one\.private: ENOENT|one\.private: ENOENT/],
        ['mode 000', () => chmodSync(one, 0o000), /cannot read key file .*one\.private: EACCES/],
        [
          'a directory',
          () => {
            unlinkSync(one);
            mkdirSync(one, { mode: 0o700 });
            if (isRoot) chownSync(one, nobody().uid, nobody().gid);
          },
          /cannot read key file .*one\.private: EISDIR/,
        ],
        [
          'cut in half',
          () => writeDaemonKey(one, keys.rsa2048.pem.slice(0, keys.rsa2048.pem.length / 2)),
          /one\.private does not hold a PEM private key/,
        ],
        ['not a key', () => writeDaemonKey(one, 'this is not a key\n'), /one\.private does not hold a PEM private key/],
      ];
      const figures: string[] = [];
      for (const [what, fault, why] of faults) {
        writeDaemonKey(one, keys.rsa2048.pem);
        fault();
        const line = await hup(milterd, ++reloads);
        expect(line, what).toMatch(/reload failed; keeping the previous configuration/);
        expect(line, what).toMatch(why);
        expect(leaked(line, keys.rsa2048.pem), what).toBeUndefined();
        const after = await sign(port);
        expect(after.reply, what).toEqual({ type: 'accept' });
        expect(after.selectors, what).toEqual(['one', 'two']);
        files.push(after.file);
        figures.push(`${what}: ${JSON.parse(line).error}`);
      }
      // Put right, the next reload takes it again.
      writeDaemonKey(one, keys.rsa2048.pem);
      expect(await hup(milterd, ++reloads)).toMatch(/configuration reloaded/);
      files.push((await sign(port)).file);

      const verdicts = await dkimpyVerify(dns.port, files);
      for (const v of verdicts)
        expect(
          v.signatures.map((s) => [s.s, s.pass]),
          v.file,
        ).toEqual([
          ['one', true],
          ['two', true],
        ]);
      expect(leaked(milterd.output(), keys.rsa2048.pem)).toBeUndefined();
      expect(leaked(milterd.output(), keys.ed25519.pem)).toBeUndefined();
      console.log(`failed reloads, old keys kept (${verdicts.length} messages verified by dkimpy):\n  ${figures.join('\n  ')}`);
    } finally {
      await milterd.stop();
    }
  });

  it('KeyTable: one of its keys gone; the reload is refused whole and both domains keep their keys', async () => {
    const one = join(dir, 'kt-one.private');
    const three = join(dir, 'kt-three.private');
    writeDaemonKey(one, keys.rsa2048.pem);
    writeDaemonKey(three, keys.rsa1024.pem);
    const keyTable = join(dir, 'key.table');
    const signingTable = join(dir, 'signing.table');
    writeFileSync(keyTable, `org example.org:one:${one}\nnet example.net:three:${three}\n`);
    writeFileSync(signingTable, '*@example.org org\n*@example.net net\n');
    const port = await freePort();
    const conf = join(dir, 'keytable.conf');
    writeFileSync(conf, `Socket inet:${port}@127.0.0.1\nKeyTable ${keyTable}\nSigningTable refile:${signingTable}\n`);
    const milterd = await startMilterd(['-x', conf]);
    try {
      unlinkSync(three);
      const line = await hup(milterd, 1);
      expect(line).toMatch(/reload failed; keeping the previous configuration/);
      expect(line).toMatch(/key\.table:2: .*kt-three\.private/);
      const org = await sign(port, 'joe@example.org');
      const net = await sign(port, 'joe@example.net');
      expect([org.selectors, net.selectors]).toEqual([['one'], ['three']]);
      const verdicts = await dkimpyVerify(dns.port, [org.file, net.file]);
      for (const v of verdicts) expect(v.signatures, v.file).toEqual([expect.objectContaining({ pass: true })]);
    } finally {
      await milterd.stop();
    }
  });
});

describe('keys are loaded at start and reload, not per message', () => {
  it('a key file removed with no SIGHUP: signing goes on with the key in memory; a restart refuses to start, naming the file', async () => {
    const one = join(dir, 'mem-one.private');
    writeDaemonKey(one, keys.rsa2048.pem);
    const port = await freePort();
    const args = ['-p', `inet:${port}@127.0.0.1`, '-d', 'example.org', '-s', 'one', '-k', one];
    const milterd = await startMilterd(args);
    let signedFile: string;
    try {
      unlinkSync(one);
      const after = await sign(port);
      expect(after.selectors).toEqual(['one']);
      signedFile = after.file;
    } finally {
      await milterd.stop();
    }
    const [v] = await dkimpyVerify(dns.port, [signedFile]);
    expect(v?.signatures).toEqual([expect.objectContaining({ pass: true })]);
    // Without its key the daemon does not run at all: Postfix's milter_default_action applies (tempfail).
    const r = await runProgram(process.execPath, [BIN, ...args], { timeoutMs: 30_000 });
    expect(r.code).toBe(EX_CONFIG);
    expect(r.stderr).toMatch(/mem-one\.private: ENOENT/);
    expect(leaked(r.stdout + r.stderr, keys.rsa2048.pem)).toBeUndefined();
  });
});
