/**
 * Coverage feedback from V8's precise block coverage, read through node:inspector in the
 * thread that runs the target (Profiler.startPreciseCoverage with callCount and detailed,
 * then Profiler.takePreciseCoverage after every input, which also resets the counters).
 *
 * V8 reports, for each function that ran since the last take, nested source ranges with
 * execution counts; a block whose count equals its parent's is left out, and neighbouring
 * ranges with equal counts are merged. So block identity is rebuilt here: every range
 * boundary ever reported for a function is kept, the pieces between consecutive boundaries
 * are the blocks, and a block's count is that of the innermost reported range around it.
 * A feature is (block, count bucket), as in libFuzzer: 1, 2, 3, 4-7, 8-15, 16-31, 32-127,
 * 128+. An input that sets a feature never seen before is kept in the corpus.
 *
 * A take costs about a millisecond whatever the input (V8 walks every function it has
 * compiled), far more than most parsers spend on an input, so the fuzzer takes once per
 * batch of inputs and runs the inputs of a batch alone only when the batch as a whole set
 * something new (judged against earlier batches, since summed counts fall into other
 * buckets than single ones).
 */
import { Session } from 'node:inspector';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}

interface FunctionCoverage {
  functionName: string;
  ranges: Range[];
  isBlockCoverage: boolean;
}

interface ScriptCoverage {
  scriptId: string;
  url: string;
  functions: FunctionCoverage[];
}

/** Blocks of one function, keyed by their start offset. */
interface FunctionBlocks {
  /** Sorted block boundaries (start and end offsets of every range seen). */
  bounds: number[];
  /** Feature slot of the block starting at each boundary (the last boundary starts none). */
  slots: number[];
  /** Position of each boundary in `bounds`. */
  index: Map<number, number>;
  /** Slot per block start offset, kept when boundaries are added (a split block keeps its start). */
  slotOf: Map<number, number>;
  reached: boolean;
}

/** Which count bucket (0-7) a positive count falls into. */
export function bucket(count: number): number {
  if (count <= 3) return count - 1;
  if (count <= 7) return 3;
  if (count <= 15) return 4;
  if (count <= 31) return 5;
  if (count <= 127) return 6;
  return 7;
}

/** Product code: the built packages and apps of this repository (not node_modules, not this tool). */
export const PRODUCT_CODE = /\/(?:packages|apps)\/[^/]+\/dist\/.*\.js$/;

export class CoverageTracker {
  private readonly session = new Session();
  private readonly inScope = new Map<string, boolean>();
  private readonly functions = new Map<string, FunctionBlocks>();
  /** Bit b set at slot s: block s was seen with a count in bucket b. */
  private seen = new Uint8Array(4096);
  /** The same for the summed counts of batches of inputs. */
  private seenInBatches = new Uint8Array(4096);
  private slotCount = 0;
  private blocksReached = 0;
  private functionsReached = 0;
  private started = false;

  constructor(private readonly scope: RegExp = PRODUCT_CODE) {}

  /** Blocks of product code run at least once so far. */
  get blocks(): number {
    return this.blocksReached;
  }

  /** Functions of product code run at least once so far. */
  get functionCount(): number {
    return this.functionsReached;
  }

  /** (block, count bucket) pairs seen so far. */
  get features(): number {
    let n = 0;
    for (let s = 0; s < this.slotCount; s++) {
      let bits = this.seen[s] as number;
      while (bits) {
        n += bits & 1;
        bits >>= 1;
      }
    }
    return n;
  }

  /**
   * Start counting. Only functions compiled after this get block counts (V8 adds block
   * counters when it compiles), so start before the code under test is loaded.
   */
  start(): void {
    if (this.started) return;
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
    this.started = true;
  }

  stop(): void {
    if (!this.started) return;
    this.post('Profiler.stopPreciseCoverage');
    this.post('Profiler.disable');
    this.session.disconnect();
    this.started = false;
  }

