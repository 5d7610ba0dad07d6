/**
 * Every option of OpenDKIM's opendkim.conf(5) (Debian's OpenDKIM 2.11) and what inkan-milterd
 * does with it. This table is the source of truth: the parser refuses or warns from it, and
 * docs/opendkim-options.md is rendered from it (a test keeps the two equal).
 *
 * - implemented: the option is read and means what OpenDKIM documents (notes say where a
 *   default or a corner differs, and why).
 * - warn: not applicable to inkan; accepted with a one-line warning saying why. Only options
 *   whose loss weakens nothing are here.
 * - refuse: start-up (and --check-config) stops with this option's own hint.
 *
 * `sameFor` lists the values for which a warn or refuse option means exactly what inkan does
 * anyway (usually OpenDKIM's default, such as "Background no"): those are accepted silently.
 */

export type CompatStatus = 'implemented' | 'warn' | 'refuse';

export interface CompatEntry {
  /** The name in opendkim.conf(5). */
  name: string;
  /** What OpenDKIM does with it, in one line. */
  meaning: string;
  status: CompatStatus;
  /** implemented: remarks (may be empty); warn: why it does not apply; refuse: what to use instead. */
  note: string;
  /** Values (tested on the trimmed value) that mean what inkan does anyway: accepted without a word. */
  sameFor?: RegExp;
}

/** OpenDKIM booleans read the first byte only: these are its "false" values. */
const NO = /^[fn0]/i;
/** And its "true" values. */
const YES = /^[ty1]/i;

const SYSTEMD = 'inkan-milterd does not restart itself: run it under systemd (contrib/inkan-milterd.service has Restart=on-failure)';
const NO_DNSSEC =
  'inkan does not validate DNSSEC itself: point Nameservers at a validating resolver (such as unbound on 127.0.0.1), which answers a forged (bogus) key record with SERVFAIL; inkan then reports temperror and applies On-DNSError';
const NO_LDAP =
  'no effect: inkan has no LDAP datasets (a dataset naming ldap:// is refused); keep tables in files, PostgreSQL or Redis (docs/fleet.md)';
const NO_LUA = 'Lua policy scripts are not supported: use the tables (KeyTable, SigningTable, InternalHosts) and the On-* actions';
const NO_REPORTS = 'inkan sends no failure reports (RFC 6651), so this has no effect';
const NOT_IN_DEBIAN = "no effect: the feature is not compiled into Debian's OpenDKIM either";
const NO_VBR = 'VBR (RFC 5518) is not supported: no effect on signing or verifying';
const NO_STATS = 'inkan keeps no OpenDKIM statistics file: use MetricsListen (Prometheus metrics) instead';

