import { Buffer } from 'node:buffer';
import { DkimError } from './errors.js';

/** One header field exactly as received: name, colon, value, folding and the final CRLF. */
export interface HeaderField {
  /** The field name as written (ASCII); compare case-insensitively. */
  name: string;
  /** The whole field as bytes, including its terminating CRLF when it had one. */
  raw: Buffer;
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/** Build a HeaderField from a name and value, the value's folding kept as given. */
export function makeHeaderField(name: string, value: string | Buffer): HeaderField {
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  const raw = Buffer.concat([Buffer.from(`${name}:`, 'latin1'), v, Buffer.from('\r\n', 'latin1')]);
  return { name, raw };
}

/** The bytes of a field after the first colon (folding and final CRLF included). */
export function headerValue(field: HeaderField): Buffer {
  const colon = field.raw.indexOf(COLON);
  return colon < 0 ? Buffer.alloc(0) : field.raw.subarray(colon + 1);
}

function fieldName(raw: Buffer): string {
  let end = raw.indexOf(COLON);
  if (end < 0) {
    end = raw.length;
    while (end > 0 && (raw[end - 1] === LF || raw[end - 1] === CR)) end--;
  }
  while (end > 0 && (raw[end - 1] === SP || raw[end - 1] === HTAB)) end--;
  return raw.toString('latin1', 0, end);
}

/**
 * Split a header block (the bytes before the empty line) into fields. A line that
 * starts with SP or HTAB continues the previous field.
 */
export function parseHeaderFields(block: Buffer): HeaderField[] {
  const fields: HeaderField[] = [];
  let pos = 0;
  const len = block.length;
  while (pos < len) {
    const start = pos;
    for (;;) {
      const nl = block.indexOf(LF, pos);
      pos = nl < 0 ? len : nl + 1;
      if (pos >= len) break;
      const next = block[pos];
      if (next !== SP && next !== HTAB) break;
    }
    const raw = block.subarray(start, pos);
    fields.push({ name: fieldName(raw), raw });
  }
  return fields;
}

/** A message split into its header fields and body; the body is a view, not a copy. */
export interface SplitMessage {
  headers: HeaderField[];
  body: Buffer;
  /** False when the message had no empty line, so no body at all. */
  hasBody: boolean;
}

/** Split a whole CRLF message held in memory. Tolerates a missing body and a missing empty line. */
export function splitMessage(message: Buffer): SplitMessage {
  let headerEnd: number;
  let bodyStart: number;
  if (message[0] === CR && message[1] === LF) {
    headerEnd = 0;
    bodyStart = 2;
  } else {
    const sep = message.indexOf(CRLFCRLF);
    if (sep < 0) return { headers: parseHeaderFields(message), body: Buffer.alloc(0), hasBody: false };
    headerEnd = sep + 2;
    bodyStart = sep + 4;
  }
  return {
    headers: parseHeaderFields(message.subarray(0, headerEnd)),
    body: message.subarray(bodyStart),
    hasBody: true,
  };
}

/**
 * Turn bare LF line endings into CRLF (for messages read from Unix files). CRLF stays
 * as it is; a lone CR is left alone. Returns the input itself when nothing changes.
 */
export function normalizeLineEndings(input: Buffer): Buffer {
  const normalizer = new LineEndingNormalizer();
  const out = normalizer.push(input);
  return out === input ? input : out;
}

/** Streaming form of normalizeLineEndings: keeps state across chunk boundaries. */
export class LineEndingNormalizer {
  private lastWasCR = false;

  push(chunk: Buffer): Buffer {
    let bare = 0;
    for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
      const prev = i === 0 ? (this.lastWasCR ? CR : -1) : chunk[i - 1];
      if (prev !== CR) bare++;
    }
    const last = chunk.length > 0 ? chunk[chunk.length - 1] === CR : this.lastWasCR;
    if (bare === 0) {
      this.lastWasCR = last;
      return chunk;
    }
    const out = Buffer.allocUnsafe(chunk.length + bare);
    let o = 0;
    let from = 0;
    for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
      const prev = i === 0 ? (this.lastWasCR ? CR : -1) : chunk[i - 1];
      if (prev === CR) continue;
      o += chunk.copy(out, o, from, i);
      out[o++] = CR;
      from = i;
    }
    o += chunk.copy(out, o, from);
    this.lastWasCR = last;
    return out.subarray(0, o);
  }
}

/** Receives a message as header fields, then body chunks, then the end. */
export interface MessageSink {
  header(field: HeaderField): void;
  endOfHeaders(): void;
  body(chunk: Buffer): void;
}

/**
 * How line endings of a raw message are taken. 'normalize': each bare LF becomes CRLF
 * before parsing (as normalizeLineEndings; a lone CR is left as it is), so a message from
 * a Unix file or nodemailer's LF output signs and verifies as it will travel. 'as-is': the
 * bytes exactly as given (an LF-only message then hashes differently from its CRLF form).
 */
export type LineEndings = 'normalize' | 'as-is';

export interface MessageParserOptions {
  /** Largest header section accepted, in bytes (default 1 MiB). */
  maxHeaderBytes?: number;
  /**
   * Line endings of the input (default 'as-is' here: the parser gives back every byte it
   * gets; signMessage and verifyMessage default to 'normalize').
   */
  lineEndings?: LineEndings;
}

