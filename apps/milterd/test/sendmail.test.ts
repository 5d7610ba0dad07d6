/**
 * inkan-milterd under a real Sendmail 8.17: Debian's sendmail-bin and sendmail-cf, fetched with
 * apt-get download and extracted by the test harness (never installed: they conflict with
 * postfix), configured from a small .mc with the administrators' line
 * INPUT_MAIL_FILTER(`inkan', `S=local:/path/to/socket, F=T') (and an inet:port@127.0.0.1
 * variant). Mail over SMTP and through the MSP (sendmail -t, submit.cf) arrives signed and
 * dkimpy verifies it; inbound signed mail gets the right Authentication-Results; with F=T and
 * milterd down Sendmail answers 4xx and the message waits in the queue, to be delivered
 * exactly once, signed, when milterd is back; the negotiated milter options are logged.
 */
import { Buffer } from 'node:buffer';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authenticationResults,
  dkimKeyRecord,
  dkimpySign,
  dkimpyVerify,
  type DeliveredMessage,
  type DnsServer,
  freePort,
  headerValues,
  makeKeys,
  type SendmailInstance,
  startDnsmasq,
  startSendmail,
  subjectOf,
  tempDir,
  type TestKeys,
  waitFor,
} from '@inkan/testbed';
import { parseAuthenticationResults } from '@inkan/dkim-core';
import { describeActions, describeProtocol, formatSendmailFilter } from '@inkan/milter-protocol';
import { type MilterdProcess, startMilterd, startVerifyingMilterd } from './helpers.js';

const AUTHSERV = 'mx.inkan.test';
let keys: TestKeys;
let dns: DnsServer;
let dir: string;
let keyFile: string;
const running: { stop(): Promise<unknown> }[] = [];

/** A message the way a user agent writes it; LF line ends (sendmail -t and sendSmtp both take them). */
const message = (subject: string, from = 'Joe <joe@example.org>', to = 'Suzie <suzie@example.net>') =>
  `From: ${from}\nTo: ${to}\nSubject: ${subject}\nDate: Sat, 28 Nov 2026 05:00:00 +0000\nMessage-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@example.org>\n\nHello  from inkan under Sendmail.\n\n`;

const withSubject = (messages: readonly DeliveredMessage[], subject: string) => messages.filter((m) => subjectOf(m.data) === subject);

beforeAll(async () => {
  keys = makeKeys();
  dir = tempDir('inkan-milterd-sendmail-');
  running.push({ stop: async () => rmSync(dir, { recursive: true, force: true }) });
  chmodSync(dir, 0o755); // milterd drops root to nobody; its socket lives here
  keyFile = join(dir, 'rsa.private');
  writeFileSync(keyFile, keys.rsa2048.pem, { mode: 0o600 });
  dns = await startDnsmasq({
    'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    'good._domainkey.sender.example': dkimKeyRecord(keys.ed25519),
  });
  running.push(dns);
});

afterAll(async () => {
  for (const r of running.reverse()) await r.stop().catch(() => {});
});

/** dkimpy's verdict on each delivered message: [a=, d=, s=, pass, reason] per signature. */
async function dkimpy(messages: DeliveredMessage[]) {
  const verdicts = await dkimpyVerify(
    dns.port,
    messages.map((m) => m.file),
  );
  return messages.map((m) => verdicts.find((v) => v.file === m.file)?.signatures.map((s) => [s.a, s.d, s.s, s.pass, s.reason]));
}

