package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Masked;
import java.util.Arrays;

/**
 * Decodes a MASKED payload (format spec 7.12, since version 1.6): the segment's elements as a
 * matrix of C = {@code channels} rows by M = elements / C columns; {@code fill} (esize bytes), a
 * {@code row_mask} of C bits and a {@code column_mask} of M bits (least significant bit first),
 * the u8 {@code inner_encoding}, then a payload of that encoding (0 … 6 or 9) for the kept
 * submatrix: r · m elements of r = the rows kept, m = the columns kept, in row-major order, coded
 * as a segment with the same offset and dtype, {@code size} = r · m · esize and {@code
 * channels} = r. Element (i, j) of the submatrix is element {@code row_i × M + col_j} of the
 * segment; every other element is {@code fill}.
 *
 * <p>The inner payload is decoded by the {@link SegmentDecoder} into a {@link Scatter} window,
 * which passes the submatrix on to the segment's {@link Output} in order, with the fill elements of
 * the rows and columns left out between its runs: the segment is written from its first byte to
 * its last, with no buffer of its size.
 */
final class MaskedDecoder {
  private MaskedDecoder() {}

  /**
   * Reads and checks {@code fill}, the masks and {@code inner_encoding} (section 10, in the order
   * they are stored), then decodes the kept submatrix and writes the whole segment into {@code
   * out}.
   */
  static void decode(Payload payload, SegmentDecoder decoder, Output out)
      throws BundleFormatException {
    SegmentEntry entry = payload.entry;
    int esize = entry.getElementSize();
    long rows = entry.getChannels();
    long columns = entry.elements() / rows;
    long rowMaskSize = Masked.maskSize(rows);
    long columnMaskSize = Masked.maskSize(columns);
    // No overflow: rows < 2^32, and columns <= elements < 2^31 (size <= restored_size).
    long fixed = esize + rowMaskSize + columnMaskSize + Masked.INNER_ENCODING_SIZE;
    if (entry.getPayloadSize() < fixed) {
      throw new BundleFormatException(
          entry.payloadSizeOffset(),
          entry.field("payload_size"),
          "a MASKED payload of " + rows + " rows and " + columns + " columns starts with "
              + fixed + " bytes of fill, masks and inner_encoding; payload_size is "
              + entry.getPayloadSize());
    }
    int fillAt = payload.start + Masked.FILL;
    Mask rowMask = Mask.read(payload, fillAt + esize, rows, "row_mask");
    Mask columnMask = Mask.read(payload, rowMask.end, columns, "column_mask");
    int at = columnMask.end;
    int code = LittleEndian.u8(payload.b, at);
    if (!Format.Encoding.isInner(code)) {
      throw new BundleFormatException(
          at,
          entry.field("inner_encoding"),
          code + " is not the code of an encoding other than DELTA, PACKED and MASKED");
    }
    int innerAt = at + Masked.INNER_ENCODING_SIZE;
    long kept = rowMask.count * columnMask.count; // at most elements: no overflow
    SegmentEntry inner =
        entry.submatrix(code, kept * esize, rowMask.count, innerAt, payload.end - innerAt);
    Scatter scatter = new Scatter(out, payload.b, fillAt, esize, rowMask, columnMask, kept);
    decoder.decodeInner(new Payload(payload.b, inner), scatter);
    scatter.flush();
    scatter.finish();
  }

  /**
   * A bit mask of a MASKED payload (7.12): {@code bits} bits in ceil(bits / 8) bytes of the
   * sidecar, bit c in byte c / 8 at bit c mod 8 from the least significant; the bits after the last
   * are zero, and at least one bit is set.
   */
  static final class Mask {
    private final byte[] b;
    /** Sidecar offset of the mask's first byte. */
    final int at;
    /** Sidecar offset just after the mask. */
    final int end;
    /** Bits of the mask: C for the row mask, M for the column mask. */
    final long bits;
    /** Bits set: r or m, at least 1. */
    final long count;

    private Mask(byte[] b, int at, int end, long bits, long count) {
      this.b = b;
      this.at = at;
      this.end = end;
      this.bits = bits;
      this.count = count;
    }

    /**
     * Reads the mask {@code name} of {@code bits} bits at {@code at}, whose bytes are known to lie
     * in the payload, and checks its padding and that a bit is set (reported at its first byte).
     */
    static Mask read(Payload payload, int at, long bits, String name)
        throws BundleFormatException {
      int end = at + (int) Masked.maskSize(bits);
      byte[] b = payload.b;
      long count = 0;
      for (int i = at; i < end; i++) {
        count += Integer.bitCount(b[i] & 0xFF);
      }
      int used = (int) (bits % Masked.BITS_PER_BYTE);
      if (used != 0 && (b[end - 1] & 0xFF) >>> used != 0) {
        throw new BundleFormatException(
            at,
            payload.field(name),
            "a bit after bit " + (bits - 1) + " (the last of " + bits + ") is set");
      }
      if (count == 0) {
        throw new BundleFormatException(
            at, payload.field(name), "no bit of the " + bits + " is set (at least one is kept)");
      }
      return new Mask(b, at, end, bits, count);
    }

