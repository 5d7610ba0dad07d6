import { spawn } from 'node:child_process';
import { lstatSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '@inkan/testbed';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ACTIONS_ALL,
  ActionFlags,
  MAX_DATA_SIZE_256K,
  type MilterError,
  MilterClient,
  type MilterSession,
  ProtocolFlags,
  createMilterServer,
  encodeCommand,
  runTransaction,
} from '../src/index.js';
import { arbitraryCommand } from './arbitraries.js';
import { type RunningServer, startServer, text, until } from './helpers.js';

const P = ProtocolFlags;
let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});
function dir(): string {
  const d = tempDir('inkan-srv-');
  dirs.push(d);
  return d;
}

/** A group other than ours, from /etc/group (every Debian system has several). */
function otherGroup(): { name: string; gid: number } {
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid && Number(gid) !== process.getgid?.() && Number(gid) > 0) return { name, gid: Number(gid) };
  }
  throw new Error('no other group in /etc/group');
}

describe('unix sockets', () => {
  it('creates the socket with the requested mode and group, and removes it on close', async () => {
    const server = createMilterServer({ handler: () => ({}) });
    const d = dir();
    const group = otherGroup();
    const strict = await server.listen({ kind: 'unix', path: join(d, 'strict.sock'), mode: 0o600 });
    const shared = await server.listen({ kind: 'unix', path: join(d, 'shared.sock'), mode: 0o666 });
    expect(statSync(join(d, 'strict.sock')).mode & 0o777).toBe(0o600);
    expect(statSync(join(d, 'shared.sock')).mode & 0o777).toBe(0o666);
    expect(strict.address).toBe(`unix:${join(d, 'strict.sock')}`);
    if (process.getuid?.() === 0) {
      const grouped = await server.listen({ kind: 'unix', path: join(d, 'group.sock'), group: group.name });
      const st = statSync(join(d, 'group.sock'));
      expect(st.gid).toBe(group.gid);
      expect(st.mode & 0o777).toBe(0o660);
      expect(grouped.spec).toMatchObject({ kind: 'unix', group: group.name });
    }
    const client = await MilterClient.open(shared.spec);
    await client.quit();
    await server.close();
    expect(() => lstatSync(join(d, 'strict.sock'))).toThrow();
    expect(() => lstatSync(join(d, 'shared.sock'))).toThrow();
  });

  it('replaces a stale socket left by a dead process', async () => {
    const path = join(dir(), 'stale.sock');
    // a process that listens and is then killed leaves its socket file behind
    const child = spawn(
      process.execPath,
      ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise((resolve) => child.stdout?.once('data', resolve));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(lstatSync(path).isSocket()).toBe(true);
    const server = createMilterServer({ handler: () => ({}) });
    await server.listen({ kind: 'unix', path });
    const client = await MilterClient.open({ kind: 'unix', path });
    expect((await client.endOfMessage()).reply).toEqual({ type: 'continue' });
    await client.quit();
    await server.close();
  });

  it('refuses a socket a live process listens on, and files that are not sockets', async () => {
    const d = dir();
    const path = join(d, 'live.sock');
    const first = createMilterServer({ handler: () => ({}) });
    await first.listen(`unix:${path}`);
    const second = createMilterServer({ handler: () => ({}) });
    await expect(second.listen(`unix:${path}`)).rejects.toThrow(`listen: unix:${path} is in use by a running process`);
    // the live one still works
    const client = await MilterClient.open(`unix:${path}`);
    await client.quit();
    await first.close();
    const file = join(d, 'file');
    writeFileSync(file, 'data');
    await expect(second.listen(`local:${file}`)).rejects.toThrow(/exists and is not a socket/);
    expect(readFileSync(file, 'utf8')).toBe('data');
    await expect(second.listen({ kind: 'unix', path: join(d, 'x.sock'), group: 'no-such-group-inkan' })).rejects.toThrow(/unknown group/);
    await second.close();
  });
});

describe('TCP sockets', () => {
  it('listens on 127.0.0.1 and ::1 with OS-chosen ports', async () => {
    const server = createMilterServer({ handler: () => ({ endOfMessage: () => 'accept' }) });
    const v4 = await server.listen('inet:0@127.0.0.1');
    expect(v4.spec).toMatchObject({ kind: 'inet', host: '127.0.0.1' });
    expect((v4.spec as { port: number }).port).toBeGreaterThan(0);
    const r = await runTransaction(v4.address, { sender: 'a@x', recipients: ['b@y'], message: 'S: 1\r\n\r\nb\r\n' });
    expect(r.outcome.reply).toEqual({ type: 'accept' });
    let v6ok = true;
    const v6 = await server.listen('inet6:0@::1').catch(() => {
      v6ok = false; // no IPv6 loopback on this machine
      return undefined;
    });
    if (v6ok && v6) {
      expect(v6.address).toMatch(/^inet6:\d+@::1$/);
      const r6 = await runTransaction(v6.spec, { sender: 'a@x', recipients: ['b@y'], message: 'S: 1\r\n\r\nb\r\n' });
      expect(r6.outcome.reply).toEqual({ type: 'accept' });
    }
    await server.close();
    await expect(server.listen('inet:0@127.0.0.1')).rejects.toThrow(/^listen: the server is closed/);
  });

  it('over TCP asks for no reply only to header fields, and does not skip DATA (Nagle on the MTA side)', async () => {
    // The handler lacks connect, helo, rcpt and data, so the session would derive NR_* and NODATA for them.
    const options = {
      handler: () => ({ mail: () => undefined, header: () => undefined, body: () => undefined, endOfMessage: () => 'accept' as const }),
      protocol: P.NoReplyMail | P.NoReplyHeader | P.NoReplyBody,
    };
    const agreed: Record<string, number> = {};
    for (const kind of ['unix', 'inet'] as const) {
      const s = await startServer(options, kind);
      try {
        const client = await MilterClient.open(s.spec);
        agreed[kind] = client.options.protocol;
        await client.quit();
      } finally {
        await s.close();
      }
    }
    const noReply = P.NoReplyConnect | P.NoReplyHelo | P.NoReplyMail | P.NoReplyRcpt | P.NoReplyBody;
    expect((agreed.unix as number) & noReply).toBe(noReply);
    expect((agreed.unix as number) & P.NoData).toBe(P.NoData);
    expect((agreed.inet as number) & (noReply | P.NoData)).toBe(0);
    expect((agreed.inet as number) & P.NoReplyHeader).toBe(P.NoReplyHeader);
  });
});

describe('robustness', () => {
  let s: RunningServer;
  const good = { sender: 'alice@example.org', recipients: ['bob@example.net'], message: 'Subject: hello\r\n\r\nbody\r\n' };
  beforeAll(async () => {
    s = await startServer({
      actions: ActionFlags.AddHeaders,
      protocol: P.HeaderLeadingSpace,
      maxPacketSize: 256 * 1024,
      handler: () => ({
        rcpt: (r) => (r.address === 'refused@example.net' ? 'reject' : 'continue'),
        header() {},
        body() {},
        endOfMessage(m) {
          m.addHeader('X-Checked', ' yes');
          return 'continue';
        },
      }),
    });
  });
  afterAll(async () => {
    await s.close();
  });

  /** Garbage: random bytes, random framed packets, or valid commands in a senseless order. */
  const garbage = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 2000 }).map((a) => Buffer.from(a)),
    fc
      .array(fc.record({ code: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: 300 }) }), {
        minLength: 1,
        maxLength: 20,
      })
      .map((packets) =>
        Buffer.concat([
          encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff }),
          ...packets.map((p) => {
            const out = Buffer.alloc(5 + p.payload.length);
            out.writeUInt32BE(p.payload.length + 1, 0);
            out[4] = p.code;
            Buffer.from(p.payload).copy(out, 5);
            return out;
          }),
        ]),
      ),
    fc.array(arbitraryCommand, { minLength: 1, maxLength: 30 }).map((commands) => Buffer.concat(commands.map(encodeCommand))),
  );

  it('property: garbage on one connection never throws out of the server nor disturbs another connection', async () => {
    await fc.assert(
      fc.asyncProperty(garbage, fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }), async (bytes, sizes) => {
        const path = (s.spec as { path: string }).path;
        const socket: Socket = connect(path);
        socket.on('error', () => {});
        socket.on('data', () => {});
        const closed = new Promise((r) => socket.once('close', r));
        await new Promise((r) => socket.once('connect', r));
        // write the garbage in random fragments while a proper transaction runs beside it
        const writing = (async () => {
          let offset = 0;
          let i = 0;
          while (offset < bytes.length && !socket.destroyed) {
            const n = sizes[i++ % sizes.length] as number;
            socket.write(bytes.subarray(offset, offset + n));
            offset += n;
            await new Promise((r) => setImmediate(r));
          }
        })();
        const result = await runTransaction(s.spec, good);
        await writing;
        expect(result.outcome.reply).toEqual({ type: 'continue' });
        expect(result.endOfMessage?.modifications.map((m) => (m.type === 'addHeader' ? `${m.name}:${text(m.value)}` : m.type))).toEqual([
          'X-Checked: yes',
        ]);
        socket.destroy();
        await closed;
      }),
      { numRuns: 60 },
    );
    await until(() => s.server.sessionCount === 0, 'every session closed');
    // the server still serves
    expect((await runTransaction(s.spec, good)).outcome.reply).toEqual({ type: 'continue' });
    // every reported error is a stage-prefixed MilterError
    for (const e of s.errors) expect(e.message).toMatch(/^[a-zA-Z-]+: /);
    expect(s.errors.length).toBeGreaterThan(0);
  });

  it('reports a packet over the length cap and closes only that connection', async () => {
    const before = s.errors.length;
    const socket = connect((s.spec as { path: string }).path);
    socket.on('error', () => {});
    socket.write(Buffer.from('7fffffff', 'hex'));
    await new Promise((r) => socket.once('close', r));
    expect(s.errors.slice(before).map((e: MilterError) => e.message)).toEqual([
      'decode: packet length 2147483647 exceeds the limit of 262144 bytes',
    ]);
    expect((await runTransaction(s.spec, good)).outcome.reply).toEqual({ type: 'continue' });
  });

  it('serves many connections at once', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        runTransaction(s.spec, { ...good, recipients: [i % 2 ? 'refused@example.net' : 'bob@example.net', 'bob@example.net'] }),
      ),
    );
    for (const [i, r] of results.entries()) {
      expect(r.outcome.reply).toEqual({ type: 'continue' });
      expect(r.rejectedRecipients).toEqual(i % 2 ? ['refused@example.net'] : []);
    }
  });
});