export const OPENDKIM_OPTIONS: readonly CompatEntry[] = [
  {
    name: 'AllowSHA1Only',
    meaning: 'let verify mode run on a build without SHA-256',
    status: 'warn',
    note: 'no effect: inkan always has SHA-256 (rsa-sha1 signatures never pass, RFC 8301)',
  },
  { name: 'AlwaysAddARHeader', meaning: 'add Authentication-Results (dkim=none) to unsigned mail too', status: 'implemented', note: '' },
  {
    name: 'AuthservID',
    meaning: 'authserv-id of added Authentication-Results; HOSTNAME means the host name; default the MTA name',
    status: 'implemented',
    note: 'default: the MTA\'s host name (the "j" macro), else the host name, as OpenDKIM',
  },
  {
    name: 'AuthservIDWithJobID',
    meaning: 'append "/<queue id>" to the authserv-id',
    status: 'refuse',
    note: 'not supported: remove it (the queue id is in every inkan log line for a message)',
    sameFor: NO,
  },
  { name: 'AutoRestart', meaning: 'fork a supervisor that restarts the filter when it dies', status: 'warn', note: SYSTEMD, sameFor: NO },
  {
    name: 'AutoRestartCount',
    meaning: 'give up after this many automatic restarts',
    status: 'warn',
    note: `${SYSTEMD}; its StartLimitBurst= bounds restarts`,
  },
  {
    name: 'AutoRestartRate',
    meaning: 'give up when restarts come faster than n/t',
    status: 'warn',
    note: `${SYSTEMD}; its StartLimitIntervalSec= and StartLimitBurst= bound the rate`,
  },
  {
    name: 'Background',
    meaning: 'fork and detach at start (default yes)',
    status: 'warn',
    note: 'inkan-milterd always stays in the foreground: run it under systemd (Type=simple) or another supervisor',
    sameFor: NO,
  },
  {
    name: 'BaseDirectory',
    meaning: 'chdir here first, so relative paths are relative to it',
    status: 'refuse',
    note: 'inkan does not change directory: use absolute paths, or WorkingDirectory= in the systemd unit',
  },
  {
    name: 'BodyLengthDB',
    meaning: 'add l= (signed body length) for mail to these recipients',
    status: 'refuse',
    note: 'inkan never signs with l= (it lets anyone append text under a valid signature): remove it',
  },
  {
    name: 'BogusKey',
    meaning: 'result for a passing signature whose key DNSSEC shows forged (default fail)',
    status: 'warn',
    note: NO_DNSSEC,
  },
  {
    name: 'CaptureUnknownErrors',
    meaning: 'ask the MTA to quarantine mail that hit an internal error',
    status: 'refuse',
    note: 'not supported: use On-InternalError quarantine',
    sameFor: NO,
  },
  {
    name: 'Canonicalization',
    meaning: 'header/body canonicalization for signing (default simple/simple)',
    status: 'implemented',
    note: 'default differs: relaxed/relaxed (survives more relays; both are RFC 6376 canonicalizations)',
  },
  {
    name: 'ChangeRootDirectory',
    meaning: 'chroot here before running',
    status: 'refuse',
    note: 'inkan does not chroot: confine it with systemd (RootDirectory=, ProtectSystem=strict, ReadOnlyPaths=)',
  },
  {
    name: 'ClockDrift',
    meaning: 'seconds of tolerance for x= and future t= (default 300)',
    status: 'refuse',
    note: "not configurable: inkan allows 300 seconds, OpenDKIM's default; remove it",
    sameFor: /^300$/,
  },
  {
    name: 'Diagnostics',
    meaning: 'add z= (copies of the signed header fields) to signatures',
    status: 'warn',
    note: 'inkan never adds z= (it copies the signed fields into every signature): use LogWhy to debug',
    sameFor: NO,
  },
  {
    name: 'DiagnosticDirectory',
    meaning: 'write a report here when a signature with z= fails',
    status: 'warn',
    note: 'inkan writes no diagnostic reports: use LogWhy',
  },
  {
    name: 'DisableCryptoInit',
    meaning: "skip OpenSSL's library initialization",
    status: 'warn',
    note: 'no effect: Node.js initializes its own crypto',
    sameFor: NO,
  },
  {
    name: 'DNSConnect',
    meaning: 'query over TCP from the start',
    status: 'warn',
    note: 'inkan queries over UDP and falls back to TCP when an answer is truncated',
    sameFor: NO,
  },
  {
    name: 'DNSTimeout',
    meaning: 'seconds a key lookup may take (default 5; 0 waits forever)',
    status: 'implemented',
    note: '0 (wait forever) is refused: the MTA would give up first',
  },
  {
    name: 'Domain',
    meaning: 'domains whose mail is signed (with KeyFile and Selector); "*" means any domain; ignored with a KeyTable',
    status: 'implemented',
    note: '"*" signs for the From domain of any internal mail, as OpenDKIM',
  },
  {
    name: 'DomainKeysCompat',
    meaning: 'accept DomainKeys-style (RFC 4870) key records for DKIM',
    status: 'refuse',
    note: 'not supported: inkan reads key records by RFC 6376 (DomainKeys signatures are still verified)',
    sameFor: NO,
  },
  {
    name: 'DontSignMailTo',
    meaning: 'never sign mail to any of these recipients',
    status: 'refuse',
    note: 'not supported: send such mail through an MTA service without the milter (Postfix: a master.cf service with smtpd_milters=)',
  },
  {
    name: 'EnableCoredumps',
    meaning: 'ask the kernel for core dumps after changing user',
    status: 'warn',
    note: 'use systemd-coredump (LimitCORE= in the unit)',
    sameFor: NO,
  },
  {
    name: 'ExemptDomains',
    meaning: 'leave mail from these sender domains entirely alone',
    status: 'refuse',
    note: 'not supported: remove it, or route that mail through an MTA service without the milter',
  },
  {
    name: 'ExternalIgnoreList',
    meaning: 'external hosts allowed to send as our domains (no "tried to send as" log line)',
    status: 'implemented',
    note: '',
  },
  { name: 'FinalPolicyScript', meaning: 'Lua script run at the end of each message', status: 'refuse', note: NO_LUA },
  {
    name: 'FixCRLF',
    meaning: 'turn bare CR and LF into CRLF when canonicalizing bodies',
    status: 'refuse',
    note: 'not supported: inkan hashes the body as it arrives (RFC 6376); let the MTA fix line ends',
    sameFor: NO,
  },
  { name: 'IdentityHeader', meaning: 'header field holding the signing identity (experimental)', status: 'warn', note: NOT_IN_DEBIAN },
  {
    name: 'IdentityHeaderRemove',
    meaning: 'remove the IdentityHeader field after signing (experimental)',
    status: 'warn',
    note: NOT_IN_DEBIAN,
  },
  {
    name: 'IgnoreMalformedMail',
    meaning: 'pass malformed mail silently instead of noting it in Authentication-Results',
    status: 'refuse',
    note: 'not supported: inkan always reports what it found',
    sameFor: NO,
  },
  {
    name: 'Include',
    meaning: 'read another configuration file here (up to five levels)',
    status: 'refuse',
    note: 'not supported yet: copy the included lines into this file',
  },
  {
    name: 'InternalHosts',
    meaning: 'clients whose mail is signed rather than verified (default 127.0.0.1)',
    status: 'implemented',
    note: 'default also has ::1 (the IPv6 loopback)',
  },
  {
    name: 'KeepAuthResults',
    meaning: 'keep Authentication-Results fields that claim our authserv-id',
    status: 'refuse',
    note: 'not supported: inkan always removes fields that claim its authserv-id (they are forged)',
    sameFor: NO,
  },
  {
    name: 'KeepTemporaryFiles',
    meaning: 'keep canonicalized copies of messages for debugging',
    status: 'warn',
    note: 'inkan writes no temporary files: use LogWhy',
    sameFor: NO,
  },
  { name: 'KeyFile', meaning: 'private key that signs for every Domain (ignored with a KeyTable)', status: 'implemented', note: '' },
  {
    name: 'KeyTable',
    meaning: 'key name -> domain:selector:key (file path or the key itself)',
    status: 'implemented',
    note: 'also postgresql:// and redis:// stores (docs/fleet.md)',
  },
  { name: 'LDAPAuthMechanism', meaning: 'SASL mechanism for LDAP datasets', status: 'warn', note: NO_LDAP },
  { name: 'LDAPAuthName', meaning: 'SASL authenticating name for LDAP datasets', status: 'warn', note: NO_LDAP },
  { name: 'LDAPAuthRealm', meaning: 'SASL realm for LDAP datasets', status: 'warn', note: NO_LDAP },
  { name: 'LDAPAuthUser', meaning: 'SASL user for LDAP datasets', status: 'warn', note: NO_LDAP },
  { name: 'LDAPBindPassword', meaning: 'password for the LDAP bind', status: 'warn', note: NO_LDAP },
  { name: 'LDAPBindUser', meaning: 'user for the LDAP bind', status: 'warn', note: NO_LDAP },
  { name: 'LDAPDisableCache', meaning: 'no local cache in front of LDAP queries', status: 'warn', note: NO_LDAP },
  { name: 'LDAPKeepaliveIdle', meaning: 'idle seconds before TCP keepalives to LDAP', status: 'warn', note: NO_LDAP },
  { name: 'LDAPKeepaliveInterval', meaning: 'seconds between TCP keepalives to LDAP', status: 'warn', note: NO_LDAP },
  { name: 'LDAPKeepaliveProbes', meaning: 'keepalive probes before an LDAP connection is dropped', status: 'warn', note: NO_LDAP },
  { name: 'LDAPTimeout', meaning: 'seconds an LDAP operation may take', status: 'warn', note: NO_LDAP },
  { name: 'LDAPUseTLS', meaning: 'use TLS to the LDAP server', status: 'warn', note: NO_LDAP },
  {
    name: 'LogResults',
    meaning: 'log the result of every signature checked',
    status: 'warn',
    note: "no effect: inkan logs every signature's result anyway",
    sameFor: YES,
  },
  { name: 'LogWhy', meaning: 'log why each message was signed, verified or left alone', status: 'implemented', note: '' },
  {
    name: 'MacroList',
    meaning: 'MTA macros (and values) that mark a sender as local: sign',
    status: 'refuse',
    note: 'not supported: use InternalHosts, or SMTP authentication (mail from authenticated clients is signed)',
  },
  {
    name: 'MaximumHeaders',
    meaning: 'bytes a header section may take (default 65536; 0 no limit)',
    status: 'implemented',
    note: 'the same setting as MaximumHeaderBytes; default 1048576 (1 MiB); 0 means the largest allowed (256 MiB); past it: On-Security',
  },
  {
    name: 'MaximumSignaturesToVerify',
    meaning: 'signatures checked per message, from the top (default 3)',
    status: 'implemented',
    note: 'default differs: 10 (a message signed by its author, a list and a forwarder still has each checked)',
  },
  {
    name: 'MaximumSignedBytes',
    meaning: 'sign at most this many body bytes (implies l=)',
    status: 'refuse',
    note: 'inkan never signs part of a body (l=): remove it',
  },
  { name: 'MilterDebug', meaning: 'debug level of libmilter', status: 'warn', note: 'no libmilter: use LogWhy', sameFor: /^0$/ },
  {
    name: 'Minimum',
    meaning: 'fail signatures (l=) that cover less than this much of the body',
    status: 'refuse',
    note: 'not supported: remove it (inkan never signs with l=; a signature with l= is checked as RFC 6376 says)',
  },
  { name: 'MinimumKeyBits', meaning: 'smaller keys never pass (default 1024; 0 any)', status: 'implemented', note: '' },
  { name: 'Mode', meaning: 's (sign), v (verify) or both (default sv)', status: 'implemented', note: '' },
  {
    name: 'MTA',
    meaning: 'MTA names (DaemonPortOptions Name) whose mail is signed',
    status: 'refuse',
    note: 'not supported: use InternalHosts, or give each MTA service its own milter settings',
  },
  { name: 'MTACommand', meaning: 'program used to send reports (default /usr/sbin/sendmail)', status: 'warn', note: NO_REPORTS },
  {
    name: 'MultipleSignatures',
    meaning: 'sign with every matching SigningTable entry, not only the first',
    status: 'implemented',
    note: '',
  },
  {
    name: 'MustBeSigned',
    meaning: 'header fields that, when present, a passing signature must cover',
    status: 'refuse',
    note: 'not supported yet: remove it (inkan would pass signatures that leave these fields unsigned)',
  },
  { name: 'Nameservers', meaning: 'DNS servers for key lookups instead of /etc/resolv.conf', status: 'implemented', note: '' },
  {
    name: 'NoHeaderB',
    meaning: 'leave header.b out of Authentication-Results',
    status: 'refuse',
    note: 'not supported: inkan always writes header.b (RFC 6008) so results can be told apart',
    sameFor: NO,
  },
  {
    name: 'OmitHeaders',
    meaning: 'header fields never signed; "*,+X" / "*,-X" edit the default list',
    status: 'implemented',
    note: 'From is always signed',
  },
  {
    name: 'On-BadSignature',
    meaning: 'action when a signature fails (default accept)',
    status: 'implemented',
    note: 'also a revoked key and a signature or key that cannot be checked, as OpenDKIM; a key in testing mode (t=y) turns reject, tempfail and discard into accept',
  },
  { name: 'On-Default', meaning: 'action for every On-* not set otherwise', status: 'implemented', note: '' },
  { name: 'On-DNSError', meaning: 'action when a key lookup fails temporarily (default tempfail)', status: 'implemented', note: '' },
  { name: 'On-InternalError', meaning: 'action when the filter itself fails (default tempfail)', status: 'implemented', note: '' },
  { name: 'On-KeyNotFound', meaning: 'action when no key is published at the selector (default accept)', status: 'implemented', note: '' },
  { name: 'On-NoSignature', meaning: 'action for unsigned mail (default accept)', status: 'implemented', note: '' },
  { name: 'On-Security', meaning: 'action for a message raising a security concern (default tempfail)', status: 'implemented', note: '' },
  {
    name: 'On-SignatureError',
    meaning: 'action when a message cannot be signed (default reject)',
    status: 'implemented',
    note: 'the message or the key cannot be signed; a signature that cannot be verified is On-BadSignature, as OpenDKIM',
  },
  {
    name: 'OversignHeaders',
    meaning: 'fields listed in h= once more than they occur (default none)',
    status: 'implemented',
    note: 'default differs: From (stops a second From being added under the signature); "*,+X" adds to it',
  },
  {
    name: 'PeerList',
    meaning: 'SMTP clients whose mail is passed unprocessed',
    status: 'implemented',
    note: 'the MTA hosts allowed to connect to inkan are MilterPeers (an inkan option)',
  },
  { name: 'PidFile', meaning: 'write the process id here', status: 'implemented', note: '' },
  { name: 'POPDBFile', meaning: 'POP-before-SMTP database of clients to sign for', status: 'warn', note: NOT_IN_DEBIAN },
  {
    name: 'Quarantine',
    meaning: 'quarantine mail that fails verification',
    status: 'refuse',
    note: 'not supported: use On-BadSignature quarantine',
    sameFor: NO,
  },
  {
    name: 'QueryCache',
    meaning: 'cache key records in the filter',
    status: 'implemented',
    note: 'default differs: yes (records kept at most 5 minutes)',
  },
  {
    name: 'RedirectFailuresTo',
    meaning: 'redirect mail that fails verification to this address',
    status: 'refuse',
    note: "not supported: use On-BadSignature quarantine and release from the MTA's hold queue",
  },
  {
    name: 'RemoveARAll',
    meaning: 'remove all Authentication-Results from RemoveARFrom hosts, not only DKIM ones',
    status: 'refuse',
    note: 'not supported: inkan removes fields that claim its authserv-id',
    sameFor: NO,
  },
  {
    name: 'RemoveARFrom',
    meaning: 'hosts/domains whose Authentication-Results fields are removed',
    status: 'refuse',
    note: 'not supported yet: set AuthservID to the name your hosts use (fields claiming it are removed)',
  },
  {
    name: 'RemoveOldSignatures',
    meaning: 'remove existing signatures when signing',
    status: 'refuse',
    note: 'not supported: remove it',
    sameFor: NO,
  },
  {
    name: 'ReplaceHeaders',
    meaning: 'header fields ReplaceRules applies to (experimental)',
    status: 'refuse',
    note: 'not supported (ReplaceRules neither)',
  },
  {
    name: 'ReplaceRules',
    meaning: 'regex rewrites applied to header fields before signing (experimental)',
    status: 'refuse',
    note: 'not supported: sign after the MTA rewrites (Postfix: masquerading happens before the milter sees the header)',
  },
  { name: 'ReportAddress', meaning: 'From: of failure reports', status: 'warn', note: NO_REPORTS },
  { name: 'ReportBccAddress', meaning: 'Bcc: of failure reports', status: 'warn', note: NO_REPORTS },
  {
    name: 'RequestReports',
    meaning: 'ask verifiers for failure reports (r=y) in signatures',
    status: 'warn',
    note: 'inkan never adds r=y',
    sameFor: NO,
  },
  {
    name: 'RequiredHeaders',
    meaning: 'reject mail whose header field counts break RFC 5322',
    status: 'refuse',
    note: 'not supported: inkan checks only the From count (On-Security)',
    sameFor: NO,
  },
  { name: 'RequireSafeKeys', meaning: 'refuse key files others can read or write (default yes)', status: 'implemented', note: '' },
  { name: 'ResignAll', meaning: 'with ResignMailTo: re-sign all mail, not only verified mail', status: 'warn', note: NOT_IN_DEBIAN },
  { name: 'ResignMailTo', meaning: 'recipients whose mail is re-signed after verifying', status: 'warn', note: NOT_IN_DEBIAN },
  {
    name: 'ResolverConfiguration',
    meaning: 'configuration for the resolver library (unbound: a config file)',
    status: 'refuse',
    note: 'not supported: use Nameservers (and a validating resolver there for DNSSEC)',
  },
  { name: 'ResolverTracing', meaning: 'trace the resolver', status: 'warn', note: 'no resolver tracing: use LogWhy', sameFor: NO },
  { name: 'ScreenPolicyScript', meaning: 'Lua script that may drop signatures after the header', status: 'refuse', note: NO_LUA },
  {
    name: 'SelectCanonicalizationHeader',
    meaning: 'field (default X-Canonicalization) whose value picks the canonicalization of one message',
    status: 'warn',
    note: 'inkan always signs with Canonicalization; the field is left alone',
  },
  { name: 'Selector', meaning: 'selector used with KeyFile (ignored with a KeyTable)', status: 'implemented', note: '' },
  {
    name: 'SenderHeaders',
    meaning: 'fields searched for the sender (default From)',
    status: 'refuse',
    note: 'not supported: inkan picks keys by From, as RFC 6376 binds the signature to it',
    sameFor: /^from$/i,
  },
  {
    name: 'SenderMacro',
    meaning: 'MTA macro giving the sender (experimental)',
    status: 'refuse',
    note: 'not supported: inkan picks keys by From',
  },
  { name: 'SendReports', meaning: 'send failure reports (RFC 6651) when asked', status: 'warn', note: NO_REPORTS, sameFor: NO },
  { name: 'SetupPolicyScript', meaning: 'Lua script that decides to sign or verify', status: 'refuse', note: NO_LUA },
  {
    name: 'SignatureAlgorithm',
    meaning: 'signing algorithm (default rsa-sha256)',
    status: 'implemented',
    note: 'rsa-sha1 is refused (RFC 8301); a key of the other type is a configuration error (--check-config, start-up, reload); not set, each key signs with its own algorithm (for dual RSA and Ed25519 signing)',
  },
  { name: 'SignatureTTL', meaning: 'seconds until signatures expire (x=)', status: 'implemented', note: '' },
  {
    name: 'SignHeaders',
    meaning: 'header fields signed when present; "*,+X" / "*,-X" edit the default list',
    status: 'implemented',
    note: 'default list differs: also Sender, Message-ID, MIME and a few more fields (RFC 6376 §5.4 leaves the choice to the signer)',
  },
  {
    name: 'SigningTable',
    meaning: 'sender address -> key name(s), with an optional i= value; refile: for wildcards',
    status: 'implemented',
    note: 'values "keyname[:signer]" ("%" in the signer is the From domain; an i= outside d= is left out); lookup order user@host, host, user@.parent, .parent, user@*, *; also postgresql:// and redis:// stores (docs/fleet.md)',
  },
  { name: 'SMTPURI', meaning: 'SMTP server for reports', status: 'warn', note: NOT_IN_DEBIAN },
  { name: 'Socket', meaning: 'where the milter listens: local:/path, inet:port@host, inet6:port@host', status: 'implemented', note: '' },
  {
    name: 'SoftStart',
    meaning: 'start even if an LDAP or SQL server is down',
    status: 'warn',
    note: 'no effect: inkan has no LDAP or SQL datasets (stores: docs/fleet.md)',
    sameFor: NO,
  },
  {
    name: 'SoftwareHeader',
    meaning: 'add a DKIM-Filter field naming the filter',
    status: 'warn',
    note: 'inkan adds no DKIM-Filter field',
    sameFor: NO,
  },
  { name: 'Statistics', meaning: 'file of DKIM statistics (experimental)', status: 'warn', note: NO_STATS },
  { name: 'StatisticsName', meaning: 'host name in statistics records', status: 'warn', note: NO_STATS },
  { name: 'StatisticsPolicyScript', meaning: 'Lua script adding statistics', status: 'warn', note: NO_STATS },
  { name: 'StatisticsPrefix', meaning: 'prefix hashed into anonymized statistics', status: 'warn', note: NO_STATS },
  {
    name: 'StrictHeaders',
    meaning: 'refuse mail whose header field counts break RFC 5322',
    status: 'refuse',
    note: 'not supported: inkan checks only the From count (On-Security)',
    sameFor: NO,
  },
  {
    name: 'StrictTestMode',
    meaning: 'in test mode (-t), require CRLF line ends',
    status: 'warn',
    note: 'inkan has no test mode (-t)',
    sameFor: NO,
  },
  { name: 'SubDomains', meaning: 'sign for subdomains of Domain too', status: 'implemented', note: '' },
  {
    name: 'Syslog',
    meaning: 'log through syslog',
    status: 'implemented',
    note: 'without it, inkan logs JSON lines to stdout (the journal under systemd)',
  },
  { name: 'SyslogFacility', meaning: 'syslog facility (default mail)', status: 'implemented', note: '' },
  {
    name: 'SyslogName',
    meaning: 'syslog identifier (default opendkim)',
    status: 'warn',
    note: 'inkan logs as inkan-milterd',
    sameFor: /^inkan-milterd$/,
  },
  {
    name: 'SyslogSuccess',
    meaning: 'log successful signing and verifying too',
    status: 'warn',
    note: 'inkan always logs successes (info level)',
    sameFor: YES,
  },
  {
    name: 'TemporaryDirectory',
    meaning: 'where temporary files go (default /tmp)',
    status: 'warn',
    note: 'inkan writes no temporary files',
  },
  {
    name: 'TestDNSData',
    meaning: 'dataset of TXT records used instead of DNS (testing)',
    status: 'implemented',
    note: 'a file only (file:/path or a path); read as TestPublicKeys',
  },
  {
    name: 'TestPublicKeys',
    meaning: 'file of public keys used instead of DNS (testing)',
    status: 'implemented',
    note: 'every key record comes from the file ("name record" lines, zone-style quoting allowed), none from DNS; --check-config and start-up warn that it is for tests only',
  },
  { name: 'TrustAnchorFile', meaning: 'DNSSEC trust anchors for the unbound resolver', status: 'warn', note: NO_DNSSEC },
  {
    name: 'TrustSignaturesFrom',
    meaning: 'third-party signing domains trusted (default all)',
    status: 'refuse',
    note: 'not supported: remove it (inkan verifies every signature up to MaximumSignaturesToVerify)',
  },
  { name: 'UMask', meaning: 'umask for the socket and pid file', status: 'implemented', note: '' },
  {
    name: 'UnprotectedKey',
    meaning: 'result for a passing signature whose key is not DNSSEC-signed (default none)',
    status: 'refuse',
    note: 'not supported: inkan cannot tell a DNSSEC-signed key (see TrustAnchorFile)',
    sameFor: /^none$/i,
  },
  { name: 'UserID', meaning: 'user[:group] to run as', status: 'implemented', note: '' },
  { name: 'VBR-Certifiers', meaning: 'default VBR certifiers (experimental)', status: 'warn', note: NO_VBR },
  { name: 'VBR-PurgeFields', meaning: 'remove X-VBR-* fields before sending (experimental)', status: 'warn', note: NO_VBR },
  { name: 'VBR-TrustedCertifiers', meaning: 'VBR certifiers trusted when verifying (experimental)', status: 'warn', note: NO_VBR },
  { name: 'VBR-TrustedCertifiersOnly', meaning: 'check only trusted VBR certifiers (experimental)', status: 'warn', note: NO_VBR },
  { name: 'VBR-Type', meaning: 'default VBR type (experimental)', status: 'warn', note: NO_VBR },
  {
    name: 'WeakSyntaxChecks',
    meaning: 'keep verifying despite early syntax errors',
    status: 'refuse',
    note: 'not supported: remove it',
    sameFor: NO,
  },
];

