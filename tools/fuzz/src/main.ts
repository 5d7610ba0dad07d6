/**
 * inkan's coverage-guided fuzzer: each target in its own worker thread for a bounded time,
 * then a table of executions, speed, coverage reached and crashes.
 *
 *   pnpm fuzz                      every target, 60 s each
 *   pnpm fuzz --quick              every target, 4 s each (the CI pass in scripts/test.sh)
 *   pnpm fuzz --time 600 --target milter-session
 *   pnpm fuzz --executions 1000000 --time 3600 --target key-record
 *
 * Exit status: 0 no crash, 1 a crash (inputs in tools/fuzz/crashes/<target>/), 2 usage.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { dirs, saveInput } from './engine/files.js';
import type { FuzzStats } from './engine/fuzzer.js';
import { TARGET_NAMES } from './targets/index.js';
import type { WorkerData, WorkerMessage } from './worker.js';

const USAGE = `usage: pnpm fuzz [--time S | --quick] [--executions N] [--target NAME]... [--seed N] [--timeout-ms MS] [--fresh] [--list]
  --time S         fuzz each target for S seconds after its seeds (default 60, or no
                   time bound with --executions)
  --executions N   stop each target after N executions (seeds included); with --time,
                   whichever comes first
  --quick          4 s per target: the short pass CI runs
  --target NAME    only this target (repeat, or give a comma list)
  --seed N         seed of the mutator (default: random, printed)
  --timeout-ms MS  one input running longer than this is a hang (default 10000)
  --fresh          start from the committed seeds only, not from the corpus of earlier runs
  --list           print the targets and exit`;

interface Options {
  timeMs: number;
  /** Executions per target (Infinity: the time alone bounds a run). */
  maxExecs: number;
  targets: string[];
  seed: number;
  timeoutMs: number;
  resume: boolean;
}

function parseArgs(argv: string[]): Options | string {
  let time: number | undefined;
  const o: Options = {
    timeMs: 60_000,
    maxExecs: Number.POSITIVE_INFINITY,
    targets: [],
    seed: (Math.random() * 0xffffffff) >>> 0,
    timeoutMs: 10_000,
    resume: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    const number = (v: string, min: number) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < min) throw new Error(`${arg} takes a number >= ${min}, not "${v}"`);
      return n;
    };
    try {
      if (arg === '--') continue;
      if (arg === '--time') time = number(value(), 0) * 1000;
      else if (arg === '--quick') time = 4000;
      else if (arg === '--executions') {
        o.maxExecs = number(value(), 1);
        if (!Number.isSafeInteger(o.maxExecs)) throw new Error(`--executions takes a whole number, not "${argv[i]}"`);
      } else if (arg === '--target') o.targets.push(...value().split(',').filter(Boolean));
      else if (arg === '--seed') o.seed = number(value(), 0) >>> 0;
      else if (arg === '--timeout-ms') o.timeoutMs = number(value(), 100);
      else if (arg === '--fresh') o.resume = false;
      else if (arg === '--list') return 'list';
      else if (arg === '--help' || arg === '-h') return 'help';
      else throw new Error(`unknown argument "${arg}"`);
    } catch (error) {
      return `error: ${(error as Error).message}`;
    }
  }
  o.timeMs = time ?? (Number.isFinite(o.maxExecs) ? Number.POSITIVE_INFINITY : 60_000);
  for (const t of o.targets) if (!TARGET_NAMES.includes(t)) return `error: no target "${t}" (targets: ${TARGET_NAMES.join(', ')})`;
  if (o.targets.length === 0) o.targets = [...TARGET_NAMES];
  return o;
}

interface Outcome {
  stats?: FuzzStats;
  crashes: { signature: string; path: string }[];
  /** Why the worker stopped early (hang, out of memory, exit). */
  failure?: string;
}

/** The shared input copy holds up to this many bytes (longer inputs are cut in a hang report). */
const SHARED_INPUT_BYTES = 1 << 20;

