/**
 * A hostile peer on the milter socket, and a hostile user beside the daemon, against a real
 * inkan-milterd: connections past MaximumConnections, a packet over MaximumPacketSize, many
 * connections holding partial packets past MaximumBufferedBytes (closed, RSS bounded), an end
 * of message without MAIL (the in-flight count stays right for SIGTERM), listen rules judged
 * alike by --check-config and start-up, and symbolic links planted at the pid file and
 * socket paths.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCommand, MilterClient } from '@inkan/milter-protocol';
import { freePort, makeKeys, runProgram, sampleRss, startMilterdOnPort, tempDir, type TestKeys, waitFor } from '@inkan/testbed';
import { EX_CONFIG } from '../src/index.js';
import { isLoopbackHost } from '../src/loopback.js';
import { insertedSignatures, type MilterdProcess, startMilterd, timedTransaction } from './helpers.js';

/** Uid and primary gid of a user. */
function readUser(name: string): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' })),
    gid: Number(execFileSync('id', ['-g', name], { encoding: 'utf8' })),
  };
}

const BIN = resolve(import.meta.dirname, '..', 'bin', 'inkan-milterd.js');
const isRoot = process.getuid?.() === 0;
let keys: TestKeys;
let dir: string;
let keyFile: string;
let counter = 0;

beforeAll(() => {
  keys = makeKeys();
  dir = tempDir('inkan-hostile-');
  chmodSync(dir, 0o755); // the daemon drops root to nobody, who must reach the pid file and socket directories
  keyFile = join(dir, 'key.private');
  writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
});

let signingConfs = 0;

/** A signing inkan-milterd on TCP loopback with these extra configuration lines. */
async function startSigning(extra: string[]): Promise<{ milterd: MilterdProcess; port: number }> {
  const { milterd, port } = await startMilterdOnPort(join(dir, `milterd-signing-${++signingConfs}.conf`), [
    'Domain example.org',
    'Selector one',
    `KeyFile ${keyFile}`,
    ...extra,
  ]);
  return { milterd, port };
}

function message(): Buffer {
  counter++;
  return Buffer.from(
    `From: Joe <joe@example.org>\r\nTo: suzie@example.net\r\nSubject: hostile ${counter}\r\nMessage-ID: <hostile.${counter}@example.org>\r\n\r\nStill served, ${counter}.\r\n`,
  );
}

/** One good message from an internal client: the selectors of the signatures it got. */
async function good(port: number): Promise<string[]> {
  const tx = await timedTransaction(`inet:${port}@127.0.0.1`, message(), {
    client: { address: '127.0.0.1', hostname: 'localhost' },
    sender: 'joe@example.org',
  });
  return insertedSignatures(tx.endOfMessage.modifications).map((f) => /\bs=([^;\s]+)/.exec(f)?.[1] ?? '');
}

/** A MilterClient inside a message (connect, MAIL, RCPT, one header), to be finished later. */
async function midMessage(port: number): Promise<MilterClient> {
  const c = await MilterClient.open(`inet:${port}@127.0.0.1`, { timeoutMs: 30_000 });
  await c.connect({ hostname: 'localhost', family: 'inet', address: '127.0.0.1', port: 40000 });
  await c.mail('<joe@example.org>');
  await c.rcpt('<suzie@example.net>');
  await c.header('From', ' Joe <joe@example.org>');
  return c;
}

async function finish(c: MilterClient): Promise<string[]> {
  await c.header('Subject', ' finished beside the hostile ones');
  await c.endOfHeaders();
  await c.body('Served all the same.\r\n');
  const eom = await c.endOfMessage();
  await c.quit();
  expect(eom.reply).toEqual({ type: 'accept' });
  return insertedSignatures(eom.modifications).map((f) => /\bs=([^;\s]+)/.exec(f)?.[1] ?? '');
}

const NEGOTIATE = encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0 });

/** A raw TCP connection; `closed` resolves when the server closes it (or after `limitMs`, with false). */
interface Raw {
  socket: Socket;
  closed(limitMs?: number): Promise<boolean>;
}

async function raw(port: number): Promise<Raw> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  // read (and drop) what the daemon sends: a paused socket would not notice being closed
  socket.on('data', () => {});
  const gone = new Promise<true>((r) => socket.once('close', () => r(true)));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    socket,
    closed: (limitMs = 5000) => Promise.race([gone, new Promise<false>((r) => setTimeout(() => r(false), limitMs))]),
  };
}

function prefix(length: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length);
  return b;
}

