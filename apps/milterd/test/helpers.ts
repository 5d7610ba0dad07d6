import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { type EndOfMessageResult, MilterClient, type Modification, ProtocolFlags, splitMessage } from '@inkan/milter-protocol';
import { type PostfixInstance, runProgram, subjectOf, waitFor } from '@inkan/testbed';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'inkan-milterd.js');

export interface MilterdProcess {
  child: ChildProcess;
  pid: number;
  /** Everything it wrote so far (stdout and stderr). */
  output(): string;
  /** Wait (bounded) until the output matches. */
  waitForOutput(pattern: RegExp, tries?: number): Promise<void>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** SIGTERM and wait; SIGKILL if it does not go within 15 s. */
  stop(): Promise<number | null>;
}

/** Run inkan-milterd as a real process with these arguments; resolves once it is ready. */
export async function startMilterd(args: string[], options: { env?: NodeJS.ProcessEnv; expectExit?: boolean } = {}): Promise<MilterdProcess> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? 128 : null);
      r(exitCode);
    }),
  );
  const proc: MilterdProcess = {
    child,
    pid: child.pid as number,
    output: () => output,
    waitForOutput: (pattern, tries = 200) =>
      waitFor(() => {
        if (pattern.test(output)) return true;
        if (exitCode !== undefined) throw new Error(`inkan-milterd exited (${exitCode}) before ${pattern}:\n${output}`);
        return false;
      }, `inkan-milterd output ${pattern}`, tries),
    exited,
    async stop() {
      if (exitCode !== undefined) return exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  if (!options.expectExit) {
    try {
      await proc.waitForOutput(/"msg":"ready"/);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
  }
  return proc;
}

export function fixture(name: string): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'fixtures', name);
}

/**
 * Send 24 messages through a private Postfix (every third with its sendmail command, the
 * rest over SMTP) while the milter goes away after the 8th (`outage`), then bring it back
 * (`restart`), resend what Postfix tempfailed at SMTP (as a client would), flush the queue,
 * and check every message arrived exactly once and signed. Returns how many were resent.
 */
export async function sendThroughOutage(postfix: PostfixInstance, outage: () => Promise<unknown>, restart: () => Promise<unknown>): Promise<number> {
  const message = (subject: string) =>
    Buffer.from(`From: Joe <joe@example.org>\r\nTo: suzie@example.net\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.org>\r\n\r\nBody of ${subject}.\r\n`);
  const envelope = { from: 'joe@example.org', to: ['suzie@example.net'] };
  const subjects = Array.from({ length: 24 }, (_, i) => `outage ${i}`);
  const retry: string[] = [];
  let down: Promise<unknown> | undefined;
  for (const [i, subject] of subjects.entries()) {
    if (i === 8) down = outage();
    if (i % 3 === 2) {
      // The non-SMTP path: always queued; cleanup defers it while the milter is away.
      const r = await postfix.sendmail(message(subject), envelope);
      expect(r.code, r.stderr).toBe(0);
      continue;
    }
    const r = await postfix.sendSmtp({ ...envelope, data: message(subject) });
    if ((r.data?.code ?? r.mail.code) === 250) continue;
    expect(Math.floor((r.data?.code ?? r.rejected[0]?.reply.code ?? r.mail.code) / 100), `${subject}: ${JSON.stringify(r.data ?? r.mail)}`).toBe(4);
    retry.push(subject); // a 4xx: the SMTP client keeps the message and tries again later
  }
  await down;
  await restart();
  for (const subject of retry) expect((await postfix.sendSmtp({ ...envelope, data: message(subject) })).data?.code).toBe(250);
  await runProgram('postqueue', ['-c', postfix.configDir, '-f']);
  const delivered = await postfix.waitForDelivered(subjects.length, 600);
  const got = delivered.map((m) => subjectOf(m.data)).sort();
  expect(got).toEqual([...subjects].sort());
  for (const m of delivered) expect(m.data.toString('latin1'), m.file).toMatch(/^DKIM-Signature: /m);
  return retry.length;
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

/** VmRSS of a process, in KiB (from /proc/<pid>/status). */
export function rssKiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? Number.NaN);
}

/** Open file descriptors of a process (entries of /proc/<pid>/fd). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
