/**
 * Operations under hostile load, against a real inkan-milterd: a client hammering /metrics,
 * a log reader that stops reading, syslog that is not there (or goes away), and signing keys
 * that others could replace (owner, directories, symlinks).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { get, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeKeys, rssKiB, runProgram, tempDir, type TestKeys, waitFor } from '@inkan/testbed';
import { capLine, LogOutput } from '../src/log.js';
import { insertedSignatures, type MilterdProcess, startMilterd, timedTransaction } from './helpers.js';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'inkan-milterd.js');

let keys: TestKeys;
let dir: string;
let counter = 0;

beforeAll(() => {
  keys = makeKeys();
  dir = tempDir('inkan-hostile-ops-');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function message(from = 'joe@example.org'): Buffer {
  counter++;
  return Buffer.from(
    `From: Joe <${from}>\r\nTo: suzie@example.net\r\nSubject: ops ${counter}\r\nMessage-ID: <ops.${counter}@example.org>\r\n\r\nBody ${counter}.\r\n`,
  );
}

/** A signing configuration (ed25519: cheap to sign with) on a fresh port, plus `extra` lines. */
async function signingConf(name: string, extra: string[] = []): Promise<{ conf: string; port: number }> {
  const keyFile = join(dir, `${name}.private`);
  writeFileSync(keyFile, keys.ed25519.pem, { mode: 0o600 });
  const port = await freePort();
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    [`Socket inet:${port}@127.0.0.1`, 'Domain example.org', 'Selector one', `KeyFile ${keyFile}`, ...extra, ''].join('\n'),
  );
  return { conf, port };
}

/** One message from an internal client; the selectors of the signatures it got. */
async function sign(port: number, sender = 'joe@example.org'): Promise<string[]> {
  const tx = await timedTransaction(`inet:${port}@127.0.0.1`, message(sender), {
    client: { address: '127.0.0.1', hostname: 'localhost' },
    sender,
  });
  return insertedSignatures(tx.endOfMessage.modifications).map((f) => /\bs=([^;\s]+)/.exec(f)?.[1] ?? '');
}

