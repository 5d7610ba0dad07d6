/**
 * The milter session state machine with inkan-milterd's real DKIM filter behind it: the
 * input is what an MTA sends on one connection, fed in input-derived reads to a
 * MilterServer over an in-memory stream pair, while a second connection stays open.
 *
 * Crashes: an exception that escapes the session or the filter (an "internal error" in the
 * session, "handler failed", or the filter's own internal-error log line), a session that
 * stalls or never closes, a reply the MTA could not decode, a handler closed other than
 * exactly once, or the other connection closed. A protocol error that closes this
 * connection is the documented outcome of bad bytes.
 */
import { Buffer } from 'node:buffer';
import { setImmediate as tick } from 'node:timers/promises';
import {
  type MilterServer,
  type MilterSession,
  PacketDecoder,
  ProtocolFlags,
  createMilterServer,
  decodeResponse,
  encodeCommand,
} from '@inkan/milter-protocol';
import { createFilter, MILTERD_NEGOTIATION } from '@inkan/milterd';
import { type End, pair, until } from '../connection.js';
import { AUTHSERV_ID, DOMAIN } from '../fixtures.js';
import { milterdRuntime } from '../milterd-runtime.js';
import { type FuzzTarget, check, chunks, splitPoints } from '../target.js';

const STALL_MS = 3000;

let server: MilterServer;
let bystander: { session: MilterSession; client: End; closed: boolean } | undefined;
/** Problems seen where throwing would not reach the fuzzer (handler wrappers, logs, events). */
const problems: string[] = [];
let handlersMade = 0;
let handlersClosed = 0;

/** Every reply the filter wrote must decode; returns the number of replies. */
function checkReplies(bytes: Buffer): number {
  const packets = new PacketDecoder().push(bytes);
  let total = 0;
  for (const p of packets) total += 5 + p.payload.length;
  check(total === bytes.length, () => `the filter wrote ${bytes.length - total} bytes that are not a whole packet`);
  for (const p of packets) decodeResponse(p);
  return packets.length;
}

