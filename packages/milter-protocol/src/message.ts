import { type Bytes, toBuffer } from './wire.js';

/** A header field as an MTA passes it to a filter. */
export interface MessageHeader {
  name: string;
  /** Everything after the colon; folded lines joined with a bare LF. */
  value: Buffer;
}

export interface SplitMessage {
  headers: MessageHeader[];
  /** The body with CRLF line ends (a missing final line end added), as MTAs send it. */
  body: Buffer;
}

const LF = 0x0a;
const CR = 0x0d;

function isWsp(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09;
}

/** Bare LFs become CRLF; a non-empty body without a final line end gets one. */
export function toCrlf(body: Buffer): Buffer {
  if (body.length === 0) return body;
  const out: Buffer[] = [];
  let start = 0;
  for (let i = body.indexOf(LF); i !== -1; i = body.indexOf(LF, i + 1)) {
    if (i === 0 || body[i - 1] !== CR) {
      out.push(body.subarray(start, i), Buffer.from('\r\n'));
      start = i + 1;
    }
  }
  out.push(body.subarray(start));
  let result = out.length === 1 ? body : Buffer.concat(out);
  if (result[result.length - 1] !== LF) result = Buffer.concat([result, Buffer.from('\r\n')]);
  return result;
}

/**
 * Split a raw message (CRLF or LF line ends) the way Postfix presents it to a filter: header
 * fields with the value after the colon (leading space kept) and folds joined by LF, then
 * the body in CRLF form. A line that is neither a field nor a continuation ends the header.
 */
export function splitMessage(raw: Bytes): SplitMessage {
  const bytes = toBuffer(raw);
  const headers: MessageHeader[] = [];
  let current: { name: string; parts: Buffer[] } | undefined;
  const flush = () => {
    if (current) headers.push({ name: current.name, value: Buffer.concat(current.parts) });
    current = undefined;
  };
  let offset = 0;
  let bodyStart = bytes.length;
  while (offset < bytes.length) {
    const lf = bytes.indexOf(LF, offset);
    const end = lf === -1 ? bytes.length : lf;
    const next = lf === -1 ? bytes.length : lf + 1;
    const line = bytes.subarray(offset, end > offset && bytes[end - 1] === CR ? end - 1 : end);
    if (line.length === 0) {
      bodyStart = next;
      break;
    }
    if (isWsp(line[0]) && current) {
      current.parts.push(Buffer.from('\n'), line);
    } else {
      const colon = line.indexOf(0x3a);
      if (colon <= 0 || line.subarray(0, colon).some((b) => b <= 0x20 || b >= 0x7f)) {
        bodyStart = offset;
        break;
      }
      flush();
      current = { name: line.subarray(0, colon).toString('latin1'), parts: [line.subarray(colon + 1)] };
    }
    offset = next;
  }
  flush();
  return { headers, body: toCrlf(bytes.subarray(bodyStart)) };
}
