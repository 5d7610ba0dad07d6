import type { MacroPair } from './commands.js';

/**
 * The command letters macros are sent for, in the order of an SMTP session:
 * connect, HELO, MAIL, RCPT, DATA, header ('L', Postfix sends the EOH list before each
 * header), end of headers, body ('B', likewise), end of message.
 */
export const MACRO_STAGE_ORDER = ['C', 'H', 'M', 'R', 'T', 'L', 'N', 'B', 'E'] as const;
export type MacroCommandLetter = (typeof MACRO_STAGE_ORDER)[number];

/** `{name}` and `name` are the same macro. */
export function macroKey(name: string): string {
  return name.length > 2 && name.startsWith('{') && name.endsWith('}') ? name.slice(1, -1) : name;
}

/**
 * The macros of one connection, per stage. A macro packet replaces its stage's set; a new
 * connect, HELO, MAIL or RCPT clears the later stages (as libmilter does); lookups search
 * from the latest stage back to connect. Letters outside MACRO_STAGE_ORDER are ignored, as
 * libmilter ignores them.
 */
export class MacroStore {
  private readonly stages = new Map<string, Map<string, string>>();

  /** Store a macro packet's pairs for its command letter. Returns false if the letter is ignored. */
  set(letter: string, pairs: readonly MacroPair[]): boolean {
    if (!(MACRO_STAGE_ORDER as readonly string[]).includes(letter)) return false;
    const map = new Map<string, string>();
    for (const [name, value] of pairs) map.set(macroKey(name), value);
    this.stages.set(letter, map);
    return true;
  }

  /** Forget the stages after `letter` (called when that command arrives). */
  clearAfter(letter: string): void {
    const index = (MACRO_STAGE_ORDER as readonly string[]).indexOf(letter);
    if (index < 0) return;
    for (const later of MACRO_STAGE_ORDER.slice(index + 1)) this.stages.delete(later);
  }

  clear(): void {
    this.stages.clear();
  }

  /** A macro's value, `i` or `{i}`, from the latest stage that defines it. */
  get(name: string): string | undefined {
    const key = macroKey(name);
    for (let i = MACRO_STAGE_ORDER.length - 1; i >= 0; i--) {
      const value = this.stages.get(MACRO_STAGE_ORDER[i] as string)?.get(key);
      if (value !== undefined) return value;
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** The macros sent for one command letter. */
  stage(letter: MacroCommandLetter): ReadonlyMap<string, string> {
    return this.stages.get(letter) ?? new Map();
  }

  /** Every macro currently known, later stages overriding earlier ones (names without braces). */
  all(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const letter of MACRO_STAGE_ORDER) {
      for (const [name, value] of this.stages.get(letter) ?? []) out[name] = value;
    }
    return out;
  }
}
