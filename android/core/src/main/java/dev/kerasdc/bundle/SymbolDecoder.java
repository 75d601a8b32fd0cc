package dev.kerasdc.bundle;

/**
 * Decodes the symbols of one HuffmanStream's coded data (format spec 6.3 and 6.4), reading its
 * bits through a {@link BitWindow}. Two implementations accept and reject exactly the same
 * streams, with the same errors: the reference {@link HuffmanDecoder} (one table lookup per
 * symbol, kept simple) and the fast {@link BlockDecoder}; the tests compare them.
 *
 * <p>A decoder checks every rule of 6.4 that concerns single codewords (no reserved codeword, none
 * past {@code nbits}); whether the symbols end exactly at {@code nbits} is checked by the caller
 * from {@link #position} once it has read {@code count} symbols.
 */
interface SymbolDecoder {
  /**
   * Decodes the next {@code n} symbols into {@code dst[offset, offset + n)}.
   *
   * @throws BundleFormatException at the reserved codeword or a codeword past {@code nbits}
   */
  void decode(byte[] dst, int offset, int n) throws BundleFormatException;

  /** Bits consumed so far. */
  long position();

  /** Sidecar offset of the byte holding the next unread bit. */
  long byteOffset();
}