export const target: FuzzTarget = {
  name: 'milter-session',
  description: 'MilterSession with the milterd DKIM filter, over an in-memory connection',
  maxLength: 4096,
  dictionary: [
    encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff }),
    encodeCommand({ type: 'negotiate', version: 2, actions: 0x0f, protocol: 0x7f }),
    encodeCommand({ type: 'connect', hostname: 'localhost', family: 'inet', port: 25, address: '127.0.0.1' }),
    encodeCommand({ type: 'connect', hostname: 'mx.example.net', family: 'inet6', port: 25, address: 'IPv6:2001:db8::1' }),
    encodeCommand({ type: 'connect', hostname: 'local', family: 'unix', port: 0, address: '/tmp/s' }),
    encodeCommand({ type: 'macro', command: 'M', macros: [['{auth_authen}', 'user']] }),
    encodeCommand({ type: 'macro', command: 'R', macros: [['{rcpt_mailer}', 'error']] }),
    encodeCommand({ type: 'helo', hostname: 'example.net' }),
    encodeCommand({ type: 'mail', sender: '<user@example.org>', args: [] }),
    encodeCommand({ type: 'rcpt', recipient: '<r@example.net>', args: [] }),
    encodeCommand({ type: 'data' }),
    encodeCommand({ type: 'header', name: 'From', value: Buffer.from(' User <user@example.org>') }),
    encodeCommand({ type: 'header', name: 'Subject', value: Buffer.from(' hello\n\tworld') }),
    encodeCommand({ type: 'header', name: 'Authentication-Results', value: Buffer.from(` ${AUTHSERV_ID}; dkim=pass`) }),
    encodeCommand({
      type: 'header',
      name: 'DKIM-Signature',
      value: Buffer.from(' v=1; a=ed25519-sha256; d=example.org; s=fuzz; h=from; bh=AAAA; b=AAAA'),
    }),
    encodeCommand({
      type: 'header',
      name: 'DomainKey-Signature',
      value: Buffer.from(' a=rsa-sha1; c=nofws; d=example.org; s=fuzz; b=AAAA'),
    }),
    encodeCommand({ type: 'endOfHeaders' }),
    encodeCommand({ type: 'body', chunk: Buffer.from('hello\r\n') }),
    encodeCommand({ type: 'endOfMessage', chunk: Buffer.alloc(0) }),
    encodeCommand({ type: 'abort' }),
    encodeCommand({ type: 'unknown', line: 'XYZZY' }),
    encodeCommand({ type: 'quitNewConnection' }),
    encodeCommand({ type: 'quit' }),
    '\x00\x00\x00',
    'v=1; ',
    'From',
    '\r\n',
    '\n\t',
  ],

  async setup() {
    // Error-level log lines are the filter's internal errors: every one is a problem.
    const current = milterdRuntime(
      `Mode sv\nDomain ${DOMAIN}\nAuthservID ${AUTHSERV_ID}\nOn-BadSignature reject\nOn-Security quarantine\nAlwaysAddARHeader yes\n`,
      (line) => problems.push(`the filter logged: ${line.slice(0, 400)}`),
    );
    const filter = createFilter(() => current);
    server = createMilterServer({
      handler: (ctx) => {
        const h = filter(ctx);
        handlersMade++;
        let closed = 0;
        return {
          ...h,
          close: async () => {
            if (++closed > 1) problems.push('a handler was closed twice');
            handlersClosed++;
          },
        };
      },
      // milterd's own negotiation, but a reply to every stage (the fuzzer's conversations expect them)
      ...MILTERD_NEGOTIATION,
      protocol: ProtocolFlags.HeaderLeadingSpace,
      idleTimeoutMs: 0,
      progressIntervalMs: 0,
    });
    server.on('sessionError', (error) => {
      if (/internal error|handler failed|factory failed/.test(error.message)) problems.push(`session error: ${error.message}`);
    });
    // The other connection: negotiated, then idle for the whole run.
    const [client, end] = pair();
    const session = server.handle(end, 'bystander');
    bystander = { session, client, closed: false };
    const b = bystander;
    void session.closed.then(() => {
      b.closed = true;
    });
    client.on('data', () => {});
    client.write(encodeCommand({ type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff }));
    await tick();
  },

  async teardown() {
    bystander?.client.destroy();
    await server.close();
  },

  async fuzz(data) {
    problems.length = 0;
    const madeBefore = handlersMade;
    const closedBefore = handlersClosed;
    const [client, end] = pair();
    const replies: Buffer[] = [];
    client.on('data', (b: Buffer) => replies.push(Buffer.from(b)));
    client.on('error', () => {});
    const session = server.handle(end, 'fuzz');
    let closed = false;
    void session.closed.then(() => {
      closed = true;
    });
    try {
      for (const piece of chunks(data, splitPoints(data, data.length, 512))) {
        if (closed) break;
        client.write(piece);
        await tick();
      }
      // Wait until every byte was read and every packet taken up (or the session ended).
      const settled = await until(() => closed || (session.bytesReceived === data.length && session.queuedPackets === 0), STALL_MS);
      check(
        settled,
        () => `the session stalled: ${session.bytesReceived} of ${data.length} bytes read, ${session.queuedPackets} packets queued`,
      );
      client.end();
      const ended = await until(() => closed, STALL_MS);
      check(ended, 'the session did not close after the MTA closed its end');
    } finally {
      client.destroy();
    }
    check(problems.length === 0, () => problems.join('\n'));
    checkReplies(Buffer.concat(replies));
    check(
      handlersClosed - closedBefore === handlersMade - madeBefore,
      () => `${handlersMade - madeBefore} handlers made, ${handlersClosed - closedBefore} closed`,
    );
    check(bystander !== undefined && !bystander.closed, 'the other connection was closed');
    check(server.sessionCount === 1, () => `${server.sessionCount} sessions open, expected only the other connection`);
  },
};
