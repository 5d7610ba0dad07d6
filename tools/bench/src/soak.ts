/**
 * inkan's soak: many messages through a private Postfix with inkan-milterd as its milter,
 * checking that nothing is lost or doubled, that mail that must be signed is signed, that
 * inbound verdicts are right, and that the daemon's memory and file descriptors stay put.
 *
 *   pnpm soak                          20,000 messages (about 30 KiB on average, 1 KiB to 1 MiB)
 *   pnpm soak --quick                  500 messages, same code paths
 *   pnpm soak --messages N --concurrency C --seed S --json results.json
 *
 * Set-up, all on loopback: dnsmasq serves the keys of our domain (example.org) and of an
 * outside domain (sender.example); inkan-milterd signs mail from the internal submitter
 * (127.0.0.1) and verifies the rest; Postfix (milter_default_action = tempfail) takes mail
 * from the internal submitter and from an outside sender (127.0.0.2) and relays it all to a
 * sink on 127.0.0.3, which checks each message as it arrives. Exit status 0 only when every
 * criterion holds (see the summary). Everything started here is stopped here, also on
 * failure and Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, createReadStream, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MemoryKeyResolver, signMessage } from '@inkan/dkim-core';
import {
  dkimKeyRecord,
  dkimpyVerify,
  describeFds,
  type DnsServer,
  fdCount,
  findProgram,
  freePort,
  mailDkimVerify,
  makeKeys,
  peers,
  type PostfixInstance,
  type PeerVerdict,
  type ProcessSample,
  runProgram,
  sampleProcess,
  SmtpSession,
  startDnsmasq,
  startMilterdOnPort,
  startPostfix,
  type TestKeys,
} from '@inkan/testbed';
import { Checker } from './soak/checker.js';
import {
  addresses,
  bodyBlock,
  buildMessage,
  type Kind,
  OUTSIDE_DOMAIN,
  type PlannedMessage,
  type PlannedSession,
  planSessions,
  tamper,
} from './soak/corpus.js';
import { type MetricValues, metricSum, scrapeMetrics } from './soak/probe.js';

// ---------------------------------------------------------------------------------------
// Options

function usage(error?: string): never {
  if (error) process.stderr.write(`soak: ${error}\n`);
  process.stderr.write(
    'usage: pnpm soak [--quick] [--messages N] [--concurrency C] [--seed S] [--sample-percent P] [--drain-timeout SECONDS] [--json FILE] [--keep]\n',
  );
  process.exit(error ? 2 : 0);
}

interface Options {
  messages: number;
  concurrency: number;
  seed: number;
  samplePercent: number;
  drainTimeoutS: number;
  json: string | undefined;
  keep: boolean;
  quick: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = {
    messages: 20_000,
    concurrency: 8,
    seed: 1,
    samplePercent: 1,
    drainTimeoutS: 900,
    json: undefined,
    keep: false,
    quick: false,
  };
  let messagesGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    const whole = (v: string, min: number, max: number) => {
      if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) usage(`${arg} takes a whole number from ${min} to ${max}, not "${v}"`);
      return Number(v);
    };
    if (arg === '--') continue;
    else if (arg === '--quick') o.quick = true;
    else if (arg === '--messages') {
      o.messages = whole(value(), 10, 1_000_000);
      messagesGiven = true;
    } else if (arg === '--concurrency') o.concurrency = whole(value(), 1, 100);
    else if (arg === '--seed') o.seed = whole(value(), 0, 2 ** 31);
    else if (arg === '--sample-percent') o.samplePercent = whole(value(), 0, 100);
    else if (arg === '--drain-timeout') o.drainTimeoutS = whole(value(), 10, 86_400);
    else if (arg === '--json') o.json = resolve(value());
    else if (arg === '--keep') o.keep = true;
    else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument "${arg}"`);
  }
  if (o.quick && !messagesGiven) o.messages = 500;
  return o;
}

const options = parseOptions(process.argv.slice(2));
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const DKIMPY = join(root, 'tools', 'testbed', 'peers', 'dkimpy.py');
const AUTHSERV = 'mx.inkan.test';
const INTERNAL = '127.0.0.1';
const OUTSIDE = '127.0.0.2';
const SINK = '127.0.0.3';
/** Messages whose outside signature dkimpy makes (the rest: dkim-core). */
const DKIMPY_SIGNED = options.quick ? 10 : 40;
const started = performance.now();
const now = () => performance.now() - started;

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-';
const mib = (kib: number) => `${fmt(kib / 1024, 1)} MiB`;
const seconds = (ms: number) => `${fmt(ms / 1000, 1)} s`;
const log = (text: string) => console.log(`[${seconds(now()).padStart(8)}] ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Everything started is stopped: cleanups run once, in reverse order, on every way out.

const cleanups: Array<{ what: string; run: () => Promise<unknown> | unknown }> = [];
let cleaning: Promise<void> | undefined;
let interrupted = false;
/** Why the run stops early (Ctrl-C, the daemon gone), if it does. */
let halted: string | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c.run();
      } catch (error) {
        console.error(`soak: stopping ${c.what} failed: ${(error as Error).message}`);
      }
    }
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    halted = signal;
    console.error(`\nsoak: ${signal}: stopping everything`);
    void cleanup().then(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------
// inkan-milterd as a real process (the testbed's), its log in a file (no pipe to keep drained).

interface Milterd {
  pid: number;
  logFile: string;
  stop(): Promise<{ code: number | null; ms: number }>;
}

async function startSoakMilterd(dir: string, lines: string[], logFile: string): Promise<{ milterd: Milterd; port: number }> {
  const { milterd: m, port } = await startMilterdOnPort(join(dir, 'daemon.conf'), lines, {
    output: { file: logFile },
    // The real bin, started through a symlink of another name: on a shared machine a broad
    // `pkill -f inkan-milterd` meant for someone else's daemon must not end this one mid-run.
    alias: join(dir, 'soak-daemon.js'),
    readyTries: 300,
    onUnexpectedExit(code, signal, pid) {
      // Not asked by us: the soak cannot go on (someone else's kill, or a crash).
      const said = readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l && !/"msg":"(signed|verified)"/.test(l))
        .slice(-6)
        .join('\n');
      halted ??= `inkan-milterd (pid ${pid}) exited during the run (code ${code}, signal ${signal}) at ${seconds(now())}; the end of its log:\n${said}`;
      log(halted);
    },
  });
  const stop = async () => {
    const t = performance.now();
    const code = await m.stop();
    return { code, ms: performance.now() - t };
  };
  cleanups.push({ what: 'inkan-milterd', run: stop });
  return { milterd: { pid: m.pid, logFile, stop }, port };
}

/** Lines of milterd's log by level, and the first errors and warnings. */
async function readMilterdLog(
  file: string,
): Promise<{ byLevel: Record<string, number>; byMsg: Record<string, number>; notable: string[] }> {
  const names: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
  const byLevel: Record<string, number> = {};
  const byMsg: Record<string, number> = {};
  const notable: string[] = [];
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    let level = 'unparsed';
    let msg = '';
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string };
      level = names[entry.level ?? 0] ?? String(entry.level);
      msg = entry.msg ?? '';
    } catch {
      // not JSON (Node warnings on stderr)
    }
    byLevel[level] = (byLevel[level] ?? 0) + 1;
    byMsg[msg] = (byMsg[msg] ?? 0) + 1;
    if (
      (level === 'error' || level === 'fatal' || level === 'unparsed' || level === 'warn') &&
      notable.length < 10 &&
      !/running as root|first run/.test(line)
    )
      notable.push(line.slice(0, 400));
  }
  return { byLevel, byMsg, notable };
}

// ---------------------------------------------------------------------------------------
// Keys and the outside domain's signing

interface OutsideSigner {
  keys: TestKeys;
  dir: string;
}

/** Sign as the outside domain: dkimpy for the first few, dkim-core for the rest. */
async function signOutside(o: OutsideSigner, m: PlannedMessage, message: Buffer, useDkimpy: boolean): Promise<Buffer> {
  const selector = m.selector ?? 'rsa';
  const key = selector === 'rsa' ? o.keys.rsa2048 : o.keys.ed25519;
  const canonicalization = m.canonicalization ?? 'relaxed/relaxed';
  let field: string;
  if (useDkimpy) {
    // dkimpy takes an RSA PEM, or the raw Ed25519 seed in base64
    const der = key.privateKey.export({ format: 'der', type: 'pkcs8' });
    const keyText = selector === 'rsa' ? (key.pkcs1Pem as string) : der.subarray(der.length - 32).toString('base64');
    const keyFile = join(o.dir, `dkimpy-${m.index}.key`);
    const msgFile = join(o.dir, `dkimpy-${m.index}.eml`);
    writeFileSync(keyFile, keyText, { mode: 0o600 });
    writeFileSync(msgFile, message);
    try {
      const algorithm = selector === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256';
      const r = await runProgram(
        '/usr/bin/python3',
        [DKIMPY, 'sign', keyFile, OUTSIDE_DOMAIN, selector, algorithm, canonicalization, msgFile],
        { timeoutMs: 60_000 },
      );
      if (r.code !== 0 || !r.stdout.startsWith('DKIM-Signature:')) throw new Error(`dkimpy sign failed (${r.code}): ${r.stderr}`);
      field = `${r.stdout.replace(/\r?\n$/, '').replace(/\r?\n/g, '\r\n')}\r\n`;
    } finally {
      unlinkSync(keyFile);
      unlinkSync(msgFile);
    }
  } else {
    field = await signMessage(message, { domain: OUTSIDE_DOMAIN, selector, privateKey: key.privateKey, canonicalization });
  }
  return Buffer.concat([Buffer.from(field, 'latin1'), message]);
}

// ---------------------------------------------------------------------------------------
// Sending

interface SendStats {
  accepted: number;
  /** Non-250 replies to a message (each resent later, bounded). */
  refusals: number;
  refusalTexts: string[];
  /** Sessions that broke (connection lost, timeout). */
  sessionErrors: number;
  sessionErrorTexts: string[];
  sessions: number;
  bytes: number;
  /** Messages never accepted after every retry. */
  neverAccepted: number[];
  /** ms since start when the last message was accepted. */
  lastAccepted: number;
}

/** The outside messages dkimpy signs (the first few of the run), made before the clock starts. */
async function presignWithDkimpy(
  plan: PlannedSession[],
  outside: OutsideSigner,
  block: ReturnType<typeof bodyBlock>,
  runId: string,
): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  if (!peers.dkimpy) return out;
  const chosen = plan.flatMap((s) => s.messages.filter((m) => m.kind === 'good' || m.kind === 'tampered')).slice(0, DKIMPY_SIGNED);
  for (const m of chosen) out.set(m.index, await signOutside(outside, m, buildMessage(runId, m, block), true));
  return out;
}

async function sendAll(
  plan: PlannedSession[],
  port: number,
  outside: OutsideSigner,
  presigned: Map<number, Buffer>,
  block: ReturnType<typeof bodyBlock>,
  runId: string,
  onAccepted: (count: number) => void,
): Promise<SendStats> {
  const stats: SendStats = {
    accepted: 0,
    refusals: 0,
    refusalTexts: [],
    sessionErrors: 0,
    sessionErrorTexts: [],
    sessions: 0,
    bytes: 0,
    neverAccepted: [],
    lastAccepted: 0,
  };

  const prepare = async (m: PlannedMessage): Promise<Buffer> => {
    if (m.kind === 'sign' || m.kind === 'unsigned') return buildMessage(runId, m, block);
    const signed = presigned.get(m.index) ?? (await signOutside(outside, m, buildMessage(runId, m, block), false));
    return m.kind === 'tampered' ? tamper(signed, m.tamper ?? 'body') : signed;
  };

  /** One session's messages; returns those to try again. */
  const runSession = async (session: PlannedSession): Promise<PlannedMessage[]> => {
    const retry: PlannedMessage[] = [];
    const { from, to } = addresses(session.internal);
    stats.sessions++;
    let smtp: SmtpSession | undefined;
    let done = 0;
    try {
      smtp = await SmtpSession.open({
        host: '127.0.0.1',
        port,
        localAddress: session.internal ? INTERNAL : OUTSIDE,
        helo: session.internal ? 'submit.example.org' : 'mx.sender.example',
        replyTimeoutMs: 180_000,
      });
      for (const m of session.messages) {
        if (halted) break;
        const data = await prepare(m);
        const { decided: reply } = await smtp.transaction(from, to, data, { crlf: false, announceSize: true, resetAfterRefusal: true });
        done++;
        if (reply.code === 250) {
          stats.accepted++;
          stats.bytes += data.length;
          stats.lastAccepted = now();
          onAccepted(stats.accepted);
        } else {
          stats.refusals++;
          if (stats.refusalTexts.length < 10) stats.refusalTexts.push(`message ${m.index}: ${reply.code} ${reply.text}`);
          retry.push(m);
        }
      }
      await smtp.close();
    } catch (error) {
      smtp?.destroy();
      stats.sessionErrors++;
      if (stats.sessionErrorTexts.length < 10) stats.sessionErrorTexts.push((error as Error).message);
      // The message in flight may or may not have been taken: resending it can double it,
      // which the sink would count (as a real client's retry would).
      retry.push(...session.messages.slice(done));
    }
    return retry;
  };

  let queue = [...plan];
  for (let round = 0; round < 4 && queue.length > 0 && !halted; round++) {
    if (round > 0) {
      log(`resending ${queue.reduce((n, s) => n + s.messages.length, 0)} refused message(s), round ${round}`);
      await sleep(2000 * round);
    }
    const retry: PlannedMessage[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        for (let guard = 0; guard < queue.length && !halted; guard++) {
          const session = queue[next++];
          if (!session) break;
          retry.push(...(await runSession(session)));
        }
      }),
    );
    // Each message to retry goes in a session of its own (from the right address).
    queue = retry.sort((a, b) => a.index - b.index).map((m) => ({ internal: m.kind === 'sign', messages: [m] }));
  }
  stats.neverAccepted = queue.flatMap((s) => s.messages.map((m) => m.index));
  return stats;
}

// ---------------------------------------------------------------------------------------
// The run

interface Results {
  ok: boolean;
  criteria: Array<{ name: string; ok: boolean; value: string }>;
  figures: Record<string, unknown>;
}

/** A sample of the daemon with the count accepted when it was taken. */
interface Sample extends ProcessSample {
  /** Milliseconds since the soak started. */
  at: number;
  accepted: number;
}

/** The soak cannot run without these programs, nor without root (a private Postfix). */
function checkMachine(): void {
  const missing = ['dnsmasq', 'postfix', 'postqueue'].filter((p) => !findProgram(p));
  if (missing.length > 0) throw new Error(`needs ${missing.join(', ')} (bash scripts/test.sh installs them)`);
  if (process.getuid?.() !== 0) throw new Error('a private Postfix instance needs root');
}

/** The run's folder: removed at the end, unless --keep. */
function makeRunFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'inkan-soak-'));
  chmodSync(dir, 0o755);
  cleanups.push({
    what: 'the temp dir',
    run: () => {
      if (options.keep) console.log(`kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  });
  return dir;
}

