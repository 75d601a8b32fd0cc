package dev.kerasdc.bundle;

/**
 * A table decoder for HuffmanStreams of at most 256 symbols that decodes in blocks and up to three
 * symbols per table lookup. It accepts and rejects exactly what {@link HuffmanDecoder} does, with
 * the same error offsets and messages (tests compare them).
 *
 * <p>Tables, for a code of longest length L:
 *
 * <ul>
 *   <li>{@code packed}, indexed by the next B stream bits (B = {@code packBits}, 8 to 12): the
 *       one to three whole codewords at the start of those bits, as {@code bits | n << 6 | sym0
 *       << 8 | sym1 << 16 | sym2 << 24} (the low six bits are the shift: {@code window >>>= e}
 *       consumes them); 0 when the first codeword is longer than B bits or is the reserved one.
 *   <li>{@code single}, indexed by the next B bits: {@code symbol | length << 8} of the first
 *       codeword when it has at most B bits, else 0.
 *   <li>{@code count}, {@code sorted} (codes per length, symbols in canonical order) and {@code
 *       firstCode}, {@code firstIndex} (per length, the first codeword and its place in {@code
 *       sorted}) for the canonical decode of RFC 1951 (as zlib's {@code puff.c}) of codewords
 *       longer than B bits: the packed loop continues from the B-bit prefix.
 * </ul>
 *
 * <p>The packed loop runs while at least max(B, L) bits are left before {@code nbits} (so no
 * codeword it takes can run past {@code nbits}), eight bytes of data can be loaded at once, and
 * three symbols are still wanted; everything else (the last bits, the reserved codeword) takes the
 * one-symbol path, which checks every rule.
 */
final class BlockDecoder {
  private final byte[] data;
  private final int start;
  private final int end;
  private final long nbits;
  private final String field;
  private final int maxLength;
  private final int packBits;
  private final int packMask;
  private final int[] packed;
  private final int[] single;
  private final int[] count = new int[HuffmanCode.MAX_LENGTH + 1];
  private final int[] sorted;
  private final int[] firstCode = new int[HuffmanCode.MAX_LENGTH + 1];
  private final int[] firstIndex = new int[HuffmanCode.MAX_LENGTH + 1];
  /** The packed loop refills below this many bits: max(B, L). */
  private final int refillBits;

  private long window;
  private int windowBits;
  private long consumed;
  private int next;

  /**
   * @param lengths code lengths (at most 256, valid by {@link HuffmanCode#checkLengths})
   * @param packBits B, 8 to 12: more decodes more symbols per lookup, but takes longer to build
   * @param data the coded bits start at {@code data[start]}; {@code ceil(nbits / 8)} bytes follow
   */
  BlockDecoder(
      int[] lengths, int packBits, byte[] data, int start, long nbits, String field) {
    if (lengths.length > 256 || packBits < 8 || packBits > 12) {
      throw new IllegalArgumentException(lengths.length + " symbols, packBits " + packBits);
    }
    this.data = data;
    this.start = start;
    this.end = start + (int) ((nbits + 7) >>> 3);
    this.nbits = nbits;
    this.field = field;
    this.next = start;
    this.packBits = packBits;
    this.packMask = (1 << packBits) - 1;

    int maxLength = 0;
    for (int len : lengths) {
      count[len]++;
      maxLength = Math.max(maxLength, len);
    }
    count[0] = 0;
    this.maxLength = maxLength;
    this.refillBits = Math.max(packBits, maxLength);
    // Canonical order (by length, then symbol), and codewords (RFC 1951 section 3.2.2).
    int[] offsets = new int[HuffmanCode.MAX_LENGTH + 2];
    int[] nextCode = new int[HuffmanCode.MAX_LENGTH + 1];
    for (int len = 1, code = 0; len <= HuffmanCode.MAX_LENGTH; len++) {
      offsets[len + 1] = offsets[len] + count[len];
      code = (code + count[len - 1]) << 1;
      nextCode[len] = code;
      firstCode[len] = code;
      firstIndex[len] = offsets[len];
    }
    sorted = new int[offsets[HuffmanCode.MAX_LENGTH + 1]];
    single = new int[1 << packBits];
    for (int s = 0; s < lengths.length; s++) {
      int len = lengths[s];
      if (len == 0) {
        continue;
      }
      sorted[offsets[len]++] = s;
      int c = nextCode[len]++;
      if (len <= packBits) {
        // The window holds the first stream bit at bit 0: index by the bit-reversed codeword.
        int reversed = Integer.reverse(c) >>> (32 - len);
        for (int i = reversed; i < single.length; i += 1 << len) {
          single[i] = s | len << 8;
        }
      }
    }
    packed = new int[1 << packBits];
    for (int w = 0; w < packed.length; w++) {
      int used = 0;
      int n = 0;
      int symbols = 0;
      while (n < 3) {
        int e = single[w >>> used];
        if (e == 0 || (e >>> 8) > packBits - used) {
          break;
        }
        symbols |= (e & 0xFF) << (8 * n);
        n++;
        used += e >>> 8;
      }
      packed[w] = n == 0 ? 0 : used | n << 6 | symbols << 8;
    }
  }

