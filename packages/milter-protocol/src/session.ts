import type { Duplex } from 'node:stream';
import type { BudgetHolder, BufferBudget } from './budget.js';
import { type ConnectFamily, type MilterCommand, commandStage, decodeCommand, normalizeAddress } from './commands.js';
import { ProtocolFlags, describeActions, describeProtocol } from './constants.js';
import { type Packet, PacketDecoder } from './decoder.js';
import { MilterError, MilterProtocolError, errorMessage } from './errors.js';
import { MacroStore } from './macros.js';
import { Modifier } from './modifier.js';
import {
  EVENT_BITS,
  type EventStage,
  type FilterRequirements,
  type NegotiatedOptions,
  expectsReply,
  negotiate,
  negotiationResponse,
} from './negotiation.js';
import { type SmtpReply, formatSmtpReply } from './reply.js';
import { type MilterResponse, encodeResponse } from './responses.js';

export type MilterLogLevel = 'debug' | 'info' | 'warn' | 'error';
/**
 * A logger callback; `details` carries the session id and similar fields. An optional
 * `enabled(level)` lets the library skip building messages the logger would drop.
 */
export type MilterLogger = ((level: MilterLogLevel, message: string, details?: Record<string, unknown>) => void) & {
  enabled?: (level: MilterLogLevel) => boolean;
};

/** Whether a message at `level` would be kept (always, for loggers that do not say). */
export function logsAt(logger: MilterLogger | undefined, level: MilterLogLevel): logger is MilterLogger {
  return logger !== undefined && (logger.enabled?.(level) ?? true);
}

/**
 * The decision words, as constants. In an async handler write `return Decision.reject`
 * (or `'reject' as const`): TypeScript widens a bare string literal returned from an async
 * function to `string` when the expected type is `T | Promise<T>`.
 */
export const Decision = {
  continue: 'continue',
  accept: 'accept',
  reject: 'reject',
  tempfail: 'tempfail',
  discard: 'discard',
  skip: 'skip',
} as const;

/**
 * What a stage callback decides. `continue` (or returning nothing) goes on; `accept`,
 * `reject`, `tempfail` and `discard` end the connection (at connect/HELO), the recipient (at
 * RCPT) or the message; `skip` (body only, with SMFIP_SKIP) skips the rest of the body; an
 * SmtpReply rejects or tempfails with that text. At end of message `continue` means accept.
 */
export type Decision = (typeof Decision)[keyof typeof Decision] | SmtpReply;
/** A callback's result; `void` lets methods that return nothing (or `() => void` functions) be handlers. */
// biome-ignore lint/suspicious/noConfusingVoidType: handlers that return nothing must type-check
export type HandlerResult = Decision | undefined | void;
type MaybePromise<T> = T | Promise<T>;

/** The SMTP client, from the connect command. */
export interface ConnectInfo {
  /** Host name, or "[ip]" when the MTA could not resolve it. */
  hostname: string;
  family: ConnectFamily;
  port: number;
  /** Address as sent (IP, or the socket path for 'unix'; empty for 'unknown'). */
  address: string;
  /** The address without "IPv6:" prefix or brackets, IPv4-mapped addresses as IPv4. */
  ip: string;
}

/** A MAIL FROM or RCPT TO argument. */
export interface Envelope {
  /** The address without angle brackets ("" for the null sender). */
  address: string;
  /** As sent: Postfix's SMTP path sends "<a@b>", its sendmail path "a@b". */
  raw: string;
  /** ESMTP parameters ("SIZE=123", "BODY=8BITMIME"). */
  args: string[];
  /** With SMFIP_RCPT_REJ: the MTA rejected this recipient itself ({rcpt_mailer} is "error"). */
  rejectedByMta?: boolean;
}

/** The message in progress on a connection. */
export interface MessageInfo {
  /** 1-based number of this message on the connection. */
  readonly index: number;
  sender: Envelope | undefined;
  recipients: Envelope[];
  headerCount: number;
  bodyBytes: number;
}

/** Per-connection state a handler can read. */
export interface MilterContext {
  /** Connection number, unique within the server. */
  readonly id: number;
  /** The MTA's end of the socket ("127.0.0.1:43210", or "unix"). */
  readonly remoteAddress: string;
  /** The agreed options; available in every stage callback (not yet in the handler factory). */
  readonly options: NegotiatedOptions;
  readonly macros: MacroStore;
  /** Aborted when the connection closes, so slow work can stop. */
  readonly signal: AbortSignal;
  /** From the connect command (undefined if the MTA does not send it). */
  readonly client: ConnectInfo | undefined;
  /** The latest HELO/EHLO name. */
  readonly helo: string | undefined;
  /** The message in progress, if any. */
  readonly message: MessageInfo | undefined;
  /** Messages started on this connection so far. */
  readonly messageCount: number;
  log(level: MilterLogLevel, message: string, details?: Record<string, unknown>): void;
}

