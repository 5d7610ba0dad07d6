/**
 * Abusive milter clients against a running inkan-milterd: garbage, a client stalling in the
 * middle of a packet or of a message, and 1,000 idle connections. Each is closed (at once
 * for garbage, after MilterIdleTimeout for silence) and logged; a good transaction running
 * beside them completes, quickly; memory stays bounded and descriptors return to baseline.
 */
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCommand, encodePacket, MilterClient } from '@inkan/milter-protocol';
import { fdCount, freePort, makeKeys, rssKiB, sampleRss, tempDir, type TestKeys, waitFor } from '@inkan/testbed';
import { insertedSignatures, type MilterdProcess, startMilterd, timedTransaction } from './helpers.js';

let keys: TestKeys;
let dir: string;
let counter = 0;

beforeAll(() => {
  keys = makeKeys();
  dir = tempDir('inkan-abuse-');
});

/** A signing inkan-milterd with this MilterIdleTimeout. */
async function startSigning(idleSeconds: number): Promise<{ milterd: MilterdProcess; port: number }> {
  const keyFile = join(dir, `key-${idleSeconds}.private`);
  writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
  const port = await freePort();
  const conf = join(dir, `abuse-${idleSeconds}.conf`);
  writeFileSync(
    conf,
    `Socket inet:${port}@127.0.0.1\nDomain example.org\nSelector one\nKeyFile ${keyFile}\nMilterIdleTimeout ${idleSeconds}\n`,
  );
  return { milterd: await startMilterd(['-x', conf]), port };
}

function message(): Buffer {
  counter++;
  return Buffer.from(
    `From: Joe <joe@example.org>\r\nTo: suzie@example.net\r\nSubject: abuse ${counter}\r\nMessage-ID: <abuse.${counter}@example.org>\r\n\r\nStill served, ${counter}.\r\n`,
  );
}

/** One good message from an internal client: its selectors and how long it took. */
async function good(port: number): Promise<{ selectors: string[]; ms: number }> {
  const tx = await timedTransaction(`inet:${port}@127.0.0.1`, message(), {
    client: { address: '127.0.0.1', hostname: 'localhost' },
    sender: 'joe@example.org',
  });
  return { selectors: insertedSignatures(tx.endOfMessage.modifications).map((f) => /\bs=([^;\s]+)/.exec(f)?.[1] ?? ''), ms: tx.totalMs };
}

/** A raw TCP connection; `closed` resolves with the ms from `mark()` (or opening) to the server closing it. */
interface Raw {
  socket: Socket;
  closed: Promise<number>;
  /** Resolves with the first bytes the server sends. */
  firstReply: Promise<Buffer>;
  mark(): void;
}

async function raw(port: number): Promise<Raw> {
  const socket = connect({ host: '127.0.0.1', port });
  let since = performance.now();
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - since)));
  const firstReply = new Promise<Buffer>((resolve) => socket.once('data', resolve));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    socket,
    closed,
    firstReply,
    mark() {
      since = performance.now();
    },
  };
}

const NEGOTIATE = encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff });

/** Deterministic noise (xorshift32), so a failure can be replayed. */
function noise(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  // Its first four bytes read as a length over the 4 MiB limit, as almost any noise does.
  out[0] = (out[0] as number) | 0x80;
  return out;
}

