import {
  ACTIONS_ALL,
  ACTIONS_V1,
  ACTIONS_V2,
  ActionFlags,
  MAX_DATA_SIZE,
  MAX_DATA_SIZE_1M,
  MAX_DATA_SIZE_256K,
  MILTER_MIN_VERSION,
  MILTER_VERSION,
  type MacroStage,
  MacroStageCode,
  PROTOCOL_ALL,
  PROTOCOL_V1,
  PROTOCOL_V2,
  ProtocolFlags,
  describeActions,
  describeProtocol,
} from './constants.js';
import { MilterProtocolError } from './errors.js';
import type { MacroList, MilterResponse } from './responses.js';

/** The MTA's side of negotiation (the SMFIC_OPTNEG packet). */
export interface OptionOffer {
  version: number;
  actions: number;
  protocol: number;
}

/** Macro names to request per stage, e.g. `{ mail: ['i', '{auth_authen}'], endOfMessage: ['i'] }`. */
export type MacroRequests = Partial<Record<MacroStage, readonly string[]>>;

/** What a filter asks for. Everything is intersected with the MTA's offer. */
export interface FilterRequirements {
  /** Highest protocol version the filter will speak (2, 3, 4 or 6). Default 6. */
  maxVersion?: number;
  /** SMFIF_* actions the filter would like to use. */
  actions?: number;
  /** SMFIF_* actions without which the filter cannot work; negotiation fails if not offered. */
  requiredActions?: number;
  /** SMFIP_* steps to suppress (NO*), not to reply to (NR_*), and extensions (SKIP, RCPT_REJ, HDR_LEADSPC, MDS_*). */
  protocol?: number;
  /** SMFIP_* bits without which the filter cannot work; negotiation fails if not offered. */
  requiredProtocol?: number;
  /** Macro lists to request; sent only if the MTA offers SMFIF_SETSYMLIST (v6). */
  macros?: MacroRequests;
}

/** The agreed options of one connection. */
export interface NegotiatedOptions {
  /** The protocol version both sides speak. */
  version: number;
  /** SMFIF_* actions the filter may use. */
  actions: number;
  /** SMFIP_* bits in force. */
  protocol: number;
  /** Macro lists the filter requested (empty if none or not supported). */
  macros: MacroList[];
  /** What the MTA offered (after libmilter's "0 means the version 1 set" rule). */
  offer: OptionOffer;
  /** Largest data part of a packet either side may send (65535 unless an MDS bit was agreed). */
  maxDataSize: number;
}

/** An event the MTA may send, as the session and client name them. */
export type EventStage = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'header' | 'endOfHeaders' | 'body' | 'unknown' | 'endOfMessage';

interface EventBits {
  /** SMFIP_NO* bit, 0 if the event cannot be suppressed. */
  no: number;
  /** SMFIP_NR_* bit, 0 if the event always needs a reply. */
  nr: number;
  /** First protocol version that has the event. */
  since: number;
}

export const EVENT_BITS: Readonly<Record<EventStage, EventBits>> = {
  connect: { no: ProtocolFlags.NoConnect, nr: ProtocolFlags.NoReplyConnect, since: 2 },
  helo: { no: ProtocolFlags.NoHelo, nr: ProtocolFlags.NoReplyHelo, since: 2 },
  mail: { no: ProtocolFlags.NoMail, nr: ProtocolFlags.NoReplyMail, since: 2 },
  rcpt: { no: ProtocolFlags.NoRcpt, nr: ProtocolFlags.NoReplyRcpt, since: 2 },
  data: { no: ProtocolFlags.NoData, nr: ProtocolFlags.NoReplyData, since: 4 },
  header: { no: ProtocolFlags.NoHeaders, nr: ProtocolFlags.NoReplyHeader, since: 2 },
  endOfHeaders: { no: ProtocolFlags.NoEndOfHeaders, nr: ProtocolFlags.NoReplyEndOfHeaders, since: 2 },
  body: { no: ProtocolFlags.NoBody, nr: ProtocolFlags.NoReplyBody, since: 2 },
  unknown: { no: ProtocolFlags.NoUnknown, nr: ProtocolFlags.NoReplyUnknown, since: 3 },
  endOfMessage: { no: 0, nr: 0, since: 2 },
};

