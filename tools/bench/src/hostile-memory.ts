/**
 * inkan-milterd's memory under hostile milter clients (issue #16), each on a fresh daemon so
 * that its peak (VmHWM) is the scenario's:
 *  - 100 connections each announcing a 4 MiB packet and sending all of it but the last KiB,
 *    with the default limits (MaximumPacketSize 1 MiB: closed at the length prefix), with
 *    4 MiB packets allowed (then MaximumBufferedBytes, 64 MiB, bounds the total), and with
 *    both limits out of the way (what every version before the limits did: ~350 MiB);
 *  - one message of 300,000 small header fields (whatever header limits filter.ts has).
 * Called from main.ts; `--quick` uses 20 connections and 30,000 fields.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { encodeCommand, MilterClient } from '@inkan/milter-protocol';
import { startMilterdOnPort, statusKiB } from '@inkan/testbed';

export interface HostileMemoryOptions {
  quick: boolean;
  /** A scratch directory. */
  dir: string;
  /** A signing key for example.org. */
  keyFile: string;
  /** Print a table (main.ts's). */
  table(title: string, head: string[], rows: string[][]): void;
}

const mib = (kib: number) => (kib / 1024).toFixed(1);

interface Daemon {
  pid: number;
  port: number;
  stop(): Promise<unknown>;
}

/** A signing inkan-milterd on 127.0.0.1 with these extra configuration lines, once it accepts. */
async function startDaemon(o: HostileMemoryOptions, name: string, extra: string[]): Promise<Daemon> {
  const lines = ['Domain example.org', 'Selector bench', `KeyFile ${o.keyFile}`, 'AllowRoot yes', 'MilterIdleTimeout 120', ...extra];
  const { milterd: m, port } = await startMilterdOnPort(join(o.dir, `hostile-${name}.conf`), lines, { output: 'quiet' });
  await new Promise((r) => setTimeout(r, 300)); // let start-up allocations settle
  return { pid: m.pid, port, stop: () => m.stop() };
}

const NEGOTIATE = encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0 });

/** `count` connections, each announcing a 4 MiB packet and sending all but its last KiB. */
async function partialPackets(o: HostileMemoryOptions, name: string, extra: string[], count: number): Promise<string[]> {
  const d = await startDaemon(o, name, extra);
  const sockets: Socket[] = [];
  try {
    const idle = statusKiB(d.pid, 'VmRSS');
    const size = 4 * 1024 * 1024;
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(size);
    const data = Buffer.alloc(size - 1024, 0x42);
    let closed = 0;
    const flushed: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const s = connect({ host: '127.0.0.1', port: d.port });
      sockets.push(s);
      s.on('error', () => {});
      s.on('data', () => {});
      s.once('close', () => closed++);
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.write(Buffer.concat([NEGOTIATE, prefix]));
      // resolves once the kernel took it all (or the daemon closed the connection)
      flushed.push(
        new Promise<void>((r) => {
          s.once('close', () => r());
          if (s.write(data)) r();
          else s.once('drain', () => r());
        }),
      );
    }
    await Promise.race([Promise.all(flushed), new Promise((r) => setTimeout(r, 60_000))]);
    await new Promise((r) => setTimeout(r, 500));
    const held = statusKiB(d.pid, 'VmRSS');
    const peak = statusKiB(d.pid, 'VmHWM');
    return [name, String(count), `${closed}`, mib(idle), `+${mib(held - idle)}`, `+${mib(peak - idle)}`];
  } finally {
    for (const s of sockets) s.destroy();
    await d.stop();
  }
}

/** One message with `count` small header fields; what the MTA is told and what it cost. */
async function manyHeaders(o: HostileMemoryOptions, count: number): Promise<string[]> {
  const d = await startDaemon(o, 'headers', []);
  try {
    const idle = statusKiB(d.pid, 'VmRSS');
    const started = performance.now();
    const client = await MilterClient.open(`inet:${d.port}@127.0.0.1`, { timeoutMs: 600_000 });
    let outcome: string;
    try {
      await client.connect({ hostname: 'localhost', family: 'inet', address: '127.0.0.1', port: 40000 });
      await client.mail('<joe@example.org>');
      await client.rcpt('<suzie@example.net>');
      await client.header('From', ' Joe <joe@example.org>');
      for (let i = 0; i < count; i++) await client.header(`X-H${i}`, ' v');
      await client.endOfHeaders();
      await client.body('body\r\n');
      const eom = await client.endOfMessage();
      const signed = eom.modifications.some((m) => m.type === 'insertHeader' && m.name === 'DKIM-Signature');
      outcome = `${eom.reply.type === 'replyCode' ? eom.reply.text : eom.reply.type}${signed ? ', signed' : ''}`;
      await client.quit();
    } catch (error) {
      client.destroy();
      outcome = `error: ${(error as Error).message}`;
    }
    const seconds = (performance.now() - started) / 1000;
    const peak = statusKiB(d.pid, 'VmHWM');
    return [`${count.toLocaleString('en-US')} header fields of one message`, `+${mib(peak - idle)}`, seconds.toFixed(1), outcome];
  } finally {
    await d.stop();
  }
}

export async function hostileMemory(o: HostileMemoryOptions): Promise<void> {
  const count = o.quick ? 20 : 100;
  const rows = [
    await partialPackets(o, 'default limits', [], count),
    await partialPackets(o, '4 MiB packets allowed', ['MaximumPacketSize 8388608'], count),
    await partialPackets(
      o,
      'no limits (as before #16)',
      ['MaximumPacketSize 8388608', 'MaximumBufferedBytes 17179869184', `MaximumConnections ${count + 10}`],
      count,
    ),
  ];
  o.table(
    'hostile clients: connections each holding a partial 4 MiB packet (MaximumPacketSize 1 MiB, MaximumBufferedBytes 64 MiB by default)',
    ['limits', 'connections', 'closed by milterd', 'idle RSS MiB', 'RSS held', 'peak RSS'],
    rows,
  );
  o.table(
    'hostile message: many small header fields (peak RSS over idle, MiB)',
    ['what', 'peak RSS', 'seconds', 'reply to the MTA'],
    [await manyHeaders(o, o.quick ? 30_000 : 300_000)],
  );
}
