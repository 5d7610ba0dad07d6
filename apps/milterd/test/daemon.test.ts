/**
 * inkan-milterd as a daemon: privilege drop (setgid, initgroups, setuid), socket mode,
 * SIGHUP reloads, SIGTERM loses nothing under Postfix, and configuration errors.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  startPostfix,
  statusField,
  tempDir,
  type TestKeys,
} from '@inkan/testbed';
import { runTransaction } from '@inkan/milter-protocol';
import { EX_CONFIG } from '../src/index.js';
import { OUTAGE_MESSAGES, sendThroughOutage, startMilterd } from './helpers.js';

const isRoot = process.getuid?.() === 0;
let keys: TestKeys;
let dir: string;
let dns: DnsServer;

const message = (subject: string) =>
  Buffer.from(
    `From: Joe <joe@example.org>\r\nTo: suzie@example.net\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@example.org>\r\n\r\nBody of ${subject}.\r\n`,
  );

function id(args: string[]): number {
  return Number(execFileSync('id', args, { encoding: 'utf8' }).trim());
}

/** A user "milter" whose supplementary group inkan-keys is the only way to read the key. */
function ensureMilterUser(): void {
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: 'ignore' });
  try {
    execFileSync('getent', ['group', 'inkan-keys'], { stdio: 'ignore' });
  } catch {
    run('groupadd', ['--system', 'inkan-keys']);
  }
  try {
    execFileSync('getent', ['passwd', 'milter'], { stdio: 'ignore' });
  } catch {
    run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', 'milter']);
  }
  run('usermod', ['-a', '-G', 'inkan-keys', 'milter']);
}

beforeAll(async () => {
  keys = makeKeys();
  dir = tempDir('inkan-milterd-daemon-');
  chmodSync(dir, 0o755);
  dns = await startDnsmasq({
    'one._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    'two._domainkey.example.org': dkimKeyRecord(keys.ed25519),
  });
});

afterAll(async () => {
  await dns?.stop();
});

describe.runIf(isRoot)('privilege drop (started as root)', () => {
  it('-u milter:mail: uid of milter, gid of mail, supplementary groups; reads a root:inkan-keys 0440 key after dropping', async () => {
    ensureMilterUser();
    const keysGid = Number(execFileSync('getent', ['group', 'inkan-keys'], { encoding: 'utf8' }).split(':')[2]);
    const mailGid = Number(execFileSync('getent', ['group', 'mail'], { encoding: 'utf8' }).split(':')[2]);
    const keyDir = join(dir, 'keys');
    mkdirSync(keyDir, { mode: 0o755 });
    const keyFile = join(keyDir, 'one.private');
    writeFileSync(keyFile, keys.rsa2048.pem);
    chownSync(keyFile, 0, keysGid);
    chmodSync(keyFile, 0o440);
    const runDir = join(dir, 'run');
    mkdirSync(runDir, { mode: 0o755 });
    chownSync(runDir, id(['-u', 'milter']), mailGid);
    const socket = join(runDir, 'dkim');
    const milterd = await startMilterd([
      '-p',
      `local:${socket}`,
      '-P',
      join(runDir, 'inkan.pid'),
      '-d',
      'example.org',
      '-s',
      'one',
      '-k',
      keyFile,
      '-u',
      'milter:mail',
    ]);
    try {
      const uid = id(['-u', 'milter']);
      expect(statusField(milterd.pid, 'Uid').split(/\s+/)).toEqual([String(uid), String(uid), String(uid), String(uid)]);
      expect(statusField(milterd.pid, 'Gid').split(/\s+/)).toEqual([String(mailGid), String(mailGid), String(mailGid), String(mailGid)]);
      const groups = statusField(milterd.pid, 'Groups').split(/\s+/).map(Number);
      expect(groups).toContain(keysGid);
      expect(groups).not.toContain(0);
      // The socket: mode from UMask 007, group mail, so that group mail can connect.
      const st = statSync(socket);
      expect(st.mode & 0o777).toBe(0o770);
      expect(st.gid).toBe(mailGid);
      expect(readFileSync(join(runDir, 'inkan.pid'), 'utf8').trim()).toBe(String(milterd.pid));
      // Re-reading the key now needs the supplementary group.
      process.kill(milterd.pid, 'SIGHUP');
      await milterd.waitForOutput(/configuration reloaded|reload failed/);
      expect(milterd.output()).toMatch(/"msg":"configuration reloaded"/);
      const tx = await runTransaction(`unix:${socket}`, {
        sender: 'joe@example.org',
        recipients: ['suzie@example.net'],
        message: message('as milter'),
      });
      const inserted = tx.endOfMessage?.modifications.filter((m) => m.type === 'insertHeader') ?? [];
      expect(inserted.map((m) => ('name' in m ? m.name : ''))).toEqual(['DKIM-Signature']);
    } finally {
      expect(await milterd.stop()).toBe(0);
    }
    // Cleaned up after itself, as the unprivileged user.
    expect(() => statSync(join(runDir, 'inkan.pid'))).toThrow();
    expect(() => statSync(socket)).toThrow();
  });

  it('without a user it drops to nobody, and says so', async () => {
    const keyFile = join(dir, 'root-only.private');
    writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
    const port = await freePort();
    const milterd = await startMilterd(['-p', `inet:${port}@127.0.0.1`, '-d', 'example.org', '-s', 'one', '-k', keyFile]);
    try {
      expect(statusField(milterd.pid, 'Uid').split(/\s+/)[0]).toBe(String(id(['-u', 'nobody'])));
      expect(milterd.output()).toMatch(/dropped root to nobody/);
    } finally {
      await milterd.stop();
    }
  });
});

