/**
 * Hostile messages against a running inkan-milterd (issue #16 items 2, 5, 6, 8, 9; issue #20
 * item 2): 300,000 header fields and an oversized header section are answered at end of
 * headers with On-Security while memory stays bounded; a message with two From fields is never
 * signed, and a third-party signature under a prepended From is not reported as a pass; unix,
 * unknown-family and CONNECT-less clients follow InternalHosts (UnixClientsInternal signs unix
 * clients); forged Authentication-Results with our authserv-id in another case or with a
 * trailing dot are removed; a 100 KB From address is logged cut short; and a header value that
 * would break the header section is never handed to the MTA (On-InternalError instead).
 */
import { Buffer } from 'node:buffer';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { signMessage } from '@inkan/dkim-core';
import {
  type ConnectFamily,
  type EndOfMessageResult,
  MilterClient,
  type MilterContext,
  type Modification,
  type Modifier,
  ProtocolFlags,
  type StepReply,
  splitMessage,
} from '@inkan/milter-protocol';
import {
  dkimKeyRecord,
  type DnsServer,
  freePort,
  makeKeys,
  rssKiB,
  startDnsmasq,
  startPostfix,
  tempDir,
  type TestKeys,
} from '@inkan/testbed';
import { pino } from 'pino';
import { createFilter, forLog } from '../src/filter.js';
import { HostList, parseConfigText, SigningPlan } from '../src/internal.js';
import { insertedSignatures, type MilterdProcess, startMilterd } from './helpers.js';

/**
 * dkim-core formats Authentication-Results safely, so no real input reaches the filter's own
 * check on inserted values any more: the unit tests below make the formatter return a bad
 * value (only in this test process; the milterd processes are untouched).
 */
const injected = vi.hoisted(() => ({ value: undefined as string | undefined }));
vi.mock('@inkan/dkim-core', async (importOriginal) => {
  const real = await importOriginal<typeof import('@inkan/dkim-core')>();
  return {
    ...real,
    formatAuthenticationResults: (...args: Parameters<typeof real.formatAuthenticationResults>) =>
      injected.value ?? real.formatAuthenticationResults(...args),
  };
});

const AUTHSERV = 'mx.inkan.test';
const OUTSIDE = { hostname: 'outside.example', family: 'inet' as const, address: '192.0.2.7', port: 40000 };
const LOCAL = { hostname: 'localhost', family: 'inet' as const, address: '127.0.0.1', port: 40000 };

let keys: TestKeys;
let dns: DnsServer;
let dir: string;
const running: { stop(): Promise<unknown> }[] = [];

beforeAll(async () => {
  keys = makeKeys();
  dir = tempDir('inkan-hostile-filter-');
  writeFileSync(join(dir, 'rsa.private'), keys.rsa2048.pem, { mode: 0o600 });
  dns = await startDnsmasq({
    'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    'ed._domainkey.third.example': dkimKeyRecord(keys.ed25519),
  });
  running.push(dns);
});

afterAll(async () => {
  for (const r of running.reverse()) await r.stop().catch(() => {});
});

/** A sign-and-verify inkan-milterd for example.org with these extra configuration lines. */
async function start(name: string, extra: string[] = []): Promise<{ milterd: MilterdProcess; port: number }> {
  const port = await freePort();
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    [
      `Socket inet:${port}@127.0.0.1`,
      'Mode sv',
      'Domain example.org',
      'Selector rsa',
      `KeyFile ${join(dir, 'rsa.private')}`,
      `Nameservers 127.0.0.1@${dns.port}`,
      'DNSTimeout 2',
      `AuthservID ${AUTHSERV}`,
      'AlwaysAddARHeader yes',
      'LogWhy yes',
      ...extra,
      '',
    ].join('\n'),
  );
  const milterd = await startMilterd(['-x', conf]);
  running.push(milterd);
  return { milterd, port };
}

interface Driven {
  endOfHeaders: StepReply;
  /** Absent when the message ended at end of headers. */
  endOfMessage?: EndOfMessageResult;
}

