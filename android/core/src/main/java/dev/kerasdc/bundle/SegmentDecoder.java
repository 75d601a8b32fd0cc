package dev.kerasdc.bundle;

import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Decodes segment payloads (format spec section 7) into an {@link Output}. One instance serves one
 * restore, on one thread: it keeps the symbol buffers and Inflaters between segments. Call
 * {@link #end} when done.
 *
 * <p>Symbols are decoded in blocks of {@link #BLOCK} into byte arrays ({@link SymbolReader}), then
 * expanded: each index becomes its codebook entry's bytes, written straight into the output's
 * window by a loop specialised for the element size.
 */
final class SegmentDecoder {
  /**
   * With {@link HuffmanDecoding#AUTO} on Android, streams of fewer symbols than this use the table
   * decoder: the Inflater's set-up (a 142-byte header whose code zlib builds, a JNI call per
   * block) does not pay off.
   */
  static final long MIN_INFLATER_SYMBOLS = 1024;

  /**
   * Whether {@link HuffmanDecoding#AUTO} prefers the Inflater: on Android, where zlib is native
   * code and the table decoder's speed would rest on ART's compiler. On the JVM (HotSpot's C2) the
   * table decoder is measured faster (benchmarks/java_restore.py prints both).
   */
  static final boolean AUTO_INFLATES = isAndroid();

  private static boolean isAndroid() {
    String vm = System.getProperty("java.vm.name", "");
    String vendor = System.getProperty("java.vendor", "");
    return vm.contains("Dalvik") || vendor.contains("Android");
  }

  /** Symbols per block. */
  static final int BLOCK = 1 << 14;

  private final HuffmanDecoding huffman;
  /** Symbol blocks: [0] for the gap or dense index stream, [1] for the sparse index stream. */
  private final byte[][] symbols = new byte[2][];
  /** Raw Inflaters for the two streams of a segment, made on first use. */
  private final Inflater[] raw = new Inflater[2];
  /** The Inflater of ZLIB segments, made on first use. */
  private Inflater zlib;
  /** The current codebook's entries, as little-endian bit patterns. */
  private final long[] entries = new long[256];
  /** Emitted positions of a block of gap symbols, made on first use. */
  private int[] positions;

  SegmentDecoder(HuffmanDecoding huffman) {
    this.huffman = huffman;
  }

  /** Releases the native memory of the Inflaters. */
  void end() {
    for (int i = 0; i < raw.length; i++) {
      if (raw[i] != null) {
        raw[i].end();
        raw[i] = null;
      }
    }
    if (zlib != null) {
      zlib.end();
      zlib = null;
    }
  }

  /** Decodes {@code segment}, whose payload CRC has been checked, writing exactly its size. */
  void decode(byte[] b, Segment segment, Output out) throws BundleFormatException {
    // Start each segment with a fresh window: its length is then a multiple of every element
    // size, so an element never straddles the end of a window.
    out.flush();
    switch (segment.getEncoding()) {
      case Segment.RAW:
        decodeRaw(b, segment, out);
        break;
      case Segment.ZLIB:
        decodeZlib(b, segment, out);
        break;
      case Segment.CLUSTERED_SPARSE:
      case Segment.CLUSTERED_DENSE:
        decodeClustered(b, segment, out);
        break;
      default:
        throw new IllegalStateException("encoding was validated: " + segment.getEncoding());
    }
  }

  private static void decodeRaw(byte[] b, Segment segment, Output out)
      throws BundleFormatException {
    if (segment.getPayloadSize() != segment.getSize()) {
      throw new BundleFormatException(
          segment.entryOffset() + 16,
          segment.field() + ".payload_size",
          "a RAW payload must hold size = " + segment.getSize() + " bytes, not "
              + segment.getPayloadSize());
    }
    out.put(b, segment.getPayloadOffset(), segment.getPayloadSize());
  }

  private void decodeZlib(byte[] b, Segment segment, Output out) throws BundleFormatException {
    int start = segment.getPayloadOffset();
    String field = segment.field() + ".payload";
    long size = segment.getSize();
    if (zlib == null) {
      zlib = new Inflater();
    } else {
      zlib.reset();
    }
    Inflater inflater = zlib;
    inflater.setInput(b, start, segment.getPayloadSize());
    long remaining = size;
    int stalls = 0;
    while (remaining > 0) {
      if (out.pos == out.limit) {
        out.flush();
      }
      int want = (int) Math.min(out.limit - out.pos, remaining);
      int n = inflate(inflater, out.buf, out.pos, want, start, field);
      out.pos += n;
      remaining -= n;
      if (n > 0) {
        stalls = 0;
        continue;
      }
      long at = start + inflater.getBytesRead();
      long produced = size - remaining;
      if (inflater.finished()) {
        throw new BundleFormatException(
            at, field, "zlib stream ends after " + produced + " bytes; size is " + size);
      }
      if (inflater.needsDictionary()) {
        throw new BundleFormatException(at, field, "zlib stream needs a preset dictionary");
      }
      if (inflater.needsInput() || ++stalls > 4) {
        throw new BundleFormatException(
            at, field, "zlib stream is truncated after " + produced + " of " + size + " bytes");
      }
    }
    // Exactly size bytes are out: the stream must end here, with nothing after it.
    byte[] probe = new byte[1];
    for (int i = 0; !inflater.finished(); i++) {
      int n = inflate(inflater, probe, 0, 1, start, field);
      long at = start + inflater.getBytesRead();
      if (n > 0) {
        throw new BundleFormatException(
            at, field, "zlib stream inflates to more than size = " + size + " bytes");
      }
      boolean stuck = inflater.needsInput() || inflater.needsDictionary() || i > 4;
      if (!inflater.finished() && stuck) {
        throw new BundleFormatException(
            at, field, "zlib stream does not end after size = " + size + " bytes");
      }
    }
    if (inflater.getRemaining() != 0) {
      throw new BundleFormatException(
          start + inflater.getBytesRead(),
          field,
          inflater.getRemaining() + " bytes follow the end of the zlib stream");
    }
  }

  private static int inflate(
      Inflater inflater, byte[] target, int offset, int length, int start, String field)
      throws BundleFormatException {
    try {
      return inflater.inflate(target, offset, length);
    } catch (DataFormatException e) {
      throw new BundleFormatException(
          start + inflater.getBytesRead(), field, "zlib error: " + e.getMessage());
    }
  }

  /** A reader of a non-empty stream, using the Inflater {@code slot} if the mode says so. */
  private SymbolReader reader(byte[] b, HuffmanStream stream, int slot)
      throws BundleFormatException {
    boolean inflate =
        huffman == HuffmanDecoding.INFLATER
            || (huffman == HuffmanDecoding.AUTO
                && AUTO_INFLATES
                && stream.count >= MIN_INFLATER_SYMBOLS);
    Inflater inflater = null;
    if (inflate) {
      if (raw[slot] == null) {
        raw[slot] = new Inflater(true);
      }
      inflater = raw[slot];
    }
    return new SymbolReader(b, stream, inflater);
  }

  private byte[] symbolBlock(int slot) {
    if (symbols[slot] == null) {
      symbols[slot] = new byte[BLOCK];
    }
    return symbols[slot];
  }

  /** The codebooks of a clustered payload (spec 7.3). */
  private static final class Codebooks {
    final byte[] b;
    final int esize;
    final int[] entryCounts;
    final int[] bases;

    Codebooks(byte[] b, int esize, int[] entryCounts, int[] bases) {
      this.b = b;
      this.esize = esize;
      this.entryCounts = entryCounts;
      this.bases = bases;
    }

    /** Reads codebook {@code book}'s entries into {@code values}; returns their number. */
    int load(int book, long[] values) {
      int count = entryCounts[book];
      for (int k = 0, p = bases[book]; k < count; k++, p += esize) {
        values[k] = pattern(b, p, esize);
      }
      return count;
    }
  }

  /** The {@code esize}-byte little-endian bit pattern at {@code b[p]}. */
  static long pattern(byte[] b, int p, int esize) {
    long v = 0;
    for (int j = esize - 1; j >= 0; j--) {
      v = v << 8 | (b[p + j] & 0xFFL);
    }
    return v;
  }

  private void decodeClustered(byte[] b, Segment segment, Output out)
      throws BundleFormatException {
    String f = segment.field();
    int p = segment.getPayloadOffset();
    int end = p + segment.getPayloadSize();
    int esize = segment.getElementSize();
    long elements = segment.getSize() / esize;
    long channels = segment.getChannels();

    // Codebooks (7.3).
    require(p, 2, end, f + ".codebook_count");
    int books = LittleEndian.u16(b, p);
    if (books != 1 && books != channels) {
      throw new BundleFormatException(
          p,
          f + ".codebook_count",
          books + " codebooks; expected 1 or channels = " + channels);
    }
    p += 2;
    require(p, 2 * books, end, f + ".entry_count");
    int[] entryCounts = new int[books];
    int[] bases = new int[books];
    int entries = 0;
    for (int c = 0; c < books; c++) {
      int k = LittleEndian.u16(b, p + 2 * c);
      if (k > 256) {
        throw new BundleFormatException(
            p + 2 * c, f + ".entry_count", "codebook " + c + " has " + k + " > 256 entries");
      }
      entryCounts[c] = k;
      entries += k;
    }
    p += 2 * books;
    require(p, entries * esize, end, f + ".entries");
    for (int c = 0, base = p; c < books; c++) {
      bases[c] = base;
      base += entryCounts[c] * esize;
    }
    p += entries * esize;
    long perBook = elements / books;
    Codebooks codebooks = new Codebooks(b, esize, entryCounts, bases);

    if (segment.getEncoding() == Segment.CLUSTERED_DENSE) {
      HuffmanStream indices = HuffmanStream.parse(b, p, end, f + ".indices", 256);
      requireEnd(indices.end, end, segment);
      if (indices.count != elements) {
        throw new BundleFormatException(
            p,
            f + ".indices.count",
            indices.count + " indices for a segment of " + elements + " elements");
      }
      if (elements > 0) {
        decodeDense(b, indices, elements, perBook, codebooks, out, f);
      }
      return;
    }

    // CLUSTERED_SPARSE (7.4): one background value per codebook, then the streams.
    require(p, books * esize, end, f + ".background");
    int backgrounds = p;
    p += books * esize;
    require(p, 1, end, f + ".escape_run");
    int escapeRun = LittleEndian.u8(b, p);
    if (escapeRun == 0) {
      throw new BundleFormatException(p, f + ".escape_run", "escape_run is 0; expected 1..255");
    }
    p += 1;
    HuffmanStream gaps = HuffmanStream.parse(b, p, end, f + ".gaps", escapeRun + 1);
    HuffmanStream indices = HuffmanStream.parse(b, gaps.end, end, f + ".indices", 256);
    requireEnd(indices.end, end, segment);
    if (indices.count > elements) {
      throw new BundleFormatException(
          gaps.end,
          f + ".indices.count",
          indices.count + " emitted elements in a segment of " + elements + " elements");
    }
    Background background = new Background(b, backgrounds, books, esize, perBook, out);
    long written = 0;
    if (gaps.count > 0) {
      written =
          decodeSparse(
              b, gaps, indices, escapeRun, elements, perBook, codebooks, out, background, f);
    } else if (indices.count > 0) {
      throw new BundleFormatException(
          gaps.end, f + ".indices.count", indices.count + " indices but no gap symbols");
    }
    background.fill(written, elements);
  }

  /**
   * Writes the background value of each element's codebook over ranges of elements, which come
   * in increasing order.
   */
  private static final class Background {
    private final byte[] b;
    private final int offset;
    private final int esize;
    private final long perBook;
    private final Output out;
    private final boolean[] zero;
    /** Whether every background is zero: then a range is one run of zero bytes. */
    final boolean allZero;

    private int book;
    private long bookEnd;

    Background(byte[] b, int offset, int books, int esize, long perBook, Output out) {
      this.b = b;
      this.offset = offset;
      this.esize = esize;
      this.perBook = perBook;
      this.out = out;
      this.zero = new boolean[books];
      boolean all = true;
      for (int c = 0; c < books; c++) {
        boolean z = true;
        for (int j = 0; j < esize; j++) {
          z &= b[offset + c * esize + j] == 0;
        }
        zero[c] = z;
        all &= z;
      }
      this.allZero = all;
      this.bookEnd = perBook;
    }

    /** Elements [from, to), split where the codebook (channel) changes. */
    void fill(long from, long to) {
      if (allZero) {
        out.zeros((to - from) * esize);
        return;
      }
      while (from < to) {
        while (from >= bookEnd) {
          book++;
          bookEnd += perBook;
        }
        long stop = Math.min(to, bookEnd);
        if (zero[book]) {
          out.zeros((stop - from) * esize);
        } else {
          out.repeat(b, offset + book * esize, esize, stop - from);
        }
        from = stop;
      }
    }
  }

  private void decodeDense(
      byte[] b,
      HuffmanStream stream,
      long elements,
      long perBook,
      Codebooks codebooks,
      Output out,
      String f)
      throws BundleFormatException {
    SymbolReader indices = reader(b, stream, 0);
    byte[] block = symbolBlock(0);
    long[] values = entries;
    int esize = codebooks.esize;
    long done = 0;
    int book = -1;
    long bookEnd = 0;
    int entryCount = 0;
    int have = 0;
    int at = 0;
    while (done < elements) {
      if (at == have) {
        have = (int) Math.min(BLOCK, elements - done);
        indices.read(block, have);
        at = 0;
      }
      if (done == bookEnd) {
        book++;
        bookEnd += perBook;
        entryCount = codebooks.load(book, values);
      }
      if (out.pos == out.limit) {
        out.flush();
      }
      int n = (int) Math.min(Math.min(have - at, bookEnd - done), (out.limit - out.pos) / esize);
      int bad = expand(block, at, n, values, entryCount, esize, out, out.pos);
      if (bad >= 0) {
        long index = done + (bad - at);
        throw badIndex(indices, index, block[bad] & 0xFF, book, entryCount, f);
      }
      out.pos += n * esize;
      at += n;
      done += n;
    }
    indices.finish();
  }

  /**
   * Writes the entries of symbols {@code block[from, from + n)} to {@code out.buf} from {@code p}.
   *
   * @return the position in {@code block} of the first symbol outside the codebook (nothing
   *     after it is written), or -1
   */
  static int expand(
      byte[] block, int from, int n, long[] values, int entryCount, int esize, Output out, int p) {
    int to = from + n;
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
   * Returns the number of elements written (up to and including the last emitted one).
   *
   * <p>Per block of gap symbols, two passes: the gap symbols become the emitted positions (every
   * rule of 7.4 checked in stream order), then the index symbols become codebook entries written
   * at those positions. Faults in one block of gaps are therefore reported before faults of the
   * indices that go with them.
   */
  private long decodeSparse(
      byte[] b,
      HuffmanStream gapStream,
      HuffmanStream indexStream,
      int escapeRun,
      long elements,
      long perBook,
      Codebooks codebooks,
      Output out,
      Background background,
      String f)
      throws BundleFormatException {
    SymbolReader gaps = reader(b, gapStream, 0);
    SymbolReader indices = indexStream.count > 0 ? reader(b, indexStream, 1) : null;
    byte[] gapBlock = symbolBlock(0);
    byte[] indexBlock = symbolBlock(1);
    if (positions == null) {
      positions = new int[BLOCK];
    }
    int[] positions = this.positions;
    long[] values = entries;
    int esize = codebooks.esize;
    ByteBuffer view = out.view;
    byte[] buf = out.buf;
    // Background runs that are zeros in a clean output only move the position.
    boolean zeroGaps = out.clean && background.allZero;
    int indexOffset = gapStream.end;
    long gapCount = gapStream.count;
    long indexCount = indexStream.count;
    long position = 0; // elements < 2^31, but escapes may run far past the end
    int written = 0;
    long emitted = 0;
    int book = 0;
    long bookEnd = perBook;
    int entryCount = codebooks.load(0, values);
    int indexHave = 0;
    int indexAt = 0;
    int symbol = 0;
    for (long g = 0; g < gapCount; ) {
      int n = (int) Math.min(BLOCK, gapCount - g);
      gaps.read(gapBlock, n);
      // Pass 1: emitted positions.
      int m = 0;
      for (int j = 0; j < n; j++) {
        symbol = gapBlock[j] & 0xFF;
        if (symbol == 0) {
          position += escapeRun;
          continue;
        }
        if (symbol > escapeRun) {
          throw new BundleFormatException(
              gaps.byteOffsetBefore(g + j),
              f + ".gaps.data",
              "gap symbol " + symbol + " exceeds escape_run " + escapeRun);
        }
        position += symbol - 1;
        if (position >= elements) {
          throw new BundleFormatException(
              gaps.byteOffsetBefore(g + j),
              f + ".gaps.data",
              "emitted position " + position + " is outside the segment's " + elements
                  + " elements");
        }
        if (emitted + m == indexCount) {
          throw new BundleFormatException(
              indexOffset,
              f + ".indices.count",
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
          indexHave = (int) Math.min(BLOCK, indexCount - emitted);
          indices.read(indexBlock, indexHave);
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
          if (p >= bookEnd) {
            do {
              book++;
              bookEnd += perBook;
            } while (p >= bookEnd);
            entryCount = codebooks.load(book, values);
          }
          if (k >= entryCount) {
            throw badIndex(indices, emitted, k, book, entryCount, f);
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
    if (symbol == 0) {
      throw new BundleFormatException(
          gaps.byteOffset(), f + ".gaps.data", "the last gap symbol is an escape");
    }
    gaps.finish();
    if (emitted != indexCount) {
      throw new BundleFormatException(
          indexOffset,
          f + ".indices.count",
          indexCount + " indices but " + emitted + " emitted positions in the gaps");
    }
    if (indices != null) {
      indices.finish();
    }
    return written;
  }

  /** The error for index {@code index} of a stream, {@code k}, outside its codebook. */
  private static BundleFormatException badIndex(
      SymbolReader indices, long index, int k, int book, int entryCount, String f)
      throws BundleFormatException {
    return new BundleFormatException(
        indices.byteOffsetAfter(index),
        f + ".indices.data",
        "index " + k + " is outside codebook " + book + " of " + entryCount + " entries");
  }

  private static void require(int p, int bytes, int end, String field)
      throws BundleFormatException {
    if (bytes > end - p) {
      throw new BundleFormatException(
          p, field, "truncated: needs " + bytes + " bytes, " + (end - p) + " left in the payload");
    }
  }

  private static void requireEnd(int streamEnd, int payloadEnd, Segment segment)
      throws BundleFormatException {
    if (streamEnd != payloadEnd) {
      // Reported at the first extra byte, as the Python reader does.
      throw new BundleFormatException(
          streamEnd,
          segment.field() + ".payload_size",
          (payloadEnd - streamEnd) + " bytes follow the last stream of the payload");
    }
  }
}
