/**
 * Numbers of the Sendmail milter protocol. Every name carries the libmilter C name
 * (include/libmilter/mfdef.h) in its comment, so the code can be compared with the
 * MTAs' sources.
 */

/** Command codes the MTA sends to the filter. */
export const CommandCode = {
  /** SMFIC_ABORT 'A': abort the current message (no reply). */
  Abort: 0x41,
  /** SMFIC_BODY 'B': a body chunk. */
  Body: 0x42,
  /** SMFIC_CONNECT 'C': connection information. */
  Connect: 0x43,
  /** SMFIC_MACRO 'D': macros for the command that follows (no reply). */
  Macro: 0x44,
  /** SMFIC_BODYEOB 'E': end of body (end of message). */
  EndOfMessage: 0x45,
  /** SMFIC_HELO 'H': HELO/EHLO name. */
  Helo: 0x48,
  /** SMFIC_QUIT_NC 'K': quit, but keep the connection for a new SMTP session (v6). */
  QuitNewConnection: 0x4b,
  /** SMFIC_HEADER 'L': one header field. */
  Header: 0x4c,
  /** SMFIC_MAIL 'M': MAIL FROM, with ESMTP arguments. */
  Mail: 0x4d,
  /** SMFIC_EOH 'N': end of headers. */
  EndOfHeaders: 0x4e,
  /** SMFIC_OPTNEG 'O': option negotiation. */
  Negotiate: 0x4f,
  /** SMFIC_QUIT 'Q': close the connection (no reply). */
  Quit: 0x51,
  /** SMFIC_RCPT 'R': RCPT TO, with ESMTP arguments. */
  Rcpt: 0x52,
  /** SMFIC_DATA 'T': DATA (v4+). */
  Data: 0x54,
  /** SMFIC_UNKNOWN 'U': an SMTP command the MTA does not know (v3+). */
  Unknown: 0x55,
} as const;
export type CommandCode = (typeof CommandCode)[keyof typeof CommandCode];

/** Response codes the filter sends to the MTA. */
export const ResponseCode = {
  /** SMFIR_ADDRCPT '+': add a recipient. */
  AddRcpt: 0x2b,
  /** SMFIR_DELRCPT '-': delete a recipient. */
  DelRcpt: 0x2d,
  /** SMFIR_ADDRCPT_PAR '2': add a recipient with ESMTP arguments. */
  AddRcptPar: 0x32,
  /** SMFIR_SHUTDOWN '4': 421, shut the SMTP session down (sendmail-internal; never sent). */
  Shutdown: 0x34,
  /** SMFIR_ACCEPT 'a': accept (connection at connect/helo, else the message). */
  Accept: 0x61,
  /** SMFIR_REPLBODY 'b': a chunk of the replacement body. */
  ReplaceBody: 0x62,
  /** SMFIR_CONTINUE 'c': continue (at end of message: accept). */
  Continue: 0x63,
  /** SMFIR_DISCARD 'd': accept and silently discard the message. */
  Discard: 0x64,
  /** SMFIR_CHGFROM 'e': change the envelope sender. */
  ChangeFrom: 0x65,
  /** SMFIR_CONN_FAIL 'f': cause a connection failure (neither MTA handles it; never sent). */
  ConnectionFail: 0x66,
  /** SMFIR_ADDHEADER 'h': append a header field. */
  AddHeader: 0x68,
  /** SMFIR_INSHEADER 'i': insert a header field at an index. */
  InsertHeader: 0x69,
  /** SMFIR_SETSYMLIST 'l': set a macro list (defined, but never used on the wire). */
  SetSymbolList: 0x6c,
  /** SMFIR_CHGHEADER 'm': change or delete a header field. */
  ChangeHeader: 0x6d,
  /** SMFIR_OPTNEG 'O': the reply to option negotiation. */
  Negotiate: 0x4f,
  /** SMFIR_PROGRESS 'p': keep-alive while the filter works. */
  Progress: 0x70,
  /** SMFIR_QUARANTINE 'q': quarantine the message. */
  Quarantine: 0x71,
  /** SMFIR_REJECT 'r': reject with the MTA's 5xx text. */
  Reject: 0x72,
  /** SMFIR_SKIP 's': skip the remaining events of this kind (body only; v6). */
  Skip: 0x73,
  /** SMFIR_TEMPFAIL 't': fail temporarily with the MTA's 4xx text. */
  Tempfail: 0x74,
  /** SMFIR_REPLYCODE 'y': reject or tempfail with a custom SMTP reply. */
  ReplyCode: 0x79,
} as const;
export type ResponseCode = (typeof ResponseCode)[keyof typeof ResponseCode];

