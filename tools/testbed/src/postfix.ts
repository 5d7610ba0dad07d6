import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { findProgram, freePort, runProgram, tempDir, waitFor } from './process.js';

/**
 * A private Postfix instance for tests: its own config, queue and data directories under a
 * temp dir, no chroot, smtpd on 127.0.0.1 at a free port, milters configurable, every
 * message relayed to an in-process SMTP sink that records it. Needs root (Postfix's master
 * runs as root) and the Debian package postfix. Nothing here reads outside the repository
 * and the temp dir; stop() takes everything down and removes the temp dir.
 */

/**
 * Why Postfix tests cannot run here, or undefined when they can. Under CI (CI=true) the
 * answer is always undefined: there the tests must run, and fail loudly if they cannot.
 */
export function postfixMissing(): string | undefined {
  if (process.env.CI === 'true') return undefined;
  if (!findProgram('postfix') || !findProgram('postconf')) return 'postfix is not installed (Debian package postfix)';
  if (process.getuid?.() !== 0) return 'a private Postfix instance needs root';
  if (!readUser('postfix')) return 'there is no postfix user';
  return undefined;
}

function readUser(name: string): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined && f[3] !== undefined) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    // no passwd file
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// SMTP sink

/** A message the sink received. */
export interface DeliveredMessage {
  /** 1-based arrival number. */
  id: number;
  /** The file holding the message (exactly the DATA bytes, dot-unstuffed). */
  file: string;
  helo: string;
  /** MAIL FROM address, without brackets. */
  sender: string;
  /** RCPT TO addresses, without brackets. */
  recipients: string[];
  data: Buffer;
}

export interface SmtpSink {
  host: string;
  port: number;
  /** Where the message files go. */
  dir: string;
  readonly messages: readonly DeliveredMessage[];
  /** Wait (bounded: tries × 50 ms) until at least `count` messages arrived; returns them all. */
  waitForMessages(count: number, tries?: number): Promise<DeliveredMessage[]>;
  stop(): Promise<void>;
}

function address(arg: string): string {
  const m = /<([^>]*)>/.exec(arg);
  return (m ? (m[1] as string) : (arg.split(/\s+/)[0] ?? '')).trim();
}

