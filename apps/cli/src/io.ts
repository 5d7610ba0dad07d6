import { readFile } from 'node:fs/promises';
import { normalizeLineEndings } from '@inkan/dkim-core';

export interface Io {
  stdout: (text: string | Buffer) => void;
  stderr: (text: string) => void;
  /** Reads standard input whole (only when no file is named). */
  stdin: () => Promise<Buffer>;
  /** Whether stdout / stderr are terminals (colors, progress bar). */
  stdoutTty: boolean;
  stderrTty: boolean;
}

export const processIo: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  stdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  },
  stdoutTty: process.stdout.isTTY === true,
  stderrTty: process.stderr.isTTY === true,
};

/** A usage or I/O problem: exit status 2. */
export class CliError extends Error {}

/** Read a message from a file ("-": standard input), bare LF line ends turned into CRLF. */
export async function readMessage(file: string, io: Io): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = file === '-' ? await io.stdin() : await readFile(file);
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return normalizeLineEndings(bytes);
}

const COLORS = { green: 32, red: 31, yellow: 33, dim: 2, bold: 1 } as const;

export function paint(on: boolean, color: keyof typeof COLORS, text: string): string {
  return on ? `\x1b[${COLORS[color]}m${text}\x1b[0m` : text;
}
