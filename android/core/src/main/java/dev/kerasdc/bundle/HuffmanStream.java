package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Stream;

/**
 * A parsed HuffmanStream structure (format spec section 6; with the compact header of 6.5 inside
 * a PACKED part): {@code count}, {@code nbits}, the code and where the coded bits lie. Parsing
 * checks every rule of 6.4 that needs no decoding; the decoders ({@link SymbolDecoder}) check the
 * rest while decoding, and {@link #finish} that the symbols end at {@code nbits}. Used by one
 * thread (one restore).
 */
final class HuffmanStream {
  /** Sidecar offset of the structure, which is that of {@code count} (its first field). */
  final int offset;
  /** Sidecar offset of {@code nbits}. */
  final int nbitsOffset;
  final long count;
  final long nbits;
  final int alphabet;
  final int dataOffset;
  /** Sidecar offset just after the structure. */
  final int end;

  /** The code; {@code null} for an empty stream. */
  private final HuffmanCode code;
  /** Field name prefix, e.g. {@code segment[2].indices}. */
  final String field;

  private HuffmanStream(
      int offset, int nbitsOffset, long count, long nbits, int alphabet, int dataOffset, int end,
      HuffmanCode code, String field) {
    this.offset = offset;
    this.nbitsOffset = nbitsOffset;
    this.count = count;
    this.nbits = nbits;
    this.alphabet = alphabet;
    this.dataOffset = dataOffset;
    this.end = end;
    this.code = code;
    this.field = field;
  }

  /**
   * Parses the stream at {@code p}, which must end by {@code limit}. The checks run in the order
   * of section 10 (fields in the order they are stored, each against the bytes remaining).
   *
   * @param field field name prefix, e.g. {@code segment[2].indices}
   * @param maxAlphabet the largest {@code alphabet} the user of the stream allows (section 7)
   */
  static HuffmanStream parse(byte[] b, int p, int limit, String field, int maxAlphabet)
      throws BundleFormatException {
    if (limit - p < Stream.FIXED_SIZE) {
      int left = limit - p;
      int at = left < Stream.NBITS ? Stream.COUNT : left < Stream.ALPHABET ? Stream.NBITS
          : Stream.ALPHABET;
      String part = left < Stream.NBITS ? ".count" : left < Stream.ALPHABET ? ".nbits"
          : ".alphabet";
      throw new BundleFormatException(
          p + at,
          field + part,
          "truncated: the stream header needs " + Stream.FIXED_SIZE + " bytes, " + (limit - p)
              + " are left in the payload");
    }
    long count = LittleEndian.u64(b, p + Stream.COUNT);
    long nbits = LittleEndian.u64(b, p + Stream.NBITS);
    int alphabet = LittleEndian.u16(b, p + Stream.ALPHABET);
    return parseBody(
        b, p, p + Stream.NBITS, p + Stream.ALPHABET, p + Stream.LENGTHS, limit, field,
        maxAlphabet, count, nbits, alphabet);
  }

  /**
   * Parses the stream {@code name} of {@code payload} at its read position, with the compact
   * header of spec 6.5: varints {@code count}, {@code nbits} and {@code alphabet}, each checked
   * as it is read (section 10); the rest as {@link #parse}.
   */
  static HuffmanStream parseCompact(Payload payload, String name, int maxAlphabet)
      throws BundleFormatException {
    int start = payload.p;
    long count = payload.varint(name + ".count");
    int nbitsAt = payload.p;
    long nbits = payload.varint(name + ".nbits");
    int alphabetAt = payload.p;
    long alphabet = payload.varint(name + ".alphabet");
    return parseBody(
        payload.b, start, nbitsAt, alphabetAt, payload.p, payload.end, payload.field(name),
        maxAlphabet, count, nbits, alphabet);
  }

