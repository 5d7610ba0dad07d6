import { connect, type Socket } from 'node:net';

/**
 * The one SMTP client of the tests and the soak: a session on one connection (optionally
 * from a chosen loopback source address, so that a milter sees an internal or an outside
 * client), EHLO once, then any number of transactions (MAIL, RCPT each, DATA), QUIT. The
 * message is bytes throughout: line ends made CRLF and dots stuffed on Buffers. Every wait
 * is bounded: each reply by `replyTimeoutMs`, and sendSmtp's whole session by its timeout.
 */

export interface SmtpServerReply {
  code: number;
  lines: string[];
  /** The lines joined with "\n", without codes. */
  text: string;
}

export interface SmtpSessionOptions {
  /** Default 127.0.0.1. */
  host?: string;
  port: number;
  /** The loopback source address to connect from. Default: the system's choice. */
  localAddress?: string;
  /** The name said in EHLO, default "client.inkan.test"; false: no EHLO (only the banner is read). */
  helo?: string | false;
  /** Bound on each reply. Default 30 s. */
  replyTimeoutMs?: number;
  /** Throw (and close) unless the banner is 220 and EHLO gets 250. Default true. */
  requireReady?: boolean;
}

export interface SmtpTransactionOptions {
  /** Make every line end CRLF before sending (toCrlf). Default true; false sends a CRLF message's bytes as they are. */
  crlf?: boolean;
  /** Add SIZE=<bytes> to MAIL FROM. Default false. */
  announceSize?: boolean;
  /** After a refusal before the message went (of MAIL, every RCPT, or DATA), say RSET so that the session can go on. Default false. */
  resetAfterRefusal?: boolean;
}

/** What one transaction got: every reply, and the recipients taken. */
export interface SmtpTransactionResult {
  mail: SmtpServerReply;
  rcpt: Array<{ address: string; reply: SmtpServerReply }>;
  accepted: string[];
  rejected: Array<{ address: string; reply: SmtpServerReply }>;
  /** The reply to the end of DATA, or to DATA itself when it was refused; absent when DATA was not sent. */
  data?: SmtpServerReply;
  /** From "250 ... queued as ID". */
  queueId?: string;
  /** The reply that decided it: the end of DATA when the data went, otherwise the refusal. */
  decided: SmtpServerReply;
}

const CRLF = Buffer.from('\r\n');
const CRLF_DOT = Buffer.from('\r\n.');

/** Every line end made CRLF: a bare LF gets its CR; a CR alone stays as it is. */
export function toCrlf(message: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  for (let lf = message.indexOf(0x0a); lf !== -1; lf = message.indexOf(0x0a, lf + 1)) {
    if (lf > 0 && message[lf - 1] === 0x0d) continue;
    parts.push(message.subarray(from, lf), CRLF);
    from = lf + 1;
  }
  if (parts.length === 0) return message;
  parts.push(message.subarray(from));
  return Buffer.concat(parts);
}

/** The DATA payload of a CRLF message: dots at line starts doubled, CRLF at the end (unless empty), then the final dot. */
export function dotStuff(message: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  if (message[0] === 0x2e) parts.push(Buffer.from('.'));
  for (let at = message.indexOf(CRLF_DOT); at !== -1; at = message.indexOf(CRLF_DOT, at + 3)) {
    parts.push(message.subarray(from, at + 3), Buffer.from('.'));
    from = at + 3;
  }
  parts.push(message.subarray(from));
  const ended = message.length >= 2 && message[message.length - 2] === 0x0d && message[message.length - 1] === 0x0a;
  if (message.length > 0 && !ended) parts.push(CRLF);
  parts.push(Buffer.from('.\r\n'));
  return Buffer.concat(parts);
}

const NO_REPLY: SmtpServerReply = { code: 0, lines: [], text: '' };

/** A reply of more lines than this ends the session (a server gone wrong). */
const MAX_REPLY_LINES = 100;

export class SmtpSession {
  private buffer = '';
  private lines: string[] = [];
  private readonly replies: SmtpServerReply[] = [];
  private waiter: { resolve: (r: SmtpServerReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private failure: Error | undefined;

  /** The server's greeting. */
  banner: SmtpServerReply = NO_REPLY;
  /** The reply to EHLO (none with helo: false). */
  ehlo: SmtpServerReply = NO_REPLY;

  private constructor(
    private readonly socket: Socket,
    private readonly replyTimeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('the SMTP server closed the connection')));
  }

