package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Clustered;
import java.nio.ByteBuffer;

/**
 * Decodes a CLUSTERED_SPARSE payload (format spec 7.4), or a GROUPED_SPARSE one (7.8): after the
 * codebooks (and a grouped payload's codebook map), one background value per codebook, {@code
 * escape_run}, the gap stream that gives the emitted elements' positions and the index stream
 * that gives their values; every other element takes its codebook's background.
 *
 * <p>An instance holds one payload's fields, read and checked by {@link #read}; {@link #decode}
 * then writes the segment.
 */
final class ClusteredSparseDecoder {
  private final Payload payload;
  private final Codebooks books;
  /** Sidecar offset of the background values. */
  private final int backgrounds;
  private final int escapeRun;
  private final HuffmanStream gaps;
  private final HuffmanStream indices;

  private ClusteredSparseDecoder(
      Payload payload, Codebooks books, int backgrounds, int escapeRun, HuffmanStream gaps,
      HuffmanStream indices) {
    this.payload = payload;
    this.books = books;
    this.backgrounds = backgrounds;
    this.escapeRun = escapeRun;
    this.gaps = gaps;
    this.indices = indices;
  }

  /**
   * Reads the rest of {@code payload}, after {@code books}, checking every field before any
   * decoding (section 10: the stream headers, then that nothing follows the last stream).
   */
  static ClusteredSparseDecoder read(Payload payload, Codebooks books)
      throws BundleFormatException {
    payload.require(books.count * books.esize, "background");
    int backgrounds = payload.p;
    payload.p += books.count * books.esize;
    int escapeRun = readEscapeRun(payload);
    HuffmanStream gaps = payload.stream("gaps", escapeRun + 1);
    HuffmanStream indices = payload.stream("indices", Format.Stream.MAX_ALPHABET);
    payload.requireEnd();
    long elements = payload.entry.elements();
    if (indices.count > elements) {
      throw new BundleFormatException(
          gaps.end,
          payload.field("indices.count"),
          indices.count + " emitted elements in a segment of " + elements + " elements");
    }
    return new ClusteredSparseDecoder(payload, books, backgrounds, escapeRun, gaps, indices);
  }

  /** Reads {@code escape_run} (7.4, also 7.6) and checks it is at least 1. */
  static int readEscapeRun(Payload payload) throws BundleFormatException {
    int at = payload.p;
    int escapeRun = payload.u8("escape_run");
    if (escapeRun < Clustered.MIN_ESCAPE_RUN) {
      throw new BundleFormatException(
          at,
          payload.field("escape_run"),
          "escape_run is " + escapeRun + "; expected " + Clustered.MIN_ESCAPE_RUN + ".."
              + Clustered.MAX_ESCAPE_RUN);
    }
    return escapeRun;
  }

  /** Writes the segment: emitted elements from the streams, background everywhere else. */
  void decode(Workspace work, Output out) throws BundleFormatException {
    books.decodeMap(work);
    Background background =
        new Background(
            payload.b, backgrounds, books.count, books.esize, books.perSlice, books.map, out);
    long written = 0;
    if (gaps.count > 0) {
      written = decodeStreams(work, out, background);
    } else if (indices.count > 0) {
      throw new BundleFormatException(
          gaps.end,
          payload.field("indices.count"),
          indices.count + " indices but no gap symbols");
    }
    background.fill(written, payload.entry.elements());
  }

