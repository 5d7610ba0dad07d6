import { describe, expect, it } from 'vitest';
import {
  type MilterCommand,
  MilterError,
  MilterProtocolError,
  type MilterResponse,
  codeName,
  decodeCommand,
  decodeResponse,
  describeActions,
  describeProtocol,
  encodeCommand,
  encodePacket,
  encodeResponse,
  isFinalResponse,
  isModification,
  normalizeAddress,
} from '../src/index.js';

/** Hex of a buffer with spaces removed from the expectation. */
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const bytes = (s: string) => Buffer.from(s, 'latin1');

function frame(code: string, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const p = typeof payload === 'string' ? bytes(payload) : payload;
  const out = Buffer.alloc(5 + p.length);
  out.writeUInt32BE(p.length + 1, 0);
  out.write(code, 4, 'latin1');
  p.copy(out, 5);
  return out;
}

function packetOf(buffer: Buffer) {
  const length = buffer.readUInt32BE(0);
  expect(length).toBe(buffer.length - 4);
  return { code: buffer[4] as number, payload: buffer.subarray(5) };
}

describe('commands (MTA to filter): exact bytes, both ways', () => {
  const cases: Array<[string, MilterCommand, Buffer]> = [
    [
      'SMFIC_OPTNEG as Postfix and miltertest send it',
      { type: 'negotiate', version: 6, actions: 0x1ff, protocol: 0x1fffff },
      hex('0000000d 4f 00000006 000001ff 001fffff'),
    ],
    [
      'SMFIC_MACRO',
      {
        type: 'macro',
        command: 'C',
        macros: [
          ['j', 'mx.example.org'],
          ['{daemon_name}', 'smtpd'],
        ],
      },
      frame('D', 'Cj\0mx.example.org\0{daemon_name}\0smtpd\0'),
    ],
    ['SMFIC_MACRO with no macros (Postfix sends "D H")', { type: 'macro', command: 'H', macros: [] }, hex('00000002 44 48')],
    [
      'SMFIC_CONNECT inet, as captured from Postfix',
      { type: 'connect', hostname: 'localhost', family: 'inet', port: 0xc26a, address: '127.0.0.1' },
      frame('C', Buffer.concat([bytes('localhost\0'), bytes('4'), hex('c26a'), bytes('127.0.0.1\0')])),
    ],
    [
      'SMFIC_CONNECT inet6',
      { type: 'connect', hostname: '[::1]', family: 'inet6', port: 25, address: '::1' },
      frame('C', Buffer.concat([bytes('[::1]\0'), bytes('6'), hex('0019'), bytes('::1\0')])),
    ],
    [
      'SMFIC_CONNECT unix',
      { type: 'connect', hostname: 'localhost', family: 'unix', port: 0, address: '/run/smtp.sock' },
      frame('C', Buffer.concat([bytes('localhost\0'), bytes('L'), hex('0000'), bytes('/run/smtp.sock\0')])),
    ],
    [
      'SMFIC_CONNECT unknown family',
      { type: 'connect', hostname: 'unknown', family: 'unknown', port: 0, address: '' },
      frame('C', 'unknown\0U'),
    ],
    ['SMFIC_HELO', { type: 'helo', hostname: 'client.example.org' }, frame('H', 'client.example.org\0')],
    [
      'SMFIC_MAIL with ESMTP args',
      { type: 'mail', sender: '<a@example.org>', args: ['SIZE=123', 'BODY=8BITMIME'] },
      frame('M', '<a@example.org>\0SIZE=123\0BODY=8BITMIME\0'),
    ],
    ['SMFIC_MAIL null sender', { type: 'mail', sender: '<>', args: [] }, frame('M', '<>\0')],
    ['SMFIC_RCPT', { type: 'rcpt', recipient: '<b@example.net>', args: ['NOTIFY=NEVER'] }, frame('R', '<b@example.net>\0NOTIFY=NEVER\0')],
    ['SMFIC_DATA', { type: 'data' }, hex('00000001 54')],
    [
      'SMFIC_HEADER',
      { type: 'header', name: 'Subject', value: bytes(' Gr\xfc\xdfe\n\tfolded') },
      frame('L', 'Subject\0 Gr\xfc\xdfe\n\tfolded\0'),
    ],
    ['SMFIC_HEADER with empty value', { type: 'header', name: 'X-Empty', value: Buffer.alloc(0) }, frame('L', 'X-Empty\0\0')],
    ['SMFIC_EOH', { type: 'endOfHeaders' }, hex('00000001 4e')],
    ['SMFIC_BODY (binary safe)', { type: 'body', chunk: hex('00ff0d0a41') }, frame('B', hex('00ff0d0a41'))],
    ['SMFIC_BODYEOB', { type: 'endOfMessage', chunk: Buffer.alloc(0) }, hex('00000001 45')],
    ['SMFIC_BODYEOB with a last chunk', { type: 'endOfMessage', chunk: bytes('tail') }, frame('E', 'tail')],
    ['SMFIC_ABORT', { type: 'abort' }, hex('00000001 41')],
    ['SMFIC_UNKNOWN', { type: 'unknown', line: 'XYZZY plugh' }, frame('U', 'XYZZY plugh\0')],
    ['SMFIC_QUIT', { type: 'quit' }, hex('00000001 51')],
    ['SMFIC_QUIT_NC', { type: 'quitNewConnection' }, hex('00000001 4b')],
  ];
  it.each(cases)('%s', (_name, command, wire) => {
    expect(encodeCommand(command).toString('hex')).toBe(wire.toString('hex'));
    expect(decodeCommand(packetOf(wire))).toEqual(command);
  });

  it('pads an odd macro list with an empty value', () => {
    expect(decodeCommand(packetOf(frame('D', 'Mi\0Q1\0{auth_type}\0')))).toEqual({
      type: 'macro',
      command: 'M',
      macros: [
        ['i', 'Q1'],
        ['{auth_type}', ''],
      ],
    });
  });

  it('tolerates a missing final NUL and stray data on data-less commands', () => {
    expect(decodeCommand(packetOf(frame('H', 'no-nul')))).toEqual({ type: 'helo', hostname: 'no-nul' });
    expect(decodeCommand(packetOf(frame('L', 'Subject\0value-without-nul')))).toEqual({
      type: 'header',
      name: 'Subject',
      value: bytes('value-without-nul'),
    });
    expect(decodeCommand(packetOf(frame('L', 'X-Name-Only')))).toEqual({ type: 'header', name: 'X-Name-Only', value: Buffer.alloc(0) });
    expect(decodeCommand(packetOf(frame('Q', 'junk')))).toEqual({ type: 'quit' });
    expect(decodeCommand(packetOf(frame('C', 'host\0')))).toEqual({
      type: 'connect',
      hostname: 'host',
      family: 'unknown',
      port: 0,
      address: '',
    });
    expect(decodeCommand(packetOf(frame('M')))).toEqual({ type: 'mail', sender: '', args: [] });
  });

  it('rejects malformed commands with stage-prefixed protocol errors', () => {
    const bad: Array<[Buffer, RegExp]> = [
      [frame('O', hex('00000006 000001ff')), /^negotiate: payload too short for protocol/],
      [frame('C', 'host\0X'), /^connect: unknown address family 'X'/],
      [frame('C', 'host\0' + '4'), /^connect: payload too short for port/],
      [frame('D'), /^macro: missing command letter/],
      [frame('Z'), /^decode: unknown command code 'Z'/],
      [frame('\x07'), /^decode: unknown command code 0x07/],
    ];
    for (const [wire, message] of bad) {
      let error: unknown;
      try {
        decodeCommand(packetOf(wire));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MilterProtocolError);
      expect((error as Error).message).toMatch(message);
    }
  });

  it('refuses to encode strings with NUL bytes, which would desync the stream', () => {
    expect(() => encodeCommand({ type: 'helo', hostname: 'a\0b' })).toThrow(MilterError);
    expect(() => encodeCommand({ type: 'header', name: 'X', value: bytes('a\0b') })).toThrow(/^encode: header value contains a NUL byte/);
    expect(() => encodeCommand({ type: 'macro', command: 'CH', macros: [] })).toThrow(/one character/);
  });
});

