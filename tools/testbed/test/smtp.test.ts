/** The testbed's SMTP client against its SMTP sink, both real, on loopback: the bytes arrive as sent. */
import { Buffer } from 'node:buffer';
import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { dotStuff, sendSmtp, SmtpSession, type SmtpSink, startSmtpSink, toCrlf } from '../src/index.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** A TCP server of the test's own on 127.0.0.1 (stopped after the test, its connections closed); its port. */
async function server(onConnection: (socket: Socket) => void): Promise<number> {
  const held = new Set<Socket>();
  const s = createServer((socket) => {
    held.add(socket);
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  stops.push(async () => {
    for (const socket of held) socket.destroy();
    await new Promise<void>((r) => s.close(() => r()));
  });
  const address = s.address();
  return typeof address === 'object' && address ? address.port : 0;
}

async function sink(options: Parameters<typeof startSmtpSink>[0] = {}): Promise<SmtpSink> {
  const s = await startSmtpSink(options);
  stops.push(() => s.stop());
  return s;
}

describe('toCrlf and dotStuff', () => {
  it('a bare LF gets its CR; a CR alone and CRLF stay', () => {
    expect(toCrlf(b('a\nb\r\nc\rd\n')).toString('latin1')).toBe('a\r\nb\r\nc\rd\r\n');
    expect(toCrlf(b('\n\n')).toString('latin1')).toBe('\r\n\r\n');
    const crlf = b('x\r\n');
    expect(toCrlf(crlf)).toBe(crlf);
  });

  it('doubles a dot at every line start, ends the last line, adds the final dot', () => {
    expect(dotStuff(b('.a\r\nb\r\n..c')).toString('latin1')).toBe('..a\r\nb\r\n...c\r\n.\r\n');
    expect(dotStuff(b('a.\r\n.\r\n')).toString('latin1')).toBe('a.\r\n..\r\n.\r\n');
    expect(dotStuff(b('')).toString('latin1')).toBe('.\r\n');
  });
});

describe('sendSmtp to the sink', () => {
  it('delivers the message byte for byte (LF made CRLF, dots unstuffed again), to every recipient', async () => {
    const s = await sink();
    const message = b('From: a@example.org\nSubject: dots\n\n.one\r\n..two\n\xe9\xff\x00 three\n.\n');
    const r = await sendSmtp({
      port: s.port,
      from: 'a@example.org',
      to: ['x@example.net', 'y@example.net'],
      data: message,
      helo: 'me.example',
    });
    expect(r.banner.code).toBe(220);
    expect(r.mail.code).toBe(250);
    expect(r.accepted).toEqual(['x@example.net', 'y@example.net']);
    expect(r.data?.code).toBe(250);
    expect(r.queueId).toBe('SINK1');
    const [got] = await s.waitForMessages(1);
    expect(got?.data.equals(toCrlf(message))).toBe(true);
    expect(got).toMatchObject({ helo: 'me.example', sender: 'a@example.org', recipients: ['x@example.net', 'y@example.net'] });
  });

  it('a server that never answers: a bounded failure that names the time-out', async () => {
    const port = await server(() => {});
    const started = performance.now();
    await expect(sendSmtp({ port, from: 'a@example.org', to: ['b@example.net'], data: 'x\r\n', timeoutMs: 300 })).rejects.toThrow(/300 ms/);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe('SmtpSession', () => {
  it('several transactions in one session from a chosen source address; crlf: false keeps a bare LF', async () => {
    const seen: string[] = [];
    const s = await sink({ onMessage: (m) => seen.push(m.sender) });
    const session = await SmtpSession.open({ port: s.port, localAddress: '127.0.0.2', helo: 'outside.example' });
    try {
      expect(session.ehlo.text).toMatch(/SIZE/);
      const raw = b('Subject: bare\r\n\r\nline\nsame line\r\n');
      const first = await session.transaction('a@example.org', 'b@example.net', raw, { crlf: false, announceSize: true });
      expect(first.decided.code).toBe(250);
      const second = await session.transaction('c@example.org', ['d@example.net'], b('Subject: two\r\n\r\nbody\r\n'));
      expect(second.decided.code).toBe(250);
      const messages = await s.waitForMessages(2);
      expect(messages[0]?.data.equals(raw)).toBe(true);
      expect(messages.map((m) => m.helo)).toEqual(['outside.example', 'outside.example']);
      expect(seen).toEqual(['a@example.org', 'c@example.org']);
    } finally {
      await session.close();
    }
  });

  it('a refusal at the end of DATA decides the transaction, and the session goes on', async () => {
    let refuse = true;
    const s = await sink({
      onMessage: () => {
        if (refuse) throw new Error('not now');
      },
    });
    const session = await SmtpSession.open({ port: s.port });
    try {
      const refused = await session.transaction('a@example.org', 'b@example.net', b('x\r\n'), { resetAfterRefusal: true });
      expect(refused.decided.code).toBe(451);
      expect(refused.data).toBe(refused.decided);
      refuse = false;
      expect((await session.transaction('a@example.org', 'b@example.net', b('y\r\n'), { resetAfterRefusal: true })).decided.code).toBe(250);
      expect(s.received).toBe(1);
    } finally {
      await session.close();
    }
  });

  it('requireReady: a server that greets with 554 is refused at open', async () => {
    const port = await server((socket) => socket.write('554 go away\r\n'));
    await expect(SmtpSession.open({ port, replyTimeoutMs: 2000 })).rejects.toThrow(/banner: 554 go away/);
  });
});
