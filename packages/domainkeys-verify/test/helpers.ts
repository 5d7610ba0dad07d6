import { Buffer } from 'node:buffer';
import type { HeaderField } from '@inkan/dkim-core';
import { parseHeaderFields } from '@inkan/dkim-core';

/** Lines joined with CRLF (and a final CRLF), as latin1 bytes. */
export function crlf(...lines: string[]): Buffer {
  return Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'latin1');
}

/** A plain test message from Joe at example.org (RFC 4870's own example, reworded). */
export function baseMessage(overrides: { from?: string; sender?: string; body?: string } = {}): Buffer {
  const head = [
    `From: ${overrides.from ?? 'Joe SixPack <joe@example.org>'}`,
    ...(overrides.sender ? [`Sender: ${overrides.sender}`] : []),
    'To: Suzie Q <suzie@example.net>',
    'Subject: Is dinner ready?',
    'Date: Fri, 11 Jul 2003 21:00:37 -0700',
    'Message-ID: <20030712040037.46341.5F8J@football.example.org>',
  ];
  const body = overrides.body ?? 'Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n';
  return Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`, 'latin1');
}

/** Header fields from header lines (each line one field unless it starts with whitespace). */
export function fields(...lines: string[]): HeaderField[] {
  return parseHeaderFields(crlf(...lines));
}

/** Feed `data` to `write` in pieces cut at the given offsets (sorted, deduplicated, clamped). */
export function splitAt(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(data.length, c))))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    parts.push(data.subarray(from, p));
    from = p;
  }
  parts.push(data.subarray(from));
  return parts;
}

/** An async iterable over chunks (a stand-in for a socket or file stream). */
export async function* chunks(parts: Buffer[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}
