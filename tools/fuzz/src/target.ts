/**
 * What a fuzz target is: a function that takes bytes and runs inkan's real code on them.
 * Results the code documents for bad input (an error result, a null, a ConfigError naming
 * the line) are fine and handled inside the target; anything else it throws, an invariant
 * it breaks (InvariantError), or a run that never ends is a crash.
 */
import { Buffer } from 'node:buffer';

export interface FuzzTarget {
  /** Short name: the folder under corpus/, regressions/ and crashes/. */
  readonly name: string;
  /** One line for the report. */
  readonly description: string;
  /** Tokens the mutator inserts: the words of the grammar under test. */
  readonly dictionary: readonly (string | Buffer)[];
  /** Longest input the mutator makes (bytes). */
  readonly maxLength: number;
  /** Runs once per process before the first input (keys, servers). */
  setup?(): Promise<void> | void;
  /** Runs once at the end (closes what setup opened). */
  teardown?(): Promise<void> | void;
  /** One input. Throws (or rejects) only for a crash. */
  fuzz(data: Buffer): void | Promise<void>;
}

/** A property of the code under test that did not hold: always a crash. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

/** Throw an InvariantError unless `condition` holds. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === 'function' ? message() : message);
}

/** A short printable form of a value for invariant messages. */
export function show(value: unknown, max = 120): string {
  const text = Buffer.isBuffer(value)
    ? JSON.stringify(value.toString('latin1'))
    : typeof value === 'string'
      ? JSON.stringify(value)
      : String(JSON.stringify(value, bufferReplacer));
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

function bufferReplacer(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer') {
    return `<${Buffer.from((value as { data: number[] }).data).toString('latin1')}>`;
  }
  return value instanceof Map ? Object.fromEntries(value) : value;
}

/** Whether base64 text encodes at least one octet and has no lone last character (4n+1 of them). */
export function encodesOctets(base64: string): boolean {
  const data = base64.replace(/=+$/, '').length;
  return data > 0 && data % 4 !== 1;
}

/** Deep equality for plain data, Buffers and Maps (what parse results are made of). */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !sameData(v, b.get(k))) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!(Array.isArray(a) && Array.isArray(b)) || a.length !== b.length) return false;
    return a.every((v, i) => sameData(v, b[i]));
  }
  if (typeof a === 'object' && typeof b === 'object' && a !== null && b !== null) {
    const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
    const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => sameData((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return Number.isNaN(a) && Number.isNaN(b);
}

/**
 * Chunk sizes for feeding `length` bytes to a streaming API, derived from the input
 * itself so that a crash replays exactly: a small seeded generator picks sizes from 1
 * up to `maxChunk`.
 */
export function splitPoints(seed: Buffer, length: number, maxChunk = 64): number[] {
  let state = 0x811c9dc5;
  for (const b of seed) state = Math.imul(state ^ b, 0x01000193) >>> 0;
  const sizes: number[] = [];
  let left = length;
  // Each chunk is at least one byte, so this ends after `length` rounds at most.
  while (left > 0) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const size = Math.min(left, 1 + (state % maxChunk));
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

/** Cut `data` into pieces of the given sizes (views, no copies). */
export function chunks(data: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const size of sizes) {
    out.push(data.subarray(at, at + size));
    at += size;
  }
  return out;
}
