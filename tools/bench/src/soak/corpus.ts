/**
 * The soak's mail: a seeded plan of SMTP sessions (internal submitters whose mail gets signed,
 * outside senders whose pre-signed mail gets verified) and the messages themselves, built on
 * demand so that 20,000 of them never sit in memory at once.
 */

/** What a message is and what must happen to it. */
export type Kind =
  /** From our domain, sent by an internal host: milterd must sign it. */
  | 'sign'
  /** From the outside domain, signed there: Authentication-Results dkim=pass. */
  | 'good'
  /** Signed outside, then changed in transit: dkim=fail. */
  | 'tampered'
  /** From the outside domain with no signature: dkim=none. */
  | 'unsigned';

export const KINDS: readonly Kind[] = ['sign', 'good', 'tampered', 'unsigned'];

export interface PlannedMessage {
  index: number;
  kind: Kind;
  /** Total size of the message as built (header and body), bytes. */
  size: number;
  /** For 'tampered': change the body or a signed header field after signing. */
  tamper?: 'body' | 'header';
  /** For externally signed mail: which key and canonicalization the outside domain uses. */
  selector?: 'rsa' | 'ed';
  canonicalization?: string;
}

export interface PlannedSession {
  /** Internal sessions come from the internal submitter's address, the others from outside. */
  internal: boolean;
  messages: PlannedMessage[];
}

/** A small seeded generator (mulberry32): the same seed gives the same soak. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** One of the choices, by weight. */
  pick<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((sum, [, w]) => sum + w, 0);
    let x = this.next() * total;
    for (const [value, weight] of choices) {
      x -= weight;
      if (x < 0) return value;
    }
    return (choices[choices.length - 1] as readonly [T, number])[0];
  }
}

export const MIN_SIZE = 1024;
export const MAX_SIZE = 1024 * 1024;

/**
 * Message sizes from 1 KiB to 1 MiB, mostly small: 75 % up to 8 KiB, 17 % up to 64 KiB,
 * 6 % up to 256 KiB, 2 % up to 1 MiB (log-uniform inside each band). Mean about 30 KiB.
 */
export function pickSize(random: Random): number {
  const [low, high] = random.pick<[number, number]>([
    [[MIN_SIZE, 8 * 1024], 75],
    [[8 * 1024, 64 * 1024], 17],
    [[64 * 1024, 256 * 1024], 6],
    [[256 * 1024, MAX_SIZE], 2],
  ]);
  const size = Math.round(Math.exp(Math.log(low) + random.next() * (Math.log(high) - Math.log(low))));
  return Math.min(MAX_SIZE, Math.max(MIN_SIZE, size));
}

/**
 * The whole run: sessions of 1 to 10 messages each, internal (signing) about 55 % of the
 * mail and outside (verifying) the rest; outside mail is 6 in 10 good, 3 in 10 tampered,
 * 1 in 10 unsigned. Exactly `count` messages, numbered 0..count-1 in plan order.
 */
export function planSessions(count: number, seed: number): PlannedSession[] {
  const random = new Random(seed);
  const sessions: PlannedSession[] = [];
  let index = 0;
  for (let guard = 0; index < count && guard < count; guard++) {
    const internal = random.next() < 0.55;
    const length = Math.min(random.int(1, 10), count - index);
    const messages: PlannedMessage[] = [];
    for (let i = 0; i < length; i++) {
      const size = pickSize(random);
      if (internal) {
        messages.push({ index: index++, kind: 'sign', size });
        continue;
      }
      const kind = random.pick<Kind>([
        ['good', 6],
        ['tampered', 3],
        ['unsigned', 1],
      ]);
      const m: PlannedMessage = { index: index++, kind, size };
      if (kind !== 'unsigned') {
        m.selector = random.next() < 0.7 ? 'rsa' : 'ed';
        m.canonicalization = random.pick<string>([
          ['relaxed/relaxed', 5],
          ['relaxed/simple', 2],
          ['simple/simple', 2],
          ['simple/relaxed', 1],
        ]);
      }
      if (kind === 'tampered') m.tamper = random.next() < 0.5 ? 'body' : 'header';
      messages.push(m);
    }
    sessions.push({ internal, messages });
  }
  return sessions;
}

const WORDS =
  'inkan seal mail filter signature domain selector header body canonical relaxed simple hash key record verify sign queue postfix milter daemon transit message soak memory descriptor socket loopback session delivery tempfail accept reject'.split(
    ' ',
  );

