/**
 * A plain SMTP client for the soak: one connection from a chosen loopback source address
 * (so the milter sees an internal or an outside client), several messages per session
 * (EHLO once, then MAIL, RCPT, DATA for each, RSET after a refusal, QUIT). Every wait is
 * bounded.
 */
import { connect, type Socket } from 'node:net';

export interface Reply {
  code: number;
  text: string;
}

const CRLF_DOT = Buffer.from('\r\n.');

/** The DATA payload: dots at line starts doubled, CRLF at the end, then the final dot. */
export function dotStuff(message: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  if (message[0] === 0x2e) {
    parts.push(Buffer.from('.'));
  }
  for (let at = message.indexOf(CRLF_DOT); at !== -1; at = message.indexOf(CRLF_DOT, at + 3)) {
    parts.push(message.subarray(from, at + 3), Buffer.from('.'));
    from = at + 3;
  }
  parts.push(message.subarray(from));
  if (!(message.length >= 2 && message[message.length - 2] === 0x0d && message[message.length - 1] === 0x0a)) parts.push(Buffer.from('\r\n'));
  parts.push(Buffer.from('.\r\n'));
  return Buffer.concat(parts);
}

export class SmtpSession {
  private buffer = '';
  private lines: string[] = [];
  private readonly replies: Reply[] = [];
  private waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private failure: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly replyTimeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('the SMTP server closed the connection')));
  }

  /** Connect from `localAddress`, read the banner, say EHLO. */
  static async open(options: { host: string; port: number; localAddress: string; helo: string; replyTimeoutMs: number }): Promise<SmtpSession> {
    const socket = connect({ host: options.host, port: options.port, localAddress: options.localAddress });
    socket.setNoDelay(true);
    const session = new SmtpSession(socket, options.replyTimeoutMs);
    try {
      const banner = await session.read();
      if (banner.code !== 220) throw new Error(`banner: ${banner.code} ${banner.text}`);
      const ehlo = await session.command(`EHLO ${options.helo}`);
      if (ehlo.code !== 250) throw new Error(`EHLO: ${ehlo.code} ${ehlo.text}`);
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
      this.lines.push(line.slice(4));
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply = { code: Number(line.slice(0, 3)), text: this.lines.join('\n') };
        this.lines = [];
        const w = this.waiter;
        if (w) {
          this.waiter = undefined;
          clearTimeout(w.timer);
          w.resolve(reply);
        } else this.replies.push(reply);
      }
      if (this.lines.length > 100) this.fail(new Error('a reply of more than 100 lines'));
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

  private read(): Promise<Reply> {
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

  private command(line: string | Buffer): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    this.socket.write(typeof line === 'string' ? `${line}\r\n` : line);
    return this.read();
  }

  /**
   * One message. Returns the reply that decided it: the end-of-data reply when DATA was
   * sent, otherwise the refusal (after which the session is reset for the next message).
   */
  async send(from: string, to: string, message: Buffer): Promise<Reply> {
    const mail = await this.command(`MAIL FROM:<${from}> SIZE=${message.length}`);
    if (mail.code !== 250) return this.refused(mail);
    const rcpt = await this.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) return this.refused(rcpt);
    const data = await this.command('DATA');
    if (data.code !== 354) return this.refused(data);
    return this.command(dotStuff(message));
  }

  private async refused(reply: Reply): Promise<Reply> {
    await this.command('RSET');
    return reply;
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

  destroy(): void {
    this.socket.destroy();
  }
}