/** SMFIF_* bits that exist in a protocol version. */
export function actionsOfVersion(version: number): number {
  return version >= 6 ? ACTIONS_ALL : ACTIONS_V2;
}

/**
 * SMFIP_* bits that exist in a protocol version: v2 the NO* steps (and NR_HDR, Postfix's
 * "no_header_reply"), v3 adds NOUNKNOWN, v4 NODATA, v6 everything else.
 */
export function protocolOfVersion(version: number): number {
  if (version >= 6) return (PROTOCOL_ALL | ProtocolFlags.MaxDataSize256K | ProtocolFlags.MaxDataSize1M) >>> 0;
  let mask = PROTOCOL_V2 | ProtocolFlags.NoReplyHeader;
  if (version >= 3) mask |= ProtocolFlags.NoUnknown;
  if (version >= 4) mask |= ProtocolFlags.NoData;
  return mask;
}

/**
 * What an MTA speaking `version` offers, as sendmail and Postfix do for version 6
 * (6 / 0x1FF / 0x1FFFFF). For older versions: the version's actions (0x3F) and Postfix's
 * event masks (v2 0x7F, v3 0x17F, v4 0x37F; SMFIP_NR_HDR only comes with Postfix's
 * "no_header_reply", so it is not offered by default).
 */
export function mtaOffer(version = MILTER_VERSION): OptionOffer {
  const protocol = version >= 6 ? PROTOCOL_ALL : (protocolOfVersion(version) & ~ProtocolFlags.NoReplyHeader) >>> 0;
  return { version, actions: actionsOfVersion(version), protocol };
}

/** Largest packet data size for a protocol word. */
export function maxDataSizeOf(protocol: number): number {
  if (protocol & ProtocolFlags.MaxDataSize1M) return MAX_DATA_SIZE_1M;
  if (protocol & ProtocolFlags.MaxDataSize256K) return MAX_DATA_SIZE_256K;
  return MAX_DATA_SIZE;
}

/** A macro name as MTAs expect it in a request: multi-character names in braces. */
export function macroRequestName(name: string): string {
  const n = name.trim();
  return n.length > 1 && !n.startsWith('{') ? `{${n}}` : n;
}

/** The macro lists of a negotiation reply, in SMFIM_* order. */
export function macroLists(requests: MacroRequests | undefined): MacroList[] {
  const lists: MacroList[] = [];
  if (!requests) return lists;
  for (const [stage, code] of Object.entries(MacroStageCode) as [MacroStage, number][]) {
    const names = requests[stage];
    if (names === undefined) continue;
    for (const name of names) {
      if (/[\s\0]/.test(name.trim()) || name.trim() === '') throw new MilterProtocolError('negotiate', `invalid macro name "${name}"`);
    }
    lists.push({ stage: code, names: names.map(macroRequestName).join(' ') });
  }
  return lists.sort((a, b) => a.stage - b.stage);
}

function checkOffer(offer: OptionOffer): OptionOffer {
  if (!Number.isInteger(offer.version) || offer.version < MILTER_MIN_VERSION) {
    throw new MilterProtocolError(
      'negotiate',
      `MTA protocol version ${offer.version} is not supported (${MILTER_MIN_VERSION} or later is needed)`,
    );
  }
  return {
    version: offer.version,
    actions: offer.actions === 0 ? ACTIONS_V1 : offer.actions >>> 0,
    protocol: offer.protocol === 0 ? PROTOCOL_V1 : offer.protocol >>> 0,
  };
}

/**
 * The filter's side of negotiation, libmilter's rules:
 * - version: the lower of the MTA's and the filter's (libmilter refuses MTAs below 2);
 * - an MTA offering 0 actions or 0 steps means the version 1 sets (0x0F, 0x3F);
 * - actions and steps: what the filter wants, intersected with the offer and with what the
 *   agreed version defines; required bits that are missing fail the negotiation;
 * - macro lists: only when the MTA offers SMFIF_SETSYMLIST, which the reply then sets.
 */
