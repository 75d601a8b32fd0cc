package dev.kerasdc.bundle;

/**
 * A canonical Huffman code with one reserved codeword (format spec section 6), as a single lookup
 * table of 2^L entries indexed by the next L stream bits (L = the longest code length, at most 15).
 *
 * <p>The lengths must satisfy the format's Kraft equality: the sum over used symbols of
 * 2^(L - len) equals 2^L - 1, so that the code is complete except for the all-ones word of length
 * L, which a decoder rejects.
 */
public final class HuffmanCode {
  /** The longest code length the format allows. */
  public static final int MAX_LENGTH = 15;

  private final int[] lengths;
  private final int[] codewords;
  private final int maxLength;
  /**
   * Entry {@code (symbol << 4) | length} for every L-bit window whose first {@code length} bits
   * (stream order) are that symbol's codeword; 0 for the reserved codeword.
   */
  private final int[] table;

  private HuffmanCode(int[] lengths, int[] codewords, int maxLength, int[] table) {
    this.lengths = lengths;
    this.codewords = codewords;
    this.maxLength = maxLength;
    this.table = table;
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
    int[] blCount = new int[MAX_LENGTH + 1];
    for (int len : lengths) {
      blCount[len]++;
    }
    blCount[0] = 0;
    // Canonical assignment (RFC 1951 section 3.2.2).
    int[] nextCode = new int[MAX_LENGTH + 1];
    int code = 0;
    for (int len = 1; len <= MAX_LENGTH; len++) {
      code = (code + blCount[len - 1]) << 1;
      nextCode[len] = code;
    }
    int[] codewords = new int[lengths.length];
    int[] table = new int[1 << maxLength];
    for (int s = 0; s < lengths.length; s++) {
      int len = lengths[s];
      if (len == 0) {
        continue;
      }
      int c = nextCode[len]++;
      codewords[s] = c;
      // The stream holds the codeword most significant bit first and the decoder's window has the
      // first stream bit at bit 0, so the table index is the bit-reversed codeword.
      int reversed = Integer.reverse(c) >>> (32 - len);
      int entry = (s << 4) | len;
      for (int i = reversed; i < table.length; i += 1 << len) {
        table[i] = entry;
      }
    }
    return new HuffmanCode(lengths.clone(), codewords, maxLength, table);
  }

  /**
   * Checks code lengths against the format's rules (each 0 to 15, at least one used, the Kraft
   * equality of spec 6.1) without building a table, naming {@code offset} and {@code field} in
   * errors.
   *
   * @return the longest code length L
   */
  static int checkLengths(int[] lengths, long offset, String field)
      throws BundleFormatException {
    int[] blCount = new int[MAX_LENGTH + 1];
    int maxLength = 0;
    for (int s = 0; s < lengths.length; s++) {
      int len = lengths[s];
      if (len < 0 || len > MAX_LENGTH) {
        throw new BundleFormatException(
            offset, field, "code length " + len + " of symbol " + s + " is outside 0..15");
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
    return decoder(data, offset, nbits, "data");
  }

  HuffmanDecoder decoder(byte[] data, int offset, long nbits, String field) {
    long bytes = (nbits + 7) >>> 3;
    if (nbits < 0 || bytes > data.length - offset) {
      throw new IllegalArgumentException(
          "nbits " + nbits + " needs " + bytes + " bytes; " + (data.length - offset)
              + " are present");
    }
    return new HuffmanDecoder(data, offset, (int) bytes, nbits, table, maxLength, field);
  }
}
