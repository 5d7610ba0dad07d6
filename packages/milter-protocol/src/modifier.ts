import { ActionFlags, describeActions } from './constants.js';
import { MilterError, MilterHeaderError } from './errors.js';
import type { NegotiatedOptions } from './negotiation.js';
import { type Modification, encodeResponse } from './responses.js';
import { type Bytes, toBuffer } from './wire.js';

const stage = 'endOfMessage';
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * Header value bytes: CRLF folds become LF (the MTA adds the CR back; CRLF would double it).
 * Refused (MilterHeaderError), because the MTA would write them into the message as they
 * are: a NUL (it ends the value on the wire), a CR that is not part of CRLF, and a line break
 * not followed by a space or tab, which would start a new header field (header injection).
 */
function headerValue(value: Bytes, name: string, what: string): Buffer {
  const bytes = toBuffer(value);
  const v = bytes.includes('\r\n') ? Buffer.from(bytes.toString('latin1').replace(/\r\n/g, '\n'), 'latin1') : bytes;
  const refuse = (why: string) => {
    throw new MilterHeaderError(stage, `${what}: the value of ${name} ${why}; refusing to send it`, name);
  };
  if (v.includes(0)) refuse('contains a NUL byte');
  if (v.includes(0x0d)) refuse('contains a CR that is not part of a CRLF line break');
  for (let i = v.indexOf(0x0a); i >= 0; i = v.indexOf(0x0a, i + 1)) {
    const next = v[i + 1];
    if (next !== 0x20 && next !== 0x09) refuse('contains a line break not followed by a space or tab (it would start a new header field)');
  }
  return v;
}

function checkName(name: string, what: string): void {
  if (typeof name !== 'string' || !HEADER_NAME.test(name)) {
    throw new MilterHeaderError(
      stage,
      `${what}: ${JSON.stringify(name)} is not a valid header field name (printable US-ASCII without space or colon)`,
      String(name),
    );
  }
}

function checkIndex(index: number, what: string): void {
  if (!Number.isInteger(index) || index < 0 || index > 0xffffffff)
    throw new MilterError(stage, `${what}: index ${index} is not a 32-bit unsigned integer`);
}

function checkText(text: string, what: string): void {
  if (text === '' || text.includes('\0')) throw new MilterError(stage, `${what}: must be a non-empty string without NUL`);
}

/**
 * The end-of-message actions of one message. Methods check that the action was negotiated
 * and throw (stage "endOfMessage") otherwise; everything gathered is written by the session
 * together with the final reply, in one socket write. Body replacement chunks are written
 * consecutively after the other actions, because Postfix refuses them interleaved.
 *
 * Header names must be printable US-ASCII without space or colon; header values must not
 * contain NUL, a bare CR or a line break that is not a fold (followed by space or tab). Such
 * calls throw a MilterHeaderError at once, so the handler can catch it.
 *
 * Header values: folding must use LF + white space (CRLF is turned into LF here). With
 * SMFIP_HDR_LEADSPC negotiated the MTA inserts no space after the colon, so start the value
 * with the space you want; without it the MTA adds one.
 */
export class Modifier {
  private readonly actions: Modification[] = [];
  private readonly body: Buffer[] = [];
  private bodyReplaced = false;
  private sealed = false;

  constructor(
    /** The agreed options of the connection. */
    readonly options: NegotiatedOptions,
    private readonly sendProgress: () => void = () => {},
  ) {}

  private need(flag: number, what: string): void {
    if (this.sealed) throw new MilterError(stage, `${what}: the end-of-message handler has already returned`);
    if ((this.options.actions & flag) === 0) {
      throw new MilterError(
        stage,
        `${what} needs ${describeActions(flag)}, which was not negotiated (agreed: ${describeActions(this.options.actions)})`,
      );
    }
  }

  private checkSize(bytes: number, what: string): void {
    if (bytes > this.options.maxDataSize) {
      throw new MilterError(stage, `${what}: ${bytes} bytes exceed the MTA's packet limit of ${this.options.maxDataSize}`);
    }
  }

  /** Append a header field (SMFIR_ADDHEADER; needs SMFIF_ADDHDRS). */
  addHeader(name: string, value: Bytes): this {
    this.need(ActionFlags.AddHeaders, 'addHeader');
    checkName(name, 'addHeader');
    const v = headerValue(value, name, 'addHeader');
    this.checkSize(name.length + v.length + 2, 'addHeader');
    this.actions.push({ type: 'addHeader', name, value: v });
    return this;
  }

  /**
   * Insert a header field at `index` (SMFIR_INSHEADER; needs SMFIF_ADDHDRS). 0 is the very
   * top (above the MTA's own Received:); other indexes count fields the filter never saw, so
   * only 0 and a huge value (append) are portable.
   */
  insertHeader(index: number, name: string, value: Bytes): this {
    this.need(ActionFlags.AddHeaders, 'insertHeader');
    checkIndex(index, 'insertHeader');
    checkName(name, 'insertHeader');
    const v = headerValue(value, name, 'insertHeader');
    this.checkSize(name.length + v.length + 6, 'insertHeader');
    this.actions.push({ type: 'insertHeader', index, name, value: v });
    return this;
  }

