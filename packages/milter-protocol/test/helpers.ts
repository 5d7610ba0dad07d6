import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { tempDir } from '@inkan/testbed';
import {
  type MilterError,
  type MilterListener,
  type MilterServer,
  type MilterServerOptions,
  type SocketSpec,
  createMilterServer,
} from '../src/index.js';

export interface RunningServer {
  server: MilterServer;
  listener: MilterListener;
  spec: SocketSpec;
  /** Every sessionError, in order. */
  errors: MilterError[];
  logs: string[];
  close(): Promise<void>;
}

/** A server on a fresh unix socket (or 127.0.0.1 with an OS-chosen port). */
export async function startServer(options: MilterServerOptions, kind: 'unix' | 'inet' = 'unix'): Promise<RunningServer> {
  const logs: string[] = [];
  const server = createMilterServer({
    ...options,
    logger: (level, message) => {
      logs.push(`${level} ${message}`);
      options.logger?.(level, message);
    },
  });
  const errors: MilterError[] = [];
  server.on('sessionError', (error) => errors.push(error));
  const dir = tempDir('inkan-mp-');
  const listener = await server.listen(
    kind === 'unix' ? { kind: 'unix', path: join(dir, 'milter.sock') } : { kind: 'inet', host: '127.0.0.1', port: 0 },
  );
  return {
    server,
    listener,
    spec: listener.spec,
    errors,
    logs,
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Poll (bounded: tries × setImmediate/10 ms) until check() is true. */
export async function until(check: () => boolean, what: string, tries = 500): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, i < 20 ? 0 : 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** An in-memory stream for the session: records every write() call separately. */
export class RecordingStream extends Duplex {
  readonly writes: Buffer[] = [];

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writes.push(Buffer.from(chunk));
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback();
  }
}

/** Latin1 text of a Buffer (for assertions). */
export function text(value: Buffer | undefined): string {
  return value === undefined ? '' : value.toString('latin1');
}
