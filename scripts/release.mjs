#!/usr/bin/env node
// Release every public @inkan/* package in one command (see docs/releasing.md):
//
//   pnpm run release             check, version, build, pack, commit, publish, tag
//   pnpm run release --dry-run   the same on a throw-away clone of HEAD; publishes nothing
//
// Versions: a package that npm has never seen is published at the version in its
// package.json with a CHANGELOG that says "First release"; the pending changesets that
// name it are not turned into a history of versions nobody could install. Packages that
// are on npm are versioned by `changeset version` from the pending changesets as usual.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const usage = 'usage: node scripts/release.mjs [--dry-run [--keep] [--assume-published=NAME@VERSION ...]]';
const args = process.argv.slice(2);
/** --assume-published=NAME@VERSION (dry run only): take NAME as on npm at VERSION, without asking npm. */
const assumed = new Map();
for (const a of args) {
  const m = /^--assume-published=(@?[^@]+)@(.+)$/.exec(a);
  if (m) {
    assumed.set(m[1], m[2]);
    continue;
  }
  if (a === '--help' || a === '-h') {
    process.stdout.write(
      `${usage}\n  --dry-run  release HEAD in a temporary clone: nothing is published, the work tree is not touched\n  --keep     keep the temporary folder of a dry run\n  --assume-published=NAME@VERSION  dry run as if npm had NAME at VERSION (try a later release)\n`,
    );
    process.exit(0);
  }
  if (a !== '--dry-run' && a !== '--keep') {
    process.stderr.write(`release: unknown option ${a}\n${usage}\n`);
    process.exit(2);
  }
}
const dryRun = args.includes('--dry-run');
if (assumed.size > 0 && !dryRun) {
  process.stderr.write('release: --assume-published goes with --dry-run\n');
  process.exit(2);
}
const keep = args.includes('--keep');
const MINUTE = 60_000;

const say = (text) => process.stdout.write(`${text}\n`);
const step = (text) => process.stdout.write(`\n== ${text}\n`);
class ReleaseError extends Error {}

