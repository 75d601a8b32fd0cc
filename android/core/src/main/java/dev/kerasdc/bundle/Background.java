package dev.kerasdc.bundle;

/**
 * The background values of a sparse payload (format spec 7.4, 7.6, 7.8), written over the
 * elements the gap stream does not emit: one per slice of the segment (per codebook for
 * CLUSTERED_SPARSE), or for GROUPED_SPARSE one per codebook, which the channels that use it share.
 * Ranges of elements come in increasing order.
 */
final class Background {
  private final byte[] b;
  private final int offset;
  private final int esize;
  private final long perSlice;
  private final Output out;
  /** Background of each slice; {@code null}: slice {@code s} has background {@code s}. */
  private final CodebookMap map;
  private final boolean[] zero;
  /** Whether every background is zero: then a range is one run of zero bytes. */
  final boolean allZero;

  /** The slice of the last range filled, and the element where it ends; none yet. */
  private int slice = -1;
  private long sliceEnd = 0;
  /** The background of {@link #slice}. */
  private int current;

  /**
   * The {@code count} backgrounds at {@code b[offset]}, {@code esize} bytes each, for slices of
   * {@code perSlice} elements, slice {@code s} taking background {@code s}.
   */
  Background(byte[] b, int offset, int count, int esize, long perSlice, Output out) {
    this(b, offset, count, esize, perSlice, null, out);
  }

  /**
   * As above, but slice (channel) {@code c} takes background {@code map.book(c)}: the background
   * of its codebook (GROUPED_SPARSE); {@code map} must be decoded.
   */
  Background(
      byte[] b, int offset, int count, int esize, long perSlice, CodebookMap map, Output out) {
    this.b = b;
    this.offset = offset;
    this.esize = esize;
    this.perSlice = perSlice;
    this.map = map;
    this.out = out;
    this.zero = new boolean[count];
    boolean all = true;
    for (int c = 0; c < count; c++) {
      boolean z = true;
      for (int j = 0; j < esize; j++) {
        z &= b[offset + c * esize + j] == 0;
      }
      zero[c] = z;
      all &= z;
    }
    this.allZero = all;
  }

  private int backgroundOf(int slice) {
    return map == null ? slice : map.book(slice);
  }

  /** Elements [from, to), split where the slice (channel) changes. */
  void fill(long from, long to) {
    if (allZero) {
      out.zeros((to - from) * esize);
      return;
    }
    while (from < to) {
      if (from >= sliceEnd) {
        do {
          slice++;
          sliceEnd += perSlice;
        } while (from >= sliceEnd);
        current = backgroundOf(slice);
      }
      long stop = Math.min(to, sliceEnd);
      if (zero[current]) {
        out.zeros((stop - from) * esize);
      } else {
        out.repeat(b, offset + current * esize, esize, stop - from);
      }
      from = stop;
    }
  }
}
