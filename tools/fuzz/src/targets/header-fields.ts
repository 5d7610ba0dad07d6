/**
 * Header field parsing: splitMessage and the streaming MessageParser (fed in input-derived
 * chunks) must agree and lose no byte; fields split at lines that do not start with WSP;
 * LineEndingNormalizer in chunks equals normalizeLineEndings; HeaderCollector keeps its
 * bounds; and dkim-core's parseMailboxList gives addr-specs or a reason for any field, which
 * milterd's fromAddress and DomainKeys' firstMailbox and determineSender follow.
 */
import { Buffer } from 'node:buffer';
import {
  DkimError,
  type HeaderField,
  MessageParser,
  headerValue,
  normalizeLineEndings,
  parseMailboxList,
  splitMessage,
} from '@inkan/dkim-core';
import { HeaderCollector, LineEndingNormalizer } from '@inkan/dkim-core/message';
import { determineSender, firstMailbox } from '@inkan/domainkeys-verify';
import { fromAddress } from '@inkan/milterd/internal';
import { type FuzzTarget, check, chunks, show, splitPoints } from '../target.js';

const CRLF = Buffer.from('\r\n', 'latin1');
const WSP = new Set([0x20, 0x09]);

interface Parsed {
  fields: HeaderField[];
  body: Buffer;
  endOfHeaders: number;
}

function parseStreaming(pieces: readonly Buffer[], maxHeaderBytes?: number): Parsed {
  const fields: HeaderField[] = [];
  const body: Buffer[] = [];
  let endOfHeaders = 0;
  const parser = new MessageParser(
    {
      header(field) {
        check(endOfHeaders === 0, 'a header field after the end of the header');
        fields.push({ name: field.name, raw: Buffer.from(field.raw) });
      },
      endOfHeaders() {
        endOfHeaders++;
      },
      body(chunk) {
        check(endOfHeaders === 1, 'body bytes before the end of the header');
        body.push(Buffer.from(chunk));
      },
    },
    maxHeaderBytes === undefined ? {} : { maxHeaderBytes },
  );
  for (const piece of pieces) parser.write(piece);
  parser.end();
  return { fields, body: Buffer.concat(body), endOfHeaders };
}

function checkFields(fields: readonly HeaderField[]): void {
  fields.forEach((f, i) => {
    check(f.raw.length > 0, 'an empty header field');
    if (i > 0) check(!WSP.has(f.raw[0] as number), () => `field ${i} starts with white space: ${show(f.raw)}`);
    for (let at = f.raw.indexOf(0x0a); at >= 0 && at < f.raw.length - 1; at = f.raw.indexOf(0x0a, at + 1)) {
      check(WSP.has(f.raw[at + 1] as number), () => `a line inside field ${show(f.raw)} does not start with white space`);
    }
    check(f.raw.toString('latin1').startsWith(f.name), () => `field name ${show(f.name)} is not the start of ${show(f.raw)}`);
    check(!f.name.includes(':'), () => `field name ${show(f.name)} holds a colon`);
    headerValue(f);
  });
}

function checkAddresses(fields: readonly HeaderField[]): void {
  for (const f of fields) {
    const raw = headerValue(f);
    const parsed = parseMailboxList(raw);
    const value = raw.toString('latin1');
    if (parsed.ok) {
      for (const m of parsed.mailboxes) {
        check(
          m.address === `${m.localPart}@${m.domain}` && m.localPart !== '' && m.domain !== '',
          () => `parseMailboxList gave ${show(m.address)}`,
        );
        // Whitespace only inside a quoted local part; never a line break. (Octets from 0x80, such
        // as 0xa0, are UTF-8 pieces, not the Unicode white space /\s/ would take them for.)
        check(
          !/[\r\n]/.test(m.address) && (m.localPart.startsWith('"') || !/[ \t]/.test(m.address)),
          () => `parseMailboxList gave ${show(m.address)}`,
        );
      }
    } else check(parsed.error.startsWith('not an address list: '), () => `parseMailboxList error ${show(parsed.error)}`);
    // milterd and DomainKeys read the first mailbox of the same parser.
    const first = parsed.ok ? parsed.mailboxes[0]?.address : undefined;
    check(fromAddress(value) === first?.toLowerCase(), () => `fromAddress disagrees with parseMailboxList on ${show(value)}`);
    check(firstMailbox(value) === first, () => `firstMailbox disagrees with parseMailboxList on ${show(value)}`);
  }
  const sender = determineSender(fields);
  check(sender === undefined || (sender.localPart !== '' && sender.domain !== ''), 'determineSender gave no local part or domain');
}