/** Keys: ours (RSA + Ed25519, both sign every message) and the outside domain's, all served by dnsmasq. */
async function keysAndDns(dir: string): Promise<{ theirs: TestKeys; records: Record<string, string>; dns: DnsServer }> {
  const ours = makeKeys();
  const theirs = makeKeys();
  const records = {
    'rsa._domainkey.example.org': dkimKeyRecord(ours.rsa2048),
    'ed._domainkey.example.org': dkimKeyRecord(ours.ed25519),
    'rsa._domainkey.sender.example': dkimKeyRecord(theirs.rsa2048),
    'ed._domainkey.sender.example': dkimKeyRecord(theirs.ed25519),
  };
  const dns: DnsServer = await startDnsmasq(records);
  cleanups.push({ what: 'dnsmasq', run: () => dns.stop() });
  writeFileSync(join(dir, 'rsa.private'), ours.rsa2048.pem, { mode: 0o600 });
  writeFileSync(join(dir, 'ed.private'), ours.ed25519.pem, { mode: 0o600 });
  // Owned by the user milterd runs as (UserID nobody below), so that a reload could read them.
  const [nobodyUid, nobodyGid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim())) as [
    number,
    number,
  ];
  for (const key of ['rsa.private', 'ed.private']) chownSync(join(dir, key), nobodyUid, nobodyGid);
  return { theirs, records, dns };
}