describe('backpressure', () => {
  it('a slow body handler slows the reader; chunks arrive in order', async () => {
    let open: () => void = () => {};
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const seen: number[] = [];
    let session: MilterSession | undefined;
    const s = await startServer({
      protocol: P.NoReplyBody,
      handler: () => ({
        async body(chunk) {
          seen.push(chunk.readUInt32BE(0));
          if (seen.length === 1) await gate;
        },
        endOfMessage: () => 'accept',
      }),
    });
    s.server.on('session', (x) => {
      session = x;
    });
    try {
      const socket = connect((s.spec as { path: string }).path);
      await new Promise((r) => socket.once('connect', r));
      const client = await MilterClient.over(socket);
      expect(client.options.protocol & P.NoReplyBody).toBe(P.NoReplyBody);
      await client.mail('<a@example.org>');
      const chunks = 480; // 480 x 64 KiB = 30 MiB
      for (let i = 0; i < chunks; i++) {
        const chunk = Buffer.alloc(65535, 0x2e);
        chunk.writeUInt32BE(i, 0);
        expect(await client.body(chunk)).toBeUndefined(); // no reply expected: all written at once
      }
      await until(() => seen.length === 1, 'first chunk in the handler');
      // The handler is stuck on chunk 0. The server stops reading, so the kernel buffers fill
      // and the client's own write buffer keeps most of the 30 MiB.
      await until(() => socket.writableLength > 20 * 1024 * 1024, 'client write buffer to back up', 1000);
      const received = session?.bytesReceived ?? 0;
      expect(received).toBeLessThan(8 * 1024 * 1024);
      expect(session?.queuedPackets ?? 0).toBeLessThan(200);
      open();
      const eom = await client.endOfMessage();
      expect(eom.reply).toEqual({ type: 'accept' });
      expect(seen).toEqual(Array.from({ length: chunks }, (_, i) => i));
      await client.quit();
    } finally {
      open();
      await s.close();
    }
  });
});

