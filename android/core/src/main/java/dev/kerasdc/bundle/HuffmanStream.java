package dev.kerasdc.bundle;

/**
 * A parsed HuffmanStream structure (format spec section 6): {@code count}, {@code nbits}, the
 * code lengths and where the coded bits lie. Parsing checks everything that can be checked before
 * decoding; {@link HuffmanDecoder} checks the rest while decoding.
 */
final class HuffmanStream {
  /** Bytes before the code lengths: count (u64), nbits (u64), alphabet (u16). */
  static final int FIXED_SIZE = 18;

  /** Sidecar offset of the structure. */
  final int offset;
  final long count;
  final long nbits;
  final int alphabet;
  final int dataOffset;
  /** Sidecar offset just after the structure. */
  final int end;

  private final HuffmanCode code;
  private final String field;

  private HuffmanStream(
      int offset, long count, long nbits, int alphabet, int dataOffset, int end, HuffmanCode code,
      String field) {
    this.offset = offset;
    this.count = count;
    this.nbits = nbits;
    this.alphabet = alphabet;
    this.dataOffset = dataOffset;
    this.end = end;
    this.code = code;
    this.field = field;
  }

  /**
   * Parses the stream at {@code p}, which must end by {@code limit}.
   *
   * @param field field name prefix, e.g. {@code segment[2].indices}
   * @param maxAlphabet the largest {@code alphabet} the user of the stream allows
   */
  static HuffmanStream parse(byte[] b, int p, int limit, String field, int maxAlphabet)
      throws BundleFormatException {
    if (limit - p < FIXED_SIZE) {
      int left = limit - p;
      int at = left < 8 ? 0 : left < 16 ? 8 : 16;
      String part = left < 8 ? ".count" : left < 16 ? ".nbits" : ".alphabet";
      throw new BundleFormatException(
          p + at,
          field + part,
          "truncated: the stream header needs " + FIXED_SIZE + " bytes, " + (limit - p)
              + " are left in the payload");
    }
    // The checks run in the order of the Python reader (converters/sidecar.py).
    long count = LittleEndian.u64(b, p);
    long nbits = LittleEndian.u64(b, p + 8);
    int alphabet = LittleEndian.u16(b, p + 16);
    if (alphabet > maxAlphabet) {
      throw new BundleFormatException(
          p + 16, field + ".alphabet", alphabet + " exceeds the maximum of " + maxAlphabet);
    }
    int lengthsOffset = p + FIXED_SIZE;
    int lengthBytes = (alphabet + 1) / 2;
    if (lengthBytes > limit - lengthsOffset) {
      throw new BundleFormatException(
          lengthsOffset,
          field + ".lengths",
          "truncated: " + lengthBytes + " bytes of code lengths, " + (limit - lengthsOffset)
              + " left in the payload");
    }
    int[] lengths = new int[alphabet];
    for (int s = 0; s < alphabet; s++) {
      int v = b[lengthsOffset + s / 2] & 0xFF;
      lengths[s] = (s & 1) == 0 ? v & 0xF : v >>> 4;
    }
    if ((alphabet & 1) == 1 && (b[lengthsOffset + alphabet / 2] & 0xF0) != 0) {
      throw new BundleFormatException(
          lengthsOffset + alphabet / 2,
          field + ".lengths",
          "the unused high nibble of the last length byte is not zero");
    }
    int dataOffset = lengthsOffset + lengthBytes;
    if (count == 0) {
      if (nbits != 0 || alphabet != 0) {
        throw new BundleFormatException(
            p + 8,
            field + ".nbits",
            "an empty stream must have nbits = 0 and alphabet = 0, not " + Sidecar.unsigned(nbits)
                + " and " + alphabet);
      }
      return new HuffmanStream(p, 0, 0, 0, dataOffset, dataOffset, null, field);
    }
    HuffmanCode code = HuffmanCode.fromLengths(lengths, lengthsOffset, field + ".lengths");
    if (count < 0) {
      throw new BundleFormatException(
          p, field + ".count", Sidecar.unsigned(count) + " is out of range");
    }
    // Every codeword is 1 to 15 bits: count <= nbits <= 15 * count (no overflow: (nbits-1)/15).
    if (nbits < count || (nbits - 1) / HuffmanCode.MAX_LENGTH >= count) {
      throw new BundleFormatException(
          p + 8,
          field + ".nbits",
          Sidecar.unsigned(nbits) + " bits cannot hold " + count
              + " codewords of 1 to 15 bits");
    }
    long dataBytes = (nbits + 7) >>> 3;
    if (dataBytes > limit - dataOffset) {
      throw new BundleFormatException(
          dataOffset,
          field + ".data",
          "truncated: " + nbits + " bits need " + dataBytes + " bytes, " + (limit - dataOffset)
              + " are left in the payload");
    }
    int end = dataOffset + (int) dataBytes;
    int padding = (int) (nbits & 7);
    if (padding != 0 && ((b[end - 1] & 0xFF) >>> padding) != 0) {
      throw new BundleFormatException(
          end - 1, field + ".data", "padding bits after bit nbits = " + nbits + " are not zero");
    }
    return new HuffmanStream(p, count, nbits, alphabet, dataOffset, end, code, field);
  }

  /** A decoder positioned at the first symbol; only for a stream with {@code count > 0}. */
  HuffmanDecoder decoder(byte[] b) {
    return code.decoder(b, dataOffset, nbits, field + ".data");
  }

  /**
   * Checks that the {@code count} symbols read with {@code decoder} ended exactly at bit
   * {@code nbits} (reported as this stream's {@code nbits}, as the Python reader does).
   */
  void finish(HuffmanDecoder decoder) throws BundleFormatException {
    if (decoder.position() != nbits) {
      throw new BundleFormatException(
          offset + 8,
          field + ".nbits",
          count + " symbols take " + decoder.position() + " bits, not nbits = " + nbits);
    }
  }
}
