/**
 * @inkan/milter-protocol: the Sendmail/Postfix milter protocol, versions 2, 3, 4 and 6.
 *
 * - sans-I/O core: PacketDecoder/encodePacket (framing), encode/decodeCommand and
 *   encode/decodeResponse (typed both ways), negotiate (option negotiation), MacroStore;
 * - createMilterServer: the filter side on unix and TCP sockets, one handler per connection;
 * - MilterClient/runTransaction: the MTA side, to drive any filter;
 * - parseSocketSpec/formatPostfixMilter/formatSendmailFilter: socket specs in both dialects.
 */
export {
  ACTIONS_ALL,
  ACTIONS_V1,
  ACTIONS_V2,
  ActionFlags,
  AddressFamily,
  CommandCode,
  DEFAULT_MAX_PACKET_SIZE,
  MAX_DATA_SIZE,
  MAX_DATA_SIZE_1M,
  MAX_DATA_SIZE_256K,
  MILTER_MIN_VERSION,
  MILTER_VERSION,
  MacroStageCode,
  type MacroStage,
  PROTOCOL_ALL,
  PROTOCOL_NO_REPLY_MASK,
  PROTOCOL_NO_SEND_MASK,
  PROTOCOL_V1,
  PROTOCOL_V2,
  ProtocolFlags,
  ResponseCode,
  codeName,
  describeActions,
  describeProtocol,
} from './constants.js';
export { MilterError, MilterHeaderError, MilterProtocolError } from './errors.js';
export type { Bytes } from './wire.js';
export { type Packet, type PacketDecoderOptions, PacketDecoder, decodePackets } from './decoder.js';
export { encodePacket } from './encoder.js';
export {
  type ConnectFamily,
  type MacroPair,
  type MilterCommand,
  type MilterCommandType,
  commandStage,
  decodeCommand,
  encodeCommand,
  normalizeAddress,
} from './commands.js';
export {
  type FinalResponse,
  type MacroList,
  type MilterResponse,
  type MilterResponseType,
  type Modification,
  decodeResponse,
  encodeResponse,
  isFinalResponse,
  isModification,
} from './responses.js';
export { type SmtpReply, formatSmtpReply, parseSmtpReply } from './reply.js';
export {
  EVENT_BITS,
  type EventStage,
  type FilterRequirements,
  type MacroRequests,
  type NegotiatedOptions,
  type OptionOffer,
  acceptFilterReply,
  actionsOfVersion,
  expectsReply,
  macroLists,
  macroRequestName,
  maxDataSizeOf,
  mtaOffer,
  negotiate,
  negotiationResponse,
  protocolOfVersion,
  sendsEvent,
} from './negotiation.js';
export { MACRO_STAGE_ORDER, type MacroCommandLetter, MacroStore, macroKey } from './macros.js';
export {
  type SendmailFilterFlags,
  type SocketSpec,
  type SocketSpecDialect,
  formatPostfixMilter,
  formatSendmailFilter,
  formatSocketSpec,
  parseSocketSpec,
  toSocketSpec,
} from './socket-spec.js';
export { listenUnix, probeUnixSocket, removeStaleSocket, resolveGroup } from './unix-socket.js';
export { Modifier } from './modifier.js';
export {
  type ConnectInfo,
  Decision,
  type Envelope,
  type HandlerFactory,
  type HandlerResult,
  type MessageInfo,
  type MilterContext,
  type MilterHandler,
  type MilterLogLevel,
  type MilterLogger,
  logsAt,
  protocolForHandler,
} from './handler.js';
export { MilterSession, type SessionOptions } from './session.js';
export { type BudgetHolder, BufferBudget } from './budget.js';
export {
  DEFAULT_MAX_BUFFERED_BYTES,
  type MilterListener,
  MilterServer,
  type MilterServerEvents,
  type MilterServerOptions,
  createMilterServer,
} from './server.js';
export { type MessageHeader, type SplitMessage, splitMessage, toCrlf } from './message.js';
export { type EndOfMessageResult, MilterClient, type MilterClientOptions, type StepReply } from './client.js';
export { type Transaction, type TransactionResult, type TransactionStep, runTransaction } from './transaction.js';
