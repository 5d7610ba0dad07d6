/**
 * Limits against hostile peers: the decoder's memory, the shared buffered-bytes budget,
 * maxConnections, a unix socket swapped for a symbolic link right after bind, and header
 * fields a filter must not be able to send.
 */
import { chmodSync, lstatSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '@inkan/testbed';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ACTIONS_ALL,
  type BudgetHolder,
  BufferBudget,
  MilterClient,
  MilterHeaderError,
  Modifier,
  type NegotiatedOptions,
  PacketDecoder,
  encodeCommand,
  encodePacket,
  listenUnix,
  runTransaction,
} from '../src/index.js';
import { type RunningServer, startServer, until } from './helpers.js';

let dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** The length prefix of a packet announcing `length` bytes (code byte included). */
function prefix(length: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length);
  return b;
}

describe('PacketDecoder memory', () => {
  it('allocates nothing for the announced length before the bytes arrive', () => {
    const sizes: number[] = [];
    for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const) {
      const original = Buffer[name].bind(Buffer) as (n: number) => Buffer;
      vi.spyOn(Buffer, name).mockImplementation(((n: number) => {
        sizes.push(n);
        return original(n);
      }) as never);
    }
    const decoder = new PacketDecoder({ maxPacketSize: 8 * 1024 * 1024 });
    expect(decoder.push(prefix(4 * 1024 * 1024))).toEqual([]);
    for (let i = 0; i < 100; i++) expect(decoder.push(Buffer.from([0x42, 1, 2]))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(300);
    expect(Math.max(0, ...sizes)).toBeLessThanOrEqual(16 * 1024);
  });

  it('gathers a packet that trickles in a byte at a time into a few blocks, and decodes it intact', () => {
    const payload = Buffer.alloc(100_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const wire = Buffer.concat([encodePacket(0x42, payload), encodeCommand({ type: 'abort' })]);
    const decoder = new PacketDecoder();
    const chunksHeld = () => (decoder as unknown as { chunks: Buffer[] }).chunks.length;
    let most = 0;
    const packets = [];
    for (let i = 0; i < wire.length; i++) {
      packets.push(...decoder.push(wire.subarray(i, i + 1)));
      most = Math.max(most, chunksHeld());
    }
    // 100,000 one-byte reads, held in blocks of 16 KiB
    expect(most).toBeLessThanOrEqual(8);
    expect(packets.map((p) => p.code)).toEqual([0x42, 0x41]);
    expect(packets[0]?.payload.equals(payload)).toBe(true);
    expect(decoder.hasPartialPacket).toBe(false);
  });

  it('payloads handed out stay intact while the block they share goes on filling', () => {
    const decoder = new PacketDecoder();
    const a = encodeCommand({ type: 'helo', hostname: 'first.example' });
    const b = encodeCommand({ type: 'helo', hostname: 'second.example' });
    const wire = Buffer.concat([a, b, a]);
    const out = [];
    // two-byte reads: leftovers gathered into a block, completed packets are views of it
    for (let i = 0; i < wire.length; i += 2) out.push(...decoder.push(Buffer.from(wire.subarray(i, i + 2))));
    expect(out.map((p) => p.payload.toString('latin1'))).toEqual(['first.example\0', 'second.example\0', 'first.example\0']);
  });
});

describe('BufferBudget', () => {
  function holder(budget: BufferBudget, evicted: string[], name: string): BudgetHolder {
    const h: BudgetHolder = {
      evict: () => {
        evicted.push(name);
        budget.release(h);
      },
    };
    return h;
  }

  it('evicts the largest holder first; refuses the claimant when it holds the most', () => {
    const budget = new BufferBudget(1000);
    const evicted: string[] = [];
    const [small, big, other] = ['small', 'big', 'other'].map((n) => holder(budget, evicted, n)) as [
      BudgetHolder,
      BudgetHolder,
      BudgetHolder,
    ];
    expect(budget.claim(small, 100)).toBe(true);
    expect(budget.claim(big, 700)).toBe(true);
    expect(budget.used).toBe(800);
    // 'other' needs 300: 'big' holds the most and goes
    expect(budget.claim(other, 300)).toBe(true);
    expect(evicted).toEqual(['big']);
    expect(budget.used).toBe(400);
    // 'other' grows to 950: it holds the most itself, so its claim is refused
    expect(budget.claim(other, 950)).toBe(false);
    expect(evicted).toEqual(['big']);
    expect(budget.used).toBe(100);
    expect(budget.holders).toBe(1);
    budget.release(small);
    expect(budget.used).toBe(0);
    expect(() => new BufferBudget(0)).toThrow(RangeError);
  });
});

describe('server limits', () => {
  let s: RunningServer | undefined;
  const raws: Socket[] = [];
  afterEach(async () => {
    for (const r of raws.splice(0)) r.destroy();
    await s?.close();
    s = undefined;
  });

  function raw(path: string): Promise<{ socket: Socket; closed: Promise<void> }> {
    const socket = connect(path);
    raws.push(socket);
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve({ socket, closed }));
      socket.once('error', reject);
    });
  }

  const good = { sender: 'a@example.org', recipients: ['b@example.net'], message: 'Subject: x\r\n\r\nbody\r\n' };

  it('maxConnections: connections past it are closed at once, logged once per burst; the open ones go on', async () => {
    s = await startServer({ maxConnections: 2, handler: () => ({ endOfMessage: () => 'accept' as const }) });
    const path = (s.spec as { path: string }).path;
    const first = await MilterClient.open(s.spec);
    const second = await MilterClient.open(s.spec);
    await first.connect({ hostname: 'h', family: 'inet', address: '192.0.2.1', port: 1 });
    const extra = await Promise.all(Array.from({ length: 10 }, () => raw(path)));
    await Promise.all(extra.map((e) => e.closed));
    expect(s.server.sessionCount).toBe(2);
    const refusals = s.logs.filter((l) => l.includes('connections are open, the maximum'));
    expect(refusals).toEqual(['warn refused a connection from the unix socket: 2 connections are open, the maximum']);
    await first.mail('<a@example.org>');
    await first.rcpt('<b@example.net>');
    await first.header('Subject', 'x');
    expect((await first.endOfMessage()).reply).toEqual({ type: 'accept' });
    await first.quit();
    await second.quit();
    await until(() => s?.server.sessionCount === 0, 'both sessions gone');
    expect((await runTransaction(s.spec, good)).endOfMessage?.reply).toEqual({ type: 'accept' });
  });

  it('maxBufferedBytes: connections holding big partial packets are closed, largest first; a small one and new transactions go on', async () => {
    const limit = 1024 * 1024;
    s = await startServer({
      maxBufferedBytes: limit,
      maxPacketSize: 2 * 1024 * 1024,
      handler: () => ({ endOfMessage: () => 'accept' as const }),
    });
    const path = (s.spec as { path: string }).path;
    // A message in progress, half a header packet sent.
    const modest = await raw(path);
    modest.socket.write(encodeCommand({ type: 'negotiate', version: 6, actions: ACTIONS_ALL, protocol: 0 }));
    const header = encodeCommand({ type: 'header', name: 'Subject', value: Buffer.alloc(2000, 0x61) });
    modest.socket.write(header.subarray(0, 1000));
    // Six hostile connections, each announcing 1.5 MiB and sending 400 KiB of it.
    const hostile = await Promise.all(Array.from({ length: 6 }, () => raw(path)));
    for (const h of hostile) {
      h.socket.write(prefix(1536 * 1024));
      h.socket.write(Buffer.alloc(400 * 1024, 0x42));
    }
    await until(() => s?.logs.filter((l) => l.includes('buffered bytes:')).length === 4, 'four connections closed for the budget');
    expect(s.server.bufferedBytes).toBeLessThanOrEqual(limit);
    expect(s.logs.find((l) => l.includes('buffered bytes:'))).toMatch(
      /^warn buffered bytes: all connections together would hold over 1048576 bytes; this one holds the most \(\d+ bytes\); closing the connection$/,
    );
    // the modest connection is still there
    expect(s.server.sessionCount).toBe(3);
    modest.socket.write(header.subarray(1000));
    expect((await runTransaction(s.spec, good)).endOfMessage?.reply).toEqual({ type: 'accept' });
  });
});

