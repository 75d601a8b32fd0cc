package dev.kerasdc.bundle;

/**
 * A parsed HuffmanStream structure (format spec section 6): {@code count}, {@code nbits}, the
 * code lengths and where the coded bits lie. Parsing checks everything that can be checked before
 * decoding; {@link SymbolReader} (and the {@link BlockDecoder} behind it) checks the rest while
 * decoding. Used by one thread (one restore).
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

  /** Code lengths by symbol; {@code null} for an empty stream. */
  private final int[] lengths;
  /** Field name prefix, e.g. {@code segment[2].indices}. */
  final String field;
  /** The one-symbol lookup-table code of {@link #decoder}, built on first use. */
  private HuffmanCode code;

  private HuffmanStream(
      int offset, long count, long nbits, int alphabet, int dataOffset, int end, int[] lengths,
      String field) {
    this.offset = offset;
    this.count = count;
    this.nbits = nbits;
    this.alphabet = alphabet;
    this.dataOffset = dataOffset;
    this.end = end;
    this.lengths = lengths;
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
    HuffmanCode.checkLengths(lengths, lengthsOffset, field + ".lengths");
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
    return new HuffmanStream(p, count, nbits, alphabet, dataOffset, end, lengths, field);
  }

  /** Code length of {@code symbol} (0 = unused or outside the alphabet). */
  int length(int symbol) {
    return symbol < alphabet ? lengths[symbol] : 0;
  }

  /** Bytes of coded data: {@code ceil(nbits / 8)}. */
  int dataBytes() {
    return end - dataOffset;
  }

  /**
   * A one-symbol-at-a-time decoder positioned at the first symbol (the reference the block decoder
   * is tested against); only for a stream with {@code count > 0}.
   */
  HuffmanDecoder decoder(byte[] b) throws BundleFormatException {
    if (code == null) {
      code = HuffmanCode.fromLengths(lengths, offset + FIXED_SIZE, field + ".lengths");
    }
    return code.decoder(b, dataOffset, nbits, field + ".data");
  }

  /**
   * A block decoder positioned at the first symbol; only for a stream with {@code count > 0}. Its
   * lookup table grows with the stream: 2^8 entries for short streams, 2^12 for long ones.
   */
  BlockDecoder blockDecoder(byte[] b) {
    int packBits = count >= 65536 ? 12 : count >= 16384 ? 11 : count >= 4096 ? 10 : 8;
    return new BlockDecoder(lengths, packBits, b, dataOffset, nbits, field + ".data");
  }

  /**
   * The 142 bytes that turn {@code data} into the body of a literal-only DEFLATE block (spec
   * section 12), for a raw {@link java.util.zip.Inflater}; only for a stream with {@code count >
   * 0}.
   *
   * <p>Bits, least significant first: three empty non-final fixed-Huffman blocks (BFINAL 0, BTYPE
   * 01, end-of-block 0000000: 10 bits each), so that what follows ends on a byte boundary; BFINAL
   * 1, BTYPE 10 (dynamic); HLIT 0 (257 literal/length codes); HDIST 0 (one distance code); HCLEN
   * 15 (all 19 code-length code lengths); the code-length code lengths, 3 bits each in the order
   * 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15: 0, 0, 0, then sixteen 4s, so
   * that code-length symbol v has the 4-bit codeword v. That is 104 bits (13 bytes). Then the 258
   * code lengths (literals 0..255, end-of-block 256 with the longest length L, so that it takes
   * the reserved codeword; the distance code's length 0), each as its 4-bit codeword sent most
   * significant bit first: 129 bytes.
   */
  byte[] deflatePrefix() {
    byte[] prefix = new byte[DEFLATE_HEAD.length + 129];
    System.arraycopy(DEFLATE_HEAD, 0, prefix, 0, DEFLATE_HEAD.length);
    int maxLength = 0;
    for (int len : lengths) {
      maxLength = Math.max(maxLength, len);
    }
    for (int s = 0; s < 258; s++) {
      int len = s < alphabet ? lengths[s] : s == 256 ? maxLength : 0;
      // Nibble s/2: symbol s in the low half when s is even (it is sent first).
      prefix[DEFLATE_HEAD.length + (s >>> 1)] |= (byte) (REVERSED_NIBBLE[len] << ((s & 1) << 2));
    }
    return prefix;
  }

  /** The 13 fixed bytes of {@link #deflatePrefix} (104 bits, values as documented there). */
  private static final byte[] DEFLATE_HEAD = deflateHead();

  /** {@code REVERSED_NIBBLE[v]}: v's 4 bits in reverse order (MSB-first codeword, LSB-first). */
  private static final int[] REVERSED_NIBBLE = {
    0x0, 0x8, 0x4, 0xC, 0x2, 0xA, 0x6, 0xE, 0x1, 0x9, 0x5, 0xD, 0x3, 0xB, 0x7, 0xF
  };

  private static byte[] deflateHead() {
    long[] fields = { // {value, bit width}, in stream order
      0, 1, 1, 2, 0, 7, // empty fixed block: BFINAL 0, BTYPE 01, end-of-block 0000000
      0, 1, 1, 2, 0, 7,
      0, 1, 1, 2, 0, 7,
      1, 1, 2, 2, // BFINAL 1, BTYPE 10
      0, 5, 0, 5, 15, 4, // HLIT, HDIST, HCLEN
      0, 3, 0, 3, 0, 3, // code-length code lengths of 16, 17, 18
    };
    byte[] head = new byte[13];
    int bit = 0;
    for (int i = 0; i < fields.length + 32; i += 2) {
      // After the listed fields: sixteen 4s (the lengths of 0, 8, 7, 9, ..., 1, 15).
      long value = i < fields.length ? fields[i] : 4;
      int width = i < fields.length ? (int) fields[i + 1] : 3;
      for (int k = 0; k < width; k++, bit++) {
        head[bit >>> 3] |= (byte) (((value >>> k) & 1) << (bit & 7));
      }
    }
    if (bit != 104) {
      throw new IllegalStateException("the DEFLATE head has " + bit + " bits, not 104");
    }
    return head;
  }

  /**
   * Checks that the {@code count} symbols read ended exactly at bit {@code nbits} (reported as this
   * stream's {@code nbits}, as the Python reader does); {@code position} is the bits they took.
   */
  void finish(long position) throws BundleFormatException {
    if (position != nbits) {
      throw new BundleFormatException(
          offset + 8,
          field + ".nbits",
          count + " symbols take " + position + " bits, not nbits = " + nbits);
    }
  }

  /**
   * Checks that the {@code count} symbols read with {@code decoder} ended exactly at bit
   * {@code nbits}.
   */
  void finish(HuffmanDecoder decoder) throws BundleFormatException {
    finish(decoder.position());
  }
}