/**
 * opendkim(8)'s command-line flags and what inkan-milterd does with them. Flags that inkan
 * does not know stop start-up with commander's "unknown option" message.
 */
export const OPENDKIM_FLAGS: readonly { flag: string; meaning: string; inkan: string }[] = [
  { flag: '-A', meaning: 'AutoRestart', inkan: 'unknown option (use systemd)' },
  { flag: '-b modes', meaning: 'Mode', inkan: 'same' },
  {
    flag: '-c canon',
    meaning: 'Canonicalization',
    inkan: 'a config file (as -x); a canonicalization such as relaxed/simple is still taken, with a warning',
  },
  { flag: '-d dataset', meaning: 'Domain', inkan: 'same' },
  { flag: '-D', meaning: 'SubDomains', inkan: 'same' },
  { flag: '-e name', meaning: 'print one configuration value and exit', inkan: 'unknown option (--check-config prints them all)' },
  { flag: '-f', meaning: 'stay in the foreground', inkan: 'same (always the case)' },
  { flag: '-F time', meaning: 'fixed time for test mode', inkan: 'unknown option' },
  { flag: '-k keyfile', meaning: 'KeyFile', inkan: 'same' },
  { flag: '-l', meaning: 'Syslog', inkan: 'same' },
  { flag: '-L min', meaning: 'Minimum', inkan: 'unknown option (see Minimum)' },
  { flag: '-n', meaning: 'check the configuration and exit', inkan: 'same as --check-config' },
  { flag: '-o dataset', meaning: 'OmitHeaders', inkan: 'unknown option (use OmitHeaders)' },
  { flag: '-p socketspec', meaning: 'Socket', inkan: 'same' },
  { flag: '-P pidfile', meaning: 'PidFile', inkan: 'same' },
  { flag: '-Q', meaning: 'query test mode', inkan: 'unknown option' },
  { flag: '-r', meaning: 'RequiredHeaders', inkan: 'unknown option (see RequiredHeaders)' },
  { flag: '-s selector', meaning: 'Selector', inkan: 'same' },
  { flag: '-S signalg', meaning: 'SignatureAlgorithm', inkan: 'same' },
  { flag: '-t testfiles', meaning: 'test mode: verify files', inkan: 'unknown option (use inkan verify from @inkan/cli)' },
  { flag: '-T secs', meaning: 'DNSTimeout', inkan: 'same' },
  { flag: '-u userid[:group]', meaning: 'UserID', inkan: 'same' },
  { flag: '-v', meaning: 'more output in test mode', inkan: 'unknown option' },
  { flag: '-V', meaning: 'print the version', inkan: 'same' },
  { flag: '-W', meaning: 'LogWhy', inkan: 'same' },
  { flag: '-x configfile', meaning: 'configuration file', inkan: 'same' },
  { flag: '-X', meaning: 'tolerate deprecated options', inkan: 'unknown option (no option is deprecated)' },
];

