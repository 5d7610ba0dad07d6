import { AddressFamily, CommandCode, codeName } from './constants.js';
import type { Packet } from './decoder.js';
import { encodePacket } from './encoder.js';
import { MilterProtocolError } from './errors.js';
import { PayloadReader, cString, uint16, uint32 } from './wire.js';

/** The connect command's address family: SMFIA_INET '4', SMFIA_INET6 '6', SMFIA_UNIX 'L', SMFIA_UNKNOWN 'U'. */
export type ConnectFamily = 'inet' | 'inet6' | 'unix' | 'unknown';

/** A macro name and value, as sent (names may be `i` or `{i}`). */
export type MacroPair = [name: string, value: string];

/**
 * Everything the MTA sends to the filter, typed. Text fields are latin1 strings (lossless
 * for any byte); header values and body chunks are Buffers.
 */
export type MilterCommand =
  /** SMFIC_OPTNEG: the MTA's offer. */
  | { type: 'negotiate'; version: number; actions: number; protocol: number }
  /** SMFIC_MACRO: macros for the command with letter `command` ('C', 'H', 'M', 'R', 'T', 'L', 'N', 'B', 'E', ...). */
  | { type: 'macro'; command: string; macros: MacroPair[] }
  /** SMFIC_CONNECT: client host name, family and (except for 'unknown') port and address. */
  | { type: 'connect'; hostname: string; family: ConnectFamily; port: number; address: string }
  /** SMFIC_HELO */
  | { type: 'helo'; hostname: string }
  /** SMFIC_MAIL: the sender as given (with or without <>), then ESMTP arguments. */
  | { type: 'mail'; sender: string; args: string[] }
  /** SMFIC_RCPT: the recipient as given, then ESMTP arguments. */
  | { type: 'rcpt'; recipient: string; args: string[] }
  /** SMFIC_DATA */
  | { type: 'data' }
  /** SMFIC_HEADER: field name and value bytes (see the session docs for leading space and folding). */
  | { type: 'header'; name: string; value: Buffer }
  /** SMFIC_EOH */
  | { type: 'endOfHeaders' }
  /** SMFIC_BODY: raw body bytes (CRLF line ends from real MTAs, split anywhere). */
  | { type: 'body'; chunk: Buffer }
  /** SMFIC_BODYEOB: end of message; libmilter treats data here as a last body chunk. */
  | { type: 'endOfMessage'; chunk: Buffer }
  /** SMFIC_ABORT */
  | { type: 'abort' }
  /** SMFIC_UNKNOWN: the unrecognised SMTP command line. */
  | { type: 'unknown'; line: string }
  /** SMFIC_QUIT */
  | { type: 'quit' }
  /** SMFIC_QUIT_NC */
  | { type: 'quitNewConnection' };

export type MilterCommandType = MilterCommand['type'];

const FAMILY_CODE: Record<ConnectFamily, number> = {
  inet: AddressFamily.Inet,
  inet6: AddressFamily.Inet6,
  unix: AddressFamily.Unix,
  unknown: AddressFamily.Unknown,
};

/** Encode a command as one framed packet. */
export function encodeCommand(command: MilterCommand): Buffer {
  switch (command.type) {
    case 'negotiate':
      return encodePacket(CommandCode.Negotiate, uint32(command.version), uint32(command.actions), uint32(command.protocol));
    case 'macro': {
      if (command.command.length !== 1)
        throw new MilterProtocolError('encode', `macro command letter must be one character, not "${command.command}"`);
      const parts: Buffer[] = [Buffer.from(command.command, 'latin1')];
      for (const [name, value] of command.macros)
        parts.push(cString(name, 'encode', 'macro name'), cString(value, 'encode', 'macro value'));
      return encodePacket(CommandCode.Macro, ...parts);
    }
    case 'connect': {
      const parts: Buffer[] = [cString(command.hostname, 'encode', 'connect host name'), Buffer.of(FAMILY_CODE[command.family])];
      if (command.family !== 'unknown') parts.push(uint16(command.port), cString(command.address, 'encode', 'connect address'));
      return encodePacket(CommandCode.Connect, ...parts);
    }
    case 'helo':
      return encodePacket(CommandCode.Helo, cString(command.hostname, 'encode', 'HELO name'));
    case 'mail':
      return encodePacket(CommandCode.Mail, ...[command.sender, ...command.args].map((a) => cString(a, 'encode', 'MAIL argument')));
    case 'rcpt':
      return encodePacket(CommandCode.Rcpt, ...[command.recipient, ...command.args].map((a) => cString(a, 'encode', 'RCPT argument')));
    case 'data':
      return encodePacket(CommandCode.Data);
    case 'header':
      return encodePacket(
        CommandCode.Header,
        cString(command.name, 'encode', 'header name'),
        cString(command.value, 'encode', 'header value'),
      );
    case 'endOfHeaders':
      return encodePacket(CommandCode.EndOfHeaders);
    case 'body':
      return encodePacket(CommandCode.Body, command.chunk);
    case 'endOfMessage':
      return encodePacket(CommandCode.EndOfMessage, command.chunk);
    case 'abort':
      return encodePacket(CommandCode.Abort);
    case 'unknown':
      return encodePacket(CommandCode.Unknown, cString(command.line, 'encode', 'unknown command'));
    case 'quit':
      return encodePacket(CommandCode.Quit);
    case 'quitNewConnection':
      return encodePacket(CommandCode.QuitNewConnection);
  }
}

