package dev.kerasdc.bundle;

/**
 * The bits of one HuffmanStream's coded data (format spec 6.3), as a 64-bit window: the next
 * unread stream bit is bit 0 of {@link #window}. Every decoder reads its bits through one of these
 * ({@link HuffmanDecoder}, {@link BlockDecoder}), so the refill and the rules of 6.4 that a
 * decoder checks per codeword (the reserved codeword, a codeword past {@code nbits}) are written
 * once.
 *
 * <p>The fields are package-private for the decoders' loops: {@link BlockDecoder} keeps {@link
 * #window} and {@link #bits} in locals while it decodes, and hands them back around {@link
 * #refill}.
 */
final class BitWindow {
  private final byte[] data;
  /** Sidecar offset of the first byte of coded data. */
  final int start;
  /** Sidecar offset just after the last byte of coded data: {@code start + ceil(nbits / 8)}. */
  final int end;
  /** Coded bits in the stream. */
  final long nbits;
  /** Field name the errors report, e.g. {@code segment[2].indices.data}. */
  final String field;

  /** The next stream bits, the first at bit 0; bits past the last byte read as zeros. */
  long window;
  /** How many bits of {@link #window} hold stream bits (or the zeros after the last byte). */
  int bits;
  /** Bits consumed so far (by the codewords decoded). */
  long consumed;
  /** Sidecar offset of the next byte to load into the window. */
  private int next;

  /**
   * @param data the coded bits start at {@code data[start]}; {@code ceil(nbits / 8)} bytes follow
   *     (checked by the caller)
   */
  BitWindow(byte[] data, int start, long nbits, String field) {
    this.data = data;
    this.start = start;
    this.end = start + (int) ((nbits + 7) >>> 3);
    this.nbits = nbits;
    this.field = field;
    this.next = start;
  }

  /**
   * Loads bytes until the window holds more than 56 bits or the data is all loaded: at least
   * {@link Format.Stream#MAX_CODE_LENGTH} bits of stream (or the zeros after it) afterwards.
   */
  void refill() {
    if (end - next >= 8) {
      // Eight bytes at once; only whole bytes that fit are counted as read. The bits of the
      // bytes not counted land where the next refill puts the same bytes again (OR is then a
      // no-op), and are the stream's true next bits meanwhile.
      long bytes =
          (data[next] & 0xFFL)
              | (data[next + 1] & 0xFFL) << 8
              | (data[next + 2] & 0xFFL) << 16
              | (data[next + 3] & 0xFFL) << 24
              | (data[next + 4] & 0xFFL) << 32
              | (data[next + 5] & 0xFFL) << 40
              | (data[next + 6] & 0xFFL) << 48
              | (data[next + 7] & 0xFFL) << 56;
      window |= bytes << bits;
      int take = (63 - bits) >>> 3;
      next += take;
      bits += take << 3;
      return;
    }
    // Near the end: byte by byte. Bits beyond the last byte read as zeros; take() rejects a
    // codeword that would use them.
    while (bits <= 56 && next < end) {
      window |= (data[next++] & 0xFFL) << bits;
      bits += 8;
    }
  }

  /**
   * Consumes a decoded codeword of {@code length} bits, checking spec 6.4: it must not extend past
   * bit {@code nbits}.
   */
  void take(int length) throws BundleFormatException {
    if (length > nbits - consumed) {
      throw new BundleFormatException(
          byteOffset(), field, "codeword at bit " + consumed + " extends past nbits = " + nbits);
    }
    window >>>= length;
    bits -= length;
    consumed += length;
  }

  /** The error for the reserved codeword (spec 6.1) at the next unread bit. */
  BundleFormatException reservedCodeword() {
    return new BundleFormatException(
        byteOffset(), field, "reserved codeword at bit " + consumed);
  }

  /** Sidecar offset of the byte holding the next unread bit. */
  long byteOffset() {
    return start + (consumed >>> 3);
  }
}
