import { describe, expect, it } from 'vitest';
import {
  ACTIONS_ALL,
  ActionFlags,
  MAX_DATA_SIZE,
  MAX_DATA_SIZE_1M,
  MAX_DATA_SIZE_256K,
  MilterProtocolError,
  PROTOCOL_ALL,
  ProtocolFlags,
  acceptFilterReply,
  expectsReply,
  macroLists,
  mtaOffer,
  negotiate,
  negotiationResponse,
  protocolForHandler,
  sendsEvent,
} from '../src/index.js';

const P = ProtocolFlags;
const A = ActionFlags;

describe('negotiate (filter side)', () => {
  it('agrees on version 6 with Postfix/sendmail/miltertest offers (6 / 0x1FF / 0x1FFFFF)', () => {
    const o = negotiate(
      { version: 6, actions: 0x1ff, protocol: 0x1fffff },
      { actions: A.AddHeaders | A.ChangeHeaders, protocol: P.HeaderLeadingSpace | P.NoReplyHeader | P.Skip },
    );
    expect(o).toMatchObject({ version: 6, actions: 0x11, protocol: 0x100480, macros: [], maxDataSize: MAX_DATA_SIZE });
    expect(negotiationResponse(o)).toEqual({ type: 'negotiate', version: 6, actions: 0x11, protocol: 0x100480, macros: [] });
  });

  it('intersects wanted bits with the offer', () => {
    const o = negotiate(
      { version: 6, actions: A.AddHeaders | A.ChangeBody, protocol: P.NoBody | P.NoReplyHeader },
      {
        actions: A.AddHeaders | A.Quarantine,
        protocol: P.NoReplyHeader | P.Skip | P.HeaderLeadingSpace,
      },
    );
    expect(o.actions).toBe(A.AddHeaders);
    expect(o.protocol).toBe(P.NoReplyHeader);
  });

  it('version 4: DATA exists, v6 bits do not (even if offered)', () => {
    const offer = mtaOffer(4);
    expect(offer).toEqual({ version: 4, actions: 0x3f, protocol: 0x37f });
    const o = negotiate(offer, { actions: ACTIONS_ALL, protocol: PROTOCOL_ALL });
    expect(o.version).toBe(4);
    expect(o.actions).toBe(0x3f);
    expect(o.protocol).toBe(0x37f);
    expect(sendsEvent(o, 'data')).toBe(false); // NODATA was agreed
    expect(sendsEvent({ version: 4, protocol: 0 }, 'data')).toBe(true);
    expect(sendsEvent({ version: 4, protocol: 0 }, 'unknown')).toBe(true);
    // v6-only bits offered by a v4 MTA are not agreed
    const v4all = negotiate({ version: 4, actions: 0x1ff, protocol: 0x1fffff }, { actions: ACTIONS_ALL, protocol: PROTOCOL_ALL });
    expect(v4all.actions).toBe(0x3f);
    expect(v4all.protocol).toBe(0x3ff);
  });

  it('version 3: unknown commands exist, DATA does not', () => {
    const o = negotiate(mtaOffer(3), { actions: A.AddHeaders, protocol: P.NoHelo });
    expect(o.version).toBe(3);
    expect(o.protocol).toBe(P.NoHelo);
    expect(sendsEvent(o, 'unknown')).toBe(true);
    expect(sendsEvent(o, 'data')).toBe(false);
    expect(sendsEvent(o, 'helo')).toBe(false);
    expect(negotiate(mtaOffer(3), { protocol: P.NoUnknown | P.NoData }).protocol).toBe(P.NoUnknown);
  });

  it('version 2: the NO* steps (and Postfix no_header_reply), v2 actions only', () => {
    const o = negotiate({ version: 2, actions: 0x1ff, protocol: 0x7f | P.NoReplyHeader }, { actions: ACTIONS_ALL, protocol: PROTOCOL_ALL });
    expect(o.version).toBe(2);
    expect(o.actions).toBe(0x3f);
    expect(o.protocol).toBe(0xff);
    expect(sendsEvent({ version: 2, protocol: 0 }, 'unknown')).toBe(false);
    expect(sendsEvent({ version: 2, protocol: 0 }, 'data')).toBe(false);
    expect(expectsReply(o, 'header')).toBe(false);
  });

  it('a filter may speak an older version than the MTA', () => {
    const o = negotiate(mtaOffer(6), { maxVersion: 2, actions: ACTIONS_ALL, protocol: PROTOCOL_ALL });
    expect(o.version).toBe(2);
    expect(o.actions).toBe(0x3f);
    expect(o.protocol).toBe(0xff);
    expect(() => negotiate(mtaOffer(6), { maxVersion: 5 })).toThrow(/^negotiate: filter version 5/);
  });

  it('an offer of 0 means the version 1 sets', () => {
    const o = negotiate({ version: 6, actions: 0, protocol: 0 }, { actions: ACTIONS_ALL, protocol: PROTOCOL_ALL });
    expect(o.offer).toEqual({ version: 6, actions: 0x0f, protocol: 0x3f });
    expect(o.actions).toBe(0x0f);
    expect(o.protocol).toBe(0x3f);
  });

  it('refuses MTAs below version 2 and missing required bits', () => {
    expect(() => negotiate({ version: 1, actions: 0xf, protocol: 0x3f })).toThrow(/^negotiate: MTA protocol version 1 is not supported/);
    const e = (() => {
      try {
        negotiate({ version: 2, actions: 0x3f, protocol: 0x7f }, { requiredActions: A.ChangeFrom });
      } catch (error) {
        return error;
      }
    })();
    expect(e).toBeInstanceOf(MilterProtocolError);
    expect((e as Error).message).toMatch(/^negotiate: the MTA does not offer the required actions SMFIF_CHGFROM/);
    expect(() => negotiate(mtaOffer(6), { requiredProtocol: P.MaxDataSize1M })).toThrow(/SMFIP_MDS_1M/);
  });

  it('requests macro lists only when the MTA offers SMFIF_SETSYMLIST', () => {
    const macros = { mail: ['i', 'auth_authen'], endOfMessage: ['{i}'], connect: ['j'] };
    const o = negotiate(mtaOffer(6), { actions: A.AddHeaders, macros });
    expect(o.actions).toBe(A.AddHeaders | A.SetSymbolList);
    expect(o.macros).toEqual([
      { stage: 0, names: 'j' },
      { stage: 2, names: 'i {auth_authen}' },
      { stage: 5, names: '{i}' },
    ]);
    const without = negotiate({ version: 6, actions: 0xff, protocol: 0x1fffff }, { actions: A.AddHeaders, macros });
    expect(without.macros).toEqual([]);
    expect(without.actions).toBe(A.AddHeaders);
    expect(negotiate(mtaOffer(4), { macros }).macros).toEqual([]);
    expect(() => macroLists({ mail: ['bad name'] })).toThrow(/invalid macro name/);
    expect(macroLists({ data: [] })).toEqual([{ stage: 4, names: '' }]);
  });

  it('adopts the larger data sizes only when agreed', () => {
    const offer = { version: 6, actions: 0x1ff, protocol: 0x1fffff | P.MaxDataSize256K | P.MaxDataSize1M };
    expect(negotiate(offer, { protocol: P.MaxDataSize1M }).maxDataSize).toBe(MAX_DATA_SIZE_1M);
    expect(negotiate(offer, { protocol: P.MaxDataSize256K }).maxDataSize).toBe(MAX_DATA_SIZE_256K);
    expect(negotiate(mtaOffer(6), { protocol: P.MaxDataSize1M }).maxDataSize).toBe(MAX_DATA_SIZE);
  });

  it('derives steps from the handler: NR for envelope stages, NO for content stages', () => {
    expect(protocolForHandler({})).toBe(
      P.NoReplyConnect | P.NoReplyHelo | P.NoReplyMail | P.NoReplyRcpt | P.NoData | P.NoHeaders | P.NoEndOfHeaders | P.NoBody | P.NoUnknown,
    );
    expect(
      protocolForHandler({
        connect() {},
        helo() {},
        mail() {},
        rcpt() {},
        data() {},
        header() {},
        endOfHeaders() {},
        body() {},
        unknown() {},
      }),
    ).toBe(0);
    class Handler {
      header() {}
    }
    expect(protocolForHandler(new Handler()) & P.NoHeaders).toBe(0);
  });
});

