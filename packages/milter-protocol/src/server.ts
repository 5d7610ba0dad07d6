import { EventEmitter } from 'node:events';
import { type Server, type Socket, createServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { BufferBudget } from './budget.js';
import { MilterError, errorMessage } from './errors.js';
import { logsAt, type MilterLogger } from './handler.js';
import { MilterSession, type SessionOptions } from './session.js';
import { type SocketSpec, formatSocketSpec, toSocketSpec } from './socket-spec.js';
import { listenUnix, unlinkOwnSocket } from './unix-socket.js';

/** Default of MilterServerOptions.maxBufferedBytes: 64 MiB. */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

/** How often refused connections are summed up in the log (the first of a burst is logged at once). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** Options of createMilterServer: the handler factory, what to negotiate, limits and logging. */
export type MilterServerOptions = Omit<SessionOptions, 'id' | 'remoteAddress' | 'onError' | 'budget'> & {
  /**
   * Which TCP peers may connect (like OpenDKIM's PeerList): called with the peer's address;
   * false closes the connection at once. Unix-socket connections are not asked about.
   */
  allowPeer?: (address: string) => boolean;
  /**
   * Connections served at once (all listeners together). A connection past it is closed as
   * soon as it is accepted, before anything is read; the MTA applies its milter default
   * action (Postfix milter_default_action, sendmail's F= flags). Refusals are logged at most
   * once per 10 s, with a count. Default: no limit.
   */
  maxConnections?: number;
  /**
   * Bytes all connections together may hold in partly received packets and packets waiting
   * for their handler. When a read would pass it, the connection holding the most is closed
   * (see BufferBudget); with maxPacketSize this bounds what a flood of connections announcing
   * big packets can cost. Default 64 MiB (DEFAULT_MAX_BUFFERED_BYTES).
   */
  maxBufferedBytes?: number;
};

/** A socket the server listens on. */
export interface MilterListener {
  /** The spec with the actual port (when 0 was asked for). */
  spec: SocketSpec;
  /** The spec as milter/sendmail text (`inet:port@host`, `unix:/path`). */
  address: string;
  /** Stop accepting (a unix socket file is removed at once); resolves when this listener's connections have ended. */
  close(): Promise<void>;
}

export interface MilterServerEvents {
  session: [session: MilterSession];
  sessionError: [error: MilterError, session: MilterSession];
  listening: [listener: MilterListener];
  close: [];
}

/**
 * A milter server: one MilterSession per MTA connection, on any number of unix and TCP
 * listeners. TCP connections get TCP_NODELAY. Errors of one connection are reported with the
 * 'sessionError' event and the logger and close that connection only; the server goes on.
 * (The event is deliberately not called 'error': an unhandled 'error' event would throw.)
 */
export class MilterServer extends EventEmitter<MilterServerEvents> {
  private readonly sessions = new Set<MilterSession>();
  /** Every accepted stream until it closes (a finished session may leave one half-closed). */
  private readonly streams = new Set<Duplex>();
  private readonly openListeners = new Set<MilterListener>();
  private nextId = 1;
  private closing = false;
  private readonly logger: MilterLogger | undefined;
  private readonly budget: BufferBudget;
  private readonly maxConnections: number;
  /** Refusals not logged yet, by reason, and the timer that sums them up. */
  private readonly refusals = new Map<string, { count: number; message: string }>();
  private refusalTimer: NodeJS.Timeout | undefined;

  constructor(readonly options: MilterServerOptions) {
    super();
    if (typeof options.handler !== 'function') throw new MilterError('server', 'options.handler must be a function that returns a handler');
    this.logger = options.logger;
    const max = options.maxConnections ?? Number.POSITIVE_INFINITY;
    if (!(max === Number.POSITIVE_INFINITY || (Number.isSafeInteger(max) && max >= 1))) {
      throw new MilterError('server', `maxConnections must be a positive integer, not ${max}`);
    }
    this.maxConnections = max;
    try {
      this.budget = new BufferBudget(options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES);
    } catch (error) {
      throw new MilterError('server', errorMessage(error).replace('the buffered-bytes limit', 'maxBufferedBytes'));
    }
  }

  /** Bytes all connections hold in partly received or waiting packets (see maxBufferedBytes). */
  get bufferedBytes(): number {
    return this.budget.used;
  }

  /** Connections currently open. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Listen on a socket spec, parsed or as text (`unix:/run/inkan.sock`, `inet:8891@127.0.0.1`,
   * `inet:127.0.0.1:8891`, `inet6:8891@::1`). A unix socket gets `mode` (default 0o660) and
   * `group`; a stale socket file is replaced, a live one refused.
   */
  async listen(input: SocketSpec | string): Promise<MilterListener> {
    if (this.closing) throw new MilterError('listen', 'the server is closed');
    const spec = toSocketSpec(input);
    const server: Server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    let listener: MilterListener;
    if (spec.kind === 'unix') {
      const inode = await listenUnix(server, spec.path, spec.mode ?? 0o660, spec.group);
      listener = {
        spec,
        address: formatSocketSpec(spec),
        close: async () => {
          const closed = closeServer(server);
          // remove the file as soon as we stop accepting, so a successor can bind at once
          await unlinkOwnSocket(spec.path, inode);
          await closed;
        },
      };
    } else {
      await new Promise<void>((resolve, reject) => {
        const onError = (error: Error) =>
          reject(new MilterError('listen', `cannot listen on ${formatSocketSpec(spec)}: ${errorMessage(error)}`, { cause: error }));
        server.once('error', onError);
        server.listen({ port: spec.port, host: spec.host, ipv6Only: spec.kind === 'inet6' }, () => {
          server.off('error', onError);
          resolve();
        });
      });
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : spec.port;
      const actual: SocketSpec = { kind: spec.kind, host: spec.host, port };
      listener = { spec: actual, address: formatSocketSpec(actual), close: () => closeServer(server) };
    }
    server.on('error', (error) => this.logger?.('error', `listen: ${errorMessage(error)}`, { address: listener.address }));
    this.openListeners.add(listener);
    this.logger?.('info', `listening on ${listener.address}`);
    this.emit('listening', listener);
    return listener;
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (socket.remoteAddress !== undefined && this.options.allowPeer && !this.options.allowPeer(socket.remoteAddress)) {
      socket.destroy();
      this.refused('peer', `refused a connection from ${socket.remoteAddress}: not an allowed peer`);
      return;
    }
    if (this.sessions.size >= this.maxConnections) {
      socket.destroy();
      const from = socket.remoteAddress === undefined ? 'the unix socket' : socket.remoteAddress;
      this.refused('maxConnections', `refused a connection from ${from}: ${this.maxConnections} connections are open, the maximum`);
      return;
    }
    if (socket.remoteAddress !== undefined) socket.setNoDelay(true);
    const tcp = socket.remoteAddress !== undefined;
    this.handle(socket, tcp ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix', tcp ? 'tcp' : 'stream');
  }

  /**
   * Log a refused connection without letting a flood of them flood the log: the first one of
   * a kind is logged at once, later ones are counted and summed up every 10 s while they go on.
   */
  private refused(kind: string, message: string): void {
    const pending = this.refusals.get(kind);
    if (pending) {
      pending.count++;
      pending.message = message;
      return;
    }
    this.logger?.('warn', message);
    this.refusals.set(kind, { count: 0, message });
    this.refusalTimer ??= setInterval(() => {
      for (const [k, p] of this.refusals) {
        if (p.count === 0) {
          this.refusals.delete(k);
          continue;
        }
        this.logger?.('warn', `${p.message} (and ${p.count} more refused like it in the last ${REFUSAL_LOG_INTERVAL_MS / 1000} s)`, {
          refused: p.count,
        });
        p.count = 0;
      }
      if (this.refusals.size === 0) {
        clearInterval(this.refusalTimer);
        this.refusalTimer = undefined;
      }
    }, REFUSAL_LOG_INTERVAL_MS).unref();
  }

  /**
   * Serve an already connected stream (socket activation, tests); 'tcp' limits the NR_* bits
   * asked for. maxConnections is not applied here (the caller chose to hand it over); the
   * buffered-bytes budget is.
   */
  handle(stream: Duplex, remoteAddress = 'stream', transport: 'tcp' | 'stream' = 'stream'): MilterSession {
    const id = this.nextId++;
    let session: MilterSession | undefined;
    const pendingErrors: MilterError[] = [];
    session = new MilterSession(stream, {
      ...this.options,
      budget: this.budget,
      id,
      remoteAddress,
      transport,
      onError: (error) => {
        if (session) this.emit('sessionError', error, session);
        else pendingErrors.push(error);
      },
    });
    const s = session;
    for (const error of pendingErrors) this.emit('sessionError', error, s);
    this.sessions.add(s);
    this.streams.add(stream);
    stream.once('close', () => this.streams.delete(stream));
    const debug = logsAt(this.logger, 'debug') ? this.logger : undefined;
    debug?.('debug', `connection from ${remoteAddress}`, { session: id });
    void s.closed.then(() => {
      this.sessions.delete(s);
      debug?.('debug', 'connection closed', { session: id });
    });
    this.emit('session', s);
    return s;
  }

  /**
   * Stop listening (removing unix socket files), then close the open connections: right away
   * by default, or after up to `graceMs` for them to finish on their own. Handlers get their
   * abort/close calls either way.
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    this.closing = true;
    if (this.refusalTimer) clearInterval(this.refusalTimer);
    this.refusalTimer = undefined;
    // net.Server.close() resolves only when its connections are gone, so await it last
    const listenersClosed = Promise.all([...this.openListeners].map((l) => l.close()));
    this.openListeners.clear();
    const grace = options.graceMs ?? 0;
    if (grace > 0 && this.sessions.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...this.sessions].map((s) => s.closed)),
        new Promise((resolve) => {
          timer = setTimeout(resolve, grace);
        }),
      ]);
      if (timer) clearTimeout(timer);
    }
    const open = [...this.sessions];
    for (const session of open) session.destroy();
    await Promise.all(open.map((s) => s.closed));
    // Sessions that ended on their own may still hold a half-closed socket; net.Server.close()
    // waits for every socket, so close them all.
    for (const stream of this.streams) stream.destroy();
    await listenersClosed;
    this.emit('close');
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}

/** Create a milter server; then `await server.listen(spec)`. */
export function createMilterServer(options: MilterServerOptions): MilterServer {
  return new MilterServer(options);
}
