package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Encoding;

/**
 * Decodes segment payloads (format spec section 7) into an {@link Output}: RAW (7.1) here, the
 * other encodings by their own decoders ({@link ZlibDecoder} 7.2 and 7.11, with the {@link
 * SkeletonDictionary}; {@link Codebooks} 7.3, {@link ClusteredSparseDecoder} 7.4, {@link
 * ClusteredDenseDecoder} 7.5, {@link SparseRawDecoder} 7.6; the grouped encodings of 7.8 by
 * the clustered decoders, with a {@link CodebookMap}; {@link DeltaDecoder} 7.9 and {@link
 * MaskedDecoder} 7.12, which hand their inner payload back to {@link #decodeInner}; {@link
 * PackedDecoder} 7.10, which hands each part back to {@link #decodePart}).
 * One instance serves one restore, on one thread: it keeps a {@link Workspace} between segments.
 * Call {@link #end} when done.
 */
final class SegmentDecoder {
  private final Workspace work;

  SegmentDecoder(HuffmanDecoding huffman) {
    this.work = new Workspace(huffman);
  }

  /** Releases the native memory of the Inflaters. */
  void end() {
    work.end();
  }

  /**
   * Decodes {@code entry}'s payload, whose CRC has been checked, writing exactly its size. Each
   * segment, and each part of a PACKED segment, starts with a fresh window: its length is then a
   * multiple of every element size, so an element never straddles the end of a window.
   */
  void decode(byte[] b, SegmentEntry entry, Output out) throws BundleFormatException {
    Payload payload = new Payload(b, entry);
    if (entry.getEncoding() == Encoding.PACKED) {
      PackedDecoder.decode(payload, this, out);
    } else {
      decodePart(payload, out);
    }
  }

  /**
   * Decodes a payload of any encoding but PACKED: a segment's, or a part of a PACKED segment
   * (7.10), which starts a fresh window as a segment does.
   */
  void decodePart(Payload payload, Output out) throws BundleFormatException {
    out.flush();
    switch (payload.entry.getEncoding()) {
      case Encoding.DELTA:
        DeltaDecoder.decode(payload, this, out);
        break;
      case Encoding.MASKED:
        MaskedDecoder.decode(payload, this, out);
        break;
      default:
        decodeInner(payload, out);
    }
  }

  /**
   * Decodes a payload of any encoding but DELTA, PACKED and MASKED: a segment's, or the inner
   * payload of a DELTA (7.9) or MASKED (7.12) payload, whose entry carries the inner encoding and
   * payload range (and for MASKED the kept submatrix's size and channels).
   */
  void decodeInner(Payload payload, Output out) throws BundleFormatException {
    SegmentEntry entry = payload.entry;
    switch (entry.getEncoding()) {
      case Encoding.RAW:
        decodeRaw(payload, out);
        break;
      case Encoding.ZLIB:
        ZlibDecoder.decode(payload, work.zlib(), out, null);
        break;
      case Encoding.ZLIB_DICT:
        ZlibDecoder.decode(payload, work.zlib(), out, SkeletonDictionary.bytes());
        break;
      case Encoding.CLUSTERED_SPARSE:
      case Encoding.GROUPED_SPARSE:
        ClusteredSparseDecoder.read(payload, Codebooks.read(payload)).decode(work, out);
        break;
      case Encoding.CLUSTERED_DENSE:
      case Encoding.GROUPED_DENSE:
        ClusteredDenseDecoder.decode(payload, Codebooks.read(payload), work, out);
        break;
      case Encoding.SPARSE_RAW:
        SparseRawDecoder.read(payload).decode(work, out);
        break;
      default: // DELTA, PACKED and MASKED are never inner encodings; the others were validated
        throw new IllegalStateException("not an inner encoding: " + entry.getEncoding());
    }
  }

  /** RAW (7.1): the payload is the segment's bytes. */
  private static void decodeRaw(Payload payload, Output out) throws BundleFormatException {
    SegmentEntry entry = payload.entry;
    if (entry.getPayloadSize() != entry.getSize()) {
      throw new BundleFormatException(
          entry.payloadSizeOffset(),
          entry.field("payload_size"),
          "a RAW payload must hold size = " + entry.getSize() + " bytes, not "
              + entry.getPayloadSize());
    }
    out.put(payload.b, payload.start, entry.getPayloadSize());
  }
}
