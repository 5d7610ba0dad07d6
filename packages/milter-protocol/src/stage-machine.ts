import { type MilterCommand, commandStage, decodeCommand, normalizeAddress } from './commands.js';
import { ProtocolFlags, describeActions, describeProtocol } from './constants.js';
import type { Packet } from './decoder.js';
import { MilterError, MilterProtocolError, errorMessage } from './errors.js';
import {
  type ConnectInfo,
  type Envelope,
  type HandlerResult,
  type MaybePromise,
  type MessageInfo,
  type MilterContext,
  type MilterHandler,
  type MilterLogLevel,
  logsAt,
  protocolForHandler,
} from './handler.js';
import { MacroStore } from './macros.js';
import { Modifier } from './modifier.js';
import { EVENT_BITS, type EventStage, type NegotiatedOptions, expectsReply, negotiate, negotiationResponse } from './negotiation.js';
import { type SmtpReply, formatSmtpReply } from './reply.js';
import { type MilterResponse, encodeResponse } from './responses.js';
import type { SessionOptions } from './session.js';

/**
 * What the stage machine needs from the connection that carries it (MilterSession): the
 * machine decides what to reply, the connection reads, writes and ends.
 */
export interface SessionLink {
  /** The connection has ended (or the MTA quit): no more replies, no more handler calls. */
  readonly ended: boolean;
  /** Aborted when the connection closes (ctx.signal). */
  readonly signal: AbortSignal;
  write(bytes: Buffer): void;
  log(level: MilterLogLevel, message: string, details?: Record<string, unknown>): void;
  reportError(error: MilterError): void;
  /** SMFIC_QUIT: read no further command; the connection closes once this one is handled. */
  quit(): void;
  /** Drop the connection at once (the handler factory failed). */
  drop(): void;
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

const DEFAULT_PROGRESS_INTERVAL = 5000;
const PROGRESS = encodeResponse({ type: 'progress' });

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

/**
 * The protocol side of one MTA connection, without I/O: keeps the negotiated options, the
 * macros and the per-connection and per-message state, calls the handler stage by stage and
 * hands the connection exactly the replies the protocol expects.
 */
export class StageMachine {
  readonly context: MilterContext;
  private handler: MilterHandler = {};
  private options: NegotiatedOptions | undefined;
  private readonly macros = new MacroStore();
  private client: ConnectInfo | undefined;
  private heloName: string | undefined;
  private message: MessageState | undefined;
  private messageCount = 0;
  private connectionFailed = false;
  private handlerOk = true;

  constructor(
    private readonly link: SessionLink,
    private readonly settings: SessionOptions,
  ) {
    const machine = this;
    this.context = {
      id: settings.id ?? 0,
      remoteAddress: settings.remoteAddress ?? 'unknown',
      get options(): NegotiatedOptions {
        if (!machine.options) throw new MilterError('context', 'options are not negotiated yet');
        return machine.options;
      },
      macros: this.macros,
      get signal(): AbortSignal {
        return link.signal;
      },
      get client() {
        return machine.client;
      },
      get helo() {
        return machine.heloName;
      },
      get message() {
        return machine.message;
      },
      get messageCount() {
        return machine.messageCount;
      },
      log: (level, message, details) => link.log(level, message, details),
    };
  }

  /** Make the first handler (after the connection is wired up: a failing factory drops it). */
  start(): void {
    this.handler = this.makeHandler();
  }

  /** Decode and handle one packet; a protocol error is thrown (the connection drops it). */
  async handle(packet: Packet): Promise<void> {
    const command = decodeCommand(packet);
    if (!this.options && command.type !== 'negotiate') {
      throw new MilterProtocolError(commandStage(packet.code), 'command before option negotiation');
    }
    await this.dispatch(command);
  }

  /** The connection ended: abort an unfinished message and call the handler's close. */
  async close(): Promise<void> {
    if (!this.handlerOk) return;
    await this.abortMessage();
    if (this.handler.close) {
      try {
        await this.handler.close(this.context);
      } catch (error) {
        this.handlerError('close', error);
      }
    }
  }

  private makeHandler(): MilterHandler {
    try {
      return this.settings.handler(this.context);
    } catch (error) {
      this.link.reportError(new MilterError('handler', `factory failed: ${errorMessage(error)}`, { cause: error }));
      this.handlerOk = false;
      this.link.drop();
      return {};
    }
  }

  private handlerError(stage: string, error: unknown): void {
    const e = error instanceof MilterError ? error : new MilterError(stage, `handler failed: ${errorMessage(error)}`, { cause: error });
    this.link.reportError(e);
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
          this.link.log('warn', `${stage}: "skip" is only possible for body chunks with SMFIP_SKIP negotiated; continuing`);
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
    if (this.link.ended) return undefined;
    if (!expectsReply(options, stage)) {
      if (failed) {
        if (this.message) this.message.failed = true;
        else this.connectionFailed = true;
      } else if (decision !== undefined && decision !== 'continue') {
        this.link.log(
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
    this.link.write(encodeResponse(response));
    return response;
  }

  private startMessage(): MessageState {
    this.messageCount += 1;
    this.message = {
      index: this.messageCount,
      sender: undefined,
      recipients: [],
      headerCount: 0,
      bodyBytes: 0,
      failed: false,
      skipBody: false,
    };
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

  private async dispatch(command: MilterCommand): Promise<void> {
    const h = this.handler;
    const ctx = this.context;
    switch (command.type) {
      case 'negotiate':
        this.onNegotiate(command);
        return;
      case 'macro':
        if (!this.macros.set(command.command, command.macros))
          this.link.log('debug', `macro: ignoring macros for command '${command.command}'`);
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
        this.link.quit();
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
    if (logsAt(this.settings.logger, 'debug'))
      this.link.log(
        'debug',
        `negotiate: MTA offered v${offer.version} ${describeActions(offer.actions)} / ${describeProtocol(offer.protocol)}; agreed v${options.version} ${describeActions(options.actions)} / ${describeProtocol(options.protocol)}`,
      );
    this.link.write(encodeResponse(negotiationResponse(options)));
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
    const modifier = new Modifier(this.options as NegotiatedOptions, () => this.link.write(PROGRESS));
    const interval = this.settings.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL;
    const timer = interval > 0 ? setInterval(() => this.link.write(PROGRESS), interval) : undefined;
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
    if (this.link.ended) return;
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
    this.link.write(out);
  }
}
