import { ResponseCode, codeName } from './constants.js';
import type { Packet } from './decoder.js';
import { encodePacket } from './encoder.js';
import { MilterProtocolError } from './errors.js';
import { PayloadReader, cString, uint32 } from './wire.js';

/** One macro list of a negotiation reply: an SMFIM_* stage number and space-separated names. */
export interface MacroList {
  stage: number;
  names: string;
}

/**
 * Everything a filter sends to the MTA, typed. Text fields are latin1 strings; header
 * values and body chunks are Buffers.
 */
export type MilterResponse =
  /** SMFIR_OPTNEG (the same code as SMFIC_OPTNEG): the filter's side of negotiation. */
  | { type: 'negotiate'; version: number; actions: number; protocol: number; macros: MacroList[] }
  /** SMFIR_ACCEPT */
  | { type: 'accept' }
  /** SMFIR_CONTINUE */
  | { type: 'continue' }
  /** SMFIR_DISCARD */
  | { type: 'discard' }
  /** SMFIR_REJECT */
  | { type: 'reject' }
  /** SMFIR_TEMPFAIL */
  | { type: 'tempfail' }
  /** SMFIR_REPLYCODE: "550 5.7.1 text" (see formatSmtpReply). */
  | { type: 'replyCode'; text: string }
  /** SMFIR_SKIP */
  | { type: 'skip' }
  /** SMFIR_PROGRESS */
  | { type: 'progress' }
  /** SMFIR_ADDHEADER */
  | { type: 'addHeader'; name: string; value: Buffer }
  /** SMFIR_INSHEADER */
  | { type: 'insertHeader'; index: number; name: string; value: Buffer }
  /** SMFIR_CHGHEADER: an empty value deletes the field. */
  | { type: 'changeHeader'; index: number; name: string; value: Buffer }
  /** SMFIR_CHGFROM: new sender, optional ESMTP arguments (one string). */
  | { type: 'changeFrom'; sender: string; args?: string }
  /** SMFIR_ADDRCPT */
  | { type: 'addRcpt'; recipient: string }
  /** SMFIR_ADDRCPT_PAR: recipient and optional ESMTP arguments (one string). */
  | { type: 'addRcptPar'; recipient: string; args?: string }
  /** SMFIR_DELRCPT */
  | { type: 'delRcpt'; recipient: string }
  /** SMFIR_REPLBODY: one chunk of the new body. */
  | { type: 'replaceBody'; chunk: Buffer }
  /** SMFIR_QUARANTINE */
  | { type: 'quarantine'; reason: string }
  /** SMFIR_SETSYMLIST: defined by libmilter, never used on the wire (macro lists travel in the negotiation reply). */
  | { type: 'setSymbolList'; stage: number; names: string }
  /** SMFIR_SHUTDOWN: sendmail-internal; decoded, never sent by this package. */
  | { type: 'shutdown' }
  /** SMFIR_CONN_FAIL: neither MTA handles it; decoded, never sent by this package. */
  | { type: 'connectionFail' };

export type MilterResponseType = MilterResponse['type'];

/** Responses that end the handling of a command (at end of message: exactly one, last). */
export type FinalResponse = Extract<
  MilterResponse,
  { type: 'accept' | 'continue' | 'discard' | 'reject' | 'tempfail' | 'replyCode' | 'skip' }
>;

/** Message modifications, allowed only at end of message. */
export type Modification = Extract<
  MilterResponse,
  {
    type:
      | 'addHeader'
      | 'insertHeader'
      | 'changeHeader'
      | 'changeFrom'
      | 'addRcpt'
      | 'addRcptPar'
      | 'delRcpt'
      | 'replaceBody'
      | 'quarantine';
  }
>;

const FINAL = new Set<MilterResponseType>(['accept', 'continue', 'discard', 'reject', 'tempfail', 'replyCode', 'skip']);
const MODIFICATION = new Set<MilterResponseType>([
  'addHeader',
  'insertHeader',
  'changeHeader',
  'changeFrom',
  'addRcpt',
  'addRcptPar',
  'delRcpt',
  'replaceBody',
  'quarantine',
]);

export function isFinalResponse(response: MilterResponse): response is FinalResponse {
  return FINAL.has(response.type);
}

export function isModification(response: MilterResponse): response is Modification {
  return MODIFICATION.has(response.type);
}

