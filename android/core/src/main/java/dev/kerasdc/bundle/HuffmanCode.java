package dev.kerasdc.bundle;

/**
 * A canonical Huffman code with one reserved codeword (format spec 6.1 and 6.2): the code lengths,
 * their canonical codewords, and the canonical order that a decoder walks for long codewords.
 *
 * <p>The lengths must satisfy the format's Kraft equality: the sum over used symbols of
 * 2^(L - len) equals 2^L - 1 (L = the longest code length, at most 15), so that the code is
 * complete except for the all-ones word of length L, which a decoder rejects.
 *
 * <p>{@link #decoder} returns the reference decoder, which looks every symbol up in one table of
 * 2^L entries indexed by the next L stream bits; the table is built on first use.
 */
public final class HuffmanCode {
  /** The longest code length the format allows. */
  public static final int MAX_LENGTH = Format.Stream.MAX_CODE_LENGTH;

  private final int[] lengths;
  private final int[] codewords;
  private final int maxLength;
  /** {@code count[len]}: symbols with code length len (count[0] = 0). */
  final int[] count;
  /** The used symbols in canonical order: by code length, then by symbol. */
  final int[] sorted;
  /** {@code firstCode[len]}: the codeword of the first symbol of length len (6.2's next_code). */
  final int[] firstCode;
  /** {@code firstIndex[len]}: where the symbols of length len start in {@link #sorted}. */
  final int[] firstIndex;
  /**
   * The reference decoder's table, built on first use: entry {@code (symbol << 4) | length} for
   * every L-bit window whose first {@code length} bits (stream order) are that symbol's codeword;
   * 0 for the reserved codeword.
   */
  private volatile int[] table;

  private HuffmanCode(int[] lengths, int maxLength) {
    this.lengths = lengths;
    this.maxLength = maxLength;
    this.count = new int[MAX_LENGTH + 1];
    for (int len : lengths) {
      count[len]++;
    }
    count[0] = 0;
    // Canonical assignment (spec 6.2, as RFC 1951 section 3.2.2), and the canonical order.
    this.firstCode = new int[MAX_LENGTH + 1];
    this.firstIndex = new int[MAX_LENGTH + 1];
    int[] nextCode = new int[MAX_LENGTH + 1];
    int[] nextIndex = new int[MAX_LENGTH + 1];
    for (int len = 1, code = 0, index = 0; len <= MAX_LENGTH; len++) {
      code = (code + count[len - 1]) << 1;
      firstCode[len] = code;
      nextCode[len] = code;
      firstIndex[len] = index;
      nextIndex[len] = index;
      index += count[len];
    }
    this.codewords = new int[lengths.length];
    this.sorted = new int[nextIndex[MAX_LENGTH] + count[MAX_LENGTH]];
    for (int s = 0; s < lengths.length; s++) {
      int len = lengths[s];
      if (len > 0) {
        codewords[s] = nextCode[len]++;
        sorted[nextIndex[len]++] = s;
      }
    }
  }

  /**
   * Builds the code for the given code lengths (0 = symbol unused).
   *
   * @throws BundleFormatException (offset 0, field {@code lengths}) when the lengths break the
   *     rules
   */
  public static HuffmanCode fromLengths(int[] lengths) throws BundleFormatException {
    return fromLengths(lengths, 0, "lengths");
  }

  /**
   * Builds the code for the given code lengths, naming {@code offset} and {@code field} in errors.
   */
  static HuffmanCode fromLengths(int[] lengths, long offset, String field)
      throws BundleFormatException {
    int maxLength = checkLengths(lengths, offset, field);
    return new HuffmanCode(lengths.clone(), maxLength);
  }

  /**
   * Checks code lengths against spec 6.1 (each 0 to 15, at least one used, the Kraft equality),
   * naming {@code offset} and {@code field} in errors.
   *
   * @return the longest code length L
   */
  private static int checkLengths(int[] lengths, long offset, String field)
      throws BundleFormatException {
    int[] blCount = new int[MAX_LENGTH + 1];
    int maxLength = 0;
    for (int s = 0; s < lengths.length; s++) {
      int len = lengths[s];
      if (len < 0 || len > MAX_LENGTH) {
        throw new BundleFormatException(
            offset,
            field,
            "code length " + len + " of symbol " + s + " is outside 0.." + MAX_LENGTH);
      }
      if (len > 0) {
        blCount[len]++;
        maxLength = Math.max(maxLength, len);
      }
    }
    if (maxLength == 0) {
      throw new BundleFormatException(offset, field, "no symbol has a code");
    }
    long kraft = 0;
    for (int len = 1; len <= maxLength; len++) {
      kraft += (long) blCount[len] << (maxLength - len);
    }
    long expected = (1L << maxLength) - 1;
    if (kraft != expected) {
      throw new BundleFormatException(
          offset,
          field,
          "Kraft sum is " + kraft + "/2^" + maxLength + ", expected (2^" + maxLength
              + " - 1)/2^" + maxLength + " (a complete code with one reserved codeword)");
    }
    return maxLength;
  }

  /** The longest code length L. */
  public int maxLength() {
    return maxLength;
  }

  /** Number of symbols (used or not) the code was built for. */
  public int alphabet() {
    return lengths.length;
  }

  /** Code length of a symbol (0 = unused). */
  public int length(int symbol) {
    return lengths[symbol];
  }

  /** Canonical codeword of a symbol, most significant bit first over {@link #length} bits. */
  public int codeword(int symbol) {
    return codewords[symbol];
  }

  /**
   * The codeword of a symbol as the decoders' windows see it (spec 6.3: the first stream bit at
   * bit 0), i.e. bit-reversed over its length.
   */
  int windowCodeword(int symbol) {
    return Integer.reverse(codewords[symbol]) >>> (32 - lengths[symbol]);
  }

  /** The reserved codeword: all ones over {@link #maxLength} bits. */
  public int reservedCodeword() {
    return (1 << maxLength) - 1;
  }

  /**
   * Returns a decoder over {@code nbits} bits starting at {@code data[offset]} (bit 0 = the least
   * significant bit of that byte). The caller guarantees that {@code ceil(nbits / 8)} bytes are
   * present from {@code offset}.
   */
  public HuffmanDecoder decoder(byte[] data, int offset, long nbits) {
    long bytes = (nbits + 7) >>> 3;
    if (nbits < 0 || bytes > data.length - offset) {
      throw new IllegalArgumentException(
          "nbits " + nbits + " needs " + bytes + " bytes; " + (data.length - offset)
              + " are present");
    }
    return decoder(new BitWindow(data, offset, nbits, "data"));
  }

  /** The reference decoder over {@code in}. */
  HuffmanDecoder decoder(BitWindow in) {
    return new HuffmanDecoder(in, table(), maxLength);
  }

  private int[] table() {
    int[] t = table;
    if (t == null) {
      t = new int[1 << maxLength];
      for (int s = 0; s < lengths.length; s++) {
        int len = lengths[s];
        if (len == 0) {
          continue;
        }
        int entry = (s << 4) | len;
        for (int i = windowCodeword(s); i < t.length; i += 1 << len) {
          t[i] = entry;
        }
      }
      table = t;
    }
    return t;
  }
}
