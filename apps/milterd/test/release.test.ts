/**
 * The release flow (scripts/release.mjs, docs/releasing.md) as CI runs it: `--dry-run`
 * versions, builds, packs and `pnpm publish --dry-run`s every public package in a throw-away
 * clone of HEAD, and leaves this work tree exactly as it was. It sits beside the other test
 * of a root script (opendkim-scripts.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runProgram, tempDir } from '@inkan/testbed';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const status = () => execFileSync('git', ['status', '--porcelain'], { cwd: repo, encoding: 'utf8' });

/** The public workspace packages and the versions their package.json files hold at HEAD. */
function publicPackagesAtHead(): Map<string, string> {
  const found = new Map<string, string>();
  for (const group of ['packages', 'apps']) {
    for (const dir of readdirSync(join(repo, group))) {
      let text: string;
      try {
        text = execFileSync('git', ['show', `HEAD:${group}/${dir}/package.json`], {
          cwd: repo,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        });
      } catch {
        continue; // not committed yet
      }
      const pkg = JSON.parse(text) as { name: string; version: string; private?: boolean };
      if (!pkg.private) found.set(pkg.name, pkg.version);
    }
  }
  return found;
}

describe('scripts/release.mjs --dry-run', () => {
  it('versions, builds, packs and dry-run publishes all six public packages, and changes nothing here', { timeout: 420_000 }, async () => {
    const changesets = () => readdirSync(join(repo, '.changeset')).sort();
    const changelogs = () =>
      ['packages', 'apps'].flatMap((g) => readdirSync(join(repo, g)).filter((d) => existsSync(join(repo, g, d, 'CHANGELOG.md'))));
    const before = { status: status(), changesets: changesets(), changelogs: changelogs() };
    const r = await runProgram(process.execPath, [join(repo, 'scripts', 'release.mjs'), '--dry-run'], { cwd: repo, timeoutMs: 400_000 });
    expect(r.code, `${r.stdout}\n${r.stderr.slice(-4000)}`).toBe(0);
    expect(changesets()).toEqual(before.changesets);
    expect(changelogs()).toEqual(before.changelogs);
    // (run alone, as in CI: in a tree someone is editing meanwhile, their edits show here too)
    expect(status()).toBe(before.status);

    const atHead = publicPackagesAtHead();
    expect(atHead.size).toBe(6);
    const tarballs = [...r.stdout.matchAll(/^ {2}(@inkan\/[a-z-]+)@(\d+\.\d+\.\d+\S*) {2}(\S+\.tgz)$/gm)].map((m) => ({
      name: m[1] as string,
      version: m[2] as string,
      file: m[3] as string,
    }));
    expect(tarballs.map((t) => t.name).sort()).toEqual([...atHead.keys()].sort());
    for (const t of tarballs) expect(t.file).toBe(`${t.name.slice(1).replace('/', '-')}-${t.version}.tgz`);

    // a package npm has never seen is released at its own version, as a first release
    const first = [...r.stdout.matchAll(/^ {2}(@inkan\/[a-z-]+)@(\S+) \(first release\)$/gm)];
    for (const [, name, version] of first) {
      expect(version).toBe(atHead.get(name as string));
      expect(tarballs.find((t) => t.name === name)?.version).toBe(version);
    }
    expect(r.stdout).toMatch(/Dry run done: 6 tarballs/);
    const wouldPublish = [...r.stdout.matchAll(/^ {2}would publish (@inkan\/[a-z-]+)@(\S+)$/gm)].map((m) => `${m[1]}@${m[2]}`);
    for (const [, name] of first) expect(wouldPublish).toContain(`${name}@${atHead.get(name as string)}`);

    // the pending changesets it dropped for first releases are still here: it dropped them in its copy
    const removed = /removed \d+ pending changesets? naming only packages not yet on npm[^:]*: (.*)$/m.exec(r.stdout);
    for (const file of removed?.[1]?.split(', ') ?? []) expect(before.changesets).toContain(file);
    expect(JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).scripts.release).toBe('node scripts/release.mjs');

    // every package names the repository; where origin is elsewhere (a local clone, a fork) the dry run warns
    const origin = execFileSync('git', ['remote'], { cwd: repo, encoding: 'utf8' }).split('\n').includes('origin')
      ? execFileSync('git', ['remote', 'get-url', 'origin'], { cwd: repo, encoding: 'utf8' }).trim()
      : undefined;
    const warnings = [...r.stdout.matchAll(/^ {2}warning: (.*) \(a release stops here\)$/gm)].map((m) => m[1]);
    if (origin && /github\.com[/:]inkan-dkim\/inkan(\.git)?$/i.test(origin)) expect(warnings).toEqual([]);
    else expect(warnings).toHaveLength(6);
  });

  it('a release refuses packages whose repository is not origin, before it asks npm or changes anything', {
    timeout: 120_000,
  }, async () => {
    const work = tempDir('inkan-release-origin-');
    try {
      const clone = join(work, 'repo');
      execFileSync('git', ['clone', '--quiet', repo, clone]);
      execFileSync('git', ['remote', 'set-url', 'origin', 'https://github.com/someone-else/fork.git'], { cwd: clone });
      const r = await runProgram(process.execPath, [join(clone, 'scripts', 'release.mjs')], { cwd: clone, timeoutMs: 100_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^release: @inkan\/[a-z-]+ names the repository git\+https:\/\/github\.com\/inkan-dkim\/inkan\.git, but origin is https:\/\/github\.com\/someone-else\/fork\.git/,
      );
      expect(r.stdout).not.toMatch(/first release|on npm at/);
      expect(execFileSync('git', ['status', '--porcelain'], { cwd: clone, encoding: 'utf8' })).toBe('');

      execFileSync('git', ['remote', 'remove', 'origin'], { cwd: clone });
      const none = await runProgram(process.execPath, [join(clone, 'scripts', 'release.mjs')], { cwd: clone, timeoutMs: 100_000 });
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/^release: this clone has no "origin" remote/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('every public package ships README.md, LICENSE and CHANGELOG.md', () => {
    for (const group of ['packages', 'apps']) {
      for (const dir of readdirSync(join(repo, group))) {
        const file = join(repo, group, dir, 'package.json');
        if (!existsSync(file)) continue;
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name: string; private?: boolean; files?: string[] };
        if (pkg.private) continue;
        expect(pkg.files, pkg.name).toEqual(expect.arrayContaining(['README.md', 'LICENSE', 'CHANGELOG.md']));
      }
    }
  });
});
