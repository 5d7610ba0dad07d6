import type { Duplex } from 'node:stream';
import { connectToFilter, negotiateWithFilter } from './client-negotiation.js';
import { type ConnectFamily, type MacroPair, type MilterCommand, encodeCommand } from './commands.js';
import { ActionFlags, ProtocolFlags, describeActions } from './constants.js';
import type { PacketDecoder } from './decoder.js';
import { MilterError, MilterProtocolError, errorMessage } from './errors.js';
import { type EventStage, type NegotiatedOptions, expectsReply, sendsEvent } from './negotiation.js';
import {
  type FinalResponse,
  type MilterResponse,
  type Modification,
  decodeResponse,
  isFinalResponse,
  isModification,
} from './responses.js';
import { type SocketSpec, toSocketSpec } from './socket-spec.js';
import { type Bytes, toBuffer } from './wire.js';

export interface MilterClientOptions {
  /** Protocol version to offer (2, 3, 4 or 6). Default 6. */
  version?: number;
  /** SMFIF_* actions to offer. Default: every action of the version (0x1FF for 6, 0x3F before). */
  actions?: number;
  /** SMFIP_* bits to offer. Default: what the version defines (0x1FFFFF for 6, as Postfix and sendmail). */
  protocol?: number;
  /** How long to wait for each reply (ms); progress packets restart the wait. Default 30 s. */
  timeoutMs?: number;
  /** How long to wait for the connection (ms). Default 10 s. */
  connectTimeoutMs?: number;
  /** Largest packet accepted from the filter. Default 4 MiB. */
  maxPacketSize?: number;
  /** Called for every SMFIR_PROGRESS received. */
  onProgress?: () => void;
}

/** What the filter did at end of message. */
export interface EndOfMessageResult {
  /** Every modification, in the order received. */
  modifications: Modification[];
  /** The final reply. */
  reply: FinalResponse;
  /** SMFIR_PROGRESS packets received before the final reply. */
  progress: number;
}

/** A stage's reply, or undefined when the event was not sent (NO*) or needs no reply (NR_*). */
export type StepReply = FinalResponse | undefined;

interface Waiter {
  resolve: (response: MilterResponse) => void;
  reject: (error: Error) => void;
}

/**
 * The MTA side of the protocol: connects to a filter, negotiates, and drives transactions
 * stage by stage like Postfix does (events the filter suppressed are not sent, replies are
 * not awaited where it asked for none). Used by the tests, the benchmark and `inkan milter-test`.
 */
export class MilterClient {
  /** The agreed options. */
  readonly options: NegotiatedOptions;
  private readonly decoder: PacketDecoder;
  private readonly inbox: MilterResponse[] = [];
  private waiter: Waiter | undefined;
  private failure: Error | undefined;
  private progressSeen = 0;
  private readonly closedPromise: Promise<void>;
  private isClosed = false;

  private constructor(
    private readonly stream: Duplex,
    private readonly settings: MilterClientOptions,
    options: NegotiatedOptions,
    decoder: PacketDecoder,
    inbox: MilterResponse[],
  ) {
    this.options = options;
    this.decoder = decoder;
    this.inbox.push(...inbox);
    this.closedPromise = new Promise((resolve) => {
      if (stream.destroyed) {
        this.isClosed = true;
        resolve();
      }
      stream.once('close', () => {
        this.isClosed = true;
        resolve();
      });
    });
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('close', () => this.fail(new Error('the filter closed the connection')));
    stream.on('error', (error) => this.fail(new Error(`socket error: ${errorMessage(error)}`, { cause: error })));
  }

  /** Connect to a filter and negotiate. */
  static async open(target: SocketSpec | string, settings: MilterClientOptions = {}): Promise<MilterClient> {
    const socket = await connectToFilter(toSocketSpec(target), settings.connectTimeoutMs ?? 10_000);
    return MilterClient.over(socket, settings);
  }

  /** Negotiate over an already connected stream. */
  static async over(stream: Duplex, settings: MilterClientOptions = {}): Promise<MilterClient> {
    const { options, decoder, inbox } = await negotiateWithFilter(stream, settings);
    return new MilterClient(stream, settings, options, decoder, inbox);
  }

