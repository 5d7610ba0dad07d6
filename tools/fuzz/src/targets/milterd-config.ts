/**
 * inkan-milterd's configuration file (opendkim.conf syntax): parseConfigText gives a
 * configuration or a ConfigError naming the file and line, never another exception; a
 * configuration it accepts has values of the right kinds and ranges, and describeConfig
 * can print it.
 */
import { ConfigError, ConfigErrors, type Config, describeConfig, parseConfigText } from '@inkan/milterd/internal';
import { type FuzzTarget, check, show } from '../target.js';

const ACTIONS = ['accept', 'reject', 'tempfail', 'discard', 'quarantine'];
const FILE = 'fuzz.conf';

function checkConfig(c: Config): void {
  const integers: [string, number, number][] = [
    ['MinimumKeyBits', c.minimumKeyBits, 0],
    ['MaximumSignaturesToVerify', c.maximumSignaturesToVerify, 0],
    ['DNSTimeout', c.dnsTimeout, 1],
    ['MilterIdleTimeout', c.milterIdleTimeout, 1],
    ['MilterProgressInterval', c.milterProgressInterval, 0],
  ];
  for (const [name, value, min] of integers) {
    check(value === undefined || (Number.isSafeInteger(value) && value >= min), () => `${name} became ${value}`);
  }
  check(Number.isInteger(c.umask) && c.umask >= 0 && c.umask <= 0o7777, () => `UMask became ${c.umask}`);
  check(
    typeof c.mode.sign === 'boolean' && typeof c.mode.verify === 'boolean' && (c.mode.sign || c.mode.verify),
    () => `Mode became ${show(c.mode)}`,
  );
  check(/^(simple|relaxed)(\/(simple|relaxed))?$/.test(c.canonicalization), () => `Canonicalization became ${show(c.canonicalization)}`);
  check(
    c.signatureAlgorithm === 'rsa-sha256' || c.signatureAlgorithm === 'ed25519-sha256',
    () => `SignatureAlgorithm became ${show(c.signatureAlgorithm)}`,
  );
  for (const a of [c.onBadSignature, c.onDnsError, c.onKeyNotFound, c.onInternalError, c.onNoSignature, c.onSignatureError, c.onSecurity]) {
    check(ACTIONS.includes(a), () => `an On- action became ${show(a)}`);
  }
  for (const list of [c.signingKeys, c.oversignHeaders ?? [], c.signHeaders ?? [], c.nameservers ?? []]) {
    check(
      list.every((item) => item !== '' && !/[\s,]/.test(item)),
      () => `a list option holds ${show(list)}`,
    );
  }
  for (const d of [c.domain, c.keyTable, c.signingTable, c.internalHosts, c.externalIgnoreList, c.peerList]) {
    if (d?.kind === 'list')
      check(
        d.values.every((v) => v !== ''),
        () => `a dataset list holds an empty value: ${show(d.values)}`,
      );
  }
  check(typeof describeConfig(c) === 'string', 'describeConfig gave no text');
}

export const target: FuzzTarget = {
  name: 'milterd-config',
  description: 'parseConfigText (opendkim.conf syntax) and describeConfig',
  maxLength: 2048,
  dictionary: [
    '\n',
    '\r\n',
    ' ',
    '\t',
    '#',
    ' # comment',
    'Mode sv',
    'Mode ',
    'Domain example.org,example.net',
    'Domain csl:a,b',
    'Domain refile:/etc/x',
    'KeyTable postgresql://u@h/db?table=t',
    'SigningTable redis://127.0.0.1:6379/0',
    'Selector sel',
    'KeyFile /k',
    'SigningKeys sel:/k ed:/e',
    'Socket inet:8891@127.0.0.1',
    'UMask 007',
    'UMask 0777',
    'Canonicalization relaxed/simple',
    'SignatureAlgorithm ed25519-sha256',
    'SignatureAlgorithm rsa-sha1',
    'MinimumKeyBits 2048',
    'DNSTimeout 5',
    'MilterIdleTimeout 86400',
    'MilterProgressInterval 0',
    'MaximumSignaturesToVerify 3',
    'On-BadSignature reject',
    'On-Security quarantine',
    'AlwaysAddARHeader yes',
    'QueryCache off',
    'Nameservers 127.0.0.1:53, ::1',
    'OversignHeaders From,To',
    'InternalHosts 10.0.0.0/8',
    'PeerList ./peers',
    'yes',
    'no',
  ],
  fuzz(data) {
    let config: Config;
    try {
      config = parseConfigText(data.toString('latin1'), FILE);
    } catch (error) {
      check(error instanceof ConfigError, () => `parseConfigText threw ${show(String(error))}, not a ConfigError`);
      if (error instanceof ConfigErrors) {
        // Several problems: the error names the file, and each problem its line.
        check(
          error.source === FILE && error.problems.length > 1,
          () => `a ConfigErrors names ${show(error.source)} with ${error.problems.length} problem(s)`,
        );
        for (const p of error.problems)
          check(/^fuzz\.conf:\d+: /.test(p), () => `a problem of a ConfigErrors does not name the file and line: ${show(p)}`);
      } else check(/^fuzz\.conf:\d+$/.test(error.source), () => `a ConfigError names ${show(error.source)}, not the file and line`);
      return;
    }
    checkConfig(config);
  },
};