describe('signing under Sendmail, S=local: socket, F=T', () => {
  let sendmail: SendmailInstance;
  let milterd: MilterdProcess;
  let socket: string;
  let milterdArgs: string[];
  const env = { INKAN_LOG_LEVEL: 'debug' };

  beforeAll(async () => {
    socket = join(dir, 'inkan.sock');
    milterdArgs = ['-p', `local:${socket}`, '-d', 'example.org', '-s', 'rsa', '-k', keyFile];
    milterd = await startMilterd(milterdArgs, { env });
    running.push(milterd);
    const started = Date.now();
    sendmail = await startSendmail({ milter: { socket: `local:${socket}` } });
    running.push(sendmail);
    const d = sendmail.distribution;
    console.log(
      `Sendmail ${sendmail.version} (${d.packages.join(', ')}) ready in ${Date.now() - started} ms: ` +
        `packages ${d.cached ? 'taken from the cache' : 'downloaded, extracted and the preload library compiled'} in ${d.preparedMs} ms (${d.dir})`,
    );
  });

  it("is Debian's Sendmail 8.17 compiled with MILTER, configured with the administrators' filter line", async () => {
    expect(sendmail.version).toMatch(/^8\.17\./);
    expect(sendmail.distribution.packageVersion).toMatch(/^8\.17\./);
    const info = await sendmail.compileInfo();
    expect(info).toMatch(/Compiled with:[\s\S]*\bMILTER\b/);
    expect(sendmail.filterLine).toBe(`INPUT_MAIL_FILTER(\`inkan', \`S=local:${socket}, F=T')dnl`);
    // the line inkan-milterd itself prints for its socket on a first run
    expect(sendmail.filterLine).toBe(`${formatSendmailFilter('inkan', `local:${socket}`, { onFailure: 'T' })}dnl`);
    expect(sendmail.mc.mta).toContain(sendmail.filterLine);
    // what m4 made of it in sendmail.cf
    const cf = readFileSync(sendmail.cf.mta, 'utf8');
    expect(cf).toContain(`Xinkan, S=local:${socket}, F=T`);
    expect(cf).toMatch(/^O InputMailFilters=inkan$/m);
  });

  it('1: mail sent by SMTP from 127.0.0.1 arrives at the sink signed by inkan; dkimpy verifies it', async () => {
    const before = sendmail.sink.messages.length;
    const r = await sendmail.sendSmtp({ from: 'joe@example.org', to: ['suzie@example.net'], data: message('over SMTP') });
    expect(r.mail.code).toBe(250);
    expect(r.data?.code, r.data?.text).toBe(250);
    const delivered = withSubject(await sendmail.waitForDelivered(before + 1), 'over SMTP');
    expect(delivered).toHaveLength(1);
    const m = delivered[0] as DeliveredMessage;
    expect(m.data.toString('latin1').match(/^DKIM-Signature:/gim)).toHaveLength(1);
    expect(await dkimpy([m])).toEqual([[['rsa-sha256', 'example.org', 'rsa', true, '']]]);
    expect(milterd.output()).toMatch(/"msg":"signed"/);
  });

  it("2: mail submitted with sendmail -t through the MSP (submit.cf) arrives signed; sendmail.cf's own command line bypasses milters", async () => {
    const before = sendmail.sink.messages.length;
    // What mail(1) does for a local user on Debian: sendmail -t (-i), read by submit.cf, which
    // queues in the client queue and relays by SMTP to the MTA, where the milter runs.
    const msp = await sendmail.submit(message('through the MSP'));
    expect(msp.code, msp.stderr).toBe(0);
    // The pitfall: sendmail.cf handling command-line input itself never calls milters.
    const direct = await sendmail.submitToMta(message('sendmail.cf command line'));
    expect(direct.code, direct.stderr).toBe(0);
    const all = await sendmail.waitForDelivered(before + 2);
    const viaMsp = withSubject(all, 'through the MSP');
    expect(viaMsp).toHaveLength(1);
    expect(await dkimpy(viaMsp)).toEqual([[['rsa-sha256', 'example.org', 'rsa', true, '']]]);
    // it went MSP -> SMTP -> MTA: the MTA's Received field names the SMTP hop from 127.0.0.1
    expect((viaMsp[0] as DeliveredMessage).data.toString('latin1')).toMatch(
      /^Received: from [^\r\n]*\[127\.0\.0\.1\][\s\S]*^Received: from [^\r\n]*UNIX: localhost/m,
    );
    const unsigned = withSubject(all, 'sendmail.cf command line');
    expect(unsigned).toHaveLength(1);
    expect((unsigned[0] as DeliveredMessage).data.toString('latin1')).not.toMatch(/^DKIM-Signature:/im);
    expect(sendmail.queueSize('msp')).toBe(0);
  });

  it('4: F=T: with milterd stopped Sendmail answers 4xx and keeps the message queued; once milterd is back and the queue runs it is delivered exactly once, signed', async () => {
    await milterd.stop();
    const before = sendmail.sink.messages.length;

    // Over SMTP the client is told to come back later ...
    const overSmtp = message('F=T over SMTP');
    const refused = await sendmail.sendSmtp({ from: 'joe@example.org', to: ['suzie@example.net'], data: overSmtp });
    expect(refused.mail.code, refused.mail.text).toBeGreaterThanOrEqual(400);
    expect(refused.mail.code).toBeLessThan(500);
    expect(refused.mail.text).toMatch(/^4\.3\.2 /);
    expect(refused.data).toBeUndefined();
    // ... and what a local user submits waits in the MSP's queue, deferred by the MTA's 451.
    const queued = await sendmail.submit(message('F=T through the MSP'));
    expect(queued.code, queued.stderr).toBe(0);
    expect(sendmail.queueSize('msp')).toBe(1);
    const mailq = await sendmail.listQueue('msp');
    console.log(`MSP queue while milterd is down:\n${mailq.trim()}`);
    expect(mailq).toMatch(/Deferred: 451 4\.3\.2/);
    expect(sendmail.sink.messages.length).toBe(before);
    expect(sendmail.maillog()).toMatch(/Milter \(inkan\): to error state/);

    // milterd back (same socket path), then the MSP queue run Debian's cron does (sendmail -Ac -q)
    milterd = await startMilterd(milterdArgs, { env });
    running.push(milterd);
    const run = await sendmail.runQueue('msp');
    expect(run.code, run.stderr).toBe(0);
    await sendmail.waitForDelivered(before + 1);
    // the SMTP client retries the same message, as a sending MTA does
    const retried = await sendmail.sendSmtp({ from: 'joe@example.org', to: ['suzie@example.net'], data: overSmtp });
    expect(retried.data?.code, retried.data?.text).toBe(250);
    await sendmail.waitForDelivered(before + 2);

    // both queues drain (the MTA removes its queue file once the sink has taken the message),
    // and a second queue run finds nothing left: each message exactly once
    expect(sendmail.queueSize('msp')).toBe(0);
    await waitFor(() => sendmail.queueSize('mta') === 0, 'the MTA queue to drain');
    expect((await sendmail.runQueue('msp')).code).toBe(0);
    expect((await sendmail.runQueue('mta')).code).toBe(0);
    const all = sendmail.sink.messages.slice(before);
    const viaMsp = withSubject(all, 'F=T through the MSP');
    const viaSmtp = withSubject(all, 'F=T over SMTP');
    expect(viaMsp).toHaveLength(1);
    expect(viaSmtp).toHaveLength(1);
    expect(all).toHaveLength(2);
    expect(await dkimpy([...viaMsp, ...viaSmtp])).toEqual([
      [['rsa-sha256', 'example.org', 'rsa', true, '']],
      [['rsa-sha256', 'example.org', 'rsa', true, '']],
    ]);
  });
});

