import { connect, createServer, type Server, type Socket } from 'node:net';

/** One message received by the sink: the DATA bytes, dot-unstuffed. */
export interface Received {
  from: string;
  to: string[];
  data: Buffer;
}

/** A throwaway SMTP server that accepts every message (for selftest). Bounded: 16 MiB per message. */
export class SmtpSink {
  readonly received: Received[] = [];
  private server: Server | undefined;
  private readonly waiters: (() => void)[] = [];

  async listen(host: string, port: number): Promise<number> {
    this.server = createServer((socket) => this.session(socket));
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address();
    return typeof address === 'object' && address ? address.port : port;
  }

  /** Wait for a message matching `test`, up to `timeoutMs`. */
  async waitFor(test: (r: Received) => boolean, timeoutMs: number): Promise<Received | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(test);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    const server = this.server;
    return server ? new Promise((resolve) => server.close(() => resolve())) : Promise.resolve();
  }

  private session(socket: Socket): void {
    let buffer = Buffer.alloc(0);
    let inData = false;
    let from = '';
    let to: string[] = [];
    const reply = (line: string) => socket.write(`${line}\r\n`);
    socket.setTimeout(60_000, () => socket.destroy());
    socket.on('error', () => {});
    reply('220 inkan-selftest ESMTP');
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.length > 16 * 1024 * 1024) return socket.destroy();
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          const atStart = buffer.subarray(0, 3).toString('latin1') === '.\r\n';
          if (end < 0 && !atStart) return;
          const data = atStart ? Buffer.alloc(0) : buffer.subarray(0, end + 2);
          buffer = buffer.subarray(atStart ? 3 : end + 5);
          inData = false;
          this.received.push({ from, to, data: Buffer.from(data.toString('latin1').replace(/^\.\./gm, '.'), 'latin1') });
          for (const w of this.waiters.splice(0)) w();
          reply('250 2.0.0 accepted by inkan selftest');
          continue;
        }
        const nl = buffer.indexOf('\r\n');
        if (nl < 0) return;
        const line = buffer.subarray(0, nl).toString('latin1');
        buffer = buffer.subarray(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') reply('250 inkan-selftest');
        else if (verb === 'MAIL') {
          from = /<([^>]*)>/.exec(line)?.[1] ?? '';
          to = [];
          reply('250 2.1.0 ok');
        } else if (verb === 'RCPT') {
          to.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          reply('250 2.1.5 ok');
        } else if (verb === 'DATA') {
          inData = true;
          reply('354 go ahead');
        } else if (verb === 'QUIT') {
          reply('221 2.0.0 bye');
          socket.end();
          return;
        } else if (verb === 'RSET' || verb === 'NOOP') reply('250 ok');
        else reply('502 5.5.2 not implemented');
      }
    });
  }
}

/** Send one message over SMTP; resolves with the final reply line, rejects on any non-2xx/3xx. */
export function sendMail(host: string, port: number, from: string, to: string, data: Buffer, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    const steps = [`EHLO inkan-selftest`, `MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, 'DATA', null, 'QUIT'];
    let buffer = '';
    let step = -1;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    let last = '';
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot talk to ${host}:${port}: ${e.message}`));
    });
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        const m = /^(\d{3}) .*\r\n/m.exec(buffer);
        if (!m) return;
        const replyLine = m[0].trim();
        buffer = buffer.slice((m.index ?? 0) + m[0].length);
        if (!/^[23]/.test(replyLine)) {
          clearTimeout(timer);
          socket.destroy();
          reject(new Error(`${host}:${port} answered "${replyLine}" to ${step < 0 ? 'the connection' : (steps[step] ?? 'the message')}`));
          return;
        }
        if (step === 4) last = replyLine;
        step++;
        if (step === 4) {
          const text = data.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
          socket.write(`${text}${text.endsWith('\r\n') ? '' : '\r\n'}.\r\n`, 'latin1');
        } else if (step < steps.length) socket.write(`${steps[step]}\r\n`);
        else {
          clearTimeout(timer);
          socket.end();
          resolve(last);
          return;
        }
      }
    });
  });
}
