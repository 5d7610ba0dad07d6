import { Buffer } from 'node:buffer';

/**
 * Where canonicalized body bytes go (a hasher, or a collector in tests). The bytes are
 * only valid during the call: canonicalizers pass views of their input and reuse their
 * own scratch space, so a sink that keeps them must copy.
 */
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
/** Chunks up to this size are canonicalized by a byte loop into scratch space (fewer calls). */
const SMALL_CHUNK = 8 * 1024;
/** Held-back line breaks up to this count fit in the scratch space of the byte loop. */
const SMALL_PENDING = 1024;
const CRLF_WORD = 0x0d0a;

/** Copy chunk[from, to) to o at w; short runs byte by byte (a native copy costs more). */
function copyRun(chunk: Buffer, from: number, to: number, o: Buffer, w: number): number {
  if (to - from > 48) return w + chunk.copy(o, w, from, to);
  for (let i = from; i < to; i++) o[w++] = chunk[i] as number;
  return w;
}

/** A byte that relaxed canonicalization passes on as it is, whatever follows. */
function isOrdinary(b: number): boolean {
  return b > SP || (b !== SP && b !== HTAB && b !== CR);
}

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
  private scratch: Buffer | undefined;

  constructor(out: ByteSink) {
    this.out = out;
  }

  update(chunk: Buffer): void {
    const n = chunk.length;
    if (n === 0) return;
    if (n <= SMALL_CHUNK && this.pendingCrlf <= SMALL_PENDING) {
      this.updateSmall(chunk);
      return;
    }
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

  /**
   * The same rules as update() in one pass over a small chunk: stretches that pass
   * unchanged (a single SP or a CRLF between ordinary bytes included) are found by a
   * plain loop and copied whole into scratch space, which goes on in one piece. For
   * small chunks this beats many native searches and many small views.
   */
  private updateSmall(chunk: Buffer): void {
    const n = chunk.length;
    // Output never exceeds the input plus what was held back: the line breaks, one space
    // and one CR.
    const size = n + 2 * this.pendingCrlf + 2;
    if (!this.scratch || this.scratch.length < size) this.scratch = Buffer.allocUnsafe(Math.max(size, SMALL_CHUNK + 2 * SMALL_PENDING + 2));
    const o = this.scratch;
    let w = 0;
    let crlfs = this.pendingCrlf;
    let wsp = this.pendingWsp;
    let i = 0;
    if (this.pendingCR) {
      this.pendingCR = false;
      if (chunk[0] === LF) {
        wsp = false;
        crlfs++;
        i = 1;
      } else {
        for (; crlfs > 0; crlfs--) w = o.writeUInt16BE(CRLF_WORD, w);
        if (wsp) o[w++] = SP;
        wsp = false;
        this.sawContent = true;
        o[w++] = CR;
      }
    }
    let run = -1; // start of a stretch passing unchanged; while there is one, nothing is held back
    for (; i < n; i++) {
      const b = chunk[i] as number;
      if (b === SP || b === HTAB) {
        if (b === SP && run >= 0 && i + 1 < n && isOrdinary(chunk[i + 1] as number)) {
          i++;
          continue;
        }
        if (run >= 0) {
          w = copyRun(chunk, run, i, o, w);
          run = -1;
        }
        wsp = true;
        continue;
      }
      if (b === CR) {
        const lf = i + 1 < n && chunk[i + 1] === LF;
        if (lf && run >= 0 && i + 2 < n && isOrdinary(chunk[i + 2] as number)) {
          i += 2;
          continue;
        }
        if (lf || i + 1 === n) {
          if (run >= 0) {
            w = copyRun(chunk, run, i, o, w);
            run = -1;
          }
          if (!lf) {
            this.pendingCR = true;
            break;
          }
          wsp = false;
          crlfs++;
          i++;
          continue;
        }
        // A lone CR is an ordinary byte.
      }
      if (run < 0) {
        for (; crlfs > 0; crlfs--) w = o.writeUInt16BE(CRLF_WORD, w);
        if (wsp) {
          o[w++] = SP;
          wsp = false;
        }
        this.sawContent = true;
        run = i;
      }
    }
    this.pendingCrlf = crlfs;
    this.pendingWsp = wsp;
    if (run >= 0) {
      const end = this.pendingCR ? n - 1 : n;
      if (w === 0) {
        this.out(chunk.subarray(run, end));
        return;
      }
      w = copyRun(chunk, run, end, o, w);
    }
    if (w > 0) this.out(o.subarray(0, w));
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
