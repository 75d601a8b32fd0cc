package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Clustered;
import dev.kerasdc.bundle.Format.SparseRaw;

/**
 * Decodes a SPARSE_RAW payload (format spec 7.6, since version 1.1): one background value per
 * slice, {@code escape_run} and the gap stream as in CLUSTERED_SPARSE (7.4), then the emitted
 * elements' bytes as they are, in position order; every other element takes its slice's
 * background.
 *
 * <p>An instance holds one payload's fields, read and checked by {@link #read}; {@link #decode}
 * then writes the segment.
 */
final class SparseRawDecoder {
  private final Payload payload;
  private final int slices;
  private final int esize;
  /** Sidecar offset of the background values. */
  private final int backgrounds;
  private final int escapeRun;
  private final HuffmanStream gaps;
  /** Sidecar offset of the {@code values} field, and its number of elements. */
  private final int values;
  private final long valueCount;

  private SparseRawDecoder(
      Payload payload, int slices, int backgrounds, int escapeRun, HuffmanStream gaps,
      int values, long valueCount) {
    this.payload = payload;
    this.slices = slices;
    this.esize = payload.entry.getElementSize();
    this.backgrounds = backgrounds;
    this.escapeRun = escapeRun;
    this.gaps = gaps;
    this.values = values;
    this.valueCount = valueCount;
  }

  /**
   * Reads the fields of {@code payload}, checking each before any decoding (section 10): the
   * slice count, the backgrounds, {@code escape_run}, the gap stream's header, and that the
   * values fill the rest of the payload with whole elements.
   */
  static SparseRawDecoder read(Payload payload) throws BundleFormatException {
    SegmentEntry entry = payload.entry;
    int esize = entry.getElementSize();
    long channels = entry.getChannels();
    int at = payload.p;
    int slices = payload.u16("slice_count");
    if (slices != 1 && slices != channels) {
      throw new BundleFormatException(
          at + SparseRaw.SLICE_COUNT,
          payload.field("slice_count"),
          slices + " slices; expected 1 or channels = " + channels);
    }
    payload.require(slices * esize, "background");
    int backgrounds = payload.p;
    payload.p += slices * esize;
    int escapeRun = ClusteredSparseDecoder.readEscapeRun(payload);
    HuffmanStream gaps = payload.stream("gaps", escapeRun + 1);
    int values = payload.p;
    int left = payload.end - values;
    long elements = entry.elements();
    if (left % esize != 0 || left / esize > elements) {
      throw new BundleFormatException(
          values,
          payload.field("values"),
          left + " bytes are not whole " + esize + "-byte values of at most " + elements
              + " elements");
    }
    payload.p = payload.end;
    return new SparseRawDecoder(payload, slices, backgrounds, escapeRun, gaps, values, left / esize);
  }

  /** Writes the segment: the emitted elements' bytes, background everywhere else. */
  void decode(Workspace work, Output out) throws BundleFormatException {
    long elements = payload.entry.elements();
    Background background =
        new Background(payload.b, backgrounds, slices, esize, elements / slices, out);
    long written = 0;
    if (gaps.count > 0) {
      written = decodeGaps(work, out, background, elements);
    } else if (valueCount > 0) {
      throw new BundleFormatException(
          values, payload.field("values"), valueCount + " values but no gap symbols");
    }
    background.fill(written, elements);
  }

  /**
   * Decodes the gap stream (every rule of 7.4 checked in stream order) and writes each emitted
   * element after the background before it; returns the number of elements written.
   */
  private long decodeGaps(Workspace work, Output out, Background background, long elements)
      throws BundleFormatException {
    byte[] b = payload.b;
    SymbolReader reader = work.reader(b, gaps, Workspace.FIRST);
    byte[] block = work.symbolBlock(Workspace.FIRST);
    long gapCount = gaps.count;
    long position = 0; // elements < 2^31, but escapes may run far past the end
    long emitted = 0;
    long written = 0;
    int from = values;
    int symbol = 0;
    for (long g = 0; g < gapCount; ) {
      int n = (int) Math.min(Workspace.BLOCK, gapCount - g);
      reader.read(block, n);
      for (int j = 0; j < n; j++) {
        symbol = block[j] & 0xFF;
        if (symbol == Clustered.ESCAPE) {
          position += escapeRun;
          continue;
        }
        if (symbol > escapeRun) {
          throw new BundleFormatException(
              reader.byteOffsetBefore(g + j),
              payload.field("gaps.data"),
              "gap symbol " + symbol + " exceeds escape_run " + escapeRun);
        }
        position += symbol - 1;
        if (position >= elements) {
          throw new BundleFormatException(
              reader.byteOffsetBefore(g + j),
              payload.field("gaps.data"),
              "emitted position " + position + " is outside the segment's " + elements
                  + " elements");
        }
        if (emitted == valueCount) {
          throw new BundleFormatException(
              values,
              payload.field("values"),
              "more emitted positions than the " + valueCount + " values");
        }
        background.fill(written, position);
        if (out.pos == out.limit) {
          out.flush(); // windows hold whole elements: one never straddles a window's end
        }
        System.arraycopy(b, from, out.buf, out.pos, esize);
        out.pos += esize;
        from += esize;
        emitted++;
        position++;
        written = position;
      }
      g += n;
    }
    if (symbol == Clustered.ESCAPE) {
      throw new BundleFormatException(
          reader.byteOffset(), payload.field("gaps.data"), "the last gap symbol is an escape");
    }
    reader.finish();
    if (emitted != valueCount) {
      throw new BundleFormatException(
          values,
          payload.field("values"),
          valueCount + " values but " + emitted + " emitted positions in the gaps");
    }
    return written;
  }
}
