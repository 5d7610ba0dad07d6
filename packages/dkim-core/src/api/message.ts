/**
 * @inkan/dkim-core/message: the streaming message plumbing below MessageParser, for parsers
 * of other signature schemes: a header collector with dkim-core's limits, the CRLF line-ending
 * normalizer, feeding a Buffer or Readable into a sink, and HeaderField construction.
 */
export {
  type HeaderField,
  type LineEndings,
  type MessageInput,
  type MessageSink,
  HeaderCollector,
  LineEndingNormalizer,
  DEFAULT_MAX_HEADER_BYTES,
  feedMessage,
  makeHeaderField,
} from '../message.js';