describe('reload and shutdown under Postfix', () => {
  it('SIGHUP with a changed key table takes effect for the next message; a bad table is refused and the old one kept', async () => {
    const oneKey = join(dir, 'hup-one.private');
    const twoKey = join(dir, 'hup-two.private');
    writeFileSync(oneKey, keys.rsa2048.pem, { mode: 0o600 });
    writeFileSync(twoKey, keys.ed25519.pem, { mode: 0o600 });
    const keyTable = join(dir, 'keytable');
    const signingTable = join(dir, 'signingtable');
    writeFileSync(keyTable, `k example.org:one:${oneKey}\n`);
    writeFileSync(signingTable, '*@example.org k\n');
    const port = await freePort();
    const conf = join(dir, 'hup.conf');
    writeFileSync(
      conf,
      `Socket inet:${port}@127.0.0.1\nKeyTable ${keyTable}\nSigningTable refile:${signingTable}\nUserID root\nAllowRoot yes\n`,
    );
    const milterd = await startMilterd(['-x', conf]);
    const postfix = await startPostfix({ smtpdMilters: `inet:127.0.0.1:${port}` });
    try {
      const send = async (subject: string) => {
        const r = await postfix.sendSmtp({ from: 'joe@example.org', to: ['suzie@example.net'], data: message(subject) });
        expect(r.data?.code, `${subject}: ${r.data?.text}`).toBe(250);
      };
      await send('before reload');
      writeFileSync(keyTable, `k example.org:two:${twoKey}\n`);
      process.kill(milterd.pid, 'SIGHUP');
      await milterd.waitForOutput(/"msg":"configuration reloaded"/);
      await send('after reload');
      writeFileSync(keyTable, 'k example.org:broken\n');
      process.kill(milterd.pid, 'SIGHUP');
      await milterd.waitForOutput(/reload failed; keeping the previous configuration/);
      await send('after bad reload');
      const delivered = await postfix.waitForDelivered(3);
      const selectors = delivered.map((m) => /\bs=([a-z]+);/.exec(m.data.toString('latin1'))?.[1]);
      expect(selectors).toEqual(['one', 'two', 'two']);
      const verdicts = await dkimpyVerify(
        dns.port,
        delivered.map((m) => m.file),
      );
      for (const v of verdicts) expect(v.signatures, v.file).toEqual([expect.objectContaining({ pass: true })]);
      expect(milterd.output()).toMatch(/keytable:1: KeyTable lines read/);
    } finally {
      await postfix.stop();
      await milterd.stop();
    }
  });

  it('SIGTERM during a send loop loses nothing: Postfix tempfails or defers, then delivers after restart', {
    timeout: 900_000,
  }, async () => {
    const keyFile = join(dir, 'term.private');
    writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
    const port = await freePort();
    const args = ['-p', `inet:${port}@127.0.0.1`, '-d', 'example.org', '-s', 'one', '-k', keyFile];
    let milterd = await startMilterd(args);
    const postfix = await startPostfix({ smtpdMilters: `inet:127.0.0.1:${port}`, milterDefaultAction: 'tempfail' });
    try {
      const run = await sendThroughOutage(
        postfix,
        async () => expect(await milterd.stop()).toBe(0),
        async () => {
          milterd = await startMilterd(args);
        },
        { count: OUTAGE_MESSAGES, concurrency: 8 },
      );
      console.log(
        `SIGTERM under load: ${run.sent} messages in ${run.seconds.toFixed(1)} s, ${run.resent} tempfailed at SMTP and resent, ${run.queued} queued while it was down; all delivered once and signed`,
      );
    } finally {
      await postfix.stop();
      await milterd.stop();
    }
  });
});

