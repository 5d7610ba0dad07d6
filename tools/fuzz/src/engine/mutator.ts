/**
 * Byte-level mutations in the manner of libFuzzer and AFL's havoc stage: bit flips,
 * interesting bytes and integers, insertion, deletion, duplication, dictionary tokens,
 * numbers swapped for edge values, and splicing with other corpus inputs. Each new input
 * is one corpus input with one to sixteen stacked mutations.
 */
import { Buffer } from 'node:buffer';

/** A small seeded generator (xorshift32): fast, and a run can be repeated with --seed. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }

  /** 32 random bits. */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  /** An integer in [0, n); 0 when n <= 0. */
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }

  chance(oneIn: number): boolean {
    return this.below(oneIn) === 0;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T;
  }
}

const INTERESTING_BYTES = [
  0x00, 0x01, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x28, 0x29, 0x2c, 0x2e, 0x2f, 0x3a, 0x3b, 0x3d, 0x40, 0x5c, 0x7c, 0x7f, 0x80, 0xff,
];
const INTERESTING_32 = [
  0, 1, 2, 3, 4, 5, 8, 13, 0x7f, 0x80, 0xff, 0x100, 0x1000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
];
const INTERESTING_NUMBERS = [
  '0',
  '1',
  '-1',
  '00',
  '65535',
  '65536',
  '2147483647',
  '4294967296',
  '9007199254740993',
  '99999999999999999999999',
  '1e9',
  '0x10',
  '007',
];

type Mutation = (input: Buffer) => Buffer;

export interface MutatorOptions {
  maxLength: number;
  dictionary: readonly Buffer[];
  /** Other inputs to splice with (the corpus). */
  corpus: () => readonly Buffer[];
}

export class Mutator {
  private readonly mutations: Mutation[];

  constructor(
    private readonly random: Random,
    private readonly options: MutatorOptions,
  ) {
    const m: Mutation[] = [
      (b) => this.flipBit(b),
      (b) => this.setByte(b),
      (b) => this.setInterestingByte(b),
      (b) => this.insertBytes(b),
      (b) => this.insertRepeated(b),
      (b) => this.deleteRange(b),
      (b) => this.duplicateRange(b),
      (b) => this.copyRange(b),
      (b) => this.swapRanges(b),
      (b) => this.setUint(b),
      (b) => this.addToByte(b),
      (b) => this.replaceNumber(b),
      (b) => this.truncate(b),
      (b) => this.splice(b),
      (b) => this.insertFromCorpus(b),
    ];
    if (options.dictionary.length > 0) {
      // Tokens matter most for text grammars: weigh them up.
      m.push(
        (b) => this.insertToken(b),
        (b) => this.insertToken(b),
        (b) => this.insertToken(b),
        (b) => this.overwriteToken(b),
      );
    }
    this.mutations = m;
  }

  /** A new input made from `input` by a few stacked mutations, at most maxLength bytes. */
  mutate(input: Buffer): Buffer {
    let out = input;
    const rounds = 1 << this.random.below(5);
    for (let i = 0; i < rounds; i++) out = this.random.pick(this.mutations)(out);
    if (out === input) out = this.insertBytes(input);
    return out.length > this.options.maxLength ? out.subarray(0, this.options.maxLength) : out;
  }

  private pos(b: Buffer, inclusiveEnd = false): number {
    return this.random.below(b.length + (inclusiveEnd ? 1 : 0));
  }

  private flipBit(b: Buffer): Buffer {
    if (b.length === 0) return this.insertBytes(b);
    const out = Buffer.from(b);
    const i = this.pos(out);
    out[i] = (out[i] as number) ^ (1 << this.random.below(8));
    return out;
  }

  private setByte(b: Buffer): Buffer {
    if (b.length === 0) return this.insertBytes(b);
    const out = Buffer.from(b);
    out[this.pos(out)] = this.random.below(256);
    return out;
  }

  private setInterestingByte(b: Buffer): Buffer {
    if (b.length === 0) return Buffer.of(this.random.pick(INTERESTING_BYTES));
    const out = Buffer.from(b);
    out[this.pos(out)] = this.random.pick(INTERESTING_BYTES);
    return out;
  }

  private addToByte(b: Buffer): Buffer {
    if (b.length === 0) return this.insertBytes(b);
    const out = Buffer.from(b);
    const i = this.pos(out);
    out[i] = ((out[i] as number) + 1 + this.random.below(35) - 18) & 0xff;
    return out;
  }

