import { Buffer } from 'node:buffer';
import type { HeaderField } from '../message.js';
import type { Canonicalization } from './body.js';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** Drop a final CRLF (or LF) from a field's raw bytes. */
export function withoutLineEnd(raw: Buffer): Buffer {
  let end = raw.length;
  if (end > 0 && raw[end - 1] === LF) end--;
  if (end > 0 && raw[end - 1] === CR) end--;
  return raw.subarray(0, end);
}

/**
 * "relaxed" header canonicalization (RFC 6376 §3.4.2) of one field: lowercase name,
 * unfold, runs of WSP to one SP, no WSP at the ends of the value or around the colon.
 * The result has no line ending; callers add CRLF where the algorithm wants one.
 */
export function relaxedHeader(raw: Buffer): Buffer {
  const src = withoutLineEnd(raw);
  const colon = src.indexOf(COLON);
  let nameEnd = colon < 0 ? src.length : colon;
  while (nameEnd > 0 && (src[nameEnd - 1] === SP || src[nameEnd - 1] === HTAB)) nameEnd--;
  const out = Buffer.allocUnsafe(src.length + 1);
  let o = 0;
  for (let i = 0; i < nameEnd; i++) {
    const b = src[i] as number;
    out[o++] = b >= 0x41 && b <= 0x5a ? b + 0x20 : b;
  }
  out[o++] = COLON;
  if (colon < 0) return out.subarray(0, o);
  let pendingSpace = false;
  let started = false;
  for (let i = colon + 1; i < src.length; i++) {
    const b = src[i] as number;
    if (b === CR && src[i + 1] === LF) {
      i++;
      continue;
    }
    if (b === SP || b === HTAB) {
      pendingSpace = started;
      continue;
    }
    if (pendingSpace) {
      out[o++] = SP;
      pendingSpace = false;
    }
    out[o++] = b;
    started = true;
  }
  return out.subarray(0, o);
}

/** One field canonicalized for the header hash, without its line ending. */
export function canonicalizeHeader(field: HeaderField, canonicalization: Canonicalization): Buffer {
  return canonicalization === 'relaxed' ? relaxedHeader(field.raw) : withoutLineEnd(field.raw);
}
