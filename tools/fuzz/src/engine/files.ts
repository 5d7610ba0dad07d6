/** Where a target's inputs live, and how they are read and named. */
import type { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** tools/fuzz, whether running from src/ (tests) or dist/ (the fuzzer). */
export const FUZZ_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const dirs = {
  /** Committed seeds, a few small files per target. */
  corpus: (target: string) => join(FUZZ_ROOT, 'corpus', target),
  /** Committed inputs that once crashed: replayed by the tests and used as seeds. */
  regressions: (target: string) => join(FUZZ_ROOT, 'regressions', target),
  /** New crashing inputs of the last runs (not committed). */
  crashes: (target: string) => join(FUZZ_ROOT, 'crashes', target),
  /** The corpus grown by earlier runs on this machine (not committed). */
  work: (target: string) => join(FUZZ_ROOT, 'work', target),
};

/** The name of an input file: the start of its SHA-256. */
export function inputName(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 16);
}

/** Every regular file in a folder, sorted by name; none when the folder is missing. */
export function readInputs(dir: string): { name: string; data: Buffer }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => !name.startsWith('.') && statSync(join(dir, name)).isFile())
    .sort()
    .map((name) => ({ name, data: readFileSync(join(dir, name)) }));
}

/** Write an input under its hash name; returns the path. */
export function saveInput(dir: string, data: Buffer): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, inputName(data));
  if (!existsSync(path)) writeFileSync(path, data);
  return path;
}