type Client = { hostname: string; family: ConnectFamily; address: string; port: number };

/**
 * One message through the milter, stage by stage as Postfix sends it; `client: null` sends no
 * CONNECT at all. `headers` (name, value with its leading space) are sent before the message's own.
 */
async function drive(
  port: number,
  message: Buffer,
  options: { client?: Client | null; headers?: Iterable<[string, Buffer]>; queueId?: string } = {},
): Promise<Driven> {
  const client = await MilterClient.open(`inet:${port}@127.0.0.1`, { timeoutMs: 120_000 });
  try {
    if (options.client !== null) await client.connect(options.client ?? OUTSIDE);
    await client.helo('client.example');
    client.macro('M', { i: options.queueId ?? 'QHOSTILE' });
    await client.mail('<a@sender.example>');
    await client.rcpt('<b@example.org>');
    await client.data();
    const leadingSpace = (client.options.protocol & ProtocolFlags.HeaderLeadingSpace) !== 0;
    const send = (name: string, value: Buffer) => client.header(name, !leadingSpace && value[0] === 0x20 ? value.subarray(1) : value);
    for (const [name, value] of options.headers ?? []) await send(name, value);
    const { headers, body } = splitMessage(message);
    for (const h of headers) await send(h.name, h.value);
    const endOfHeaders = await client.endOfHeaders();
    if (endOfHeaders && endOfHeaders.type !== 'continue') {
      client.abort();
      return { endOfHeaders };
    }
    if (body.length > 0) await client.body(body);
    return { endOfHeaders, endOfMessage: await client.endOfMessage() };
  } finally {
    await client.quit().catch(() => client.destroy());
  }
}

let counter = 0;
function message(from = 'Joe <joe@example.org>', extra = ''): Buffer {
  counter++;
  return Buffer.from(
    `From: ${from}\r\n${extra}To: Suzie <suzie@example.net>\r\nSubject: hostile ${counter}\r\nDate: Sat, 28 Nov 2026 05:00:00 +0000\r\nMessage-ID: <hostile.${counter}@example.org>\r\n\r\nHello ${counter}.\r\n`,
    'latin1',
  );
}

/** A message signed by third.example that does not oversign From (so a From can be prepended). */
async function thirdPartySigned(): Promise<Buffer> {
  const original = message('Newsletter <news@third.example>');
  const signature = await signMessage(original, {
    domain: 'third.example',
    selector: 'ed',
    privateKey: keys.ed25519.pem,
    oversignHeaders: [],
  });
  return Buffer.concat([Buffer.from(signature, 'latin1'), original]);
}

function authenticationResults(mods: readonly Modification[] | undefined): string[] {
  return (mods ?? []).flatMap((m) =>
    m.type === 'insertHeader' && m.name === 'Authentication-Results' ? [m.value.toString('latin1')] : [],
  );
}

/** An Authentication-Results value unfolded, white space runs as one space. */
function unfold(value: string | undefined): string {
  return (value ?? '').replace(/\r?\n(?=[ \t])/g, '').replace(/[ \t]+/g, ' ');
}

function replyOf(reply: StepReply): string {
  return reply?.type === 'replyCode' ? reply.text : (reply?.type ?? 'none');
}

/** The milterd log lines (JSON) whose message matches. */
function logLines(milterd: MilterdProcess, msg: RegExp): Record<string, unknown>[] {
  return milterd
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => msg.test(String(l.msg)));
}