/**
 * Body text to cut messages from: CRLF lines of 0 to 200 characters (most under 78), with
 * the awkward cases mail has: lines starting with a dot (SMTP dot-stuffing), trailing spaces
 * and tabs, runs of inner white space, empty lines.
 */
export function bodyBlock(bytes: number, seed: number): { text: Buffer; lineStarts: number[] } {
  const random = new Random(seed ^ 0x5a5a5a5a);
  const lines: string[] = [];
  const lineStarts: number[] = [];
  let length = 0;
  while (length < bytes) {
    let line = '';
    const kind = random.next();
    if (kind < 0.05) line = '';
    else {
      const target = kind < 0.97 ? random.int(10, 76) : random.int(77, 200);
      while (line.length < target) line += `${WORDS[random.int(0, WORDS.length - 1)]}${random.next() < 0.04 ? '   ' : ' '}`;
      line = line.slice(0, target).trimEnd();
      if (random.next() < 0.03) line = `.${line}`;
      if (random.next() < 0.04) line += random.next() < 0.5 ? '  ' : '\t';
    }
    lineStarts.push(length);
    lines.push(line);
    length += line.length + 2;
  }
  return { text: Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1'), lineStarts };
}

export const OUR_DOMAIN = 'example.org';
export const OUTSIDE_DOMAIN = 'sender.example';

export function messageId(runId: string, index: number, internal: boolean): string {
  return `<soak-${runId}-${index}@${internal ? OUR_DOMAIN : OUTSIDE_DOMAIN}>`;
}

/** The index in a Message-ID of this run, or undefined for anything else. */
export function indexOfMessageId(runId: string, value: string): number | undefined {
  const m = /<soak-([a-z0-9]+)-(\d+)@[^>]+>/.exec(value);
  if (!m || m[1] !== runId) return undefined;
  return Number(m[2]);
}

/** The envelope and header addresses for a message. */
export function addresses(internal: boolean): { from: string; to: string } {
  return internal ? { from: `joe@${OUR_DOMAIN}`, to: 'suzie@example.net' } : { from: `alice@${OUTSIDE_DOMAIN}`, to: `bob@${OUR_DOMAIN}` };
}

/**
 * The message (before any outside signature): a header, then a body cut from `block` at a
 * line start chosen by the index, filled up to the planned size. CRLF line ends throughout.
 */
export function buildMessage(runId: string, m: PlannedMessage, block: { text: Buffer; lineStarts: number[] }): Buffer {
  const internal = m.kind === 'sign';
  const { from, to } = addresses(internal);
  const date = new Date(Date.UTC(2026, 10, 28, 5, 0, 0) + m.index * 1000).toUTCString().replace('GMT', '+0000');
  const header = Buffer.from(
    [
      `From: ${internal ? 'Joe' : 'Alice'} <${from}>`,
      `To: <${to}>`,
      `Subject: soak ${m.index} ${m.kind}`,
      `Date: ${date}`,
      `Message-ID: ${messageId(runId, m.index, internal)}`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      `Body of soak message ${m.index} (${m.kind}, ${m.size} bytes).`,
      '',
    ].join('\r\n'),
    'latin1',
  );
  let room = m.size - header.length;
  const parts: Buffer[] = [header];
  const starts = block.lineStarts;
  let at = starts[(m.index * 7919) % starts.length] as number;
  // The block is larger than any message, so this wraps at most once.
  for (let guard = 0; room > 0 && guard < 4; guard++) {
    const take = Math.min(room, block.text.length - at);
    let piece = block.text.subarray(at, at + take);
    if (take < block.text.length - at) {
      // end on a whole line: cut at the last CRLF in the piece (or add one)
      const eol = piece.lastIndexOf('\r\n');
      piece = eol > 0 ? piece.subarray(0, eol + 2) : Buffer.concat([piece.subarray(0, Math.max(0, take - 2)), Buffer.from('\r\n')]);
    }
    parts.push(piece);
    room -= piece.length;
    at = 0;
    if (piece.length === 0) break;
  }
  return Buffer.concat(parts);
}

/** Change a signed message in transit: one body byte, or the Subject. */
export function tamper(message: Buffer, how: 'body' | 'header'): Buffer {
  const text = message.toString('latin1');
  if (how === 'header') return Buffer.from(text.replace(/^Subject: soak /m, 'Subject: SOAK '), 'latin1');
  return Buffer.from(text.replace('\r\nBody of soak message', '\r\nBody of SOAK message'), 'latin1');
}
