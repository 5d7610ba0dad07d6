import { chownSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { type EndOfMessageResult, MilterClient, type Modification, ProtocolFlags, splitMessage } from '@inkan/milter-protocol';
import { MILTERD_BIN, type MilterdProcess, type PostfixInstance, runProgram, startMilterdOnPort } from '@inkan/testbed';
import { nobody } from '../src/internal.js';

/** inkan-milterd as a real process: the testbed's, shared with the bench and the soak. */
export { startMilterd, type MilterdProcess } from '@inkan/testbed';

/** A key file (mode 0600) the daemon can still read after it dropped root: owned by nobody when we are root. */
export function writeDaemonKey(path: string, pem: string): void {
  rmSync(path, { recursive: true, force: true });
  writeFileSync(path, pem, { mode: 0o600 });
  if (process.getuid?.() === 0) {
    const n = nobody();
    chownSync(path, n.uid, n.gid);
  }
}

export function fixture(name: string): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'fixtures', name);
}

/**
 * An inkan-milterd that only verifies, for the MTA tests: 127.0.0.1 is the outside world for
 * it, keys come from `dnsPort`, and it always adds Authentication-Results with our authserv-id.
 */
export async function startVerifyingMilterd(
  dir: string,
  dnsPort: number,
  authservId: string,
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<{ milterd: MilterdProcess; port: number }> {
  const lines = [
    'Mode v',
    '# 127.0.0.1 is the outside world for this instance',
    'InternalHosts 192.0.2.1',
    `AuthservID ${authservId}`,
    'AlwaysAddARHeader yes',
    `Nameservers 127.0.0.1@${dnsPort}`,
    'DNSTimeout 2',
    'LogWhy yes',
  ];
  const { milterd, port } = await startMilterdOnPort(join(dir, 'verify.conf'), lines, options);
  return { milterd, port };
}

/** Messages sent through each outage under Postfix (SIGKILL, SIGTERM): the reliability issue's figure. */
export const OUTAGE_MESSAGES = 2000;

/** What sendThroughOutage did. */
export interface OutageRun {
  sent: number;
  /** Tempfailed at SMTP while the milter was away, and sent again (as an SMTP client would). */
  resent: number;
  /** Submitted with sendmail(1) while the milter was away: kept in Postfix's queue, flushed later. */
  queued: number;
  seconds: number;
}

/**
 * Send `count` messages through Postfix from `concurrency` senders at once, every third with
 * sendmail(1) (the non-SMTP path: always queued) and the rest over SMTP. The milter goes
 * away (`outage`) once 40 % have been sent and comes back (`restart`) at 70 %, while the
 * senders keep going; then what Postfix tempfailed at SMTP is sent again, the queue is
 * flushed, and every Message-ID must have arrived exactly once, signed.
 */
export async function sendThroughOutage(
  postfix: PostfixInstance,
  outage: () => Promise<unknown>,
  restart: () => Promise<unknown>,
  options: { count?: number; concurrency?: number } = {},
): Promise<OutageRun> {
  const count = options.count ?? 24;
  const concurrency = Math.max(1, Math.min(options.concurrency ?? 1, count));
  const started = performance.now();
  const id = (i: number) => `outage-${i}@example.org`;
  const message = (i: number) =>
    Buffer.from(
      `From: Joe <joe@example.org>\r\nTo: suzie@example.net\r\nSubject: outage ${i}\r\nMessage-ID: <${id(i)}>\r\n\r\nBody of message ${i}.\r\n`,
    );
  const envelope = { from: 'joe@example.org', to: ['suzie@example.net'] };
  const down = Math.floor(count * 0.4);
  const up = Math.floor(count * 0.7);
  let next = 0;
  let outageDone: Promise<unknown> | undefined;
  let restartDone: Promise<unknown> | undefined;
  let away = false;
  let queued = 0;
  const retry: number[] = [];
  const sender = async () => {
    while (next < count) {
      const i = next++;
      if (i === down) outageDone = outage().then(() => (away = true));
      if (i >= down) await outageDone;
      if (i === up) restartDone = restart().then(() => (away = false));
      if (i >= up) await restartDone;
      if (i % 3 === 2) {
        const r = await postfix.sendmail(message(i), envelope);
        expect(r.code, r.stderr).toBe(0);
        if (away) queued++;
        continue;
      }
      const r = await postfix.sendSmtp({ ...envelope, data: message(i) });
      // Queued only when the end of DATA got 250: a 4xx may come at MAIL, RCPT (then DATA is never sent) or DATA.
      if (r.data?.code === 250) continue;
      const refusal = r.data ?? r.rejected[0]?.reply ?? r.mail;
      expect(Math.floor(refusal.code / 100), `message ${i}: ${JSON.stringify(refusal)}`).toBe(4);
      retry.push(i); // a 4xx: the SMTP client keeps the message and tries again later
    }
  };
  await Promise.all(Array.from({ length: concurrency }, sender));
  await outageDone;
  await restartDone;
  for (const i of retry) expect((await postfix.sendSmtp({ ...envelope, data: message(i) })).data?.code, `resending message ${i}`).toBe(250);
  await runProgram('postqueue', ['-c', postfix.configDir, '-f']);
  const delivered = await postfix.waitForDelivered(count, Math.max(600, count * 2)).catch(async (error: Error) => {
    throw new Error(
      `${error.message}\n${await outageReport(
        postfix,
        Array.from({ length: count }, (_, i) => id(i)),
      )}`,
    );
  });
  const ids = delivered.map((m) => /^Message-ID:\s*<([^>]+)>/im.exec(m.data.toString('latin1'))?.[1] ?? `(none in ${m.file})`);
  expect(ids.length).toBe(count);
  expect(new Set(ids).size).toBe(count);
  expect([...ids].sort()).toEqual(Array.from({ length: count }, (_, i) => id(i)).sort());
  const unsigned = delivered.filter((m) => !/^DKIM-Signature: /m.test(m.data.toString('latin1')));
  expect(unsigned.map((m) => m.file)).toEqual([]);
  return { sent: count, resent: retry.length, queued, seconds: (performance.now() - started) / 1000 };
}

/**
 * What became of the messages the sink has not seen: their lines in Postfix's log (by
 * Message-ID, then by queue ID) and Postfix's queue, for a failed outage run.
 */
async function outageReport(postfix: PostfixInstance, ids: string[]): Promise<string> {
  const seen = new Set(postfix.sink.messages.map((m) => /^Message-ID:\s*<([^>]+)>/im.exec(m.data.toString('latin1'))?.[1]));
  const missing = ids.filter((i) => !seen.has(i));
  const log = postfix.maillog().split('\n');
  const queueIds = new Set(
    log.flatMap((line) => (missing.some((i) => line.includes(`<${i}>`)) ? [/: ([0-9A-F]{6,}): /.exec(line)?.[1] ?? ''] : [])),
  );
  queueIds.delete('');
  const lines = log.filter((line) => missing.some((i) => line.includes(`<${i}>`)) || [...queueIds].some((q) => line.includes(`${q}:`)));
  const queue = await runProgram('postqueue', ['-c', postfix.configDir, '-p']).catch((e: Error) => ({ stdout: e.message }));
  return [
    `missing at the sink: ${missing.slice(0, 20).join(', ') || '(none)'}`,
    '--- their log lines ---',
    ...lines.slice(0, 60),
    '--- postqueue -p ---',
    queue.stdout.slice(0, 4000),
  ].join('\n');
}

/** One transaction driven stage by stage, with the times that matter for stalls. */
export interface TimedTransaction {
  endOfMessage: EndOfMessageResult;
  /** From end of headers (where key lookups start) to the final reply, ms. */
  afterHeadersMs: number;
  /** From connecting to the final reply, ms. */
  totalMs: number;
}

/**
 * Drive one message through a milter as Postfix does (connect ... end of message) with the
 * milter client, timing it. `client` is the SMTP client the MTA reports (default: outside).
 */
export async function timedTransaction(
  spec: string,
  message: Buffer,
  options: { client?: { address: string; hostname: string }; sender?: string; timeoutMs?: number } = {},
): Promise<TimedTransaction> {
  const started = performance.now();
  const client = await MilterClient.open(spec, { timeoutMs: options.timeoutMs ?? 30_000 });
  try {
    const peer = options.client ?? { address: '192.0.2.7', hostname: 'outside.example' };
    await client.connect({ hostname: peer.hostname, family: 'inet', address: peer.address, port: 40000 });
    await client.helo(peer.hostname);
    await client.mail(`<${options.sender ?? 'a@sender.example'}>`);
    await client.rcpt('<b@example.org>');
    await client.data();
    const { headers, body } = splitMessage(message);
    const leadingSpace = (client.options.protocol & ProtocolFlags.HeaderLeadingSpace) !== 0;
    for (const h of headers) await client.header(h.name, !leadingSpace && h.value[0] === 0x20 ? h.value.subarray(1) : h.value);
    await client.endOfHeaders();
    const afterHeaders = performance.now();
    if (body.length > 0) await client.body(body);
    const endOfMessage = await client.endOfMessage();
    const done = performance.now();
    return { endOfMessage, afterHeadersMs: done - afterHeaders, totalMs: done - started };
  } finally {
    await client.quit().catch(() => client.destroy());
  }
}

/** The DKIM-Signature fields a milter inserted, as field text (CRLF folding), in the order the MTA leaves them on top. */
export function insertedSignatures(modifications: readonly Modification[]): string[] {
  const fields: string[] = [];
  for (const m of modifications) {
    if (m.type !== 'insertHeader' || m.name !== 'DKIM-Signature') continue;
    fields.splice(Math.min(m.index, fields.length), 0, `DKIM-Signature:${m.value.toString('latin1').replace(/\r?\n/g, '\r\n')}\r\n`);
  }
  return fields;
}

/** The message as the MTA would send it on: the inserted signatures on top. */
export function withSignatures(message: Buffer, modifications: readonly Modification[]): Buffer {
  return Buffer.concat([Buffer.from(insertedSignatures(modifications).join(''), 'latin1'), message]);
}

/**
 * Each configuration is written to `dir` (file name from its label, or `files[label]`) after a
 * `RequireSafeKeys no` line, and checked with `--check-config` beside the `extra` runs; every
 * run must exit with `code`, its stderr match its pattern, and its output pass `inspect`.
 */
export async function expectRefusedConfigs(options: {
  dir: string;
  configs: [label: string, config: string, error: RegExp][];
  extra?: [label: string, args: string[], error: RegExp][];
  fileNames?: Record<string, string>;
  code: number;
  inspect: (output: string, label: string) => void;
  env?: NodeJS.ProcessEnv;
}): Promise<void> {
  const runs: [string, string[], RegExp][] = [...(options.extra ?? [])];
  for (const [label, text, error] of options.configs) {
    const conf = join(options.dir, options.fileNames?.[label] ?? `${label}.conf`);
    writeFileSync(conf, `RequireSafeKeys no\n${text}`);
    runs.push([label, ['-x', conf], error]);
  }
  const env = { ...process.env, ...options.env };
  const results = await Promise.all(
    runs.map(([, args]) => runProgram(process.execPath, [MILTERD_BIN, ...args, '--check-config'], { timeoutMs: 30_000, env })),
  );
  for (const [i, [label, , error]] of runs.entries()) {
    const r = results[i] as Awaited<ReturnType<typeof runProgram>>;
    expect(r.code, `${label}: ${r.stderr}`).toBe(options.code);
    expect(r.stderr, label).toMatch(error);
    options.inspect(r.stdout + r.stderr, label);
  }
}
