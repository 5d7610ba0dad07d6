import { Socket, connect } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ACTIONS_ALL,
  ActionFlags,
  Decision,
  type HandlerFactory,
  type MilterContext,
  MilterClient,
  type MilterHandler,
  type MilterResponse,
  PROTOCOL_NO_REPLY_MASK,
  ProtocolFlags,
  createMilterServer,
  decodePackets,
  decodeResponse,
  encodeCommand,
  runTransaction,
} from '../src/index.js';
import { RecordingStream, type RunningServer, startServer, text, until } from './helpers.js';

const P = ProtocolFlags;
let running: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(running.map((r) => r.close()));
  running = [];
});
async function serve(options: Parameters<typeof startServer>[0], kind: 'unix' | 'inet' = 'unix'): Promise<RunningServer> {
  const r = await startServer(options, kind);
  running.push(r);
  return r;
}

/** A handler that records every stage as a line of text. */
function recorder(events: string[], extra: (ctx: MilterContext) => Partial<MilterHandler> = () => ({})): HandlerFactory {
  return (ctx) => ({
    connect(c) {
      events.push(`connect ${c.hostname} ${c.family} ${c.address}:${c.port} ip=${c.ip} j=${ctx.macros.get('j') ?? '-'}`);
    },
    helo(name) {
      events.push(`helo ${name}`);
    },
    mail(sender) {
      events.push(
        `mail ${sender.address} raw=${sender.raw} args=${sender.args.join(',')} i=${ctx.macros.get('i') ?? '-'} #${ctx.message?.index}`,
      );
    },
    rcpt(recipient) {
      events.push(`rcpt ${recipient.address} n=${ctx.message?.recipients.length}`);
    },
    data() {
      events.push('data');
    },
    header(name, value) {
      events.push(`header ${name}=${text(value)}`);
    },
    endOfHeaders() {
      events.push('eoh');
    },
    body(chunk) {
      events.push(`body ${text(chunk)}`);
    },
    endOfMessage() {
      events.push(`eom i=${ctx.macros.get('i') ?? '-'} headers=${ctx.message?.headerCount} bytes=${ctx.message?.bodyBytes}`);
    },
    abort() {
      events.push(`abort #${ctx.message?.index}`);
    },
    unknown(line) {
      events.push(`unknown ${line}`);
    },
    close() {
      events.push('close');
    },
    ...extra(ctx),
  });
}

