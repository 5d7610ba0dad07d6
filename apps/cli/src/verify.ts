import type { VerificationResult } from '@inkan/dkim-core';
import { verifyDkimAndDomainKeys } from '@inkan/domainkeys-verify';
import { CliError, type Io, paint, readMessage } from './io.js';
import { makeResolver } from './resolver.js';
import { type CommandContext, collect, positive } from './options.js';

export interface VerifyOptions {
  dns?: string[];
  keys?: string;
  json?: boolean;
  timeout?: number;
}

/** One signature as `inkan verify --json` prints it. */
export interface SignatureReport {
  method: 'dkim' | 'domainkeys';
  domain: string;
  selector: string;
  algorithm: string;
  result: VerificationResult['result'];
  /** Why, for programs (dkim-core's VerificationCode): "ok" on pass. */
  code: VerificationResult['code'];
  reason: string;
  testing: boolean;
  keyBits: number | null;
}

function report(r: VerificationResult): SignatureReport {
  return {
    method: r.method,
    domain: r.domain,
    selector: r.selector,
    algorithm: r.algorithm,
    result: r.result,
    code: r.code,
    reason: r.reason ?? '',
    testing: r.testing,
    keyBits: r.keyBits ?? null,
  };
}

function humanLines(file: string, sigs: SignatureReport[], color: boolean): string {
  const lines = [paint(color, 'bold', file)];
  if (sigs.length === 0) lines.push(`  ${paint(color, 'yellow', 'no signature')}`);
  const rows = sigs.map((s) => [
    s.method,
    s.result,
    s.domain || '-',
    s.selector || '-',
    s.algorithm || '-',
    s.keyBits ? `${s.keyBits}-bit` : '-',
    [s.testing ? 'testing' : '', s.reason].filter(Boolean).join('; '),
  ]);
  const widths = [0, 1, 2, 3, 4, 5].map((i) => Math.max(...rows.map((r) => (r[i] as string).length)));
  for (const r of rows) {
    const cells = r.slice(0, 6).map((c, i) => c.padEnd(widths[i] as number));
    const result = r[1] as string;
    cells[1] = paint(
      color,
      result === 'pass' ? 'green' : result === 'fail' || result === 'permerror' ? 'red' : 'yellow',
      cells[1] as string,
    );
    lines.push(`  ${cells.join('  ')}${r[6] ? `  ${paint(color, 'dim', r[6] as string)}` : ''}`.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `inkan verify`: every DKIM and DomainKeys signature of each file (stdin when none).
 * Exit 0 when every input has a passing signature, 1 otherwise, 2 when an input could not
 * be read or checked at all: that one is named on stderr and the others are still checked.
 */
export async function verifyCommand(files: string[], o: VerifyOptions, io: Io): Promise<number> {
  const inputs = files.length > 0 ? files : ['-'];
  const resolver = await makeResolver({
    ...(o.dns ? { dns: o.dns } : {}),
    ...(o.keys ? { keys: o.keys } : {}),
    ...(o.timeout ? { timeout: o.timeout } : {}),
  });
  const progress = io.stderrTty && inputs.length > 1;
  let allPass = true;
  let unchecked = false;
  for (const [index, file] of inputs.entries()) {
    if (progress) {
      const width = 30;
      const done = Math.round((index / inputs.length) * width);
      io.stderr(`\r[${'#'.repeat(done)}${' '.repeat(width - done)}] ${index}/${inputs.length} `);
    }
    let sigs: SignatureReport[];
    try {
      const message = await readMessage(file, io);
      const { dkim, domainkeys } = await verifyDkimAndDomainKeys(message, { resolver });
      sigs = [...dkim, ...domainkeys].map(report);
    } catch (error) {
      // One input that cannot be read (or breaks the verifier) does not stop the batch.
      if (progress) io.stderr('\r\x1b[K');
      const text = (error as Error).message;
      io.stderr(`inkan: ${error instanceof CliError ? text : `${file}: ${text}`}\n`);
      unchecked = true;
      continue;
    }
    if (!sigs.some((s) => s.result === 'pass')) allPass = false;
    if (progress) io.stderr('\r\x1b[K');
    io.stdout(o.json ? `${JSON.stringify({ file, signatures: sigs })}\n` : humanLines(file, sigs, io.stdoutTty));
  }
  if (progress) io.stderr(`\r\x1b[K${inputs.length} messages checked\n`);
  return unchecked ? 2 : allPass ? 0 : 1;
}

/** `inkan verify`: its options and help. */
export function addVerifyCommand({ program, io, setExitCode }: CommandContext): void {
  program
    .command('verify')
    .description('verify every DKIM and DomainKeys signature (stdin when no file is named)')
    .argument('[files...]', 'messages (LF-only files are read as CRLF)')
    .option('--dns <host:port>', 'ask this name server for keys (repeatable)', collect)
    .option('--keys <file>', 'read keys from a zone-style file first ("sel._domainkey.example.org v=DKIM1; p=...")')
    .option('--timeout <ms>', 'milliseconds per DNS try', positive('--timeout'), 5000)
    .option('--json', 'one JSON object per message, one per line')
    .addHelpText(
      'after',
      `
Exit status: 0 when every message has at least one passing signature, 1 otherwise, 2 on usage or I/O errors.
A file that cannot be read is named on stderr; the other files are still checked.

Examples:
  $ inkan verify message.eml
  $ inkan verify --json --dns 127.0.0.1:5353 ~/Maildir/cur/*
  $ inkan verify --keys test-keys.txt < message.eml`,
    )
    .action(async (files: string[], o) => {
      setExitCode(
        await verifyCommand(
          files,
          { ...(o.dns ? { dns: o.dns } : {}), ...(o.keys ? { keys: o.keys } : {}), json: !!o.json, timeout: o.timeout },
          io,
        ),
      );
    });
}