  /**
   * The rules of 6.4 that need no decoding, for a stream whose header fields (at {@code p},
   * {@code nbitsAt} and {@code alphabetAt}) hold {@code count}, {@code nbits} and {@code
   * alphabet}; its code lengths start at {@code lengthsOffset}.
   */
  private static HuffmanStream parseBody(
      byte[] b, int p, int nbitsAt, int alphabetAt, int lengthsOffset, int limit, String field,
      int maxAlphabet, long count, long nbits, long alphabetValue)
      throws BundleFormatException {
    if (alphabetValue > maxAlphabet) {
      throw new BundleFormatException(
          alphabetAt,
          field + ".alphabet",
          alphabetValue + " exceeds the maximum of " + maxAlphabet);
    }
    int alphabet = (int) alphabetValue;
    int lengthBytes = Stream.lengthsSize(alphabet);
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
            nbitsAt,
            field + ".nbits",
            "an empty stream must have nbits = 0 and alphabet = 0, not " + Sidecar.unsigned(nbits)
                + " and " + alphabet);
      }
      return new HuffmanStream(p, nbitsAt, 0, 0, 0, dataOffset, dataOffset, null, field);
    }
    HuffmanCode code = HuffmanCode.fromLengths(lengths, lengthsOffset, field + ".lengths");
    if (count < 0) {
      throw new BundleFormatException(
          p, field + ".count", Sidecar.unsigned(count) + " is out of range");
    }
    // Every codeword is 1 to 15 bits: count <= nbits <= 15 * count (no overflow: (nbits-1)/15).
    if (nbits < count || (nbits - 1) / Stream.MAX_CODE_LENGTH >= count) {
      throw new BundleFormatException(
          nbitsAt,
          field + ".nbits",
          Sidecar.unsigned(nbits) + " bits cannot hold " + count
              + " codewords of 1 to " + Stream.MAX_CODE_LENGTH + " bits");
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
    return new HuffmanStream(p, nbitsAt, count, nbits, alphabet, dataOffset, end, code, field);
  }

  /** The stream's code; only for a stream with {@code count > 0}. */
  HuffmanCode code() {
    return code;
  }

  /** Code length of {@code symbol} (0 = unused or outside the alphabet). */
  int length(int symbol) {
    return symbol < alphabet ? code.length(symbol) : 0;
  }

  /** Bytes of coded data: {@code ceil(nbits / 8)}. */
  int dataBytes() {
    return end - dataOffset;
  }

  /** A window over the coded bits, none read yet. */
  BitWindow bits(byte[] b) {
    return new BitWindow(b, dataOffset, nbits, field + ".data");
  }

  /**
   * The reference decoder ({@link HuffmanDecoder}) positioned at the first symbol; only for a
   * stream with {@code count > 0}.
   */
  HuffmanDecoder decoder(byte[] b) {
    return code.decoder(bits(b));
  }

  /**
   * A block decoder positioned at the first symbol; only for a stream with {@code count > 0}. Its
   * lookup table grows with the stream: 2^8 entries for short streams, 2^12 for long ones.
   */
  BlockDecoder blockDecoder(byte[] b) {
    int packBits = count >= 65536 ? 12 : count >= 16384 ? 11 : count >= 4096 ? 10 : 8;
    return blockDecoder(b, packBits);
  }

  /** A block decoder with tables of 2^{@code packBits} entries (8 to 12). */
  BlockDecoder blockDecoder(byte[] b, int packBits) {
    return new BlockDecoder(code, packBits, bits(b));
  }

  /**
   * Checks that the {@code count} symbols read ended exactly at bit {@code nbits} (spec 6.4,
   * reported as this stream's {@code nbits}); {@code position} is the bits they took.
   */
  void finish(long position) throws BundleFormatException {
    if (position != nbits) {
      throw new BundleFormatException(
          nbitsOffset,
          field + ".nbits",
          count + " symbols take " + position + " bits, not nbits = " + nbits);
    }
  }
}
