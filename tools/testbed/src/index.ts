/**
 * inkan's test harness: real servers and independent peers on loopback, started and
 * stopped by the tests themselves. Nothing here reads outside the repository.
 *
 * The one toolbox of the tests, the bench, the soak and the fuzz targets: inkan-milterd as a
 * process (milterd.ts), an SMTP client (smtp-client.ts) and sink (smtp-sink.ts), private
 * Postfix and Sendmail instances, /proc readers for a server under test (proc-sample.ts), and
 * the reference canonicalizations the streaming ones are checked against. Product code does
 * not import it.
 */
export { freePort, waitFor, tempDir, findProgram, runProgram, countLoopTurns, type RunResult } from './process.js';
export {
  statusField,
  statusKiB,
  rssKiB,
  cpuSeconds,
  fdCount,
  describeFds,
  sampleProcess,
  sampleRss,
  type ProcessSample,
} from './proc-sample.js';
export { startDnsmasq, txtStrings, type DnsServer, type DnsRecords, type TxtData } from './dnsmasq.js';
export { startSlowDns, type SlowDns, type SlowDnsOptions, type DnsDelay } from './slow-dns.js';
export { makeKeys, dkimKeyRecord, type TestKey, type RsaTestKey, type TestKeys } from './keys.js';
export {
  peers,
  dkimpyVerify,
  dkimpySign,
  mailDkimVerify,
  mailDkimSign,
  opendkimVerify,
  opendkimSign,
  type PeerSignature,
  type PeerVerdict,
  type PeerSignOptions,
} from './peers.js';
export {
  mailDkimDomainKeysSign,
  mailDkimDomainKeysVerify,
  type DomainKeysSignOptions,
  type DomainKeysPeerSignature,
  type DomainKeysPeerVerdict,
} from './domainkeys-peers.js';
export {
  startMilterd,
  startMilterdOnPort,
  tcpAccepting,
  MILTERD_BIN,
  type MilterdProcess,
  type MilterdOptions,
  type MilterdOnPort,
} from './milterd.js';
export { startPostfix, postfixMissing, type PostfixInstance, type PostfixOptions } from './postfix.js';
export {
  SmtpSession,
  sendSmtp,
  toCrlf,
  dotStuff,
  type SmtpSessionOptions,
  type SmtpTransactionOptions,
  type SmtpTransactionResult,
  type SmtpSendOptions,
  type SmtpSendResult,
  type SmtpServerReply,
} from './smtp-client.js';
export { startSmtpSink, type SmtpSink, type SmtpSinkOptions, type SinkMessage, type DeliveredMessage } from './smtp-sink.js';
export {
  headerFields,
  headerValues,
  subjectOf,
  authenticationResults,
  type HeaderField,
  type ParsedAuthenticationResults,
} from './message.js';
export {
  startSendmail,
  prepareSendmail,
  sendmailMissing,
  type SendmailInstance,
  type SendmailOptions,
  type SendmailMilter,
  type SendmailRole,
  type SendmailDistribution,
} from './sendmail.js';
export { startPostgres, startRedis, postgresMissing, redisMissing, type PostgresServer, type RedisServer } from './stores.js';
/** The slow reference canonicalizations (RFC 6376 simple/relaxed, RFC 4870 simple/nofws) that tests and fuzz targets compare with. */
export * as canonicalizationReference from './reference-canonicalization.js';
export { startRspamd, rspamdMissing, type RspamdInstance, type RspamdOptions } from './rspamd.js';
