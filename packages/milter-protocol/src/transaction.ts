import { type EndOfMessageResult, MilterClient, type MilterClientOptions, type StepReply } from './client.js';
import type { ConnectFamily } from './commands.js';
import { ProtocolFlags } from './constants.js';
import { splitMessage } from './message.js';
import type { EventStage, NegotiatedOptions } from './negotiation.js';
import type { SocketSpec } from './socket-spec.js';
import type { Bytes } from './wire.js';

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
      client.connect({
        hostname: c.hostname ?? 'localhost',
        family: c.family ?? 'inet',
        address: c.address ?? '127.0.0.1',
        port: c.port ?? 0,
      }),
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
