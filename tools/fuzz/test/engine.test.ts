/**
 * The fuzzer itself: mutations stay in bounds and repeat with a seed; coverage feedback
 * sees new blocks and new hit counts; guided by it, the loop finds a bug hidden behind four
 * nested byte comparisons (one chance in 2^32 per blind guess) within seconds; and
 * the command line runs a target and prints its table.
 */
import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runInThisContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { CoverageTracker, bucket } from '../src/engine/coverage.js';
import { FUZZ_ROOT } from '../src/engine/files.js';
import { Fuzzer } from '../src/engine/fuzzer.js';
import { Mutator, Random } from '../src/engine/mutator.js';
import { InvariantError, check, splitPoints } from '../src/target.js';

/** A function compiled as a script of its own name, so that coverage can be scoped to it. */
function compile<T>(name: string, source: string): T {
  return runInThisContext(source, { filename: `/fuzz-test/${name}.js` }) as T;
}

describe('Mutator', () => {
  it('keeps to the maximum length and repeats with the same seed', () => {
    const make = () =>
      new Mutator(new Random(42), { maxLength: 64, dictionary: [Buffer.from('v=1; ')], corpus: () => [Buffer.from('abc')] });
    const a = make();
    const b = make();
    let input: Buffer = Buffer.from('hello, world');
    for (let i = 0; i < 2000; i++) {
      const x = a.mutate(input);
      const y = b.mutate(input);
      expect(x.length).toBeLessThanOrEqual(64);
      expect(x.equals(y)).toBe(true);
      input = x.length > 0 ? x : input;
    }
  });
});

describe('splitPoints', () => {
  it('covers the input exactly, with chunks of 1..max bytes, the same for the same input', () => {
    const data = Buffer.from('x'.repeat(1000));
    const sizes = splitPoints(data, data.length, 16);
    expect(sizes.reduce((n, s) => n + s, 0)).toBe(1000);
    expect(sizes.every((s) => s >= 1 && s <= 16)).toBe(true);
    expect(splitPoints(data, data.length, 16)).toEqual(sizes);
  });
});

describe('CoverageTracker', () => {
  it('counts hits in buckets', () => {
    expect([1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 127, 128, 10_000].map(bucket)).toEqual([0, 1, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]);
  });

  it('reports a branch reached for the first time, and nothing for the same path again', () => {
    const tracker = new CoverageTracker(/\/fuzz-test\/branchy\.js$/);
    tracker.start();
    try {
      const branchy = compile<(n: number) => number>(
        'branchy',
        '(function branchy(n) { let r = 0; if (n > 10) { r = 1; } else { r = 2; } for (let i = 0; i < n; i++) { r += i; } return r; })',
      );
      tracker.collect();
      branchy(1);
      expect(tracker.collect()).toBeGreaterThan(0);
      branchy(1);
      expect(tracker.collect()).toBe(0);
      branchy(20); // the other branch, and the loop in a higher bucket
      expect(tracker.collect()).toBeGreaterThan(0);
      const blocks = tracker.blocks;
      branchy(20);
      expect(tracker.collect()).toBe(0);
      expect(tracker.blocks).toBe(blocks);
      expect(tracker.functionCount).toBe(2); // the script itself, and branchy
    } finally {
      tracker.stop();
    }
  });
});

describe('Fuzzer', () => {
  it('finds a bug behind four nested comparisons, guided by coverage', async () => {
    const tracker = new CoverageTracker(/\/fuzz-test\/planted\.js$/);
    tracker.start();
    const planted = compile<(data: Buffer) => void>(
      'planted',
      `(function planted(d) {
        if (d[0] === 0x46) { if (d[1] === 0x55) { if (d[2] === 0x5a) { if (d[3] === 0x5a) { throw new Error('planted bug'); } } } }
      })`,
    );
    const fuzzer = new Fuzzer(
      { name: 'planted', description: 'a planted bug', dictionary: [], maxLength: 8, fuzz: (data) => planted(data) },
      { timeMs: 40_000, seed: 7, maxCrashes: 1, seeds: [Buffer.from('hello')], tracker },
    );
    const stats = await fuzzer.run();
    expect(stats.crashes).toBe(1);
    expect(stats.corpus).toBeGreaterThanOrEqual(4);
  }, 60_000);

  it('stops after maxExecs executions, seeds included, before the time is up', async () => {
    let calls = 0;
    const fuzzer = new Fuzzer(
      { name: 'counted', description: 'counts its inputs', dictionary: [], maxLength: 16, fuzz: () => void calls++ },
      { timeMs: Number.POSITIVE_INFINITY, maxExecs: 1000, seed: 5, maxCrashes: 1, seeds: [Buffer.from('a'), Buffer.from('b')] },
    );
    const stats = await fuzzer.run();
    expect(stats.execs).toBe(1000);
    // Inputs of a batch that found something run again alone: those are not executions.
    expect(calls).toBeGreaterThanOrEqual(1000);
  }, 30_000);

  it('reports an invariant that does not hold, with a minimized input', async () => {
    const crashes: { signature: string; input: Buffer }[] = [];
    const fuzzer = new Fuzzer(
      {
        name: 'invariant',
        description: 'no "=" after ";"',
        dictionary: [';', '='],
        maxLength: 64,
        fuzz: (data) => check(!data.toString('latin1').includes(';='), 'found ";="'),
      },
      { timeMs: 20_000, seed: 3, maxCrashes: 1, seeds: [Buffer.from('a=b; c=d')], onCrash: (c) => crashes.push(c) },
    );
    await fuzzer.run();
    expect(crashes).toHaveLength(1);
    // The signature names the rule and the place, not the data: quoted text is blanked.
    expect(crashes[0]?.signature).toBe('InvariantError: found "…" @ tools/fuzz/test/engine.test.ts');
    expect(crashes[0]?.input.toString('latin1')).toBe(';=');
    expect(new InvariantError('x').name).toBe('InvariantError');
  }, 30_000);
});

describe('pnpm fuzz', () => {
  const main = join(FUZZ_ROOT, 'dist', 'main.js');
  /** As the fuzz script of package.json: the targets import @inkan/milterd/internal. */
  const internal = '--conditions=inkan-internal';

  it.skipIf(!existsSync(main))('runs one target for a second and prints the table', () => {
    const run = spawnSync(process.execPath, [internal, main, '--time', '1', '--target', 'milterd-config', '--fresh', '--seed', '1'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^target\s+execs\s+seconds\s+exec\/s\s+blocks/m);
    expect(run.stdout).toMatch(/^milterd-config\s+[\d,]+\s+[\d,]+\s+[\d,]+/m);
    expect(run.stdout).toMatch(/no crashes/);
  });

  it.skipIf(!existsSync(main))('stops a target after --executions N, even with a longer --time', () => {
    const run = spawnSync(
      process.execPath,
      [internal, main, '--executions', '300', '--time', '600', '--target', 'milterd-config', '--fresh', '--seed', '1'],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/600 s or 300 executions each/);
    expect(run.stdout).toMatch(/^milterd-config\s+300\s/m);
  });

  it.skipIf(!existsSync(main))('refuses --executions that is not a whole number above zero', () => {
    for (const bad of ['0', '1.5', 'many']) {
      const run = spawnSync(process.execPath, [internal, main, '--executions', bad, '--target', 'milterd-config'], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(run.status).toBe(2);
      expect(run.stderr).toMatch(/--executions takes/);
    }
  });

  it.skipIf(!existsSync(main))('refuses an unknown target with status 2', () => {
    const run = spawnSync(process.execPath, [internal, main, '--target', 'no-such-target'], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/no target "no-such-target"/);
  });
});
