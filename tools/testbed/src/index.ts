/**
 * inkan's test harness: real servers and independent peers on loopback, started and
 * stopped by the tests themselves. Nothing here reads outside the repository.
 */
export { freePort, waitFor, tempDir, findProgram, runProgram, countLoopTurns, type RunResult } from './process.js';
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
export { mailDkimDomainKeysSign, mailDkimDomainKeysVerify, type DomainKeysSignOptions, type DomainKeysPeerSignature, type DomainKeysPeerVerdict } from './domainkeys-peers.js';
export { startPostfix, sendSmtp, postfixMissing, type PostfixInstance, type PostfixOptions, type SmtpSendOptions, type SmtpSendResult, type SmtpServerReply } from './postfix.js';
export { startSmtpSink, type SmtpSink, type SmtpSinkOptions, type SinkMessage, type DeliveredMessage } from './smtp-sink.js';
export { headerFields, headerValues, subjectOf, authenticationResults, type HeaderField, type ParsedAuthenticationResults } from './message.js';
export { startSendmail, prepareSendmail, sendmailMissing, type SendmailInstance, type SendmailOptions, type SendmailMilter, type SendmailRole, type SendmailDistribution } from './sendmail.js';
export { startPostgres, startRedis, postgresMissing, redisMissing, type PostgresServer, type RedisServer } from './stores.js';
export { startRspamd, rspamdMissing, type RspamdInstance, type RspamdOptions } from './rspamd.js';