const lines = (m: MilterdProcess | undefined, pattern: RegExp) => (m?.output().split('\n') ?? []).filter((l) => pattern.test(l));

describe('MaximumConnections and MaximumPacketSize', () => {
  let milterd: MilterdProcess | undefined;
  const raws: Raw[] = [];
  afterAll(async () => {
    for (const r of raws) r.socket.destroy();
    await milterd?.stop();
  });

  it('connections past MaximumConnections are closed at once, logged once; an open session still completes its message', async () => {
    const started = await startSigning(['MaximumConnections 4', 'MaximumPacketSize 65536']);
    milterd = started.milterd;
    const { port } = started;
    const inside = await midMessage(port);
    for (let i = 0; i < 3; i++) {
      const r = await raw(port);
      r.socket.write(NEGOTIATE);
      raws.push(r);
    }
    // Four open: every further connection is closed as soon as it is accepted.
    const extra = await Promise.all(Array.from({ length: 20 }, () => raw(port)));
    raws.push(...extra);
    const closed = await Promise.all(extra.map((r) => r.closed()));
    expect(closed.filter(Boolean)).toHaveLength(20);
    for (const r of raws.slice(0, 3)) expect(r.socket.destroyed).toBe(false);
    await waitFor(() => lines(milterd, /connections are open, the maximum/).length >= 1, 'the refusal logged');
    // one line for the burst (a summary follows only after 10 s)
    expect(lines(milterd, /connections are open, the maximum/)).toHaveLength(1);
    expect(lines(milterd, /connections are open, the maximum/)[0]).toMatch(
      /refused a connection from 127\.0\.0\.1: 4 connections are open, the maximum/,
    );
    expect(await finish(inside)).toEqual(['one']);
    // Once the others go, new connections are served again.
    for (const r of raws.splice(0)) r.socket.destroy();
    let selectors: string[] = [];
    await waitFor(async () => {
      selectors = await good(port).catch(() => []);
      return selectors.length > 0;
    }, 'a new connection served');
    expect(selectors).toEqual(['one']);
  });

  it('a packet over MaximumPacketSize closes that connection only', async () => {
    const port = Number(/inet:(\d+)@/.exec(milterd?.output() ?? '')?.[1] ?? 0);
    expect(port).toBeGreaterThan(0);
    const inside = await midMessage(port);
    const big = await raw(port);
    raws.push(big);
    big.socket.write(NEGOTIATE);
    // a header field of 100 KB: fine for the library's 4 MiB default, over MaximumPacketSize 65536 here
    big.socket.write(encodeCommand({ type: 'header', name: 'X-Big', value: Buffer.alloc(100_000, 0x61) }));
    expect(await big.closed()).toBe(true);
    await waitFor(
      () => lines(milterd, /packet length 100008 exceeds the limit of 65536 bytes/).length === 1,
      'the oversized packet logged',
    );
    expect(await finish(inside)).toEqual(['one']);
  });
});

describe('MaximumBufferedBytes', () => {
  let milterd: MilterdProcess | undefined;
  const raws: Raw[] = [];
  afterAll(async () => {
    for (const r of raws) r.socket.destroy();
    await milterd?.stop();
  });

  it('100 connections each holding 900 KiB of a packet: closed, largest first, past 8 MiB; RSS stays bounded; a transaction still works', async () => {
    const started = await startSigning(['MaximumBufferedBytes 8388608', 'MilterIdleTimeout 120']);
    milterd = started.milterd;
    const { port } = started;
    const pid = milterd.pid;
    expect(await good(port)).toEqual(['one']); // warm up
    const inside = await midMessage(port);
    const rss = sampleRss(pid, 20);
    const rssBase = rss.baseKiB;
    try {
      const COUNT = 100;
      const chunk = Buffer.alloc(900 * 1024, 0x42);
      for (let i = 0; i < COUNT; i++) {
        const r = await raw(port);
        raws.push(r);
        r.socket.write(Buffer.concat([NEGOTIATE, prefix(1024 * 1024)]));
        r.socket.write(chunk);
      }
      // 92 MB sent in all; at most 8 MiB may be held, so most connections are closed
      await waitFor(
        () => raws.filter((r) => r.socket.destroyed || r.socket.readableEnded).length >= COUNT - 9,
        'connections closed for the budget',
        200,
      );
      const closedCount = raws.filter((r) => r.socket.destroyed || r.socket.readableEnded).length;
      const budgetLines = lines(milterd, /buffered bytes: all connections together would hold over 8388608 bytes/);
      expect(budgetLines.length).toBeGreaterThanOrEqual(COUNT - 9);
      expect(await finish(inside)).toEqual(['one']);
      expect(await good(port)).toEqual(['one']);
      rss.stop();
      const peakMiB = rss.peakMiB();
      // 92 MB arrived; without the budget it is all held (RSS grows by more than that)
      expect(peakMiB).toBeLessThan(64);
      console.log(
        `MaximumBufferedBytes 8 MiB: ${closedCount}/${COUNT} connections holding 900 KiB each closed; RSS ${Math.round(rssBase / 1024)} MiB, peak +${peakMiB.toFixed(1)} MiB`,
      );
    } finally {
      rss.stop();
    }
  });
});