describe('garbage', () => {
  let milterd: MilterdProcess | undefined;
  afterAll(async () => {
    await milterd?.stop();
  });

  it('each garbage connection is closed at once and logged; a transaction running beside them completes', async () => {
    const started = await startSigning(60);
    milterd = started.milterd;
    const { port } = started;
    const garbage: [string, Buffer[], RegExp][] = [
      [
        'an HTTP request',
        [Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')],
        /packet length \d+ exceeds the limit of 1048576 bytes/,
      ],
      ['an SMTP client', [Buffer.from('EHLO mallory.example\r\nMAIL FROM:<m@evil.example>\r\n')], /packet length \d+ exceeds the limit/],
      ['a zero length', [Buffer.from([0, 0, 0, 0, 0x4f])], /packet length 0 is invalid/],
      ['an unknown command', [encodePacket(0x5a, Buffer.from('zzz'))], /unknown command code/],
      ['a command before negotiation', [encodeCommand({ type: 'helo', hostname: 'mallory.example' })], /command before option negotiation/],
      [
        'protocol version 1',
        [encodeCommand({ type: 'negotiate', version: 1, actions: 0x1ff, protocol: 0x1fffff })],
        /MTA protocol version 1 is not supported/,
      ],
      ['negotiating twice', [NEGOTIATE, NEGOTIATE], /options were already negotiated/],
      ['a negotiation too short', [encodePacket(0x4f, Buffer.from([0, 0, 0, 6]))], /negotiate: /],
      ['an empty header packet', [NEGOTIATE, encodePacket(0x4c)], /header: payload too short for header name/],
      ['an unknown address family', [NEGOTIATE, encodePacket(0x43, Buffer.from('mallory.example\0X', 'latin1'))], /unknown address family/],
      ['64 KiB of noise', [noise(65_536, 20_261_128)], /packet length \d+ exceeds the limit/],
    ];
    // A good transaction is half way through when the garbage arrives, and finishes after it.
    const client = await MilterClient.open(`inet:${port}@127.0.0.1`);
    await client.connect({ hostname: 'localhost', family: 'inet', address: '127.0.0.1', port: 40000 });
    await client.helo('localhost');
    await client.mail('<joe@example.org>');
    await client.rcpt('<suzie@example.net>');
    const conns = await Promise.all(garbage.map(() => raw(port)));
    for (const [i, [, packets]] of garbage.entries()) for (const p of packets) conns[i]?.socket.write(p);
    const closedMs = await Promise.all(
      conns.map((c) => Promise.race([c.closed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 10_000))])),
    );
    for (const [i, [what]] of garbage.entries()) expect(closedMs[i], `${what}: closed within 2 s`).toBeLessThan(2000);
    await client.data();
    await client.header('From', ' Joe <joe@example.org>');
    await client.header('Subject', ' beside the garbage');
    await client.endOfHeaders();
    await client.body('Served all the same.\r\n');
    const eom = await client.endOfMessage();
    await client.quit();
    expect(eom.reply).toEqual({ type: 'accept' });
    expect(insertedSignatures(eom.modifications)).toHaveLength(1);

    const errors = () =>
      milterd
        ?.output()
        .split('\n')
        .filter((l) => l.includes('"level":50') && l.includes('"session"')) ?? [];
    await waitFor(() => errors().length >= garbage.length, `${garbage.length} error lines`);
    for (const [what, , why] of garbage)
      expect(
        errors().some((l) => why.test(l)),
        `${what}: logged as ${why}`,
      ).toBe(true);
    // Still the same process, still serving.
    expect(milterd.child.exitCode).toBeNull();
    const after = await good(port);
    expect(after.selectors).toEqual(['one']);
    console.log(
      `garbage: ${garbage.length} kinds closed in ${Math.round(Math.max(...closedMs))} ms at most; the transaction beside them signed; ` +
        `logged e.g. ${JSON.parse(errors()[0] ?? '{}').msg}`,
    );
  });
});

describe('a client that stalls', () => {
  let milterd: MilterdProcess | undefined;
  afterAll(async () => {
    await milterd?.stop();
  });

  it('half a packet, or a message left unfinished: closed after MilterIdleTimeout (2 s), others unaffected, nothing left in flight', async () => {
    const started = await startSigning(2);
    milterd = started.milterd;
    const { port } = started;
    // Half a header packet after a negotiation.
    const half = await raw(port);
    half.socket.write(NEGOTIATE);
    await half.firstReply;
    const header = encodeCommand({ type: 'header', name: 'Subject', value: Buffer.from(' a subject long enough to be cut in two') });
    half.socket.write(header.subarray(0, Math.floor(header.length / 2)));
    half.mark();
    // A message left after its headers: in flight for the daemon until the connection goes.
    const unfinished = await MilterClient.open(`inet:${port}@127.0.0.1`);
    await unfinished.connect({ hostname: 'localhost', family: 'inet', address: '127.0.0.1', port: 40001 });
    await unfinished.mail('<joe@example.org>');
    await unfinished.rcpt('<suzie@example.net>');
    await unfinished.header('From', ' Joe <joe@example.org>');
    await unfinished.endOfHeaders();
    const unfinishedSince = performance.now();
    // Meanwhile a good transaction is served at once.
    const meanwhile = await good(port);
    expect(meanwhile.selectors).toEqual(['one']);
    expect(meanwhile.ms).toBeLessThan(1000);
    const halfMs = await Promise.race([half.closed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 10_000))]);
    await Promise.race([unfinished.whenClosed(), new Promise((r) => setTimeout(r, 10_000))]);
    const unfinishedMs = performance.now() - unfinishedSince;
    expect(halfMs).toBeGreaterThanOrEqual(1900);
    expect(halfMs).toBeLessThan(4000);
    expect(unfinishedMs).toBeGreaterThanOrEqual(1800);
    expect(unfinishedMs).toBeLessThan(4000);
    await waitFor(
      () => (milterd?.output().match(/idle: no command for 2000 ms; closing the connection/g) ?? []).length >= 2,
      'two idle lines',
    );
    // The abandoned message is no longer in flight: stopping does not wait for it.
    const stopStarted = performance.now();
    expect(await milterd.stop()).toBe(0);
    const stopMs = performance.now() - stopStarted;
    expect(milterd.output()).toMatch(/"inFlight":0,"msg":"stopping/);
    expect(stopMs).toBeLessThan(5000);
    milterd = undefined;
    console.log(
      `stalls, MilterIdleTimeout 2 s: half a packet closed after ${Math.round(halfMs)} ms, an unfinished message after ${Math.round(unfinishedMs)} ms; ` +
        `a transaction meanwhile took ${Math.round(meanwhile.ms)} ms; stop with nothing in flight took ${Math.round(stopMs)} ms`,
    );
  });
});