describe('defaults (On-Security tempfail)', () => {
  let milterd: MilterdProcess;
  let port: number;
  beforeAll(async () => {
    ({ milterd, port } = await start('strict'));
  });

  it('300,000 small header fields: only counted, tempfailed at end of headers, RSS stays bounded', async () => {
    // warm up, then measure
    expect(insertedSignatures((await drive(port, message(), { client: LOCAL })).endOfMessage?.modifications ?? [])).toHaveLength(1);
    const before = rssKiB(milterd.pid);
    const value = Buffer.from(' x');
    function* many(): Generator<[string, Buffer]> {
      for (let i = 0; i < 300_000; i++) yield ['X-Filler', value];
    }
    const r = await drive(port, message(), { client: LOCAL, headers: many(), queueId: 'QMANY' });
    const after = rssKiB(milterd.pid);
    expect(r.endOfMessage).toBeUndefined();
    expect(replyOf(r.endOfHeaders)).toBe('451 4.3.4 DKIM: not accepted: the header section has more than 1000 fields');
    // Keeping the fields grew RSS by about 80 MiB per message; counting them needs next to nothing.
    expect(after - before, `RSS ${before} KiB -> ${after} KiB`).toBeLessThan(40 * 1024);
    await milterd.waitForOutput(/QMANY[^\n]*not signed: the header section has more than 1000 fields/);
    const [line] = logLines(milterd, /^not signed: the header section has more than 1000 fields; tempfail at end of headers/);
    expect(line).toMatchObject({ queueId: 'QMANY', role: 'refused', action: 'tempfail' });
    // the daemon still serves
    expect(insertedSignatures((await drive(port, message(), { client: LOCAL })).endOfMessage?.modifications ?? [])).toHaveLength(1);
  });

  it('a header section over MaximumHeaderBytes (1 MiB) is tempfailed at end of headers, signing or verifying', async () => {
    const big = Buffer.from(` ${'y'.repeat(60_000)}`);
    const headers = Array.from({ length: 18 }, (): [string, Buffer] => ['X-Big', big]);
    for (const client of [LOCAL, OUTSIDE]) {
      const r = await drive(port, message(), { client, headers });
      expect(r.endOfMessage).toBeUndefined();
      expect(replyOf(r.endOfHeaders)).toBe('451 4.3.4 DKIM: not accepted: the header section is over 1048576 bytes');
    }
    // 17 such fields (1,020,000 bytes and the message's own) stay under the limit and are signed
    const under = await drive(port, message(), { client: LOCAL, headers: headers.slice(1) });
    expect(insertedSignatures(under.endOfMessage?.modifications ?? [])).toHaveLength(1);
  });

  it('two From fields: never signed, tempfailed at end of headers (signing and verifying)', async () => {
    const twoFrom = message('Joe <joe@example.org>', 'From: Mallory <mallory@evil.example>\r\n');
    const signing = await drive(port, twoFrom, { client: LOCAL });
    expect(signing.endOfMessage).toBeUndefined();
    expect(replyOf(signing.endOfHeaders)).toBe('451 4.6.0 DKIM: not accepted: the message has 2 From fields (RFC 5322 allows one)');
    const prepended = Buffer.concat([Buffer.from('From: Joe <joe@example.org>\r\n'), await thirdPartySigned()]);
    const verifying = await drive(port, prepended, { client: OUTSIDE });
    expect(verifying.endOfMessage).toBeUndefined();
    expect(replyOf(verifying.endOfHeaders)).toBe('451 4.6.0 DKIM: not accepted: the message has 2 From fields (RFC 5322 allows one)');
    await milterd.waitForOutput(/not verified: the message has 2 From fields/);
    expect(logLines(milterd, /^not verified: the message has 2 From fields/)).toHaveLength(1);
  });

  it('a From field without an address from an internal client: not signed (nothing to choose a key by), logged, passed', async () => {
    const r = await drive(port, message('undisclosed-recipients:;'), { client: LOCAL, queueId: 'QNOADDRESS' });
    expect(r.endOfMessage?.reply.type).toBe('accept');
    expect(insertedSignatures(r.endOfMessage?.modifications ?? [])).toEqual([]);
    await milterd.waitForOutput(/QNOADDRESS[^\n]*"msg":"not signed: no From address"/);
  });

  it('under a real Postfix, the answer at end of headers is the SMTP reply to DATA, and nothing is delivered', async () => {
    const postfix = await startPostfix({ smtpdMilters: `inet:127.0.0.1:${port}` });
    running.push(postfix);
    const envelope = { from: 'joe@example.org', to: ['suzie@example.net'] };
    const twoFrom = await postfix.sendSmtp({
      ...envelope,
      data: message('Joe <joe@example.org>', 'From: Mallory <mallory@evil.example>\r\n'),
    });
    expect([twoFrom.data?.code, twoFrom.data?.text]).toEqual([
      451,
      '4.6.0 DKIM: not accepted: the message has 2 From fields (RFC 5322 allows one)',
    ]);
    const filler = Array.from({ length: 1001 }, (_, i) => `X-Filler-${i}: x\r\n`).join('');
    const many = await postfix.sendSmtp({ ...envelope, data: message('Joe <joe@example.org>', filler) });
    expect([many.data?.code, many.data?.text]).toEqual([451, '4.3.4 DKIM: not accepted: the header section has more than 1000 fields']);
    // a good message after them is delivered, signed: nothing of the refused ones arrived
    expect((await postfix.sendSmtp({ ...envelope, data: message() })).data?.code).toBe(250);
    const delivered = await postfix.waitForDelivered(1);
    expect(delivered).toHaveLength(1);
    expect(delivered[0]?.data.toString('latin1')).toMatch(/^DKIM-Signature: /m);
  });

  it('forged Authentication-Results with our authserv-id in capitals or with a trailing dot are removed; another authserv-id stays', async () => {
    const extra = [
      `Authentication-Results: ${AUTHSERV}.; dkim=pass header.d=example.org\r\n`,
      'Authentication-Results: other.example; dkim=pass header.d=example.org\r\n',
      `Authentication-Results: (forged) ${AUTHSERV.toUpperCase()} (really); dkim=pass header.d=example.org\r\n`,
    ].join('');
    const r = await drive(port, message('Joe <joe@example.org>', extra), { client: OUTSIDE });
    const deleted = (r.endOfMessage?.modifications ?? []).filter((m) => m.type === 'changeHeader');
    expect(deleted.map((m) => (m.type === 'changeHeader' ? [m.name, m.index, m.value.length] : []))).toEqual([
      ['Authentication-Results', 3, 0],
      ['Authentication-Results', 1, 0],
    ]);
    expect(authenticationResults(r.endOfMessage?.modifications)).toHaveLength(1);
  });

  it('a 100 KB From address is logged cut short, in every line that names it', async () => {
    const local = 'q'.repeat(100_000);
    const r = await drive(port, message(`<${local}@example.org>`), { client: OUTSIDE, queueId: 'QLONGFROM' });
    expect(r.endOfMessage?.reply.type).toBe('accept');
    // pino writes asynchronously: wait for the last line of this message
    await milterd.waitForOutput(/QLONGFROM[^\n]*"msg":"verified"/);
    const lines = milterd
      .output()
      .split('\n')
      .filter((l) => l.includes('qqqq'));
    // the warning about an outside host sending as example.org, and the verification line
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) {
      expect(l.length).toBeLessThan(4096);
      expect(l).toMatch(/q{256}\.\.\.\[99756 more characters\]/);
    }
    expect(forLog('abc', 2)).toBe('ab...[1 more characters]');
  });
});

