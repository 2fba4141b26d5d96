/**
 * The pure HTTP/3 codecs: QUIC varints, HTTP/3 frames and stream decoders (RFC 9114), QPACK
 * field sections without a dynamic table (RFC 9204), and the HPACK Huffman code (RFC 7541).
 * Bytes in, items out: no I/O, no timers.
 */
export * from './codes.js';
export {
  FRAME_CANCEL_PUSH,
  FRAME_DATA,
  FRAME_GOAWAY,
  FRAME_HEADERS,
  FRAME_MAX_PUSH_ID,
  FRAME_PUSH_PROMISE,
  FRAME_SETTINGS,
  SETTINGS_MAX_FIELD_SECTION_SIZE,
  SETTINGS_QPACK_BLOCKED_STREAMS,
  SETTINGS_QPACK_MAX_TABLE_CAPACITY,
  STREAM_TYPE_CONTROL,
  STREAM_TYPE_PUSH,
  STREAM_TYPE_QPACK_DECODER,
  STREAM_TYPE_QPACK_ENCODER,
  encodeCancelPushFrame,
  encodeDataFrameHeader,
  encodeFrame,
  encodeFrameHeader,
  encodeGoawayFrame,
  encodeHeadersFrame,
  encodeMaxPushIdFrame,
  encodeSettingsFrame,
  encodeStreamType,
  isHttp2OnlyFrameType,
  isHttp2OnlySetting,
  parseGoaway,
  parsePushId,
  parseSettings,
} from './frames.js';
export {
  ControlStreamDecoder,
  MAX_CONTROL_FRAME_PAYLOAD_BYTES,
  QpackDecoderStreamDecoder,
  QpackEncoderStreamDecoder,
  RequestStreamDecoder,
  UniStreamTypeReader,
  readStreamType,
  type ControlEvent,
  type LocalRole,
  type RequestStreamEvent,
  type RequestStreamState,
} from './decoders.js';
export { FIELD_OVERHEAD_BYTES, type FieldSectionLimits, decodeFieldSection, encodeFieldSection } from './qpack.js';
export { QPACK_STATIC_TABLE, staticIndexOf, staticNameIndexOf } from './qpack-static.js';
export { huffmanDecode, huffmanEncode, huffmanEncodedLength } from './huffman.js';
export { MAX_VARINT, readVarint, varintLength, writeVarint } from './varint.js';
