import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './process.js';

/**
 * inkan-milterd as a real process for the tests, the bench and the soak: the bin of this
 * checkout (apps/milterd, built), started with the arguments given, ready once it logs
 * "ready" (or once the caller's own check says so), stopped with SIGTERM and, 15 s later,
 * SIGKILL. Its output is kept in memory, or appended to a file for a long run (then there
 * is no pipe to keep drained).
 */

/** bin/inkan-milterd.js of this checkout. */
export const MILTERD_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'apps', 'milterd', 'bin', 'inkan-milterd.js');

export interface MilterdOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /**
   * When start resolves: 'log' (default) once the output shows `"msg":"ready"`; 'none' at
   * once (a run that is meant to exit, or one logging elsewhere); or when the check given
   * returns true (e.g. the socket accepts). Bounded: readyTries × 50 ms.
   */
  ready?: 'log' | 'none' | (() => Promise<boolean> | boolean);
  /** Default 200 (10 s). */
  readyTries?: number;
  /**
   * Where stdout and stderr go: kept in memory (default), stdout dropped and stderr kept
   * ('quiet': a benchmark's daemon logging every message), or appended to a file.
   */
  output?: 'memory' | 'quiet' | { file: string };
  /** Start the bin through a symbolic link made at this path: a name of its own, which a broad `pkill -f inkan-milterd` meant for another daemon misses. */
  alias?: string;
  /** Run it under another program: `command ...args node bin ...arguments` (e.g. unshare). */
  launcher?: { command: string; args: string[] };
  /** Called when it exits without stop() having been called. */
  onUnexpectedExit?(code: number | null, signal: NodeJS.Signals | null, pid: number): void;
}

export interface MilterdProcess {
  child: ChildProcess;
  pid: number;
  /** Everything it wrote so far (stdout and stderr; with output 'quiet', stderr only). */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Wait (bounded: tries × 50 ms) until the output matches; fails at once if it exited. */
  waitForOutput(pattern: RegExp, tries?: number): Promise<void>;
  /** Resolves with the exit code (128 after a signal). */
  exited: Promise<number | null>;
  /** SIGTERM and wait; SIGKILL if it does not go within 15 s. The exit code. */
  stop(): Promise<number | null>;
}

/** Whether something accepts TCP connections on host:port right now. */
export function tcpAccepting(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Start inkan-milterd with these arguments (see MilterdOptions); rejects, with its output, if it exits or is not ready in time. */
export async function startMilterd(args: string[], options: MilterdOptions = {}): Promise<MilterdProcess> {
  const how = options.output ?? 'memory';
  if (options.alias && !existsSync(options.alias)) symlinkSync(MILTERD_BIN, options.alias);
  const bin = options.alias ?? MILTERD_BIN;
  const command = options.launcher?.command ?? process.execPath;
  const commandArgs = [...(options.launcher ? [...options.launcher.args, process.execPath] : []), bin, ...args];
  const env = { ...process.env, ...options.env };
  let child: ChildProcess;
  if (typeof how === 'object') {
    const fd = openSync(how.file, 'a');
    child = spawn(command, commandArgs, { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
  } else {
    child = spawn(command, commandArgs, { stdio: ['ignore', how === 'quiet' ? 'ignore' : 'pipe', 'pipe'], env });
  }
  let out = '';
  let err = '';
  let both = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    both += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    both += d.toString();
  });
  const output = typeof how === 'object' ? () => (existsSync(how.file) ? readFileSync(how.file, 'utf8') : '') : () => both;

  let exitCode: number | null | undefined;
  let stopping = false;
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? 128 : null);
      if (!stopping) options.onUnexpectedExit?.(code, signal, child.pid as number);
      r(exitCode);
    }),
  );
  const proc: MilterdProcess = {
    child,
    pid: child.pid as number,
    output,
    stdout: typeof how === 'object' ? output : () => out,
    stderr: typeof how === 'object' ? output : () => err,
    waitForOutput: (pattern, tries = 200) =>
      waitFor(
        () => {
          if (pattern.test(output())) return true;
          if (exitCode !== undefined) throw new Error(`inkan-milterd exited (${exitCode}) before ${pattern}:\n${output()}`);
          return false;
        },
        `inkan-milterd output ${pattern}`,
        tries,
      ),
    exited,
    async stop() {
      if (exitCode !== undefined) return exitCode;
      stopping = true;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  const ready = options.ready ?? 'log';
  if (ready === 'none') return proc;
  try {
    if (ready === 'log') await proc.waitForOutput(/"msg":"ready"/, options.readyTries);
    else
      await waitFor(
        async () => {
          if (exitCode !== undefined) throw new Error(`inkan-milterd exited (${exitCode}) before it was ready:\n${output().slice(-4000)}`);
          return ready();
        },
        'inkan-milterd ready',
        options.readyTries ?? 200,
      );
  } catch (error) {
    stopping = true;
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${exitCode === undefined ? output().slice(-2000) : ''}`.trimEnd());
  }
  return proc;
}

export interface MilterdOnPort {
  milterd: MilterdProcess;
  port: number;
  /** Its socket as milters write it: "inet:PORT@127.0.0.1". */
  socket: string;
}

/**
 * inkan-milterd on a free TCP port of 127.0.0.1: `Socket inet:PORT@127.0.0.1` and then `lines`
 * written to the configuration file `conf`, started with `-x conf`. With output 'quiet' (no log
 * to read) and no ready check of the caller's, it is ready once the port accepts.
 */
export async function startMilterdOnPort(conf: string, lines: string[], options: MilterdOptions = {}): Promise<MilterdOnPort> {
  const port = await freePort();
  const socket = `inet:${port}@127.0.0.1`;
  writeFileSync(conf, [`Socket ${socket}`, ...lines, ''].join('\n'));
  const ready = options.ready ?? (options.output === 'quiet' ? () => tcpAccepting(port) : 'log');
  return { milterd: await startMilterd(['-x', conf], { ...options, ready }), port, socket };
}
