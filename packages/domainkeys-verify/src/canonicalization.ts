import { Buffer } from 'node:buffer';
import type { HeaderField } from '@inkan/dkim-core';
import { type BodyCanonicalizer, type ByteSink, emitCrlfs } from '@inkan/dkim-core/canonicalization';

/** The two DomainKeys canonicalizations (RFC 4870 §3.4.2). */
export type DomainKeysCanonicalization = 'simple' | 'nofws';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const CRLF = Buffer.from('\r\n', 'latin1');
const ONE_CR = Buffer.from('\r', 'latin1');

/**
 * One signed header field as DomainKeys hashes it, always ending in CRLF.
 * simple: the field exactly as received, folding included.
 * nofws: the field with every SP, HTAB, CR and LF removed (which also unfolds it).
 */
export function canonicalizeDomainKeysHeader(field: HeaderField, canonicalization: DomainKeysCanonicalization): Buffer {
  const raw = field.raw;
  if (canonicalization === 'simple') {
    const terminated = raw.length >= 2 && raw[raw.length - 2] === CR && raw[raw.length - 1] === LF;
    return terminated ? raw : Buffer.concat([raw, CRLF]);
  }
  const out = Buffer.allocUnsafe(raw.length + 2);
  let o = 0;
  for (const b of raw) {
    if (b !== SP && b !== HTAB && b !== CR && b !== LF) out[o++] = b;
  }
  out[o++] = CR;
  out[o++] = LF;
  return out.subarray(0, o);
}

/**
 * "simple" (RFC 4870 §3.4.2.1) for what follows the header fields: the empty line
 * that ends the header, then the body, unchanged, except that empty lines at the end
 * are dropped; when the body is nothing but empty lines, the separator line goes too.
 * A line is empty only when it is exactly CRLF. An unterminated last line is passed
 * as it is (no CRLF is added), as Mail::DKIM does.
 *
 * Streaming: a CR at the start of a line is held until the next byte shows whether
 * the line is empty; empty lines are counted and written only when a later line has
 * content. State survives any chunk boundary.
 */
export class SimpleDomainKeysBody implements BodyCanonicalizer {
  private readonly out: ByteSink;
  /** Empty lines seen and not yet written (the header/body separator counts as one). */
  private pendingEmpty = 1;
  private atLineStart = true;
  /** At line start: a CR was seen and the next byte decides whether the line is empty. */
  private heldCR = false;
  /** Inside a line: the last byte written was a CR. */
  private lastWasCR = false;
  private finished = false;

  constructor(out: ByteSink) {
    this.out = out;
  }

  update(chunk: Buffer): void {
    if (this.finished) throw new Error('update() after finish()');
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.atLineStart) {
        const b = chunk[i] as number;
        if (this.heldCR) {
          this.heldCR = false;
          if (b === LF) {
            this.pendingEmpty++;
            i++;
            continue;
          }
          this.startLine();
          this.out(ONE_CR);
          this.lastWasCR = true;
          continue;
        }
        if (b === CR) {
          this.heldCR = true;
          i++;
          continue;
        }
        this.startLine();
        this.lastWasCR = false;
        continue;
      }
      // Inside a line: write through the CRLF that ends it, or to the end of the chunk.
      const end = this.lineEnd(chunk, i);
      if (end < 0) {
        this.out(chunk.subarray(i));
        this.lastWasCR = chunk[n - 1] === CR;
        return;
      }
      this.out(chunk.subarray(i, end + 1));
      this.atLineStart = true;
      i = end + 1;
    }
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    // A lone CR as the unterminated last line is content, not an empty line.
    if (this.atLineStart && this.heldCR) {
      this.heldCR = false;
      this.startLine();
      this.out(ONE_CR);
    }
    this.pendingEmpty = 0;
  }

  private startLine(): void {
    emitCrlfs(this.out, this.pendingEmpty);
    this.pendingEmpty = 0;
    this.atLineStart = false;
  }

  /** Index of the LF that ends the current line (the LF of a CRLF), or -1. */
  private lineEnd(chunk: Buffer, from: number): number {
    let j = chunk.indexOf(LF, from);
    while (j >= 0) {
      const prevCR = j === from ? this.lastWasCR : chunk[j - 1] === CR;
      if (prevCR) return j;
      j = chunk.indexOf(LF, j + 1);
    }
    return -1;
  }
}

/**
 * "nofws" (RFC 4870 §3.4.2.2) for what follows the header fields: every SP and HTAB
 * is removed, so are CR and LF that are not part of a CRLF line end; each line keeps
 * its CRLF. A line is empty when nothing is left of it, and empty lines at the end are
 * dropped (with the separator line when the whole body is empty). An unterminated
 * last line gets no CRLF, as in Mail::DKIM.
 *
 * Streaming: a CR is held until the next non-whitespace byte shows whether it ends
 * a line; empty lines are counted and written only when a later line has content.
 */
export class NofwsDomainKeysBody implements BodyCanonicalizer {
  private readonly out: ByteSink;
  private pendingEmpty = 1;
  /** Content has been written for the current line. */
  private lineHasContent = false;
  private heldCR = false;
  private finished = false;

  constructor(out: ByteSink) {
    this.out = out;
  }

  update(chunk: Buffer): void {
    if (this.finished) throw new Error('update() after finish()');
    // Each input byte yields at most one output byte, except an LF completing a CRLF
    // whose CR came in the previous chunk: one extra byte at most.
    const buf = Buffer.allocUnsafe(chunk.length + 1);
    let o = 0;
    let written = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (b === SP || b === HTAB) continue;
      if (this.heldCR) {
        this.heldCR = false;
        if (b === LF) {
          if (this.lineHasContent) {
            buf[o++] = CR;
            buf[o++] = LF;
            this.lineHasContent = false;
          } else {
            this.pendingEmpty++;
          }
          continue;
        }
        // The held CR was a lone CR: dropped. Go on with this byte.
      }
      if (b === CR) {
        this.heldCR = true;
        continue;
      }
      if (b === LF) continue; // a lone LF
      if (!this.lineHasContent) {
        if (this.pendingEmpty > 0) {
          if (o > written) this.out(buf.subarray(written, o));
          written = o;
          emitCrlfs(this.out, this.pendingEmpty);
          this.pendingEmpty = 0;
        }
        this.lineHasContent = true;
      }
      buf[o++] = b;
    }
    if (o > written) this.out(buf.subarray(written, o));
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.heldCR = false;
    this.pendingEmpty = 0;
  }
}

/** A streaming body canonicalizer for c=simple or c=nofws, writing to `out`. */
export function createDomainKeysBodyCanonicalizer(canonicalization: DomainKeysCanonicalization, out: ByteSink): BodyCanonicalizer {
  return canonicalization === 'nofws' ? new NofwsDomainKeysBody(out) : new SimpleDomainKeysBody(out);
}
