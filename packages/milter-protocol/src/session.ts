import type { Duplex } from 'node:stream';
import type { BudgetHolder, BufferBudget } from './budget.js';
import { type Packet, PacketDecoder } from './decoder.js';
import { MilterError, MilterProtocolError, errorMessage } from './errors.js';
import type { HandlerFactory, MilterContext, MilterLogLevel, MilterLogger } from './handler.js';
import type { FilterRequirements } from './negotiation.js';
import { type SessionLink, StageMachine } from './stage-machine.js';

export interface SessionOptions extends FilterRequirements {
  handler: HandlerFactory;
  /**
   * Add protocol bits for stages the handler lacks: NR_* (no reply) for connect, HELO, MAIL
   * and RCPT (their data still reaches ctx), NO* (not sent) for DATA, headers, end of
   * headers, body and unknown commands. Default true.
   */
  deriveProtocol?: boolean;
  /**
   * What carries the connection. Over 'tcp' the session asks for no reply only to header
   * fields and does not skip DATA (see TCP_DROPPED in stage-machine.ts), whatever `protocol` and deriveProtocol say. Default 'stream'
   * (unix sockets and the like: every NR_* bit as configured).
   */
  transport?: 'tcp' | 'stream';
  /**
   * Largest packet accepted from the MTA (its announced length, code byte included). A longer
   * one is a protocol error that closes the connection before any of its data is kept.
   * Default 4 MiB (DEFAULT_MAX_PACKET_SIZE); Postfix and sendmail send at most 64 KiB of data
   * per packet unless a larger size is negotiated (at most 1 MiB).
   */
  maxPacketSize?: number;
  /**
   * A byte budget shared with other sessions (MilterServer makes one from maxBufferedBytes):
   * bytes of partly received packets and of packets waiting for the handler count against it.
   * When the total would pass its limit the connection holding the most is closed (see BufferBudget).
   */
  budget?: BufferBudget;
  /** Close a connection with no command for this long (ms) while no handler runs. Default 7210 s (libmilter's); 0 disables. */
  idleTimeoutMs?: number;
  /** Send SMFIR_PROGRESS this often (ms) while an end-of-message handler runs. Default 5000; 0 disables. */
  progressIntervalMs?: number;
  /** The reply when a handler throws. Default 'tempfail'. */
  errorDecision?: 'tempfail' | 'reject' | 'continue' | 'accept';
  logger?: MilterLogger;
  /** Connection number (the server assigns them). */
  id?: number;
  remoteAddress?: string;
  /** Every error of this connection (protocol errors, handler errors), already prefixed with its stage. */
  onError?: (error: MilterError) => void;
}

const DEFAULT_IDLE_TIMEOUT = 7210_000;

function isQuietSocketError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_WRITE_AFTER_END';
}

/**
 * One MTA connection, its I/O side: reads the socket, frames packets, accounts buffered bytes
 * against the shared budget, enforces the idle timeout and ends the connection. Each packet
 * goes to the connection's StageMachine (stage-machine.ts), which keeps the protocol state,
 * calls the handler and decides the replies this class writes.
 *
 * Packets are handled strictly one after another; while a handler runs the socket is paused,
 * so a slow handler slows the reader instead of buffering without bound. A malformed packet
 * or a protocol violation closes this connection only, reported through onError and the
 * logger. However the connection ends, an unfinished message is aborted and `close` is
 * called, exactly once.
 */
export class MilterSession {
  readonly id: number;
  readonly context: MilterContext;
  /** Resolves once the connection has ended and the handler's close has run. */
  readonly closed: Promise<void>;

  private readonly machine: StageMachine;
  private readonly decoder: PacketDecoder;
  private readonly queue: Packet[] = [];
  /** Bytes of the packets in `queue` (framing included). */
  private queuedBytes = 0;
  private readonly budget: BufferBudget | undefined;
  private readonly holder: BudgetHolder = { evict: (reason) => this.evict(reason) };
  /** Made on first use of ctx.signal: most handlers never ask, and an abort costs. */
  private controller: AbortController | undefined;
  private readonly settings: SessionOptions;
  private readonly logger: MilterLogger | undefined;
  private running = false;
  private ended = false;
  private finishing = false;
  private resolveClosed!: () => void;
  private received = 0;
  /** When the packet being assembled began to arrive (a trickle of bytes is not activity). */
  private partialSince: number | undefined;
  private readonly idleMs: number;