/** An SMTP server on 127.0.0.1 (free port) that accepts every message and records it. */
export async function startSmtpSink(options: { dir?: string } = {}): Promise<SmtpSink> {
  const dir = options.dir ?? tempDir('inkan-sink-');
  mkdirSync(dir, { recursive: true });
  const messages: DeliveredMessage[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending: Buffer = Buffer.alloc(0);
    let inData = false;
    let helo = '';
    let sender = '';
    let recipients: string[] = [];
    let parts: Buffer[] = [];
    const reply = (text: string) => {
      if (!socket.destroyed) socket.write(`${text}\r\n`);
    };
    const reset = () => {
      sender = '';
      recipients = [];
      parts = [];
    };
    socket.write('220 inkan-sink ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (let eol = pending.indexOf('\r\n'); eol !== -1; eol = pending.indexOf('\r\n')) {
        const line = pending.subarray(0, eol);
        pending = pending.subarray(eol + 2);
        if (inData) {
          if (line.length === 1 && line[0] === 0x2e) {
            inData = false;
            const id = messages.length + 1;
            const file = join(dir, `${String(id).padStart(4, '0')}.eml`);
            const data = Buffer.concat(parts);
            writeFileSync(file, data);
            messages.push({ id, file, helo, sender, recipients, data });
            reply(`250 2.0.0 Ok: queued as SINK${id}`);
            reset();
          } else {
            parts.push(line[0] === 0x2e ? line.subarray(1) : line, Buffer.from('\r\n'));
          }
          continue;
        }
        const text = line.toString('latin1');
        const verb = text.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') {
          helo = text.slice(5).trim();
          reply('250-inkan-sink\r\n250-8BITMIME\r\n250 SIZE 268435456');
        } else if (verb === 'HELO') {
          helo = text.slice(5).trim();
          reply('250 inkan-sink');
        } else if (verb === 'MAIL') {
          reset();
          sender = address(text.slice(text.indexOf(':') + 1));
          reply('250 2.1.0 Ok');
        } else if (verb === 'RCPT') {
          recipients.push(address(text.slice(text.indexOf(':') + 1)));
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
          socket.end();
        } else {
          reply('502 5.5.2 Command not recognized');
        }
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    host: '127.0.0.1',
    port,
    dir,
    messages,
    async waitForMessages(count, tries = 400) {
      await waitFor(() => messages.length >= count, `${count} message(s) at the SMTP sink (got ${messages.length})`, tries, 50);
      return [...messages];
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------
// SMTP client

export interface SmtpServerReply {
  code: number;
  lines: string[];
  /** The lines joined with "\n", without codes. */
  text: string;
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

export interface SmtpSendResult {
  banner: SmtpServerReply;
  mail: SmtpServerReply;
  rcpt: Array<{ address: string; reply: SmtpServerReply }>;
  accepted: string[];
  rejected: Array<{ address: string; reply: SmtpServerReply }>;
  /** The reply to the end of DATA, if DATA was sent. */
  data?: SmtpServerReply;
  /** From "250 ... queued as ID". */
  queueId?: string;
}

function crlfDotStuffed(data: Buffer | string): Buffer {
  const text = (typeof data === 'string' ? Buffer.from(data, 'latin1') : data).toString('latin1');
  let body = text.replace(/\r?\n/g, '\r\n');
  if (body.length > 0 && !body.endsWith('\r\n')) body += '\r\n';
  body = body.replace(/^\./gm, '..');
  return Buffer.from(`${body}.\r\n`, 'latin1');
}

/** Send one message over SMTP (EHLO, MAIL, RCPT each, DATA, QUIT) and report every reply. */
export async function sendSmtp(options: SmtpSendOptions): Promise<SmtpSendResult> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.timeoutMs ?? 30_000;
  const socket = connect({ host, port: options.port });
  let buffer = '';
  const replies: SmtpServerReply[] = [];
  let waiting: ((r: SmtpServerReply) => void) | undefined;
  let failure: Error | undefined;
  let failWaiting: ((e: Error) => void) | undefined;
  const fail = (error: Error) => {
    failure ??= error;
    failWaiting?.(failure);
  };
  const timer = setTimeout(() => {
    fail(new Error(`SMTP session with ${host}:${options.port} took longer than ${timeoutMs} ms`));
    socket.destroy();
  }, timeoutMs);
  let current: string[] = [];
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    for (let eol = buffer.indexOf('\r\n'); eol !== -1; eol = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, eol);
      buffer = buffer.slice(eol + 2);
      current.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply: SmtpServerReply = { code: Number(line.slice(0, 3)), lines: current, text: current.map((l) => l.slice(4)).join('\n') };
        current = [];
        if (waiting) {
          const w = waiting;
          waiting = undefined;
          w(reply);
        } else replies.push(reply);
      }
    }
  });
  socket.on('error', (error) => fail(error));
  socket.on('close', () => fail(new Error('the SMTP server closed the connection')));
  const read = (): Promise<SmtpServerReply> => {
    const queued = replies.shift();
    if (queued) return Promise.resolve(queued);
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      waiting = resolve;
      failWaiting = reject;
    });
  };
  const command = async (line: string | Buffer): Promise<SmtpServerReply> => {
    socket.write(typeof line === 'string' ? `${line}\r\n` : line);
    return read();
  };
  try {
    const banner = await read();
    await command(`EHLO ${options.helo ?? 'client.inkan.test'}`);
    const mail = await command(`MAIL FROM:<${options.from}>`);
    const result: SmtpSendResult = { banner, mail, rcpt: [], accepted: [], rejected: [] };
    if (mail.code >= 200 && mail.code < 300) {
      for (const address of options.to) {
        const reply = await command(`RCPT TO:<${address}>`);
        result.rcpt.push({ address, reply });
        if (reply.code >= 200 && reply.code < 300) result.accepted.push(address);
        else result.rejected.push({ address, reply });
      }
      if (result.accepted.length > 0) {
        const go = await command('DATA');
        if (go.code === 354) {
          result.data = await command(crlfDotStuffed(options.data));
          const id = /queued as ([A-Za-z0-9]+)/.exec(result.data.text);
          if (id) result.queueId = id[1];
        } else result.data = go;
      }
    }
    await command('QUIT').catch(() => undefined);
    return result;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------
// Postfix

export interface PostfixOptions {
  /** smtpd_milters, e.g. "inet:127.0.0.1:8891" or "unix:/tmp/x/milter.sock". Default none. */
  smtpdMilters?: string;
  /** non_smtpd_milters (sendmail(1), pickup). Default: the same as smtpdMilters. */
  nonSmtpdMilters?: string;
  /** milter_default_action. Default tempfail, so that a failing filter is visible. */
  milterDefaultAction?: 'accept' | 'reject' | 'tempfail' | 'quarantine';
  /** milter_protocol. Default 6. */
  milterProtocol?: string;
  /** More main.cf parameters (override the defaults). */
  mainCf?: Record<string, string>;
}

export interface PostfixInstance {
  /** The temp dir holding everything. */
  dir: string;
  /** config_directory, for `postfix -c`, `sendmail -C`, `postconf -c`. */
  configDir: string;
  /** smtpd's port on 127.0.0.1. */
  smtpPort: number;
  /** The unique myhostname of this instance (its banner shows it). */
  hostname: string;
  /** Postfix's mail_version. */
  version: string;
  /** Where every message ends up. */
  sink: SmtpSink;
  /** Send a message to this instance's smtpd. */
  sendSmtp(options: Omit<SmtpSendOptions, 'port' | 'host'>): Promise<SmtpSendResult>;
  /** Submit a message with this instance's sendmail(1): `sendmail -C dir -i -f from -- to...`. */
  sendmail(message: Buffer | string, options: { from: string; to: string[] }): Promise<{ code: number | null; stderr: string }>;
  /** Wait (bounded) until the sink holds at least `count` messages. */
  waitForDelivered(count: number, tries?: number): Promise<DeliveredMessage[]>;
  /** The instance's log so far. */
  maillog(): string;
  stop(): Promise<void>;
}

/** Live processes whose environment has MAIL_CONFIG=configDir: every process of one instance. */
function instanceProcesses(configDir: string): number[] {
  const needle = Buffer.from(`MAIL_CONFIG=${configDir}\0`);
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`).includes(needle) && pidAlive(Number(entry))) out.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // field 3 is the state; a zombie (Z) is gone for our purposes
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const MASTER_CF = `# service  type  private unpriv chroot wakeup maxproc command
127.0.0.1:SMTP_PORT inet n   -      n      -      -       smtpd
pickup     unix  n       -      n      60     1       pickup
cleanup    unix  n       -      n      -      0       cleanup
qmgr       unix  n       -      n      300    1       qmgr
rewrite    unix  -       -      n      -      -       trivial-rewrite
bounce     unix  -       -      n      -      0       bounce
defer      unix  -       -      n      -      0       bounce
trace      unix  -       -      n      -      0       bounce
verify     unix  -       -      n      -      1       verify
flush      unix  n       -      n      1000?  0       flush
proxymap   unix  -       -      n      -      -       proxymap
smtp       unix  -       -      n      -      -       smtp
relay      unix  -       -      n      -      -       smtp
showq      unix  n       -      n      -      -       showq
error      unix  -       -      n      -      -       error
retry      unix  -       -      n      -      -       error
discard    unix  -       -      n      -      -       discard
anvil      unix  -       -      n      -      1       anvil
scache     unix  -       -      n      -      1       scache
postlog    unix-dgram n  -      n      -      1       postlogd
`;

/**
 * Start a private Postfix on 127.0.0.1 (see the file comment). Its banner is checked for this
 * instance's unique host name, so a stray instance on the same port cannot be mistaken for it.
 */
export async function startPostfix(options: PostfixOptions = {}): Promise<PostfixInstance> {
  const missing = postfixMissing();
  if (missing) throw new Error(missing);
  const postfix = findProgram('postfix') as string;
  const postconf = findProgram('postconf') as string;
  const owner = readUser('postfix') as { uid: number; gid: number };
  const dir = tempDir('inkan-postfix-');
  chmodSync(dir, 0o755);
  const configDir = join(dir, 'conf');
  const queueDir = join(dir, 'spool');
  const dataDir = join(dir, 'data');
  const maillogFile = join(dir, 'maillog');
  for (const d of [configDir, queueDir, dataDir]) mkdirSync(d, { recursive: true });
  chownSync(dataDir, owner.uid, owner.gid);
  const sink = await startSmtpSink({ dir: join(dir, 'sink') });
  const smtpPort = await freePort();
  const id = dir.slice(dir.lastIndexOf('-') + 1).toLowerCase().replace(/[^a-z0-9]/g, 'x');
  const hostname = `mta-${id}.inkan.test`;
  const milters = options.smtpdMilters ?? '';
  const main: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: queueDir,
    data_directory: dataDir,
    maillog_file: maillogFile,
    maillog_file_prefixes: dir,
    syslog_name: `postfix-inkan-${id}`,
    myhostname: hostname,
    mydomain: 'inkan.test',
    myorigin: '$mydomain',
    mydestination: '',
    local_recipient_maps: '',
    relay_domains: '',
    alias_maps: '',
    alias_database: '',
    relayhost: `[127.0.0.1]:${sink.port}`,
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    smtpd_relay_restrictions: 'permit_mynetworks, reject',
    smtp_dns_support_level: 'disabled',
    biff: 'no',
    smtpd_milters: milters,
    non_smtpd_milters: options.nonSmtpdMilters ?? milters,
    milter_default_action: options.milterDefaultAction ?? 'tempfail',
    milter_protocol: options.milterProtocol ?? '6',
    ...options.mainCf,
  };
  writeFileSync(
    join(configDir, 'main.cf'),
    `${Object.entries(main)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`,
  );
  writeFileSync(join(configDir, 'master.cf'), MASTER_CF.replace('SMTP_PORT', String(smtpPort)));
  const maillog = () => (existsSync(maillogFile) ? readFileSync(maillogFile, 'utf8') : '');
  const masterPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(queueDir, 'pid', 'master.pid'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const pid = masterPid();
    if (pid !== undefined && pidAlive(pid)) {
      await runProgram(postfix, ['-c', configDir, 'stop'], { timeoutMs: 20_000 }).catch(() => undefined);
      try {
        await waitFor(() => !pidAlive(pid), `Postfix master ${pid} to exit`, 200, 50);
      } catch {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    // The master does not wait for its children; wait (bounded) until they are gone too.
    try {
      await waitFor(() => instanceProcesses(configDir).length === 0, 'Postfix processes to exit', 100, 50);
    } catch {
      for (const child of instanceProcesses(configDir)) {
        try {
          process.kill(child, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await sink.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  const version = (await runProgram(postconf, ['-c', configDir, '-h', 'mail_version'])).stdout.trim();
  const started = await runProgram(postfix, ['-c', configDir, 'start'], { timeoutMs: 60_000 });
  try {
    if (started.code !== 0) throw new Error(`postfix start exited with ${started.code}: ${started.stderr}`);
    await waitFor(
      async () => {
        const banner = await smtpBanner(smtpPort);
        if (!banner.includes(hostname)) throw new Error(`port ${smtpPort} answers with "${banner}", not this instance`);
        return true;
      },
      `Postfix smtpd on 127.0.0.1:${smtpPort}`,
      200,
      50,
    );
  } catch (error) {
    const log = maillog().split('\n').slice(-15).join('\n');
    await stop();
    throw new Error(`${(error as Error).message}\n--- maillog ---\n${log}`);
  }

  const sendmailPath = (await runProgram(postconf, ['-c', configDir, '-h', 'sendmail_path'])).stdout.trim() || '/usr/sbin/sendmail';
  return {
    dir,
    configDir,
    smtpPort,
    hostname,
    version,
    sink,
    sendSmtp: (o) => sendSmtp({ ...o, host: '127.0.0.1', port: smtpPort }),
    async sendmail(message, o) {
      const r = await runProgram(sendmailPath, ['-C', configDir, '-i', '-f', o.from, '--', ...o.to], { input: message, timeoutMs: 60_000 });
      return { code: r.code, stderr: r.stderr };
    },
    async waitForDelivered(count, tries = 400) {
      try {
        return await sink.waitForMessages(count, tries);
      } catch (error) {
        const log = maillog().split('\n').slice(-20).join('\n');
        throw new Error(`${(error as Error).message}\n--- maillog ---\n${log}`);
      }
    },
    maillog,
    stop,
  };
}

/** The first line a server sends on connect (bounded). */
export function smtpBanner(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no banner'));
    }, 2000);
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('\r\n')) {
        clearTimeout(timer);
        socket.end('QUIT\r\n');
        resolve(text.split('\r\n')[0] as string);
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
