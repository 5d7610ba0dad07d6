import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { type PostfixInstance, runProgram, waitFor } from '@inkan/testbed';

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
  const got = delivered.map((m) => /^Subject: (.*)$/m.exec(m.data.toString('latin1'))?.[1]?.trim()).sort();
  expect(got).toEqual([...subjects].sort());
  for (const m of delivered) expect(m.data.toString('latin1'), m.file).toMatch(/^DKIM-Signature: /m);
  return retry.length;
}