describe('configuration errors', () => {
  const run = (args: string[]) =>
    runProgram(process.execPath, [join(import.meta.dirname, '..', 'bin', 'inkan-milterd.js'), ...args], { timeoutMs: 30_000 });

  it('an unknown option names file and line', async () => {
    const conf = join(dir, 'bad.conf');
    writeFileSync(conf, 'Mode sv\n\nFrobnicate yes\n');
    const r = await run(['-x', conf]);
    expect(r.code).toBe(EX_CONFIG);
    expect(r.stderr).toContain(`${conf}:3: unknown option "Frobnicate"`);
  });
  it('a missing key file', async () => {
    const r = await run(['-d', 'example.org', '-s', 'one', '-k', join(dir, 'missing.private'), '--check-config']);
    expect(r.code).toBe(EX_CONFIG);
    expect(r.stderr).toMatch(/missing\.private: ENOENT/);
  });
  it('unsafe key permissions', async () => {
    const keyFile = join(dir, 'world.private');
    writeFileSync(keyFile, keys.rsa2048.pem);
    chmodSync(keyFile, 0o644);
    const r = await run(['-d', 'example.org', '-s', 'one', '-k', keyFile, '--check-config']);
    expect(r.code).toBe(EX_CONFIG);
    expect(r.stderr).toMatch(/readable by anyone \(mode 0644\)/);
  });
  it('--check-config prints the effective configuration, keys by path only', async () => {
    const keyFile = join(dir, 'check.private');
    writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
    const r = await run(['-d', 'example.org', '-s', 'one', '-k', keyFile, '--check-config']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`KeyFile ${keyFile}`);
    expect(r.stdout).not.toMatch(/PRIVATE KEY|MII/);
  });
  it('a bad flag is a usage error', async () => {
    const r = await run(['--no-such-flag']);
    expect(r.code).toBe(64);
  });
});

describe('first run and metrics', () => {
  it('with no arguments: makes a development key, listens on inet:8891@127.0.0.1, prints the record and MTA lines', async () => {
    const state = tempDir('inkan-first-run-');
    const milterd = await startMilterd([], { env: { INKAN_STATE_DIR: state } });
    try {
      const out = milterd.output();
      expect(out).toContain('first run on built-in defaults');
      expect(out).toMatch(/dev\._domainkey\.example\.org\.\tIN\tTXT\t\( "v=DKIM1; k=rsa; t=y:s; "/);
      expect(out).toContain('smtpd_milters = inet:127.0.0.1:8891');
      expect(out).toContain('non_smtpd_milters = inet:127.0.0.1:8891');
      expect(out).toContain("INPUT_MAIL_FILTER(`inkan', `S=inet:8891@127.0.0.1, F=T')");
      expect(statSync(join(state, 'dev.private')).mode & 0o777).toBe(0o600);
      const tx = await runTransaction('inet:8891@127.0.0.1', {
        sender: 'joe@example.org',
        recipients: ['x@example.net'],
        message: message('first run'),
      });
      expect(tx.endOfMessage?.modifications.some((m) => m.type === 'insertHeader' && m.name === 'DKIM-Signature')).toBe(true);
    } finally {
      expect(await milterd.stop()).toBe(0);
    }
  });

  it('MetricsListen serves Prometheus metrics on loopback', async () => {
    const keyFile = join(dir, 'metrics.private');
    writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
    const [port, metricsPort] = [await freePort(), await freePort()];
    const conf = join(dir, 'metrics.conf');
    writeFileSync(
      conf,
      `Socket inet:${port}@127.0.0.1\nDomain example.org\nSelector one\nKeyFile ${keyFile}\nMetricsListen 127.0.0.1:${metricsPort}\n`,
    );
    const milterd = await startMilterd(['-x', conf]);
    try {
      await runTransaction(`inet:${port}@127.0.0.1`, {
        sender: 'joe@example.org',
        recipients: ['x@example.net'],
        message: message('metrics'),
      });
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(text).toMatch(/^inkan_signatures_made_total 1$/m);
      expect(text).toMatch(/^inkan_milter_connections /m);
    } finally {
      await milterd.stop();
    }
    writeFileSync(conf, `Socket inet:${port}@127.0.0.1\nMetricsListen 192.0.2.1:9\n`);
    const refused = await startMilterd(['-x', conf], { ready: 'none' });
    try {
      expect(await Promise.race([refused.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))])).toBe(EX_CONFIG);
      expect(refused.output()).toMatch(/must be a loopback address/);
    } finally {
      await refused.stop();
    }
  });
});

