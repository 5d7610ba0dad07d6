import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@inkan/testbed';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'inkan-milterd.js');

export interface MilterdProcess {
  child: ChildProcess;
  pid: number;
  /** Everything it wrote so far (stdout and stderr). */
  output(): string;
  /** Wait (bounded) until the output matches. */
  waitForOutput(pattern: RegExp, tries?: number): Promise<void>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** SIGTERM and wait; SIGKILL if it does not go within 15 s. */
  stop(): Promise<number | null>;
}

/** Run inkan-milterd as a real process with these arguments; resolves once it is ready. */
export async function startMilterd(args: string[], options: { env?: NodeJS.ProcessEnv; expectExit?: boolean } = {}): Promise<MilterdProcess> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? 128 : null);
      r(exitCode);
    }),
  );
  const proc: MilterdProcess = {
    child,
    pid: child.pid as number,
    output: () => output,
    waitForOutput: (pattern, tries = 200) =>
      waitFor(() => {
        if (pattern.test(output)) return true;
        if (exitCode !== undefined) throw new Error(`inkan-milterd exited (${exitCode}) before ${pattern}:\n${output}`);
        return false;
      }, `inkan-milterd output ${pattern}`, tries),
    exited,
    async stop() {
      if (exitCode !== undefined) return exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  if (!options.expectExit) {
    try {
      await proc.waitForOutput(/"msg":"ready"/);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
  }
  return proc;
}

export function fixture(name: string): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'fixtures', name);
}
