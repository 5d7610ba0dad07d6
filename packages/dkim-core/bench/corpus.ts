import { Buffer } from 'node:buffer';

/**
 * A deterministic body of about `size` bytes shaped like real mail: a text part (words,
 * an occasional double space or trailing blank, a tab-indented line now and then), then,
 * for larger sizes, a base64 attachment in 76-character lines.
 */
export function textBody(size: number, seed = 1): Buffer {
  let x = seed;
  const rnd = () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x;
  };
  const words = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'dkim', 'inkan', 'seal', 'mail', 'body', 'canonical', 'x'];
  const out = Buffer.allocUnsafe(size + 200);
  let o = 0;
  const textPart = Math.min(size, 4096);
  while (o < textPart) {
    let line = rnd() % 25 === 0 ? '\t' : '';
    const n = 6 + (rnd() % 10);
    for (let i = 0; i < n; i++) line += `${words[rnd() % words.length]}${rnd() % 40 === 0 ? '  ' : ' '}`;
    line = line.trimEnd() + (rnd() % 12 === 0 ? ' ' : '');
    o += out.write(`${line}\r\n`, o, 'latin1');
  }
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  while (o < size) {
    let line = '';
    for (let i = 0; i < 76; i++) line += alphabet[rnd() % 64];
    o += out.write(`${line}\r\n`, o, 'latin1');
  }
  return out.subarray(0, o);
}

export const HEADER = Buffer.from(
  'From: Joe <joe@example.org>\r\nTo: Suzie <suzie@example.net>\r\nSubject: benchmark\r\n' +
    'Date: Sat, 28 Nov 2026 05:00:00 +0000\r\nMessage-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n' +
    'Content-Type: text/plain; charset=us-ascii\r\n\r\n',
  'latin1',
);

export function message(size: number): Buffer {
  return Buffer.concat([HEADER, textBody(size - HEADER.length)]);
}

/** Yield a message of `size` bytes as 64 KiB chunks without ever holding it whole. */
export async function* streamMessage(size: number, prefix: Buffer = Buffer.alloc(0)): AsyncGenerator<Buffer> {
  yield prefix;
  yield HEADER;
  const block = textBody(64 * 1024, 7);
  let left = size - HEADER.length;
  while (left > 0) {
    const n = Math.min(left, block.length);
    yield block.subarray(0, n);
    left -= n;
  }
}