/** One HTTP request on a fresh connection: status and body (bounded by 10 s). */
function httpRequest(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

function metricValue(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('/metrics under a scraping flood', () => {
  let milterd: MilterdProcess | undefined;
  afterAll(async () => {
    await milterd?.stop();
  });

  it('2,000 scrapes while messages are signed: every message signed, the text made at most once a second', async () => {
    const metricsPort = await freePort();
    const { conf, port } = await signingConf('metrics', [`MetricsListen 127.0.0.1:${metricsPort}`]);
    milterd = await startMilterd(['-x', conf]);
    const started = performance.now();
    const SCRAPES = 2000;
    let scraped = 0;
    let failed = 0;
    let next = 0;
    const scraper = async () => {
      while (next < SCRAPES) {
        next++;
        try {
          const r = await httpRequest(metricsPort, '/metrics');
          if (r.status === 200 && r.body.includes('inkan_signatures_made_total')) scraped++;
          else failed++;
        } catch {
          failed++;
        }
      }
    };
    const MESSAGES = 40;
    const signer = async () => {
      const selectors: string[][] = [];
      for (let i = 0; i < MESSAGES; i++) selectors.push(await sign(port));
      return selectors;
    };
    const [selectors] = await Promise.all([signer(), scraper(), scraper(), scraper(), scraper()]);
    const seconds = (performance.now() - started) / 1000;
    expect(selectors).toEqual(Array.from({ length: MESSAGES }, () => ['one']));
    expect(scraped + failed).toBe(SCRAPES);
    expect(failed).toBe(0);
    const text = (await httpRequest(metricsPort, '/metrics')).body;
    expect(metricValue(text, 'inkan_signatures_made_total')).toBe(MESSAGES);
    const renders = metricValue(text, 'inkan_metrics_renders_total') ?? Number.NaN;
    // At most one a second (plus the first and the last one), however many scrapes came.
    expect(renders).toBeGreaterThanOrEqual(1);
    expect(renders).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
    console.log(
      `metrics flood: ${SCRAPES} scrapes and ${MESSAGES} signed messages in ${seconds.toFixed(1)} s; the text was made ${renders} times`,
    );
  });

  it('only GET /metrics, one request per connection; connections over the cap and silent ones are closed', async () => {
    const metricsPort = await freePort();
    const { conf } = await signingConf('metrics-limits', [`MetricsListen 127.0.0.1:${metricsPort}`]);
    const m = await startMilterd(['-x', conf]);
    try {
      expect((await httpRequest(metricsPort, '/metrics', 'POST')).status).toBe(405);
      expect((await httpRequest(metricsPort, '/other')).status).toBe(404);
      // Keep-alive is not offered: the server closes after each answer.
      const closedAfterAnswer = await new Promise<boolean>((resolve, reject) => {
        const req = get(
          { host: '127.0.0.1', port: metricsPort, path: '/metrics', headers: { connection: 'keep-alive' }, agent: false },
          (res) => {
            res.resume();
            res.socket.once('close', () => resolve(true));
            expect(res.headers.connection).toBe('close');
          },
        );
        req.on('error', reject);
        setTimeout(() => resolve(false), 10_000).unref();
      });
      expect(closedAfterAnswer).toBe(true);
      // Eight silent connections are taken; the ninth is closed at once; the silent ones after the request timeout (5 s).
      const open = (): Promise<{ socket: Socket; closed: Promise<void> }> =>
        new Promise((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port: metricsPort });
          socket.on('error', () => {});
          const closed = new Promise<void>((r) => socket.once('close', () => r()));
          socket.once('connect', () => resolve({ socket, closed }));
          socket.once('error', reject);
        });
      const silent = [];
      for (let i = 0; i < 8; i++) silent.push(await open());
      await new Promise((r) => setTimeout(r, 200));
      const ninth = await open();
      const within = (p: Promise<void>, ms: number) =>
        Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
      expect(await within(ninth.closed, 5000)).toBe(true);
      const silentClosed = await Promise.all(silent.map((s) => within(s.closed, 15_000)));
      expect(silentClosed).toEqual(silent.map(() => true));
      // And scraping works again.
      expect((await httpRequest(metricsPort, '/metrics')).status).toBe(200);
    } finally {
      await m.stop();
    }
  });
});

