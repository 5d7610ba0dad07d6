/**
 * Frame a packet: `uint32 BE length | code | data`, where length counts the code byte.
 * The parts are copied once into a single buffer.
 */
export function encodePacket(code: number, ...parts: Buffer[]): Buffer {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = Buffer.allocUnsafe(5 + size);
  out.writeUInt32BE(size + 1, 0);
  out[4] = code;
  let offset = 5;
  for (const part of parts) {
    part.copy(out, offset);
    offset += part.length;
  }
  return out;
}
