import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import pino, { type Logger } from 'pino';

const FACILITIES: Record<string, number> = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};

/** Bytes of log lines kept while the output does not take them (a stalled reader); more are dropped and counted. */
export const LOG_QUEUE_BYTES = 1024 * 1024;
/** The longest log line written; a longer one has its long strings cut (at LOG_TEXT_BYTES) or is cut to its message. */
export const LOG_LINE_BYTES = 16 * 1024;
const LOG_TEXT_BYTES = 1024;
/** The syslog socket logger(1) writes to. */
export const SYSLOG_SOCKET = '/dev/log';

/** pino levels to syslog severities. */
function severity(level: number): number {
  if (level >= 60) return 2; // fatal -> crit
  if (level >= 50) return 3; // error -> err
  if (level >= 40) return 4; // warn -> warning
  if (level >= 30) return 6; // info -> info
  return 7; // debug, trace
}

/** A line of our own (notices about the log itself), in pino's format. */
function ownLine(level: number, msg: string, details: Record<string, unknown> = {}): string {
  return `${JSON.stringify({ level, time: Date.now(), name: 'inkan-milterd', ...details, msg })}\n`;
}

function cutText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}...[${text.length - max} more characters]`;
}

/** A line over LOG_LINE_BYTES: its strings cut to LOG_TEXT_BYTES, or only its level, time and message. */
export function capLine(line: string, max = LOG_LINE_BYTES): string {
  const bytes = Buffer.byteLength(line);
  if (bytes <= max) return line;
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return ownLine(40, `a log line of ${bytes} bytes was dropped: over the ${max}-byte limit`);
  }
  const cut = (value: unknown, depth: number): unknown => {
    if (typeof value === 'string') return cutText(value, LOG_TEXT_BYTES);
    if (depth > 4 || typeof value !== 'object' || value === null) return value;
    if (Array.isArray(value)) return value.slice(0, 32).map((v) => cut(v, depth + 1));
    return Object.fromEntries(
      Object.entries(value)
        .slice(0, 64)
        .map(([k, v]) => [cutText(k, 64), cut(v, depth + 1)]),
    );
  };
  const shorter = `${JSON.stringify({ ...(cut(entry, 0) as Record<string, unknown>), logLineCut: bytes })}\n`;
  if (Buffer.byteLength(shorter) <= max) return shorter;
  const { level, time, name, msg } = entry;
  return `${JSON.stringify({ level, time, name, msg: cutText(String(msg ?? ''), LOG_TEXT_BYTES), logLineCut: bytes })}\n`;
}

/** Where log lines go: stdout, or the stdin of logger(1). */
interface Sink {
  stream: NodeJS.WritableStream & { writableLength: number };
  /** The pino line as this sink takes it. */
  format(line: string): string;
}

const stdoutSink: Sink = { stream: process.stdout, format: (line) => line };

/** A pino line as logger(1) takes it with --prio-prefix: "<PRI>message {details}". */
function syslogLine(line: string, facility: number): string {
  let text = line.trimEnd();
  let level = 30;
  try {
    const entry = JSON.parse(text) as Record<string, unknown>;
    level = Number(entry.level ?? 30);
    const { level: _l, time: _t, pid: _p, hostname: _h, name: _n, msg, ...rest } = entry;
    text = `${msg ?? ''}${Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : ''}`;
  } catch {
    // not JSON: pass as is
  }
  return `<${facility * 8 + severity(level)}>${text.replace(/\n/g, ' ')}\n`;
}

/**
 * The destination of the logger: hands lines to the sink while it takes them, and keeps at
 * most LOG_QUEUE_BYTES while it does not (a log reader that stopped reading must not grow
 * memory without bound, nor block the daemon). Lines past the bound are dropped and counted;
 * once the output drains, one line says how many.
 */
export class LogOutput {
  private queue: string[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private waiting = false;
  private dead = false;
  private sink: Sink;

  constructor(
    sink: Sink,
    private readonly limits = { queueBytes: LOG_QUEUE_BYTES, lineBytes: LOG_LINE_BYTES },
  ) {
    this.sink = sink;
  }

  /** pino writes each line here. */
  write(line: string): void {
    const text = capLine(line, this.limits.lineBytes);
    if (this.dead) {
      this.dropped++;
      return;
    }
    if (this.waiting || this.queue.length > 0) {
      const size = Buffer.byteLength(text);
      if (this.queuedBytes + size > this.limits.queueBytes) {
        this.dropped++;
        return;
      }
      this.queue.push(text);
      this.queuedBytes += size;
      return;
    }
    this.send(text);
  }

  /** Lines dropped since the last notice. */
  get droppedLines(): number {
    return this.dropped;
  }

  /** Nothing left to write (here and in the sink's buffer). */
  get drained(): boolean {
    return this.dead || (this.queue.length === 0 && this.sink.stream.writableLength === 0);
  }

  /** From now on, lines go to `sink` (what was queued for the old one too). */
  switchTo(sink: Sink): void {
    this.sink.stream.removeListener('drain', this.onDrain);
    this.sink = sink;
    this.waiting = false;
    this.dead = false;
    this.pump();
  }

  /** The output is gone for good (EPIPE on stdout): count what is lost from now on. */
  lost(): void {
    this.dead = true;
    this.dropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
  }

  private send(line: string): void {
    if (!this.sink.stream.write(this.sink.format(line))) {
      this.waiting = true;
      this.sink.stream.once('drain', this.onDrain);
    }
  }

  private readonly onDrain = (): void => {
    this.waiting = false;
    this.pump();
  };

  private pump(): void {
    while (!this.waiting && this.queue.length > 0) {
      const line = this.queue.shift() as string;
      this.queuedBytes -= Buffer.byteLength(line);
      this.send(line);
    }
    if (!this.waiting && this.queue.length === 0 && this.dropped > 0) {
      const n = this.dropped;
      this.dropped = 0;
      this.send(
        ownLine(40, `${n} log lines dropped: the log output was not taking them (more than ${this.limits.queueBytes} bytes waiting)`, {
          droppedLines: n,
        }),
      );
    }
  }
}

/**
 * Whether syslog takes lines: `socket` is a socket, and logger(1) can send one line to it
 * (the line says milterd logs there). Returns what is wrong, or undefined.
 */
function syslogProblem(socket: string, facility: string, tag: string): string | undefined {
  try {
    if (!statSync(socket).isSocket()) return `${socket} is not a socket`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `there is no ${socket} (no syslog daemon running?)` : `${socket}: ${code ?? (error as Error).message}`;
  }
  const probe = spawnSync(
    'logger',
    [
      '--socket-errors=on',
      '-u',
      socket,
      '-t',
      tag,
      `--id=${process.pid}`,
      '-p',
      `${facility}.info`,
      `${tag} logging to syslog (facility ${facility})`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000, encoding: 'utf8' },
  );
  if (probe.error) return `logger(1): ${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message}`;
  if (probe.status !== 0)
    return `logger(1) could not send to ${socket}: ${probe.stderr.trim().replace(/^logger: /, '') || `exit ${probe.status}`}`;
  return undefined;
}

export interface LogOptions {
  syslog: boolean;
  facility: string;
  level?: string;
  /** The syslog socket (default /dev/log). */
  syslogSocket?: string;
}

interface LogState {
  output: LogOutput;
  /** logger(1), while the log goes to syslog. */
  child?: ChildProcess;
  closing: boolean;
}

const outputs = new Map<Logger, LogState>();
let watchingStdout = false;

/** A closed stdout (EPIPE) would otherwise be an uncaught error: its lines are counted as lost instead. */
function watchStdout(): void {
  if (watchingStdout) return;
  watchingStdout = true;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    for (const state of outputs.values()) if (!state.child) state.output.lost();
    process.stderr.write(`inkan-milterd: log output (stdout) failed: ${error.code ?? error.message}; log lines are lost from now on\n`);
  });
}

/**
 * JSON lines on stdout by default; syslog (facility mail) with -l / Syslog yes, through
 * logger(1) (Node cannot write to the /dev/log datagram socket itself). When syslog is not
 * there, or logger(1) exits later, lines go to stdout as JSON instead, and the log says so.
 */
export function createLogger(options: LogOptions): Logger {
  const level = options.level ?? process.env.INKAN_LOG_LEVEL ?? 'info';
  const base = { name: 'inkan-milterd' };
  const output = new LogOutput(stdoutSink);
  const state: LogState = { output, closing: false };
  const logger = pino({ level, base }, output);
  outputs.set(logger, state);
  watchStdout();
  if (!options.syslog) return logger;

  const tag = 'inkan-milterd';
  const code = FACILITIES[options.facility];
  if (code === undefined) throw new Error(`unknown syslog facility "${options.facility}"`);
  const socket = options.syslogSocket ?? SYSLOG_SOCKET;
  const problem = syslogProblem(socket, options.facility, tag);
  if (problem) {
    process.stderr.write(`inkan-milterd: Syslog yes, but ${problem}; logging JSON lines to stdout instead\n`);
    logger.warn({ syslog: problem }, 'syslog unavailable: logging JSON lines to stdout instead');
    return logger;
  }
  const child = spawn(
    'logger',
    ['--prio-prefix', '--socket-errors=on', '-u', socket, '--size', String(LOG_LINE_BYTES), '-t', tag, `--id=${process.pid}`],
    {
      stdio: ['pipe', 'ignore', 'inherit'],
    },
  );
  state.child = child;
  child.stdin.on('error', () => {});
  output.switchTo({ stream: child.stdin, format: (line) => syslogLine(line, code) });
  const fallBack = (why: string) => {
    if (state.child !== child) return;
    state.child = undefined;
    output.switchTo(stdoutSink);
    if (state.closing) return;
    process.stderr.write(`inkan-milterd: syslog: ${why}; logging JSON lines to stdout from now on\n`);
    logger.warn(
      { syslog: why },
      'syslog went away: logging JSON lines to stdout from now on (lines sent just before may be missing from syslog)',
    );
  };
  child.once('error', (error: NodeJS.ErrnoException) => fallBack(`logger(1): ${error.code ?? error.message}`));
  child.once('exit', (exitCode, signal) => fallBack(`logger(1) exited (${signal ?? `code ${exitCode}`})`));
  return logger;
}

/**
 * Let the log output drain before exit, for at most `timeoutMs` (a stalled reader must not
 * keep the daemon from stopping); then close logger(1)'s input. True if all was written.
 */
export async function flushLogger(logger: Logger, timeoutMs = 2000): Promise<boolean> {
  const state = outputs.get(logger);
  if (!state) return true;
  const deadline = performance.now() + timeoutMs;
  while (!state.output.drained && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const drained = state.output.drained;
  if (state.child) {
    state.closing = true;
    state.child.stdin?.end();
  }
  return drained;
}
