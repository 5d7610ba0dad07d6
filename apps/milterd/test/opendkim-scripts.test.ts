/**
 * OpenDKIM's own test suite (the shell drivers and miltertest Lua scripts of opendkim/tests
 * in its source), run unchanged with Debian's miltertest against inkan-milterd standing in
 * for the opendkim binary (issue #17). Which scripts pass, and why the others differ, is
 * docs/opendkim-tests.md: this test reads its table, so the page and the behaviour cannot
 * drift apart. The scripts come from Debian's source package (scripts/opendkim-test-scripts.sh,
 * which scripts/test.sh runs).
 *
 * The layout the drivers expect: a tests directory whose parent holds the opendkim binary
 * (here a wrapper that runs inkan-milterd with the same arguments) and whose grandparent
 * holds miltertest/miltertest.
 */
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { findProgram, runProgram, tempDir } from '@inkan/testbed';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..', '..');
const BIN = resolve(HERE, '..', 'bin', 'inkan-milterd.js');
const SOURCE = join(REPO, '.cache', 'opendkim-tests', 'tests');
const DOC = resolve(HERE, '..', 'docs', 'opendkim-tests.md');

interface Expectation {
  script: string;
  result: 'passes' | 'differs';
  reason: string;
}

/** The table of docs/opendkim-tests.md. */
function expectations(): Expectation[] {
  const rows: Expectation[] = [];
  for (const line of readFileSync(DOC, 'utf8').split('\n')) {
    const m = /^\| (t-[a-z0-9-]+) \| (passes|differs) \|(.*)\|$/.exec(line);
    if (m) rows.push({ script: m[1] as string, result: m[2] as Expectation['result'], reason: (m[3] as string).trim() });
  }
  return rows;
}

const EXPECTED = expectations();
let tests = '';

beforeAll(() => {
  if (!existsSync(join(SOURCE, 'Makefile.am'))) {
    throw new Error(`OpenDKIM's test scripts are not in ${SOURCE}: run bash scripts/opendkim-test-scripts.sh (scripts/test.sh does)`);
  }
  const miltertest = findProgram('miltertest');
  if (!miltertest) throw new Error('miltertest is not installed (Debian package miltertest; scripts/test.sh installs it)');
  const root = tempDir('inkan-opendkim-tests-');
  chmodSync(root, 0o755);
  mkdirSync(join(root, 'opendkim'), { mode: 0o755 });
  mkdirSync(join(root, 'miltertest'), { mode: 0o755 });
  symlinkSync(miltertest, join(root, 'miltertest', 'miltertest'));
  writeFileSync(join(root, 'opendkim', 'opendkim'), `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`, { mode: 0o755 });
  tests = join(root, 'opendkim', 'tests');
  cpSync(SOURCE, tests, { recursive: true });
});

describe("OpenDKIM's test suite against inkan-milterd", () => {
  it("the table in docs/opendkim-tests.md covers every script of OpenDKIM's default make check, and only those", () => {
    const makefile = readFileSync(join(SOURCE, 'Makefile.am'), 'utf8');
    const block = /^check_SCRIPTS = ((?:.*\\\n)*.*)$/m.exec(makefile)?.[1] ?? '';
    const defaults = block.split(/[\s\\]+/).filter((w) => /^t-/.test(w));
    expect(defaults.length).toBeGreaterThan(20);
    expect(EXPECTED.map((e) => e.script).sort()).toEqual([...defaults].sort());
    for (const e of EXPECTED) if (e.result === 'differs') expect(e.reason, e.script).toMatch(/^(deliberate|not offered): /);
    // Every driver named there exists in the source.
    const files = new Set(readdirSync(SOURCE));
    for (const s of defaults) expect(files.has(s), s).toBe(true);
  });

  // Each script has a socket of its own; most of their time is waiting (a filter that did not
  // start is tried for 10 s), so a few run at once.
  for (const e of EXPECTED) {
    it.concurrent(`${e.script} ${e.result === 'passes' ? 'passes' : `fails as documented (${e.reason.slice(0, e.reason.indexOf(':'))})`}`, async () => {
      const r = await runProgram('sh', [`./${e.script}`], {
        cwd: tests,
        timeoutMs: 120_000,
        env: { ...process.env, srcdir: '', MILTERTESTFLAGS: '' },
      });
      const output = `${r.stdout}\n${r.stderr}`;
      if (e.result === 'passes') expect(r.code, output.slice(-3000)).toBe(0);
      else expect(r.code, `${e.script} now passes: mark it "passes" in docs/opendkim-tests.md\n${output.slice(-1500)}`).not.toBe(0);
    });
  }
});
