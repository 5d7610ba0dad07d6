import { Buffer } from 'node:buffer';
import { canonicalizeHeader } from './canonicalization/header.js';
import type { Canonicalization } from './canonicalization/body.js';
import type { HeaderField } from './message.js';

const CRLF = Buffer.from('\r\n', 'latin1');

/**
 * Pick the fields named in h= (RFC 6376 §5.4.2): for each name, the lowest instance
 * not yet used, working upwards; a name listed more often than it occurs adds nothing
 * (which is what makes oversigning work).
 */
export function selectSignedFields(headers: readonly HeaderField[], names: readonly string[]): HeaderField[] {
  const byName = new Map<string, HeaderField[]>();
  for (const field of headers) {
    const key = field.name.toLowerCase();
    const list = byName.get(key);
    if (list) list.push(field);
    else byName.set(key, [field]);
  }
  const used = new Map<string, number>();
  const out: HeaderField[] = [];
  for (const name of names) {
    const key = name.toLowerCase();
    const list = byName.get(key);
    const n = used.get(key) ?? 0;
    used.set(key, n + 1);
    if (list && n < list.length) out.push(list[list.length - 1 - n] as HeaderField);
  }
  return out;
}

/**
 * The data the header signature covers: each selected field canonicalized and ended
 * with CRLF, then the signature field itself (with b= emptied) without its CRLF.
 */
export function headerHashInput(selected: readonly HeaderField[], signatureField: HeaderField, canonicalization: Canonicalization): Buffer {
  const parts: Buffer[] = [];
  for (const field of selected) parts.push(canonicalizeHeader(field, canonicalization), CRLF);
  parts.push(canonicalizeHeader(signatureField, canonicalization));
  return Buffer.concat(parts);
}
