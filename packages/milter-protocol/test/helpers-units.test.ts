import { describe, expect, it } from 'vitest';
import { MacroStore, formatSmtpReply, macroKey, parseSmtpReply, splitMessage, toCrlf } from '../src/index.js';

describe('MacroStore', () => {
  it('looks macros up from the latest stage back, with or without braces', () => {
    const m = new MacroStore();
    m.set('C', [
      ['j', 'mx.example.org'],
      ['{daemon_name}', 'smtpd'],
    ]);
    m.set('M', [
      ['i', 'Q1'],
      ['{mail_addr}', 'a@example.org'],
    ]);
    m.set('E', [['i', 'Q1-eom']]);
    expect(m.get('j')).toBe('mx.example.org');
    expect(m.get('{j}')).toBe('mx.example.org');
    expect(m.get('daemon_name')).toBe('smtpd');
    expect(m.get('{mail_addr}')).toBe('a@example.org');
    expect(m.get('i')).toBe('Q1-eom');
    expect(m.has('nope')).toBe(false);
    expect(m.all()).toEqual({ j: 'mx.example.org', daemon_name: 'smtpd', i: 'Q1-eom', mail_addr: 'a@example.org' });
    expect([...m.stage('M').keys()]).toEqual(['i', 'mail_addr']);
  });

  it('a new packet replaces its stage; a new command clears the later stages', () => {
    const m = new MacroStore();
    m.set('M', [['i', 'Q1']]);
    m.set('R', [['{rcpt_addr}', 'b@example.net']]);
    m.set('M', [['{mail_addr}', 'c@example.org']]);
    expect(m.get('i')).toBeUndefined();
    m.clearAfter('M');
    expect(m.get('rcpt_addr')).toBeUndefined();
    expect(m.get('mail_addr')).toBe('c@example.org');
    m.clearAfter('C');
    expect(m.get('mail_addr')).toBeUndefined();
  });

  it('ignores letters libmilter ignores', () => {
    const m = new MacroStore();
    expect(m.set('Z', [['x', '1']])).toBe(false);
    expect(m.get('x')).toBeUndefined();
    expect(macroKey('{}')).toBe('{}');
  });
});

describe('SMTP reply text', () => {
  it('formats single and multi-line replies and doubles %', () => {
    expect(formatSmtpReply({ code: 550, extended: '5.7.1', text: 'Rejected' })).toBe('550 5.7.1 Rejected');
    expect(formatSmtpReply({ code: 451, text: '100% busy' })).toBe('451 100%% busy');
    expect(formatSmtpReply({ code: 421 })).toBe('421');
    expect(formatSmtpReply({ code: 550, extended: '5.7.1', text: ['first', 'second'] })).toBe('550-5.7.1 first\r\n550 5.7.1 second');
    expect(parseSmtpReply('550-5.7.1 first\r\n550 5.7.1 100%% second')).toEqual({
      code: 550,
      extended: '5.7.1',
      text: ['first', '100% second'],
    });
    expect(parseSmtpReply('451 4.3.0 later')).toEqual({ code: 451, extended: '4.3.0', text: 'later' });
  });

  it('refuses invalid replies with the stage as prefix', () => {
    expect(() => formatSmtpReply({ code: 250 }, 'rcpt')).toThrow(/^rcpt: SMTP reply code must be 4xx or 5xx, not 250/);
    expect(() => formatSmtpReply({ code: 550, extended: '4.7.1' })).toThrow(/does not match reply code 550/);
    expect(() => formatSmtpReply({ code: 550, extended: '5.7' })).toThrow(/x\.y\.z/);
    expect(() => formatSmtpReply({ code: 550, text: 'a\r\nb' })).toThrow(/CR, LF or NUL/);
    expect(() => formatSmtpReply({ code: 550, text: Array(33).fill('x') })).toThrow(/33 lines/);
  });
});

describe('splitMessage', () => {
  it('splits header fields as Postfix presents them and gives a CRLF body', () => {
    const { headers, body } = splitMessage('Subject:  two\r\nX-Fold: a\r\n\tb\r\n  c\r\nX-Empty:\r\n\r\nline1\nline2\r\nlast');
    expect(headers.map((h) => [h.name, h.value.toString('latin1')])).toEqual([
      ['Subject', '  two'],
      ['X-Fold', ' a\n\tb\n  c'],
      ['X-Empty', ''],
    ]);
    expect(body.toString('latin1')).toBe('line1\r\nline2\r\nlast\r\n');
  });

  it('treats a line that is not a field as the start of the body', () => {
    const { headers, body } = splitMessage('From: a\nnot a header line\nmore\n');
    expect(headers).toHaveLength(1);
    expect(body.toString()).toBe('not a header line\r\nmore\r\n');
    expect(splitMessage('Subject: only\r\n').body.length).toBe(0);
  });

  it('toCrlf keeps existing CRLF and adds a final one', () => {
    expect(toCrlf(Buffer.from('a\r\nb\nc')).toString()).toBe('a\r\nb\r\nc\r\n');
    expect(toCrlf(Buffer.alloc(0)).length).toBe(0);
  });
});