  /**
   * Replace the `index`-th (1-based, case-insensitive by name) field `name` (SMFIR_CHGHEADER;
   * needs SMFIF_CHGHDRS). An index past the last such field adds one. An empty value deletes.
   */
  changeHeader(name: string, index: number, value: Bytes): this {
    this.need(ActionFlags.ChangeHeaders, 'changeHeader');
    checkIndex(index, 'changeHeader');
    checkName(name, 'changeHeader');
    const v = headerValue(value, name, 'changeHeader');
    this.checkSize(name.length + v.length + 6, 'changeHeader');
    this.actions.push({ type: 'changeHeader', index, name, value: v });
    return this;
  }

  /**
   * Delete the `index`-th (1-based) field `name`. Postfix renumbers after a deletion and
   * sendmail does not, so delete several fields of one name from the highest index down.
   */
  deleteHeader(name: string, index: number): this {
    return this.changeHeader(name, index, Buffer.alloc(0));
  }

  /** Change the envelope sender (SMFIR_CHGFROM; needs SMFIF_CHGFROM). Postfix keeps only RET/ENVID args. */
  changeFrom(sender: string, args?: string): this {
    this.need(ActionFlags.ChangeFrom, 'changeFrom');
    if (sender.includes('\0') || args?.includes('\0')) throw new MilterError(stage, 'changeFrom: NUL in sender or arguments');
    this.actions.push(args === undefined ? { type: 'changeFrom', sender } : { type: 'changeFrom', sender, args });
    return this;
  }

  /**
   * Add a recipient: SMFIR_ADDRCPT (SMFIF_ADDRCPT) or, with ESMTP arguments (Postfix keeps
   * NOTIFY/ORCPT), SMFIR_ADDRCPT_PAR (SMFIF_ADDRCPT_PAR).
   */
  addRcpt(recipient: string, args?: string): this {
    checkText(recipient, 'addRcpt');
    const plainAllowed = (this.options.actions & ActionFlags.AddRcpt) !== 0;
    if (args === undefined && plainAllowed) {
      this.need(ActionFlags.AddRcpt, 'addRcpt');
      this.actions.push({ type: 'addRcpt', recipient });
      return this;
    }
    this.need(ActionFlags.AddRcptPar, 'addRcpt with arguments');
    if (args?.includes('\0')) throw new MilterError(stage, 'addRcpt: NUL in arguments');
    this.actions.push(args === undefined ? { type: 'addRcptPar', recipient } : { type: 'addRcptPar', recipient, args });
    return this;
  }

  /** Remove a recipient (SMFIR_DELRCPT; needs SMFIF_DELRCPT); it must match the RCPT argument exactly. */
  delRcpt(recipient: string): this {
    this.need(ActionFlags.DelRcpt, 'delRcpt');
    checkText(recipient, 'delRcpt');
    this.actions.push({ type: 'delRcpt', recipient });
    return this;
  }

  /**
   * Append to the replacement body (SMFIR_REPLBODY; needs SMFIF_CHGBODY). Call it once or
   * several times; the pieces are concatenated and sent in packets of at most the MTA's limit.
   * Use CRLF line ends. Calling it with an empty buffer alone gives an empty body.
   */
  replaceBody(chunk: Bytes): this {
    this.need(ActionFlags.ChangeBody, 'replaceBody');
    this.bodyReplaced = true;
    const bytes = toBuffer(chunk);
    if (bytes.length > 0) this.body.push(bytes);
    return this;
  }

  /** Quarantine the message with a reason (SMFIR_QUARANTINE; needs SMFIF_QUARANTINE). */
  quarantine(reason: string): this {
    this.need(ActionFlags.Quarantine, 'quarantine');
    checkText(reason, 'quarantine');
    this.actions.push({ type: 'quarantine', reason });
    return this;
  }

  /** Send SMFIR_PROGRESS now, so the MTA keeps waiting while slow work runs. */
  progress(): void {
    if (this.sealed) throw new MilterError(stage, 'progress: the end-of-message handler has already returned');
    this.sendProgress();
  }

  /** Everything gathered so far, in the order it will be sent. */
  get modifications(): Modification[] {
    return [...this.actions, ...this.bodyPackets()];
  }

  private bodyPackets(): Modification[] {
    if (!this.bodyReplaced) return [];
    const whole = this.body.length === 1 ? (this.body[0] as Buffer) : Buffer.concat(this.body);
    if (whole.length === 0) return [{ type: 'replaceBody', chunk: whole }];
    const out: Modification[] = [];
    for (let i = 0; i < whole.length; i += this.options.maxDataSize) {
      out.push({ type: 'replaceBody', chunk: whole.subarray(i, i + this.options.maxDataSize) });
    }
    return out;
  }

  /** Stop accepting actions (called by the session when the handler returns). */
  seal(): void {
    this.sealed = true;
  }

  /** The encoded packets of every gathered action. */
  encode(): Buffer[] {
    return this.modifications.map(encodeResponse);
  }
}
