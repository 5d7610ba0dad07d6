/**
 * The soak's final destination: an SMTP server on a loopback address that hands every
 * message to a callback as it arrives and keeps nothing itself, so 20,000 messages (some
 * of 1 MiB) cost no memory here. Postfix relays to it; it says 250 to everything well formed.
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface SinkMessage {
  sender: string;
  recipients: string[];
  /** The DATA bytes, dot-unstuffed, ending in CRLF. */
  data: Buffer;
}

export interface Sink {
  host: string;
  port: number;
  /** Messages taken so far. */
  readonly received: number;
  /** Connections open now. */
  readonly connections: number;
  stop(): Promise<void>;
}

const END = Buffer.from('\r\n.\r\n');
const VIRTUAL_CRLF = Buffer.from('\r\n');
const MAX_LINE = 4096;
const MAX_MESSAGE = 64 * 1024 * 1024;

function address(arg: string): string {
  const m = /<([^>]*)>/.exec(arg);
  return (m ? (m[1] as string) : (arg.trim().split(/\s+/)[0] ?? '')).trim();
}

/** Undo dot-stuffing: a dot at the start of a line that begins with two loses one. */
function unstuff(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  if (raw[0] === 0x2e) from = 1;
  const needle = Buffer.from('\r\n.');
  for (let at = raw.indexOf(needle, from); at !== -1; at = raw.indexOf(needle, at + 3)) {
    parts.push(raw.subarray(from, at + 2));
    from = at + 3;
  }
  parts.push(raw.subarray(from));
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/** Listen on host:port (0: any free port) and pass each message to `onMessage`. */
export async function startSink(host: string, port: number, onMessage: (m: SinkMessage) => void): Promise<Sink> {
  let received = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending: Buffer = Buffer.alloc(0);
    let inData = false;
    let data: Buffer[] = [];
    let dataBytes = 0;
    let tail = VIRTUAL_CRLF;
    let sender = '';
    let recipients: string[] = [];
    const reply = (text: string) => {
      if (!socket.destroyed) socket.write(`${text}\r\n`);
    };
    socket.write('220 inkan-soak-sink ESMTP\r\n');

    /**
     * In DATA: look for CRLF.CRLF in the stream, which starts with a virtual CRLF (the line
     * ending before the first data line), so `tail` holds its last 4 bytes. Returns what follows
     * the terminator, or undefined while the message goes on.
     */
    const takeData = (chunk: Buffer): Buffer | undefined => {
      const window = Buffer.concat([tail, chunk]);
      const at = window.indexOf(END);
      if (at === -1) {
        data.push(chunk);
        dataBytes += chunk.length;
        tail = window.subarray(Math.max(0, window.length - 4));
        if (dataBytes > MAX_MESSAGE) {
          reply('552 5.3.4 Message too big');
          socket.destroy();
        }
        return undefined;
      }
      // The message ends after the terminator's first CRLF: `end` bytes into this chunk, or
      // (when negative) that many bytes back into what was taken already.
      const end = at + 2 - tail.length;
      if (end >= 0) data.push(chunk.subarray(0, end));
      else {
        let cut = -end;
        for (let guard = 0; cut > 0 && data.length > 0 && guard < 4; guard++) {
          const last = data.pop() as Buffer;
          if (last.length > cut) {
            data.push(last.subarray(0, last.length - cut));
            cut = 0;
          } else cut -= last.length;
        }
      }
      const raw = Buffer.concat(data);
      const rest = chunk.subarray(at + END.length - tail.length);
      data = [];
      dataBytes = 0;
      tail = VIRTUAL_CRLF;
      inData = false;
      received++;
      const message: SinkMessage = { sender, recipients, data: unstuff(raw) };
      sender = '';
      recipients = [];
      try {
        onMessage(message);
        reply(`250 2.0.0 Ok: queued as SOAK${received}`);
      } catch {
        reply('451 4.3.0 Sink could not take the message');
      }
      return rest;
    };

    const onCommand = (line: string) => {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') reply('250-inkan-soak-sink\r\n250-8BITMIME\r\n250 SIZE 67108864');
      else if (verb === 'HELO') reply('250 inkan-soak-sink');
      else if (verb === 'MAIL') {
        sender = address(line.slice(line.indexOf(':') + 1));
        recipients = [];
        reply('250 2.1.0 Ok');
      } else if (verb === 'RCPT') {
        recipients.push(address(line.slice(line.indexOf(':') + 1)));
        reply('250 2.1.5 Ok');
      } else if (verb === 'DATA') {
        if (recipients.length === 0) reply('503 5.5.1 No recipients');
        else {
          inData = true;
          data = [];
          dataBytes = 0;
          tail = VIRTUAL_CRLF;
          reply('354 End data with <CR><LF>.<CR><LF>');
        }
      } else if (verb === 'RSET') {
        sender = '';
        recipients = [];
        reply('250 2.0.0 Ok');
      } else if (verb === 'NOOP') reply('250 2.0.0 Ok');
      else if (verb === 'QUIT') {
        reply('221 2.0.0 Bye');
        socket.end();
      } else reply('502 5.5.2 Command not recognized');
    };

    socket.on('data', (chunk: Buffer) => {
      let input: Buffer | undefined = chunk;
      // Each pass either finishes a message or consumes command lines; bounded by the input.
      for (let guard = 0; input && input.length > 0 && guard < 10_000; guard++) {
        if (inData) {
          input = takeData(input);
          continue;
        }
        pending = pending.length === 0 ? input : Buffer.concat([pending, input]);
        input = undefined;
        for (let eol = pending.indexOf('\r\n'); eol !== -1 && !inData; eol = pending.indexOf('\r\n')) {
          onCommand(pending.subarray(0, eol).toString('latin1'));
          pending = pending.subarray(eol + 2);
        }
        if (inData) {
          input = pending;
          pending = Buffer.alloc(0);
        } else if (pending.length > MAX_LINE) {
          reply('500 5.5.2 Line too long');
          socket.destroy();
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  return {
    host,
    port: typeof bound === 'object' && bound ? bound.port : port,
    get received() {
      return received;
    },
    get connections() {
      return sockets.size;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
