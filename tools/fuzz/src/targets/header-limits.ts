/**
 * inkan-milterd's header collection under MaximumHeaderFields / MaximumHeaderBytes: the input
 * chooses the limits (1..48 fields, 1,024..8,192 bytes), the On-Security action, signing
 * (a loopback client) or verifying (an outside one), and a program of header fields (runs
 * of fillers, a jump to just around the field limit, big folded fields, DKIM-Signatures
 * whose d= names their position, forged Authentication-Results, more From fields, fields
 * of raw input bytes). The transaction goes to a MilterServer with the real filter over an
 * in-memory connection, every command with a reply, and sometimes a second message after.
 *
 * Crashes: an exception escaping the session or filter (or its internal-error log line), a
 * stall, an undecodable reply, a refusal before end of headers; over a limit (or with
 * several From fields), an action other than On-Security (at end of headers for tempfail,
 * reject and discard, at end of message for quarantine), a DKIM-Signature added, or an
 * Authentication-Results that names a signature from past the limit (held after it);
 * within the limits, anything but accept with the signature(s) or the one
 * Authentication-Results; an added or changed value with a NUL, a CR, or an LF not
 * followed by SP or HTAB.
 */
import { Buffer } from 'node:buffer';
import {
  type MilterCommand,
  type MilterResponse,
  type MilterServer,
  PacketDecoder,
  ProtocolFlags,
  createMilterServer,
  decodeResponse,
  encodeCommand,
} from '@inkan/milter-protocol';
import { type Runtime, createFilter, MILTERD_NEGOTIATION } from '@inkan/milterd';
import { canonicalizationReference as reference } from '@inkan/testbed';
import { pair, until } from '../connection.js';
import { AUTHSERV_ID, DOMAIN } from '../fixtures.js';
import { milterdRuntime } from '../milterd-runtime.js';
import { type FuzzTarget, check, show } from '../target.js';

const STALL_MS = 3000;
const ACTIONS = ['tempfail', 'reject', 'discard', 'quarantine'] as const;
type SecurityAction = (typeof ACTIONS)[number];
/** Bounds on one input's header section, so that one run stays cheap. */
const MAX_FIELDS = 120;
const MAX_BYTES = 24 * 1024;

let server: MilterServer;
let current: Runtime;
const runtimes = new Map<string, Runtime>();
const problems: string[] = [];

interface Field {
  name: string;
  value: Buffer;
  /** A DKIM-Signature with d=n<position>.example. */
  marker?: number;
}

interface Plan {
  sign: boolean;
  onSecurity: SecurityAction;
  leadingSpace: boolean;
  maxHeaders: number;
  maxHeaderBytes: number;
  fields: Field[];
  second: boolean;
}

class Reader {
  private at = 0;
  constructor(private readonly data: Buffer) {}
  get done(): boolean {
    return this.at >= this.data.length;
  }
  byte(): number {
    return this.at < this.data.length ? (this.data[this.at++] as number) : 0;
  }
  bytes(n: number): Buffer {
    const out = this.data.subarray(this.at, this.at + n);
    this.at += out.length;
    return out;
  }
}

/** A value of about `size` bytes, folded with LF + HTAB as an MTA passes it. */
function folded(size: number, seed: number): Buffer {
  const out: string[] = [' '];
  let line = 1;
  for (let i = 0; i < size; i++) {
    if (line >= 70) {
      out.push('\n\t');
      line = 1;
    }
    out.push(String.fromCharCode(0x61 + ((seed + i * 7) % 26)));
    line++;
  }
  return Buffer.from(out.join(''), 'latin1');
}