/** Actions the filter may take at end of message (the "actions" word of negotiation). */
export const ActionFlags = {
  /** SMFIF_ADDHDRS: add headers (also covers inserting them). */
  AddHeaders: 0x1,
  /** SMFIF_CHGBODY: replace the body. */
  ChangeBody: 0x2,
  /** SMFIF_ADDRCPT: add recipients. */
  AddRcpt: 0x4,
  /** SMFIF_DELRCPT: delete recipients. */
  DelRcpt: 0x8,
  /** SMFIF_CHGHDRS: change or delete headers. */
  ChangeHeaders: 0x10,
  /** SMFIF_QUARANTINE: quarantine the message. */
  Quarantine: 0x20,
  /** SMFIF_CHGFROM: change the envelope sender (v6). */
  ChangeFrom: 0x40,
  /** SMFIF_ADDRCPT_PAR: add recipients with ESMTP arguments (v6). */
  AddRcptPar: 0x80,
  /** SMFIF_SETSYMLIST: request macro lists per stage (v6). */
  SetSymbolList: 0x100,
} as const;

/** SMFI_V1_ACTS: the actions of protocol version 1. */
export const ACTIONS_V1 = 0x0f;
/** SMFI_V2_ACTS: the actions of protocol versions 2 to 4. */
export const ACTIONS_V2 = 0x3f;
/** SMFI_CURR_ACTS: every action of protocol version 6. */
export const ACTIONS_ALL = 0x1ff;

/** Protocol steps and extensions (the "protocol" word of negotiation). */
export const ProtocolFlags = {
  /** SMFIP_NOCONNECT: do not send connect information. */
  NoConnect: 0x1,
  /** SMFIP_NOHELO: do not send HELO. */
  NoHelo: 0x2,
  /** SMFIP_NOMAIL: do not send MAIL FROM. */
  NoMail: 0x4,
  /** SMFIP_NORCPT: do not send RCPT TO. */
  NoRcpt: 0x8,
  /** SMFIP_NOBODY: do not send the body. */
  NoBody: 0x10,
  /** SMFIP_NOHDRS: do not send headers. */
  NoHeaders: 0x20,
  /** SMFIP_NOEOH: do not send end of headers. */
  NoEndOfHeaders: 0x40,
  /** SMFIP_NR_HDR (formerly SMFIP_NOHREPL): no reply to each header. */
  NoReplyHeader: 0x80,
  /** SMFIP_NOUNKNOWN: do not send unknown SMTP commands. */
  NoUnknown: 0x100,
  /** SMFIP_NODATA: do not send DATA. */
  NoData: 0x200,
  /** SMFIP_SKIP: the MTA understands SMFIR_SKIP. */
  Skip: 0x400,
  /** SMFIP_RCPT_REJ: also send recipients the MTA rejected itself. */
  RcptRejected: 0x800,
  /** SMFIP_NR_CONN: no reply to connect. */
  NoReplyConnect: 0x1000,
  /** SMFIP_NR_HELO: no reply to HELO. */
  NoReplyHelo: 0x2000,
  /** SMFIP_NR_MAIL: no reply to MAIL. */
  NoReplyMail: 0x4000,
  /** SMFIP_NR_RCPT: no reply to RCPT. */
  NoReplyRcpt: 0x8000,
  /** SMFIP_NR_DATA: no reply to DATA. */
  NoReplyData: 0x10000,
  /** SMFIP_NR_UNKN: no reply to unknown commands. */
  NoReplyUnknown: 0x20000,
  /** SMFIP_NR_EOH: no reply to end of headers. */
  NoReplyEndOfHeaders: 0x40000,
  /** SMFIP_NR_BODY: no reply to body chunks. */
  NoReplyBody: 0x80000,
  /** SMFIP_HDR_LEADSPC: header values keep their leading white space, both ways. */
  HeaderLeadingSpace: 0x100000,
  /** SMFIP_MDS_256K: packets may carry up to 256 KiB - 1 bytes of data. */
  MaxDataSize256K: 0x10000000,
  /** SMFIP_MDS_1M: packets may carry up to 1 MiB - 1 bytes of data. */
  MaxDataSize1M: 0x20000000,
} as const;

/** SMFI_V1_PROT: the steps of protocol version 1. */
export const PROTOCOL_V1 = 0x3f;
/** SMFI_V2_PROT: the steps of protocol version 2. */
export const PROTOCOL_V2 = 0x7f;
/** SMFI_CURR_PROT: every step and extension of protocol version 6 (without the MDS bits). */
export const PROTOCOL_ALL = 0x1fffff;
/** SMFIP_NOSEND_MASK: every "do not send this event" bit. */
export const PROTOCOL_NO_SEND_MASK = 0x37f;
/** SMFIP_NOREPLY_MASK: every "do not reply to this event" bit. */
export const PROTOCOL_NO_REPLY_MASK = 0xff080;