export function negotiate(offer: OptionOffer, requirements: FilterRequirements = {}): NegotiatedOptions {
  const offered = checkOffer(offer);
  const maxVersion = requirements.maxVersion ?? MILTER_VERSION;
  if (![2, 3, 4, 6].includes(maxVersion)) throw new MilterProtocolError('negotiate', `filter version ${maxVersion} is not 2, 3, 4 or 6`);
  const version = Math.min(offered.version, maxVersion);
  const availableActions = (offered.actions & actionsOfVersion(version)) >>> 0;
  const availableProtocol = (offered.protocol & protocolOfVersion(version)) >>> 0;

  const missingActions = ((requirements.requiredActions ?? 0) & ~availableActions) >>> 0;
  if (missingActions !== 0) {
    throw new MilterProtocolError(
      'negotiate',
      `the MTA does not offer the required actions ${describeActions(missingActions)} (offered ${describeActions(availableActions)} at version ${version})`,
    );
  }
  const missingProtocol = ((requirements.requiredProtocol ?? 0) & ~availableProtocol) >>> 0;
  if (missingProtocol !== 0) {
    throw new MilterProtocolError(
      'negotiate',
      `the MTA does not offer the required protocol bits ${describeProtocol(missingProtocol)} (offered ${describeProtocol(availableProtocol)} at version ${version})`,
    );
  }

  let actions = ((requirements.actions ?? 0) & availableActions) >>> 0;
  const protocol = ((requirements.protocol ?? 0) & availableProtocol) >>> 0;
  let macros: MacroList[] = [];
  const wanted = macroLists(requirements.macros);
  if (wanted.length > 0 && availableActions & ActionFlags.SetSymbolList) {
    macros = wanted;
    actions = (actions | ActionFlags.SetSymbolList) >>> 0;
  }
  return { version, actions, protocol, macros, offer: offered, maxDataSize: maxDataSizeOf(protocol) };
}

/** The SMFIR_OPTNEG response for agreed options. */
export function negotiationResponse(options: NegotiatedOptions): Extract<MilterResponse, { type: 'negotiate' }> {
  return { type: 'negotiate', version: options.version, actions: options.actions, protocol: options.protocol, macros: options.macros };
}

/**
 * The MTA's side: check a filter's negotiation reply against the offer, as Postfix and
 * sendmail do. A higher version or actions that were not offered are errors; protocol bits
 * that were not offered are ignored (Postfix only logs them), so an NR_* bit the MTA did not
 * offer still gets replies.
 */
export function acceptFilterReply(offer: OptionOffer, reply: Extract<MilterResponse, { type: 'negotiate' }>): NegotiatedOptions {
  const offered = checkOffer(offer);
  if (reply.version < MILTER_MIN_VERSION || reply.version > offered.version) {
    throw new MilterProtocolError(
      'negotiate',
      `filter protocol version ${reply.version} conflicts with MTA protocol version ${offered.version}`,
    );
  }
  const extra = (reply.actions & ~offered.actions) >>> 0;
  if (extra !== 0) {
    throw new MilterProtocolError('negotiate', `filter requests actions ${describeActions(extra)} that the MTA did not offer`);
  }
  const protocol = (reply.protocol & offered.protocol) >>> 0;
  const macros = reply.actions & ActionFlags.SetSymbolList ? reply.macros : [];
  return { version: reply.version, actions: reply.actions >>> 0, protocol, macros, offer: offered, maxDataSize: maxDataSizeOf(protocol) };
}

/** Does the MTA send this event under these options? */
export function sendsEvent(options: Pick<NegotiatedOptions, 'version' | 'protocol'>, event: EventStage): boolean {
  const bits = EVENT_BITS[event];
  return options.version >= bits.since && (options.protocol & bits.no) === 0;
}

/** Must the filter reply to this event under these options? (Always at end of message.) */
export function expectsReply(options: Pick<NegotiatedOptions, 'protocol'>, event: EventStage): boolean {
  const bits = EVENT_BITS[event];
  return (options.protocol & bits.nr) === 0;
}
