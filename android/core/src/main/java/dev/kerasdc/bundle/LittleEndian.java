package dev.kerasdc.bundle;

/** Explicit little-endian reads from a byte array (the format's only byte order). */
final class LittleEndian {
  private LittleEndian() {}

  static int u8(byte[] b, int p) {
    return b[p] & 0xFF;
  }

  static int u16(byte[] b, int p) {
    return (b[p] & 0xFF) | (b[p + 1] & 0xFF) << 8;
  }

  /** Reads a u32 as a non-negative long. */
  static long u32(byte[] b, int p) {
    return (b[p] & 0xFFL)
        | (b[p + 1] & 0xFFL) << 8
        | (b[p + 2] & 0xFFL) << 16
        | (b[p + 3] & 0xFFL) << 24;
  }

  /**
   * Reads a u64 into a long; values above 2^63 - 1 come back negative, which every caller treats
   * as out of range.
   */
  static long u64(byte[] b, int p) {
    return u32(b, p) | u32(b, p + 4) << 32;
  }
}