  constructor(
    private readonly socket: Duplex,
    settings: SessionOptions,
  ) {
    this.settings = settings;
    this.id = settings.id ?? 0;
    this.logger = settings.logger;
    this.decoder = new PacketDecoder({ maxPacketSize: settings.maxPacketSize });
    this.budget = settings.budget;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    const session = this;
    const link: SessionLink = {
      get ended() {
        return session.ended;
      },
      get signal(): AbortSignal {
        session.controller ??= new AbortController();
        if (session.ended) session.controller.abort();
        return session.controller.signal;
      },
      write: (bytes) => this.write(bytes),
      log: (level, message, details) => this.log(level, message, details),
      reportError: (error) => this.reportError(error),
      quit: () => this.quit(),
      drop: () => this.destroy(),
    };
    this.machine = new StageMachine(link, settings);
    this.context = this.machine.context;

    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.terminate());
    socket.on('close', () => this.terminate());
    socket.on('error', (error) => {
      if (isQuietSocketError(error)) this.log('debug', `socket: ${errorMessage(error)}`);
      else this.reportError(new MilterError('socket', errorMessage(error), { cause: error }));
      this.terminate();
    });
    const idle = settings.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT;
    this.idleMs = idle;
    const net = socket as Duplex & { setTimeout?: (ms: number) => void };
    if (idle > 0 && typeof net.setTimeout === 'function') {
      net.setTimeout(idle);
      socket.on('timeout', () => {
        if (this.running && !this.ended) {
          net.setTimeout?.(idle); // a handler is busy: that is not idleness
          return;
        }
        this.log('warn', `idle: no command for ${idle} ms; closing the connection`);
        socket.destroy();
        this.terminate();
      });
    }
    this.machine.start();
  }

  /** Bytes read from the MTA so far. */
  get bytesReceived(): number {
    return this.received;
  }

  /** Packets decoded but not handled yet (bounded: the socket is paused while a handler runs). */
  get queuedPackets(): number {
    return this.queue.length;
  }

  /** Close the connection now (the handler still gets abort/close). */
  destroy(): void {
    this.socket.destroy();
    this.terminate();
  }

  private log(level: MilterLogLevel, message: string, details?: Record<string, unknown>): void {
    this.logger?.(level, message, { session: this.id, ...details });
  }

  private reportError(error: MilterError): void {
    this.log('error', error.message);
    try {
      this.settings.onError?.(error);
    } catch {
      // a failing error listener must not take the session down
    }
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.received += chunk.length;
    let packets: Packet[];
    try {
      packets = this.decoder.push(chunk);
    } catch (error) {
      this.fail(error);
      return;
    }
    for (const packet of packets) {
      this.queue.push(packet);
      this.queuedBytes += packet.payload.length + 5;
    }
    const held = this.decoder.bufferedBytes + this.queuedBytes;
    if (this.budget && !this.budget.claim(this.holder, held)) {
      this.evict(`all connections together would hold over ${this.budget.limit} bytes; this one holds the most (${held} bytes)`);
      return;
    }
    // The idle timer restarts with every byte, so a peer that trickles a packet a byte at a
    // time would never be idle: one packet may take no longer than the idle timeout either.
    if (!this.decoder.hasPartialPacket) this.partialSince = undefined;
    else if (this.partialSince === undefined || packets.length > 0) this.partialSince = Date.now();
    else if (this.idleMs > 0 && Date.now() - this.partialSince > this.idleMs) {
      this.log('warn', `idle: one packet has been arriving for over ${this.idleMs} ms; closing the connection`);
      this.socket.destroy();
      this.terminate();
      return;
    }
    if (!this.running && this.queue.length > 0) void this.drain();
    if (this.running) this.socket.pause();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.ended) {
        const packet = this.queue.shift() as Packet;
        this.queuedBytes -= packet.payload.length + 5;
        this.budget?.claim(this.holder, this.decoder.bufferedBytes + this.queuedBytes);
        await this.machine.handle(packet);
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.running = false;
    }
    if (this.ended) await this.finish();
    else this.socket.resume();
  }

  /** A protocol error: report it and drop the connection. */
  private fail(error: unknown): void {
    const e =
      error instanceof MilterError ? error : new MilterProtocolError('session', `internal error: ${errorMessage(error)}`, { cause: error });
    this.reportError(e);
    this.socket.destroy();
    this.terminate();
  }

  private terminate(): void {
    if (this.ended) {
      if (!this.running) void this.finish();
      return;
    }
    this.ended = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.decoder.discard(); // what a dropped connection had buffered can be freed at once
    this.budget?.release(this.holder);
    this.controller?.abort();
    if (!this.running) void this.finish();
  }

  /** Closed to keep the shared buffer budget (see BufferBudget). */
  private evict(reason: string): void {
    if (this.ended) return;
    this.log('warn', `buffered bytes: ${reason}; closing the connection`);
    this.socket.destroy();
    this.terminate();
  }

  private async finish(): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    await this.machine.close();
    if (!this.socket.destroyed) {
      this.socket.end();
      // A peer that never closes its side must not keep the socket (and server.close()) forever.
      const socket = this.socket;
      setTimeout(() => socket.destroy(), 2000).unref();
    }
    this.resolveClosed();
  }

  private write(bytes: Buffer): void {
    if (this.ended || this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(bytes);
  }

  /** SMFIC_QUIT: handle nothing more; the connection closes when the current packet is done. */
  private quit(): void {
    this.ended = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.budget?.release(this.holder);
    this.controller?.abort();
  }
}