/** Highest protocol version this package speaks. */
export const MILTER_VERSION = 6;
/** Lowest protocol version this package accepts (libmilter refuses 1 too). */
export const MILTER_MIN_VERSION = 2;

/** MILTER_MAX_DATA_SIZE: the default largest data part of a packet, and the body chunk size. */
export const MAX_DATA_SIZE = 65535;
/** MILTER_MDS_256K: the data size limit with SMFIP_MDS_256K. */
export const MAX_DATA_SIZE_256K = 262143;
/** MILTER_MDS_1M: the data size limit with SMFIP_MDS_1M. */
export const MAX_DATA_SIZE_1M = 1048575;
/**
 * Default cap on the length of a packet we read: 4 MiB, four times the largest packet an
 * MTA may send with SMFIP_MDS_1M and forty times Postfix's default header_size_limit.
 */
export const DEFAULT_MAX_PACKET_SIZE = 4 * 1024 * 1024;

/** Address families in the connect command (SMFIA_*). */
export const AddressFamily = {
  /** SMFIA_UNKNOWN 'U' */
  Unknown: 0x55,
  /** SMFIA_UNIX 'L' */
  Unix: 0x4c,
  /** SMFIA_INET '4' */
  Inet: 0x34,
  /** SMFIA_INET6 '6' */
  Inet6: 0x36,
} as const;

/** Macro list stages in the negotiation reply (SMFIM_*). */
export const MacroStageCode = {
  /** SMFIM_CONNECT */
  connect: 0,
  /** SMFIM_HELO */
  helo: 1,
  /** SMFIM_ENVFROM */
  mail: 2,
  /** SMFIM_ENVRCPT */
  rcpt: 3,
  /** SMFIM_DATA */
  data: 4,
  /** SMFIM_EOM */
  endOfMessage: 5,
  /** SMFIM_EOH */
  endOfHeaders: 6,
} as const;
export type MacroStage = keyof typeof MacroStageCode;

function describe(value: number, table: Record<string, number>, prefix: string): string {
  const names: string[] = [];
  let rest = value >>> 0;
  for (const [name, bit] of Object.entries(table)) {
    if ((rest & bit) !== 0) {
      names.push(`${prefix}${name}`);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) names.push(`0x${rest.toString(16)}`);
  return names.length > 0 ? names.join('|') : '0';
}

const ACTION_NAMES: Record<string, number> = {
  ADDHDRS: 0x1,
  CHGBODY: 0x2,
  ADDRCPT: 0x4,
  DELRCPT: 0x8,
  CHGHDRS: 0x10,
  QUARANTINE: 0x20,
  CHGFROM: 0x40,
  ADDRCPT_PAR: 0x80,
  SETSYMLIST: 0x100,
};

const PROTOCOL_NAMES: Record<string, number> = {
  NOCONNECT: 0x1,
  NOHELO: 0x2,
  NOMAIL: 0x4,
  NORCPT: 0x8,
  NOBODY: 0x10,
  NOHDRS: 0x20,
  NOEOH: 0x40,
  NR_HDR: 0x80,
  NOUNKNOWN: 0x100,
  NODATA: 0x200,
  SKIP: 0x400,
  RCPT_REJ: 0x800,
  NR_CONN: 0x1000,
  NR_HELO: 0x2000,
  NR_MAIL: 0x4000,
  NR_RCPT: 0x8000,
  NR_DATA: 0x10000,
  NR_UNKN: 0x20000,
  NR_EOH: 0x40000,
  NR_BODY: 0x80000,
  HDR_LEADSPC: 0x100000,
  MDS_256K: 0x10000000,
  MDS_1M: 0x20000000,
};

/** "SMFIF_ADDHDRS|SMFIF_CHGHDRS" for an actions word (for logs and reports). */
export function describeActions(actions: number): string {
  return describe(actions, ACTION_NAMES, 'SMFIF_');
}

/** "SMFIP_NR_HDR|SMFIP_HDR_LEADSPC" for a protocol word (for logs and reports). */
export function describeProtocol(protocol: number): string {
  return describe(protocol, PROTOCOL_NAMES, 'SMFIP_');
}

/** The letter of a command or response code, for messages ("'L'", or "0x07" when not printable). */
export function codeName(code: number): string {
  return code >= 0x21 && code <= 0x7e ? `'${String.fromCharCode(code)}'` : `0x${code.toString(16).padStart(2, '0')}`;
}