describe('protocol versions end to end', () => {
  const events: string[] = [];
  let s: RunningServer;
  beforeAll(async () => {
    s = await startServer({
      actions: ACTIONS_ALL,
      protocol: P.Skip | P.HeaderLeadingSpace | P.MaxDataSize256K,
      macros: { mail: ['i'] },
      handler: (ctx) => ({
        connect: () => void events.push(`v${ctx.options.version} connect`),
        helo: () => void events.push(`v${ctx.options.version} helo`),
        mail: () => void events.push(`v${ctx.options.version} mail`),
        rcpt: () => void events.push(`v${ctx.options.version} rcpt`),
        data: () => void events.push(`v${ctx.options.version} data`),
        unknown: () => void events.push(`v${ctx.options.version} unknown`),
        header: () => void events.push(`v${ctx.options.version} header`),
        endOfHeaders: () => void events.push(`v${ctx.options.version} eoh`),
        body: (chunk) => void events.push(`v${ctx.options.version} body ${chunk.length}`),
        endOfMessage(m) {
          events.push(`v${ctx.options.version} eom`);
          m.addHeader('X-Version', ` ${ctx.options.version}`);
          if (ctx.options.version >= 6) m.changeFrom('<v6@example.org>');
          else {
            try {
              m.changeFrom('<old@example.org>');
            } catch (error) {
              events.push(`v${ctx.options.version} ${(error as Error).message.replace(/, which.*/, '')}`);
            }
          }
          m.replaceBody(Buffer.alloc(300_000, 0x41));
          return 'continue';
        },
      }),
    });
  });
  afterAll(async () => {
    await s.close();
  });

  async function drive(version: number, extraOffer = 0) {
    events.length = 0;
    const base = { 2: 0x7f, 3: 0x17f, 4: 0x37f, 6: 0x1fffff }[version] as number;
    const client = await MilterClient.open(s.spec, { version, protocol: base | extraOffer });
    await client.connect({ hostname: 'h' });
    await client.helo('h');
    await client.mail('<a@example.org>');
    await client.rcpt('<b@example.net>');
    await client.data();
    await client.unknown('FOO');
    await client.header('Subject', ' s');
    await client.endOfHeaders();
    await client.body(Buffer.alloc(300_000, 0x42));
    const eom = await client.endOfMessage();
    await client.quit();
    return { options: client.options, eom };
  }

  it.each([2, 3, 4])('version %i: only the events and actions that version has', async (version) => {
    const { options, eom } = await drive(version);
    expect(options.version).toBe(version);
    expect(options.actions).toBe(0x3f);
    expect(options.macros).toEqual([]);
    const expected = [`v${version} connect`, `v${version} helo`, `v${version} mail`, `v${version} rcpt`];
    if (version >= 4) expected.push(`v${version} data`);
    if (version >= 3) expected.push(`v${version} unknown`);
    expected.push(`v${version} header`, `v${version} eoh`, ...[65535, 65535, 65535, 65535, 37860].map((n) => `v${version} body ${n}`));
    expected.push(`v${version} eom`, `v${version} endOfMessage: changeFrom needs SMFIF_CHGFROM`);
    expect(events).toEqual(expected);
    expect(eom.modifications.map((m) => m.type)).toEqual([
      'addHeader',
      'replaceBody',
      'replaceBody',
      'replaceBody',
      'replaceBody',
      'replaceBody',
    ]);
  });

  it('version 6 with sendmail-style MDS_256K: larger packets both ways, macro lists', async () => {
    const { options, eom } = await drive(6, P.MaxDataSize256K);
    expect(options.version).toBe(6);
    expect(options.maxDataSize).toBe(MAX_DATA_SIZE_256K);
    expect(options.macros).toEqual([{ stage: 2, names: 'i' }]);
    expect(events.filter((e) => e.includes('body'))).toEqual(['v6 body 262143', 'v6 body 37857']);
    expect(eom.modifications.map((m) => (m.type === 'replaceBody' ? m.chunk.length : m.type))).toEqual([
      'addHeader',
      'changeFrom',
      262143,
      37857,
    ]);
  });

  it('a filter limited to version 2 talks version 2 to a version 6 MTA', async () => {
    const s2 = await startServer({ maxVersion: 2, protocol: P.NoReplyHeader, handler: () => ({ header() {} }) });
    const client = await MilterClient.open(s2.spec);
    expect(client.options.version).toBe(2);
    expect(client.options.protocol & P.NoReplyHeader).toBe(P.NoReplyHeader);
    expect(await client.header('A', 'b')).toBeUndefined();
    expect((await client.endOfMessage()).reply).toEqual({ type: 'continue' });
    await client.quit();
    await s2.close();
  });
});

describe('closing the server', () => {
  it('lets running sessions finish within the grace period, then closes the rest', async () => {
    const events: string[] = [];
    const s = await startServer({ handler: () => ({ close: () => void events.push('close') }) });
    const finishing = await MilterClient.open(s.spec);
    const lingering = await MilterClient.open(s.spec);
    const closing = s.server.close({ graceMs: 60_000 });
    await finishing.quit();
    expect(events).toEqual(['close']);
    lingering.destroy();
    await closing;
    expect(events).toEqual(['close', 'close']);
    await s.close();
  });

  it('closes open sessions at once without a grace period; handlers still get close', async () => {
    const events: string[] = [];
    const s = await startServer({
      handler: () => ({ mail: () => 'continue', abort: () => void events.push('abort'), close: () => void events.push('close') }),
    });
    const client = await MilterClient.open(s.spec);
    expect(await client.mail('<a@example.org>')).toEqual({ type: 'continue' }); // a message is open
    await s.server.close();
    await client.whenClosed();
    expect(events).toEqual(['abort', 'close']);
    await s.close();
  });
});