describe('RequireSafeKeys: owner, directories and symbolic links', () => {
  const asRoot = process.getuid?.() === 0;
  // Not nobody: started as root without UserID, milterd runs as nobody, which may own its keys.
  const OTHER = Number(spawnSync('id', ['-u', 'daemon'], { encoding: 'utf8' }).stdout.trim() || 1);

  /** A configuration signing with `keyFile`, and `extra` lines. */
  function keyConf(name: string, keyFile: string, extra: string[] = []): string {
    const conf = join(dir, `${name}.conf`);
    writeFileSync(conf, ['Socket inet:0@127.0.0.1', 'Domain example.org', 'Selector one', `KeyFile ${keyFile}`, ...extra, ''].join('\n'));
    return conf;
  }

  /** A key file in a fresh directory under the test's own (0700, root-owned) directory. */
  function keyIn(name: string, dirMode: number): string {
    const d = join(dir, name);
    mkdirSync(d);
    chmodSync(d, dirMode);
    const keyFile = join(d, 'key.private');
    writeFileSync(keyFile, keys.ed25519.pem, { mode: 0o600 });
    return keyFile;
  }

  async function checkConfig(conf: string): Promise<{ code: number | null; output: string }> {
    const r = await runProgram(process.execPath, [BIN, '-x', conf, '--check-config'], { timeoutMs: 30_000 });
    return { code: r.code, output: r.stdout + r.stderr };
  }

  it.skipIf(!asRoot)(
    'a key owned by another user is refused by --check-config and at start-up; owned by the UserID user it is taken',
    async () => {
      const keyFile = keyIn('owner', 0o700);
      chownSync(keyFile, OTHER, OTHER);
      const refused = await checkConfig(keyConf('owner', keyFile));
      expect(refused.code).toBe(78);
      expect(refused.output).toContain(`key file ${keyFile} is owned by uid ${OTHER}`);
      expect(refused.output).toMatch(/who could replace the key: chown it to root/);
      expect(refused.output).not.toContain('PRIVATE KEY');
      const start = await startMilterd(['-x', keyConf('owner-start', keyFile)], { ready: 'none' });
      try {
        expect(await Promise.race([start.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))])).toBe(78);
        expect(start.output()).toContain(`is owned by uid ${OTHER}`);
      } finally {
        await start.stop();
      }
      // The user milterd runs as may own its key (and must be able to reach it, for a reload).
      chmodSync(dir, 0o711);
      chmodSync(dirname(keyFile), 0o711);
      const taken = await checkConfig(keyConf('owner-userid', keyFile, ['UserID daemon']));
      expect(taken.output).not.toMatch(/owned by/);
      expect(taken.code).toBe(0);
    },
  );

  it.skipIf(!asRoot)('a key in a directory others can change is refused, unless the directory is sticky (as /tmp)', async () => {
    const open = keyIn('dir-0777', 0o777);
    const r1 = await checkConfig(keyConf('dir-0777', open));
    expect(r1.code).toBe(78);
    expect(r1.output).toContain(
      `key file ${open} is in directory ${dirname(open)}, writable by anyone (mode 0777), who could replace the key: chmod go-w`,
    );
    const group = keyIn('dir-0770', 0o770);
    const r2 = await checkConfig(keyConf('dir-0770', group));
    expect(r2.code).toBe(78);
    expect(r2.output).toContain(`writable by its group (mode 0770)`);
    const sticky = keyIn('dir-1777', 0o1777);
    const r3 = await checkConfig(keyConf('dir-1777', sticky));
    expect(r3.output).not.toMatch(/who could replace|is a symbolic link owned/);
    expect(r3.code).toBe(0);
    const foreign = keyIn('dir-nobody', 0o755);
    chownSync(dirname(foreign), OTHER, OTHER);
    const r4 = await checkConfig(keyConf('dir-nobody', foreign));
    expect(r4.code).toBe(78);
    expect(r4.output).toContain(`is in directory ${dirname(foreign)}, owned by uid ${OTHER}`);
    // A directory further up counts too.
    const deep = join(dirname(open), 'inner');
    mkdirSync(deep, { mode: 0o700 });
    writeFileSync(join(deep, 'key.private'), keys.ed25519.pem, { mode: 0o600 });
    const r5 = await checkConfig(keyConf('dir-deep', join(deep, 'key.private')));
    expect(r5.code).toBe(78);
    expect(r5.output).toContain(`is in directory ${dirname(open)}, writable by anyone`);
  });

  it.skipIf(!asRoot)('a symbolic link is judged by its target and by its own owner', async () => {
    const unsafe = keyIn('link-target-0777', 0o777);
    const safe = keyIn('link-target-0700', 0o700);
    const links = join(dir, 'links');
    mkdirSync(links, { mode: 0o700 });
    const toUnsafe = join(links, 'to-unsafe.private');
    symlinkSync(unsafe, toUnsafe);
    const r1 = await checkConfig(keyConf('link-unsafe', toUnsafe));
    expect(r1.code).toBe(78);
    expect(r1.output).toContain(`key file ${toUnsafe} (a link to ${unsafe}) is in directory ${dirname(unsafe)}, writable by anyone`);
    const foreignLink = join(links, 'foreign.private');
    symlinkSync(safe, foreignLink);
    spawnSync('chown', ['-h', `${OTHER}:${OTHER}`, foreignLink]);
    const r2 = await checkConfig(keyConf('link-foreign', foreignLink));
    expect(r2.code).toBe(78);
    expect(r2.output).toContain(`key file ${foreignLink} is a symbolic link owned by uid ${OTHER}`);
    const good = join(links, 'good.private');
    symlinkSync(safe, good);
    const r3 = await checkConfig(keyConf('link-good', good));
    expect(r3.output).not.toMatch(/who could replace|is a symbolic link owned/);
    expect(r3.code).toBe(0);
  });
});