  /**
   * Decodes both streams; returns the number of elements written (up to and including the last
   * emitted one).
   *
   * <p>Per block of gap symbols, two passes: the gap symbols become the emitted positions (every
   * rule of 7.4 checked in stream order), then the index symbols become codebook entries written
   * at those positions. Faults in one block of gaps are therefore reported before faults of the
   * indices that go with them.
   */
  private long decodeStreams(Workspace work, Output out, Background background)
      throws BundleFormatException {
    byte[] b = payload.b;
    SymbolReader gapReader = work.reader(b, gaps, Workspace.FIRST);
    SymbolReader indexReader = indices.count > 0 ? work.reader(b, indices, Workspace.SECOND) : null;
    byte[] gapBlock = work.symbolBlock(Workspace.FIRST);
    byte[] indexBlock = work.symbolBlock(Workspace.SECOND);
    int[] positions = work.positions();
    long[] values = work.entries;
    int esize = books.esize;
    long perSlice = books.perSlice;
    long elements = payload.entry.elements();
    ByteBuffer view = out.view;
    byte[] buf = out.buf;
    // Background runs that are zeros in a clean output only move the position.
    boolean zeroGaps = out.clean && background.allZero;
    int indexOffset = gaps.end;
    long gapCount = gaps.count;
    long indexCount = indices.count;
    long position = 0; // elements < 2^31, but escapes may run far past the end
    int written = 0;
    long emitted = 0;
    int slice = -1; // the slice of the last emitted element, its end and its codebook's size
    long sliceEnd = 0;
    int entryCount = 0;
    int indexHave = 0;
    int indexAt = 0;
    int symbol = 0;
    for (long g = 0; g < gapCount; ) {
      int n = (int) Math.min(Workspace.BLOCK, gapCount - g);
      gapReader.read(gapBlock, n);
      // Pass 1: emitted positions.
      int m = 0;
      for (int j = 0; j < n; j++) {
        symbol = gapBlock[j] & 0xFF;
        if (symbol == Clustered.ESCAPE) {
          position += escapeRun;
          continue;
        }
        if (symbol > escapeRun) {
          throw new BundleFormatException(
              gapReader.byteOffsetBefore(g + j),
              payload.field("gaps.data"),
              "gap symbol " + symbol + " exceeds escape_run " + escapeRun);
        }
        position += symbol - 1;
        if (position >= elements) {
          throw new BundleFormatException(
              gapReader.byteOffsetBefore(g + j),
              payload.field("gaps.data"),
              "emitted position " + position + " is outside the segment's " + elements
                  + " elements");
        }
        if (emitted + m == indexCount) {
          throw new BundleFormatException(
              indexOffset,
              payload.field("indices.count"),
              "more emitted positions than indices.count = " + indexCount);
        }
        positions[m++] = (int) position;
        position++;
      }
      g += n;
      // Pass 2: the entries. The output window is kept in locals, synchronised with out around
      // calls on it.
      int pos = out.pos;
      int limit = out.limit;
      for (int t = 0; t < m; ) {
        if (indexAt == indexHave) {
          indexHave = (int) Math.min(Workspace.BLOCK, indexCount - emitted);
          indexReader.read(indexBlock, indexHave);
          indexAt = 0;
        }
        int stop = t + Math.min(m - t, indexHave - indexAt);
        for (; t < stop; t++) {
          int p = positions[t];
          int k = indexBlock[indexAt++] & 0xFF;
          long where = pos + (long) (p - written) * esize; // element p's index, if in the window
          int at;
          if (zeroGaps && where < limit) {
            at = (int) where;
          } else {
            out.pos = pos;
            background.fill(written, p);
            if (out.pos == out.limit) {
              out.flush();
            }
            pos = out.pos;
            limit = out.limit;
            at = pos;
          }
          if (p >= sliceEnd) {
            do {
              slice++;
              sliceEnd += perSlice;
            } while (p >= sliceEnd);
            entryCount = books.load(slice, values);
          }
          if (k >= entryCount) {
            throw ClusteredDenseDecoder.badIndex(
                indexReader, emitted, k, books.book(slice), entryCount, payload);
          }
          long v = values[k];
          switch (esize) {
            case 4:
              view.putInt(at, (int) v);
              break;
            case 2:
              view.putShort(at, (short) v);
              break;
            case 1:
              buf[at] = (byte) v;
              break;
            default:
              view.putLong(at, v);
          }
          pos = at + esize;
          written = p + 1;
          emitted++;
        }
      }
      out.pos = pos;
    }
    if (symbol == Clustered.ESCAPE) {
      throw new BundleFormatException(
          gapReader.byteOffset(), payload.field("gaps.data"), "the last gap symbol is an escape");
    }
    gapReader.finish();
    if (emitted != indexCount) {
      throw new BundleFormatException(
          indexOffset,
          payload.field("indices.count"),
          indexCount + " indices but " + emitted + " emitted positions in the gaps");
    }
    if (indexReader != null) {
      indexReader.finish();
    }
    return written;
  }
}