describe('client against server: every stage', () => {
  it('delivers every stage with its data and macros, and replies continue', async () => {
    const events: string[] = [];
    const s = await serve({ handler: recorder(events), actions: ActionFlags.AddHeaders });
    const client = await MilterClient.open(s.spec);
    expect(client.options.version).toBe(6);
    client.macro('C', { j: 'mx.example.org', '{daemon_name}': 'smtpd' });
    expect(await client.connect({ hostname: 'client.example.org', family: 'inet6', address: 'IPv6:2001:db8::7', port: 4321 })).toEqual({
      type: 'continue',
    });
    expect(await client.helo('client.example.org')).toEqual({ type: 'continue' });
    client.macro('M', { i: 'Q1' });
    expect(await client.mail('<alice@example.org>', ['SIZE=42', 'BODY=8BITMIME'])).toEqual({ type: 'continue' });
    expect(await client.rcpt('<bob@example.net>')).toEqual({ type: 'continue' });
    expect(await client.rcpt('carol@example.net')).toEqual({ type: 'continue' });
    expect(await client.data()).toEqual({ type: 'continue' });
    expect(await client.header('Subject', Buffer.from(' caf\xe9\n\tfolded', 'latin1'))).toEqual({ type: 'continue' });
    expect(await client.header('X-Empty', '')).toEqual({ type: 'continue' });
    expect(await client.endOfHeaders()).toEqual({ type: 'continue' });
    expect(await client.body('Hello\r\n')).toEqual({ type: 'continue' });
    expect(await client.unknown('XYZZY')).toEqual({ type: 'continue' });
    const eom = await client.endOfMessage();
    expect(eom).toEqual({ modifications: [], reply: { type: 'continue' }, progress: 0 });
    await client.quit();
    expect(client.unreadResponses).toBe(0);
    expect(events).toEqual([
      'connect client.example.org inet6 IPv6:2001:db8::7:4321 ip=2001:db8::7 j=mx.example.org',
      'helo client.example.org',
      'mail alice@example.org raw=<alice@example.org> args=SIZE=42,BODY=8BITMIME i=Q1 #1',
      'rcpt bob@example.net n=1',
      'rcpt carol@example.net n=2',
      'data',
      'header Subject= caf\xe9\n\tfolded',
      'header X-Empty=',
      'eoh',
      'body Hello\r\n',
      'unknown XYZZY',
      'eom i=Q1 headers=2 bytes=7',
      'close',
    ]);
    expect(s.errors).toEqual([]);
  });

  it('gathers every end-of-message action and writes them before the final reply', async () => {
    const body = Buffer.alloc(70_000 + 65_535, 0x42); // more than two packets
    const s = await serve({
      actions: ACTIONS_ALL,
      handler: () => ({
        endOfMessage(m) {
          m.addHeader('X-Added', ' one\r\n\ttwo');
          m.insertHeader(0, 'X-Inserted', ' top');
          m.changeHeader('Subject', 1, ' changed');
          m.deleteHeader('X-Old', 2);
          m.changeFrom('<new@example.org>', 'RET=HDRS');
          m.addRcpt('<plain@example.net>');
          m.addRcpt('<par@example.net>', 'NOTIFY=NEVER');
          m.delRcpt('<gone@example.net>');
          m.replaceBody(body.subarray(0, 1000));
          m.quarantine('held for review');
          m.replaceBody(body.subarray(1000));
          return 'accept';
        },
      }),
    });
    const r = await runTransaction(s.spec, {
      sender: 'a@example.org',
      recipients: ['gone@example.net'],
      message: 'Subject: x\r\n\r\nbody\r\n',
    });
    const eom = r.endOfMessage;
    expect(eom?.reply).toEqual({ type: 'accept' });
    const mods = eom?.modifications ?? [];
    const summary = mods.map((m) =>
      m.type === 'replaceBody'
        ? `body ${m.chunk.length}`
        : JSON.stringify(m, (_k, v) => (v?.type === 'Buffer' ? Buffer.from(v.data).toString('latin1') : v)),
    );
    expect(summary).toEqual([
      '{"type":"addHeader","name":"X-Added","value":" one\\n\\ttwo"}',
      '{"type":"insertHeader","index":0,"name":"X-Inserted","value":" top"}',
      '{"type":"changeHeader","index":1,"name":"Subject","value":" changed"}',
      '{"type":"changeHeader","index":2,"name":"X-Old","value":""}',
      '{"type":"changeFrom","sender":"<new@example.org>","args":"RET=HDRS"}',
      '{"type":"addRcpt","recipient":"<plain@example.net>"}',
      '{"type":"addRcptPar","recipient":"<par@example.net>","args":"NOTIFY=NEVER"}',
      '{"type":"delRcpt","recipient":"<gone@example.net>"}',
      '{"type":"quarantine","reason":"held for review"}',
      'body 65535',
      'body 65535',
      'body 4465',
    ]);
    const replaced = Buffer.concat(mods.flatMap((m) => (m.type === 'replaceBody' ? [m.chunk] : [])));
    expect(replaced.equals(body)).toBe(true);
  });

  it('aborts mid-message, then handles a second message on the same connection', async () => {
    const events: string[] = [];
    const s = await serve({ handler: recorder(events) });
    const client = await MilterClient.open(s.spec);
    await client.connect({ hostname: 'h' });
    await client.helo('h');
    await client.mail('<a@example.org>');
    await client.rcpt('<b@example.net>');
    await client.header('Subject', ' first');
    client.abort();
    client.abort(); // idempotent
    await client.mail('<c@example.org>');
    await client.rcpt('<d@example.net>');
    await client.endOfHeaders();
    await client.body('second\r\n');
    expect((await client.endOfMessage()).reply).toEqual({ type: 'continue' });
    client.abort(); // Postfix sends an abort after every completed message: not passed on
    await client.mail('<e@example.org>');
    await client.quit();
    expect(events.filter((e) => !e.startsWith('connect') && !e.startsWith('helo'))).toEqual([
      'mail a@example.org raw=<a@example.org> args= i=- #1',
      'rcpt b@example.net n=1',
      'header Subject= first',
      'abort #1',
      'mail c@example.org raw=<c@example.org> args= i=- #2',
      'rcpt d@example.net n=1',
      'eoh',
      'body second\r\n',
      'eom i=- headers=0 bytes=8',
      'mail e@example.org raw=<e@example.org> args= i=- #3',
      'abort #3', // the connection ended inside message 3
      'close',
    ]);
  });

  it('resets the message on a new MAIL without an abort (sendmail after a message-level decision)', async () => {
    const events: string[] = [];
    const s = await serve({ handler: recorder(events, () => ({ rcpt: () => 'reject' })) });
    const client = await MilterClient.open(s.spec);
    await client.mail('<a@example.org>');
    expect(await client.rcpt('<b@example.net>')).toEqual({ type: 'reject' });
    await client.mail('<c@example.org>');
    await client.quit();
    expect(events).toEqual([
      'mail a@example.org raw=<a@example.org> args= i=- #1',
      'abort #1',
      'mail c@example.org raw=<c@example.org> args= i=- #2',
      'abort #2',
      'close',
    ]);
  });

  it('a close without quit reaches the handler: abort inside a message, close exactly once', async () => {
    const events: string[] = [];
    let signal: AbortSignal | undefined;
    const s = await serve({
      handler: recorder(events, (ctx) => ({
        connect() {
          signal = ctx.signal;
        },
      })),
    });
    const client = await MilterClient.open(s.spec);
    await client.connect({ hostname: 'h' });
    await client.mail('<a@example.org>');
    await client.header('Subject', ' x');
    expect(signal?.aborted).toBe(false);
    client.destroy();
    await until(() => events.includes('close'), 'close');
    await until(() => s.server.sessionCount === 0, 'session gone');
    expect(events.slice(-3)).toEqual(['header Subject= x', 'abort #1', 'close']);
    expect(events.filter((e) => e === 'close')).toHaveLength(1);
    expect(signal?.aborted).toBe(true);
    // and without a message: only close
    const quiet: string[] = [];
    const t = await serve({ handler: recorder(quiet) });
    const c2 = await MilterClient.open(t.spec);
    await c2.connect({ hostname: 'h' });
    c2.destroy();
    await until(() => quiet.includes('close'), 'close');
    expect(quiet).toEqual(['connect h inet 127.0.0.1:0 ip=127.0.0.1 j=-', 'close']);
  });

  it('quit-new-connection ends the session and starts a new one without renegotiation', async () => {
    const events: string[] = [];
    let handlers = 0;
    const s = await serve({
      handler: (ctx) => {
        handlers += 1;
        const n = handlers;
        return recorder(events, () => ({
          connect(c) {
            events.push(`connect#${n} ${c.hostname} messages=${ctx.messageCount} macro=${ctx.macros.get('j') ?? '-'}`);
          },
        }))(ctx);
      },
    });
    const client = await MilterClient.open(s.spec);
    client.macro('C', { j: 'first' });
    await client.connect({ hostname: 'one' });
    await client.mail('<a@example.org>');
    client.quitNewConnection();
    await client.connect({ hostname: 'two' });
    await client.quit();
    expect(events).toEqual([
      'connect#1 one messages=0 macro=first',
      'mail a@example.org raw=<a@example.org> args= i=- #1',
      'abort #1',
      'close',
      'connect#2 two messages=0 macro=-',
      'close',
    ]);
    expect(handlers).toBe(2);
  });
});