/** inkan-milterd signing for the internal submitter and verifying the rest, with metrics on. */
async function startDaemon(dir: string, dnsPort: number): Promise<{ milterd: Milterd; milterPort: number; metricsAt: string }> {
  const metricsPort = await freePort();
  const metricsAt = `127.0.0.1:${metricsPort}`;
  const { milterd, port: milterPort } = await startSoakMilterd(
    dir,
    [
      'Mode sv',
      'Domain example.org',
      `SigningKeys rsa:${join(dir, 'rsa.private')}, ed:${join(dir, 'ed.private')}`,
      `# the internal submitter; ${OUTSIDE} is the outside world`,
      `InternalHosts ${INTERNAL}`,
      `AuthservID ${AUTHSERV}`,
      'AlwaysAddARHeader yes',
      `Nameservers 127.0.0.1@${dnsPort}`,
      'DNSTimeout 2',
      "# as before OpenDKIM's default (tempfail): a slow lookup is recorded as dkim=temperror, not deferred",
      'On-DNSError accept',
      `MetricsListen ${metricsAt}`,
      'UserID nobody',
    ],
    join(dir, 'daemon.log'),
  );
  log(`inkan-milterd ready, pid ${milterd.pid}, inet:${milterPort}@127.0.0.1, metrics on ${metricsAt}`);
  return { milterd, milterPort, metricsAt };
}

