package dev.kerasdc.bundle;

import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Reads the symbols of one HuffmanStream ({@code count > 0}, alphabet at most 256) in blocks, one
 * byte per symbol, with every check of spec 6.4.
 *
 * <p>Two decoders give the same symbols and reject the same streams:
 *
 * <ul>
 *   <li><b>Inflater</b> (spec section 12): the stream's data, after a synthesised dynamic-block
 *       header ({@link #deflatePrefix}), is a literal-only DEFLATE block, which the
 *       platform's native zlib decodes. The reserved codeword is end-of-block, so a stream that
 *       holds it, or that runs out of bits, yields fewer symbols than asked; the sum of the
 *       symbols' code lengths, kept per block, catches a codeword that runs past {@code nbits}
 *       (into the zero padding) and, at {@link #finish}, symbols that do not end at {@code nbits}.
 *       On any of these the block is decoded again with the table decoder, which reports the
 *       precise error, so both decoders fail with the same exception.
 *   <li><b>Table</b> ({@link BlockDecoder}): the fallback, and the only decoder when no
 *       Inflater is given.
 * </ul>
 *
 * <p>Error offsets inside the data ({@link #byteOffsetBefore}, {@link #byteOffsetAfter}) are
 * found by decoding again up to the symbol concerned: they are needed only to report an error.
 */
final class SymbolReader {
  private final byte[] b;
  private final HuffmanStream stream;
  /** The Inflater to use, or {@code null} once the table decoder has taken over. */
  private Inflater inflater;

  private boolean dataFed;
  private SymbolDecoder table;
  /** Symbols delivered so far. */
  private long read;
  /** Bits consumed by the symbols delivered so far (Inflater path). */
  private long bits;
  /** Code length by symbol value (Inflater path). */
  private final int[] lengths;

  /**
   * @param inflater a raw ({@code nowrap}) Inflater to decode with, or {@code null} for the table
   *     decoder; it is reset here and must not be used elsewhere until this reader is done
   */
  SymbolReader(byte[] b, HuffmanStream stream, Inflater inflater) throws BundleFormatException {
    if (stream.count <= 0 || stream.alphabet > Format.Stream.MAX_ALPHABET) {
      throw new IllegalArgumentException("a reader needs 1 or more symbols of at most 256 kinds");
    }
    this.b = b;
    this.stream = stream;
    if (inflater != null) {
      inflater.reset();
      inflater.setInput(deflatePrefix(stream.code()));
      this.inflater = inflater;
      this.lengths = new int[Format.Stream.MAX_ALPHABET];
      for (int s = 0; s < lengths.length; s++) {
        lengths[s] = stream.length(s);
      }
    } else {
      this.table = stream.blockDecoder(b);
      this.lengths = null;
    }
  }

  /** Whether the Inflater decodes this stream (it stops doing so after a fault). */
  boolean usesInflater() {
    return inflater != null;
  }

  /** Symbols delivered so far. */
  long read() {
    return read;
  }

  /**
   * Decodes the next {@code n} symbols (at most {@code count - read()}) into {@code dst[0, n)}.
   *
   * @throws BundleFormatException at the reserved codeword or a codeword past {@code nbits}
   */
  void read(byte[] dst, int n) throws BundleFormatException {
    if (n > stream.count - read) {
      throw new IllegalArgumentException(n + " symbols asked, " + (stream.count - read) + " left");
    }
    if (inflater == null) {
      table.decode(dst, 0, n);
      read += n;
      return;
    }
    if (!inflate(dst, n)) {
      retryWithTable(dst, n);
      return;
    }
    long sum = 0;
    for (int i = 0; i < n; i++) {
      sum += lengths[dst[i] & 0xFF];
    }
    if (bits + sum > stream.nbits) { // a codeword runs past nbits: let the table decoder say where
      retryWithTable(dst, n);
      return;
    }
    bits += sum;
    read += n;
  }

  /** Inflates exactly {@code n} symbols; {@code false} if the Inflater yields fewer. */
  private boolean inflate(byte[] dst, int n) {
    int done = 0;
    int stalls = 0;
    while (done < n) {
      int k;
      try {
        k = inflater.inflate(dst, done, n - done);
      } catch (DataFormatException e) {
        return false;
      }
      done += k;
      if (k > 0) {
        stalls = 0;
        continue;
      }
      if (inflater.needsInput() && !dataFed) { // the prefix is in: now the stream's own bytes
        inflater.setInput(b, stream.dataOffset, stream.dataBytes());
        dataFed = true;
        continue;
      }
      if (inflater.finished() || inflater.needsInput() || inflater.needsDictionary()
          || ++stalls > 4) {
        return false; // end-of-block (the reserved codeword) or out of bits
      }
    }
    return true;
  }

  /**
   * Decodes the block again with a table decoder positioned after the symbols already delivered:
   * it throws the precise error. Should it not, its symbols stand and it decodes the rest.
   */
  private void retryWithTable(byte[] dst, int n) throws BundleFormatException {
    inflater = null;
    table = positioned(read);
    table.decode(dst, 0, n);
    read += n;
  }

  /** A table decoder that has read the first {@code symbols} symbols. */
  private SymbolDecoder positioned(long symbols) throws BundleFormatException {
    SymbolDecoder decoder = stream.blockDecoder(b);
    byte[] scratch = new byte[(int) Math.min(symbols, 4096)];
    for (long left = symbols; left > 0; ) {
      int k = (int) Math.min(left, scratch.length);
      decoder.decode(scratch, 0, k);
      left -= k;
    }
    return decoder;
  }

  /** Bits consumed by the symbols delivered so far. */
  long position() {
    return inflater != null ? bits : table.position();
  }

  /** Sidecar offset of the byte holding the first bit of symbol {@code index} (already read). */
  long byteOffsetBefore(long index) throws BundleFormatException {
    return positioned(index).byteOffset();
  }

  /** Sidecar offset of the byte holding the bit after symbol {@code index} (already read). */
  long byteOffsetAfter(long index) throws BundleFormatException {
    return positioned(index + 1).byteOffset();
  }

  /** Sidecar offset of the byte holding the next unread bit. */
  long byteOffset() {
    return stream.dataOffset + (position() >>> 3);
  }

  /** Checks that the symbols read (all {@code count} of them) end exactly at {@code nbits}. */
  void finish() throws BundleFormatException {
    if (read != stream.count) {
      throw new IllegalStateException(read + " of " + stream.count + " symbols read");
    }
    stream.finish(position());
  }

  /**
   * The 142 bytes that turn a stream's coded data into the body of a literal-only DEFLATE block
   * (spec section 12), for a raw {@link Inflater}.
   *
   * <p>Bits, least significant first: three empty non-final fixed-Huffman blocks (BFINAL 0, BTYPE
   * 01, end-of-block 0000000: 10 bits each), so that what follows ends on a byte boundary; BFINAL
   * 1, BTYPE 10 (dynamic); HLIT 0 (257 literal/length codes); HDIST 0 (one distance code); HCLEN
   * 15 (all 19 code-length code lengths); the code-length code lengths, 3 bits each in the order
   * 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15: 0, 0, 0, then sixteen 4s, so
   * that code-length symbol v has the 4-bit codeword v. That is 104 bits (13 bytes). Then the 258
   * code lengths (literals 0..255, end-of-block 256 with the longest length L, so that it takes
   * the reserved codeword; the distance code's length 0), each as its 4-bit codeword sent most
   * significant bit first: 129 bytes.
   */
  static byte[] deflatePrefix(HuffmanCode code) {
    byte[] prefix = new byte[DEFLATE_HEAD.length + 129];
    System.arraycopy(DEFLATE_HEAD, 0, prefix, 0, DEFLATE_HEAD.length);
    for (int s = 0; s < 258; s++) {
      int len = s < code.alphabet() ? code.length(s) : s == 256 ? code.maxLength() : 0;
      // Nibble s/2: symbol s in the low half when s is even (it is sent first).
      prefix[DEFLATE_HEAD.length + (s >>> 1)] |= (byte) (REVERSED_NIBBLE[len] << ((s & 1) << 2));
    }
    return prefix;
  }

  /** The 13 fixed bytes of {@link #deflatePrefix} (104 bits, values as documented there). */
  private static final byte[] DEFLATE_HEAD = deflateHead();

  /** {@code REVERSED_NIBBLE[v]}: v's 4 bits in reverse order (MSB-first codeword, LSB-first). */
  private static final int[] REVERSED_NIBBLE = {
    0x0, 0x8, 0x4, 0xC, 0x2, 0xA, 0x6, 0xE, 0x1, 0x9, 0x5, 0xD, 0x3, 0xB, 0x7, 0xF
  };

  private static byte[] deflateHead() {
    long[] fields = { // {value, bit width}, in stream order
      0, 1, 1, 2, 0, 7, // empty fixed block: BFINAL 0, BTYPE 01, end-of-block 0000000
      0, 1, 1, 2, 0, 7,
      0, 1, 1, 2, 0, 7,
      1, 1, 2, 2, // BFINAL 1, BTYPE 10
      0, 5, 0, 5, 15, 4, // HLIT, HDIST, HCLEN
      0, 3, 0, 3, 0, 3, // code-length code lengths of 16, 17, 18
    };
    byte[] head = new byte[13];
    int bit = 0;
    for (int i = 0; i < fields.length + 32; i += 2) {
      // After the listed fields: sixteen 4s (the lengths of 0, 8, 7, 9, ..., 1, 15).
      long value = i < fields.length ? fields[i] : 4;
      int width = i < fields.length ? (int) fields[i + 1] : 3;
      for (int k = 0; k < width; k++, bit++) {
        head[bit >>> 3] |= (byte) (((value >>> k) & 1) << (bit & 7));
      }
    }
    if (bit != 104) {
      throw new IllegalStateException("the DEFLATE head has " + bit + " bits, not 104");
    }
    return head;
  }
}