const BY_NAME = new Map(OPENDKIM_OPTIONS.map((e) => [e.name.toLowerCase(), e]));

/** The entry for an option name (any case), if OpenDKIM has it. */
export function compatEntry(name: string): CompatEntry | undefined {
  return BY_NAME.get(name.toLowerCase());
}

/** The error for a refused option (after "file:line: "). */
export function refusalText(e: CompatEntry): string {
  return /^not supported/.test(e.note) ? `${e.name}: ${e.note}` : `${e.name} is not supported: ${e.note}`;
}

/** The warning for a not-applicable option (after "file:line: "). */
export function warningText(e: CompatEntry): string {
  return `${e.name} ignored: ${e.note}`;
}

/** What a reader sees in the Status column. */
function statusCell(e: CompatEntry): string {
  const same = e.sameFor ? ` (${sameForText(e)}: accepted silently)` : '';
  switch (e.status) {
    case 'implemented':
      return 'implemented';
    case 'warn':
      return `accepted with a warning${same}`;
    case 'refuse':
      return `refused${same}`;
  }
}

function sameForText(e: CompatEntry): string {
  if (e.sameFor === NO) return 'no';
  if (e.sameFor === YES) return 'yes';
  return (e.sameFor?.source ?? '').replace(/^\^|\$$/g, '');
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** The Markdown table of docs/opendkim-options.md (between its markers). */
export function renderOptionsTable(): string {
  const rows = OPENDKIM_OPTIONS.map((e) => `| ${e.name} | ${cell(e.meaning)} | ${statusCell(e)} | ${cell(e.note)} |`);
  return [
    '| Option | OpenDKIM meaning | inkan-milterd | Notes, warning or what to use instead |',
    '| --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** The Markdown table of opendkim(8)'s flags. */
export function renderFlagsTable(): string {
  const rows = OPENDKIM_FLAGS.map((f) => `| \`${f.flag}\` | ${cell(f.meaning)} | ${cell(f.inkan)} |`);
  return ['| Flag | OpenDKIM | inkan-milterd |', '| --- | --- | --- |', ...rows].join('\n');
}