describe('replies, no-reply steps, skip, progress', () => {
  it('never replies to negotiated no-reply steps, even when the handler decides otherwise', async () => {
    const events: string[] = [];
    const s = await serve({
      protocol: PROTOCOL_NO_REPLY_MASK,
      handler: recorder(events, () => ({ header: () => 'reject', rcpt: () => ({ code: 550, text: 'ignored' }) })),
    });
    const client = await MilterClient.open(s.spec);
    expect(client.options.protocol & PROTOCOL_NO_REPLY_MASK).toBe(PROTOCOL_NO_REPLY_MASK);
    for (const step of [
      client.connect({ hostname: 'h' }),
      client.helo('h'),
      client.mail('<a@example.org>'),
      client.rcpt('<b@example.net>'),
      client.data(),
      client.header('Subject', ' x'),
      client.endOfHeaders(),
      client.body('x\r\n'),
      client.unknown('NOOP2'),
    ]) {
      expect(await step).toBeUndefined();
    }
    expect((await client.endOfMessage()).reply).toEqual({ type: 'continue' });
    await client.quit();
    expect(client.unreadResponses).toBe(0);
    expect(s.logs.some((l) => l.startsWith('warn header: decision "reject" not sent') && l.includes('SMFIP_NR_HDR'))).toBe(true);
    expect(s.logs.some((l) => l.startsWith('warn rcpt: decision "550" not sent'))).toBe(true);
  });

  it('skip stops the body; later chunks of that message bypass the handler', async () => {
    const chunks: string[] = [];
    const s = await serve({
      protocol: P.Skip,
      handler: () => ({
        body(chunk) {
          chunks.push(text(chunk));
          return 'skip';
        },
        endOfMessage() {
          return 'accept';
        },
      }),
    });
    const client = await MilterClient.open(s.spec);
    expect(client.options.protocol & P.Skip).toBe(P.Skip);
    await client.mail('<a@example.org>');
    expect(await client.body('one')).toEqual({ type: 'skip' });
    // an MTA stops after skip; if one sends more anyway, the handler is not bothered
    client.send({ type: 'body', chunk: Buffer.from('two') });
    expect(await client.next()).toEqual({ type: 'continue' });
    expect((await client.endOfMessage()).reply).toEqual({ type: 'accept' });
    await client.quit();
    expect(chunks).toEqual(['one']);
  });

  it('skip without SMFIP_SKIP becomes continue', async () => {
    const s = await serve({ handler: () => ({ body: () => 'skip', endOfHeaders: () => 'skip' }) });
    const client = await MilterClient.open(s.spec);
    await client.mail('<a@example.org>');
    expect(await client.endOfHeaders()).toEqual({ type: 'continue' });
    expect(await client.body('x')).toEqual({ type: 'continue' });
    await client.quit();
  });

  it('custom SMTP replies at any stage', async () => {
    const s = await serve({
      handler: () => ({
        connect: (c) => (c.ip === '192.0.2.66' ? { code: 421, extended: '4.7.0', text: 'go away' } : 'continue'),
        rcpt: (r) => (r.address.startsWith('no') ? { code: 550, extended: '5.1.1', text: ['no such user', 'really'] } : 'continue'),
        endOfMessage: () => ({ code: 451, extended: '4.7.1', text: 'try 100% later' }),
      }),
    });
    const refused = await MilterClient.open(s.spec);
    expect(await refused.connect({ hostname: 'bad', address: '192.0.2.66' })).toEqual({ type: 'replyCode', text: '421 4.7.0 go away' });
    refused.destroy();
    const r = await runTransaction(s.spec, { sender: 'a@x', recipients: ['nobody@x', 'yes@x'], message: 'S: x\r\n\r\nb\r\n' });
    expect(r.steps.find((st) => st.recipient === 'nobody@x')?.reply).toEqual({
      type: 'replyCode',
      text: '550-5.1.1 no such user\r\n550 5.1.1 really',
    });
    expect(r.rejectedRecipients).toEqual(['nobody@x']);
    expect(r.outcome).toEqual({ stage: 'endOfMessage', reply: { type: 'replyCode', text: '451 4.7.1 try 100%% later' } });
  });

  it('sends progress while the end-of-message handler works, explicitly and on a timer', async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((r) => {
      release = r;
    });
    const s = await serve({
      actions: ActionFlags.AddHeaders,
      progressIntervalMs: 5,
      handler: () => ({
        async endOfMessage(m) {
          m.progress();
          await released; // the client releases us after it has seen three progress packets
          m.addHeader('X-Slow', ' done');
          return Decision.continue;
        },
      }),
    });
    const client = await MilterClient.open(s.spec, {
      onProgress: () => {
        if (client.progressCount >= 3) release();
      },
    });
    await client.mail('<a@example.org>');
    const eom = await client.endOfMessage();
    expect(eom.progress).toBeGreaterThanOrEqual(3);
    expect(eom.modifications.map((m) => m.type)).toEqual(['addHeader']);
    expect(eom.reply).toEqual({ type: 'continue' });
    await client.quit();
  });
});