describe('a unix socket swapped for a symbolic link right after bind', () => {
  it('never changes the mode or group of the link target', async () => {
    const d = tempDir('inkan-swap-');
    dirs.push(d);
    const target = join(d, 'precious');
    writeFileSync(target, 'keep me\n');
    chmodSync(target, 0o644);
    const before = lstatSync(target);
    const path = join(d, 'milter.sock');
    const server = createServer();
    // Runs inside the 'listening' emit, before anything listenUnix does after bind.
    server.once('listening', () => {
      unlinkSync(path);
      symlinkSync(target, path);
    });
    const gid = process.getuid?.() === 0 ? 12345 : undefined;
    await expect(listenUnix(server, path, 0o600, gid)).rejects.toThrow(/was replaced right after binding it/);
    const after = lstatSync(target);
    expect(after.mode).toBe(before.mode);
    expect(after.gid).toBe(before.gid);
    expect(readFileSync(target, 'utf8')).toBe('keep me\n');
    expect(server.listening).toBe(false);
  });

  it('creates the socket with its mode and group in place (umask and effective group at bind)', async () => {
    const d = tempDir('inkan-bind-');
    dirs.push(d);
    chmodSync(d, 0o777); // a directory anyone can write to: nothing is done by name in it
    const server = createServer();
    const path = join(d, 'milter.sock');
    const gid = process.getuid?.() === 0 ? 12345 : undefined;
    const egid = process.getegid?.();
    const umask = process.umask();
    const inode = await listenUnix(server, path, 0o620, gid);
    const st = lstatSync(path);
    expect(st.ino).toBe(inode);
    expect(st.mode & 0o777).toBe(0o620);
    if (gid !== undefined) expect(st.gid).toBe(gid);
    expect(process.getegid?.()).toBe(egid);
    expect(process.umask()).toBe(umask);
    await new Promise((r) => server.close(r));
  });
});