function runTarget(name: string, o: Options): Promise<Outcome> {
  const shared = new SharedArrayBuffer(8 + SHARED_INPUT_BYTES);
  const header = new Int32Array(shared, 0, 2);
  const long = o.timeMs >= 120_000 || o.maxExecs >= 100_000;
  const data: WorkerData = {
    target: name,
    timeMs: o.timeMs,
    maxExecs: o.maxExecs,
    seed: o.seed,
    maxCrashes: 10,
    resume: o.resume,
    progressMs: long ? 60_000 : 0,
    shared,
  };
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: data,
    resourceLimits: { maxOldGenerationSizeMb: 2048 },
  });
  const outcome: Outcome = { crashes: [] };
  const currentInput = () => Buffer.from(new Uint8Array(shared, 8, Atomics.load(header, 1)));
  const failWith = (what: string) => {
    const path = saveInput(dirs.crashes(name), currentInput());
    outcome.failure = what;
    outcome.crashes.push({ signature: what, path });
    console.log(`  CRASH ${name}: ${what}\n    input: ${path}`);
  };

  return new Promise((resolve) => {
    let ready = false;
    let lastRuns = -1;
    let lastChange = performance.now();
    const startedAt = performance.now();
    const watchdog = setInterval(() => {
      const now = performance.now();
      if (!ready) {
        if (now - startedAt > 120_000) {
          outcome.failure = 'set-up did not finish within 120 s';
          void worker.terminate();
        }
        return;
      }
      const runs = Atomics.load(header, 0);
      if (runs !== lastRuns) {
        lastRuns = runs;
        lastChange = now;
      } else if (now - lastChange > o.timeoutMs) {
        failWith(`hang: one input ran longer than ${o.timeoutMs} ms`);
        void worker.terminate();
      }
    }, 100);
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'ready') {
        ready = true;
        lastChange = performance.now();
      } else if (m.type === 'crash') {
        outcome.crashes.push({ signature: m.signature, path: m.path });
        console.log(
          `  CRASH ${name}: ${m.signature}\n    input: ${m.path} (${m.size} bytes, minimized from ${m.originalSize})\n${indent(m.error, '    ')}`,
        );
      } else if (m.type === 'progress') {
        console.log(`  ${name}: ${describe(m.stats)}`);
      } else if (m.type === 'done') outcome.stats = m.stats;
    });
    worker.on('error', (error) => {
      if (!outcome.failure) failWith(`worker failed: ${(error as Error).message}`);
    });
    worker.on('exit', (code) => {
      clearInterval(watchdog);
      if (!outcome.stats && !outcome.failure) failWith(`worker exited with code ${code} before finishing`);
      resolve(outcome);
    });
  });
}

function indent(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function describe(s: FuzzStats): string {
  return `${fmt(s.execs)} execs in ${s.seconds.toFixed(0)} s, ${fmt(s.blocks)} blocks, corpus ${s.corpus}`;
}

function printTable(rows: string[][]): void {
  const head = ['target', 'execs', 'seconds', 'exec/s', 'blocks', 'functions', 'features', 'corpus', 'slowest ms', 'crashes'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  console.log(`\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of rows) console.log(line(r));
}

const options = parseArgs(process.argv.slice(2));
if (options === 'help' || options === 'list' || typeof options === 'string') {
  if (options === 'list') console.log(TARGET_NAMES.join('\n'));
  else if (options === 'help') console.log(USAGE);
  else console.error(`${options}\n${USAGE}`);
  process.exit(options === 'help' || options === 'list' ? 0 : 2);
}

const bound = [
  Number.isFinite(options.timeMs) ? `${options.timeMs / 1000} s` : '',
  Number.isFinite(options.maxExecs) ? `${fmt(options.maxExecs)} executions` : '',
]
  .filter(Boolean)
  .join(' or ');
console.log(
  `fuzzing ${options.targets.length} target(s), ${bound} each, seed ${options.seed}${options.resume ? '' : ', committed seeds only'}`,
);
const rows: string[][] = [];
let crashed = 0;
const began = performance.now();
for (const name of options.targets) {
  const outcome = await runTarget(name, options);
  const s = outcome.stats;
  crashed += outcome.crashes.length;
  rows.push(
    s
      ? [
          name,
          fmt(s.execs),
          fmt(s.seconds),
          fmt(s.execs / Math.max(s.seconds, 0.001)),
          fmt(s.blocks),
          fmt(s.functions),
          fmt(s.features),
          fmt(s.corpus),
          s.slowestMs.toFixed(1),
          String(outcome.crashes.length),
        ]
      : [name, '-', '-', '-', '-', '-', '-', '-', '-', `${outcome.crashes.length} (${outcome.failure ?? 'stopped'})`],
  );
}
printTable(rows);
console.log(
  `\n${crashed === 0 ? 'no crashes' : `${crashed} crash(es): inputs in tools/fuzz/crashes/; fix, then move each to tools/fuzz/regressions/<target>/`} (${((performance.now() - began) / 1000).toFixed(0)} s in all)`,
);
process.exit(crashed === 0 ? 0 : 1);
