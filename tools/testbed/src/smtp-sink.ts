import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, createServer, isIPv4 } from 'node:net';
import { join } from 'node:path';
import { tempDir, waitFor } from './process.js';

/**
 * The last hop of a test MTA: an SMTP server on a loopback address that says 250 to every
 * well-formed message. By default it records each message (in `messages` and as a file);
 * with `keep: false` it records nothing and only hands each message to `onMessage`, so a long
 * run (the soak: 20,000 messages, some of 1 MiB) costs no memory here. DATA is read as a
 * stream (the end found across chunks, dot-stuffing undone once per message), so large
 * messages are cheap; command lines and messages are bounded.
 */

/** A message the sink took. */
export interface SinkMessage {
  /** 1-based arrival number. */
  id: number;
  helo: string;
  /** MAIL FROM address, without brackets. */
  sender: string;
  /** RCPT TO addresses, without brackets. */
  recipients: string[];
  /** Exactly the DATA bytes, dot-unstuffed, ending in CRLF (unless empty). */
  data: Buffer;
}

/** A message the sink recorded. */
export interface DeliveredMessage extends SinkMessage {
  /** The file holding `data`. */
  file: string;
}

export interface SmtpSinkOptions {
  /** The address to listen on; loopback only. Default 127.0.0.1. */
  host?: string;
  /** Default: a free port chosen when listening. */
  port?: number;
  /**
   * Called with each message as it arrives, before the sink answers or records it; if it
   * throws, the client gets 451 and the message is neither counted nor recorded.
   */
  onMessage?(message: SinkMessage): void;
  /** Record each message in `messages` and as a file in `dir`. Default true. */
  keep?: boolean;
  /** Where the message files go (with keep). Default: a temp dir, removed by stop(). */
  dir?: string;
  /** The largest message taken (advertised as SIZE); a larger one gets 552 and the connection is closed. Default 256 MiB. */
  maxMessageBytes?: number;
}

export interface SmtpSink {
  host: string;
  port: number;
  /** Where the message files go ('' with keep: false). */
  dir: string;
  /** The messages recorded (always empty with keep: false). */
  readonly messages: readonly DeliveredMessage[];
  /** Messages taken so far (answered 250). */
  readonly received: number;
  /** Connections open now. */
  readonly connections: number;
  /** Wait (bounded: tries × 50 ms) until at least `count` messages were taken; returns those recorded. */
  waitForMessages(count: number, tries?: number): Promise<DeliveredMessage[]>;
  stop(): Promise<void>;
}

/** The end of DATA: a line holding a single dot. */
const END = Buffer.from('\r\n.\r\n');
/** The line end before the first DATA line, which the terminator of an empty message shares. */
const VIRTUAL_CRLF = Buffer.from('\r\n');
const STUFFED = Buffer.from('\r\n.');
const MAX_LINE = 4096;

function isLoopback(host: string): boolean {
  return (isIPv4(host) && host.startsWith('127.')) || host === '::1' || host === 'localhost';
}

function address(arg: string): string {
  const m = /<([^>]*)>/.exec(arg);
  return (m ? (m[1] as string) : (arg.trim().split(/\s+/)[0] ?? '')).trim();
}

