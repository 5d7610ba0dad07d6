import type { ConnectFamily } from './commands.js';
import { ProtocolFlags } from './constants.js';
import type { MacroStore } from './macros.js';
import type { Modifier } from './modifier.js';
import type { NegotiatedOptions } from './negotiation.js';
import type { SmtpReply } from './reply.js';

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
export type MaybePromise<T> = T | Promise<T>;

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