  /** Connect, read the banner, say EHLO (see SmtpSessionOptions.requireReady). */
  static async open(options: SmtpSessionOptions): Promise<SmtpSession> {
    const host = options.host ?? '127.0.0.1';
    const socket = connect({ host, port: options.port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
    socket.setNoDelay(true);
    const session = new SmtpSession(socket, options.replyTimeoutMs ?? 30_000);
    try {
      session.banner = await session.read();
      const banner = session.banner;
      if (options.requireReady !== false && banner.code !== 220) throw new Error(`banner: ${banner.code} ${banner.text}`);
      if (options.helo === false) return session;
      session.ehlo = await session.command(`EHLO ${options.helo ?? 'client.inkan.test'}`);
      if (options.requireReady !== false && session.ehlo.code !== 250) throw new Error(`EHLO: ${session.ehlo.code} ${session.ehlo.text}`);
      return session;
    } catch (error) {
      socket.destroy();
      throw error;
    }
  }

  private onData(chunk: Buffer): void {
    this.buffer += chunk.toString('latin1');
    for (let eol = this.buffer.indexOf('\r\n'); eol !== -1; eol = this.buffer.indexOf('\r\n')) {
      const line = this.buffer.slice(0, eol);
      this.buffer = this.buffer.slice(eol + 2);
      this.lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply: SmtpServerReply = {
          code: Number(line.slice(0, 3)),
          lines: this.lines,
          text: this.lines.map((l) => l.slice(4)).join('\n'),
        };
        this.lines = [];
        const w = this.waiter;
        if (w) {
          this.waiter = undefined;
          clearTimeout(w.timer);
          w.resolve(reply);
        } else this.replies.push(reply);
      }
      if (this.lines.length > MAX_REPLY_LINES) this.fail(new Error(`a reply of more than ${MAX_REPLY_LINES} lines`));
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
  }

  private read(): Promise<SmtpServerReply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        const error = new Error(`no SMTP reply within ${this.replyTimeoutMs} ms`);
        this.failure ??= error;
        this.socket.destroy();
        reject(error);
      }, this.replyTimeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Send a command line (CRLF added) or raw bytes, and read the reply. */
  command(line: string | Buffer): Promise<SmtpServerReply> {
    if (this.failure) return Promise.reject(this.failure);
    this.socket.write(typeof line === 'string' ? `${line}\r\n` : line);
    return this.read();
  }

  /**
   * One transaction: MAIL, RCPT for each recipient, DATA when one was accepted, then the
   * message (line ends made CRLF unless told not to, dot-stuffed). Refusals are replies in the result, not errors.
   */
  async transaction(
    from: string,
    to: string | readonly string[],
    message: Buffer,
    options: SmtpTransactionOptions = {},
  ): Promise<SmtpTransactionResult> {
    const mail = await this.command(`MAIL FROM:<${from}>${options.announceSize ? ` SIZE=${message.length}` : ''}`);
    const result: SmtpTransactionResult = { mail, rcpt: [], accepted: [], rejected: [], decided: mail };
    let sent = false;
    if (mail.code >= 200 && mail.code < 300) {
      for (const address of typeof to === 'string' ? [to] : to) {
        const reply = await this.command(`RCPT TO:<${address}>`);
        result.rcpt.push({ address, reply });
        if (reply.code >= 200 && reply.code < 300) result.accepted.push(address);
        else result.rejected.push({ address, reply });
      }
      if (result.accepted.length > 0) {
        const go = await this.command('DATA');
        sent = go.code === 354;
        result.data = sent ? await this.command(dotStuff(options.crlf === false ? message : toCrlf(message))) : go;
        const id = /queued as ([A-Za-z0-9]+)/.exec(result.data.text);
        if (id) result.queueId = id[1];
      }
      result.decided = result.data ?? result.rejected[0]?.reply ?? mail;
    }
    if (options.resetAfterRefusal && !sent && result.decided.code !== 250) await this.command('RSET');
    return result;
  }

  /** QUIT (bounded) and close. */
  async close(): Promise<void> {
    try {
      if (!this.failure) await this.command('QUIT');
    } catch {
      // closing anyway
    } finally {
      this.socket.destroy();
    }
  }

  /** Close at once; a reply being waited for fails with `error`. */
  destroy(error?: Error): void {
    if (error) this.fail(error);
    this.socket.destroy();
  }
}

export interface SmtpSendOptions {
  host?: string;
  port: number;
  /** Default "client.inkan.test". */
  helo?: string;
  from: string;
  to: string[];
  /** The message (header, blank line, body); LF line ends become CRLF, dots are stuffed. */
  data: Buffer | string;
  /** Bound on the whole session. Default 30 s. */
  timeoutMs?: number;
}

export interface SmtpSendResult extends Omit<SmtpTransactionResult, 'decided'> {
  banner: SmtpServerReply;
}

/** Send one message over SMTP (EHLO, MAIL, RCPT each, DATA, QUIT) and report every reply. */
export async function sendSmtp(options: SmtpSendOptions): Promise<SmtpSendResult> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.timeoutMs ?? 30_000;
  const overall = new Error(`SMTP session with ${host}:${options.port} took longer than ${timeoutMs} ms`);
  let session: SmtpSession | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    session?.destroy(overall);
  }, timeoutMs);
  try {
    session = await SmtpSession.open({ host, port: options.port, helo: options.helo, replyTimeoutMs: timeoutMs, requireReady: false });
    if (timedOut) throw overall;
    const data = typeof options.data === 'string' ? Buffer.from(options.data, 'latin1') : options.data;
    const { mail, rcpt, accepted, rejected, data: end, queueId } = await session.transaction(options.from, options.to, data);
    await session.close();
    return { banner: session.banner, mail, rcpt, accepted, rejected, ...(end ? { data: end } : {}), ...(queueId ? { queueId } : {}) };
  } finally {
    clearTimeout(timer);
    session?.destroy();
  }
}