describe('log output limits (unit)', () => {
  it('a line over 16 KiB keeps its level, message and fields, with long strings cut; not JSON: a notice', () => {
    const line = `${JSON.stringify({ level: 40, time: 1, name: 'inkan-milterd', from: 'x'.repeat(40_000), queueId: 'Q1', msg: 'signed' })}\n`;
    const cut = capLine(line);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(16 * 1024);
    const entry = JSON.parse(cut) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 40, msg: 'signed', queueId: 'Q1', logLineCut: Buffer.byteLength(line) });
    expect(String(entry.from)).toMatch(/^x{1024}\.\.\.\[38976 more characters\]$/);
    const many = `${JSON.stringify({ level: 30, msg: 'm', list: Array.from({ length: 5000 }, (_, i) => `item ${i}`), more: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i])) })}\n`;
    expect(Buffer.byteLength(capLine(many))).toBeLessThanOrEqual(16 * 1024);
    expect(JSON.parse(capLine(`${'{'.repeat(20_000)}\n`))).toMatchObject({
      level: 40,
      msg: 'a log line of 20001 bytes was dropped: over the 16384-byte limit',
    });
    expect(capLine('{"msg":"short"}\n')).toBe('{"msg":"short"}\n');
  });

  it('a sink that stops taking lines: at most the bound waits, the rest is counted and reported once it drains', () => {
    const held: (() => void)[] = [];
    const written: string[] = [];
    const stream = new Writable({
      highWaterMark: 1024,
      decodeStrings: false,
      write(chunk: string, _encoding, callback) {
        written.push(chunk);
        held.push(callback);
      },
    });
    const output = new LogOutput({ stream, format: (l) => l }, { queueBytes: 10_000, lineBytes: 16 * 1024 });
    const line = (i: number) => `${JSON.stringify({ level: 30, msg: `line ${i}`, pad: 'p'.repeat(80) })}\n`;
    const TOTAL = 1000;
    for (let i = 0; i < TOTAL; i++) output.write(line(i));
    expect(output.droppedLines).toBeGreaterThan(800);
    const dropped = output.droppedLines;
    // The reader takes everything again.
    for (let i = 0; i < 10_000 && held.length > 0; i++) (held.shift() as () => void)();
    const lines = written.join('').split('\n').filter(Boolean);
    const notice = JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, unknown>;
    expect(notice).toMatchObject({ level: 40, droppedLines: dropped });
    expect(lines.length - 1 + dropped).toBe(TOTAL);
    // Kept lines come out in order: the first ones, before anything was dropped.
    expect(lines.slice(0, 5).map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual([
      'line 0',
      'line 1',
      'line 2',
      'line 3',
      'line 4',
    ]);
    expect(output.droppedLines).toBe(0);
  });
});

