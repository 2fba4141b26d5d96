/**
 * QPACK's view of the shared Huffman code (`../huffman.ts`, RFC 7541 Appendix B, reused by
 * RFC 9204 §4.1.2): the same tables, with decoding failures raised as QPACK errors.
 */
import { HUFFMAN_ERR_EOS, huffmanDecodeInto as decodeInto, huffmanMaxDecodedLength } from '../huffman.js';
import { qpackError } from './codes.js';

export {
  HUFFMAN_CODES,
  HUFFMAN_EOS,
  HUFFMAN_LENGTHS,
  huffmanEncode,
  huffmanEncodeInto,
  huffmanEncodedLength,
  huffmanEncodedLengthOfString,
  huffmanMaxDecodedLength,
} from '../huffman.js';

/** Like the shared decoder; throws MUXPOOL_ERR_QPACK on EOS or bad padding. */
export function huffmanDecodeInto(src: Uint8Array, start: number, end: number, out: Uint8Array, offset: number): number {
  const pos = decodeInto(src, start, end, out, offset);
  if (pos < 0) throw qpackError(pos === HUFFMAN_ERR_EOS ? 'Huffman string contains EOS' : 'Huffman string has invalid padding');
  return pos;
}

/** Decodes a Huffman-coded string; throws MUXPOOL_ERR_QPACK on EOS or bad padding. */
export function huffmanDecode(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(huffmanMaxDecodedLength(bytes.length));
  const length = huffmanDecodeInto(bytes, 0, bytes.length, out, 0);
  return out.subarray(0, length);
}