/**
 * A filter: one object per MTA connection, with an optional async method per stage. A
 * missing method means "continue"; by default the server also tells the MTA not to send
 * (or not to wait for a reply to) the stages a handler does not implement.
 *
 * Header values: `header` receives the value bytes exactly as the MTA sent them. Folded
 * lines are joined with a bare LF (no CR) followed by the original white space. Without
 * SMFIP_HDR_LEADSPC the MTA removed one space after the colon ("Subject:  x" gives " x",
 * "Subject:x" and "Subject: x" both give "x"); with it (protocol flag
 * ProtocolFlags.HeaderLeadingSpace) the value is everything after the colon, leading white
 * space included, which is what DKIM needs.
 */
export interface MilterHandler {
  connect?(client: ConnectInfo, ctx: MilterContext): MaybePromise<HandlerResult>;
  helo?(hostname: string, ctx: MilterContext): MaybePromise<HandlerResult>;
  mail?(sender: Envelope, ctx: MilterContext): MaybePromise<HandlerResult>;
  rcpt?(recipient: Envelope, ctx: MilterContext): MaybePromise<HandlerResult>;
  data?(ctx: MilterContext): MaybePromise<HandlerResult>;
  header?(name: string, value: Buffer, ctx: MilterContext): MaybePromise<HandlerResult>;
  endOfHeaders?(ctx: MilterContext): MaybePromise<HandlerResult>;
  /** Body chunks in order (CRLF line ends; a CR and its LF may be in different chunks). */
  body?(chunk: Buffer, ctx: MilterContext): MaybePromise<HandlerResult>;
  /** Gather actions on `modifier`; they are written with the returned decision in one write. */
  endOfMessage?(modifier: Modifier, ctx: MilterContext): MaybePromise<HandlerResult>;
  /** The message in progress was abandoned (abort, a new MAIL without abort, or the connection closed). */
  abort?(ctx: MilterContext): MaybePromise<void>;
  unknown?(line: string, ctx: MilterContext): MaybePromise<HandlerResult>;
  /** The connection ended (quit, close without quit, error): called exactly once per handler. */
  close?(ctx: MilterContext): MaybePromise<void>;
}

/** Makes the handler of a new connection. */
export type HandlerFactory = (ctx: MilterContext) => MilterHandler;

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
   * fields and does not skip DATA (see TCP_DROPPED), whatever `protocol` and deriveProtocol say. Default 'stream'
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

interface MessageState extends MessageInfo {
  failed: boolean;
  skipBody: boolean;
}

/** Every SMFIP_NR_* bit. */
const ALL_NO_REPLY =
  ProtocolFlags.NoReplyConnect |
  ProtocolFlags.NoReplyHelo |
  ProtocolFlags.NoReplyMail |
  ProtocolFlags.NoReplyRcpt |
  ProtocolFlags.NoReplyData |
  ProtocolFlags.NoReplyUnknown |
  ProtocolFlags.NoReplyHeader |
  ProtocolFlags.NoReplyEndOfHeaders |
  ProtocolFlags.NoReplyBody;

/**
 * The NR_* bits worth asking for over TCP. MTAs leave Nagle's algorithm on (Postfix and
 * miltertest do), so a packet we do not answer stays unacknowledged until our delayed ACK
 * (40 ms on Linux), and the MTA's next small write waits for it: a stall per message. Header
 * fields are the exception: Postfix writes them in one go with end of headers, which we answer.
 */
const TCP_NO_REPLY = ProtocolFlags.NoReplyHeader;

/**
 * Over TCP, SMFIP_NODATA is not asked for either: Postfix still sends the DATA macros
 * when the DATA command is left out, and that lone packet would wait the same way.
 */
const TCP_DROPPED = (ALL_NO_REPLY & ~TCP_NO_REPLY) | ProtocolFlags.NoData;

const DEFAULT_IDLE_TIMEOUT = 7210_000;
const DEFAULT_PROGRESS_INTERVAL = 5000;
const PROGRESS = encodeResponse({ type: 'progress' });