  private insertAt(b: Buffer, at: number, piece: Buffer): Buffer {
    return Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]);
  }

  private insertBytes(b: Buffer): Buffer {
    const n = 1 + this.random.below(8);
    const piece = Buffer.alloc(n);
    const printable = this.random.chance(2);
    for (let i = 0; i < n; i++) piece[i] = printable ? 0x20 + this.random.below(95) : this.random.below(256);
    return this.insertAt(b, this.pos(b, true), piece);
  }

  /** A long run of one byte or token: for limits, loops and slow paths. */
  private insertRepeated(b: Buffer): Buffer {
    const unit =
      this.random.chance(2) && this.options.dictionary.length > 0
        ? this.random.pick(this.options.dictionary)
        : Buffer.of(this.random.pick(INTERESTING_BYTES));
    const times = 1 + this.random.below(Math.max(1, Math.floor(this.options.maxLength / 4 / Math.max(1, unit.length))));
    return this.insertAt(b, this.pos(b, true), Buffer.concat(new Array<Buffer>(times).fill(unit)));
  }

  private deleteRange(b: Buffer): Buffer {
    if (b.length === 0) return b;
    const at = this.pos(b);
    const n = 1 + this.random.below(Math.min(32, b.length - at));
    return Buffer.concat([b.subarray(0, at), b.subarray(at + n)]);
  }

  private duplicateRange(b: Buffer): Buffer {
    if (b.length === 0) return this.insertBytes(b);
    const at = this.pos(b);
    const n = 1 + this.random.below(Math.min(64, b.length - at));
    return this.insertAt(b, at, Buffer.from(b.subarray(at, at + n)));
  }

  private copyRange(b: Buffer): Buffer {
    if (b.length < 2) return this.insertBytes(b);
    const from = this.pos(b);
    const n = 1 + this.random.below(Math.min(64, b.length - from));
    return this.insertAt(b, this.pos(b, true), Buffer.from(b.subarray(from, from + n)));
  }

  private swapRanges(b: Buffer): Buffer {
    if (b.length < 2) return this.flipBit(b);
    const out = Buffer.from(b);
    const n = 1 + this.random.below(Math.min(16, Math.floor(b.length / 2)));
    const i = this.random.below(b.length - n + 1);
    const j = this.random.below(b.length - n + 1);
    const tmp = Buffer.from(out.subarray(i, i + n));
    out.copy(out, i, j, j + n);
    tmp.copy(out, j);
    return out;
  }

  /** An edge value as a 1, 2 or 4 byte integer, either byte order (milter lengths, ports). */
  private setUint(b: Buffer): Buffer {
    const width = this.random.pick([1, 2, 4]);
    const value = this.random.pick(INTERESTING_32);
    const piece = Buffer.alloc(width);
    if (width === 1) piece[0] = value & 0xff;
    else if (width === 2) this.random.chance(2) ? piece.writeUInt16BE(value & 0xffff) : piece.writeUInt16LE(value & 0xffff);
    else this.random.chance(2) ? piece.writeUInt32BE(value >>> 0) : piece.writeUInt32LE(value >>> 0);
    if (b.length < width || this.random.chance(3)) return this.insertAt(b, this.pos(b, true), piece);
    const out = Buffer.from(b);
    piece.copy(out, this.random.below(b.length - width + 1));
    return out;
  }

  /** A decimal number in the input replaced by an edge value. */
  private replaceNumber(b: Buffer): Buffer {
    const text = b.toString('latin1');
    const numbers = [...text.matchAll(/\d+/g)].slice(0, 64);
    const value = Buffer.from(this.random.pick(INTERESTING_NUMBERS), 'latin1');
    if (numbers.length === 0) return this.insertAt(b, this.pos(b, true), value);
    const m = this.random.pick(numbers);
    const at = m.index ?? 0;
    return Buffer.concat([b.subarray(0, at), value, b.subarray(at + m[0].length)]);
  }

  private truncate(b: Buffer): Buffer {
    return b.length === 0 ? b : b.subarray(0, this.pos(b));
  }

  /** The head of this input and the tail of another. */
  private splice(b: Buffer): Buffer {
    const other = this.random.pick(this.options.corpus());
    if (!other || other.length === 0) return this.insertBytes(b);
    return Buffer.concat([b.subarray(0, this.pos(b, true)), other.subarray(this.random.below(other.length))]);
  }

  private insertFromCorpus(b: Buffer): Buffer {
    const other = this.random.pick(this.options.corpus());
    if (!other || other.length === 0) return this.insertBytes(b);
    const from = this.random.below(other.length);
    const n = 1 + this.random.below(Math.min(128, other.length - from));
    return this.insertAt(b, this.pos(b, true), Buffer.from(other.subarray(from, from + n)));
  }

  private insertToken(b: Buffer): Buffer {
    return this.insertAt(b, this.pos(b, true), this.random.pick(this.options.dictionary));
  }

  private overwriteToken(b: Buffer): Buffer {
    const token = this.random.pick(this.options.dictionary);
    if (b.length < token.length) return this.insertAt(b, this.pos(b, true), token);
    const out = Buffer.from(b);
    token.copy(out, this.random.below(b.length - token.length + 1));
    return out;
  }
}
