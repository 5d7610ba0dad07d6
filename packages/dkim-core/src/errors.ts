/**
 * Errors thrown by dkim-core. Problems found in mail (a bad signature, a bad key
 * record) are never thrown: they come back as results with a reason. DkimError is
 * for misuse (bad options, unusable private keys) and for I/O failures.
 */
export type DkimErrorCode =
  | 'INVALID_OPTION'
  | 'KEY_UNUSABLE'
  | 'KEY_UNREADABLE'
  | 'KEY_MISMATCH'
  | 'NO_FROM'
  | 'MESSAGE_TOO_LARGE'
  | 'KEY_NOT_FOUND'
  | 'KEY_LOOKUP_FAILED';

const MARK = Symbol.for('@inkan/dkim-core/DkimError');

export class DkimError extends Error {
  readonly code: DkimErrorCode;
  readonly [MARK] = true;

  constructor(code: DkimErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DkimError';
    this.code = code;
  }

  /** True for a DkimError from any copy of this package in the process. */
  static isInstance(value: unknown): value is DkimError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARK] === true;
  }
}