describe('acceptFilterReply (MTA side)', () => {
  const offer = mtaOffer(6);
  it('accepts a proper reply and ignores protocol bits that were not offered', () => {
    const o = acceptFilterReply(
      { version: 6, actions: 0x1ff, protocol: P.NoBody },
      {
        type: 'negotiate',
        version: 6,
        actions: A.AddHeaders,
        protocol: P.NoBody | P.NoReplyHeader,
        macros: [],
      },
    );
    expect(o.protocol).toBe(P.NoBody);
    expect(expectsReply(o, 'header')).toBe(true);
  });
  it('refuses a higher version and actions that were not offered, as Postfix does', () => {
    expect(() => acceptFilterReply(mtaOffer(4), { type: 'negotiate', version: 6, actions: 1, protocol: 0, macros: [] })).toThrow(
      /^negotiate: filter protocol version 6 conflicts with MTA protocol version 4/,
    );
    expect(() =>
      acceptFilterReply({ ...offer, actions: 0x3f }, { type: 'negotiate', version: 6, actions: 0x40, protocol: 0, macros: [] }),
    ).toThrow(/SMFIF_CHGFROM that the MTA did not offer/);
  });
  it('keeps macro lists only with SMFIF_SETSYMLIST', () => {
    const lists = [{ stage: 2, names: 'i' }];
    expect(acceptFilterReply(offer, { type: 'negotiate', version: 6, actions: 0x101, protocol: 0, macros: lists }).macros).toEqual(lists);
    expect(acceptFilterReply(offer, { type: 'negotiate', version: 6, actions: 0x1, protocol: 0, macros: lists }).macros).toEqual([]);
  });
});