describe('On-Security accept', () => {
  let milterd: MilterdProcess;
  let port: number;
  beforeAll(async () => {
    ({ milterd, port } = await start('lenient', ['On-Security accept']));
  });

  it('two From fields from an internal client: passed unsigned, logged as a security concern', async () => {
    const r = await drive(port, message('Joe <joe@example.org>', 'From: Joe <joe@example.org>\r\n'), {
      client: LOCAL,
      queueId: 'QTWOSIGN',
    });
    expect(r.endOfHeaders?.type ?? 'continue').toBe('continue');
    expect(r.endOfMessage?.reply.type).toBe('accept');
    expect(insertedSignatures(r.endOfMessage?.modifications ?? [])).toEqual([]);
    await milterd.waitForOutput(/QTWOSIGN[^\n]*passed unsigned because On-Security is accept/);
    const [line] = logLines(milterd, /^not signed: the message has 2 From fields .*passed unsigned because On-Security is accept/);
    expect(line).toMatchObject({ queueId: 'QTWOSIGN', role: 'refused', action: 'accept', level: 40 });
  });

  it('a From prepended to a third-party signature: dkim=policy with the reason, never dkim=pass', async () => {
    const signed = await thirdPartySigned();
    const alone = await drive(port, signed, { client: OUTSIDE });
    expect(authenticationResults(alone.endOfMessage?.modifications).join('')).toMatch(/dkim=pass .*header\.d=third\.example/s);
    const prepended = Buffer.concat([Buffer.from('From: Mallory <ceo@example.org>\r\n'), signed]);
    const r = await drive(port, prepended, { client: OUTSIDE, queueId: 'QPREPENDED' });
    expect(r.endOfMessage?.reply.type).toBe('accept');
    const [ar] = authenticationResults(r.endOfMessage?.modifications);
    const unfolded = unfold(ar);
    expect(unfolded).not.toMatch(/dkim=pass/);
    expect(unfolded).toMatch(
      /dkim=policy (\([^)]*\) )?reason="the message has 2 From fields \(RFC 5322 allows one\)" header\.d=third\.example/,
    );
    await milterd.waitForOutput(/QPREPENDED[^\n]*"msg":"verified: the message has 2 From fields/);
    expect(logLines(milterd, /^verified: the message has 2 From fields/)[0]).toMatchObject({ queueId: 'QPREPENDED', action: 'accept' });
  });

  it('over the header limit: not verified, and the Authentication-Results field says why', async () => {
    const headers = Array.from({ length: 1001 }, (): [string, Buffer] => ['X-Filler', Buffer.from(' x')]);
    const signed = await drive(port, await thirdPartySigned(), { client: OUTSIDE, headers });
    expect(signed.endOfMessage?.reply.type).toBe('accept');
    expect(unfold(authenticationResults(signed.endOfMessage?.modifications).join(''))).toMatch(
      /^ ?mx\.inkan\.test; dkim=policy reason="not verified: the header section has more than 1000 fields"$/,
    );
    const unsigned = await drive(port, message('Someone <someone@other.example>'), { client: OUTSIDE, headers });
    expect(unfold(authenticationResults(unsigned.endOfMessage?.modifications).join(''))).toMatch(/dkim=none reason="not verified: /);
    // and from an internal client: passed unsigned
    const internal = await drive(port, message(), { client: LOCAL, headers });
    expect(internal.endOfMessage?.reply.type).toBe('accept');
    expect(insertedSignatures(internal.endOfMessage?.modifications ?? [])).toEqual([]);
  });
});

describe('clients the MTA reports without an address follow InternalHosts', () => {
  const unix: Client = { hostname: 'localhost', family: 'unix', address: '/var/spool/postfix/public/submit', port: 0 };
  const unknown: Client = { hostname: 'localhost', family: 'unknown', address: '', port: 0 };
  const named: Client = { hostname: 'relay.internal.example', family: 'unknown', address: '', port: 0 };
  const signatures = (r: Driven) => insertedSignatures(r.endOfMessage?.modifications ?? []).length;
  const verified = (r: Driven) => authenticationResults(r.endOfMessage?.modifications).length;

  it('InternalHosts 192.0.2.250, !127.0.0.1: unix, unknown-family and CONNECT-less clients are verified, not signed; a named host entry matches', async () => {
    const { port } = await start('hosts', ['InternalHosts 192.0.2.250, !127.0.0.1, relay.internal.example']);
    for (const client of [unix, unknown, null]) {
      const r = await drive(port, message(), { client });
      expect([signatures(r), verified(r)], `client ${client?.family ?? 'without CONNECT'}`).toEqual([0, 1]);
    }
    expect(signatures(await drive(port, message(), { client: LOCAL }))).toBe(0);
    expect(signatures(await drive(port, message(), { client: named }))).toBe(1);
    expect(signatures(await drive(port, message(), { client: { ...OUTSIDE, address: '192.0.2.250' } }))).toBe(1);
  });

  it('UnixClientsInternal yes: unix clients are signed; unknown-family and CONNECT-less ones still are not', async () => {
    const { port } = await start('unix-internal', ['InternalHosts 192.0.2.250, !127.0.0.1', 'UnixClientsInternal yes']);
    expect(signatures(await drive(port, message(), { client: unix }))).toBe(1);
    for (const client of [unknown, null]) expect(signatures(await drive(port, message(), { client }))).toBe(0);
  });
});

describe('the filter never inserts a field value that would break the header section (unit, fake modifier)', () => {
  /** Runs one verified message through createFilter with this authserv-id and a recording modifier. */
  async function run(formatted: string | undefined, modifierOverrides: Partial<Record<'deleteHeader' | 'insertHeader', () => never>> = {}) {
    const config = parseConfigText('Mode v\nAlwaysAddARHeader yes\n', 'unit.conf');
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
    const runtime = {
      config,
      plan: new SigningPlan([], [], { wildcard: false, multiple: false, subDomains: false }),
      internalHosts: new HostList(['127.0.0.1']),
      resolver: { lookup: async () => [] },
      authservId: 'mx.inkan.test',
      logger,
    };
    const calls: string[] = [];
    const modifier = {
      insertHeader: (_i: number, name: string) => calls.push(`insert ${name}`),
      deleteHeader: (name: string, i: number) => calls.push(`delete ${name} ${i}`),
      quarantine: () => calls.push('quarantine'),
      ...modifierOverrides,
    } as unknown as Modifier;
    const ctx = {
      options: { protocol: ProtocolFlags.HeaderLeadingSpace },
      macros: new Map([['i', 'QUNIT']]),
      client: { hostname: 'outside.example', family: 'inet', address: '192.0.2.7', ip: '192.0.2.7', port: 1 },
    } as unknown as MilterContext;
    const handler = createFilter(() => runtime as never)(ctx);
    await handler.mail?.({ address: 'a@b.example', raw: '<a@b.example>', args: [] }, ctx);
    await handler.header?.('From', Buffer.from(' joe@example.org'), ctx);
    await handler.header?.('Authentication-Results', Buffer.from(' mx.inkan.test; dkim=pass'), ctx);
    await handler.endOfHeaders?.(ctx);
    await handler.body?.(Buffer.from('hi\r\n'), ctx);
    injected.value = formatted;
    let decision: unknown;
    try {
      decision = await handler.endOfMessage?.(modifier, ctx);
    } finally {
      injected.value = undefined;
    }
    return { decision, calls, errors: lines.filter((l) => l.level === 50) };
  }

  it('a bare LF or a NUL in the value: refused, On-InternalError (tempfail), logged with what failed', async () => {
    for (const bad of [
      'mx.inkan.test; dkim=none\nX-Injected: yes',
      'mx.inkan.test; dkim=none\rX-Injected: yes',
      'mx.inkan.test; dkim=none reason="\0"',
    ]) {
      const r = await run(bad);
      expect(r.calls.filter((c) => c.startsWith('insert'))).toEqual([]);
      expect(r.decision).toMatchObject({ code: 451, text: 'DKIM: internal error, try again later' });
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatchObject({
        failed: 'inserting Authentication-Results',
        error: expect.stringMatching(/^refused to insert Authentication-Results: /),
      });
    }
    expect((await run('mx.inkan.test; dkim=none\n\treason="folded"')).calls).toEqual([
      'delete Authentication-Results 1',
      'insert Authentication-Results',
    ]);
  });

  it('a modifier that throws while forged fields are removed: On-InternalError, not an escaped error', async () => {
    const r = await run(undefined, {
      deleteHeader: () => {
        throw new Error('deleteHeader: refused by the modifier');
      },
    });
    expect(r.decision).toMatchObject({ code: 451 });
    expect(r.errors[0]).toMatchObject({ failed: 'removing forged Authentication-Results', error: 'deleteHeader: refused by the modifier' });
  });
});