/** The plan, the count of each kind, and the judge at the sink. */
function planAndChecker(
  runId: string,
  records: Record<string, string>,
  dir: string,
): { plan: PlannedSession[]; planned: Record<Kind, number>; checker: Checker } {
  const plan = planSessions(options.messages, options.seed);
  const kinds: Kind[] = [];
  for (const s of plan) for (const m of s.messages) kinds[m.index] = m.kind;
  const planned = { sign: 0, good: 0, tampered: 0, unsigned: 0 } as Record<Kind, number>;
  for (const k of kinds) planned[k]++;
  const sampleEvery = options.samplePercent > 0 ? Math.max(1, Math.round(100 / options.samplePercent)) : 0;
  const sampleCount = { sign: 0, good: 0, tampered: 0, unsigned: 0 } as Record<Kind, number>;
  const checker = new Checker(
    {
      runId,
      kinds,
      authservId: AUTHSERV,
      resolver: new MemoryKeyResolver({
        'rsa._domainkey.example.org': records['rsa._domainkey.example.org'] as string,
        'ed._domainkey.example.org': records['ed._domainkey.example.org'] as string,
      }),
      signaturesPerMessage: 2,
      dir,
      // the first 3 of each, then every Nth: signed mail, and outside mail signed outside
      sampled: (index, kind) => {
        if (kind !== 'sign' && kind !== 'good') return false;
        sampleCount[kind]++;
        return sampleEvery > 0 && (sampleCount[kind] <= 3 || index % sampleEvery === 0);
      },
    },
    now,
  );
  return { plan, planned, checker };
}

/** Postfix relays to its sink, here on 127.0.0.3: it keeps nothing and hands each message to the checker. */
async function startSoakPostfix(milterPort: number, checker: Checker): Promise<PostfixInstance> {
  const postfix: PostfixInstance = await startPostfix({
    smtpdMilters: `inet:127.0.0.1:${milterPort}`,
    milterDefaultAction: 'tempfail',
    mainCf: { non_smtpd_milters: '', message_size_limit: String(20 * 1024 * 1024) },
    sink: { host: SINK, keep: false, maxMessageBytes: 64 * 1024 * 1024, onMessage: (m) => checker.take(m.data) },
  });
  cleanups.push({ what: 'Postfix and its sink', run: () => postfix.stop() });
  log(`Postfix ${postfix.version} on 127.0.0.1:${postfix.smtpPort}, relaying to the sink on ${postfix.sink.host}:${postfix.sink.port}`);
  return postfix;
}

/** The daemon watched over the run: a baseline, a sample every second, one more at every tenth of the run. */
interface Sampling {
  baseline: Sample;
  baselineFds: Record<string, number>;
  metricsBaseline: MetricValues;
  samples: Sample[];
  byTenth: Sample[];
  tenth: number;
  metricsWarmup(): MetricValues | undefined;
  acceptedSoFar(): number;
  /** Called with the count accepted so far, after each accepted message. */
  onAccepted(count: number): void;
  /** The end sample (appended to the samples), and the sampling stopped. */
  finish(): Sample;
}

/** Baseline: the idle daemon, after one metrics request (so the HTTP side is warm too); then samples every second. */
async function startSampling(milterd: Milterd, metricsAt: string, checker: Checker): Promise<Sampling> {
  const metricsBaseline = await scrapeMetrics(metricsAt);
  await sleep(3000);
  const baseline = { at: now(), ...sampleProcess(milterd.pid), accepted: 0 };
  const baselineFds = describeFds(milterd.pid);
  log(`baseline: RSS ${mib(baseline.rssKiB)}, ${baseline.fds} fds, ${baseline.threads} threads`);

  // Samples every second, each with the count accepted so far; one more at every tenth of the run.
  const samples: Sample[] = [{ ...baseline, accepted: 0 }];
  const tenth = Math.max(1, Math.round(options.messages / 10));
  const byTenth: Sample[] = [];
  let metricsWarmup: MetricValues | undefined;
  let lastReport = 0;
  let acceptedSoFar = 0;
  const take = (): Sample | undefined => {
    try {
      const s = { at: now(), ...sampleProcess(milterd.pid), accepted: acceptedSoFar };
      samples.push(s);
      return s;
    } catch {
      return undefined; // the daemon is gone; the summary says so
    }
  };
  const sampler = setInterval(() => {
    const s = take();
    if (s && s.at - lastReport >= 15_000) {
      lastReport = s.at;
      log(
        `accepted ${fmt(acceptedSoFar)}/${fmt(options.messages)}, delivered ${fmt(checker.totalDelivered)}, RSS ${mib(s.rssKiB)}, ${s.fds} fds, ${s.threads} threads`,
      );
    }
  }, 1000);
  cleanups.push({ what: 'the sampler', run: () => clearInterval(sampler) });

  return {
    baseline,
    baselineFds,
    metricsBaseline,
    samples,
    byTenth,
    tenth,
    metricsWarmup: () => metricsWarmup,
    acceptedSoFar: () => acceptedSoFar,
    onAccepted(count) {
      acceptedSoFar = count;
      if (count >= tenth * (byTenth.length + 1) && byTenth.length < 10) {
        const s = take();
        if (s) byTenth.push(s);
        if (byTenth.length === 1 && s) {
          log(`warm-up done (${fmt(count)} accepted): RSS ${mib(s.rssKiB)}, ${s.fds} fds`);
          void scrapeMetrics(metricsAt).then(
            (m) => (metricsWarmup = m),
            () => undefined,
          );
        }
      }
    },
    finish() {
      const end: Sample = { at: now(), ...sampleProcess(milterd.pid), accepted: acceptedSoFar };
      samples.push(end);
      clearInterval(sampler);
      return end;
    },
  };
}