  /** Forget the counts since the last take (for runs that must not count, such as replays). */
  discard(): void {
    this.post('Profiler.takePreciseCoverage');
  }

  /**
   * Take the counts since the last take; returns how many features they set for the first
   * time. `batch`: the counts of several inputs together, judged against what earlier
   * batches set (a cheap test of whether any of them is worth running alone); the reached
   * blocks are counted only by single takes.
   */
  collect(batch = false): number {
    const result = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    let fresh = 0;
    for (const script of result.result) {
      let ok = this.inScope.get(script.scriptId);
      if (ok === undefined) {
        ok = this.scope.test(script.url);
        this.inScope.set(script.scriptId, ok);
      }
      if (!ok) continue;
      for (const fn of script.functions) {
        const ranges = fn.ranges;
        const top = ranges[0];
        if (!top || top.count === 0) continue;
        fresh += this.record(`${script.scriptId}:${top.startOffset}`, ranges, batch);
      }
    }
    return fresh;
  }

  private record(key: string, ranges: Range[], batch: boolean): number {
    let blocks = this.functions.get(key);
    if (!blocks) {
      blocks = { bounds: [], slots: [], index: new Map(), slotOf: new Map(), reached: false };
      this.functions.set(key, blocks);
    }
    if (!blocks.reached && !batch) {
      blocks.reached = true;
      this.functionsReached++;
    }
    let added = false;
    for (const r of ranges) {
      if (!blocks.index.has(r.startOffset)) {
        blocks.index.set(r.startOffset, -1);
        added = true;
      }
      if (!blocks.index.has(r.endOffset)) {
        blocks.index.set(r.endOffset, -1);
        added = true;
      }
    }
    if (added) this.rebuild(blocks);
    // Count of each block: ranges come parent first, so a later (inner) range overrides.
    const n = blocks.bounds.length - 1;
    const counts = new Array<number>(n).fill(0);
    for (const r of ranges) {
      const from = blocks.index.get(r.startOffset) as number;
      const to = blocks.index.get(r.endOffset) as number;
      for (let i = from; i < to; i++) counts[i] = r.count;
    }
    const seen = batch ? this.seenInBatches : this.seen;
    let fresh = 0;
    for (let i = 0; i < n; i++) {
      const count = counts[i] as number;
      if (count <= 0) continue;
      const slot = blocks.slots[i] as number;
      const bit = 1 << bucket(count);
      const old = seen[slot] as number;
      if ((old & bit) === 0) {
        if (old === 0 && !batch) this.blocksReached++;
        seen[slot] = old | bit;
        fresh++;
      }
    }
    return fresh;
  }

  /** Re-sort the boundaries of a function after new ones were reported. */
  private rebuild(blocks: FunctionBlocks): void {
    blocks.bounds = [...blocks.index.keys()].sort((a, b) => a - b);
    blocks.slots = [];
    blocks.bounds.forEach((offset, i) => {
      blocks.index.set(offset, i);
      let slot = blocks.slotOf.get(offset);
      if (slot === undefined) {
        slot = this.newSlot();
        blocks.slotOf.set(offset, slot);
      }
      blocks.slots.push(slot);
    });
  }

  private newSlot(): number {
    if (this.slotCount >= this.seen.length) {
      const bigger = new Uint8Array(this.seen.length * 2);
      bigger.set(this.seen);
      this.seen = bigger;
      const biggerBatches = new Uint8Array(bigger.length);
      biggerBatches.set(this.seenInBatches);
      this.seenInBatches = biggerBatches;
    }
    return this.slotCount++;
  }

  /** A synchronous inspector call (in the same thread the callback runs before post returns). */
  private post(method: string, params?: object): unknown {
    let error: Error | null = null;
    let result: unknown;
    let answered = false;
    this.session.post(method, params, (err, res) => {
      error = err;
      result = res;
      answered = true;
    });
    if (!answered) throw new Error(`inspector: ${method} did not answer synchronously`);
    if (error) throw error;
    return result;
  }
}
