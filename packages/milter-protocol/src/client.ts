import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ConnectFamily, type MacroPair, type MilterCommand, encodeCommand } from './commands.js';
import { ActionFlags, MILTER_VERSION, ProtocolFlags, describeActions } from './constants.js';
import { PacketDecoder } from './decoder.js';
import { MilterError, MilterProtocolError, errorMessage } from './errors.js';
import { splitMessage } from './message.js';
import { type EventStage, type NegotiatedOptions, type OptionOffer, acceptFilterReply, mtaOffer, sendsEvent, expectsReply } from './negotiation.js';
import { type FinalResponse, type MilterResponse, type Modification, decodeResponse, isFinalResponse, isModification } from './responses.js';
import { type SocketSpec, formatSocketSpec, toSocketSpec } from './socket-spec.js';
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
    const spec = toSocketSpec(target);
    const socket =
      spec.kind === 'unix'
        ? netConnect(spec.path)
        : netConnect({ host: spec.host === '0.0.0.0' ? '127.0.0.1' : spec.host === '::' ? '::1' : spec.host, port: spec.port, noDelay: true });
    const timeout = settings.connectTimeoutMs ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new MilterError('client', `cannot connect to ${formatSocketSpec(spec)}: no answer within ${timeout} ms`));
      }, timeout);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(new MilterError('client', `cannot connect to ${formatSocketSpec(spec)}: ${errorMessage(error)}`, { cause: error }));
      });
    });
    if (spec.kind !== 'unix') socket.setNoDelay(true);
    return MilterClient.over(socket, settings);
  }

  /** Negotiate over an already connected stream. */
  static async over(stream: Duplex, settings: MilterClientOptions = {}): Promise<MilterClient> {
    const version = settings.version ?? MILTER_VERSION;
    const base = mtaOffer(version);
    const offer: OptionOffer = { version, actions: settings.actions ?? base.actions, protocol: settings.protocol ?? base.protocol };
    const decoder = new PacketDecoder({ maxPacketSize: settings.maxPacketSize });
    const timeout = settings.timeoutMs ?? 30_000;
    const inbox: MilterResponse[] = [];
    const reply = await new Promise<MilterResponse>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        stream.off('data', onData);
        stream.off('close', onClose);
        stream.off('error', onError);
      };
      const onData = (chunk: Buffer) => {
        try {
          const packets = decoder.push(chunk);
          if (packets.length === 0) return;
          cleanup();
          const [first, ...rest] = packets.map(decodeResponse);
          inbox.push(...rest);
          resolve(first as MilterResponse);
        } catch (error) {
          cleanup();
          reject(error);
        }
      };
      const onClose = () => {
        cleanup();
        reject(new MilterError('negotiate', 'the filter closed the connection during negotiation'));
      };
      const onError = (error: Error) => {
        cleanup();
        reject(new MilterError('negotiate', `socket error: ${errorMessage(error)}`, { cause: error }));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new MilterError('negotiate', `no reply within ${timeout} ms`));
      }, timeout);
      stream.on('data', onData);
      stream.once('close', onClose);
      stream.once('error', onError);
      stream.write(encodeCommand({ type: 'negotiate', ...offer }));
    }).catch((error: unknown) => {
      stream.destroy();
      throw error;
    });
    if (reply.type !== 'negotiate') {
      stream.destroy();
      throw new MilterProtocolError('negotiate', `expected the negotiation reply, got ${reply.type}`);
    }
    let options: NegotiatedOptions;
    try {
      options = acceptFilterReply(offer, reply);
    } catch (error) {
      stream.destroy();
      throw error;
    }
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
      if (!isFinalResponse(response)) throw new MilterProtocolError(stage, `unexpected ${response.type} response (only allowed at end of message)`);
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
        else if (body) throw new MilterProtocolError('endOfMessage', `${response.type} after body replacement chunks (Postfix refuses them mixed)`);
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

/** One message for runTransaction. */
export interface Transaction {
  /** The SMTP client. Default localhost, inet, 127.0.0.1, port 0. */
  client?: { hostname?: string; family?: ConnectFamily; address?: string; port?: number };
  /** Default "localhost". */
  helo?: string;
  /** Envelope sender; angle brackets are added when missing (as in Postfix's SMTP path). */
  sender: string;
  senderArgs?: string[];
  recipients: Array<string | { address: string; args?: string[] }>;
  /** The raw message (header, blank line, body); split as Postfix does. */
  message: Bytes;
  /** Macros to send before a command, by its letter. */
  macros?: Partial<Record<'C' | 'H' | 'M' | 'R' | 'T' | 'N' | 'E', Record<string, string>>>;
}