/** Drain: the sink has everything accepted and Postfix's queue is empty (bounded). */
async function drain(postfix: PostfixInstance, checker: Checker, accepted: number): Promise<{ queueEmpty: boolean; drained: number }> {
  const drainDeadline = now() + options.drainTimeoutS * 1000;
  let queueEmpty = false;
  for (let guard = 0; now() < drainDeadline && !halted && guard < options.drainTimeoutS * 2; guard++) {
    if (checker.totalDelivered >= accepted) {
      const q = await runProgram(findProgram('postqueue') as string, ['-c', postfix.configDir, '-j'], { timeoutMs: 30_000 });
      if (q.code === 0 && q.stdout.trim() === '') {
        queueEmpty = true;
        break;
      }
    }
    await sleep(500);
  }
  const drained = now();
  log(`queue ${queueEmpty ? 'empty' : 'NOT empty'}: ${fmt(checker.totalDelivered)} delivered, last at ${seconds(checker.lastArrival)}`);
  await checker.settle();
  return { queueEmpty, drained };
}

/** Settle: the daemon idle again; fds back to the baseline (bounded wait), then the end sample. */
async function settle(
  milterd: Milterd,
  metricsAt: string,
  sampling: Sampling,
): Promise<{ metricsEnd: MetricValues | undefined; end: Sample; endFds: Record<string, number> }> {
  const metricsEnd = await scrapeMetrics(metricsAt).catch(() => undefined);
  await sleep(5000);
  for (let i = 0; i < 50 && fdCount(milterd.pid) > sampling.baseline.fds; i++) await sleep(500);
  const end = sampling.finish();
  const endFds = describeFds(milterd.pid);
  log(`end: RSS ${mib(end.rssKiB)} (peak ${mib(end.hwmKiB)}), ${end.fds} fds, ${end.threads} threads`);
  return { metricsEnd, end, endFds };
}

interface IndependentCheck {
  checked: number;
  pass: number;
  problems: string[];
  by: string[];
}

/** Independent verifiers on the sample: dkimpy (every signature), Mail::DKIM (RSA only). */
async function verifyIndependently(sample: Checker['samples'], dnsPort: number): Promise<IndependentCheck> {
  let independent: IndependentCheck = { checked: 0, pass: 0, problems: [], by: [] };
  if (sample.length > 0 && (peers.dkimpy || peers.mailDkim)) {
    const files = sample.map((s) => s.file);
    const batches: string[][] = [];
    for (let i = 0; i < files.length; i += 25) batches.push(files.slice(i, i + 25));
    const py: PeerVerdict[] = [];
    const pl: PeerVerdict[] = [];
    for (const b of batches) {
      if (peers.dkimpy) py.push(...(await dkimpyVerify(dnsPort, b)));
      if (peers.mailDkim) pl.push(...(await mailDkimVerify(dnsPort, b)));
    }
    independent = {
      checked: sample.length,
      pass: 0,
      problems: [],
      by: [peers.dkimpy ? 'dkimpy' : '', peers.mailDkim ? 'Mail::DKIM' : ''].filter(Boolean),
    };
    for (const s of sample) {
      const domain = s.kind === 'sign' ? 'example.org' : OUTSIDE_DOMAIN;
      const wanted = s.kind === 'sign' ? ['rsa-sha256', 'ed25519-sha256'] : [undefined];
      const p = py.find((v) => v.file === s.file)?.signatures.filter((x) => x.d === domain) ?? [];
      const m = pl.find((v) => v.file === s.file)?.signatures.filter((x) => x.d === domain && x.a === 'rsa-sha256') ?? [];
      const pyOk = !peers.dkimpy || (p.length === wanted.length && p.every((x) => x.pass));
      // Mail::DKIM here cannot verify Ed25519: only its RSA verdicts count
      const plOk = !peers.mailDkim || m.every((x) => x.pass);
      if (pyOk && plOk) independent.pass++;
      else if (independent.problems.length < 10)
        independent.problems.push(
          `message ${s.index} (${s.kind}): dkimpy ${JSON.stringify(p.map((x) => [x.a, x.pass, x.reason]))}, Mail::DKIM ${JSON.stringify(m.map((x) => [x.a, x.result]))}`,
        );
    }
  }
  return independent;
}

/** Everything the steps of a run found, for the figures, the criteria and the report. */
interface RunFacts {
  postfix: PostfixInstance;
  checker: Checker;
  planned: Record<Kind, number>;
  sent: SendStats;
  sendStart: number;
  sendEnd: number;
  queueEmpty: boolean;
  drained: number;
  sampling: Sampling;
  end: Sample;
  endFds: Record<string, number>;
  metricsEnd: MetricValues | undefined;
  sample: Checker['samples'];
  independent: IndependentCheck;
  stopped: { code: number | null; ms: number };
  milterdLog: Awaited<ReturnType<typeof readMilterdLog>>;
  milterWarnings: string[];
}