describe('verifying under Sendmail, S=inet:port@127.0.0.1', () => {
  let sendmail: SendmailInstance;
  let milterd: MilterdProcess;

  beforeAll(async () => {
    let port: number;
    ({ milterd, port } = await startVerifyingMilterd(dir, dns.port, AUTHSERV, { env: { INKAN_LOG_LEVEL: 'debug' } }));
    running.push(milterd);
    sendmail = await startSendmail({ milter: { socket: `inet:${port}@127.0.0.1` } });
    running.push(sendmail);
    expect(sendmail.filterLine).toBe(`INPUT_MAIL_FILTER(\`inkan', \`S=inet:${port}@127.0.0.1, F=T')dnl`);
    expect(sendmail.filterLine).toBe(`${formatSendmailFilter('inkan', `inet:${port}@127.0.0.1`, { onFailure: 'T' })}dnl`);
  });

  it('3: inbound signed mail gets the right Authentication-Results: valid passes, tampered body or header fails, unsigned is none', async () => {
    const base = (subject: string) =>
      Buffer.from(message(subject, 'Alice <alice@sender.example>', 'bob@example.org').replace(/\n/g, '\r\n'), 'latin1');
    const sign = async (m: Buffer) =>
      Buffer.concat([
        Buffer.from(
          await dkimpySign({
            domain: 'sender.example',
            selector: 'good',
            algorithm: 'ed25519-sha256',
            canonicalization: 'relaxed/relaxed',
            pem: keys.ed25519.pem,
            message: m,
          }),
        ),
        m,
      ]);
    const valid = await sign(base('valid'));
    const tamperedBody = Buffer.from(
      (await sign(base('tampered body'))).toString('latin1').replace('under Sendmail', 'under sendmail'),
      'latin1',
    );
    const tamperedHeader = Buffer.from(
      (await sign(base('tampered header'))).toString('latin1').replace('To: bob@example.org', 'To: rob@example.org'),
      'latin1',
    );
    const before = sendmail.sink.messages.length;
    for (const data of [valid, tamperedBody, tamperedHeader, base('unsigned')]) {
      const r = await sendmail.sendSmtp({ from: 'alice@sender.example', to: ['bob@example.org'], data });
      expect(r.data?.code, r.data?.text).toBe(250);
    }
    const delivered = (await sendmail.waitForDelivered(before + 4)).slice(before);
    /** The results in the one Authentication-Results field of the one message with this subject, which must be ours. */
    const results = (subject: string) => {
      const m = withSubject(delivered, subject);
      expect(m, subject).toHaveLength(1);
      const ar = authenticationResults((m[0] as DeliveredMessage).data, parseAuthenticationResults);
      expect(
        ar.map((a) => a.authservId),
        subject,
      ).toEqual([AUTHSERV]);
      return ar[0]?.results ?? [];
    };
    expect(results('valid')).toEqual([
      expect.objectContaining({
        method: 'dkim',
        result: 'pass',
        properties: expect.arrayContaining([{ ptype: 'header', property: 'd', value: 'sender.example' }]),
      }),
    ]);
    expect(results('tampered body')).toEqual([
      expect.objectContaining({ method: 'dkim', result: 'fail', reason: 'body hash did not verify' }),
    ]);
    expect(results('tampered header')).toEqual([
      expect.objectContaining({ method: 'dkim', result: 'fail', reason: 'signature did not verify' }),
    ]);
    expect(results('unsigned')).toEqual([{ method: 'dkim', result: 'none', properties: [] }]);
    const sample = withSubject(delivered, 'valid')[0]?.data ?? '';
    console.log(`sample: Authentication-Results: ${headerValues(sample, 'Authentication-Results')[0]}`);
    expect(milterd.output()).toMatch(/negotiate: MTA offered v6/);
  });
});