describe('responses (filter to MTA): exact bytes, both ways', () => {
  const cases: Array<[string, MilterResponse, Buffer]> = [
    [
      'SMFIR_OPTNEG without macro lists',
      { type: 'negotiate', version: 6, actions: 0x1, protocol: 0x100080, macros: [] },
      hex('0000000d 4f 00000006 00000001 00100080'),
    ],
    [
      'SMFIR_OPTNEG with macro lists',
      {
        type: 'negotiate',
        version: 6,
        actions: 0x101,
        protocol: 0,
        macros: [
          { stage: 2, names: 'i {mail_addr}' },
          { stage: 5, names: 'i' },
        ],
      },
      Buffer.concat([
        hex('00000025 4f 00000006 00000101 00000000'),
        hex('00000002'),
        bytes('i {mail_addr}\0'),
        hex('00000005'),
        bytes('i\0'),
      ]),
    ],
    ['SMFIR_ACCEPT', { type: 'accept' }, hex('00000001 61')],
    ['SMFIR_CONTINUE', { type: 'continue' }, hex('00000001 63')],
    ['SMFIR_DISCARD', { type: 'discard' }, hex('00000001 64')],
    ['SMFIR_REJECT', { type: 'reject' }, hex('00000001 72')],
    ['SMFIR_TEMPFAIL', { type: 'tempfail' }, hex('00000001 74')],
    ['SMFIR_REPLYCODE', { type: 'replyCode', text: '550 5.7.1 no thanks' }, frame('y', '550 5.7.1 no thanks\0')],
    ['SMFIR_SKIP', { type: 'skip' }, hex('00000001 73')],
    ['SMFIR_PROGRESS', { type: 'progress' }, hex('00000001 70')],
    ['SMFIR_ADDHEADER', { type: 'addHeader', name: 'X-A', value: bytes(' v\n\tw') }, frame('h', 'X-A\0 v\n\tw\0')],
    [
      'SMFIR_INSHEADER',
      { type: 'insertHeader', index: 0, name: 'X-I', value: bytes(' top') },
      frame('i', Buffer.concat([hex('00000000'), bytes('X-I\0 top\0')])),
    ],
    [
      'SMFIR_CHGHEADER',
      { type: 'changeHeader', index: 2, name: 'Subject', value: bytes(' new') },
      frame('m', Buffer.concat([hex('00000002'), bytes('Subject\0 new\0')])),
    ],
    [
      'SMFIR_CHGHEADER (delete)',
      { type: 'changeHeader', index: 1, name: 'X-D', value: Buffer.alloc(0) },
      frame('m', Buffer.concat([hex('00000001'), bytes('X-D\0\0')])),
    ],
    ['SMFIR_CHGFROM', { type: 'changeFrom', sender: '<new@example.org>' }, frame('e', '<new@example.org>\0')],
    [
      'SMFIR_CHGFROM with args',
      { type: 'changeFrom', sender: '<new@example.org>', args: 'RET=HDRS' },
      frame('e', '<new@example.org>\0RET=HDRS\0'),
    ],
    ['SMFIR_ADDRCPT', { type: 'addRcpt', recipient: '<c@example.net>' }, frame('+', '<c@example.net>\0')],
    [
      'SMFIR_ADDRCPT_PAR',
      { type: 'addRcptPar', recipient: '<c@example.net>', args: 'NOTIFY=NEVER' },
      frame('2', '<c@example.net>\0NOTIFY=NEVER\0'),
    ],
    ['SMFIR_ADDRCPT_PAR without args', { type: 'addRcptPar', recipient: '<c@example.net>' }, frame('2', '<c@example.net>\0')],
    ['SMFIR_DELRCPT', { type: 'delRcpt', recipient: '<d@example.net>' }, frame('-', '<d@example.net>\0')],
    ['SMFIR_REPLBODY', { type: 'replaceBody', chunk: bytes('new body\r\n') }, frame('b', 'new body\r\n')],
    ['SMFIR_REPLBODY empty', { type: 'replaceBody', chunk: Buffer.alloc(0) }, hex('00000001 62')],
    ['SMFIR_QUARANTINE', { type: 'quarantine', reason: 'suspicious' }, frame('q', 'suspicious\0')],
    ['SMFIR_SETSYMLIST', { type: 'setSymbolList', stage: 2, names: 'i' }, frame('l', Buffer.concat([hex('00000002'), bytes('i\0')]))],
    ['SMFIR_SHUTDOWN', { type: 'shutdown' }, hex('00000001 34')],
    ['SMFIR_CONN_FAIL', { type: 'connectionFail' }, hex('00000001 66')],
  ];
  it.each(cases)('%s', (_name, response, wire) => {
    expect(encodeResponse(response).toString('hex')).toBe(wire.toString('hex'));
    expect(decodeResponse(packetOf(wire))).toEqual(response);
  });

  it('classifies final replies and modifications', () => {
    for (const [, r] of cases) {
      const final = ['accept', 'continue', 'discard', 'reject', 'tempfail', 'replyCode', 'skip'].includes(r.type);
      expect(isFinalResponse(r)).toBe(final);
      expect(isModification(r)).toBe(!final && !['negotiate', 'progress', 'setSymbolList', 'shutdown', 'connectionFail'].includes(r.type));
    }
  });

  it('rejects unknown and short responses', () => {
    expect(() => decodeResponse(packetOf(frame('Z')))).toThrow(/^response: unknown response code 'Z'/);
    expect(() => decodeResponse(packetOf(frame('i', hex('0001'))))).toThrow(/^response: payload too short for index/);
    expect(() => decodeResponse(packetOf(frame('O', hex('00000006'))))).toThrow(MilterProtocolError);
  });
});

