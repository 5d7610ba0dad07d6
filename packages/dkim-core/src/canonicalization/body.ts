import { Buffer } from 'node:buffer';

/** Where canonicalized body bytes go (a hasher, or a collector in tests). */
export type ByteSink = (bytes: Buffer) => void;

/** A streaming body canonicalizer: same output for the same bytes however they are split. */
export interface BodyCanonicalizer {
  update(chunk: Buffer): void;
  finish(): void;
}

export type Canonicalization = 'simple' | 'relaxed';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const CRLF_RUN = Buffer.from('\r\n'.repeat(8192), 'latin1');
const CRLF = CRLF_RUN.subarray(0, 2);
const ONE_CR = Buffer.from('\r', 'latin1');
const ONE_SP = Buffer.from(' ', 'latin1');
const DOUBLE_SPACE = Buffer.from('  ', 'latin1');
const SPACE_CR = Buffer.from(' \r', 'latin1');

/** Write `count` CRLFs to a sink, in large blocks (for canonicalizers that hold line ends back). */
export function emitCrlfs(out: ByteSink, count: number): void {
  let left = count;
  while (left > 0) {
    const n = Math.min(left, CRLF_RUN.length / 2);
    out(CRLF_RUN.subarray(0, n * 2));
    left -= n;
  }
}

/**
 * "simple" body canonicalization (RFC 6376 §3.4.3): the body as it is, except that
 * all empty lines at the end are dropped and the result always ends in one CRLF
 * (so an empty body is a single CRLF). Trailing CRLFs are held back until some other
 * byte shows they were not the end.
 */
export class SimpleBodyCanonicalizer implements BodyCanonicalizer {
  private readonly out: ByteSink;
  private pendingCrlf = 0;
  private pendingCR = false;

  constructor(out: ByteSink) {
    this.out = out;
  }

  update(chunk: Buffer): void {
    const n = chunk.length;
    if (n === 0) return;
    let start = 0;
    if (this.pendingCR) {
      this.pendingCR = false;
      if (chunk[0] === LF) {
        this.pendingCrlf++;
        start = 1;
      } else {
        this.flush();
        this.out(ONE_CR);
      }
    }
    let end = n;
    if (end > start && chunk[end - 1] === CR) {
      this.pendingCR = true;
      end--;
    }
    let i = end;
    while (i - 2 >= start && chunk[i - 2] === CR && chunk[i - 1] === LF) i -= 2;
    if (i > start) {
      this.flush();
      this.out(chunk.subarray(start, i));
      this.pendingCrlf = (end - i) / 2;
    } else {
      this.pendingCrlf += (end - i) / 2;
    }
  }

  finish(): void {
    if (this.pendingCR) {
      this.pendingCR = false;
      this.flush();
      this.out(ONE_CR);
    }
    this.pendingCrlf = 0;
    this.out(CRLF);
  }

  private flush(): void {
    if (this.pendingCrlf > 0) {
      emitCrlfs(this.out, this.pendingCrlf);
      this.pendingCrlf = 0;
    }
  }
}

/**
 * "relaxed" body canonicalization (RFC 6376 §3.4.4): whitespace at the end of each
 * line removed, other runs of SP/HTAB reduced to one SP, empty lines at the end
 * dropped, and a CRLF added to a non-empty body that lacks one; an empty body stays
 * empty. Unchanged stretches are passed on as views of the input, not copies.
 */
export class RelaxedBodyCanonicalizer implements BodyCanonicalizer {
  private readonly out: ByteSink;
  private pendingCrlf = 0;
  private pendingWsp = false;
  private pendingCR = false;
  private sawContent = false;

  constructor(out: ByteSink) {
    this.out = out;
  }

