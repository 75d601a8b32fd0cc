package dev.kerasdc.bundle;

/**
 * Reads the symbols of one canonical-Huffman bit stream (format spec 6.3: bits least significant
 * first within a byte, codewords most significant bit first) with a {@link HuffmanCode}'s table.
 *
 * <p>Every read is bounded by {@code nbits}: a codeword that is the reserved one, or that would
 * extend past bit {@code nbits}, is a {@link BundleFormatException} naming the byte where decoding
 * failed. {@link #finish} checks that the symbols ended exactly at {@code nbits}.
 */
public final class HuffmanDecoder {
  private final byte[] data;
  private final int start;
  private final int end;
  private final long nbits;
  private final int[] table;
  private final int maxLength;
  private final int mask;
  private final String field;

  private int next;
  private long window;
  private int windowBits;
  private long consumed;

  HuffmanDecoder(
      byte[] data, int start, int bytes, long nbits, int[] table, int maxLength, String field) {
    this.data = data;
    this.start = start;
    this.end = start + bytes;
    this.nbits = nbits;
    this.table = table;
    this.maxLength = maxLength;
    this.mask = (1 << maxLength) - 1;
    this.field = field;
    this.next = start;
  }

  /** Decodes the next symbol. */
  public int next() throws BundleFormatException {
    if (windowBits < maxLength) {
      refill();
    }
    int entry = table[(int) window & mask];
    int length = entry & 0xF;
    if (length == 0) {
      throw new BundleFormatException(
          start + (consumed >>> 3), field, "reserved codeword at bit " + consumed);
    }
    if (length > nbits - consumed) {
      throw new BundleFormatException(
          start + (consumed >>> 3),
          field,
          "codeword at bit " + consumed + " extends past nbits = " + nbits);
    }
    window >>>= length;
    windowBits -= length;
    consumed += length;
    return entry >>> 4;
  }

  private void refill() {
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
      window |= bytes << windowBits;
      int take = (63 - windowBits) >>> 3;
      next += take;
      windowBits += take << 3;
      return;
    }
    // Near the end: byte by byte. Bits beyond the last byte read as zeros; next() rejects a
    // codeword that would use them.
    while (windowBits <= 56 && next < end) {
      window |= (data[next++] & 0xFFL) << windowBits;
      windowBits += 8;
    }
  }

  /** Bits consumed so far. */
  public long position() {
    return consumed;
  }

  /** Sidecar offset of the byte holding the next unread bit (for error messages). */
  long byteOffset() {
    return start + (consumed >>> 3);
  }

  /** Checks that the symbols read so far end exactly at bit {@code nbits}. */
  public void finish() throws BundleFormatException {
    if (consumed != nbits) {
      throw new BundleFormatException(
          start + (consumed >>> 3),
          field,
          "symbols end at bit " + consumed + ", not at nbits = " + nbits);
    }
  }
}