export interface TransactionStep {
  stage: EventStage;
  reply: StepReply;
  /** For rcpt steps. */
  recipient?: string;
}

export interface TransactionResult {
  options: NegotiatedOptions;
  steps: TransactionStep[];
  /** Recipients the filter refused. */
  rejectedRecipients: string[];
  /** Present when the transaction reached end of message. */
  endOfMessage?: EndOfMessageResult;
  /** Where the filter's decision ended the transaction, and the decision (undefined: continue). */
  outcome: { stage: EventStage; reply: StepReply };
}

function bracket(address: string): string {
  return address.startsWith('<') ? address : `<${address}>`;
}

function decisive(reply: StepReply): boolean {
  return reply !== undefined && reply.type !== 'continue' && reply.type !== 'skip';
}

/**
 * Drive one full transaction (connect … end of message) like Postfix: stop at the first
 * decision that ends it, skip refused recipients, strip the one leading space of header values
 * unless SMFIP_HDR_LEADSPC was agreed. Opens and quits its own connection unless given a client.
 */
export async function runTransaction(
  target: SocketSpec | string | MilterClient,
  tx: Transaction,
  settings: MilterClientOptions = {},
): Promise<TransactionResult> {
  const own = !(target instanceof MilterClient);
  const client = target instanceof MilterClient ? target : await MilterClient.open(target, settings);
  const steps: TransactionStep[] = [];
  const rejectedRecipients: string[] = [];
  const macros = (letter: keyof NonNullable<Transaction['macros']>) => {
    const m = tx.macros?.[letter];
    if (m) client.macro(letter, m);
  };
  const run = async (stage: EventStage, action: () => Promise<StepReply>, recipient?: string): Promise<StepReply> => {
    const reply = await action();
    steps.push(recipient === undefined ? { stage, reply } : { stage, reply, recipient });
    return reply;
  };
  const result = (stage: EventStage, reply: StepReply, endOfMessage?: EndOfMessageResult): TransactionResult => {
    const r: TransactionResult = { options: client.options, steps, rejectedRecipients, outcome: { stage, reply } };
    if (endOfMessage) r.endOfMessage = endOfMessage;
    return r;
  };
  try {
    const c = tx.client ?? {};
    macros('C');
    let reply = await run('connect', () =>
      client.connect({ hostname: c.hostname ?? 'localhost', family: c.family ?? 'inet', address: c.address ?? '127.0.0.1', port: c.port ?? 0 }),
    );
    if (decisive(reply)) return result('connect', reply);
    macros('H');
    reply = await run('helo', () => client.helo(tx.helo ?? 'localhost'));
    if (decisive(reply)) return result('helo', reply);
    macros('M');
    reply = await run('mail', () => client.mail(bracket(tx.sender), tx.senderArgs ?? []));
    if (decisive(reply)) {
      client.abort();
      return result('mail', reply);
    }
    let accepted = 0;
    for (const r of tx.recipients) {
      const { address, args } = typeof r === 'string' ? { address: r, args: [] } : { address: r.address, args: r.args ?? [] };
      macros('R');
      reply = await run('rcpt', () => client.rcpt(bracket(address), args), address);
      if (reply && (reply.type === 'reject' || reply.type === 'tempfail' || reply.type === 'replyCode')) rejectedRecipients.push(address);
      else if (reply?.type === 'discard') {
        client.abort();
        return result('rcpt', reply);
      } else accepted += 1;
    }
    if (accepted === 0) {
      client.abort();
      return result('rcpt', reply);
    }
    macros('T');
    reply = await run('data', () => client.data());
    if (decisive(reply)) {
      client.abort();
      return result('data', reply);
    }
    const { headers, body } = splitMessage(tx.message);
    const leadingSpace = (client.options.protocol & ProtocolFlags.HeaderLeadingSpace) !== 0;
    for (const h of headers) {
      const value = !leadingSpace && h.value[0] === 0x20 ? h.value.subarray(1) : h.value;
      reply = await run('header', () => client.header(h.name, value));
      if (decisive(reply)) {
        client.abort();
        return result('header', reply);
      }
    }
    macros('N');
    reply = await run('endOfHeaders', () => client.endOfHeaders());
    if (decisive(reply)) {
      client.abort();
      return result('endOfHeaders', reply);
    }
    if (body.length > 0) {
      reply = await run('body', () => client.body(body));
      if (decisive(reply)) {
        client.abort();
        return result('body', reply);
      }
    }
    macros('E');
    const eom = await client.endOfMessage();
    steps.push({ stage: 'endOfMessage', reply: eom.reply });
    return result('endOfMessage', eom.reply, eom);
  } finally {
    if (own) await client.quit().catch(() => client.destroy());
  }
}
