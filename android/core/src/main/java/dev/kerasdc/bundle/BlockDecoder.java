package dev.kerasdc.bundle;

/**
 * The fast decoder of a HuffmanStream's coded data (alphabet at most 256): decodes in blocks, up to
 * three symbols per table lookup, reading bits through a {@link BitWindow}. It accepts and rejects
 * exactly what the reference {@link HuffmanDecoder} does, with the same error offsets and messages
 * (tests compare them).
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
 *   <li>the {@link HuffmanCode}'s canonical order ({@code count}, {@code sorted}, {@code
 *       firstCode}, {@code firstIndex}) for the canonical decode of RFC 1951 (as zlib's {@code
 *       puff.c}) of codewords longer than B bits: the packed loop continues from the B-bit
 *       prefix.
 * </ul>
 *
 * <p>The packed loop runs while at least max(B, L) bits are left before {@code nbits} (so no
 * codeword it takes can run past {@code nbits}) and three symbols are still wanted; everything
 * else (the last bits, the reserved codeword) takes the one-symbol path, which checks every rule.
 */
final class BlockDecoder implements SymbolDecoder {
  private final BitWindow in;
  private final int maxLength;
  private final int packBits;
  private final int packMask;
  private final int[] packed;
  private final int[] single;
  private final int[] count;
  private final int[] sorted;
  private final int[] firstCode;
  private final int[] firstIndex;
  /** The packed loop refills below this many bits: max(B, L). */
  private final int refillBits;

  /**
   * @param code the stream's code (at most 256 symbols)
   * @param packBits B, 8 to 12: more decodes more symbols per lookup, but takes longer to build
   * @param in the stream's coded bits, none read yet
   */
  BlockDecoder(HuffmanCode code, int packBits, BitWindow in) {
    if (code.alphabet() > Format.Stream.MAX_ALPHABET || packBits < 8 || packBits > 12) {
      throw new IllegalArgumentException(code.alphabet() + " symbols, packBits " + packBits);
    }
    this.in = in;
    this.packBits = packBits;
    this.packMask = (1 << packBits) - 1;
    this.maxLength = code.maxLength();
    this.refillBits = Math.max(packBits, maxLength);
    this.count = code.count;
    this.sorted = code.sorted;
    this.firstCode = code.firstCode;
    this.firstIndex = code.firstIndex;
    single = new int[1 << packBits];
    for (int s = 0; s < code.alphabet(); s++) {
      int len = code.length(s);
      if (len == 0 || len > packBits) {
        continue;
      }
      for (int i = code.windowCodeword(s); i < single.length; i += 1 << len) {
        single[i] = s | len << 8;
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

  @Override
  public long position() {
    return in.consumed;
  }

  @Override
  public long byteOffset() {
    return in.byteOffset();
  }

  @Override
  public void decode(byte[] dst, int offset, int n) throws BundleFormatException {
    int i = offset;
    int stop = offset + n;
    while (i < stop) {
      i = decodePacked(dst, i, stop);
      if (i < stop) {
        dst[i++] = (byte) decodeOne();
      }
    }
  }

  /**
   * The packed loop: returns where it stopped (see the class comment for when). The window's
   * state stays in locals, handed back to {@link #in} around each refill.
   */
  private int decodePacked(byte[] dst, int i, int stop) {
    final BitWindow in = this.in;
    final int[] packed = this.packed;
    final int packBits = this.packBits;
    final int packMask = this.packMask;
    final int refillBits = this.refillBits;
    final int maxLength = this.maxLength;
    final long safe = in.nbits - refillBits;
    final int lastTriple = stop - 2;
    long window = in.window;
    int bits = in.bits;
    long consumed = in.consumed;
    while (i < lastTriple && consumed <= safe) {
      if (bits < refillBits) {
        in.window = window;
        in.bits = bits;
        in.refill();
        window = in.window;
        bits = in.bits;
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
        bits -= len;
        consumed += len;
        dst[i++] = (byte) symbol;
        continue;
      }
      window >>>= e; // by e & 63, the codewords' bits
      dst[i] = (byte) (e >>> 8);
      dst[i + 1] = (byte) (e >>> 16);
      dst[i + 2] = (byte) (e >>> 24);
      int taken = e & 63;
      bits -= taken;
      consumed += taken;
      i += (e >>> 6) & 3;
    }
    in.window = window;
    in.bits = bits;
    in.consumed = consumed;
    return i;
  }

  /** Decodes one symbol with every check (as {@link HuffmanDecoder#next}). */
  private int decodeOne() throws BundleFormatException {
    if (in.bits < maxLength) {
      in.refill();
    }
    int symbol = -1;
    int length = 0;
    int e = single[(int) in.window & packMask];
    if (e != 0) {
      symbol = e & 0xFF;
      length = e >>> 8;
    } else {
      // Canonical decode, one bit at a time (codewords are sent most significant bit first).
      long w = in.window;
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
      throw in.reservedCodeword();
    }
    in.take(length);
    return symbol;
  }
}
