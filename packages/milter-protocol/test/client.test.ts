import { rmSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '@inkan/testbed';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type MilterCommand,
  MilterClient,
  type MilterResponse,
  PacketDecoder,
  type SocketSpec,
  decodeCommand,
  encodeResponse,
  runTransaction,
} from '../src/index.js';

/** A fake filter that answers each command with whatever `script` returns (nothing: no reply). */
async function fakeFilter(
  script: (command: MilterCommand, socket: Socket) => MilterResponse[] | undefined,
): Promise<{ spec: SocketSpec; seen: MilterCommand[]; close: () => Promise<void> }> {
  const dir = tempDir('inkan-fake-');
  const path = join(dir, 'fake.sock');
  const seen: MilterCommand[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const decoder = new PacketDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const packet of decoder.push(chunk)) {
        const command = decodeCommand(packet);
        seen.push(command);
        if (command.type === 'quit') {
          socket.end();
          return;
        }
        const replies = script(command, socket);
        if (replies && replies.length > 0) socket.write(Buffer.concat(replies.map(encodeResponse)));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    spec: { kind: 'unix', path },
    seen,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const ok = (version = 6, actions = 0x1ff, protocol = 0): MilterResponse => ({ type: 'negotiate', version, actions, protocol, macros: [] });
const cont: MilterResponse = { type: 'continue' };

let fakes: Array<{ close: () => Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(fakes.map((f) => f.close()));
  fakes = [];
});
async function fake(script: Parameters<typeof fakeFilter>[0]) {
  const f = await fakeFilter(script);
  fakes.push(f);
  return f;
}

describe('MilterClient against scripted filters', () => {
  it('offers what Postfix offers and reads progress anywhere, as Postfix does', async () => {
    const f = await fake((c) => {
      if (c.type === 'negotiate') return [ok()];
      if (c.type === 'mail') return [{ type: 'progress' }, { type: 'progress' }, cont];
      if (c.type === 'endOfMessage')
        return [{ type: 'progress' }, { type: 'addHeader', name: 'X', value: Buffer.from(' y') }, { type: 'accept' }];
      return [cont];
    });
    const client = await MilterClient.open(f.spec);
    expect(f.seen[0]).toEqual({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff });
    expect(await client.mail('<a@example.org>')).toEqual(cont);
    expect(client.progressCount).toBe(2);
    const eom = await client.endOfMessage();
    expect(eom.progress).toBe(1);
    expect(eom.reply).toEqual({ type: 'accept' });
    await client.quit();
  });

  it('offers the masks of older versions', async () => {
    for (const [version, protocol, actions] of [
      [2, 0x7f, 0x3f],
      [3, 0x17f, 0x3f],
      [4, 0x37f, 0x3f],
    ] as const) {
      const f = await fake((c) => (c.type === 'negotiate' ? [ok(version, 1, 0)] : [cont]));
      const client = await MilterClient.open(f.spec, { version });
      expect(f.seen[0]).toEqual({ type: 'negotiate', version, actions, protocol });
      expect(client.options.version).toBe(version);
      // events the version lacks are not sent
      expect(await client.data()).toEqual(version >= 4 ? { type: 'continue' } : undefined);
      await client.quit();
      expect(f.seen.some((c) => c.type === 'data')).toBe(version >= 4);
    }
  });

  it('refuses a filter that claims a higher version or actions that were not offered', async () => {
    const high = await fake(() => [ok(6)]);
    await expect(MilterClient.open(high.spec, { version: 4 })).rejects.toThrow(
      /^negotiate: filter protocol version 6 conflicts with MTA protocol version 4/,
    );
    const greedy = await fake(() => [ok(6, 0x1ff)]);
    await expect(MilterClient.open(greedy.spec, { actions: 0x3f })).rejects.toThrow(
      /SMFIF_CHGFROM\|SMFIF_ADDRCPT_PAR\|SMFIF_SETSYMLIST that the MTA did not offer/,
    );
    const wrong = await fake(() => [cont]);
    await expect(MilterClient.open(wrong.spec)).rejects.toThrow(/^negotiate: expected the negotiation reply, got continue/);
  });

  it('reports protocol violations by the filter with the stage', async () => {
    const f = await fake((c) => {
      if (c.type === 'negotiate') return [ok(6, 0x1)];
      if (c.type === 'mail') return [{ type: 'addHeader', name: 'X', value: Buffer.from('y') }];
      if (c.type === 'rcpt') return [{ type: 'skip' }];
      if (c.type === 'endOfMessage') return [{ type: 'replaceBody', chunk: Buffer.from('x') }, cont];
      return [cont];
    });
    const client = await MilterClient.open(f.spec);
    await expect(client.mail('<a@x>')).rejects.toThrow(/^mail: unexpected addHeader response \(only allowed at end of message\)/);
    await expect(client.rcpt('<b@x>')).rejects.toThrow(/^rcpt: skip is only allowed in reply to a body chunk/);
    await expect(client.endOfMessage()).rejects.toThrow(/^endOfMessage: filter sent replaceBody without having negotiated SMFIF_CHGBODY/);
    client.destroy();
  });

  it('times out and notices a filter that goes away, naming the stage', async () => {
    const silent = await fake((c) => (c.type === 'negotiate' ? [ok()] : undefined));
    const client = await MilterClient.open(silent.spec, { timeoutMs: 50 });
    await expect(client.helo('h')).rejects.toThrow(/^helo: no reply from the filter within 50 ms/);
    client.destroy();
    const leaving = await fake((c, socket) => {
      if (c.type === 'negotiate') return [ok()];
      socket.destroy();
      return undefined;
    });
    const c2 = await MilterClient.open(leaving.spec);
    await expect(c2.rcpt('<b@x>')).rejects.toThrow(/^rcpt: the filter closed the connection/);
  });

  it('runTransaction stops where the filter decides and aborts the message', async () => {
    const f = await fake((c) => {
      if (c.type === 'negotiate') return [ok()];
      if (c.type === 'mail') return [{ type: 'replyCode', text: '550 5.7.1 sender refused' }];
      return [cont];
    });
    const r = await runTransaction(f.spec, { sender: 'bad@example.org', recipients: ['x@example.net'], message: 'S: x\r\n\r\nb\r\n' });
    expect(r.outcome).toEqual({ stage: 'mail', reply: { type: 'replyCode', text: '550 5.7.1 sender refused' } });
    expect(r.endOfMessage).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(f.seen.map((c) => c.type)).toEqual(['negotiate', 'connect', 'helo', 'mail', 'abort', 'quit']);
  });

  it('runTransaction gives up when every recipient is refused, and sends macros before their commands', async () => {
    const f = await fake((c) => {
      if (c.type === 'negotiate') return [ok()];
      if (c.type === 'rcpt') return [{ type: 'reject' }];
      return c.type === 'macro' ? undefined : [cont];
    });
    const r = await runTransaction(f.spec, {
      sender: '<a@example.org>',
      recipients: ['x@example.net', { address: 'y@example.net', args: ['NOTIFY=NEVER'] }],
      message: 'S: x\r\n\r\nb\r\n',
      macros: { M: { i: 'Q9' }, R: { '{rcpt_addr}': 'x' } },
    });
    expect(r.outcome.stage).toBe('rcpt');
    expect(r.rejectedRecipients).toEqual(['x@example.net', 'y@example.net']);
    expect(f.seen.map((c) => (c.type === 'macro' ? `D${c.command}` : c.type))).toEqual([
      'negotiate',
      'connect',
      'helo',
      'DM',
      'mail',
      'DR',
      'rcpt',
      'DR',
      'rcpt',
      'abort',
      'quit',
    ]);
    expect(f.seen.find((c) => c.type === 'mail')).toEqual({ type: 'mail', sender: '<a@example.org>', args: [] });
    expect(f.seen.filter((c) => c.type === 'rcpt')[1]).toEqual({ type: 'rcpt', recipient: '<y@example.net>', args: ['NOTIFY=NEVER'] });
  });
});
