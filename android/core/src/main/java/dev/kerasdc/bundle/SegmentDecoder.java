package dev.kerasdc.bundle;

import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/** Decodes one segment's payload (format spec section 7) into an {@link Output}. */
final class SegmentDecoder {
  private SegmentDecoder() {}

  /** Decodes {@code segment}, whose payload CRC has been checked, writing exactly its size. */
  static void decode(byte[] b, Segment segment, Output out) throws BundleFormatException {
    // Start each segment with an empty staging buffer: within a segment every write is a
    // multiple of the element size, so an element never straddles the end of the buffer.
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

  private static void decodeZlib(byte[] b, Segment segment, Output out)
      throws BundleFormatException {
    int start = segment.getPayloadOffset();
    String field = segment.field() + ".payload";
    long size = segment.getSize();
    Inflater inflater = new Inflater();
    try {
      inflater.setInput(b, start, segment.getPayloadSize());
      long remaining = size;
      int stalls = 0;
      while (remaining > 0) {
        if (out.fill == Output.CHUNK) {
          out.flush();
        }
        int want = (int) Math.min(Output.CHUNK - out.fill, remaining);
        int n = inflate(inflater, out.chunk, out.fill, want, start, field);
        out.fill += n;
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
    } finally {
      inflater.end();
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

  private static void decodeClustered(byte[] b, Segment segment, Output out)
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
        HuffmanDecoder decoder = indices.decoder(b);
        decodeDense(b, decoder, elements, perBook, entryCounts, bases, esize, out, f);
        indices.finish(decoder);
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
              b, gaps, indices, escapeRun, elements, perBook, entryCounts, bases, esize, out,
              background, f);
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
    private int book;
    private long bookEnd;

    Background(byte[] b, int offset, int books, int esize, long perBook, Output out) {
      this.b = b;
      this.offset = offset;
      this.esize = esize;
      this.perBook = perBook;
      this.out = out;
      this.zero = new boolean[books];
      for (int c = 0; c < books; c++) {
        boolean z = true;
        for (int j = 0; j < esize; j++) {
          z &= b[offset + c * esize + j] == 0;
        }
        zero[c] = z;
      }
      this.bookEnd = perBook;
    }

    /** Elements [from, to), split where the codebook (channel) changes. */
    void fill(long from, long to) {
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

  private static void decodeDense(
      byte[] b,
      HuffmanDecoder indices,
      long elements,
      long perBook,
      int[] entryCounts,
      int[] bases,
      int esize,
      Output out,
      String f)
      throws BundleFormatException {
    // elements <= 2^31 - 1 (the restored size limit), so int counters suffice.
    byte[] chunk = out.chunk;
    int perBookInt = (int) perBook;
    for (int book = 0, done = 0; done < elements; book++) {
      int entryCount = entryCounts[book];
      int base = bases[book];
      int dst = out.fill;
      for (int left = perBookInt; left > 0; left--) {
        int k = indices.next();
        if (k >= entryCount) {
          throw badIndex(indices, f, k, book, entryCount);
        }
        if (dst == Output.CHUNK) {
          out.fill = dst;
          out.flush();
          dst = 0;
        }
        int src = base + k * esize;
        for (int j = 0; j < esize; j++) {
          chunk[dst + j] = b[src + j];
        }
        dst += esize;
      }
      out.fill = dst;
      done += perBookInt;
    }
  }

  /** Returns the number of elements written (up to and including the last emitted one). */
  private static long decodeSparse(
      byte[] b,
      HuffmanStream gapStream,
      HuffmanStream indexStream,
      int escapeRun,
      long elements,
      long perBook,
      int[] entryCounts,
      int[] bases,
      int esize,
      Output out,
      Background background,
      String f)
      throws BundleFormatException {
    HuffmanDecoder gaps = gapStream.decoder(b);
    HuffmanDecoder indices = indexStream.count > 0 ? indexStream.decoder(b) : null;
    int indexOffset = gapStream.end;
    byte[] chunk = out.chunk;
    long position = 0;
    long written = 0;
    long emitted = 0;
    int book = 0;
    long bookEnd = perBook;
    int symbol = 0;
    for (long g = 0; g < gapStream.count; g++) {
      long at = gaps.byteOffset();
      symbol = gaps.next();
      if (symbol == 0) {
        position += escapeRun;
        continue;
      }
      if (symbol > escapeRun) {
        throw new BundleFormatException(
            at, f + ".gaps.data", "gap symbol " + symbol + " exceeds escape_run " + escapeRun);
      }
      position += symbol - 1;
      if (position >= elements) {
        throw new BundleFormatException(
            at,
            f + ".gaps.data",
            "emitted position " + position + " is outside the segment's " + elements
                + " elements");
      }
      if (emitted == indexStream.count) {
        throw new BundleFormatException(
            indexOffset,
            f + ".indices.count",
            "more emitted positions than indices.count = " + indexStream.count);
      }
      background.fill(written, position);
      while (position >= bookEnd) {
        book++;
        bookEnd += perBook;
      }
      int k = indices.next();
      if (k >= entryCounts[book]) {
        throw badIndex(indices, f, k, book, entryCounts[book]);
      }
      if (out.fill == Output.CHUNK) {
        out.flush();
      }
      int src = bases[book] + k * esize;
      int dst = out.fill;
      for (int j = 0; j < esize; j++) {
        chunk[dst + j] = b[src + j];
      }
      out.fill = dst + esize;
      position++;
      written = position;
      emitted++;
    }
    if (symbol == 0) {
      throw new BundleFormatException(
          gaps.byteOffset(), f + ".gaps.data", "the last gap symbol is an escape");
    }
    gapStream.finish(gaps);
    if (emitted != indexStream.count) {
      throw new BundleFormatException(
          indexOffset,
          f + ".indices.count",
          indexStream.count + " indices but " + emitted + " emitted positions in the gaps");
    }
    if (indices != null) {
      indexStream.finish(indices);
    }
    return written;
  }

  private static BundleFormatException badIndex(
      HuffmanDecoder indices, String f, int k, int book, int entryCount) {
    return new BundleFormatException(
        indices.byteOffset(),
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
