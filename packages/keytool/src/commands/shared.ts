import { type Command, InvalidArgumentError } from 'commander';
import { dirname } from 'node:path';
import type { GenkeyResult } from '../genkey.js';
import type { Owner } from '../owner.js';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** What every command of inkan-keytool is given: the program, where to write, the global --json, the exit status. */
export interface CommandContext {
  program: Command;
  io: Io;
  /** --json was given before the command. */
  asJson: () => boolean;
  /** The exit status main returns when the command ends without throwing. */
  setExitCode: (code: number) => void;
}

export function intArg(name: string, min: number, max: number) {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

export function listArg(value: string): string[] {
  return value
    .split(/[,:]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A repeatable option: each use adds one value. */
export function repeatable(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** genkey made its output folder: say so on stderr (stdout stays the files and the record). */
export function reportCreatedFolder(io: Io, r: GenkeyResult, owner: Owner | undefined): void {
  if (!r.createdFolder) return;
  const outdir = dirname(r.privateKeyFile);
  const mode = `mode 0${(r.createdFolderMode ?? 0o700).toString(8)}${owner ? `, ${owner.user}:${owner.group}` : ''}`;
  const above = r.createdFolder !== outdir ? `, with the missing folders above it from ${r.createdFolder}` : '';
  io.stderr(`inkan-keytool: created the folder ${outdir} (${mode})${above}\n`);
}