export const target: FuzzTarget = {
  name: 'header-fields',
  description: 'splitMessage, MessageParser, LineEndingNormalizer, HeaderCollector, From/Sender addresses',
  maxLength: 4096,
  dictionary: [
    '\r\n',
    '\n',
    '\r',
    '\r\n\r\n',
    '\r\n ',
    '\r\n\t',
    ': ',
    ':',
    'From: ',
    'Sender: ',
    'Subject: x',
    '<a@example.org>',
    '"Joe, x" <j@x>',
    '(comment)',
    '\\',
    ',',
    '@',
    ' ',
    'Team: ',
    ';',
    ':;',
    '[192.0.2.1]',
    '<@relay:',
  ],
  fuzz(data) {
    // In memory, whole.
    const split = splitMessage(data);
    checkFields(split.headers);
    const joined = Buffer.concat([...split.headers.map((f) => f.raw), ...(split.hasBody ? [CRLF, split.body] : [])]);
    check(joined.equals(data), () => `splitMessage lost or added bytes: ${show(joined)}`);

    // Streamed, in chunks: the same fields and body.
    const sizes = splitPoints(data, data.length, 48);
    const streamed = parseStreaming(chunks(data, sizes));
    check(streamed.endOfHeaders === 1, () => `endOfHeaders came ${streamed.endOfHeaders} times`);
    check(
      streamed.fields.length === split.headers.length,
      () => `MessageParser found ${streamed.fields.length} fields, splitMessage ${split.headers.length}`,
    );
    streamed.fields.forEach((f, i) => {
      const g = split.headers[i] as HeaderField;
      check(f.name === g.name && f.raw.equals(g.raw), () => `field ${i}: MessageParser ${show(f.raw)}, splitMessage ${show(g.raw)}`);
    });
    check(streamed.body.equals(split.body), () => `MessageParser body ${show(streamed.body)}, splitMessage ${show(split.body)}`);

    // With a small header limit: the same result, or the documented error.
    try {
      const limited = parseStreaming(chunks(data, sizes), 64);
      check(limited.fields.length === split.headers.length, 'a header limit changed the fields it let through');
    } catch (error) {
      check(error instanceof DkimError && error.code === 'MESSAGE_TOO_LARGE', () => `MessageParser threw ${show(String(error))}`);
      check(data.length > 64, 'MessageParser refused a header under its limit');
    }

    // Line endings: chunks or whole, the same; no bare LF left; only CRs added.
    const normalized = normalizeLineEndings(data);
    const normalizer = new LineEndingNormalizer();
    const pieces = chunks(data, sizes).map((c) => Buffer.from(normalizer.push(c)));
    check(Buffer.concat(pieces).equals(normalized), 'LineEndingNormalizer in chunks differs from normalizeLineEndings');
    const text = normalized.toString('latin1');
    check(!/(^|[^\r])\n/.test(text), 'normalizeLineEndings left a bare LF');
    check(
      text.replace(/\r\n/g, '\n').length === data.toString('latin1').replace(/\r\n/g, '\n').length,
      'normalizeLineEndings changed more than line ends',
    );

    const collector = new HeaderCollector({ maxHeaderFields: 5, maxHeaderBytes: 200 });
    for (const f of split.headers) collector.add(f);
    check(collector.fields.length <= 5, 'HeaderCollector kept more fields than allowed');
    check(collector.fields.reduce((n, f) => n + f.raw.length, 0) <= 200, 'HeaderCollector kept more bytes than allowed');
    check(
      (collector.overLimit !== undefined) === collector.fields.length < split.headers.length,
      'HeaderCollector dropped fields without saying why',
    );

    checkAddresses(split.headers);
  },
};
