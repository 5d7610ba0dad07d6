/**
 * Slow, obviously correct canonicalizations to compare the streaming ones against: the one
 * test oracle for dkim-core's and domainkeys-verify's tests and for the fuzz targets
 * (exported as `canonicalizationReference`). They
 * work on latin1 strings (one character per byte), whole messages at a time, and follow
 * the RFC text step by step: split the body into lines at CRLF, change each line, drop
 * the empty lines at the end, join again. No state, no chunks, no fast paths.
 *
 * A "line" ends at CRLF only: a CR or LF on its own is an ordinary character (RFC 6376
 * §3.4; RFC 4870 nofws removes them, see below).
 */

const CRLF = '\r\n';

/** The lines of a body: the CRLF-terminated ones, and the unterminated rest ('' when none). */
function lines(body: string): { complete: string[]; rest: string } {
  const parts = body.split(CRLF);
  const rest = parts.pop() as string;
  return { complete: parts, rest };
}

function dropTrailingEmpty(list: string[]): string[] {
  const out = [...list];
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}

/**
 * RFC 6376 §3.4.3 simple body: empty lines at the end are ignored; a body that is empty or
 * does not end in CRLF gets one (so an empty body becomes one CRLF).
 */
export function simpleBody(body: string): string {
  const { complete, rest } = lines(body);
  const all = rest === '' ? complete : [...complete, rest];
  const kept = dropTrailingEmpty(all);
  return kept.length === 0 ? CRLF : kept.map((l) => l + CRLF).join('');
}

/**
 * RFC 6376 §3.4.4 relaxed body: whitespace (SP, HTAB) at the end of each line is ignored,
 * other runs of it become one SP; empty lines at the end are ignored; a non-empty body
 * without a final CRLF gets one; an empty body stays empty.
 */
export function relaxedBody(body: string): string {
  const { complete, rest } = lines(body);
  const all = rest === '' ? complete : [...complete, rest];
  const reduced = all.map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  return dropTrailingEmpty(reduced)
    .map((l) => l + CRLF)
    .join('');
}

/** A field name as RFC 5322 allows it: printable US-ASCII except ":". */
export const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * RFC 6376 §3.4.2 relaxed header, for one field given with its line end removed: name in
 * lowercase (ASCII letters), unfolded (every CRLF removed), runs of WSP to one SP, WSP
 * removed at the end of the value and around the colon. Only for fields whose name is a
 * proper field name (optionally followed by WSP before the colon).
 */
export function relaxedHeader(field: string): string {
  const colon = field.indexOf(':');
  const name = (colon < 0 ? field : field.slice(0, colon)).replace(/[ \t]+$/, '');
  const value = colon < 0 ? '' : field.slice(colon + 1);
  const lowerName = name.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const unfolded = value.split(CRLF).join('');
  return `${lowerName}:${unfolded
    .replace(/[ \t]+/g, ' ')
    .replace(/^ /, '')
    .replace(/ $/, '')}`;
}

/** RFC 6376 §3.4.1 simple header: the field as it is, without its line end. */
export function simpleHeader(field: string): string {
  return field;
}

/**
 * RFC 4870 §3.4.2.1 simple, for what follows the header fields (the separator line, then
 * the body): unchanged, except that empty lines (exactly CRLF) at the end are dropped. An
 * unterminated last line is content, passed without a CRLF.
 */
export function domainKeysSimpleBody(body: string): string {
  const { complete, rest } = lines(CRLF + body);
  const kept = rest === '' ? dropTrailingEmpty(complete) : complete;
  return kept.map((l) => l + CRLF).join('') + rest;
}

/**
 * RFC 4870 §3.4.2.2 nofws, for what follows the header fields: every SP and HTAB removed
 * first; then lines end at CRLF, and any other CR or LF is removed; lines left empty at
 * the end are dropped; an unterminated last line keeps no CRLF.
 */
export function domainKeysNofwsBody(body: string): string {
  const { complete, rest } = lines(CRLF + body.replace(/[ \t]/g, ''));
  const clean = (l: string) => l.replace(/[\r\n]/g, '');
  const tail = clean(rest);
  const kept = tail === '' ? dropTrailingEmpty(complete.map(clean)) : complete.map(clean);
  return kept.map((l) => l + CRLF).join('') + tail;
}

/** RFC 4870 nofws for one header field: every SP, HTAB, CR and LF removed, then CRLF. */
export function domainKeysNofwsHeader(rawField: string): string {
  return `${rawField.replace(/[ \t\r\n]/g, '')}${CRLF}`;
}

/** RFC 4870 simple for one header field: as received, ending in CRLF. */
export function domainKeysSimpleHeader(rawField: string): string {
  return rawField.endsWith(CRLF) ? rawField : rawField + CRLF;
}
