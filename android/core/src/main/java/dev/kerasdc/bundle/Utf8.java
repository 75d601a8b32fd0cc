package dev.kerasdc.bundle;

/** Strict UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
final class Utf8 {
  private Utf8() {}

  /** Returns the offset of the first byte of the first ill-formed sequence, or -1 if all valid. */
  static int firstInvalid(byte[] b, int offset, int length) {
    int p = offset;
    int end = offset + length;
    while (p < end) {
      int c = b[p] & 0xFF;
      if (c < 0x80) {
        p++;
        continue;
      }
      int n;
      int lo = 0x80;
      int hi = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        n = 1;
      } else if (c >= 0xE0 && c <= 0xEF) {
        n = 2;
        if (c == 0xE0) {
          lo = 0xA0;
        } else if (c == 0xED) {
          hi = 0x9F;
        }
      } else if (c >= 0xF0 && c <= 0xF4) {
        n = 3;
        if (c == 0xF0) {
          lo = 0x90;
        } else if (c == 0xF4) {
          hi = 0x8F;
        }
      } else {
        return p;
      }
      if (end - p <= n) {
        return p;
      }
      int second = b[p + 1] & 0xFF;
      if (second < lo || second > hi) {
        return p;
      }
      for (int k = 2; k <= n; k++) {
        int t = b[p + k] & 0xFF;
        if (t < 0x80 || t > 0xBF) {
          return p;
        }
      }
      p += n + 1;
    }
    return -1;
  }
}
