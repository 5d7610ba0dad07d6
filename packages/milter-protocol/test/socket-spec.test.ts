import { describe, expect, it } from 'vitest';
import { MilterError, formatPostfixMilter, formatSendmailFilter, formatSocketSpec, parseSocketSpec } from '../src/index.js';

describe('parseSocketSpec: one parser, both dialects', () => {
  it.each([
    ['local:/run/inkan.sock', { kind: 'unix', path: '/run/inkan.sock' }],
    ['unix:/run/inkan.sock', { kind: 'unix', path: '/run/inkan.sock' }],
    ['unix:private/inkan', { kind: 'unix', path: 'private/inkan' }],
    ['inet:8891@127.0.0.1', { kind: 'inet', host: '127.0.0.1', port: 8891 }],
    ['inet:8891@localhost', { kind: 'inet', host: 'localhost', port: 8891 }],
    ['inet:8891', { kind: 'inet', host: '0.0.0.0', port: 8891 }],
    ['inet6:8891@::1', { kind: 'inet6', host: '::1', port: 8891 }],
    ['inet6:8891@[::1]', { kind: 'inet6', host: '::1', port: 8891 }],
    ['inet6:8891', { kind: 'inet6', host: '::', port: 8891 }],
    ['inet:127.0.0.1:8891', { kind: 'inet', host: '127.0.0.1', port: 8891 }],
    ['inet:localhost:8891', { kind: 'inet', host: 'localhost', port: 8891 }],
    ['inet:[::1]:8891', { kind: 'inet6', host: '::1', port: 8891 }],
    ['inet:[127.0.0.1]:8891', { kind: 'inet', host: '127.0.0.1', port: 8891 }],
    ['INET:8891@127.0.0.1', { kind: 'inet', host: '127.0.0.1', port: 8891 }],
    ['  inet:0@127.0.0.1 ', { kind: 'inet', host: '127.0.0.1', port: 0 }],
  ])('%s', (text, spec) => {
    expect(parseSocketSpec(text)).toEqual(spec);
  });

  it.each([
    ['8891', /no transport/],
    ['tcp:8891@127.0.0.1', /unknown transport "tcp"/],
    ['unix:', /empty socket path/],
    ['inet:99999@127.0.0.1', /out of range/],
    ['inet:port@127.0.0.1', /is not a number/],
    ['inet:8891@', /empty host/],
    ['inet:[::1]8891', /expected \[host\]:port/],
    ['inet:localhost', /expected port@host or host:port/],
    ['inet6:8891@nothex::zz', /not an IPv6 address/],
  ])('refuses %s', (text, message) => {
    expect(() => parseSocketSpec(text)).toThrow(MilterError);
    expect(() => parseSocketSpec(text)).toThrow(message);
    expect(() => parseSocketSpec(text)).toThrow(/^socket-spec: /);
  });
});

describe('formatting', () => {
  it('prints either dialect and round-trips', () => {
    for (const text of ['unix:/run/inkan.sock', 'inet:8891@127.0.0.1', 'inet6:8891@::1']) {
      const spec = parseSocketSpec(text);
      expect(formatSocketSpec(spec)).toBe(text);
      expect(parseSocketSpec(formatSocketSpec(spec, 'postfix'))).toEqual(spec);
    }
    expect(formatSocketSpec('inet6:8891@::1', 'postfix')).toBe('inet:[::1]:8891');
  });

  it('prints the Postfix main.cf line', () => {
    expect(formatPostfixMilter('inet:8891@127.0.0.1')).toBe('smtpd_milters = inet:127.0.0.1:8891');
    expect(formatPostfixMilter({ kind: 'inet6', host: '::1', port: 8891 })).toBe('smtpd_milters = inet:[::1]:8891');
    expect(formatPostfixMilter('local:/run/inkan/inkan.sock', 'non_smtpd_milters')).toBe('non_smtpd_milters = unix:/run/inkan/inkan.sock');
  });

  it('prints the sendmail.mc line', () => {
    expect(formatSendmailFilter('inkan', 'inet:127.0.0.1:8891')).toBe("INPUT_MAIL_FILTER(`inkan', `S=inet:8891@127.0.0.1')");
    expect(
      formatSendmailFilter('inkan', 'unix:/run/inkan.sock', {
        onFailure: 'T',
        timeouts: { connect: '5m', send: '10s', read: '30s', end: '5m' },
      }),
    ).toBe("INPUT_MAIL_FILTER(`inkan', `S=local:/run/inkan.sock, F=T, T=C:5m;S:10s;R:30s;E:5m')");
    expect(formatSendmailFilter('v6', 'inet:[::1]:8891', { timeouts: { read: '1m' } })).toBe(
      "INPUT_MAIL_FILTER(`v6', `S=inet6:8891@::1, T=R:1m')",
    );
    expect(() => formatSendmailFilter('bad name', 'inet:8891@127.0.0.1')).toThrow(/filter name/);
    expect(() => formatSendmailFilter('x', 'inet:8891@127.0.0.1', { timeouts: { read: 'soon' } })).toThrow(/not a sendmail time/);
  });
});