/** Protocol bits for the stages a handler does not implement (see SessionOptions.deriveProtocol). */
export function protocolForHandler(handler: MilterHandler): number {
  let bits = 0;
  if (typeof handler.connect !== 'function') bits |= ProtocolFlags.NoReplyConnect;
  if (typeof handler.helo !== 'function') bits |= ProtocolFlags.NoReplyHelo;
  if (typeof handler.mail !== 'function') bits |= ProtocolFlags.NoReplyMail;
  if (typeof handler.rcpt !== 'function') bits |= ProtocolFlags.NoReplyRcpt;
  if (typeof handler.data !== 'function') bits |= ProtocolFlags.NoData;
  if (typeof handler.header !== 'function') bits |= ProtocolFlags.NoHeaders;
  if (typeof handler.endOfHeaders !== 'function') bits |= ProtocolFlags.NoEndOfHeaders;
  if (typeof handler.body !== 'function') bits |= ProtocolFlags.NoBody;
  if (typeof handler.unknown !== 'function') bits |= ProtocolFlags.NoUnknown;
  return bits >>> 0;
}

function envelope(raw: string, args: string[]): Envelope {
  const t = raw.trim();
  const address = t.startsWith('<') && t.endsWith('>') ? t.slice(1, -1) : t;
  return { address, raw, args };
}

function describeDecision(decision: HandlerResult): string {
  if (decision === undefined) return 'continue';
  if (typeof decision === 'string') return decision;
  return `${decision.code}${decision.extended ? ` ${decision.extended}` : ''}`;
}

function isQuietSocketError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_WRITE_AFTER_END';
}