/** The first milter packet each way of one connection: SMFIC_OPTNEG from Sendmail, SMFIR_OPTNEG from the filter. */
interface TappedSession {
  offer?: Buffer;
  reply?: Buffer;
}

/**
 * A TCP relay on 127.0.0.1 between Sendmail and inkan-milterd that passes every byte on and
 * keeps the first packet of each direction (the option negotiation), decoded below by hand,
 * independently of milterd's own log.
 */
async function negotiationTap(targetPort: number) {
  const sessions: TappedSession[] = [];
  const sockets = new Set<Socket>();
  const keepFirst = (session: TappedSession, key: keyof TappedSession) => {
    let pending = Buffer.alloc(0);
    return (chunk: Buffer) => {
      if (session[key]) return;
      pending = Buffer.concat([pending, chunk]);
      if (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0))
        session[key] = pending.subarray(0, 4 + pending.readUInt32BE(0));
    };
  };
  const server = createServer((mta) => {
    const session: TappedSession = {};
    sessions.push(session);
    const filter = connect({ host: '127.0.0.1', port: targetPort });
    for (const s of [mta, filter]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        mta.destroy();
        filter.destroy();
      });
    }
    mta.on('data', keepFirst(session, 'offer'));
    filter.on('data', keepFirst(session, 'reply'));
    mta.pipe(filter);
    filter.pipe(mta);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    sessions,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An SMFIC_OPTNEG / SMFIR_OPTNEG packet: length, 'O', version, actions, protocol (+ macro lists in a reply). */
function decodeOptneg(packet: Buffer | undefined) {
  if (!packet || packet.length < 17 || packet[4] !== 0x4f) throw new Error(`not an option negotiation packet: ${packet?.toString('hex')}`);
  const macros: Record<number, string> = {};
  for (let at = 17; at + 4 < packet.length; ) {
    const stage = packet.readUInt32BE(at);
    const end = packet.indexOf(0, at + 4);
    macros[stage] = packet.toString('latin1', at + 4, end < 0 ? packet.length : end);
    at = end < 0 ? packet.length : end + 1;
  }
  return { version: packet.readUInt32BE(5), actions: packet.readUInt32BE(9), protocol: packet.readUInt32BE(13), macros };
}