/** The stage name used in errors for a command code. */
export function commandStage(code: number): string {
  switch (code) {
    case CommandCode.Negotiate:
      return 'negotiate';
    case CommandCode.Macro:
      return 'macro';
    case CommandCode.Connect:
      return 'connect';
    case CommandCode.Helo:
      return 'helo';
    case CommandCode.Mail:
      return 'mail';
    case CommandCode.Rcpt:
      return 'rcpt';
    case CommandCode.Data:
      return 'data';
    case CommandCode.Header:
      return 'header';
    case CommandCode.EndOfHeaders:
      return 'endOfHeaders';
    case CommandCode.Body:
      return 'body';
    case CommandCode.EndOfMessage:
      return 'endOfMessage';
    case CommandCode.Abort:
      return 'abort';
    case CommandCode.Unknown:
      return 'unknown';
    case CommandCode.Quit:
      return 'quit';
    case CommandCode.QuitNewConnection:
      return 'quitNewConnection';
    default:
      return 'decode';
  }
}

/**
 * Decode a packet the MTA sent (stray data after the fields of data-less commands is ignored,
 * as libmilter does). Throws MilterProtocolError (prefixed with the stage) if it is malformed. */
export function decodeCommand(packet: Packet): MilterCommand {
  const stage = commandStage(packet.code);
  const r = new PayloadReader(packet.payload, stage);
  switch (packet.code) {
    case CommandCode.Negotiate: {
      const version = r.uint32('version');
      const actions = r.uint32('actions');
      const protocol = r.uint32('protocol');
      return { type: 'negotiate', version, actions, protocol };
    }
    case CommandCode.Macro: {
      if (packet.payload.length < 1) throw new MilterProtocolError(stage, 'missing command letter');
      const command = String.fromCharCode(r.byte('command letter'));
      const list = r.strings('macro');
      if (list.length % 2 === 1) list.push('');
      const macros: MacroPair[] = [];
      for (let i = 0; i < list.length; i += 2) macros.push([list[i] as string, list[i + 1] as string]);
      return { type: 'macro', command, macros };
    }
    case CommandCode.Connect: {
      const hostname = r.string('host name');
      if (r.remaining === 0) return { type: 'connect', hostname, family: 'unknown', port: 0, address: '' };
      const familyCode = r.byte('family');
      let family: ConnectFamily;
      switch (familyCode) {
        case AddressFamily.Inet:
          family = 'inet';
          break;
        case AddressFamily.Inet6:
          family = 'inet6';
          break;
        case AddressFamily.Unix:
          family = 'unix';
          break;
        case AddressFamily.Unknown:
          return { type: 'connect', hostname, family: 'unknown', port: 0, address: '' };
        default:
          throw new MilterProtocolError(stage, `unknown address family ${codeName(familyCode)}`);
      }
      const port = r.uint16('port');
      const address = r.remaining > 0 ? r.string('address') : '';
      return { type: 'connect', hostname, family, port, address };
    }
    case CommandCode.Helo:
      return { type: 'helo', hostname: r.optionalString('HELO name') ?? '' };
    case CommandCode.Mail: {
      const [sender = '', ...args] = r.strings('argument');
      return { type: 'mail', sender, args };
    }
    case CommandCode.Rcpt: {
      const [recipient = '', ...args] = r.strings('argument');
      return { type: 'rcpt', recipient, args };
    }
    case CommandCode.Data:
      return { type: 'data' };
    case CommandCode.Header: {
      const name = r.string('header name');
      const value = r.remaining > 0 ? r.bytes('header value') : Buffer.alloc(0);
      return { type: 'header', name, value };
    }
    case CommandCode.EndOfHeaders:
      return { type: 'endOfHeaders' };
    case CommandCode.Body:
      return { type: 'body', chunk: r.rest() };
    case CommandCode.EndOfMessage:
      return { type: 'endOfMessage', chunk: r.rest() };
    case CommandCode.Abort:
      return { type: 'abort' };
    case CommandCode.Unknown:
      return { type: 'unknown', line: r.optionalString('command') ?? '' };
    case CommandCode.Quit:
      return { type: 'quit' };
    case CommandCode.QuitNewConnection:
      return { type: 'quitNewConnection' };
    default:
      throw new MilterProtocolError('decode', `unknown command code ${codeName(packet.code)}`);
  }
}

/**
 * The IP address in a connect address, normalised: without an "IPv6:" prefix or brackets,
 * and IPv4-mapped IPv6 addresses as IPv4. Non-IP addresses (unix socket paths) come back as is.
 */
export function normalizeAddress(address: string): string {
  let a = address.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  if (/^ipv6:/i.test(a)) a = a.slice(5);
  const mapped = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i.exec(a);
  if (mapped) a = mapped[1] as string;
  return a;
}