    /** The first set bit at or after {@code from}; {@link #bits} if there is none. */
    long nextSet(long from) {
      if (from >= bits) {
        return bits;
      }
      int i = at + (int) (from >>> 3);
      int v = (b[i] & 0xFF) >>> (int) (from & 7);
      if (v != 0) {
        return from + Integer.numberOfTrailingZeros(v);
      }
      for (i++; i < end; i++) {
        if (b[i] != 0) {
          return ((long) (i - at) << 3) + Integer.numberOfTrailingZeros(b[i] & 0xFF);
        }
      }
      return bits;
    }

    /** The first clear bit at or after {@code from}; at most {@link #bits}. */
    long nextClear(long from) {
      if (from >= bits) {
        return bits;
      }
      int i = at + (int) (from >>> 3);
      int v = (~b[i] & 0xFF) >>> (int) (from & 7);
      if (v != 0) {
        return Math.min(bits, from + Integer.numberOfTrailingZeros(v));
      }
      for (i++; i < end; i++) {
        if (b[i] != (byte) 0xFF) {
          return Math.min(
              bits, ((long) (i - at) << 3) + Integer.numberOfTrailingZeros(~b[i] & 0xFF));
        }
      }
      return bits;
    }
  }

  /**
   * An {@link Output} for one MASKED segment: a window of at most {@link Output#CHUNK} bytes (a
   * multiple of esize, or the whole submatrix) that the inner decoder fills with the kept
   * submatrix in row-major order; each flush passes its elements on to the segment's output, run
   * by run of kept columns, with {@code fill} for the rows and columns left out before each run
   * and after the last column kept of each row. {@link #finish} writes the rows after the last
   * one kept.
   */
  static final class Scatter extends Output {
    private final Output target;
    private final byte[] b;
    private final int fillAt;
    private final boolean zeroFill;
    private final int esize;
    private final Mask rows;
    private final Mask columns;
    /** Elements of the kept submatrix: r · m. */
    private final long kept;
    private long passed;
    /** Rows of the segment written: all rows before it, and the current one when in a row. */
    private long row;
    private boolean inRow;
    /** Columns of the current row written. */
    private long column;
    /** Elements left in the current run of kept columns. */
    private long left;

    Scatter(Output target, byte[] b, int fillAt, int esize, Mask rows, Mask columns, long kept) {
      // Bounded: kept elements <= the segment's, whose size <= restored_size was checked.
      super(new byte[(int) Math.min(kept * esize, CHUNK)], true, null);
      this.target = target;
      this.b = b;
      this.fillAt = fillAt;
      this.esize = esize;
      this.rows = rows;
      this.columns = columns;
      this.kept = kept;
      this.limit = buf.length;
      boolean zero = true;
      for (int j = 0; j < esize; j++) {
        zero &= b[fillAt + j] == 0;
      }
      this.zeroFill = zero;
    }

    @Override
    void put(byte[] src, int offset, int length) {
      putThroughWindow(src, offset, length);
    }

    /** Scatters the window's elements into the segment and passes them on; clears the window. */
    @Override
    void flush() {
      int at = 0;
      while (at < pos) {
        if (left == 0) {
          startRun();
        }
        int n = (int) Math.min(left, (pos - at) / esize);
        target.putThroughWindow(buf, at, n * esize);
        at += n * esize;
        left -= n;
        if (left == 0 && columns.nextSet(column) == columns.bits) {
          fill(columns.bits - column); // the rest of the row
          row++;
          inRow = false;
        }
      }
      Arrays.fill(buf, 0, pos, (byte) 0);
      passed += pos;
      pos = 0;
    }

    /** Writes the fill before the next run of kept columns (and kept row), and starts the run. */
    private void startRun() {
      if (!inRow) {
        long next = rows.nextSet(row);
        if (next == rows.bits) {
          throw new IllegalStateException("the inner payload decoded to more than r x m elements");
        }
        fill((next - row) * columns.bits);
        row = next;
        inRow = true;
        column = 0;
      }
      long start = columns.nextSet(column);
      long end = columns.nextClear(start);
      fill(start - column);
      left = end - start;
      column = end;
    }

    /**
     * Writes the fill of the rows after the last kept row; call after the last {@link #flush},
     * when the inner decoder has written all r · m elements (as every decoder checks it does).
     */
    void finish() {
      if (passed != kept * esize || inRow) {
        throw new IllegalStateException(
            "the inner payload decoded to " + passed + " bytes" + (inRow ? " ending in a row" : "")
                + ", not r x m x esize = " + kept * esize);
      }
      fill((rows.bits - row) * columns.bits);
      row = rows.bits;
    }

    /** Writes {@code count} fill elements to the segment's output. */
    private void fill(long count) {
      if (zeroFill) {
        target.zeros(count * esize);
      } else {
        target.repeat(b, fillAt, esize, count);
      }
    }

    @Override
    long written() {
      return passed + pos;
    }
  }
}
