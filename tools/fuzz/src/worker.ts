/**
 * One target's fuzzing, in a worker thread: loads the target, runs the loop, and tells the
 * main thread about crashes and the final figures. Before each input it copies the input
 * into shared memory and bumps a counter there, so that the main thread can name the
 * input of a run that never returns (a hang) and stop this thread.
 */
import type { Buffer } from 'node:buffer';
import { parentPort, workerData } from 'node:worker_threads';
import { CoverageTracker } from './engine/coverage.js';
import { dirs, readInputs, saveInput } from './engine/files.js';
import { Fuzzer, warmUp } from './engine/fuzzer.js';
import { loadTarget } from './targets/index.js';

export interface WorkerData {
  target: string;
  timeMs: number;
  /** Stop after this many executions (Infinity: only the time bounds the run). */
  maxExecs: number;
  seed: number;
  maxCrashes: number;
  /** Also start from the corpus grown by earlier runs (work/). */
  resume: boolean;
  progressMs: number;
  /** Int32 [0]: run counter, [1]: input length; bytes from offset 8: the input. */
  shared: SharedArrayBuffer;
}

export type WorkerMessage =
  | { type: 'ready'; seeds: number }
  | { type: 'crash'; signature: string; error: string; path: string; size: number; originalSize: number }
  | { type: 'progress'; stats: import('./engine/fuzzer.js').FuzzStats }
  | { type: 'done'; stats: import('./engine/fuzzer.js').FuzzStats };

const data = workerData as WorkerData;
const port = parentPort;
if (!port) throw new Error('worker.js runs as a worker thread of main.js');
const post = (message: WorkerMessage) => port.postMessage(message);

const header = new Int32Array(data.shared, 0, 2);
const bytes = new Uint8Array(data.shared, 8);

function beforeRun(input: Buffer, runs: number): void {
  const n = Math.min(input.length, bytes.length);
  bytes.set(input.subarray(0, n));
  Atomics.store(header, 1, n);
  Atomics.store(header, 0, runs);
}

// Coverage starts after the modules are loaded and the fuzzer's own code has run a little
// (a take costs more for every function compiled after the start, and module loading
// compiles many), but before the target's set-up and first input: V8 counts blocks only
// in functions it compiles after the start, and the code under test compiles on first use.
const target = await loadTarget(data.target);
warmUp(target);
const tracker = new CoverageTracker();
tracker.start();
await target.setup?.();
const seeds = [
  ...readInputs(dirs.corpus(target.name)),
  ...readInputs(dirs.regressions(target.name)),
  ...(data.resume ? readInputs(dirs.work(target.name)) : []),
].map((f) => f.data);
post({ type: 'ready', seeds: seeds.length });

const fuzzer = new Fuzzer(target, {
  timeMs: data.timeMs,
  maxExecs: data.maxExecs,
  seed: data.seed,
  maxCrashes: data.maxCrashes,
  seeds,
  tracker,
  beforeRun,
  progressMs: data.progressMs,
  onNewInput: (input) => saveInput(dirs.work(target.name), input),
  onCrash: (crash) => {
    const path = saveInput(dirs.crashes(target.name), crash.input);
    post({
      type: 'crash',
      signature: crash.signature,
      error: crash.error,
      path,
      size: crash.input.length,
      originalSize: crash.originalLength,
    });
  },
  onProgress: (stats) => post({ type: 'progress', stats }),
});
const stats = await fuzzer.run();
await target.teardown?.();
post({ type: 'done', stats });
