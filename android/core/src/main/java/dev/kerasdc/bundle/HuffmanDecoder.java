package dev.kerasdc.bundle;

/**
 * The reference decoder of a HuffmanStream's coded data: one symbol per lookup in a {@link
 * HuffmanCode}'s table of 2^L entries, reading bits through a {@link BitWindow} (format spec 6.3:
 * bits least significant first within a byte, codewords most significant bit first).
 *
 * <p>Every read is bounded by {@code nbits}: a codeword that is the reserved one, or that would
 * extend past bit {@code nbits}, is a {@link BundleFormatException} naming the byte where decoding
 * failed. {@link #finish} checks that the symbols ended exactly at {@code nbits}. The faster
 * {@link BlockDecoder} is tested against this one.
 */
public final class HuffmanDecoder implements SymbolDecoder {
  private final BitWindow in;
  private final int[] table;
  private final int maxLength;
  private final int mask;

  HuffmanDecoder(BitWindow in, int[] table, int maxLength) {
    this.in = in;
    this.table = table;
    this.maxLength = maxLength;
    this.mask = (1 << maxLength) - 1;
  }

  /** Decodes the next symbol. */
  public int next() throws BundleFormatException {
    if (in.bits < maxLength) {
      in.refill();
    }
    int entry = table[(int) in.window & mask];
    int length = entry & 0xF;
    if (length == 0) {
      throw in.reservedCodeword();
    }
    in.take(length);
    return entry >>> 4;
  }

  /** Decodes the next {@code n} symbols into {@code dst[offset, offset + n)}, one by one. */
  @Override
  public void decode(byte[] dst, int offset, int n) throws BundleFormatException {
    for (int i = offset; i < offset + n; i++) {
      dst[i] = (byte) next();
    }
  }

  /** Bits consumed so far. */
  @Override
  public long position() {
    return in.consumed;
  }

  /** Sidecar offset of the byte holding the next unread bit (for error messages). */
  @Override
  public long byteOffset() {
    return in.byteOffset();
  }

  /** Checks that the symbols read so far end exactly at bit {@code nbits}. */
  public void finish() throws BundleFormatException {
    if (in.consumed != in.nbits) {
      throw new BundleFormatException(
          in.byteOffset(),
          in.field,
          "symbols end at bit " + in.consumed + ", not at nbits = " + in.nbits);
    }
  }
}