describe('1,000 idle connections', () => {
  let milterd: MilterdProcess | undefined;
  const clients: MilterClient[] = [];
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await milterd?.stop();
  });

  it('a transaction is still quick; the idle timeout closes them all; RSS stays bounded and descriptors return to baseline', async () => {
    const COUNT = 1000;
    const IDLE_S = 10; // long enough to open them all on a busy machine before the first ones go
    const started = await startSigning(IDLE_S);
    milterd = started.milterd;
    const { port } = started;
    const pid = milterd.pid;
    await good(port); // warm up: code paths, key, allocations
    await waitFor(() => (milterd?.output().match(/"msg":"signed"/g) ?? []).length === 1, 'warm-up logged');
    // The warm-up connection may take a moment to be gone: take the baseline once it is steady.
    let fdBase = fdCount(pid);
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const now = fdCount(pid);
      if (now === fdBase) break;
      fdBase = now;
    }
    const rss = sampleRss(pid, 100);
    const rssBase = rss.baseKiB;
    try {
      // Open them in batches of 100: every one negotiated, every other one also inside a message.
      const openStarted = performance.now();
      for (let batch = 0; batch < COUNT / 100; batch++) {
        const opened = await Promise.all(
          Array.from({ length: 100 }, async (_, i) => {
            const c = await MilterClient.open(`inet:${port}@127.0.0.1`);
            if (i % 2 === 0) {
              await c.connect({ hostname: 'localhost', family: 'inet', address: '127.0.0.1', port: 50000 + i });
              await c.mail('<joe@example.org>');
            }
            return c;
          }),
        );
        clients.push(...opened);
      }
      const openMs = performance.now() - openStarted;
      expect(clients).toHaveLength(COUNT);
      const fdOpen = fdCount(pid);
      expect(fdOpen).toBeGreaterThanOrEqual(fdBase + COUNT);
      const during = await good(port);
      expect(during.selectors).toEqual(['one']);
      expect(during.ms).toBeLessThan(1000);
      const rssOpen = rssKiB(pid);

      // All closed by the daemon (bounded: the timeout, plus the time it took to open them, plus slack).
      const closeStarted = performance.now();
      await Promise.race([
        Promise.all(clients.map((c) => c.whenClosed())),
        new Promise((r) => setTimeout(r, IDLE_S * 1000 + openMs + 10_000)),
      ]);
      const closeMs = performance.now() - closeStarted;
      expect(clients.filter((c) => !c.closed)).toHaveLength(0);
      await waitFor(() => fdCount(pid) <= fdBase, `descriptors back to ${fdBase} (now ${fdCount(pid)})`, 200, 50);
      const fdAfter = fdCount(pid);
      const idleLine = new RegExp(`idle: no command for ${IDLE_S * 1000} ms`, 'g');
      await waitFor(() => (milterd?.output().match(idleLine) ?? []).length >= COUNT, `${COUNT} idle lines`);
      const after = await good(port);
      expect(after.selectors).toEqual(['one']);
      rss.stop();
      const peakMiB = rss.peakMiB();
      expect(peakMiB).toBeLessThan(64);
      console.log(
        `1,000 idle connections (MilterIdleTimeout ${IDLE_S} s): opened in ${Math.round(openMs)} ms; a transaction meanwhile ${Math.round(during.ms)} ms; ` +
          `all closed by the daemon ${Math.round(closeMs)} ms after the last opened; fds ${fdBase} -> ${fdOpen} -> ${fdAfter}; ` +
          `RSS ${Math.round(rssBase / 1024)} MiB -> ${Math.round(rssOpen / 1024)} MiB with them open, peak +${peakMiB.toFixed(1)} MiB`,
      );
    } finally {
      rss.stop();
    }
  });
});