describe('a log reader that stops reading', () => {
  let milterd: MilterdProcess | undefined;
  afterAll(async () => {
    milterd?.child.stdout?.resume();
    await milterd?.stop();
  });

  /** `count` messages from a sender whose long address makes long log lines, four at a time; their selectors. */
  async function flood(port: number, count: number): Promise<string[][]> {
    const sender = `${'x'.repeat(300)}@example.org`;
    const out: string[][] = [];
    let next = 0;
    const worker = async () => {
      while (next < count) {
        next++;
        out.push(await sign(port, sender));
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return out;
  }

  it('memory stays bounded and signing goes on; the dropped lines are counted once output drains; SIGTERM still stops milterd', async () => {
    const { conf, port } = await signingConf('stall', ['LogWhy yes']);
    milterd = await startMilterd(['-x', conf], { env: { INKAN_LOG_LEVEL: 'debug' } });
    const m = milterd;
    const stdout = m.child.stdout as NonNullable<ChildProcess['stdout']>;
    const rssBefore = rssKiB(m.pid);
    // Stop reading: the pipe fills, then milterd keeps at most 1 MiB of lines (about 1.4 KiB a message here).
    stdout.pause();
    const MESSAGES = 1500;
    const selectors = await flood(port, MESSAGES);
    expect(selectors).toEqual(Array.from({ length: MESSAGES }, () => ['one']));
    const rssGrowthMiB = (rssKiB(m.pid) - rssBefore) / 1024;
    expect(rssGrowthMiB).toBeLessThan(128);
    expect(m.output()).not.toMatch(/log lines dropped/);
    // Reading again: what was kept comes out, then one line says how many were dropped.
    stdout.resume();
    await m.waitForOutput(/log lines dropped/, 400);
    const dropped = Number(/"droppedLines":(\d+)/.exec(m.output())?.[1]);
    expect(dropped).toBeGreaterThan(0);
    expect(m.output()).toMatch(/"level":40,.*"droppedLines":\d+,"msg":"\d+ log lines dropped: the log output was not taking them/);

    // Stalled again, with lines waiting: SIGTERM stops milterd all the same (the last lines get a bounded wait).
    stdout.pause();
    await flood(port, 400);
    const stopped = performance.now();
    m.child.kill('SIGTERM');
    const code = await Promise.race([m.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    const stopSeconds = (performance.now() - stopped) / 1000;
    stdout.resume();
    expect(code).toBe(0);
    milterd = undefined;
    console.log(
      `stalled log reader: ${MESSAGES} messages signed, RSS grew ${rssGrowthMiB.toFixed(1)} MiB, ${dropped} lines dropped and counted; ` +
        `SIGTERM with the output stalled stopped milterd in ${stopSeconds.toFixed(1)} s`,
    );
  });
});

/**
 * Syslog tests run milterd in a mount namespace of its own (unshare -m, as root) whose /dev
 * is an overlay: /dev/log is absent there, or is the socket of a small syslog sink.
 */
const NAMESPACE_SCRIPT = [
  'set -e',
  'mount -t tmpfs tmpfs "$INKAN_NS_DIR"',
  'mkdir "$INKAN_NS_DIR/upper" "$INKAN_NS_DIR/work"',
  'mount -t overlay overlay -o "lowerdir=/dev,upperdir=$INKAN_NS_DIR/upper,workdir=$INKAN_NS_DIR/work" /dev',
  'rm -f /dev/log',
  'if [ -n "$INKAN_NS_SYSLOG" ]; then touch /dev/log; mount --bind "$INKAN_NS_SYSLOG" /dev/log; fi',
  'exec "$@"',
].join('\n');

function namespacesWork(): boolean {
  if (process.getuid?.() !== 0) return false;
  const d = tempDir('inkan-ns-probe-');
  try {
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', NAMESPACE_SCRIPT, 'sh', 'test', '!', '-e', '/dev/log'], {
      env: { ...process.env, INKAN_NS_DIR: d, INKAN_NS_SYSLOG: '' },
      timeout: 10_000,
    });
    return r.status === 0 && spawnSync('python3', ['-c', 'import socket'], { timeout: 10_000 }).status === 0;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

/** inkan-milterd in its own mount namespace; /dev/log is `syslogSocket` there, or absent. */
function startNamespaced(args: string[], syslogSocket: string | undefined): Promise<MilterdProcess> {
  const nsDir = join(dir, `ns-${++counter}`);
  mkdirSync(nsDir);
  return startMilterd(args, {
    launcher: { command: 'unshare', args: ['-m', '--propagation', 'private', 'sh', '-c', NAMESPACE_SCRIPT, 'sh'] },
    env: { INKAN_NS_DIR: nsDir, INKAN_NS_SYSLOG: syslogSocket ?? '' },
    ready: 'none',
  });
}

/** A unix datagram listener printing each syslog line it gets. */
async function startSyslogSink(path: string): Promise<{ lines(): string[]; stop(): Promise<void> }> {
  const script = join(dir, 'syslog-sink.py');
  writeFileSync(
    script,
    [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      's.bind(sys.argv[1])',
      "print('listening', flush=True)",
      'while True:',
      '    data = s.recv(65536)',
      "    sys.stdout.write(data.decode('latin-1').replace('\\n', ' ') + '\\n')",
      '    sys.stdout.flush()',
      '',
    ].join('\n'),
  );
  const child = spawn('python3', [script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString('latin1');
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitFor(() => out.startsWith('listening'), 'the syslog sink', 200);
  return {
    lines: () => out.split('\n').slice(1).filter(Boolean),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

describe.skipIf(!namespacesWork())('Syslog yes (milterd in a mount namespace of its own)', () => {
  const conf = (name: string) => {
    const file = join(dir, `${name}.conf`);
    writeFileSync(file, ['Socket inet:0@127.0.0.1', 'Mode v', 'Syslog yes', 'SyslogFacility mail', 'AllowRoot yes', ''].join('\n'));
    return file;
  };

  it('without /dev/log: a warning on stderr, and the log on stdout as JSON lines', async () => {
    const m = await startNamespaced(['-x', conf('no-syslog')], undefined);
    try {
      await waitFor(() => m.stdout().includes('"msg":"ready"'), 'ready on stdout', 400);
      expect(m.stderr()).toMatch(
        /Syslog yes, but there is no \/dev\/log \(no syslog daemon running\?\); logging JSON lines to stdout instead/,
      );
      expect(m.stdout()).toMatch(/"level":40,.*"msg":"syslog unavailable: logging JSON lines to stdout instead"/);
    } finally {
      expect(await m.stop()).toBe(0);
    }
  });

  it('with a syslog socket: lines arrive there with their priority; when it goes away, the log goes on on stdout', async () => {
    const socket = join(dir, 'syslog.sock');
    const sink = await startSyslogSink(socket);
    const m = await startNamespaced(['-x', conf('syslog')], socket);
    try {
      await waitFor(() => sink.lines().some((l) => /^<22>.*inkan-milterd\[\d+\]: ready /.test(l)), 'ready in syslog', 400);
      const lines = sink.lines();
      expect(lines.some((l) => /^<22>.*inkan-milterd\[\d+\]: inkan-milterd logging to syslog \(facility mail\)/.test(l))).toBe(true);
      expect(lines.some((l) => /^<22>.*inkan-milterd\[\d+\]: starting \{"version"/.test(l))).toBe(true);
      expect(m.stdout()).not.toMatch(/"msg":"ready"/);
      // A warning goes out as such (mail.warning: 2 * 8 + 4).
      expect(lines.some((l) => /^<20>.*inkan-milterd\[\d+\]: running as root \(AllowRoot yes\)/.test(l))).toBe(true);
      process.kill(m.child.pid as number, 'SIGHUP');
      await waitFor(() => sink.lines().some((l) => /inkan-milterd\[\d+\]: configuration reloaded/.test(l)), 'reload in syslog', 200);
      // The syslog daemon goes away: logger(1) fails on the next line and exits; milterd logs to stdout from then on.
      await sink.stop();
      for (let i = 0; i < 50 && !/syslog went away/.test(m.stdout()); i++) {
        process.kill(m.child.pid as number, 'SIGHUP');
        await new Promise((r) => setTimeout(r, 100));
      }
      await waitFor(() => /"msg":"syslog went away: logging JSON lines to stdout from now on/.test(m.stdout()), 'the fallback line', 200);
      expect(m.stderr()).toMatch(/inkan-milterd: syslog: logger\(1\) exited \(code 1\); logging JSON lines to stdout from now on/);
      process.kill(m.child.pid as number, 'SIGHUP');
      await waitFor(
        () => /syslog went away[^\n]*\n(.*\n)*.*"msg":"configuration reloaded"/.test(m.stdout()),
        'a reload line on stdout',
        200,
      );
    } finally {
      await sink.stop();
      expect(await m.stop()).toBe(0);
    }
  });
});
