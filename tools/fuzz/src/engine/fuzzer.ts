/**
 * The fuzzing loop for one target, run inside the thread that owns the target: seeds
 * first, then mutated corpus inputs until the time is up. An input that reaches a new
 * coverage feature joins the corpus; one that throws is a crash, minimized (bounded) and
 * reported once per distinct error.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import type { FuzzTarget } from '../target.js';
import { CoverageTracker } from './coverage.js';
import { Mutator, Random } from './mutator.js';

export interface FuzzOptions {
  /** How long to mutate, after the seeds (ms); Infinity when only `maxExecs` bounds the run. */
  timeMs: number;
  /**
   * Stop after this many executions (seeds included; minimizing a crash and re-running a
   * batch to find what was new do not count). Default: no bound but the time.
   */
  maxExecs?: number;
  seed: number;
  /** Stop after this many distinct crashes. */
  maxCrashes: number;
  /** Inputs to start from (committed seeds, regressions, an earlier run's corpus). */
  seeds: readonly Buffer[];
  /** Called before every run with the input and a run counter (the watchdog keeps a copy). */
  beforeRun?: (input: Buffer, runs: number) => void;
  /** An input that joined the corpus. */
  onNewInput?: (input: Buffer) => void;
  onCrash?: (crash: Crash) => void;
  /** Called about every `progressMs` with the current figures. */
  onProgress?: (stats: FuzzStats) => void;
  progressMs?: number;
  /**
   * The coverage tracker, started before the code under test was loaded (only code
   * compiled after the start has block counts). Default: a new one for the product code.
   */
  tracker?: CoverageTracker;
}

export interface Crash {
  /** The error's kind and first line, numbers blanked, and where it was thrown. */
  signature: string;
  /** The error as thrown (first lines of the stack). */
  error: string;
  input: Buffer;
  originalLength: number;
}

export interface FuzzStats {
  target: string;
  execs: number;
  seconds: number;
  /** Blocks of product code reached (see CoverageTracker). */
  blocks: number;
  functions: number;
  features: number;
  corpus: number;
  seeds: number;
  crashes: number;
  /** The slowest single input (ms). */
  slowestMs: number;
}

/** A crash's identity: same kind of error at the same place is one crash. */
export function crashSignature(error: unknown): string {
  if (!(error instanceof Error)) return `thrown non-Error: ${String(error).slice(0, 100)}`;
  // The rule that broke, not the data it broke on: quoted text and numbers blanked.
  const first = (error.message.split('\n')[0] ?? '')
    .replace(/"(?:[^"\\]|\\.)*"?/g, '"…"')
    .replace(/\d+/g, 'N')
    .slice(0, 120);
  const frame = (error.stack ?? '')
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .find((l) => /\/(packages|apps|tools)\//.test(l) && !/\/engine\/|\/fuzz\/(dist|src)\/target\.[jt]s/.test(l));
  const where = frame
    ? frame
        .replace(/^at /, '')
        .replace(/:\d+:\d+\)?$/, '')
        .replace(/.*\/(packages|apps|tools)\//, '$1/')
    : '?';
  return `${error.name}: ${first} @ ${where}`;
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const stack = (error.stack ?? `${error.name}: ${error.message}`).split('\n').slice(0, 8).join('\n');
  const cause = error.cause instanceof Error ? `\ncaused by: ${describeError(error.cause)}` : '';
  return stack + cause;
}

/** Run the mutator for a while, so that its code is compiled before coverage starts. */
export function warmUp(target: FuzzTarget): void {
  const dictionary = target.dictionary.map((t) => (typeof t === 'string' ? Buffer.from(t, 'latin1') : t));
  const sample = [Buffer.from('warm up: v=1; a=b\r\n', 'latin1')];
  const mutator = new Mutator(new Random(1), { maxLength: target.maxLength, dictionary, corpus: () => sample });
  let input = sample[0] as Buffer;
  for (let i = 0; i < 2000; i++) input = mutator.mutate(input.length > 256 ? (sample[0] as Buffer) : input);
}

export class Fuzzer {
  private readonly tracker: CoverageTracker;
  private readonly random: Random;
  private readonly mutator: Mutator;
  private readonly corpus: Buffer[] = [];
  private readonly crashes = new Map<string, Crash>();
  private execs = 0;
  /** Every run, minimizing included: the watchdog's heartbeat. */
  private runs = 0;
  private slowestMs = 0;
  private batchSize = 1;
  private startedAt = 0;
  /** An error raised outside the target's call (a timer, a rejected promise nobody awaited). */
  private asyncError: unknown;
  private readonly onUncaught = (error: unknown) => {
    this.asyncError ??= error;
  };

  constructor(
    private readonly target: FuzzTarget,
    private readonly options: FuzzOptions,
  ) {
    this.tracker = options.tracker ?? new CoverageTracker();
    this.random = new Random(options.seed);
    const dictionary = target.dictionary.map((t) => (typeof t === 'string' ? Buffer.from(t, 'latin1') : t));
    this.mutator = new Mutator(this.random, { maxLength: target.maxLength, dictionary, corpus: () => this.corpus });
  }