/** Undo dot-stuffing: every line that starts with a dot loses that dot. */
function unstuff(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = raw[0] === 0x2e ? 1 : 0;
  for (let at = raw.indexOf(STUFFED, from); at !== -1; at = raw.indexOf(STUFFED, at + STUFFED.length)) {
    parts.push(raw.subarray(from, at + 2));
    from = at + STUFFED.length;
  }
  parts.push(raw.subarray(from));
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/** Start the sink (see the file comment). */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host)) throw new Error(`the SMTP sink listens on loopback only, not on ${host}`);
  const keep = options.keep ?? true;
  const maxMessage = options.maxMessageBytes ?? 256 * 1024 * 1024;
  const dir = keep ? (options.dir ?? tempDir('inkan-sink-')) : '';
  if (keep) mkdirSync(dir, { recursive: true });
  const messages: DeliveredMessage[] = [];
  let arrived = 0;
  let received = 0;
  const sockets = new Set<Socket>();

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending: Buffer = Buffer.alloc(0);
    let inData = false;
    /** After a reply that ends the session: whatever else comes is not read. */
    let closing = false;
    let helo = '';
    let sender = '';
    let recipients: string[] = [];
    let chunks: Buffer[] = [];
    let dataBytes = 0;
    /** The last bytes (at most 4) of the DATA stream so far, starting with the virtual CRLF. */
    let tail = VIRTUAL_CRLF;
    const reply = (text: string) => {
      if (!socket.destroyed) socket.write(`${text}\r\n`);
    };
    const reset = () => {
      sender = '';
      recipients = [];
    };
    const hangUp = () => {
      closing = true;
      socket.end();
    };

    /** Where the terminator starts, counted from the start of `chunk` (negative: in `tail`), if it is there. */
    const findEnd = (chunk: Buffer): number | undefined => {
      const edge = Buffer.concat([tail, chunk.subarray(0, END.length - 1)]);
      const across = edge.indexOf(END);
      if (across !== -1) return across - tail.length;
      const at = chunk.indexOf(END);
      return at === -1 ? undefined : at;
    };

    const endData = () => {
      inData = false;
      chunks = [];
      dataBytes = 0;
      tail = VIRTUAL_CRLF;
    };

    const tooBig = () => {
      endData();
      reset();
      reply('552 5.3.4 Message too big');
    };

    const finish = (raw: Buffer) => {
      endData();
      arrived++;
      const message: SinkMessage = { id: arrived, helo, sender, recipients, data: unstuff(raw) };
      reset();
      try {
        options.onMessage?.(message);
      } catch {
        reply('451 4.3.0 The sink could not take the message');
        return;
      }
      if (keep) {
        const file = join(dir, `${String(message.id).padStart(4, '0')}.eml`);
        writeFileSync(file, message.data);
        messages.push({ ...message, file });
      }
      received++;
      reply(`250 2.0.0 Ok: queued as SINK${message.id}`);
    };

    /** In DATA: take `chunk`; returns what follows the end of the message, or undefined while it goes on. */
    const takeData = (chunk: Buffer): Buffer | undefined => {
      const at = findEnd(chunk);
      if (at === undefined) {
        chunks.push(chunk);
        dataBytes += chunk.length;
        tail = Buffer.concat([tail, chunk.subarray(Math.max(0, chunk.length - 4))]);
        tail = tail.subarray(Math.max(0, tail.length - 4));
        if (dataBytes > maxMessage) {
          // the rest of it is not read: the session ends
          tooBig();
          hangUp();
        }
        return undefined;
      }
      // The message ends after the terminator's first CRLF: `end` bytes into this chunk or,
      // when negative, that many bytes before it (never into the virtual CRLF).
      const end = at + VIRTUAL_CRLF.length;
      if (end > 0) chunks.push(chunk.subarray(0, end));
      const whole = Buffer.concat(chunks);
      const raw = end < 0 ? whole.subarray(0, whole.length + end) : whole;
      if (raw.length > maxMessage) tooBig();
      else finish(raw);
      return chunk.subarray(at + END.length);
    };

    const onCommand = (line: string) => {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') {
        helo = line.slice(5).trim();
        reply(`250-inkan-sink\r\n250-8BITMIME\r\n250 SIZE ${maxMessage}`);
      } else if (verb === 'HELO') {
        helo = line.slice(5).trim();
        reply('250 inkan-sink');
      } else if (verb === 'MAIL') {
        reset();
        sender = address(line.slice(line.indexOf(':') + 1));
        reply('250 2.1.0 Ok');
      } else if (verb === 'RCPT') {
        recipients.push(address(line.slice(line.indexOf(':') + 1)));
        reply('250 2.1.5 Ok');
      } else if (verb === 'DATA') {
        if (recipients.length === 0) reply('503 5.5.1 No recipients');
        else {
          inData = true;
          reply('354 End data with <CR><LF>.<CR><LF>');
        }
      } else if (verb === 'RSET') {
        reset();
        reply('250 2.0.0 Ok');
      } else if (verb === 'NOOP') {
        reply('250 2.0.0 Ok');
      } else if (verb === 'QUIT') {
        reply('221 2.0.0 Bye');
        hangUp();
      } else {
        reply('502 5.5.2 Command not recognized');
      }
    };

    socket.write('220 inkan-sink ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      let input: Buffer | undefined = chunk;
      // Each pass ends a message or takes every command line there is: bounded by the input.
      for (let guard = 0; input && input.length > 0 && guard < 100_000 && !closing && !socket.destroyed; guard++) {
        if (inData) {
          input = takeData(input);
          continue;
        }
        pending = pending.length === 0 ? input : Buffer.concat([pending, input]);
        input = undefined;
        for (let eol = pending.indexOf('\r\n'); eol !== -1 && !inData && !closing; eol = pending.indexOf('\r\n')) {
          onCommand(pending.subarray(0, eol).toString('latin1'));
          pending = pending.subarray(eol + 2);
        }
        if (inData) {
          // what follows DATA is the message
          input = pending;
          pending = Buffer.alloc(0);
        } else if (pending.length > MAX_LINE) {
          reply('500 5.5.2 Line too long');
          hangUp();
        }
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  const stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (keep && !options.dir) rmSync(dir, { recursive: true, force: true });
  };
  return {
    host,
    port: typeof bound === 'object' && bound ? bound.port : (options.port ?? 0),
    dir,
    messages,
    get received() {
      return received;
    },
    get connections() {
      return sockets.size;
    },
    async waitForMessages(count, tries = 400) {
      try {
        await waitFor(() => received >= count, `${count} message(s) at the SMTP sink`, tries, 50);
      } catch (error) {
        throw new Error(`${(error as Error).message} (got ${received})`);
      }
      return [...messages];
    },
    stop,
  };
}