  update(chunk: Buffer): void {
    const n = chunk.length;
    if (n === 0) return;
    let i = 0;
    if (this.pendingCR) {
      this.pendingCR = false;
      if (chunk[0] === LF) {
        this.pendingWsp = false;
        this.pendingCrlf++;
        i = 1;
      } else {
        this.flush();
        this.out(ONE_CR);
      }
    }
    let run = -1; // start of a stretch of bytes that pass unchanged, or -1
    // Next places where relaxed changes something (-2: not looked up yet; -1: none left).
    let nextTab = -2;
    let nextDoubleSpace = -2;
    let nextSpaceCr = -2;
    const last = chunk[n - 1];
    const endSpecial = last === SP || last === CR ? n - 1 : n;
    for (; i < n; i++) {
      const b = chunk[i] as number;
      if (b > SP || (b !== SP && b !== HTAB && b !== CR)) {
        if (run < 0) {
          this.flush();
          run = i;
        }
        // Fast path: with nothing held back, everything up to the next HTAB, double space or
        // space before CR passes unchanged (native searches instead of a byte loop), except
        // CRLFs at its very end, which may turn out to be trailing empty lines.
        if (nextTab !== -1 && nextTab < i) nextTab = chunk.indexOf(HTAB, i);
        if (nextDoubleSpace !== -1 && nextDoubleSpace < i) nextDoubleSpace = chunk.indexOf(DOUBLE_SPACE, i);
        if (nextSpaceCr !== -1 && nextSpaceCr < i) nextSpaceCr = chunk.indexOf(SPACE_CR, i);
        let j = endSpecial;
        if (nextTab >= 0 && nextTab < j) j = nextTab;
        if (nextDoubleSpace >= 0 && nextDoubleSpace < j) j = nextDoubleSpace;
        if (nextSpaceCr >= 0 && nextSpaceCr < j) j = nextSpaceCr;
        while (j > i + 1 && chunk[j - 1] === SP) j--; // a space before a tab joins its run
        if (j > i + 1) {
          let k = j;
          while (k - 2 > i && chunk[k - 2] === CR && chunk[k - 1] === LF) k -= 2;
          if (k < j) {
            this.out(chunk.subarray(run, k));
            run = -1;
            this.pendingCrlf += (j - k) / 2;
          }
          i = j - 1;
        }
        continue;
      }
      if (b === SP && run >= 0 && i + 1 < n) {
        const next = chunk[i + 1] as number;
        if (next > SP || (next !== SP && next !== HTAB && next !== CR)) {
          i++; // a single SP between two ordinary bytes stays as it is
          continue;
        }
      }
      if (run >= 0) {
        this.out(chunk.subarray(run, i));
        run = -1;
      }
      if (b === CR) {
        if (i + 1 >= n) {
          this.pendingCR = true;
        } else if (chunk[i + 1] === LF) {
          this.pendingWsp = false;
          this.pendingCrlf++;
          i++;
        } else {
          this.flush(); // a lone CR is an ordinary byte
          run = i;
        }
      } else {
        this.pendingWsp = true;
      }
    }
    if (run >= 0) this.out(chunk.subarray(run, n));
  }

  finish(): void {
    if (this.pendingCR) {
      this.pendingCR = false;
      this.flush();
      this.out(ONE_CR);
    }
    if (this.sawContent) this.out(CRLF);
    this.pendingCrlf = 0;
    this.pendingWsp = false;
  }

  /** Emit the line breaks and the single space held back, before an ordinary byte. */
  private flush(): void {
    if (this.pendingCrlf > 0) {
      emitCrlfs(this.out, this.pendingCrlf);
      this.pendingCrlf = 0;
    }
    if (this.pendingWsp) {
      this.out(ONE_SP);
      this.pendingWsp = false;
    }
    this.sawContent = true;
  }
}

export function createBodyCanonicalizer(canonicalization: Canonicalization, out: ByteSink): BodyCanonicalizer {
  return canonicalization === 'relaxed' ? new RelaxedBodyCanonicalizer(out) : new SimpleBodyCanonicalizer(out);
}