/** Run a program; its output goes to stderr (stdout is this script's report) unless captured. */
function run(command, argv, { cwd = root, capture = false, timeout = 10 * MINUTE, allowFail = false } = {}) {
  const r = spawnSync(command, argv, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', capture ? 'pipe' : 2, capture ? 'pipe' : 2],
    timeout,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw new ReleaseError(`${command} ${argv.join(' ')}: ${r.error.message}`);
  if (r.status !== 0 && !allowFail) {
    const detail = capture ? `\n${(r.stderr || r.stdout || '').trim()}` : '';
    throw new ReleaseError(`${command} ${argv.join(' ')} failed (exit ${r.status ?? r.signal}) in ${cwd}${detail}`);
  }
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** pnpm as this script was started (pnpm run release), from PATH, or the version the repo pins via npx. */
function findPnpm() {
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: set by pnpm for `pnpm run release`, not an input of a turbo task
  const execPath = process.env.npm_execpath;
  if (execPath && /pnpm/.test(execPath)) return [process.execPath, execPath];
  if (spawnSync('pnpm', ['--version'], { stdio: 'ignore' }).status === 0) return ['pnpm'];
  const pinned = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).packageManager ?? 'pnpm';
  return ['npx', '--yes', pinned];
}
const pnpmCommand = findPnpm();
const pnpm = (argv, options) => run(pnpmCommand[0], [...pnpmCommand.slice(1), ...argv], options);
const git = (argv, options) => run('git', argv, { capture: true, ...options }).stdout.trim();

/** The public workspace packages: name, version, path. */
function publicPackages(cwd) {
  const listed = JSON.parse(pnpm(['-r', 'ls', '--depth', '-1', '--json'], { cwd, capture: true }).stdout);
  return listed
    .filter((p) => !p.private && p.name && p.path !== cwd)
    .map((p) => ({ name: p.name, path: p.path, version: JSON.parse(readFileSync(join(p.path, 'package.json'), 'utf8')).version }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The version npm serves for a package, or undefined when npm has never seen it (E404). */
function publishedVersion(name) {
  if (assumed.has(name)) return { version: assumed.get(name), note: 'assumed by --assume-published' };
  const r = run('npm', ['view', name, 'version', '--json'], { capture: true, allowFail: true, timeout: MINUTE });
  if (r.code === 0) {
    const v = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
    return { version: Array.isArray(v) ? v[v.length - 1] : v };
  }
  if (/E404|404 Not Found/.test(r.stdout + r.stderr)) return { version: undefined };
  const why = (r.stderr.match(/npm error code (\S+)/) ?? [])[1] ?? `exit ${r.code}`;
  if (dryRun) return { version: undefined, note: `lookup failed (${why}); taken as never published for the dry run` };
  throw new ReleaseError(`npm view ${name} failed (${why}): cannot tell whether it was ever published`);
}

/** Changeset files: their package lines (name → bump) and the text after the front matter. */
function readChangesets(cwd) {
  const dir = join(cwd, '.changeset');
  const sets = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.md') && f !== 'README.md')
    .sort()) {
    const text = readFileSync(join(dir, file), 'utf8');
    const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?([\s\S]*)$/.exec(text);
    if (!m) throw new ReleaseError(`.changeset/${file}: no front matter`);
    const bumps = new Map();
    for (const line of m[1].split(/\r?\n/).filter((l) => l.trim())) {
      const e = /^\s*(["']?)([^"':\s]+)\1\s*:\s*(major|minor|patch|none)\s*$/.exec(line);
      if (!e) throw new ReleaseError(`.changeset/${file}: cannot read "${line}"`);
      bumps.set(e[2], e[3]);
    }
    sets.push({ file: join(dir, file), name: file, bumps, body: m[2] });
  }
  return sets;
}

function setVersion(pkgPath, version) {
  const file = join(pkgPath, 'package.json');
  const text = readFileSync(file, 'utf8');
  const next = text.replace(/("version"\s*:\s*)"[^"]*"/, `$1"${version}"`);
  if (JSON.parse(next).version !== version) throw new ReleaseError(`cannot set the version in ${file}`);
  writeFileSync(file, next);
}

/**
 * Version the packages in `cwd`. Packages npm has never seen keep their version and get a
 * "First release" changelog; their lines leave the pending changesets (a changeset left
 * with no package is deleted). The rest goes through `changeset version`.
 */
function version(cwd, packages) {
  const first = packages.filter((p) => p.published === undefined);
  const firstNames = new Set(first.map((p) => p.name));
  let remaining = 0;
  const removed = [];
  for (const set of readChangesets(cwd)) {
    const kept = [...set.bumps].filter(([name]) => !firstNames.has(name));
    if (kept.length === set.bumps.size) {
      remaining++;
      continue;
    }
    if (kept.length === 0) {
      unlinkSync(set.file);
      removed.push(set.name);
      continue;
    }
    writeFileSync(set.file, `---\n${kept.map(([n, b]) => `'${n}': ${b}`).join('\n')}\n---\n${set.body}`);
    say(`  .changeset/${set.name}: kept for ${kept.map(([n]) => n).join(', ')}`);
    remaining++;
  }
  if (removed.length > 0)
    say(
      `  removed ${removed.length} pending changeset${removed.length === 1 ? '' : 's'} naming only packages not yet on npm (a first release has no history): ${removed.join(', ')}`,
    );
  if (remaining > 0) {
    say(`  changeset version (${remaining} pending changeset${remaining === 1 ? '' : 's'} for packages on npm)`);
    pnpm(['exec', 'changeset', 'version'], { cwd });
  }
  // changeset version may have bumped a first-release package as a dependent: undo that
  for (const p of first) {
    setVersion(p.path, p.version);
    const description = JSON.parse(readFileSync(join(p.path, 'package.json'), 'utf8')).description;
    writeFileSync(
      join(p.path, 'CHANGELOG.md'),
      `# ${p.name}\n\n## ${p.version}\n\nFirst release${description ? `: ${description.replace(/\.?$/, '.')}` : '.'}\n`,
    );
  }
  return publicPackages(cwd).map((p) => ({ ...p, published: packages.find((q) => q.name === p.name)?.published }));
}

/** What npm shows on a package's page and what its license needs: every tarball carries these. */
const SHIPPED_WITH_EVERY_PACKAGE = ['README.md', 'LICENSE', 'CHANGELOG.md'];

/** A git URL as host/owner/name, lower-cased: git+https://, https://, ssh://, git@host:path and a trailing .git all alike. */
function repositoryKey(url) {
  const text = String(url ?? '').trim();
  const scp = /^[^@/\s]+@([^:/\s]+):(.+)$/.exec(text);
  let host;
  let path;
  if (scp) [, host, path] = scp;
  else {
    const m = /^(?:git\+)?(?:https?|ssh|git):\/\/(?:[^@/]+@)?([^/:]+)(?::\d+)?\/(.+)$/.exec(text);
    if (!m) return undefined;
    [, host, path] = m;
  }
  return `${host}/${path.replace(/\/+$/, '').replace(/\.git$/, '')}`.toLowerCase();
}

/**
 * The repository every package.json names (its README links and npm's "Repository" point there)
 * must be where this code lives: `git remote get-url origin`. A release refuses a mismatch or a
 * missing origin; a dry run says so and goes on.
 */
function checkRepository(packages) {
  for (const p of packages) {
    const manifest = JSON.parse(readFileSync(join(p.path, 'package.json'), 'utf8'));
    const named = typeof manifest.repository === 'string' ? manifest.repository : manifest.repository?.url;
    const problem = !named
      ? `${p.name} has no repository field`
      : !origin
        ? `this clone has no "origin" remote to check ${p.name}'s repository (${named}) against`
        : repositoryKey(named) !== repositoryKey(origin)
          ? `${p.name} names the repository ${named}, but origin is ${origin}: fix "repository", "homepage" and "bugs" in every package.json (and the README links), or the remote`
          : undefined;
    if (!problem) continue;
    if (!dryRun) throw new ReleaseError(problem);
    say(`  warning: ${problem} (a release stops here)`);
  }
}

/** Pack each package into `out`; read name and version back from each tarball. */
function pack(packages, out) {
  const tarballs = [];
  for (const p of packages) {
    const before = new Set(readdirSync(out));
    pnpm(['pack', '--pack-destination', out], { cwd: p.path, capture: true });
    const made = readdirSync(out).filter((f) => f.endsWith('.tgz') && !before.has(f));
    if (made.length !== 1) throw new ReleaseError(`pnpm pack in ${p.path} made ${made.length} tarballs`);
    const file = join(out, made[0]);
    const manifest = JSON.parse(run('tar', ['-xzOf', file, 'package/package.json'], { capture: true }).stdout);
    const deps = { ...manifest.dependencies, ...manifest.optionalDependencies, ...manifest.peerDependencies };
    const leaked = Object.entries(deps).filter(([, range]) => String(range).startsWith('workspace:'));
    if (leaked.length > 0) throw new ReleaseError(`${made[0]} still has workspace: ranges: ${leaked.map(([n]) => n).join(', ')}`);
    if (manifest.name !== p.name || manifest.version !== p.version)
      throw new ReleaseError(`${made[0]} is ${manifest.name}@${manifest.version}, expected ${p.name}@${p.version}`);
    const listed = new Set(run('tar', ['-tzf', file], { capture: true }).stdout.split('\n'));
    const absent = SHIPPED_WITH_EVERY_PACKAGE.filter((name) => !listed.has(`package/${name}`));
    if (absent.length > 0)
      throw new ReleaseError(
        `${made[0]} lacks ${absent.join(', ')} (add ${absent.length === 1 ? 'it' : 'them'} to "files" in ${join(p.path, 'package.json')})`,
      );
    tarballs.push({ ...p, file });
  }
  return tarballs;
}

let origin;

function main() {
  step(dryRun ? 'Dry run: nothing is published, this work tree is not changed' : 'Release');
  const head = git(['rev-parse', 'HEAD']);
  origin = run('git', ['remote', 'get-url', 'origin'], { capture: true, allowFail: true }).stdout.trim() || undefined;
  const dirty = git(['status', '--porcelain']);
  if (dirty && !dryRun) throw new ReleaseError(`the work tree has uncommitted changes; commit or remove them first:\n${dirty}`);
  if (dirty) say(`note: the work tree has uncommitted changes; the dry run releases HEAD (${head.slice(0, 12)}) without them`);

  const temp = mkdtempSync(join(tmpdir(), 'inkan-release-'));
  let cwd = root;
  try {
    if (dryRun) {
      step(`Copy of HEAD ${head.slice(0, 12)} in ${temp}/repo`);
      cwd = join(temp, 'repo');
      git(['clone', '--quiet', '--no-checkout', root, cwd]);
      git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', head], { cwd });
      const offline = pnpm(['install', '--frozen-lockfile', '--offline'], { cwd, capture: true, allowFail: true });
      if (offline.code !== 0) pnpm(['install', '--frozen-lockfile', '--prefer-offline'], { cwd });
    }

    step('Packages and what npm has');
    const packages = publicPackages(cwd);
    checkRepository(packages);
    for (const p of packages) {
      const r = publishedVersion(p.name);
      p.published = r.version;
      say(`  ${p.name}@${p.version}: ${r.version ? `on npm at ${r.version}` : 'not on npm: first release'}${r.note ? ` (${r.note})` : ''}`);
    }

    step('Versions');
    const versioned = version(cwd, packages);
    for (const p of versioned)
      say(
        `  ${p.name}@${p.version}${p.published === undefined ? ' (first release)' : p.published === p.version ? ' (unchanged, already on npm: not published again)' : ` (npm has ${p.published})`}`,
      );

    step('Build');
    pnpm(['run', 'build'], { cwd, timeout: 15 * MINUTE });

    step('Tarballs');
    const out = join(temp, 'tarballs');
    mkdirSync(out);
    const tarballs = pack(versioned, out);
    for (const t of tarballs) say(`  ${t.name}@${t.version}  ${t.file.slice(out.length + 1)}`);

    const fresh = versioned.filter((p) => p.published !== p.version);
    if (dryRun) {
      step('Publish (dry run: pnpm publish -r --dry-run, nothing is sent)');
      const r = pnpm(['publish', '-r', '--dry-run', '--no-git-checks', '--access', 'public'], { cwd, capture: true });
      const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /^\+ /.test(l));
      for (const l of lines) say(`  would publish ${l.slice(2)}`);
      say(`\nDry run done: ${tarballs.length} tarballs, ${fresh.length} to publish. Run without --dry-run to release.`);
      return;
    }

    step('Commit');
    git(['add', '--all', '--', '.changeset', ...versioned.map((p) => p.path)]);
    const message = `release: ${fresh.map((p) => `${p.name}@${p.version}`).join(', ') || 'nothing new'}`;
    if (git(['status', '--porcelain'])) git(['commit', '--quiet', '-m', message]);
    say(`  ${message}`);

    step('Publish');
    pnpm(['publish', '-r', '--access', 'public'], { cwd, timeout: 15 * MINUTE });
    for (const p of fresh) git(['tag', `${p.name}@${p.version}`]);
    say(
      `\nPublished and tagged ${fresh.map((p) => `${p.name}@${p.version}`).join(', ')}.\nPush the commit and the tags: git push && git push --tags`,
    );
  } finally {
    if (dryRun && keep) say(`(kept ${temp})`);
    else rmSync(temp, { recursive: true, force: true });
  }
}

try {
  main();
} catch (error) {
  if (!(error instanceof ReleaseError)) throw error;
  process.stderr.write(`release: ${error.message}\n`);
  process.exit(1);
}