/**
 * One MTA connection: decodes packets, keeps the per-connection and per-message state,
 * calls the handler stage by stage and writes exactly the replies the protocol expects.
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

  private handler: MilterHandler = {};
  private options: NegotiatedOptions | undefined;
  private readonly decoder: PacketDecoder;
  private readonly macros = new MacroStore();
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
  private client: ConnectInfo | undefined;
  private heloName: string | undefined;
  private message: MessageState | undefined;
  private messageCount = 0;
  private connectionFailed = false;
  private handlerOk = true;
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
    this.context = {
      id: this.id,
      remoteAddress: settings.remoteAddress ?? 'unknown',
      get options(): NegotiatedOptions {
        if (!session.options) throw new MilterError('context', 'options are not negotiated yet');
        return session.options;
      },
      macros: this.macros,
      get signal(): AbortSignal {
        session.controller ??= new AbortController();
        if (session.ended) session.controller.abort();
        return session.controller.signal;
      },
      get client() {
        return session.client;
      },
      get helo() {
        return session.heloName;
      },
      get message() {
        return session.message;
      },
      get messageCount() {
        return session.messageCount;
      },
      log: (level, message, details) => this.log(level, message, details),
    };

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
    this.handler = this.makeHandler();
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

  private makeHandler(): MilterHandler {
    try {
      return this.settings.handler(this.context);
    } catch (error) {
      this.reportError(new MilterError('handler', `factory failed: ${errorMessage(error)}`, { cause: error }));
      this.handlerOk = false;
      this.socket.destroy();
      this.terminate();
      return {};
    }
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
        await this.handle(packet);
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
    if (this.handlerOk) {
      await this.abortMessage();
      if (this.handler.close) {
        try {
          await this.handler.close(this.context);
        } catch (error) {
          this.handlerError('close', error);
        }
      }
    }
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

  private handlerError(stage: string, error: unknown): void {
    const e = error instanceof MilterError ? error : new MilterError(stage, `handler failed: ${errorMessage(error)}`, { cause: error });
    this.reportError(e);
  }

  private errorResponse(): MilterResponse {
    return { type: this.settings.errorDecision ?? 'tempfail' };
  }

  private toResponse(stage: EventStage, decision: HandlerResult): MilterResponse {
    if (decision === undefined || decision === null) return { type: 'continue' };
    if (typeof decision === 'string') {
      switch (decision) {
        case 'continue':
        case 'accept':
        case 'reject':
        case 'tempfail':
        case 'discard':
          return { type: decision };
        case 'skip':
          if (stage === 'body' && this.options && this.options.protocol & ProtocolFlags.Skip) return { type: 'skip' };
          this.log('warn', `${stage}: "skip" is only possible for body chunks with SMFIP_SKIP negotiated; continuing`);
          return { type: 'continue' };
        default:
          throw new MilterError(stage, `handler returned an unknown decision "${String(decision)}"`);
      }
    }
    if (typeof decision === 'object' && typeof (decision as SmtpReply).code === 'number') {
      return { type: 'replyCode', text: formatSmtpReply(decision as SmtpReply, stage) };
    }
    throw new MilterError(stage, `handler returned an invalid decision ${JSON.stringify(decision)}`);
  }

  private hasFailed(): boolean {
    return this.connectionFailed || (this.message?.failed ?? false);
  }

  /**
   * Run one stage: call the handler (if it has the method), then reply unless the MTA
   * negotiated no reply for this stage. A handler error becomes the error decision, or, where
   * no reply is possible, fails the message (or connection) at its next reply.
   */
  private async event(stage: EventStage, invoke: (() => MaybePromise<HandlerResult>) | undefined): Promise<MilterResponse | undefined> {
    const options = this.options as NegotiatedOptions;
    let decision: HandlerResult;
    let failed = false;
    if (invoke) {
      try {
        decision = await invoke();
      } catch (error) {
        failed = true;
        this.handlerError(stage, error);
      }
    }
    if (this.ended) return undefined;
    if (!expectsReply(options, stage)) {
      if (failed) {
        if (this.message) this.message.failed = true;
        else this.connectionFailed = true;
      } else if (decision !== undefined && decision !== 'continue') {
        this.log(
          'warn',
          `${stage}: decision "${describeDecision(decision)}" not sent: the MTA expects no reply here (${describeProtocol(EVENT_BITS[stage].nr)})`,
        );
      }
      return undefined;
    }
    let response: MilterResponse;
    if (failed || this.hasFailed()) {
      response = this.errorResponse();
    } else {
      try {
        response = this.toResponse(stage, decision);
      } catch (error) {
        this.handlerError(stage, error);
        response = this.errorResponse();
      }
    }
    this.write(encodeResponse(response));
    return response;
  }

  private startMessage(): MessageState {
    this.messageCount += 1;
    this.message = { index: this.messageCount, sender: undefined, recipients: [], headerCount: 0, bodyBytes: 0, failed: false, skipBody: false };
    return this.message;
  }

  /** The message in progress; with NOMAIL negotiated a message starts at its first event. */
  private ensureMessage(): MessageState {
    return this.message ?? this.startMessage();
  }

  private async abortMessage(): Promise<void> {
    if (!this.message) return;
    if (this.handler.abort) {
      try {
        await this.handler.abort(this.context);
      } catch (error) {
        this.handlerError('abort', error);
      }
    }
    this.message = undefined;
  }

  private async handle(packet: Packet): Promise<void> {
    const command = decodeCommand(packet);
    if (!this.options && command.type !== 'negotiate') {
      throw new MilterProtocolError(commandStage(packet.code), 'command before option negotiation');
    }
    await this.dispatch(command);
  }

  private async dispatch(command: MilterCommand): Promise<void> {
    const h = this.handler;
    const ctx = this.context;
    switch (command.type) {
      case 'negotiate':
        this.onNegotiate(command);
        return;
      case 'macro':
        if (!this.macros.set(command.command, command.macros)) this.log('debug', `macro: ignoring macros for command '${command.command}'`);
        return;
      case 'connect': {
        await this.abortMessage();
        this.macros.clearAfter('C');
        const client: ConnectInfo = {
          hostname: command.hostname,
          family: command.family,
          port: command.port,
          address: command.address,
          ip: command.family === 'inet' || command.family === 'inet6' ? normalizeAddress(command.address) : '',
        };
        this.client = client;
        this.heloName = undefined;
        await this.event('connect', h.connect && (() => h.connect?.(client, ctx)));
        return;
      }
      case 'helo':
        await this.abortMessage();
        this.macros.clearAfter('H');
        this.heloName = command.hostname;
        await this.event('helo', h.helo && (() => h.helo?.(command.hostname, ctx)));
        return;
      case 'mail': {
        // sendmail starts the next message without an abort after a message-level decision
        await this.abortMessage();
        this.macros.clearAfter('M');
        const sender = envelope(command.sender, command.args);
        this.startMessage().sender = sender;
        await this.event('mail', h.mail && (() => h.mail?.(sender, ctx)));
        return;
      }
      case 'rcpt': {
        this.macros.clearAfter('R');
        const recipient = envelope(command.recipient, command.args);
        if (this.options && this.options.protocol & ProtocolFlags.RcptRejected && this.macros.get('rcpt_mailer') === 'error') {
          recipient.rejectedByMta = true;
        }
        this.ensureMessage().recipients.push(recipient);
        await this.event('rcpt', h.rcpt && (() => h.rcpt?.(recipient, ctx)));
        return;
      }
      case 'data':
        this.ensureMessage();
        await this.event('data', h.data && (() => h.data?.(ctx)));
        return;
      case 'header':
        this.ensureMessage().headerCount += 1;
        await this.event('header', h.header && (() => h.header?.(command.name, command.value, ctx)));
        return;
      case 'endOfHeaders':
        this.ensureMessage();
        await this.event('endOfHeaders', h.endOfHeaders && (() => h.endOfHeaders?.(ctx)));
        return;
      case 'body': {
        const message = this.ensureMessage();
        message.bodyBytes += command.chunk.length;
        const invoke = message.skipBody ? undefined : h.body && (() => h.body?.(command.chunk, ctx));
        const response = await this.event('body', invoke);
        if (response?.type === 'skip') message.skipBody = true;
        return;
      }
      case 'endOfMessage':
        await this.onEndOfMessage(command.chunk);
        return;
      case 'abort':
        // idempotent; the abort Postfix sends after a completed message finds no message
        await this.abortMessage();
        return;
      case 'unknown':
        await this.event('unknown', h.unknown && (() => h.unknown?.(command.line, ctx)));
        return;
      case 'quit':
        this.ended = true;
        this.queue.length = 0;
        this.queuedBytes = 0;
        this.budget?.release(this.holder);
        this.controller?.abort();
        return;
      case 'quitNewConnection':
        // The MTA keeps the socket for a new SMTP session: end this one, start afresh.
        await this.abortMessage();
        if (h.close) {
          try {
            await h.close(ctx);
          } catch (error) {
            this.handlerError('close', error);
          }
        }
        this.macros.clear();
        this.client = undefined;
        this.heloName = undefined;
        this.connectionFailed = false;
        this.messageCount = 0;
        this.handler = this.makeHandler();
        return;
    }
  }

  private onNegotiate(offer: Extract<MilterCommand, { type: 'negotiate' }>): void {
    if (this.options) throw new MilterProtocolError('negotiate', 'options were already negotiated on this connection');
    const s = this.settings;
    const derived = s.deriveProtocol === false ? 0 : protocolForHandler(this.handler);
    const options = negotiate(offer, {
      maxVersion: s.maxVersion,
      actions: s.actions,
      requiredActions: s.requiredActions,
      protocol: (((s.protocol ?? 0) | derived) & (s.transport === 'tcp' ? ~TCP_DROPPED : ~0)) >>> 0,
      requiredProtocol: s.requiredProtocol,
      macros: s.macros,
    });
    this.options = options;
    if (logsAt(this.logger, 'debug'))
      this.log(
        'debug',
        `negotiate: MTA offered v${offer.version} ${describeActions(offer.actions)} / ${describeProtocol(offer.protocol)}; agreed v${options.version} ${describeActions(options.actions)} / ${describeProtocol(options.protocol)}`,
    );
    this.write(encodeResponse(negotiationResponse(options)));
  }

  private async onEndOfMessage(chunk: Buffer): Promise<void> {
    const message = this.ensureMessage();
    const h = this.handler;
    const ctx = this.context;
    if (chunk.length > 0) {
      // libmilter treats data on end of body as a last body chunk
      message.bodyBytes += chunk.length;
      if (h.body && !message.skipBody) {
        try {
          await h.body(chunk, ctx);
        } catch (error) {
          this.handlerError('body', error);
          message.failed = true;
        }
      }
    }
    const modifier = new Modifier(this.options as NegotiatedOptions, () => this.write(PROGRESS));
    const interval = this.settings.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL;
    const timer = interval > 0 ? setInterval(() => this.write(PROGRESS), interval) : undefined;
    let decision: HandlerResult;
    let failed = false;
    try {
      if (h.endOfMessage) decision = await h.endOfMessage(modifier, ctx);
    } catch (error) {
      failed = true;
      this.handlerError('endOfMessage', error);
    } finally {
      if (timer) clearInterval(timer);
      modifier.seal();
    }
    this.message = undefined;
    if (this.ended) return;
    let out: Buffer;
    if (failed || message.failed || this.connectionFailed) {
      out = encodeResponse(this.errorResponse());
    } else {
      try {
        const final = this.toResponse('endOfMessage', decision);
        const packets = modifier.encode();
        packets.push(encodeResponse(final.type === 'skip' ? { type: 'continue' } : final));
        out = packets.length === 1 ? (packets[0] as Buffer) : Buffer.concat(packets);
      } catch (error) {
        this.handlerError('endOfMessage', error);
        out = encodeResponse(this.errorResponse());
      }
    }
    // every action and the final reply in one write: no Nagle/delayed-ACK stall between them
    this.write(out);
  }
}
