import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './process.js';

/** How long the forwarder holds each answer: milliseconds, or 'never' (the query is swallowed). */
export type DnsDelay = number | 'never';

export interface SlowDnsOptions {
  /** The real server to ask (a dnsmasq from startDnsmasq), on 127.0.0.1 unless `host` says otherwise. */
  upstream: { port: number; host?: string };
  /** Initial delay. Default 0. */
  delayMs?: DnsDelay;
  /** Most queries held at once; more are dropped (and counted). Default 1000. */
  maxPending?: number;
}

export interface SlowDns {
  port: number;
  /** "127.0.0.1:port", as node:dns and DnsKeyResolver take it. */
  server: string;
  /**
   * The delay for queries that arrive from now on (those already held keep theirs); with
   * `name`, for queries of that name only (it then wins over the general delay).
   */
  setDelay(delay: DnsDelay, name?: string): void;
  /** Forget the delays set for single names. */
  clearNameDelays(): void;
  readonly delay: DnsDelay;
  /** Queries received (UDP and TCP). */
  readonly queries: number;
  /** Queries received for one name. */
  queriesFor(name: string): number;
  /** Answers sent back. */
  readonly answered: number;
  /** Queries dropped: swallowed ('never'), over maxPending, or the upstream did not answer. */
  readonly dropped: number;
  stop(): Promise<void>;
}

/** How long the forwarder waits for the upstream server before it drops a query. */
const UPSTREAM_TIMEOUT_MS = 5000;

function nameKey(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** The name asked for in a DNS query message (its first question), or undefined if unreadable. */
function questionName(query: Buffer): string | undefined {
  const labels: string[] = [];
  let at = 12;
  // Queries carry no compression pointers; a name has at most 127 labels.
  for (let n = 0; n < 128 && at < query.length; n++) {
    const length = query[at] as number;
    if (length === 0) return labels.join('.').toLowerCase();
    if (length > 63 || at + 1 + length > query.length) return undefined;
    labels.push(query.toString('latin1', at + 1, at + 1 + length));
    at += 1 + length;
  }
  return undefined;
}

/**
 * A tiny DNS forwarder on 127.0.0.1 that answers slowly: every query (UDP, or TCP with its
 * two-byte length prefix) is passed to the upstream server at once, and its answer is held
 * until `delay` ms after the query arrived; with 'never' the query is swallowed and no answer
 * ever comes. The delay can be changed while it runs, for every name or for one. Everything
 * it holds (timers, sockets) is bounded by maxPending and released by stop().
 */
export async function startSlowDns(options: SlowDnsOptions): Promise<SlowDns> {
  const upstreamHost = options.upstream.host ?? '127.0.0.1';
  const upstreamPort = options.upstream.port;
  const maxPending = options.maxPending ?? 1000;
  let delay: DnsDelay = options.delayMs ?? 0;
  const nameDelays = new Map<string, DnsDelay>();
  const nameQueries = new Map<string, number>();
  let queries = 0;
  let answered = 0;
  let dropped = 0;
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const upstreamSockets = new Set<UdpSocket | Socket>();
  const clients = new Set<Socket>();

  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, ms);
    timers.add(t);
  };
  const pending = () => timers.size;
  /** Decide what to do with a new query (without its TCP length): undefined drops it, a number is when to answer. */
  const admit = (query: Buffer): number | undefined => {
    queries++;
    const name = questionName(query);
    if (name !== undefined) nameQueries.set(name, (nameQueries.get(name) ?? 0) + 1);
    const wait = (name !== undefined ? nameDelays.get(name) : undefined) ?? delay;
    if (stopped || wait === 'never' || pending() + upstreamSockets.size >= maxPending) {
      dropped++;
      return undefined;
    }
    return Date.now() + wait;
  };

  /**
   * One exchange with the upstream on its own socket: `finish` (once) stops the timer, lets
   * the socket go and calls back; no answer within UPSTREAM_TIMEOUT_MS is no answer.
   */
  const exchange = <S extends UdpSocket | Socket>(socket: S, release: (s: S) => void, done: (answer: Buffer | undefined) => void) => {
    upstreamSockets.add(socket);
    let finished = false;
    const finish = (answer: Buffer | undefined) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      upstreamSockets.delete(socket);
      release(socket);
      done(answer);
    };
    const timer = setTimeout(() => finish(undefined), UPSTREAM_TIMEOUT_MS);
    socket.on('error', () => finish(undefined));
    return finish;
  };

  /** One query to the upstream over UDP; calls back with its answer, or nothing on timeout. */
  const askUdp = (query: Buffer, done: (answer: Buffer | undefined) => void) => {
    const socket = createSocket('udp4');
    const finish = exchange(socket, (s) => s.close(), done);
    socket.on('message', (answer) => finish(answer));
    socket.send(query, upstreamPort, upstreamHost, (error) => {
      if (error) finish(undefined);
    });
  };

  /** One query to the upstream over TCP (framed); calls back with its framed answer. */
  const askTcp = (framed: Buffer, done: (answer: Buffer | undefined) => void) => {
    const socket = connect({ host: upstreamHost, port: upstreamPort });
    const finish = exchange(socket, (s) => s.destroy(), done);
    const parts: Buffer[] = [];
    let length = 0;
    socket.on('close', () => finish(undefined));
    socket.on('data', (chunk: Buffer) => {
      parts.push(chunk);
      length += chunk.length;
      const all = Buffer.concat(parts, length);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) finish(all.subarray(0, 2 + all.readUInt16BE(0)));
    });
    socket.write(framed);
  };

  const port = await freePort();

  const udp = createSocket('udp4');
  udp.on('error', () => {});
  udp.on('message', (query, from) => {
    const due = admit(query);
    if (due === undefined) return;
    askUdp(query, (answer) => {
      if (!answer) {
        dropped++;
        return;
      }
      later(Math.max(0, due - Date.now()), () => {
        if (stopped) return;
        answered++;
        udp.send(answer, from.port, from.address);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(port, '127.0.0.1', () => {
      udp.off('error', reject);
      resolve();
    });
  });

  const tcp: Server = createServer((client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => {});
    let buffered = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      // A query is bounded by its 16-bit length; take every complete one.
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const framed = buffered.subarray(0, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(framed.length);
        const due = admit(framed.subarray(2));
        if (due === undefined) continue; // swallowed: the client waits for its own timeout
        askTcp(Buffer.from(framed), (answer) => {
          if (!answer) {
            dropped++;
            return;
          }
          later(Math.max(0, due - Date.now()), () => {
            if (stopped || client.destroyed) return;
            answered++;
            client.write(answer);
          });
        });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', () => {
      tcp.off('error', reject);
      resolve();
    });
  });

  return {
    port,
    server: `127.0.0.1:${port}`,
    setDelay(next, name) {
      if (next !== 'never' && (!Number.isFinite(next) || next < 0))
        throw new RangeError(`delay must be 'never' or a number of ms >= 0, not ${next}`);
      if (name !== undefined) nameDelays.set(nameKey(name), next);
      else delay = next;
    },
    clearNameDelays() {
      nameDelays.clear();
    },
    queriesFor(name) {
      return nameQueries.get(nameKey(name)) ?? 0;
    },
    get delay() {
      return delay;
    },
    get queries() {
      return queries;
    },
    get answered() {
      return answered;
    },
    get dropped() {
      return dropped;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of upstreamSockets) {
        if ('destroy' in s) s.destroy();
        else s.close();
      }
      upstreamSockets.clear();
      for (const c of clients) c.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}