/** Encode a response as one framed packet. */
export function encodeResponse(response: MilterResponse): Buffer {
  switch (response.type) {
    case 'negotiate': {
      const parts = [uint32(response.version), uint32(response.actions), uint32(response.protocol)];
      for (const list of response.macros) parts.push(uint32(list.stage), cString(list.names, 'encode', 'macro list'));
      return encodePacket(ResponseCode.Negotiate, ...parts);
    }
    case 'accept':
      return encodePacket(ResponseCode.Accept);
    case 'continue':
      return encodePacket(ResponseCode.Continue);
    case 'discard':
      return encodePacket(ResponseCode.Discard);
    case 'reject':
      return encodePacket(ResponseCode.Reject);
    case 'tempfail':
      return encodePacket(ResponseCode.Tempfail);
    case 'replyCode':
      return encodePacket(ResponseCode.ReplyCode, cString(response.text, 'encode', 'reply text'));
    case 'skip':
      return encodePacket(ResponseCode.Skip);
    case 'progress':
      return encodePacket(ResponseCode.Progress);
    case 'addHeader':
      return encodePacket(
        ResponseCode.AddHeader,
        cString(response.name, 'encode', 'header name'),
        cString(response.value, 'encode', 'header value'),
      );
    case 'insertHeader':
      return encodePacket(
        ResponseCode.InsertHeader,
        uint32(response.index),
        cString(response.name, 'encode', 'header name'),
        cString(response.value, 'encode', 'header value'),
      );
    case 'changeHeader':
      return encodePacket(
        ResponseCode.ChangeHeader,
        uint32(response.index),
        cString(response.name, 'encode', 'header name'),
        cString(response.value, 'encode', 'header value'),
      );
    case 'changeFrom':
      return encodePacket(
        ResponseCode.ChangeFrom,
        cString(response.sender, 'encode', 'sender'),
        ...(response.args !== undefined ? [cString(response.args, 'encode', 'ESMTP arguments')] : []),
      );
    case 'addRcpt':
      return encodePacket(ResponseCode.AddRcpt, cString(response.recipient, 'encode', 'recipient'));
    case 'addRcptPar':
      return encodePacket(
        ResponseCode.AddRcptPar,
        cString(response.recipient, 'encode', 'recipient'),
        ...(response.args !== undefined ? [cString(response.args, 'encode', 'ESMTP arguments')] : []),
      );
    case 'delRcpt':
      return encodePacket(ResponseCode.DelRcpt, cString(response.recipient, 'encode', 'recipient'));
    case 'replaceBody':
      return encodePacket(ResponseCode.ReplaceBody, response.chunk);
    case 'quarantine':
      return encodePacket(ResponseCode.Quarantine, cString(response.reason, 'encode', 'quarantine reason'));
    case 'setSymbolList':
      return encodePacket(ResponseCode.SetSymbolList, uint32(response.stage), cString(response.names, 'encode', 'macro list'));
    case 'shutdown':
      return encodePacket(ResponseCode.Shutdown);
    case 'connectionFail':
      return encodePacket(ResponseCode.ConnectionFail);
  }
}

/** Decode a packet a filter sent. Throws MilterProtocolError ("response: ...") if it is malformed. */
export function decodeResponse(packet: Packet): MilterResponse {
  const r = new PayloadReader(packet.payload, 'response');
  switch (packet.code) {
    case ResponseCode.Negotiate: {
      const version = r.uint32('version');
      const actions = r.uint32('actions');
      const protocol = r.uint32('protocol');
      const macros: MacroList[] = [];
      while (r.remaining > 0) {
        const stage = r.uint32('macro stage');
        macros.push({ stage, names: r.remaining > 0 ? r.string('macro list') : '' });
      }
      return { type: 'negotiate', version, actions, protocol, macros };
    }
    case ResponseCode.Accept:
      return { type: 'accept' };
    case ResponseCode.Continue:
      return { type: 'continue' };
    case ResponseCode.Discard:
      return { type: 'discard' };
    case ResponseCode.Reject:
      return { type: 'reject' };
    case ResponseCode.Tempfail:
      return { type: 'tempfail' };
    case ResponseCode.ReplyCode:
      return { type: 'replyCode', text: r.string('reply text') };
    case ResponseCode.Skip:
      return { type: 'skip' };
    case ResponseCode.Progress:
      return { type: 'progress' };
    case ResponseCode.AddHeader: {
      const name = r.string('header name');
      return { type: 'addHeader', name, value: r.remaining > 0 ? r.bytes('header value') : Buffer.alloc(0) };
    }
    case ResponseCode.InsertHeader:
    case ResponseCode.ChangeHeader: {
      const index = r.uint32('index');
      const name = r.string('header name');
      const value = r.remaining > 0 ? r.bytes('header value') : Buffer.alloc(0);
      return { type: packet.code === ResponseCode.InsertHeader ? 'insertHeader' : 'changeHeader', index, name, value };
    }
    case ResponseCode.ChangeFrom: {
      const sender = r.string('sender');
      const args = r.optionalString('ESMTP arguments');
      return args === undefined ? { type: 'changeFrom', sender } : { type: 'changeFrom', sender, args };
    }
    case ResponseCode.AddRcpt:
      return { type: 'addRcpt', recipient: r.string('recipient') };
    case ResponseCode.AddRcptPar: {
      const recipient = r.string('recipient');
      const args = r.optionalString('ESMTP arguments');
      return args === undefined ? { type: 'addRcptPar', recipient } : { type: 'addRcptPar', recipient, args };
    }
    case ResponseCode.DelRcpt:
      return { type: 'delRcpt', recipient: r.string('recipient') };
    case ResponseCode.ReplaceBody:
      return { type: 'replaceBody', chunk: r.rest() };
    case ResponseCode.Quarantine:
      return { type: 'quarantine', reason: r.optionalString('reason') ?? '' };
    case ResponseCode.SetSymbolList: {
      const stage = r.uint32('macro stage');
      return { type: 'setSymbolList', stage, names: r.optionalString('macro list') ?? '' };
    }
    case ResponseCode.Shutdown:
      return { type: 'shutdown' };
    case ResponseCode.ConnectionFail:
      return { type: 'connectionFail' };
    default:
      throw new MilterProtocolError('response', `unknown response code ${codeName(packet.code)}`);
  }
}