describe('helpers', () => {
  it('frames packets with the length counting the code byte', () => {
    expect(encodePacket(0x63).toString('hex')).toBe('0000000163');
    expect(encodePacket(0x42, bytes('ab'), bytes('c')).toString('hex')).toBe('0000000442616263');
  });

  it('names flags with their libmilter names', () => {
    expect(describeActions(0x1ff)).toBe(
      'SMFIF_ADDHDRS|SMFIF_CHGBODY|SMFIF_ADDRCPT|SMFIF_DELRCPT|SMFIF_CHGHDRS|SMFIF_QUARANTINE|SMFIF_CHGFROM|SMFIF_ADDRCPT_PAR|SMFIF_SETSYMLIST',
    );
    expect(describeProtocol(0x100080)).toBe('SMFIP_NR_HDR|SMFIP_HDR_LEADSPC');
    expect(describeProtocol(0x30000000)).toBe('SMFIP_MDS_256K|SMFIP_MDS_1M');
    expect(describeProtocol(0x80000000)).toBe('0x80000000');
    expect(describeActions(0)).toBe('0');
    expect(codeName(0x4c)).toBe("'L'");
  });

  it('normalises connect addresses', () => {
    expect(normalizeAddress('127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddress('IPv6:2001:db8::1')).toBe('2001:db8::1');
    expect(normalizeAddress('[IPv6:2001:db8::1]')).toBe('2001:db8::1');
    expect(normalizeAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(normalizeAddress('[192.0.2.1]')).toBe('192.0.2.1');
  });
});