describe('messages in flight', () => {
  let milterd: MilterdProcess | undefined;
  afterAll(async () => {
    await milterd?.stop();
  });

  it('an end of message without MAIL does not take a real message off the in-flight count: SIGTERM waits for it', async () => {
    const started = await startSigning([]);
    milterd = started.milterd;
    const { port } = started;
    const inside = await midMessage(port);
    // A confused client: end of message (and an abort) with no MAIL before them.
    const confused = await MilterClient.open(`inet:${port}@127.0.0.1`, { timeoutMs: 30_000 });
    await confused.connect({ hostname: 'localhost', family: 'inet', address: '127.0.0.1', port: 40001 });
    await confused.endOfMessage();
    confused.abort();
    await confused.quit();
    milterd.child.kill('SIGTERM');
    await milterd.waitForOutput(/"msg":"stopping/);
    expect(lines(milterd, /"msg":"stopping/)[0]).toMatch(/"inFlight":1,/);
    // the real message is let finish, then the daemon stops
    expect(await finish(inside)).toEqual(['one']);
    expect(await milterd.exited).toBe(0);
    milterd = undefined;
  });
});

describe('listen rules: --check-config and start-up judge alike', () => {
  const run = (conf: string, check: boolean) =>
    runProgram(process.execPath, [BIN, '-x', conf, ...(check ? ['--check-config'] : [])], { timeoutMs: 30_000 });

  it('a non-loopback Socket without MilterPeers, a host name that starts with "127.", MetricsListen on 0.0.0.0: refused by both', async () => {
    const cases: [string, string, RegExp][] = [
      [
        'any-address',
        'Socket inet:8899@0.0.0.0\nMode v\n',
        /Socket: inet:8899@0\.0\.0\.0 is not a loopback address: name the MTA hosts allowed to connect with MilterPeers/,
      ],
      ['name', 'Socket inet:8899@127.attacker.example\nMode v\n', /Socket: inet:8899@127\.attacker\.example is not a loopback address/],
      [
        'metrics',
        `Socket inet:8899@127.0.0.1\nMode v\nMetricsListen 0.0.0.0:9100\n`,
        /MetricsListen: MetricsListen must be a loopback address \(127\.0\.0\.0\/8 or ::1\), not 0\.0\.0\.0/,
      ],
      [
        'metrics-mapped',
        `Socket inet:8899@127.0.0.1\nMode v\nMetricsListen [::ffff:10.0.0.1]:9100\n`,
        /MetricsListen must be a loopback address/,
      ],
    ];
    for (const [name, text, why] of cases) {
      const conf = join(dir, `rules-${name}.conf`);
      writeFileSync(conf, text);
      for (const check of [true, false]) {
        const r = await run(conf, check);
        expect(r.code, `${name}${check ? ' --check-config' : ''}: ${r.stderr}`).toBe(EX_CONFIG);
        expect(r.stderr, name).toMatch(why);
      }
    }
    // and what is fine passes --check-config
    const ok = join(dir, 'rules-ok.conf');
    writeFileSync(ok, 'Socket inet:8899@127.0.0.2\nMode v\nMetricsListen [::1]:9100\n');
    const r = await run(ok, true);
    expect(r.code, r.stderr).toBe(0);
  });

  it('loopback means 127.0.0.0/8 or ::1 as an address, or exactly localhost', () => {
    for (const host of ['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of [
      '127.attacker.example',
      '127.0.0.1.nip.io',
      '0.0.0.0',
      '::',
      '10.0.0.1',
      '::ffff:10.0.0.1',
      '',
      'localhost.',
      'LOCALHOST',
    ]) {
      expect(isLoopbackHost(host, { allowLocalhost: true }), host).toBe(false);
    }
    expect(isLoopbackHost('localhost', { allowLocalhost: true })).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(false);
  });
});

describe('files beside a hostile user', () => {
  it('PidFile: a planted symbolic link is not followed (start-up refused, target untouched); a stale file is replaced; a live pid refused; removed on stop', async () => {
    // the daemon drops root to nobody, who owns the pid file's directory (as /run/inkan often is)
    const d = join(dir, 'pid');
    mkdirSync(d);
    if (isRoot) chownSync(d, readUser('nobody').uid, readUser('nobody').gid);
    const target = join(d, 'precious');
    writeFileSync(target, 'precious\n', { mode: 0o600 });
    const before = lstatSync(target);
    const pidFile = join(d, 'milterd.pid');
    symlinkSync(target, pidFile);
    const port = await freePort();
    const conf = join(d, 'pid.conf');
    writeFileSync(conf, `Socket inet:${port}@127.0.0.1\nMode v\nPidFile ${pidFile}\n`);
    const refused = await startMilterd(['-x', conf], { ready: 'none' });
    expect(await refused.exited).not.toBe(0);
    expect(refused.output()).toContain(`PidFile ${pidFile} exists and is not a regular file (a symbolic link); refusing to use it`);
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    const after = lstatSync(target);
    expect([after.mode, after.uid, after.gid, after.size]).toEqual([before.mode, before.uid, before.gid, before.size]);
    expect(lstatSync(pidFile).isSymbolicLink()).toBe(true);

    // A live pid (this test's process) is refused and left alone.
    spawnSync('rm', ['-f', pidFile]);
    writeFileSync(pidFile, `${process.pid}\n`);
    const live = await startMilterd(['-x', conf], { ready: 'none' });
    expect(await live.exited).not.toBe(0);
    expect(live.output()).toContain(`PidFile ${pidFile} names process ${process.pid}, which is running`);
    expect(readFileSync(pidFile, 'utf8')).toBe(`${process.pid}\n`);

    // A stale one (a process that has exited) is replaced, and removed on stop.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(pidFile, `${gone.stdout}\n`);
    const milterd = await startMilterd(['-x', conf]);
    try {
      expect(readFileSync(pidFile, 'utf8')).toBe(`${milterd.pid}\n`);
      expect(lstatSync(pidFile).mode & 0o777).toBe(0o644);
    } finally {
      expect(await milterd.stop()).toBe(0);
    }
    expect(() => lstatSync(pidFile)).toThrow(/ENOENT/);

    // On stop, a pid file that no longer holds our pid is left alone.
    const second = await startMilterd(['-x', conf]);
    writeFileSync(pidFile, '1\n');
    expect(await second.stop()).toBe(0);
    expect(readFileSync(pidFile, 'utf8')).toBe('1\n');
    expect(second.output()).toMatch(/the pid file no longer holds our pid; leaving it/);
  });

  it.skipIf(!isRoot)(
    "the socket gets UMask's mode and UserID's group at bind; a symbolic link planted at its path is refused and its target untouched",
    async () => {
      const nobody = readUser('nobody');
      // a directory the milter user owns and can write to, as /run/inkan often is
      const d = join(dir, 'sock');
      mkdirSync(d, { mode: 0o755 });
      chownSync(d, nobody.uid, nobody.gid);
      const sock = join(d, 'milter.sock');
      const conf = join(d, 'sock.conf');
      writeFileSync(conf, `Socket local:${sock}\nMode v\nUMask 027\nUserID nobody\n`);
      const milterd = await startMilterd(['-x', conf]);
      try {
        const st = lstatSync(sock);
        expect(st.isSocket()).toBe(true);
        expect(st.mode & 0o777).toBe(0o750);
        expect(st.gid).toBe(nobody.gid);
        const tx = await MilterClient.open(`unix:${sock}`);
        await tx.quit();
      } finally {
        expect(await milterd.stop()).toBe(0);
      }
      const target = join(dir, 'precious-sock-target');
      writeFileSync(target, 'precious\n', { mode: 0o600 });
      const before = lstatSync(target);
      symlinkSync(target, sock);
      const refused = await startMilterd(['-x', conf], { ready: 'none' });
      expect(await refused.exited).not.toBe(0);
      expect(refused.output()).toContain(`${sock} exists and is not a socket; refusing to replace it`);
      const after = lstatSync(target);
      expect([after.mode, after.uid, after.gid]).toEqual([before.mode, before.uid, before.gid]);
      expect(readFileSync(target, 'utf8')).toBe('precious\n');
    },
  );
});