describe('On-* actions', () => {
  it('apply per outcome with the configured reply: key not found -> reject, several From fields -> tempfail', async () => {
    const port = await freePort();
    const conf = join(dir, 'actions.conf');
    writeFileSync(
      conf,
      `Socket inet:${port}@127.0.0.1\nMode v\nNameservers 127.0.0.1@${dns.port}\nOn-KeyNotFound reject\nOn-Security tempfail\nDNSTimeout 2\n`,
    );
    const milterd = await startMilterd(['-x', conf]);
    try {
      const spec = `inet:${port}@127.0.0.1`;
      const tx = (message: Buffer) =>
        runTransaction(spec, {
          client: { address: '192.0.2.9', hostname: 'outside.example' },
          sender: 'a@sender.example',
          recipients: ['b@example.org'],
          message,
        });
      const unsigned = await tx(message('plain'));
      expect(unsigned.outcome.reply).toEqual({ type: 'accept' });
      const noKey = Buffer.concat([
        Buffer.from(
          'DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=nokey; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n',
        ),
        message('no key'),
      ]);
      const rejected = await tx(noKey);
      expect(rejected.outcome.reply).toMatchObject({ type: 'replyCode', text: expect.stringMatching(/^550 5\.7\.20 DKIM: key not found/) });
      const twoFrom = Buffer.concat([Buffer.from('From: Mallory <m@evil.example>\r\n'), message('two from')]);
      const tempfailed = await tx(twoFrom);
      expect(tempfailed.outcome.reply).toMatchObject({
        type: 'replyCode',
        text: expect.stringMatching(/^451 4\.6\.0 DKIM: not accepted: the message has 2 From fields/),
      });
    } finally {
      await milterd.stop();
    }
  });
});

describe('who may connect', () => {
  it('a Socket off loopback needs MilterPeers (checked before anything is bound)', async () => {
    const conf = join(dir, 'open.conf');
    writeFileSync(conf, 'Socket inet:8899@0.0.0.0\nMode v\n');
    const r = await runProgram(process.execPath, [join(import.meta.dirname, '..', 'bin', 'inkan-milterd.js'), '-x', conf], {
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(EX_CONFIG);
    expect(r.stderr).toMatch(/not a loopback address: name the MTA hosts allowed to connect with MilterPeers/);
  });

  it('MilterPeers: a listed peer is served, any other connection is closed at once', async () => {
    const port = await freePort();
    const conf = join(dir, 'peers.conf');
    writeFileSync(conf, `Socket inet:${port}@127.0.0.1\nMode v\nMilterPeers 127.0.0.2\n`);
    const milterd = await startMilterd(['-x', conf]);
    const { connect } = await import('node:net');
    const { encodeCommand, PacketDecoder, decodeResponse } = await import('@inkan/milter-protocol');
    /** Connect from `localAddress`, offer option negotiation, return the reply type or "closed". */
    const negotiateFrom = (localAddress: string) =>
      new Promise<string>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port, localAddress });
        const decoder = new PacketDecoder();
        socket.on('connect', () => socket.write(encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff })));
        socket.on('data', (d: Buffer) => {
          const [packet] = decoder.push(d);
          if (packet) {
            resolve(decodeResponse(packet).type);
            socket.destroy();
          }
        });
        socket.on('close', () => resolve('closed'));
        socket.on('error', () => resolve('closed'));
      });
    try {
      expect(await negotiateFrom('127.0.0.2')).toBe('negotiate');
      expect(await negotiateFrom('127.0.0.1')).toBe('closed');
      await milterd.waitForOutput(/refused a connection from 127\.0\.0\.1: not an allowed peer/);
    } finally {
      await milterd.stop();
    }
  });
});
