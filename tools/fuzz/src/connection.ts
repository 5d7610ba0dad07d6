/**
 * An in-memory MTA connection for the milter targets: two stream ends where what one
 * writes the other reads, closing together like a socket; and a bounded wait.
 */
import type { Buffer } from 'node:buffer';
import { Duplex } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';

/** One end of an in-memory connection: what is written here is read at the other end. */
export class End extends Duplex {
  peer: End | undefined;

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.peer && !this.peer.destroyed) this.peer.push(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.peer && !this.peer.destroyed) this.peer.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Like a socket: when one end goes, the other sees the connection close.
    if (this.peer && !this.peer.destroyed) this.peer.destroy();
    callback(error);
  }
}

/** Both ends of a new connection: [the MTA's, the filter's]. */
export function pair(): [End, End] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** Wait (a turn of the event loop at a time) until `condition` holds; false after `ms`. */
export async function until(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await tick();
  }
  return true;
}