function plan(data: Buffer): Plan {
  const r = new Reader(data);
  const f = r.byte();
  const p: Plan = {
    sign: (f & 1) !== 0,
    onSecurity: ACTIONS[(f >> 1) & 3] as SecurityAction,
    leadingSpace: (f & 8) !== 0,
    maxHeaders: 1 + (r.byte() % 48),
    maxHeaderBytes: 1024 + ((((r.byte() << 8) | r.byte()) >>> 0) % 7169),
    fields: [],
    second: (f & 32) !== 0,
  };
  if ((f & 16) === 0) p.fields.push({ name: 'From', value: Buffer.from(' User <user@example.org>', 'latin1') });
  let bytes = 0;
  const add = (field: Field) => {
    if (p.fields.length >= MAX_FIELDS || bytes + field.value.length > MAX_BYTES) return;
    bytes += field.name.length + field.value.length;
    p.fields.push(field);
  };
  while (!r.done && p.fields.length < MAX_FIELDS && bytes < MAX_BYTES) {
    const op = r.byte();
    switch (op % 8) {
      case 0: {
        const count = 1 + (r.byte() % 16);
        const size = r.byte() * 8;
        for (let i = 0; i < count; i++) add({ name: 'X-Fill', value: folded(size, op + i) });
        break;
      }
      case 1: {
        // Up to just around the field limit: two below to two above.
        const count = p.maxHeaders - p.fields.length + (r.byte() % 5) - 2;
        for (let i = 0; i < count; i++)
          add({ name: 'Received', value: Buffer.from(` from h${i}.example.net by mx.example.org`, 'latin1') });
        break;
      }
      case 2:
        add({ name: 'X-Big', value: folded((((r.byte() << 8) | r.byte()) >>> 0) % 9000, op) });
        break;
      case 3: {
        const at = p.fields.length + 1;
        add({
          name: 'DKIM-Signature',
          value: Buffer.from(` v=1; a=ed25519-sha256; d=n${at}.example; s=s; h=from; bh=AAAA;\n\tb=AAAA`, 'latin1'),
          marker: at,
        });
        break;
      }
      case 4:
        add({ name: 'Authentication-Results', value: Buffer.from(` ${AUTHSERV_ID}; dkim=pass header.d=${DOMAIN}`, 'latin1') });
        break;
      case 5:
        add({ name: 'From', value: Buffer.from(' other@example.net', 'latin1') });
        break;
      case 6: {
        // A field of raw input bytes: a name of visible characters, a value without NUL
        // (the milter packet ends it there).
        const name = r.bytes(1 + (r.byte() % 20)).toString('latin1');
        const value = Buffer.from(r.bytes(r.byte()).map((b) => (b === 0 ? 0x78 : b)));
        if (reference.FIELD_NAME.test(name)) add({ name, value });
        break;
      }
      default:
        add({ name: 'Subject', value: Buffer.from(op & 8 ? ' a\nb\r\nc\r' : ' \n\t', 'latin1') });
    }
  }
  return p;
}

/**
 * What a field adds to MaximumHeaderBytes: the field as the message holds it, "name:value"
 * with CRLF line ends (each LF the MTA passed alone becomes CRLF) and the final CRLF.
 */
function fieldBytes(f: Field): number {
  let size = f.name.length + 1 + f.value.length + 2;
  for (let i = f.value.indexOf(0x0a); i >= 0; i = f.value.indexOf(0x0a, i + 1)) if (i === 0 || f.value[i - 1] !== 0x0d) size++;
  return size;
}

function config(p: Plan): Runtime {
  const key = `${p.onSecurity} ${p.maxHeaders} ${p.maxHeaderBytes}`;
  let runtime = runtimes.get(key);
  if (!runtime) {
    const text = [
      'Mode sv',
      `Domain ${DOMAIN}`,
      `AuthservID ${AUTHSERV_ID}`,
      'AlwaysAddARHeader yes',
      // Every other verdict accepts, so that the action seen is On-Security's alone.
      'On-BadSignature accept',
      'On-KeyNotFound accept',
      'On-SignatureError accept',
      'On-DNSError accept',
      'On-NoSignature accept',
      `On-Security ${p.onSecurity}`,
      `MaximumHeaderFields ${p.maxHeaders}`,
      `MaximumHeaderBytes ${p.maxHeaderBytes}`,
      '',
    ].join('\n');
    runtime = milterdRuntime(text, (line) => problems.push(`the filter logged: ${line.slice(0, 400)}`));
    if (runtimes.size >= 256) runtimes.clear();
    runtimes.set(key, runtime);
  }
  return runtime;
}

function message(fields: readonly Field[]): MilterCommand[] {
  return [
    { type: 'macro', command: 'M', macros: [['i', 'Q1']] },
    { type: 'mail', sender: '<user@example.org>', args: [] },
    { type: 'rcpt', recipient: '<rcpt@example.net>', args: [] },
    { type: 'data' },
    ...fields.map((f): MilterCommand => ({ type: 'header', name: f.name, value: f.value })),
    { type: 'endOfHeaders' },
    { type: 'body', chunk: Buffer.from('hello\r\n', 'latin1') },
    { type: 'endOfMessage', chunk: Buffer.alloc(0) },
  ];
}

