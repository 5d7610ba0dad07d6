import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type MilterCommand,
  MilterProtocolError,
  type MilterResponse,
  PacketDecoder,
  decodeCommand,
  decodePackets,
  decodeResponse,
  encodeCommand,
  encodeResponse,
} from '../src/index.js';
import { arbitraryCommand, arbitraryResponse } from './arbitraries.js';

/** Split `bytes` at the given cut points (sorted, deduplicated, inside the buffer). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    parts.push(bytes.subarray(last, p));
    last = p;
  }
  parts.push(bytes.subarray(last));
  return parts;
}

describe('PacketDecoder', () => {
  it('decodes coalesced packets and keeps a split length prefix', () => {
    const wire = Buffer.concat([encodeCommand({ type: 'abort' }), encodeCommand({ type: 'helo', hostname: 'h' })]);
    const decoder = new PacketDecoder();
    expect(decoder.push(wire.subarray(0, 2))).toEqual([]);
    expect(decoder.hasPartialPacket).toBe(true);
    expect(decoder.push(wire.subarray(2, 7)).map(decodeCommand)).toEqual([{ type: 'abort' }]);
    expect(decoder.push(wire.subarray(7)).map(decodeCommand)).toEqual([{ type: 'helo', hostname: 'h' }]);
    expect(decoder.hasPartialPacket).toBe(false);
    expect(decoder.push(Buffer.alloc(0))).toEqual([]);
  });

  it('hands out payloads that arrived in one read without copying', () => {
    const wire = encodeCommand({ type: 'body', chunk: Buffer.from('abc') });
    const [packet] = new PacketDecoder().push(wire);
    expect(packet?.payload.buffer).toBe(wire.buffer);
  });

  it('refuses a zero length and lengths above the cap before buffering them', () => {
    const zero = new PacketDecoder();
    expect(() => zero.push(Buffer.from('00000000', 'hex'))).toThrow(/^decode: packet length 0 is invalid/);
    // once failed, it stays failed
    expect(() => zero.push(encodeCommand({ type: 'abort' }))).toThrow(MilterProtocolError);

    const capped = new PacketDecoder({ maxPacketSize: 1000 });
    expect(() => capped.push(Buffer.from('000003e9', 'hex'))).toThrow(/^decode: packet length 1001 exceeds the limit of 1000 bytes/);
    const ok = new PacketDecoder({ maxPacketSize: 1000 });
    const big = encodeCommand({ type: 'body', chunk: Buffer.alloc(999, 0x41) });
    expect(ok.push(big)).toHaveLength(1);

    // default cap: 4 MiB, well above Postfix's 64 KiB chunks and sendmail's 1 MiB MDS packets
    const d = new PacketDecoder();
    expect(d.maxPacketSize).toBe(4 * 1024 * 1024);
    expect(() => d.push(Buffer.from('41414141', 'hex'))).toThrow(/exceeds the limit/);
    expect(() => new PacketDecoder({ maxPacketSize: 0 })).toThrow(RangeError);
  });

  it('accepts a header packet larger than 64 KiB, as Postfix sends', () => {
    const value = Buffer.alloc(100_000, 0x78);
    const [packet] = decodePackets(encodeCommand({ type: 'header', name: 'X-Big', value }));
    expect(decodeCommand(packet as never)).toEqual({ type: 'header', name: 'X-Big', value });
  });

  it('decodePackets refuses trailing partial data', () => {
    expect(() => decodePackets(Buffer.from('0000000563', 'hex'))).toThrow(/trailing bytes/);
  });

  it('property: any fragmentation of a command stream decodes to the same commands', () => {
    fc.assert(
      fc.property(fc.array(arbitraryCommand, { minLength: 1, maxLength: 25 }), fc.array(fc.nat(), { maxLength: 60 }), (commands, cuts) => {
        const wire = Buffer.concat(commands.map(encodeCommand));
        const decoder = new PacketDecoder();
        const decoded: MilterCommand[] = [];
        for (const part of split(wire, cuts)) for (const p of decoder.push(part)) decoded.push(decodeCommand(p));
        expect(decoder.hasPartialPacket).toBe(false);
        expect(decoded).toEqual(commands);
      }),
      { numRuns: 300 },
    );
  });

  it('property: byte-by-byte feeding decodes the same as one read', () => {
    fc.assert(
      fc.property(fc.array(arbitraryCommand, { minLength: 1, maxLength: 6 }), (commands) => {
        const wire = Buffer.concat(commands.map(encodeCommand));
        const decoder = new PacketDecoder();
        const decoded: MilterCommand[] = [];
        for (let i = 0; i < wire.length; i++) for (const p of decoder.push(wire.subarray(i, i + 1))) decoded.push(decodeCommand(p));
        expect(decoded).toEqual(commands);
      }),
      { numRuns: 60 },
    );
  });

  it('property: any fragmentation of a response stream decodes to the same responses', () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryResponse, { minLength: 1, maxLength: 25 }),
        fc.array(fc.nat(), { maxLength: 60 }),
        (responses, cuts) => {
          const wire = Buffer.concat(responses.map(encodeResponse));
          const decoder = new PacketDecoder();
          const decoded: MilterResponse[] = [];
          for (const part of split(wire, cuts)) for (const p of decoder.push(part)) decoded.push(decodeResponse(p));
          expect(decoded).toEqual(responses);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: garbage either decodes or fails with a MilterProtocolError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 10 }), (garbage, cuts) => {
        const decoder = new PacketDecoder({ maxPacketSize: 1 << 16 });
        try {
          for (const part of split(Buffer.from(garbage), cuts)) {
            for (const p of decoder.push(part)) {
              decodeCommand(p);
              decodeResponse(p);
            }
          }
        } catch (error) {
          expect(error).toBeInstanceOf(MilterProtocolError);
        }
      }),
      { numRuns: 500 },
    );
  });
});