describe('errors stay inside their connection', () => {
  it('a throwing handler gets the error decision, prefixed with its stage', async () => {
    const s = await serve({
      handler: () => ({
        mail: () => {
          throw new Error('database down');
        },
        rcpt: () => ({ code: 250, text: 'not an error code' }),
      }),
    });
    const client = await MilterClient.open(s.spec);
    expect(await client.mail('<a@example.org>')).toEqual({ type: 'tempfail' });
    expect(await client.rcpt('<b@example.net>')).toEqual({ type: 'tempfail' });
    await client.quit();
    expect(s.errors.map((e) => e.message)).toEqual([
      'mail: handler failed: database down',
      'rcpt: SMTP reply code must be 4xx or 5xx, not 250',
    ]);
    expect(s.errors[0]?.cause).toBeInstanceOf(Error);
  });

  it('a failure in a no-reply step fails the message at its next reply', async () => {
    const s = await serve({
      protocol: P.NoReplyHeader,
      errorDecision: 'reject',
      handler: () => ({
        header: () => {
          throw new Error('bad header');
        },
        endOfMessage: (m) => {
          m.addHeader('X-Never', ' sent');
          return 'accept';
        },
      }),
      actions: ActionFlags.AddHeaders,
    });
    const client = await MilterClient.open(s.spec);
    await client.mail('<a@example.org>');
    expect(await client.header('Subject', ' x')).toBeUndefined();
    expect(await client.endOfMessage()).toEqual({ modifications: [], reply: { type: 'reject' }, progress: 0 });
    // the next message is fresh
    await client.mail('<b@example.org>');
    expect((await client.endOfMessage()).reply).toEqual({ type: 'accept' });
    await client.quit();
    expect(s.errors.map((e) => e.message)).toEqual(['header: handler failed: bad header']);
  });

  it('an action that was not negotiated is refused at end of message', async () => {
    const s = await serve({
      actions: ActionFlags.AddHeaders,
      errorDecision: 'continue',
      handler: () => ({
        endOfMessage: (m) => {
          m.addHeader('X-Ok', ' 1');
          m.replaceBody('nope');
          return 'accept';
        },
      }),
    });
    const client = await MilterClient.open(s.spec);
    await client.mail('<a@example.org>');
    expect(await client.endOfMessage()).toEqual({ modifications: [], reply: { type: 'continue' }, progress: 0 });
    await client.quit();
    expect(s.errors[0]?.message).toMatch(/^endOfMessage: replaceBody needs SMFIF_CHGBODY, which was not negotiated/);
  });

  it('a failing handler factory closes only that connection', async () => {
    let n = 0;
    const s = await serve({
      handler: () => {
        n += 1;
        if (n === 1) throw new Error('no handler for you');
        return {};
      },
    });
    // the server drops the connection at once: the client sees a close or a failed write
    await expect(MilterClient.open(s.spec)).rejects.toThrow(/^negotiate: (the filter closed the connection|socket error)/);
    const ok = await MilterClient.open(s.spec);
    expect((await ok.endOfMessage()).reply).toEqual({ type: 'continue' });
    await ok.quit();
    expect(s.errors[0]?.message).toBe('handler: factory failed: no handler for you');
  });

  it('commands before negotiation and a second negotiation are protocol errors', async () => {
    const s = await serve({ handler: () => ({}) });
    for (const wire of [
      encodeCommand({ type: 'helo', hostname: 'early' }),
      Buffer.concat([
        encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff }),
        encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff }),
      ]),
      encodeCommand({ type: 'negotiate', version: 1, actions: 0xf, protocol: 0x3f }),
    ]) {
      const socket = connect((s.spec as { path: string }).path);
      socket.on('data', () => {});
      socket.on('error', () => {});
      socket.write(wire);
      await new Promise((r) => socket.once('close', r));
    }
    expect(s.errors.map((e) => e.message)).toEqual([
      'helo: command before option negotiation',
      'negotiate: options were already negotiated on this connection',
      'negotiate: MTA protocol version 1 is not supported (2 or later is needed)',
    ]);
  });

  it('closes a connection that stays idle while no handler runs', async () => {
    const events: string[] = [];
    const s = await serve({ idleTimeoutMs: 20, handler: recorder(events) });
    const client = await MilterClient.open(s.spec);
    await client.whenClosed();
    await until(() => events.includes('close'), 'close');
    expect(s.logs.some((l) => l.startsWith('warn idle: no command for 20 ms'))).toBe(true);
  });

  it('closes a connection that trickles one packet a byte at a time for longer than the idle timeout', async () => {
    const events: string[] = [];
    const s = await serve({ idleTimeoutMs: 300, handler: recorder(events) });
    const socket = connect((s.spec as { path: string }).path);
    socket.on('error', () => {});
    socket.on('data', () => {});
    const closed = new Promise((r) => socket.once('close', r));
    const wire = encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff });
    const started = Date.now();
    // one byte every 50 ms: never silent for 300 ms, but the packet never ends in time
    for (let i = 0; i < wire.length - 1 && !socket.destroyed && Date.now() - started < 5000; i++) {
      socket.write(wire.subarray(i, i + 1));
      await new Promise((r) => setTimeout(r, 50));
    }
    await closed;
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(1500);
    expect(s.logs.some((l) => l.startsWith('warn idle: one packet has been arriving for over 300 ms'))).toBe(true);
  });
});

