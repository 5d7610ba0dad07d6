/**
 * Every error this package raises names the stage it came from, as a prefix of its
 * message ("header: handler failed: ...", "decode: packet length 0 is invalid").
 */
export class MilterError extends Error {
  /** The stage: a protocol stage (connect, header, endOfMessage, ...) or a layer (decode, listen, client, ...). */
  readonly stage: string;

  constructor(stage: string, message: string, options?: { cause?: unknown }) {
    super(`${stage}: ${message}`, options);
    this.name = 'MilterError';
    this.stage = stage;
  }
}

/** The peer sent something the protocol does not allow; the connection cannot go on. */
export class MilterProtocolError extends MilterError {
  constructor(stage: string, message: string, options?: { cause?: unknown }) {
    super(stage, message, options);
    this.name = 'MilterProtocolError';
  }
}

/**
 * A header field a filter asked to add or change is not valid (a bad name, or a value with
 * NUL, a bare CR or a line break that would start a new field). Thrown by the Modifier call
 * itself, before anything is sent.
 */
export class MilterHeaderError extends MilterError {
  constructor(
    stage: string,
    message: string,
    /** The field name as given. */
    readonly field: string,
  ) {
    super(stage, message);
    this.name = 'MilterHeaderError';
  }
}

/** The text of any thrown value, for logs. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
