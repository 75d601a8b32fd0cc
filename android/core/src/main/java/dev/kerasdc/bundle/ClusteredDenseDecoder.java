package dev.kerasdc.bundle;

import java.nio.ByteBuffer;

/**
 * Decodes a CLUSTERED_DENSE payload (format spec 7.5), or a GROUPED_DENSE one (7.8): after the
 * codebooks (and a grouped payload's codebook map), one index stream with a symbol per element;
 * element {@code p} takes entry {@code indices[p]} of its codebook.
 *
 * <p>Symbols are decoded in blocks of {@link Workspace#BLOCK} into byte arrays ({@link
 * SymbolReader}), then expanded: each index becomes its codebook entry's bytes, written straight
 * into the output's window by a loop specialised for the element size.
 */
final class ClusteredDenseDecoder {
  private ClusteredDenseDecoder() {}

  /** Reads the rest of {@code payload}, after {@code books}, and writes the segment. */
  static void decode(Payload payload, Codebooks books, Workspace work, Output out)
      throws BundleFormatException {
    int at = payload.p;
    HuffmanStream stream = payload.stream("indices", Format.Stream.MAX_ALPHABET);
    payload.requireEnd();
    long elements = payload.entry.elements();
    if (stream.count != elements) {
      throw new BundleFormatException(
          at,
          payload.field("indices.count"),
          stream.count + " indices for a segment of " + elements + " elements");
    }
    books.decodeMap(work);
    if (elements == 0) {
      return;
    }
    SymbolReader indices = work.reader(payload.b, stream, Workspace.FIRST);
    byte[] block = work.symbolBlock(Workspace.FIRST);
    long[] values = work.entries;
    int esize = books.esize;
    long done = 0;
    int slice = -1;
    long sliceEnd = 0;
    int entryCount = 0;
    int have = 0;
    int next = 0;
    while (done < elements) {
      if (next == have) {
        have = (int) Math.min(Workspace.BLOCK, elements - done);
        indices.read(block, have);
        next = 0;
      }
      if (done == sliceEnd) {
        slice++;
        sliceEnd += books.perSlice;
        entryCount = books.load(slice, values);
      }
      if (out.pos == out.limit) {
        out.flush();
      }
      int n =
          (int) Math.min(Math.min(have - next, sliceEnd - done), (out.limit - out.pos) / esize);
      int bad = expand(block, next, n, values, entryCount, esize, out);
      if (bad >= 0) {
        long index = done + (bad - next);
        throw badIndex(
            indices, index, block[bad] & 0xFF, books.book(slice), entryCount, payload);
      }
      out.pos += n * esize;
      next += n;
      done += n;
    }
    indices.finish();
  }

  /**
   * Writes the entries of symbols {@code block[from, from + n)} to {@code out.buf} from {@code
   * out.pos} (which it leaves as it is).
   *
   * @return the position in {@code block} of the first symbol outside the codebook (nothing
   *     after it is written), or -1
   */
  private static int expand(
      byte[] block, int from, int n, long[] values, int entryCount, int esize, Output out) {
    int to = from + n;
    int p = out.pos;
    ByteBuffer view = out.view;
    switch (esize) {
      case 4:
        for (int i = from; i < to; i++, p += 4) {
          int k = block[i] & 0xFF;
          if (k >= entryCount) {
            return i;
          }
          view.putInt(p, (int) values[k]);
        }
        return -1;
      case 2:
        for (int i = from; i < to; i++, p += 2) {
          int k = block[i] & 0xFF;
          if (k >= entryCount) {
            return i;
          }
          view.putShort(p, (short) values[k]);
        }
        return -1;
      case 1:
        byte[] dst = out.buf;
        for (int i = from; i < to; i++, p++) {
          int k = block[i] & 0xFF;
          if (k >= entryCount) {
            return i;
          }
          dst[p] = (byte) values[k];
        }
        return -1;
      default:
        for (int i = from; i < to; i++, p += 8) {
          int k = block[i] & 0xFF;
          if (k >= entryCount) {
            return i;
          }
          view.putLong(p, values[k]);
        }
        return -1;
    }
  }

  /**
   * The error for symbol {@code index} of an index stream, {@code k}, outside codebook {@code
   * book} (spec 7.3), reported at the byte after the symbol. Shared with {@link
   * ClusteredSparseDecoder}.
   */
  static BundleFormatException badIndex(
      SymbolReader indices, long index, int k, int book, int entryCount, Payload payload)
      throws BundleFormatException {
    return new BundleFormatException(
        indices.byteOffsetAfter(index),
        payload.field("indices.data"),
        "index " + k + " is outside codebook " + book + " of " + entryCount + " entries");
  }
}