/** The figures computed from the facts. */
function deriveFigures(f: RunFacts) {
  const { checker, sent, sendStart, sendEnd, sampling, end, metricsEnd } = f;
  const { samples, tenth } = sampling;
  const { lost, duplicates, lostIndexes } = checker.tally();
  const totalDelivered = checker.totalDelivered;
  const lastDelivery = checker.lastArrival;
  const acceptRate = sent.accepted / ((sendEnd - sendStart) / 1000);
  const deliverRate = (totalDelivered - checker.strangers) / ((lastDelivery - sendStart) / 1000);
  // RSS after warm-up: the median of the samples taken while the second tenth of the messages
  // went through (one sample alone may fall just before or after a GC); late: the last tenth.
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return sorted.length === 0
      ? Number.NaN
      : ((sorted[Math.floor((sorted.length - 1) / 2)] as number) + (sorted[Math.ceil((sorted.length - 1) / 2)] as number)) / 2;
  };
  const during = (from: number, to: number) =>
    samples.filter((s) => s !== end && s.accepted >= from && s.accepted <= to).map((s) => s.rssKiB);
  const warmupRss = median(during(tenth, 2 * tenth));
  const lateRss = median(during(9 * tenth, options.messages));
  const growth = ((end.rssKiB - warmupRss) / warmupRss) * 100;
  const lateGrowth = ((lateRss - warmupRss) / warmupRss) * 100;
  const afterWarmup = samples.filter((s) => s.accepted >= tenth);
  const maxAfterWarmup = Math.max(...afterWarmup.map((s) => s.rssKiB));
  const maxFds = Math.max(...samples.map((s) => s.fds));
  const cpuS = end.cpuS - sampling.baseline.cpuS;
  const heap = (m: MetricValues | undefined) => metricSum(m, 'inkan_nodejs_heap_size_used_bytes') / 1024;
  const signaturesMade = metricSum(metricsEnd, 'inkan_signatures_made_total');
  const internalErrors = metricSum(metricsEnd, 'inkan_internal_errors_total');
  const verifiedBy = (result: string) => metricSum(metricsEnd, 'inkan_signatures_verified_total', `result="${result}"`);
  const expectedVerdicts = checker.verdictOk.good + checker.verdictOk.tampered + checker.verdictOk.unsigned;
  const outsideDelivered = checker.delivered.good + checker.delivered.tampered + checker.delivered.unsigned;
  return {
    lost,
    duplicates,
    lostIndexes,
    totalDelivered,
    acceptRate,
    deliverRate,
    warmupRss,
    lateRss,
    growth,
    lateGrowth,
    maxAfterWarmup,
    maxFds,
    cpuS,
    heap,
    signaturesMade,
    internalErrors,
    verifiedBy,
    expectedVerdicts,
    outsideDelivered,
  };
}

type Derived = ReturnType<typeof deriveFigures>;

/** The criteria of a good run, each with its figure. */
function judge(f: RunFacts, d: Derived): Results['criteria'] {
  const { sent, queueEmpty, checker, independent, sample, milterdLog, end, stopped } = f;
  const baseline = f.sampling.baseline;
  const { lost, duplicates, expectedVerdicts, outsideDelivered, internalErrors, growth, lateGrowth } = d;
  return [
    {
      name: 'every message accepted by Postfix',
      ok: sent.neverAccepted.length === 0 && !interrupted,
      value: `${fmt(sent.accepted)} of ${fmt(options.messages)}`,
    },
    { name: 'Postfix queue empty at the end', ok: queueEmpty, value: queueEmpty ? 'yes' : 'no' },
    { name: 'lost (planned, never delivered)', ok: lost === 0, value: fmt(lost) },
    { name: 'duplicates', ok: duplicates === 0, value: fmt(duplicates) },
    { name: 'messages not of this run', ok: checker.strangers === 0, value: fmt(checker.strangers) },
    { name: 'unsigned where signing applies', ok: checker.unsigned === 0, value: fmt(checker.unsigned) },
    { name: 'signed but not 2 good signatures (dkim-core)', ok: checker.badSignature === 0, value: fmt(checker.badSignature) },
    { name: 'outside mail signed by us', ok: checker.signedByUsWrongly === 0, value: fmt(checker.signedByUsWrongly) },
    {
      name: 'Authentication-Results as expected',
      ok: expectedVerdicts === outsideDelivered,
      value: `${fmt(expectedVerdicts)} of ${fmt(outsideDelivered)}`,
    },
    {
      name: `independent verifiers on the sample (${independent.by.join(', ') || 'none installed'})`,
      ok: independent.pass === independent.checked && (independent.checked > 0 || sample.length === 0),
      value: `${fmt(independent.pass)} of ${fmt(independent.checked)} pass`,
    },
    {
      name: 'SMTP refusals (4xx/5xx) and broken sessions',
      ok: sent.refusals === 0 && sent.sessionErrors === 0,
      value: `${sent.refusals} refused, ${sent.sessionErrors} broken`,
    },
    {
      name: 'milterd internal errors / error log lines',
      ok: internalErrors === 0 && !(milterdLog.byLevel.error || milterdLog.byLevel.fatal),
      value: `${fmt(internalErrors)} / ${fmt((milterdLog.byLevel.error ?? 0) + (milterdLog.byLevel.fatal ?? 0))}`,
    },
    // A quick run is over before the daemon has warmed up (JIT, heap sizing): shown, not judged.
    {
      name: 'RSS growth after warm-up < 10 % (at the end)',
      ok: options.quick || (Number.isFinite(growth) && growth < 10),
      value: `${fmt(growth, 1)} %${options.quick ? ' (not judged in --quick)' : ''}`,
    },
    {
      name: 'RSS growth after warm-up < 10 % (last tenth)',
      ok: options.quick || (Number.isFinite(lateGrowth) && lateGrowth < 10),
      value: `${fmt(lateGrowth, 1)} %${options.quick ? ' (not judged in --quick)' : ''}`,
    },
    { name: 'open fds back to the baseline', ok: end.fds <= baseline.fds, value: `${baseline.fds} -> ${end.fds}` },
    { name: 'milterd stops cleanly on SIGTERM', ok: stopped.code === 0, value: `exit ${stopped.code} after ${fmt(stopped.ms)} ms` },
  ];
}