describe('what real MTAs do', () => {
  it('tolerates Postfix and sendmail habits', async () => {
    const events: string[] = [];
    const bigHeader = Buffer.alloc(70_000, 0x61);
    const s = await serve({
      protocol: P.NoConnect | P.NoHelo,
      handler: recorder(events, (ctx) => ({
        endOfMessage() {
          events.push(`eom i=${ctx.macros.get('i')} auth=${ctx.macros.get('{auth_type}') ?? '-'}`);
        },
      })),
    });
    const client = await MilterClient.open(s.spec);
    expect(client.options.protocol & (P.NoConnect | P.NoHelo)).toBe(P.NoConnect | P.NoHelo);
    // macro packets for suppressed events, empty macro packets, a macro before every header
    client.macro('C', { j: 'mx' });
    client.macro('H', {});
    client.macro('M', { '{auth_type}': '' }); // empty values occur
    await client.mail('sender@example.org'); // no angle brackets (Postfix's sendmail path)
    client.macro('R', { '{rcpt_addr}': 'r@example.net' });
    await client.rcpt('r@example.net');
    client.macro('L', { i: 'QID' });
    await client.header('X-Big', bigHeader); // > 64 KiB in one packet, as Postfix sends
    client.macro('L', { i: 'QID' });
    await client.header('Subject', 'x');
    client.macro('N', { i: 'QID' });
    await client.endOfHeaders();
    client.macro('B', { i: 'QID' });
    await client.body('line one\r'); // CR and LF in different chunks
    client.macro('B', { i: 'QID' });
    await client.body('\nline two\r\n');
    client.macro('E', { i: 'QID' });
    expect((await client.endOfMessage()).reply).toEqual({ type: 'continue' });
    client.abort();
    client.abort(); // observed: E, A, A, Q
    await client.quit();
    expect(events).toEqual([
      'mail sender@example.org raw=sender@example.org args= i=- #1',
      'rcpt r@example.net n=1',
      `header X-Big=${'a'.repeat(70_000)}`,
      'header Subject=x',
      'eoh',
      'body line one\r',
      'body \nline two\r\n',
      'eom i=QID auth=',
      'close',
    ]);
    expect(s.errors).toEqual([]);
  });

  it('writes all end-of-message actions and the final reply in a single write', async () => {
    const server = createMilterServer({
      actions: ACTIONS_ALL,
      handler: () => ({
        endOfMessage(m) {
          m.addHeader('X-A', ' 1');
          m.insertHeader(0, 'X-B', ' 2');
          m.quarantine('q');
          m.replaceBody('new\r\n');
          return 'accept';
        },
      }),
    });
    const stream = new RecordingStream();
    const session = server.handle(stream);
    stream.push(encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff }));
    await until(() => stream.writes.length === 1, 'negotiation reply');
    // no mail() in the handler: MAIL is a no-reply step (SMFIP_NR_MAIL), nothing is written
    stream.push(encodeCommand({ type: 'mail', sender: '<a@x>', args: [] }));
    stream.push(encodeCommand({ type: 'endOfMessage', chunk: Buffer.alloc(0) }));
    await until(() => stream.writes.length === 2, 'end-of-message write');
    const last = decodePackets(stream.writes[1] as Buffer).map(decodeResponse);
    expect(last.map((r: MilterResponse) => r.type)).toEqual(['addHeader', 'insertHeader', 'quarantine', 'replaceBody', 'accept']);
    stream.push(null);
    await session.closed;
    await server.close();
  });

  it('sets TCP_NODELAY on TCP connections', async () => {
    const spy = vi.spyOn(Socket.prototype, 'setNoDelay');
    try {
      const s = await serve({ handler: () => ({}) }, 'inet');
      const client = await MilterClient.open(s.spec);
      await client.quit();
      expect(spy.mock.calls.some((call) => call[0] === true)).toBe(true);
      // both the client's and the server's socket
      expect(spy.mock.calls.filter((call) => call[0] === true).length).toBeGreaterThanOrEqual(2);
    } finally {
      spy.mockRestore();
    }
  });
});