  async run(): Promise<FuzzStats> {
    process.on('uncaughtException', this.onUncaught);
    process.on('unhandledRejection', this.onUncaught);
    this.tracker.start();
    try {
      // What set-up and module loading ran is reached code too, but no input's merit.
      this.tracker.collect();
      this.startedAt = performance.now();
      for (const seed of this.options.seeds) {
        await this.executeAlone(seed);
        if (this.crashes.size >= this.options.maxCrashes) return this.stats();
      }
      if (this.corpus.length === 0) this.corpus.push(Buffer.alloc(0));
      const seedsDone = performance.now();
      const deadline = seedsDone + this.options.timeMs;
      const maxExecs = this.options.maxExecs ?? Number.POSITIVE_INFINITY;
      const progressMs = this.options.progressMs ?? 0;
      let nextProgress = progressMs > 0 ? seedsDone + progressMs : Number.POSITIVE_INFINITY;
      // Bounded by the clock and/or the count; a hanging input is the watchdog's business.
      for (;;) {
        const now = performance.now();
        if (now >= deadline || this.execs >= maxExecs || this.crashes.size >= this.options.maxCrashes) break;
        if (now >= nextProgress) {
          this.options.onProgress?.(this.stats());
          nextProgress = now + progressMs;
        }
        await this.executeBatch(maxExecs - this.execs);
      }
      return this.stats();
    } finally {
      this.tracker.stop();
      process.off('uncaughtException', this.onUncaught);
      process.off('unhandledRejection', this.onUncaught);
    }
  }

  stats(): FuzzStats {
    return {
      target: this.target.name,
      execs: this.execs,
      seconds: (performance.now() - this.startedAt) / 1000,
      blocks: this.tracker.blocks,
      functions: this.tracker.functionCount,
      features: this.tracker.features,
      corpus: this.corpus.length,
      seeds: this.options.seeds.length,
      crashes: this.crashes.size,
      slowestMs: this.slowestMs,
    };
  }

  /** Mostly any corpus input; now and then one of the newest (where progress was made last). */
  private choose(): Buffer {
    const n = this.corpus.length;
    if (n > 8 && this.random.chance(4)) return this.corpus[n - 1 - this.random.below(8)] as Buffer;
    return this.random.pick(this.corpus);
  }

  /**
   * Fresh inputs, one coverage take for all of them; when they reached something new
   * together, each runs again alone to find which to keep. Batches shrink while the corpus
   * still grows quickly and grow (up to 32) while nothing new turns up.
   */
  private async executeBatch(left: number): Promise<void> {
    const batch: Buffer[] = [];
    const size = Math.min(this.batchSize, left);
    for (let i = 0; i < size; i++) {
      const input = this.mutator.mutate(this.choose());
      this.execs++;
      const error = await this.timed(input);
      if (error !== undefined) {
        await this.crashed(input, error);
        return; // minimizing ran other inputs: this batch's counts are gone
      }
      batch.push(input);
    }
    // Let the event loop turn once per batch: a timer or rejection that one of these
    // inputs left behind is a crash too (reported with the last input of the batch).
    this.asyncError = undefined;
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.asyncError !== undefined) {
      await this.crashed(batch[batch.length - 1] as Buffer, this.asyncError);
      return;
    }
    if (this.tracker.collect(true) === 0) {
      this.batchSize = Math.min(32, this.batchSize + 1);
      return;
    }
    this.batchSize = Math.max(1, this.batchSize >> 1);
    for (const input of batch) {
      const error = await this.attempt(input);
      const fresh = this.tracker.collect();
      if (error !== undefined) await this.crashed(input, error);
      else if (fresh > 0) this.keep(input);
    }
  }

  /** One input alone: kept if it reached something new, reported if it failed. */
  private async executeAlone(input: Buffer): Promise<void> {
    this.execs++;
    const error = await this.timed(input);
    const fresh = this.tracker.collect();
    if (error !== undefined) await this.crashed(input, error);
    else if (fresh > 0) this.keep(input);
  }

  private keep(input: Buffer): void {
    this.corpus.push(input);
    this.options.onNewInput?.(input);
  }

  private async timed(input: Buffer): Promise<unknown> {
    const t0 = performance.now();
    const error = await this.attempt(input);
    const ms = performance.now() - t0;
    if (ms > this.slowestMs) this.slowestMs = ms;
    return error;
  }

  /** The error an input causes, or undefined. */
  private async attempt(input: Buffer): Promise<unknown> {
    this.runs++;
    this.options.beforeRun?.(input, this.runs);
    this.asyncError = undefined;
    try {
      const pending = this.target.fuzz(input);
      if (pending) {
        await pending;
        // Let a rejection or timer error this input caused surface before judging it.
        if (this.asyncError === undefined) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      return error ?? new Error('threw undefined');
    }
    return this.asyncError;
  }

  private async crashed(input: Buffer, error: unknown): Promise<void> {
    const signature = crashSignature(error);
    if (this.crashes.has(signature)) return;
    const small = await this.minimize(input, signature);
    this.tracker.discard();
    const crash: Crash = { signature, error: describeError(error), input: small, originalLength: input.length };
    this.crashes.set(signature, crash);
    this.options.onCrash?.(crash);
  }

  /** Drop chunks of the input while the same crash remains: halves, quarters, ... single bytes. */
  private async minimize(input: Buffer, signature: string): Promise<Buffer> {
    let best = input;
    const deadline = performance.now() + 5000;
    let tries = 0;
    for (let size = Math.max(1, best.length >> 1); size >= 1; size >>= 1) {
      let at = 0;
      while (at < best.length) {
        if (tries++ >= 3000 || performance.now() > deadline) return best;
        const candidate = Buffer.concat([best.subarray(0, at), best.subarray(at + size)]);
        const error = await this.attempt(candidate);
        if (error !== undefined && crashSignature(error) === signature) best = candidate;
        else at += size;
      }
      if (size === 1) break;
    }
    return best;
  }
}
