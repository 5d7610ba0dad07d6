import fc from 'fast-check';
import type { MilterCommand, MilterResponse } from '../src/index.js';

/** fast-check generators for every command and response (shared by the property tests). */

/** Latin1 text without NUL (what NUL-terminated fields can carry). */
export const text = (max = 40) => fc.string({ unit: fc.integer({ min: 1, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: max });
export const nonEmptyText = (max = 40) => text(max).filter((s) => s.length > 0);
export const bytesNoNul = (max = 200) => fc.uint8Array({ min: 1, max: 255, maxLength: max }).map((a) => Buffer.from(a));
export const anyBytes = (max = 3000) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

export const arbitraryCommand: fc.Arbitrary<MilterCommand> = fc.oneof(
  fc.record({ type: fc.constant('negotiate' as const), version: fc.nat(), actions: fc.nat(), protocol: fc.nat() }),
  fc.record({
    type: fc.constant('macro' as const),
    command: fc.constantFrom('C', 'H', 'M', 'R', 'T', 'L', 'N', 'B', 'E'),
    macros: fc.array(fc.tuple(nonEmptyText(10), text(30)), { maxLength: 5 }),
  }),
  fc.oneof(
    fc.record({
      type: fc.constant('connect' as const),
      hostname: text(),
      family: fc.constantFrom('inet' as const, 'inet6' as const, 'unix' as const),
      port: fc.integer({ min: 0, max: 65535 }),
      address: text(),
    }),
    fc.record({
      type: fc.constant('connect' as const),
      hostname: text(),
      family: fc.constant('unknown' as const),
      port: fc.constant(0),
      address: fc.constant(''),
    }),
  ),
  fc.record({ type: fc.constant('helo' as const), hostname: text() }),
  fc.record({ type: fc.constant('mail' as const), sender: text(), args: fc.array(text(), { maxLength: 3 }) }),
  fc.record({ type: fc.constant('rcpt' as const), recipient: text(), args: fc.array(text(), { maxLength: 3 }) }),
  fc.constant({ type: 'data' as const }),
  fc.record({ type: fc.constant('header' as const), name: nonEmptyText(), value: bytesNoNul() }),
  fc.constant({ type: 'endOfHeaders' as const }),
  fc.record({ type: fc.constant('body' as const), chunk: anyBytes() }),
  fc.record({ type: fc.constant('endOfMessage' as const), chunk: anyBytes(20) }),
  fc.constant({ type: 'abort' as const }),
  fc.record({ type: fc.constant('unknown' as const), line: text() }),
  fc.constant({ type: 'quit' as const }),
  fc.constant({ type: 'quitNewConnection' as const }),
);

export const arbitraryResponse: fc.Arbitrary<MilterResponse> = fc.oneof(
  fc.record({
    type: fc.constant('negotiate' as const),
    version: fc.nat(),
    actions: fc.nat(),
    protocol: fc.nat(),
    macros: fc.array(fc.record({ stage: fc.integer({ min: 0, max: 6 }), names: text() }), { maxLength: 3 }),
  }),
  fc.constantFrom<MilterResponse>(
    { type: 'accept' },
    { type: 'continue' },
    { type: 'discard' },
    { type: 'reject' },
    { type: 'tempfail' },
    { type: 'skip' },
    { type: 'progress' },
  ),
  fc.record({ type: fc.constant('replyCode' as const), text: text() }),
  fc.record({ type: fc.constant('addHeader' as const), name: text(), value: bytesNoNul() }),
  fc.record({ type: fc.constant('insertHeader' as const), index: fc.nat(), name: text(), value: bytesNoNul() }),
  fc.record({ type: fc.constant('changeHeader' as const), index: fc.nat(), name: text(), value: bytesNoNul() }),
  fc.record({ type: fc.constant('changeFrom' as const), sender: text(), args: text() }),
  fc.record({ type: fc.constant('addRcpt' as const), recipient: text() }),
  fc.record({ type: fc.constant('addRcptPar' as const), recipient: text(), args: text() }),
  fc.record({ type: fc.constant('delRcpt' as const), recipient: text() }),
  fc.record({ type: fc.constant('replaceBody' as const), chunk: anyBytes() }),
  fc.record({ type: fc.constant('quarantine' as const), reason: text() }),
);