/** The tables and notes on stdout. */
function printReport(f: RunFacts, d: Derived, criteria: Results['criteria']): void {
  const { checker, planned, sent, sendStart, sendEnd, drained, end, endFds, metricsEnd, independent, milterdLog, milterWarnings } = f;
  const { baseline, baselineFds, metricsBaseline, byTenth, tenth, samples } = f.sampling;
  const metricsWarmup = f.sampling.metricsWarmup();
  const {
    totalDelivered,
    acceptRate,
    deliverRate,
    warmupRss,
    lateRss,
    growth,
    lateGrowth,
    maxAfterWarmup,
    maxFds,
    cpuS,
    heap,
    signaturesMade,
    internalErrors,
    verifiedBy,
    lost,
    lostIndexes,
  } = d;
  const row = (cells: string[], widths: number[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  const table = (title: string, head: string[], rows: string[][]) => {
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    console.log(`\n## ${title}\n${row(head, widths)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
    for (const r of rows) console.log(row(r, widths));
  };
  table(
    'messages',
    ['kind', 'planned', 'delivered', 'as expected'],
    [
      [
        'signed by milterd (internal 127.0.0.1)',
        fmt(planned.sign),
        fmt(checker.delivered.sign),
        `${fmt(checker.signedOk.sign)} with 2 verifying signatures`,
      ],
      ['outside, good signature (127.0.0.2)', fmt(planned.good), fmt(checker.delivered.good), `${fmt(checker.verdictOk.good)} dkim=pass`],
      [
        'outside, tampered in transit',
        fmt(planned.tampered),
        fmt(checker.delivered.tampered),
        `${fmt(checker.verdictOk.tampered)} dkim=fail`,
      ],
      ['outside, unsigned', fmt(planned.unsigned), fmt(checker.delivered.unsigned), `${fmt(checker.verdictOk.unsigned)} dkim=none`],
      ['total', fmt(options.messages), fmt(totalDelivered), ''],
    ],
  );
  table(
    'throughput',
    ['what', 'figure'],
    [
      [
        'messages accepted by Postfix',
        `${fmt(sent.accepted)} (${fmt(sent.bytes / 1024 / 1024, 1)} MiB, ${fmt(sent.sessions)} SMTP sessions, ${options.concurrency} at a time)`,
      ],
      [
        'accepted msgs/s (through the milter)',
        `${fmt(acceptRate, 1)} (${fmt(sent.bytes / 1024 / 1024 / ((sendEnd - sendStart) / 1000), 2)} MiB/s)`,
      ],
      ['delivered msgs/s (first send to last delivery)', fmt(deliverRate, 1)],
      [
        'duration: sending / until drained / whole run',
        `${seconds(sendEnd - sendStart)} / ${seconds(drained - sendStart)} / ${seconds(now())}`,
      ],
    ],
  );
  const warm = byTenth[0];
  table(
    'inkan-milterd resources',
    ['when', 'RSS', 'peak (VmHWM)', 'heap used', 'fds', 'threads'],
    [
      [
        'baseline (idle after start)',
        mib(baseline.rssKiB),
        mib(baseline.hwmKiB),
        mib(heap(metricsBaseline)),
        String(baseline.fds),
        String(baseline.threads),
      ],
      [
        `after warm-up (${fmt(tenth)} accepted)`,
        warm ? mib(warm.rssKiB) : '-',
        warm ? mib(warm.hwmKiB) : '-',
        mib(heap(metricsWarmup)),
        warm ? String(warm.fds) : '-',
        warm ? String(warm.threads) : '-',
      ],
      ['after warm-up: median, 10-20 % of the run', mib(warmupRss), '', '', '', ''],
      ['last tenth: median, 90-100 % of the run', mib(lateRss), '', '', '', ''],
      ['highest sample after warm-up', mib(maxAfterWarmup), '', '', String(maxFds), ''],
      ['end (queue drained, settled)', mib(end.rssKiB), mib(end.hwmKiB), mib(heap(metricsEnd)), String(end.fds), String(end.threads)],
    ],
  );
  console.log(`RSS by tenth of the run (MiB): ${byTenth.map((s) => fmt(s.rssKiB / 1024, 1)).join(', ')}`);
  console.log(
    `RSS growth after warm-up (median of 10-20 %): ${fmt(growth, 1)} % at the end, ${fmt(lateGrowth, 1)} % in the last tenth (target < 10 %); ${samples.length} samples, 1 s apart`,
  );
  if (warm)
    console.log(
      `(against the single sample at ${fmt(tenth)} accepted instead: ${fmt(((end.rssKiB - warm.rssKiB) / warm.rssKiB) * 100, 1)} % at the end)`,
    );
  console.log(
    `milterd CPU: ${fmt(cpuS, 1)} s for ${fmt(sent.accepted)} messages (${fmt((cpuS * 1000) / Math.max(1, sent.accepted), 2)} ms each)`,
  );
  console.log(
    `milterd counters: ${fmt(signaturesMade)} signatures made, verified pass ${fmt(verifiedBy('pass'))} / fail ${fmt(verifiedBy('fail'))}, ${fmt(internalErrors)} internal errors`,
  );
  console.log(
    `milterd log lines: ${Object.entries(milterdLog.byLevel)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(', ')}`,
  );
  if (end.fds > baseline.fds) console.log(`fds at baseline: ${JSON.stringify(baselineFds)}\nfds at end:      ${JSON.stringify(endFds)}`);
  if (milterWarnings.length > 0)
    console.log(`Postfix milter warnings: ${milterWarnings.length}, first: ${milterWarnings.slice(0, 5).join('\n  ')}`);
  for (const t of sent.refusalTexts) console.log(`refused: ${t}`);
  for (const t of sent.sessionErrorTexts) console.log(`session error: ${t}`);
  for (const t of milterdLog.notable) console.log(`milterd: ${t}`);
  for (const p of checker.problems.slice(0, 20)) console.log(`problem: ${p}`);
  for (const p of independent.problems) console.log(`independent verifier: ${p}`);
  if (lostIndexes.length > 0) console.log(`lost: ${lostIndexes.join(', ')}${lost > lostIndexes.length ? ', ...' : ''}`);
  if (checker.problems.length > 0 && !options.keep) console.log('(run with --keep to keep the failing messages and logs)');

  table(
    'criteria',
    ['criterion', 'result', ''],
    criteria.map((c) => [c.name, c.value, c.ok ? 'ok' : 'FAILED']),
  );
}

/** The figures of the run (--json). */
function figuresOf(f: RunFacts, d: Derived): Record<string, unknown> {
  const { postfix, planned, sent, sendStart, sendEnd, drained, end, metricsEnd, independent, checker, milterdLog } = f;
  const { baseline, byTenth, samples, metricsBaseline } = f.sampling;
  const metricsWarmup = f.sampling.metricsWarmup();
  const warm = byTenth[0];
  const {
    lost,
    duplicates,
    totalDelivered,
    expectedVerdicts,
    outsideDelivered,
    acceptRate,
    deliverRate,
    warmupRss,
    lateRss,
    maxAfterWarmup,
    growth,
    lateGrowth,
    cpuS,
    heap,
    maxFds,
    signaturesMade,
  } = d;
  return {
    date: new Date().toISOString(),
    node: process.version,
    postfix: postfix.version,
    messages: options.messages,
    concurrency: options.concurrency,
    seed: options.seed,
    planned,
    accepted: sent.accepted,
    delivered: totalDelivered,
    lost,
    duplicates,
    unsigned: checker.unsigned,
    badSignatures: checker.badSignature,
    verdictsAsExpected: expectedVerdicts,
    outsideDelivered,
    independentSample: independent,
    refusals: sent.refusals,
    sessionErrors: sent.sessionErrors,
    sessions: sent.sessions,
    megabytes: sent.bytes / 1024 / 1024,
    acceptedPerSecond: acceptRate,
    deliveredPerSecond: deliverRate,
    sendingSeconds: (sendEnd - sendStart) / 1000,
    drainedSeconds: (drained - sendStart) / 1000,
    wholeRunSeconds: now() / 1000,
    rssKiB: {
      baseline: baseline.rssKiB,
      warmupSample: warm?.rssKiB,
      warmupMedian: warmupRss,
      lateMedian: lateRss,
      maxAfterWarmup,
      end: end.rssKiB,
      peak: end.hwmKiB,
      byTenth: byTenth.map((x) => x.rssKiB),
    },
    rssGrowthPercent: {
      end: growth,
      lastTenth: lateGrowth,
      endVsWarmupSample: warm ? ((end.rssKiB - warm.rssKiB) / warm.rssKiB) * 100 : null,
    },
    milterdCpuSeconds: cpuS,
    heapUsedKiB: { baseline: heap(metricsBaseline), warmup: heap(metricsWarmup), end: heap(metricsEnd) },
    fds: { baseline: baseline.fds, end: end.fds, max: maxFds },
    threads: { baseline: baseline.threads, end: end.threads },
    signaturesMade,
    milterdLogLevels: milterdLog.byLevel,
    samples: samples.map((s) => [Math.round(s.at), s.accepted, s.rssKiB, s.fds]),
  };
}

async function main(): Promise<Results> {
  checkMachine();
  const runId = Date.now().toString(36);
  const dir = makeRunFolder();
  console.log(
    `# inkan soak${options.quick ? ' (quick)' : ''}, ${new Date().toISOString()}: ${fmt(options.messages)} messages, ${options.concurrency} SMTP sessions at a time, seed ${options.seed}`,
  );
  const { theirs, records, dns } = await keysAndDns(dir);
  const { milterd, milterPort, metricsAt } = await startDaemon(dir, dns.port);
  const { plan, planned, checker } = planAndChecker(runId, records, dir);
  const postfix = await startSoakPostfix(milterPort, checker);
  const sampling = await startSampling(milterd, metricsAt, checker);

  const block = bodyBlock(2 * 1024 * 1024, options.seed);
  const outside = { keys: theirs, dir };
  const presigned = await presignWithDkimpy(plan, outside, block, runId);
  if (presigned.size > 0) log(`${presigned.size} outside messages signed by dkimpy, the rest will be by dkim-core`);
  const sendStart = now();
  const sent = await sendAll(plan, postfix.smtpPort, outside, presigned, block, runId, sampling.onAccepted);
  const sendEnd = now();
  if (halted && !interrupted) throw new Error(halted);
  log(
    `sent: ${fmt(sent.accepted)} accepted in ${seconds(sendEnd - sendStart)} over ${fmt(sent.sessions)} sessions, ${sent.refusals} refused, ${sent.sessionErrors} session errors`,
  );

  const { queueEmpty, drained } = await drain(postfix, checker, sent.accepted);
  const { metricsEnd, end, endFds } = await settle(milterd, metricsAt, sampling);
  const sample = checker.samples;
  const independent = await verifyIndependently(sample, dns.port);

  // Stop the daemon now and see that it goes cleanly.
  const stopped = await milterd.stop();
  const milterdLog = await readMilterdLog(milterd.logFile);
  const maillog = postfix.maillog();
  const milterWarnings = maillog.split('\n').filter((l) => /warning: .*milter|milter.*(error|timeout|tempfail)|451 4\./i.test(l));

  const facts: RunFacts = {
    postfix,
    checker,
    planned,
    sent,
    sendStart,
    sendEnd,
    queueEmpty,
    drained,
    sampling,
    end,
    endFds,
    metricsEnd,
    sample,
    independent,
    stopped,
    milterdLog,
    milterWarnings,
  };
  const derived = deriveFigures(facts);
  const criteria = judge(facts, derived);
  const ok = criteria.every((c) => c.ok);
  printReport(facts, derived, criteria);
  console.log(`\nsoak: ${ok ? 'PASSED' : 'FAILED'}`);
  const figures = figuresOf(facts, derived);
  if (options.json) writeFileSync(options.json, `${JSON.stringify({ ok, criteria, figures }, null, 2)}\n`);
  return { ok, criteria, figures };
}

let exitCode = 1;
try {
  const results = await main();
  exitCode = results.ok ? 0 : 1;
} catch (error) {
  console.error(`soak: ${(error as Error).stack ?? (error as Error).message}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(interrupted ? 130 : exitCode);