export const DEFAULT_MAX_HEADER_BYTES = 1024 * 1024;

/**
 * The header fields of one message, as a verifier keeps them: bounded in count and bytes.
 * Past a limit, fields are dropped and `overLimit` says which limit (the caller then
 * reports its signatures as not verified).
 */
export class HeaderCollector {
  readonly fields: HeaderField[] = [];
  overLimit: string | undefined;
  private bytes = 0;
  private readonly maxFields: number;
  private readonly maxBytes: number;

  constructor(limits: { maxHeaderFields?: number; maxHeaderBytes?: number } = {}) {
    this.maxFields = limits.maxHeaderFields ?? 1000;
    this.maxBytes = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  }

  add(field: HeaderField): void {
    if (this.overLimit) return;
    this.bytes += field.raw.length;
    if (this.fields.length >= this.maxFields) this.overLimit = `more than ${this.maxFields} header fields`;
    else if (this.bytes > this.maxBytes) this.overLimit = `header section over ${this.maxBytes} bytes`;
    else this.fields.push(field);
  }
}

/**
 * Splits a byte stream into header fields and body chunks for a MessageSink. Only
 * the header section is buffered (up to maxHeaderBytes); body bytes pass straight
 * through as views of the input chunks.
 */
export class MessageParser {
  private readonly sink: MessageSink;
  private readonly maxHeaderBytes: number;
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Last bytes seen while still in the header, to find an empty line across chunks. */
  private tail: Buffer = Buffer.from('\r\n', 'latin1');
  private inBody = false;
  /** Set with lineEndings 'normalize': carries a chunk's final CR over to the next chunk. */
  private readonly normalizer: LineEndingNormalizer | undefined;

  constructor(sink: MessageSink, options: MessageParserOptions = {}) {
    this.sink = sink;
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    const lineEndings = options.lineEndings ?? 'as-is';
    if (lineEndings !== 'normalize' && lineEndings !== 'as-is') {
      throw new DkimError('INVALID_OPTION', `lineEndings must be 'normalize' or 'as-is': got "${String(lineEndings)}"`);
    }
    if (lineEndings === 'normalize') this.normalizer = new LineEndingNormalizer();
  }

  write(input: Buffer): void {
    // The normalizer copies a chunk only when it holds a bare LF, one chunk at a time.
    const chunk = this.normalizer ? this.normalizer.push(input) : input;
    if (chunk.length === 0) return;
    if (this.inBody) {
      this.sink.body(chunk);
      return;
    }
    // Position in chunk just after the CRLFCRLF that ends the header, or -1.
    let bodyStart = -1;
    const t = this.tail;
    const probe = Buffer.concat([t, chunk.subarray(0, 3)]);
    const k = probe.indexOf(CRLFCRLF);
    if (k >= 0) bodyStart = k + 4 - t.length;
    else {
      const j = chunk.indexOf(CRLFCRLF);
      if (j >= 0) bodyStart = j + 4;
    }
    if (bodyStart < 0) {
      this.hold(chunk);
      // probe is tail + chunk whenever the chunk is shorter than 3 bytes.
      this.tail = Buffer.from(chunk.length >= 3 ? chunk.subarray(chunk.length - 3) : probe.subarray(-3));
      return;
    }
    // The header ends two bytes before the body starts (its last CRLF is kept).
    const headerEndInChunk = bodyStart - 2;
    let block: Buffer;
    if (headerEndInChunk >= 0) {
      this.hold(chunk.subarray(0, headerEndInChunk));
      block = Buffer.concat(this.held, this.heldBytes);
    } else {
      block = Buffer.concat(this.held, this.heldBytes).subarray(0, this.heldBytes + headerEndInChunk);
    }
    this.finishHeader(block);
    this.inBody = true;
    if (bodyStart < chunk.length) this.sink.body(chunk.subarray(bodyStart));
  }

  /** Call once after the last chunk. A message without an empty line is all header. */
  end(): void {
    if (!this.inBody) {
      this.finishHeader(Buffer.concat(this.held, this.heldBytes));
      this.inBody = true;
    }
  }

  private hold(part: Buffer): void {
    if (part.length === 0) return;
    this.heldBytes += part.length;
    if (this.heldBytes > this.maxHeaderBytes) {
      throw new DkimError('MESSAGE_TOO_LARGE', `header section exceeds ${this.maxHeaderBytes} bytes`);
    }
    // Copy: the caller may reuse its buffers, and header bytes are few.
    this.held.push(Buffer.from(part));
  }

  private finishHeader(block: Buffer): void {
    this.held = [];
    this.heldBytes = 0;
    for (const field of parseHeaderFields(block)) this.sink.header(field);
    this.sink.endOfHeaders();
  }
}

export type MessageInput = Buffer | Uint8Array | AsyncIterable<Buffer | Uint8Array | string>;

/** Feed a whole message (a Buffer, or a Readable / async iterable of chunks) to a sink. */
export async function feedMessage(input: MessageInput, sink: MessageSink, options: MessageParserOptions = {}): Promise<void> {
  const parser = new MessageParser(sink, options);
  if (input instanceof Uint8Array) {
    const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    parser.write(buf);
    parser.end();
    return;
  }
  for await (const chunk of input) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    parser.write(buf);
  }
  parser.end();
}
