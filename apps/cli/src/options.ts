import { type Command, InvalidArgumentError } from 'commander';
import type { Io } from './io.js';

/** What each `inkan` command is given: the program to add itself to, where to write, and where its exit status goes. */
export interface CommandContext {
  program: Command;
  io: Io;
  /** The exit status main returns when the command ends without throwing. */
  setExitCode: (code: number) => void;
}

/** A repeatable option: each use adds one value. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** A comma (or colon) separated list. */
export const list = (value: string) =>
  value
    .split(/[,:]/)
    .map((s) => s.trim())
    .filter(Boolean);

export const positive = (name: string) => (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`${name} must be a positive whole number`);
  return Number(value);
};