describe('Modifier header checks', () => {
  const options: NegotiatedOptions = {
    version: 6,
    actions: ACTIONS_ALL,
    protocol: 0,
    macros: [],
    offer: { version: 6, actions: ACTIONS_ALL, protocol: 0 },
    maxDataSize: 65535,
  };

  it('refuses values with NUL, a bare CR or a line break that is not a fold, at the call', () => {
    const m = new Modifier(options);
    const bad: [string, RegExp][] = [
      [' a\0b', /contains a NUL byte/],
      [' a\rb', /contains a CR that is not part of a CRLF line break/],
      [' a\r', /contains a CR that is not part of a CRLF line break/],
      [' a\nb', /line break not followed by a space or tab/],
      [' a\r\nBcc: x@evil.example', /line break not followed by a space or tab \(it would start a new header field\)/],
      [' a\n', /line break not followed by a space or tab/],
      [' a\r\n', /line break not followed by a space or tab/],
      [' a\n\nbody', /line break not followed by a space or tab/],
    ];
    for (const [value, why] of bad) {
      for (const call of [() => m.addHeader('X-T', value), () => m.insertHeader(0, 'X-T', value), () => m.changeHeader('X-T', 1, value)]) {
        let thrown: unknown;
        try {
          call();
        } catch (error) {
          thrown = error;
        }
        expect(thrown, JSON.stringify(value)).toBeInstanceOf(MilterHeaderError);
        expect((thrown as MilterHeaderError).message).toMatch(/^endOfMessage: (addHeader|insertHeader|changeHeader): the value of X-T /);
        expect((thrown as MilterHeaderError).message).toMatch(why);
        expect((thrown as MilterHeaderError).field).toBe('X-T');
      }
    }
    expect(m.modifications).toEqual([]);
    // folds (CRLF or LF followed by white space), 8-bit bytes, and empty values are fine
    m.addHeader('X-Fold', ' a\r\n\tb\n c');
    m.insertHeader(0, 'X-Utf8', Buffer.from(' café', 'utf8'));
    m.changeHeader('X-Empty', 1, '');
    m.deleteHeader('X-Gone', 1);
    expect(m.modifications.map((x) => ('value' in x ? x.value.toString('latin1') : x.type))).toEqual([
      ' a\n\tb\n c',
      Buffer.from(' café').toString('latin1'),
      '',
      '',
    ]);
  });

  it('refuses names with a colon, space, control characters, 8-bit characters or nothing', () => {
    const m = new Modifier(options);
    for (const name of ['X-A:B', 'X A', 'X\tA', 'X\0A', 'X\nA', '', 'Ünicode', 'X\x7f']) {
      for (const call of [() => m.addHeader(name, ' v'), () => m.insertHeader(0, name, ' v'), () => m.changeHeader(name, 1, ' v')]) {
        expect(call, JSON.stringify(name)).toThrow(MilterHeaderError);
        expect(call).toThrow(/is not a valid header field name \(printable US-ASCII without space or colon\)/);
      }
    }
    expect(m.modifications).toEqual([]);
  });

  it("a handler's own try/catch sees the refusal and the message goes on as it decides", async () => {
    const seen: string[] = [];
    const s = await startServer({
      actions: ACTIONS_ALL,
      handler: () => ({
        endOfMessage(m) {
          try {
            m.insertHeader(0, 'X-Injected', ' a\r\nBcc: victim@example.net');
          } catch (error) {
            seen.push((error as Error).name);
            m.addHeader('X-Fallback', ' yes');
          }
          return 'accept' as const;
        },
      }),
    });
    try {
      const r = await runTransaction(s.spec, {
        sender: 'a@example.org',
        recipients: ['b@example.net'],
        message: 'Subject: x\r\n\r\nbody\r\n',
      });
      expect(seen).toEqual(['MilterHeaderError']);
      expect(r.endOfMessage?.reply).toEqual({ type: 'accept' });
      expect(r.endOfMessage?.modifications.map((x) => ('name' in x ? x.name : x.type))).toEqual(['X-Fallback']);
    } finally {
      await s.close();
    }
  });
});