  /** Bits consumed so far. */
  long position() {
    return consumed;
  }

  /** Sidecar offset of the byte holding the next unread bit. */
  long byteOffset() {
    return start + (consumed >>> 3);
  }

  /** Decodes the next {@code n} symbols into {@code dst[offset, offset + n)}. */
  void decode(byte[] dst, int offset, int n) throws BundleFormatException {
    int i = offset;
    int stop = offset + n;
    while (i < stop) {
      i = decodePacked(dst, i, stop);
      if (i < stop) {
        dst[i++] = (byte) decodeOne();
      }
    }
  }

  /** The packed loop: returns where it stopped (see the class comment for when). */
  private int decodePacked(byte[] dst, int i, int stop) {
    final byte[] data = this.data;
    final int[] packed = this.packed;
    final int packBits = this.packBits;
    final int packMask = this.packMask;
    final int refillBits = this.refillBits;
    final int maxLength = this.maxLength;
    final long safe = nbits - refillBits;
    final int fastEnd = end - 8;
    final int lastTriple = stop - 2;
    long window = this.window;
    int windowBits = this.windowBits;
    long consumed = this.consumed;
    int next = this.next;
    while (i < lastTriple && consumed <= safe) {
      if (windowBits < refillBits) {
        if (next > fastEnd) {
          break;
        }
        // Eight bytes; only whole bytes that fit are counted as read. The bits of the others
        // are the stream's true next bits, and the next load ORs the same bytes in again.
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
      }
      int e = packed[(int) window & packMask];
      if (e == 0) {
        // A codeword longer than B bits (or the reserved one): canonical decode from its B-bit
        // prefix (codewords are sent most significant bit first).
        int code = Integer.reverse((int) window & packMask) >>> (32 - packBits);
        long rest = window >>> packBits;
        int symbol = -1;
        int len = packBits;
        while (len < maxLength) {
          len++;
          code = code << 1 | ((int) rest & 1);
          rest >>>= 1;
          int d = code - firstCode[len];
          if (d < count[len]) {
            symbol = sorted[firstIndex[len] + d];
            break;
          }
        }
        if (symbol < 0) {
          break; // the reserved codeword: the one-symbol path reports it
        }
        window >>>= len;
        windowBits -= len;
        consumed += len;
        dst[i++] = (byte) symbol;
        continue;
      }
      window >>>= e; // by e & 63, the codewords' bits
      dst[i] = (byte) (e >>> 8);
      dst[i + 1] = (byte) (e >>> 16);
      dst[i + 2] = (byte) (e >>> 24);
      int bits = e & 63;
      windowBits -= bits;
      consumed += bits;
      i += (e >>> 6) & 3;
    }
    this.window = window;
    this.windowBits = windowBits;
    this.consumed = consumed;
    this.next = next;
    return i;
  }

  /** Decodes one symbol with every check (as {@link HuffmanDecoder#next}). */
  private int decodeOne() throws BundleFormatException {
    while (windowBits < maxLength && windowBits <= 56 && next < end) {
      // Bits beyond the last byte read as zeros; the nbits check below rejects their use.
      window |= (data[next++] & 0xFFL) << windowBits;
      windowBits += 8;
    }
    int symbol = -1;
    int length = 0;
    int e = single[(int) window & packMask];
    if (e != 0) {
      symbol = e & 0xFF;
      length = e >>> 8;
    } else {
      // Canonical decode, one bit at a time (codewords are sent most significant bit first).
      long w = window;
      int code = 0;
      int first = 0;
      int index = 0;
      for (int len = 1; len <= maxLength; len++) {
        code |= (int) w & 1;
        w >>>= 1;
        int c = count[len];
        if (code - first < c) {
          symbol = sorted[index + code - first];
          length = len;
          break;
        }
        index += c;
        first = (first + c) << 1;
        code <<= 1;
      }
    }
    if (symbol < 0) {
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
    return symbol;
  }
}