  /** SMFIR_PROGRESS packets received so far. */
  get progressCount(): number {
    return this.progressSeen;
  }

  /** Responses received but not consumed: nonzero after a transaction means the filter replied where it must not. */
  get unreadResponses(): number {
    return this.inbox.length;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  private onData(chunk: Buffer): void {
    let responses: MilterResponse[];
    try {
      responses = this.decoder.push(chunk).map(decodeResponse);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      this.stream.destroy();
      return;
    }
    for (const response of responses) {
      const waiter = this.waiter;
      if (waiter) {
        this.waiter = undefined;
        waiter.resolve(response);
      } else {
        this.inbox.push(response);
      }
    }
  }

  /**
   * Record why the connection is unusable. A MilterError keeps its own stage ("decode: ...");
   * anything else is prefixed with the stage that was waiting ("rcpt: the filter closed ...").
   */
  private fail(error: Error): void {
    this.failure ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.failure);
  }

  private failureFor(stage: string, error: Error): Error {
    return error instanceof MilterError ? error : new MilterError(stage, error.message, { cause: error });
  }

  /** The next response from the filter (bounded by timeoutMs). */
  next(stage = 'client'): Promise<MilterResponse> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failureFor(stage, this.failure));
    if (this.waiter) return Promise.reject(new MilterError(stage, 'already waiting for a reply'));
    const timeout = this.settings.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new MilterError(stage, `no reply from the filter within ${timeout} ms`));
      }, timeout);
      this.waiter = {
        resolve: (response) => {
          clearTimeout(timer);
          resolve(response);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(this.failureFor(stage, error));
        },
      };
    });
  }

  private sawProgress(): void {
    this.progressSeen += 1;
    this.settings.onProgress?.();
  }

  /** The final reply to a command, skipping progress packets; anything else is a protocol error. */
  private async reply(stage: EventStage): Promise<FinalResponse> {
    for (;;) {
      const response = await this.next(stage);
      if (response.type === 'progress') {
        this.sawProgress();
        continue;
      }
      if (!isFinalResponse(response))
        throw new MilterProtocolError(stage, `unexpected ${response.type} response (only allowed at end of message)`);
      if (response.type === 'skip' && (stage !== 'body' || (this.options.protocol & ProtocolFlags.Skip) === 0)) {
        throw new MilterProtocolError(stage, 'skip is only allowed in reply to a body chunk, with SMFIP_SKIP negotiated');
      }
      return response;
    }
  }

  /** Send any command as is (tests of odd sequences); no reply is read. */
  send(command: MilterCommand): void {
    if (this.failure) throw this.failureFor(command.type, this.failure);
    this.stream.write(encodeCommand(command));
  }

  private async step(stage: EventStage, command: MilterCommand): Promise<StepReply> {
    if (!sendsEvent(this.options, stage)) return undefined;
    this.send(command);
    if (!expectsReply(this.options, stage)) return undefined;
    return this.reply(stage);
  }

  /** SMFIC_MACRO for the command with letter `command` ('C', 'H', 'M', 'R', 'T', 'N', 'E', ...). */
  macro(command: string, macros: Record<string, string> | readonly MacroPair[]): void {
    const pairs: MacroPair[] = Array.isArray(macros) ? [...(macros as readonly MacroPair[])] : Object.entries(macros);
    this.send({ type: 'macro', command, macros: pairs });
  }

  connect(client: { hostname: string; family?: ConnectFamily; address?: string; port?: number }): Promise<StepReply> {
    const family = client.family ?? 'inet';
    return this.step('connect', {
      type: 'connect',
      hostname: client.hostname,
      family,
      port: client.port ?? 0,
      address: client.address ?? (family === 'inet6' ? '::1' : family === 'inet' ? '127.0.0.1' : ''),
    });
  }

  helo(hostname: string): Promise<StepReply> {
    return this.step('helo', { type: 'helo', hostname });
  }

  mail(sender: string, args: string[] = []): Promise<StepReply> {
    return this.step('mail', { type: 'mail', sender, args });
  }

  rcpt(recipient: string, args: string[] = []): Promise<StepReply> {
    return this.step('rcpt', { type: 'rcpt', recipient, args });
  }

  data(): Promise<StepReply> {
    return this.step('data', { type: 'data' });
  }

  /** Send a header field; the value goes as given (see runTransaction for Postfix's leading-space rule). */
  header(name: string, value: Bytes): Promise<StepReply> {
    return this.step('header', { type: 'header', name, value: toBuffer(value) });
  }

  endOfHeaders(): Promise<StepReply> {
    return this.step('endOfHeaders', { type: 'endOfHeaders' });
  }

  /**
   * Send body bytes in chunks of at most the agreed data size. Stops at the first reply that
   * is not `continue` (a `skip` included) and returns it.
   */
  async body(content: Bytes): Promise<StepReply> {
    const bytes = toBuffer(content);
    if (!sendsEvent(this.options, 'body')) return undefined;
    const size = this.options.maxDataSize;
    let last: StepReply;
    for (let i = 0; i < bytes.length; i += size) {
      last = await this.step('body', { type: 'body', chunk: bytes.subarray(i, i + size) });
      if (last && last.type !== 'continue') return last;
    }
    return last;
  }

  /** SMFIC_BODYEOB: collect the modifications until the final reply. */
  async endOfMessage(chunk: Bytes = Buffer.alloc(0)): Promise<EndOfMessageResult> {
    this.send({ type: 'endOfMessage', chunk: toBuffer(chunk) });
    const modifications: Modification[] = [];
    let progress = 0;
    let body = false;
    for (;;) {
      const response = await this.next('endOfMessage');
      if (response.type === 'progress') {
        progress += 1;
        this.sawProgress();
        continue;
      }
      if (isModification(response)) {
        this.checkAllowed(response);
        if (response.type === 'replaceBody') body = true;
        else if (body)
          throw new MilterProtocolError('endOfMessage', `${response.type} after body replacement chunks (Postfix refuses them mixed)`);
        modifications.push(response);
        continue;
      }
      if (isFinalResponse(response)) {
        if (response.type === 'skip') throw new MilterProtocolError('endOfMessage', 'skip is not a reply to end of message');
        return { modifications, reply: response, progress };
      }
      throw new MilterProtocolError('endOfMessage', `unexpected ${response.type} response`);
    }
  }

  private checkAllowed(m: Modification): void {
    const needed: Record<Modification['type'], number> = {
      addHeader: ActionFlags.AddHeaders,
      insertHeader: ActionFlags.AddHeaders,
      changeHeader: ActionFlags.ChangeHeaders,
      changeFrom: ActionFlags.ChangeFrom,
      addRcpt: ActionFlags.AddRcpt,
      addRcptPar: ActionFlags.AddRcptPar,
      delRcpt: ActionFlags.DelRcpt,
      replaceBody: ActionFlags.ChangeBody,
      quarantine: ActionFlags.Quarantine,
    };
    const flag = needed[m.type];
    if ((this.options.actions & flag) === 0) {
      throw new MilterProtocolError('endOfMessage', `filter sent ${m.type} without having negotiated ${describeActions(flag)}`);
    }
  }

  /** SMFIC_ABORT (no reply). */
  abort(): void {
    this.send({ type: 'abort' });
  }

  unknown(line: string): Promise<StepReply> {
    return this.step('unknown', { type: 'unknown', line });
  }

  /** SMFIC_QUIT_NC: end the SMTP session but keep the connection; the next command is connect. */
  quitNewConnection(): void {
    this.send({ type: 'quitNewConnection' });
  }

  /** SMFIC_QUIT, then wait (bounded by timeoutMs) for the filter to close the connection. */
  async quit(): Promise<void> {
    if (!this.isClosed && !this.failure) {
      this.stream.write(encodeCommand({ type: 'quit' }));
    }
    const timeout = this.settings.timeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([
      this.closedPromise.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeout);
      }),
    ]);
    if (timer) clearTimeout(timer);
    if (!closed) {
      this.stream.destroy();
      throw new MilterError('quit', `the filter did not close the connection within ${timeout} ms`);
    }
  }

  /** Drop the connection without quit (as Postfix does after a connection-level decision). */
  destroy(): void {
    this.stream.destroy();
  }

  /** Resolves when the connection is closed. */
  whenClosed(): Promise<void> {
    return this.closedPromise;
  }
}
