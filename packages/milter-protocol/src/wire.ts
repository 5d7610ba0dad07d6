import { MilterError, MilterProtocolError } from './errors.js';

/**
 * Byte helpers for packet payloads. Strings on the wire are NUL-terminated byte strings
 * with no defined charset: text is handled as latin1 (one char per byte, lossless), and
 * anything that must stay bytes (header values, body) stays a Buffer.
 */

/** Text or bytes to put on the wire; strings are encoded as latin1. */
export type Bytes = string | Buffer;

export function toBuffer(value: Bytes): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
}

/** `value` followed by a NUL; refuses embedded NULs, which would shift every later field. */
export function cString(value: Bytes, stage = 'encode', field = 'string'): Buffer {
  const bytes = toBuffer(value);
  if (bytes.includes(0)) throw new MilterError(stage, `${field} contains a NUL byte`);
  const out = Buffer.allocUnsafe(bytes.length + 1);
  bytes.copy(out, 0);
  out[bytes.length] = 0;
  return out;
}

export function uint32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value >>> 0, 0);
  return out;
}

export function uint16(value: number): Buffer {
  const out = Buffer.allocUnsafe(2);
  out.writeUInt16BE(value & 0xffff, 0);
  return out;
}

/** A cursor over a payload that reads the protocol's field types. */
export class PayloadReader {
  private offset = 0;

  constructor(
    private readonly payload: Buffer,
    private readonly stage: string,
  ) {}

  get remaining(): number {
    return this.payload.length - this.offset;
  }

  uint32(field: string): number {
    if (this.remaining < 4) throw new MilterProtocolError(this.stage, `payload too short for ${field}`);
    const value = this.payload.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  uint16(field: string): number {
    if (this.remaining < 2) throw new MilterProtocolError(this.stage, `payload too short for ${field}`);
    const value = this.payload.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  byte(field: string): number {
    if (this.remaining < 1) throw new MilterProtocolError(this.stage, `payload too short for ${field}`);
    const value = this.payload[this.offset] as number;
    this.offset += 1;
    return value;
  }

  /**
   * The bytes up to the next NUL (which is consumed). A missing final NUL is tolerated:
   * the string then runs to the end of the payload.
   */
  bytes(field: string): Buffer {
    if (this.remaining < 1) throw new MilterProtocolError(this.stage, `payload too short for ${field}`);
    const end = this.payload.indexOf(0, this.offset);
    const stop = end === -1 ? this.payload.length : end;
    const value = this.payload.subarray(this.offset, stop);
    this.offset = end === -1 ? this.payload.length : end + 1;
    return value;
  }

  /** Like bytes(), as latin1 text. */
  string(field: string): string {
    return this.bytes(field).toString('latin1');
  }

  /** Like string(), but an exhausted payload gives an empty string. */
  optionalString(field: string): string | undefined {
    return this.remaining > 0 ? this.string(field) : undefined;
  }

  /** Every remaining NUL-terminated string ("argv"). */
  strings(field: string): string[] {
    const out: string[] = [];
    while (this.remaining > 0) out.push(this.string(field));
    return out;
  }

  rest(): Buffer {
    const value = this.payload.subarray(this.offset);
    this.offset = this.payload.length;
    return value;
  }
}