const hex = (n: number) => `0x${n.toString(16)}`;

describe('the milter negotiation with Sendmail, on the wire (S=inet: through a tap)', () => {
  let sendmail: SendmailInstance;
  let milterd: MilterdProcess;
  let tap: Awaited<ReturnType<typeof negotiationTap>>;

  beforeAll(async () => {
    const port = await freePort();
    milterd = await startMilterd(['-p', `inet:${port}@127.0.0.1`, '-d', 'example.org', '-s', 'rsa', '-k', keyFile], {
      env: { INKAN_LOG_LEVEL: 'debug' },
    });
    running.push(milterd);
    tap = await negotiationTap(port);
    running.push(tap);
    sendmail = await startSendmail({ milter: { socket: `inet:${tap.port}@127.0.0.1` } });
    running.push(sendmail);
  });

  it('5: whatever protocol version, actions and steps Sendmail negotiates are handled (logged here), over SMTP and the MSP', async () => {
    const before = sendmail.sink.messages.length;
    const r = await sendmail.sendSmtp({ from: 'joe@example.org', to: ['suzie@example.net'], data: message('negotiation over SMTP') });
    expect(r.data?.code, r.data?.text).toBe(250);
    expect((await sendmail.submit(message('negotiation through the MSP'))).code).toBe(0);
    const delivered = (await sendmail.waitForDelivered(before + 2)).slice(before);
    expect(await dkimpy(delivered)).toEqual([
      [['rsa-sha256', 'example.org', 'rsa', true, '']],
      [['rsa-sha256', 'example.org', 'rsa', true, '']],
    ]);

    // What went over the wire, decoded here ...
    const negotiated = tap.sessions.filter((s) => s.offer && s.reply);
    expect(negotiated.length).toBeGreaterThanOrEqual(2);
    const offer = decodeOptneg(negotiated[0]?.offer);
    const reply = decodeOptneg(negotiated[0]?.reply);
    console.log(
      [
        `Sendmail ${sendmail.version} offered: milter protocol v${offer.version}, actions ${hex(offer.actions)} (${describeActions(offer.actions)}), protocol ${hex(offer.protocol)} (${describeProtocol(offer.protocol)})`,
        `inkan-milterd agreed: v${reply.version}, actions ${hex(reply.actions)} (${describeActions(reply.actions)}), protocol ${hex(reply.protocol)} (${describeProtocol(reply.protocol)})`,
        `macros requested: ${JSON.stringify(reply.macros)}`,
      ].join('\n'),
    );
    // ... is the same for every connection ...
    for (const s of negotiated) {
      expect(decodeOptneg(s.offer)).toEqual(offer);
      expect(decodeOptneg(s.reply)).toEqual(reply);
    }
    // ... is what milterd says it saw and agreed to ...
    expect(milterd.output()).toContain(
      `negotiate: MTA offered v${offer.version} ${describeActions(offer.actions)} / ${describeProtocol(offer.protocol)}; agreed v${reply.version} ${describeActions(reply.actions)} / ${describeProtocol(reply.protocol)}`,
    );
    // ... and is what Sendmail 8.17 speaks: version 6 and all of its actions and steps, of
    // which inkan takes header changes, header leading space and macro lists.
    expect(offer.version).toBe(6);
    expect(reply.version).toBe(6);
    expect(reply.actions & ~offer.actions).toBe(0);
    expect(reply.protocol & ~offer.protocol).toBe(0);
    expect(describeActions(reply.actions).split('|')).toEqual(
      expect.arrayContaining(['SMFIF_ADDHDRS', 'SMFIF_CHGHDRS', 'SMFIF_SETSYMLIST']),
    );
    expect(describeProtocol(reply.protocol).split('|')).toContain('SMFIP_HDR_LEADSPC');
    const log = sendmail.maillog();
    expect(log).toMatch(/Milter \(inkan\): init success to negotiate/);
    expect(log).not.toMatch(/Milter \(inkan\): (to error state|error connecting)/);
    expect(milterd.output()).not.toMatch(/"level":(50|60)/);
  });
});
