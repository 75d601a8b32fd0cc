package dev.kerasdc.bundle;

/**
 * The background values of a sparse payload (format spec 7.4, 7.6): one per slice of the segment
 * (per codebook for CLUSTERED_SPARSE), written over the elements the gap stream does not emit.
 * Ranges of elements come in increasing order.
 */
final class Background {
  private final byte[] b;
  private final int offset;
  private final int esize;
  private final long perSlice;
  private final Output out;
  private final boolean[] zero;
  /** Whether every background is zero: then a range is one run of zero bytes. */
  final boolean allZero;

  private int slice;
  private long sliceEnd;

  /**
   * The {@code count} backgrounds at {@code b[offset]}, {@code esize} bytes each, for slices of
   * {@code perSlice} elements.
   */
  Background(byte[] b, int offset, int count, int esize, long perSlice, Output out) {
    this.b = b;
    this.offset = offset;
    this.esize = esize;
    this.perSlice = perSlice;
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
    this.sliceEnd = perSlice;
  }

  /** Elements [from, to), split where the slice (channel) changes. */
  void fill(long from, long to) {
    if (allZero) {
      out.zeros((to - from) * esize);
      return;
    }
    while (from < to) {
      while (from >= sliceEnd) {
        slice++;
        sliceEnd += perSlice;
      }
      long stop = Math.min(to, sliceEnd);
      if (zero[slice]) {
        out.zeros((stop - from) * esize);
      } else {
        out.repeat(b, offset + slice * esize, esize, stop - from);
      }
      from = stop;
    }
  }
}
