/**
 * The milter wire format: PacketDecoder gives the same packets (or the same protocol error)
 * whatever the read sizes, and stays failed after an error; every packet decodes as a
 * command (MTA to filter) or a response (filter to MTA), or gives a MilterProtocolError
 * naming the stage; what decodes, encodes and decodes again unchanged. SMTP reply texts
 * and macro packets go through parseSmtpReply and MacroStore.
 */
import { Buffer } from 'node:buffer';
import {
  MacroStore,
  MilterError,
  MilterProtocolError,
  type Packet,
  PacketDecoder,
  decodeCommand,
  decodeResponse,
  encodeCommand,
  encodeResponse,
  formatSmtpReply,
  parseSmtpReply,
} from '@inkan/milter-protocol';
import { type FuzzTarget, check, chunks, sameData, show, splitPoints } from '../target.js';

interface Decoded {
  packets: Packet[];
  error?: string;
}

function decode(pieces: readonly Buffer[], maxPacketSize: number): Decoded {
  const decoder = new PacketDecoder({ maxPacketSize });
  const packets: Packet[] = [];
  for (const piece of pieces) {
    try {
      // Copies: a packet inside one read is a view of that read.
      for (const p of decoder.push(piece)) packets.push({ code: p.code, payload: Buffer.from(p.payload) });
    } catch (error) {
      check(error instanceof MilterProtocolError, () => `PacketDecoder threw ${show(String(error))}`);
      let again: unknown;
      try {
        decoder.push(piece);
      } catch (e) {
        again = e;
      }
      check(again === error, 'PacketDecoder went on after a protocol error');
      return { packets, error: error.message };
    }
  }
  check(decoder.hasPartialPacket === decoder.bufferedBytes > 0, 'hasPartialPacket and bufferedBytes disagree');
  return { packets };
}

/** Decode one way, encode, decode again: the same value. Protocol errors are fine. */
function roundTrip<T>(what: string, packet: Packet, dec: (p: Packet) => T, enc: (v: T) => Buffer): T | undefined {
  let value: T;
  try {
    value = dec(packet);
  } catch (error) {
    check(error instanceof MilterProtocolError, () => `decoding a ${what} threw ${show(String(error))}, not a MilterProtocolError`);
    check(/^[A-Za-z]+: /.test(error.message), () => `a ${what} error without its stage: ${show(error.message)}`);
    return undefined;
  }
  const bytes = enc(value);
  const again = new PacketDecoder().push(bytes);
  check(again.length === 1, () => `an encoded ${what} is ${again.length} packets`);
  const first = again[0] as Packet;
  check(first.code === packet.code, () => `an encoded ${what} changed code ${packet.code} to ${first.code}`);
  check(sameData(dec(first), value), () => `a ${what} changed by encoding: ${show(value)} became ${show(dec(first))}`);
  return value;
}

export const target: FuzzTarget = {
  name: 'milter-decoder',
  description: 'PacketDecoder, decodeCommand/decodeResponse round trips, parseSmtpReply, MacroStore',
  maxLength: 4096,
  dictionary: [
    // Length prefixes and command codes (SMFIC_*), response codes (SMFIR_*).
    '\x00\x00\x00\x01',
    '\x00\x00\x00\x0d',
    '\x00\x00\x00\x00',
    '\xff\xff\xff\xff',
    'O',
    'D',
    'C',
    'H',
    'M',
    'R',
    'T',
    'L',
    'N',
    'B',
    'E',
    'A',
    'U',
    'Q',
    'K',
    '\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff',
    'h',
    'i',
    'c',
    'y',
    '+',
    '-',
    'm',
    'p',
    '\x00',
    '{daemon_name}\x00',
    '<user@example.org>\x00',
    '550 5.7.1 rejected',
    '421-4.7.0 a\r\n421 4.7.0 b',
    '%%',
  ],
  fuzz(data) {
    const sizes = splitPoints(data, data.length, 16);
    for (const max of [64, 1 << 22]) {
      const whole = decode([data], max);
      const split = decode(chunks(data, sizes), max);
      // On a protocol error, the packets completed earlier in the same read are not returned
      // (the read throws): smaller reads may return more of them, never others.
      const same =
        whole.error === undefined
          ? sameData(split, whole)
          : split.error === whole.error && sameData(split.packets.slice(0, whole.packets.length), whole.packets);
      check(same, () => `max ${max}: read in chunks ${show(sizes.slice(0, 12))} the stream decodes differently`);
      for (const packet of whole.packets) {
        check(packet.payload.length + 1 <= max, 'a packet over the size limit came through');
        roundTrip('command', packet, decodeCommand, encodeCommand);
        const response = roundTrip('response', packet, decodeResponse, encodeResponse);
        if (response?.type === 'replyCode') {
          try {
            const reply = parseSmtpReply(response.text);
            check(reply.code >= 400 && reply.code <= 599, () => `parseSmtpReply gave code ${reply.code}`);
            try {
              formatSmtpReply(reply);
            } catch (error) {
              check(error instanceof MilterError, () => `formatSmtpReply threw ${show(String(error))}`);
            }
          } catch (error) {
            check(error instanceof MilterError, () => `parseSmtpReply threw ${show(String(error))}`);
          }
        }
      }
      const macros = new MacroStore();
      for (const packet of whole.packets) {
        let command: ReturnType<typeof decodeCommand>;
        try {
          command = decodeCommand(packet);
        } catch {
          continue;
        }
        if (command.type !== 'macro') continue;
        macros.set(command.command, command.macros);
        for (const [name] of command.macros) macros.get(name);
      }
    }
  },
};
