import { DEFAULT_MAX_PACKET_SIZE } from './constants.js';
import { MilterProtocolError } from './errors.js';

/** Leftovers smaller than this are gathered into blocks; larger reads are kept as they are. */
const SMALL_CHUNK = 4096;
/** The largest block small leftovers are gathered into. */
const BLOCK_SIZE = 16 * 1024;

/** One framed packet: the command or response code and its data. */
export interface Packet {
  code: number;
  payload: Buffer;
}

export interface PacketDecoderOptions {
  /** Largest accepted packet length (code byte + data). Default DEFAULT_MAX_PACKET_SIZE (4 MiB). */
  maxPacketSize?: number;
}

/**
 * Incremental decoder for the milter framing: `uint32 BE length | code | data[length-1]`.
 * Feed it whatever a socket read returned; it gives back every packet completed by that
 * read, in order, whatever the fragmentation (even a split length prefix) or coalescing.
 *
 * Payloads that arrive inside one read are zero-copy views of that read's buffer; packets
 * spread over several reads are copied once. A length of 0 or above the cap is a protocol
 * error, raised before any of that packet's data is buffered; the decoder is then unusable.
 *
 * Memory: nothing is allocated for the announced length before its bytes have arrived (a
 * peer announcing 4 MiB and sending 10 bytes costs 10 bytes), and the small pieces of a
 * packet that trickles in (each socket read is its own allocation, a few hundred bytes of
 * bookkeeping even for one byte) are copied together into blocks of at most 16 KiB, so what
 * is held stays close to bufferedBytes.
 */
export class PacketDecoder {
  readonly maxPacketSize: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the packet being assembled, or -1 while its prefix is incomplete. */
  private needed = -1;
  private failed: MilterProtocolError | undefined;
  /** Where small leftovers are gathered (see compactTail), and how much of it is used. */
  private block: Buffer | undefined;
  private blockUsed = 0;

  constructor(options: PacketDecoderOptions = {}) {
    this.maxPacketSize = options.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE;
    if (!Number.isInteger(this.maxPacketSize) || this.maxPacketSize < 1) {
      throw new RangeError(`maxPacketSize must be a positive integer, not ${this.maxPacketSize}`);
    }
  }

  /** Bytes held for a packet that is not complete yet. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** True when the stream stopped in the middle of a packet. */
  get hasPartialPacket(): boolean {
    return this.buffered > 0;
  }

  /** Drop whatever is buffered (the connection is gone); the decoder is unusable afterwards. */
  discard(): void {
    this.chunks = [];
    this.buffered = 0;
    this.block = undefined;
    this.blockUsed = 0;
    this.failed ??= new MilterProtocolError('decode', 'the decoder was discarded');
  }

  push(chunk: Buffer): Packet[] {
    if (this.failed) throw this.failed;
    const packets: Packet[] = [];
    if (chunk.length === 0) return packets;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.needed < 0) {
        if (this.buffered < 4) break;
        const length = this.readPrefix();
        if (length < 1) {
          this.failed = new MilterProtocolError('decode', 'packet length 0 is invalid (it must count the code byte)');
          throw this.failed;
        }
        if (length > this.maxPacketSize) {
          this.failed = new MilterProtocolError('decode', `packet length ${length} exceeds the limit of ${this.maxPacketSize} bytes`);
          throw this.failed;
        }
        this.needed = length;
      }
      if (this.buffered < this.needed) break;
      const body = this.take(this.needed);
      this.needed = -1;
      packets.push({ code: body[0] as number, payload: body.subarray(1) });
    }
    if (this.buffered > 0) this.compactTail();
    return packets;
  }

  /**
   * A small piece left over for the packet in progress is copied into the current block
   * (appended when the block ends the buffered data and has room), instead of keeping the
   * read's own allocation. Only bytes already received are copied; a block is never larger
   * than what the packet still lacks, so this is no preallocation either. Bytes already handed
   * out as payloads are never written again: the block only grows past blockUsed.
   */
  private compactTail(): void {
    const n = this.chunks.length;
    const last = this.chunks[n - 1] as Buffer;
    if (last.length >= SMALL_CHUNK || (this.block !== undefined && last.buffer === this.block.buffer)) return;
    const prev = n > 1 ? (this.chunks[n - 2] as Buffer) : undefined;
    const block = this.block;
    if (
      block &&
      prev &&
      prev.buffer === block.buffer &&
      prev.byteOffset + prev.length === this.blockUsed &&
      this.blockUsed + last.length <= block.length
    ) {
      last.copy(block, this.blockUsed);
      this.blockUsed += last.length;
      this.chunks.pop();
      this.chunks[n - 2] = block.subarray(prev.byteOffset, this.blockUsed);
      return;
    }
    // What the packet still lacks beyond the bytes held (the rest of the prefix while it is incomplete).
    const missing = this.needed >= 0 ? this.needed - this.buffered : 4 - this.buffered;
    const fresh = Buffer.allocUnsafeSlow(Math.min(BLOCK_SIZE, Math.max(last.length, last.length + missing)));
    last.copy(fresh, 0);
    this.block = fresh;
    this.blockUsed = last.length;
    this.chunks[n - 1] = fresh.subarray(0, last.length);
  }

  private readPrefix(): number {
    const prefix = this.take(4);
    return prefix.readUInt32BE(0);
  }

  /** Remove and return the first n buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.chunks[0] as Buffer;
      const want = n - filled;
      if (head.length <= want) {
        head.copy(out, filled);
        filled += head.length;
        this.chunks.shift();
      } else {
        head.copy(out, filled, 0, want);
        filled += want;
        this.chunks[0] = head.subarray(want);
      }
    }
    this.buffered -= n;
    return out;
  }
}

/** Decode a complete byte string of packets (tests, captures); trailing partial data is an error. */
export function decodePackets(bytes: Buffer, options?: PacketDecoderOptions): Packet[] {
  const decoder = new PacketDecoder(options);
  const packets = decoder.push(bytes);
  if (decoder.hasPartialPacket) throw new MilterProtocolError('decode', `${decoder.bufferedBytes} trailing bytes do not form a packet`);
  return packets;
}