/** The commands that get a reply (no NR bits offered), in order. */
const REPLIED = new Set(['negotiate', 'connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'endOfHeaders', 'body', 'endOfMessage']);

interface Outcome {
  /** The first reply other than continue before end of message, and the command it answered. */
  early?: { command: string; index: number; reply: MilterResponse };
  /** End of message: modifications and the final reply (absent when the message ended early... and the MTA would not send it). */
  modifications: MilterResponse[];
  final?: MilterResponse;
}

/** Pair replies with the commands of each message. */
function outcomes(commands: readonly MilterCommand[], replies: readonly MilterResponse[]): Outcome[] {
  const out: Outcome[] = [];
  let at = 0;
  let currentOutcome: Outcome | undefined;
  let header = 0;
  for (const c of commands) {
    if (c.type === 'mail') {
      currentOutcome = { modifications: [] };
      out.push(currentOutcome);
      header = 0;
    }
    if (!REPLIED.has(c.type)) continue;
    if (c.type === 'header') header++;
    if (c.type === 'endOfMessage') {
      const mods: MilterResponse[] = [];
      while (at < replies.length && !isFinal(replies[at] as MilterResponse)) mods.push(replies[at++] as MilterResponse);
      check(at < replies.length, 'no final reply to end of message');
      if (currentOutcome) {
        currentOutcome.modifications = mods;
        currentOutcome.final = replies[at] as MilterResponse;
      }
      at++;
      continue;
    }
    const reply = replies[at++];
    check(reply !== undefined, () => `no reply to ${c.type}`);
    if (c.type === 'negotiate') {
      check(reply.type === 'negotiate', () => `a ${reply.type} reply to negotiation`);
      continue;
    }
    check(isFinal(reply), () => `a ${reply.type} reply to ${c.type}`);
    if (currentOutcome && !currentOutcome.early && reply.type !== 'continue')
      currentOutcome.early = { command: c.type, index: header, reply };
  }
  check(at === replies.length, () => `${replies.length - at} replies more than commands`);
  return out;
}

function isFinal(r: MilterResponse): boolean {
  return ['accept', 'continue', 'discard', 'reject', 'tempfail', 'replyCode', 'skip'].includes(r.type);
}

/** The configured action a final reply (and a quarantine among the modifications) stands for. */
function actionOf(final: MilterResponse, modifications: readonly MilterResponse[]): string {
  if (final.type === 'replyCode')
    return final.text.startsWith('4') ? 'tempfail' : final.text.startsWith('5') ? 'reject' : `reply ${final.text}`;
  if (final.type === 'accept' || final.type === 'continue')
    return modifications.some((m) => m.type === 'quarantine') ? 'quarantine' : 'accept';
  return final.type;
}

/** A value the filter gives the MTA: no NUL or CR, every LF followed by SP or HTAB, no LF at the end. */
function checkValue(name: string, value: Buffer, leadingSpace: boolean): void {
  check(reference.FIELD_NAME.test(name), () => `added a field named ${show(name)}`);
  check(!value.includes(0), () => `${name} value has a NUL: ${show(value)}`);
  check(!value.includes(0x0d), () => `${name} value has a CR: ${show(value)}`);
  for (let i = value.indexOf(0x0a); i >= 0; i = value.indexOf(0x0a, i + 1)) {
    const next = value[i + 1];
    check(next === 0x20 || next === 0x09, () => `${name} value has an LF not followed by SP or HTAB: ${show(value)}`);
  }
  if (leadingSpace) check(value[0] === 0x20, () => `${name} value lacks the leading space the MTA asked for: ${show(value)}`);
}

function judge(p: Plan, fields: readonly Field[], o: Outcome, which: string): void {
  let count = 0;
  let bytes = 0;
  /** The field (1-based) that took the message over a limit. */
  let pastAt: number | undefined;
  for (const f of fields) {
    count++;
    bytes += fieldBytes(f);
    if (pastAt === undefined && (count > p.maxHeaders || bytes > p.maxHeaderBytes)) pastAt = count;
  }
  const froms = fields.filter((f) => f.name.toLowerCase() === 'from');
  const what = () =>
    `${which}: ${count} fields, ${bytes} bytes, ${froms.length} From; limits ${p.maxHeaders} fields, ${p.maxHeaderBytes} bytes; ${p.sign ? 'sign' : 'verify'}, On-Security ${p.onSecurity}`;

  const mods = o.modifications;
  for (const m of mods) {
    if (m.type === 'insertHeader' || m.type === 'addHeader') checkValue(m.name, m.value, p.leadingSpace);
    if (m.type === 'changeHeader' && m.value.length > 0) checkValue(m.name, m.value, p.leadingSpace);
  }
  const signatures = mods.filter((m) => (m.type === 'insertHeader' || m.type === 'addHeader') && m.name.toLowerCase() === 'dkim-signature');
  const results = mods.filter(
    (m): m is Extract<MilterResponse, { type: 'insertHeader' }> => m.type === 'insertHeader' && m.name === 'Authentication-Results',
  );
  const action = o.early ? actionOf(o.early.reply, []) : o.final ? actionOf(o.final, mods) : 'none';
  const where = () => (o.early ? ` at ${o.early.command}${o.early.command === 'header' ? ` ${o.early.index}` : ''}` : '');
  // On-Security tempfail, reject and discard end the message at end of headers; quarantine waits for its end.
  if (o.early) check(o.early.command === 'endOfHeaders', () => `a ${o.early?.reply.type} reply to ${o.early?.command} (${what()})`);

  if (pastAt !== undefined || froms.length > 1) {
    check(
      action === p.onSecurity,
      () =>
        `${pastAt !== undefined ? 'over a limit' : 'with several From fields'}, the message got ${action}${where()}, not On-Security ${p.onSecurity} (${what()})`,
    );
    check(
      signatures.length === 0,
      () => `a message ${pastAt !== undefined ? 'over a limit' : 'with several From fields'} was signed (${what()})`,
    );
    check(results.length <= 1, () => `${results.length} Authentication-Results added (${what()})`);
    // Nothing past a limit is held: no result names a signature from there (or at all: nothing is verified).
    for (const f of fields) {
      if (pastAt === undefined || f.marker === undefined) continue;
      for (const ar of results)
        check(
          !ar.value.includes(`n${f.marker}.example`),
          () => `Authentication-Results over a limit reports the signature of field ${f.marker} (${what()})`,
        );
    }
    return;
  }
  check(action === 'accept', () => `within the limits, the message got ${action}${where()} (${what()})`);
  const ours = froms[0] !== undefined && froms[0] === fields.find((f) => f.value.includes('@example.org>') && f.name === 'From');
  if (p.sign && ours) {
    check(
      signatures.length >= 1 && results.length === 0,
      () =>
        `within the limits, a message to sign got ${signatures.length} signatures and ${results.length} Authentication-Results (${what()})`,
    );
  } else {
    check(
      signatures.length === 0 && results.length === 1,
      () =>
        `within the limits, a message to verify got ${signatures.length} signatures and ${results.length} Authentication-Results (${what()})`,
    );
  }
}

/** One connection with the plan's message (and a second one after it): the outcome of each. */
async function converse(p: Plan, second: readonly Field[]): Promise<Outcome[]> {
  problems.length = 0;
  current = config(p);
  const commands: MilterCommand[] = [
    { type: 'negotiate', version: 6, actions: 0x1ff, protocol: p.leadingSpace ? ProtocolFlags.HeaderLeadingSpace : 0 },
    p.sign
      ? { type: 'connect', hostname: 'localhost', family: 'inet', port: 40000, address: '127.0.0.1' }
      : { type: 'connect', hostname: 'mx.example.net', family: 'inet', port: 40000, address: '192.0.2.7' },
    { type: 'helo', hostname: 'client.example.net' },
    ...message(p.fields),
    ...(p.second ? message(second) : []),
    { type: 'quit' },
  ];
  const bytes = Buffer.concat(commands.map(encodeCommand));
  const [client, end] = pair();
  const replies: Buffer[] = [];
  client.on('data', (b: Buffer) => replies.push(Buffer.from(b)));
  client.on('error', () => {});
  const session = server.handle(end, 'fuzz');
  let closed = false;
  void session.closed.then(() => {
    closed = true;
  });
  try {
    client.write(bytes);
    const ended = await until(() => closed, STALL_MS);
    check(
      ended,
      () => `the session stalled: ${session.bytesReceived} of ${bytes.length} bytes read, ${session.queuedPackets} packets queued`,
    );
  } finally {
    client.destroy();
  }
  check(problems.length === 0, () => problems.join('\n'));
  const packets = new PacketDecoder().push(Buffer.concat(replies));
  const responses = packets.map((packet) => decodeResponse(packet)).filter((r) => r.type !== 'progress');
  const results = outcomes(commands, responses);
  check(results.length === (p.second ? 2 : 1), () => `${results.length} messages seen`);
  return results;
}

export const target: FuzzTarget = {
  name: 'header-limits',
  description: 'milterd header collection under MaximumHeaderFields / MaximumHeaderBytes, real filter over an in-memory connection',
  maxLength: 1024,
  dictionary: [
    '\x00',
    '\x01',
    '\x02',
    '\x03',
    '\x04',
    '\x05',
    '\x06',
    '\x07',
    '\x09',
    '\x0f',
    '\x10',
    '\x20',
    '\x21',
    '\x2f',
    '\x31',
    '\xff',
    '\x00\x00',
    '\xff\xff',
    '\x1c\x00',
  ],

  async setup() {
    const filter = createFilter(() => current);
    server = createMilterServer({
      handler: filter,
      ...MILTERD_NEGOTIATION,
      protocol: ProtocolFlags.HeaderLeadingSpace,
      idleTimeoutMs: 0,
      progressIntervalMs: 0,
    });
    server.on('sessionError', (error) => {
      if (/internal error|handler failed|factory failed/.test(error.message)) problems.push(`session error: ${error.message}`);
    });
  },

  async teardown() {
    await server.close();
  },

  async fuzz(data) {
    const p = plan(data);
    const second = p.fields.slice(0, 3);
    const results = await converse(p, second);
    judge(p, p.fields, results[0] as Outcome, 'first message');
    if (p.second) judge(p, second, results[1] as Outcome, 'second message');
  },
};
