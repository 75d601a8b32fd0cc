package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Clustered;
import dev.kerasdc.bundle.Format.Entry;
import dev.kerasdc.bundle.Format.Header;
import dev.kerasdc.bundle.Format.Stream;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

/**
 * A small, test-only writer of sidecars: builds valid bundles from explicit payloads (so that
 * tests can also build payloads that break one rule) and re-seals edited files with correct CRCs.
 */
final class BundleBuilder {

  /** One segment: where it lies in R and its payload as written. */
  static final class Seg {
    final long offset;
    final long size;
    final int dtype;
    final long channels;
    final int encoding;
    final byte[] payload;
    String name = "";

    Seg(long offset, long size, int dtype, long channels, int encoding, byte[] payload) {
      this.offset = offset;
      this.size = size;
      this.dtype = dtype;
      this.channels = channels;
      this.encoding = encoding;
      this.payload = payload;
    }

    Seg named(String name) {
      this.name = name;
      return this;
    }
  }

  private final byte[] restored;
  private final List<Seg> segments = new ArrayList<Seg>();
  private int headerSize = Header.V1_SIZE;
  private int entrySize = Entry.V1_SIZE;
  private int minor = 0;

  BundleBuilder(byte[] restored) {
    this.restored = restored;
  }

  BundleBuilder add(Seg segment) {
    segments.add(segment);
    return this;
  }

  /**
   * A newer minor version with extra header and entry bytes (filled with 0xA5). Without it the
   * file gets the lowest minor version that defines its encodings (spec 4.1).
   */
  BundleBuilder minor(int minor, int headerSize, int entrySize) {
    this.minor = minor;
    this.headerSize = headerSize;
    this.entrySize = entrySize;
    return this;
  }

  /** Returns {skeleton, sidecar}. */
  byte[][] build() {
    ByteArrayOutputStream skeleton = new ByteArrayOutputStream();
    ByteArrayOutputStream names = new ByteArrayOutputStream();
    ByteArrayOutputStream payloads = new ByteArrayOutputStream();
    ByteBuffer table =
        ByteBuffer.allocate(segments.size() * entrySize).order(ByteOrder.LITTLE_ENDIAN);
    int r = 0;
    for (int i = 0; i < segments.size(); i++) {
      Seg s = segments.get(i);
      skeleton.write(restored, r, (int) s.offset - r);
      r = (int) (s.offset + s.size);
      byte[] name = s.name.getBytes(Charset.forName("UTF-8"));
      int e = i * entrySize;
      table.putLong(e + Entry.OFFSET, s.offset);
      table.putLong(e + Entry.SIZE, s.size);
      table.putLong(e + Entry.PAYLOAD_SIZE, s.payload.length);
      table.putInt(e + Entry.PAYLOAD_CRC32, (int) crc(s.payload, 0, s.payload.length));
      table.putInt(e + Entry.CHANNELS, (int) s.channels);
      table.putInt(e + Entry.NAME_OFFSET, names.size());
      table.putInt(e + Entry.NAME_SIZE, name.length);
      table.put(e + Entry.DTYPE, (byte) s.dtype);
      table.put(e + Entry.ENCODING, (byte) s.encoding);
      for (int k = Entry.V1_SIZE; k < entrySize; k++) {
        table.put(e + k, (byte) 0xA5);
      }
      names.write(name, 0, name.length);
      payloads.write(s.payload, 0, s.payload.length);
    }
    skeleton.write(restored, r, restored.length - r);
    byte[] skel = skeleton.toByteArray();
    ByteBuffer h = ByteBuffer.allocate(headerSize).order(ByteOrder.LITTLE_ENDIAN);
    h.position(Header.MAGIC);
    h.put(Format.MAGIC);
    h.putShort(Header.VERSION_MAJOR, (short) Format.VERSION_MAJOR);
    h.putShort(Header.VERSION_MINOR, (short) Math.max(minor, lowestMinor()));
    h.putInt(Header.HEADER_SIZE, headerSize);
    h.putInt(Header.SEGMENT_COUNT, segments.size());
    h.putInt(Header.ENTRY_SIZE, entrySize);
    h.putInt(Header.NAMES_SIZE, names.size());
    h.putLong(Header.PAYLOAD_SIZE, payloads.size());
    h.putLong(Header.RESTORED_SIZE, restored.length);
    h.putLong(Header.SKELETON_SIZE, skel.length);
    h.position(Header.RESTORED_SHA256);
    h.put(sha256(restored));
    h.position(Header.SKELETON_SHA256);
    h.put(sha256(skel));
    for (int k = Header.EXTENSION; k < Header.headerCrc32(headerSize); k++) {
      h.put(k, (byte) 0xA5);
    }
    ByteArrayOutputStream file = new ByteArrayOutputStream();
    file.write(h.array(), 0, headerSize);
    file.write(table.array(), 0, table.capacity());
    byte[] n = names.toByteArray();
    file.write(n, 0, n.length);
    byte[] p = payloads.toByteArray();
    file.write(p, 0, p.length);
    byte[] sidecar = file.toByteArray();
    reseal(sidecar);
    return new byte[][] {skel, sidecar};
  }

  /**
   * The lowest version_minor that defines every encoding the segments use (spec 4.1): 6 for
   * MASKED, else 5 for ZLIB_DICT (also as a DELTA segment's inner code), else 4 for PACKED, else 3
   * for DELTA, else 2 for a grouped one, else 1 for SPARSE_RAW, else 0 (a PACKED segment's parts
   * are not looked at).
   */
  private int lowestMinor() {
    int lowest = 0;
    for (Seg s : segments) {
      boolean deltaDict =
          s.encoding == Format.Encoding.DELTA
              && s.payload.length > 0
              && s.payload[0] == Format.Encoding.ZLIB_DICT;
      if (s.encoding == Format.Encoding.MASKED) {
        lowest = Math.max(lowest, Format.NEWEST_VERSION_MINOR);
      } else if (s.encoding == Format.Encoding.ZLIB_DICT || deltaDict) {
        lowest = Math.max(lowest, 5);
      } else if (s.encoding == Format.Encoding.PACKED) {
        lowest = Math.max(lowest, 4);
      } else if (s.encoding == Format.Encoding.DELTA) {
        lowest = Math.max(lowest, 3);
      } else if (Format.Encoding.isGrouped(s.encoding)) {
        lowest = Math.max(lowest, 2);
      } else if (s.encoding == Format.Encoding.SPARSE_RAW) {
        lowest = Math.max(lowest, 1);
      }
    }
    return lowest;
  }

  /**
   * Recomputes table_crc32 and header_crc32 from the (possibly edited) size fields. Only for files
   * whose header_size, segment_count, entry_size and names_size fit the file.
   */
  static void reseal(byte[] sidecar) {
    int headerSize = (int) LittleEndian.u32(sidecar, Header.HEADER_SIZE);
    long count = LittleEndian.u32(sidecar, Header.SEGMENT_COUNT);
    long entrySize = LittleEndian.u32(sidecar, Header.ENTRY_SIZE);
    long namesSize = LittleEndian.u32(sidecar, Header.NAMES_SIZE);
    long tableEnd = Math.min(sidecar.length, headerSize + count * entrySize + namesSize);
    putU32(sidecar, Header.TABLE_CRC32, crc(sidecar, headerSize, (int) tableEnd - headerSize));
    int headerCrc = Header.headerCrc32(headerSize);
    putU32(sidecar, headerCrc, crc(sidecar, 0, headerCrc));
  }

  /** Recomputes segment i's payload CRC, then reseals. */
  static void resealPayload(byte[] sidecar, Sidecar parsed, int i) {
    SegmentEntry s = parsed.getSegments().get(i);
    putU32(
        sidecar,
        s.fieldOffset(Entry.PAYLOAD_CRC32),
        crc(sidecar, s.getPayloadOffset(), s.getPayloadSize()));
    reseal(sidecar);
  }

  static void putU32(byte[] b, int p, long v) {
    for (int k = 0; k < 4; k++) {
      b[p + k] = (byte) (v >>> (8 * k));
    }
  }

  static void putU64(byte[] b, int p, long v) {
    for (int k = 0; k < 8; k++) {
      b[p + k] = (byte) (v >>> (8 * k));
    }
  }

  static long crc(byte[] b, int off, int len) {
    CRC32 c = new CRC32();
    c.update(b, off, len);
    return c.getValue();
  }

  static byte[] sha256(byte[] b) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(b);
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  // ------------------------------------------------------------------------------ payloads

  static byte[] zlib(byte[] data, int level) {
    return deflate(data, level, null);
  }

  /** A ZLIB_DICT payload (spec 7.11): {@code data} deflated with the preset dictionary. */
  static byte[] zlibDict(byte[] data, int level) {
    return deflate(data, level, SkeletonDictionary.bytes());
  }

  private static byte[] deflate(byte[] data, int level, byte[] dictionary) {
    Deflater d = new Deflater(level);
    if (dictionary != null) {
      d.setDictionary(dictionary);
    }
    d.setInput(data);
    d.finish();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    byte[] buf = new byte[4096];
    while (!d.finished()) {
      out.write(buf, 0, d.deflate(buf));
    }
    d.end();
    return out.toByteArray();
  }

  /**
   * Code lengths with the format's Kraft sum 1 - 2^-L for the symbols that occur: with n used
   * symbols and L = ceil(log2(n + 1)), 2^L - 1 - n of them get L - 1 bits and the rest L bits.
   */
  static int[] lengthsFor(int[] symbols) {
    int alphabet = 0;
    for (int s : symbols) {
      alphabet = Math.max(alphabet, s + 1);
    }
    boolean[] used = new boolean[alphabet];
    int n = 0;
    for (int s : symbols) {
      if (!used[s]) {
        used[s] = true;
        n++;
      }
    }
    int[] lengths = new int[alphabet];
    if (n == 0) {
      return lengths;
    }
    int maxLength = 32 - Integer.numberOfLeadingZeros(n); // ceil(log2(n + 1))
    int shorter = (1 << maxLength) - 1 - n;
    for (int s = 0; s < alphabet; s++) {
      if (used[s]) {
        lengths[s] = shorter-- > 0 ? maxLength - 1 : maxLength;
      }
    }
    return lengths;
  }

  /** A HuffmanStream (format spec section 6) of {@code symbols} under {@code lengths}. */
  static byte[] stream(int[] lengths, int[] symbols) {
    return stream(lengths, symbols, false);
  }

  /**
   * A HuffmanStream of {@code symbols} under {@code lengths}: with the header of section 6, or
   * when {@code compact} that of 6.5 (inside a PACKED part).
   */
  static byte[] stream(int[] lengths, int[] symbols, boolean compact) {
    if (symbols.length == 0) {
      return compact ? new byte[3] : new byte[Stream.FIXED_SIZE];
    }
    HuffmanCode code;
    try {
      code = HuffmanCode.fromLengths(lengths);
    } catch (BundleFormatException e) {
      throw new AssertionError(e);
    }
    long nbits = 0;
    for (int s : symbols) {
      nbits += lengths[s];
    }
    byte[] data = new byte[(int) ((nbits + 7) / 8)];
    long bit = 0;
    for (int s : symbols) {
      int len = lengths[s];
      int c = code.codeword(s);
      for (int k = len - 1; k >= 0; k--, bit++) {
        if (((c >>> k) & 1) != 0) {
          data[(int) (bit >>> 3)] |= (byte) (1 << (bit & 7));
        }
      }
    }
    return compact
        ? compactStreamBytes(lengths, symbols.length, nbits, data)
        : streamBytes(lengths, symbols.length, nbits, data);
  }

  /**
   * The bytes of a HuffmanStream with the compact header of spec 6.5: varints count, nbits and
   * alphabet = {@code lengths.length}, then the lengths and the data as in {@link #streamBytes}.
   */
  static byte[] compactStreamBytes(int[] lengths, long count, long nbits, byte[] data) {
    byte[] plain = streamBytes(lengths, count, nbits, data);
    return concat(
        varint(count),
        varint(nbits),
        varint(lengths.length),
        Arrays.copyOfRange(plain, Stream.LENGTHS, plain.length));
  }

  /** The minimal unsigned LEB128 bytes of {@code value} >= 0 (spec section 2). */
  static byte[] varint(long value) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    while ((value & ~0x7FL) != 0) {
      out.write((int) (value & 0x7F) | 0x80);
      value >>>= 7;
    }
    out.write((int) value);
    return out.toByteArray();
  }

  /**
   * A PACKED payload (spec 7.10) of {@code parts} in order: part_count, each part's descriptor
   * (size, dtype, encoding, channels, payload_size; the part's offset is not stored), then
   * their payloads. The parts' payloads must use compact stream headers.
   */
  static byte[] packed(List<Seg> parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    byte[] count = varint(parts.size());
    out.write(count, 0, count.length);
    for (Seg part : parts) {
      byte[] d =
          concat(
              varint(part.size),
              bytes(part.dtype, part.encoding),
              varint(part.channels),
              varint(part.payload.length));
      out.write(d, 0, d.length);
    }
    for (Seg part : parts) {
      out.write(part.payload, 0, part.payload.length);
    }
    return out.toByteArray();
  }

  /** Gaps of at least this many bytes become ZLIB parts in {@link #packedSegment}, others RAW. */
  static final int ZLIB_GAP = 16;

  /**
   * A PACKED segment over {@code restored[from, to)}: its parts are {@code segments} (sorted,
   * inside the range, payloads with compact stream headers) and each non-empty gap between them,
   * a part of dtype bytes coded ZLIB when it has at least {@link #ZLIB_GAP} bytes, else RAW.
   */
  static Seg packedSegment(byte[] restored, List<Seg> segments, long from, long to) {
    List<Seg> parts = new ArrayList<Seg>();
    long r = from;
    for (int i = 0; i <= segments.size(); i++) {
      long next = i < segments.size() ? segments.get(i).offset : to;
      if (next > r) {
        byte[] gap = Arrays.copyOfRange(restored, (int) r, (int) next);
        boolean zlib = gap.length >= ZLIB_GAP;
        parts.add(
            new Seg(
                r, gap.length, Format.Dtype.BYTES, 1,
                zlib ? Format.Encoding.ZLIB : Format.Encoding.RAW, zlib ? zlib(gap, 9) : gap));
      }
      if (i < segments.size()) {
        parts.add(segments.get(i));
        r = segments.get(i).offset + segments.get(i).size;
      }
    }
    return new Seg(from, to - from, Format.Dtype.BYTES, 1, Format.Encoding.PACKED, packed(parts));
  }

  /**
   * The bytes of a HuffmanStream (spec section 6) with the given fields: count, nbits, alphabet =
   * {@code lengths.length}, the lengths two per byte (low nibble first), the coded data.
   */
  static byte[] streamBytes(int[] lengths, long count, long nbits, byte[] data) {
    int lengthsSize = Stream.lengthsSize(lengths.length);
    ByteBuffer b =
        ByteBuffer.allocate(Stream.LENGTHS + lengthsSize + data.length)
            .order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(Stream.COUNT, count);
    b.putLong(Stream.NBITS, nbits);
    b.putShort(Stream.ALPHABET, (short) lengths.length);
    b.position(Stream.LENGTHS);
    for (int s = 0; s < lengths.length; s += 2) {
      int hi = s + 1 < lengths.length ? lengths[s + 1] : 0;
      b.put((byte) (lengths[s] | hi << 4));
    }
    b.put(data);
    return b.array();
  }

  static byte[] stream(int[] symbols) {
    return stream(lengthsFor(symbols), symbols);
  }

  static byte[] stream(int[] symbols, boolean compact) {
    return stream(lengthsFor(symbols), symbols, compact);
  }

  /** Codebooks (7.3): entry counts, then the entries' bytes. */
  static byte[] codebooks(int[] entryCounts, byte[] entries) {
    ByteBuffer b =
        ByteBuffer.allocate(
                Clustered.ENTRY_COUNTS + Clustered.COUNT_SIZE * entryCounts.length
                    + entries.length)
            .order(ByteOrder.LITTLE_ENDIAN);
    b.putShort(Clustered.CODEBOOK_COUNT, (short) entryCounts.length);
    b.position(Clustered.ENTRY_COUNTS);
    for (int k : entryCounts) {
      b.putShort((short) k);
    }
    b.put(entries);
    return b.array();
  }

  static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (byte[] p : parts) {
      out.write(p, 0, p.length);
    }
    return out.toByteArray();
  }

  /**
   * Clusters the elements of {@code raw} (esize bytes each) into per-book codebooks and returns a
   * CLUSTERED_DENSE or CLUSTERED_SPARSE payload (spec 7.3 to 7.5), or null if a codebook would
   * exceed 256 entries. A sparse payload's background is each book's most frequent value (ties:
   * the smallest bit pattern, as unsigned), which is left out of the codebook.
   */
  static byte[] clustered(byte[] raw, int esize, int books, boolean sparse, int escapeRun) {
    return clustered(raw, esize, books, sparse, escapeRun, false);
  }

  /** As above; with {@code compact}, the streams have the header of spec 6.5 (a PACKED part). */
  static byte[] clustered(
      byte[] raw, int esize, int books, boolean sparse, int escapeRun, boolean compact) {
    int[] identity = new int[books];
    for (int c = 0; c < books; c++) {
      identity[c] = c;
    }
    return encode(raw, esize, identity, books, false, sparse, escapeRun, compact);
  }

  /**
   * Encodes {@code raw} (esize bytes each, {@code map.length} channels) as a GROUPED_DENSE or
   * GROUPED_SPARSE payload (spec 7.8): channel c uses codebook {@code map[c]} of {@code groups}
   * (every {@code map[c] < groups}; a codebook no channel uses is written empty). Each codebook
   * holds the values of the channels that use it, a sparse one without its background: the most
   * frequent value of those channels (ties: the smallest bit pattern, as unsigned). Returns null
   * if a codebook would exceed 256 entries.
   */
  static byte[] grouped(
      byte[] raw, int esize, int[] map, int groups, boolean sparse, int escapeRun) {
    return grouped(raw, esize, map, groups, sparse, escapeRun, false);
  }

  /** As above; with {@code compact}, the streams have the header of spec 6.5 (a PACKED part). */
  static byte[] grouped(
      byte[] raw, int esize, int[] map, int groups, boolean sparse, int escapeRun,
      boolean compact) {
    return encode(raw, esize, map, groups, true, sparse, escapeRun, compact);
  }

  /**
   * The clustered (7.3 to 7.5) or grouped (7.8) payload of {@code raw}: element p lies in slice
   * {@code p / (elements / slices)} with {@code slices = bookOf.length}, and slice s uses codebook
   * {@code bookOf[s]} of {@code books}. A grouped payload writes {@code bookOf} as its
   * codebook_map after the codebooks.
   */
  private static byte[] encode(
      byte[] raw, int esize, int[] bookOf, int books, boolean grouped, boolean sparse,
      int escapeRun, boolean compact) {
    int elements = raw.length / esize;
    int slices = bookOf.length;
    int perSlice = slices == 0 ? 0 : elements / slices;
    long[] values = elements(raw, esize);
    long[] background = sparse ? mostFrequent(values, bookOf, books) : new long[books];
    List<List<Long>> bookValues = new ArrayList<List<Long>>();
    for (int c = 0; c < books; c++) {
      bookValues.add(new ArrayList<Long>());
    }
    int[] symbols = new int[elements];
    boolean[] emitted = new boolean[elements];
    int count = 0;
    for (int p = 0; p < elements; p++) {
      int c = bookOf[p / perSlice];
      if (sparse && values[p] == background[c]) {
        continue;
      }
      emitted[p] = true;
      List<Long> book = bookValues.get(c);
      int k = book.indexOf(values[p]);
      if (k < 0) {
        book.add(values[p]);
        k = book.size() - 1;
      }
      symbols[count++] = k;
    }
    int[] counts = new int[books];
    ByteArrayOutputStream entries = new ByteArrayOutputStream();
    for (int c = 0; c < books; c++) {
      List<Long> book = bookValues.get(c);
      if (book.size() > 256) {
        return null;
      }
      counts[c] = book.size();
      for (long v : book) {
        for (int j = 0; j < esize; j++) {
          entries.write((int) (v >>> (8 * j)));
        }
      }
    }
    byte[] head = codebooks(counts, entries.toByteArray());
    if (grouped) {
      head = concat(head, stream(bookOf, compact));
    }
    if (!sparse) {
      return concat(head, stream(symbols, compact));
    }
    return concat(
        head,
        patterns(background, esize),
        new byte[] {(byte) escapeRun},
        stream(gapSymbols(emitted, escapeRun), compact),
        stream(Arrays.copyOf(symbols, count), compact));
  }

  /**
   * A SPARSE_RAW payload (spec 7.6) of {@code raw} (esize bytes each) with {@code slices}
   * backgrounds (1, or the segment's channels): each slice's most frequent value (ties: the
   * smallest bit pattern, as unsigned), as for CLUSTERED_SPARSE. Every other element is emitted
   * with its bytes as they are.
   */
  static byte[] sparseRaw(byte[] raw, int esize, int slices, int escapeRun) {
    return sparseRaw(raw, esize, slices, escapeRun, false);
  }

  /** As above; with {@code compact}, the gap stream has the header of spec 6.5. */
  static byte[] sparseRaw(byte[] raw, int esize, int slices, int escapeRun, boolean compact) {
    int[] own = new int[slices];
    for (int c = 0; c < slices; c++) {
      own[c] = c;
    }
    return sparseRaw(
        raw, esize, mostFrequent(elements(raw, esize), own, slices), escapeRun, compact);
  }

  /**
   * A SPARSE_RAW payload (spec 7.6) with the given background of each slice (slice_count =
   * {@code background.length}): any pattern is valid, also one its slice never holds (then all of
   * the slice is emitted). Layout: u16 slice_count, the backgrounds, u8 escape_run, the gap stream
   * of the emitted positions (7.4), then the emitted elements' bytes in position order.
   */
  static byte[] sparseRaw(byte[] raw, int esize, long[] background, int escapeRun) {
    return sparseRaw(raw, esize, background, escapeRun, false);
  }

  /** As above; with {@code compact}, the gap stream has the header of spec 6.5. */
  static byte[] sparseRaw(
      byte[] raw, int esize, long[] background, int escapeRun, boolean compact) {
    int elements = raw.length / esize;
    int perSlice = elements / background.length;
    long mask = esize == 8 ? -1L : (1L << (8 * esize)) - 1; // only esize bytes are written
    boolean[] emitted = new boolean[elements];
    ByteArrayOutputStream values = new ByteArrayOutputStream();
    for (int p = 0; p < elements; p++) {
      if (element(raw, p * esize, esize) != (background[p / perSlice] & mask)) {
        emitted[p] = true;
        values.write(raw, p * esize, esize);
      }
    }
    return concat(
        new byte[] {(byte) background.length, (byte) (background.length >>> 8)},
        patterns(background, esize),
        new byte[] {(byte) escapeRun},
        stream(gapSymbols(emitted, escapeRun), compact),
        values.toByteArray());
  }

  /**
   * The gap symbols (spec 7.4) of the {@code emitted} positions: a run of r background elements
   * before an emitted one is floor(r/E) escapes (symbol 0), then symbol (r mod E) + 1; the
   * background after the last emitted element needs no symbol (a final escape is invalid).
   */
  static int[] gapSymbols(boolean[] emitted, int escapeRun) {
    List<Integer> gaps = new ArrayList<Integer>();
    int run = 0;
    for (boolean e : emitted) {
      if (!e) {
        run++;
        continue;
      }
      for (; run >= escapeRun; run -= escapeRun) {
        gaps.add(0);
      }
      gaps.add(run + 1);
      run = 0;
    }
    int[] g = new int[gaps.size()];
    for (int i = 0; i < g.length; i++) {
      g[i] = gaps.get(i);
    }
    return g;
  }

  /**
   * The most frequent of {@code values} in each of {@code books}, where element p counts for book
   * {@code bookOf[p / (values.length / bookOf.length)]}; ties: the smallest bit pattern, as
   * unsigned. A book without elements gets 0.
   */
  private static long[] mostFrequent(long[] values, int[] bookOf, int books) {
    int perSlice = bookOf.length == 0 ? 0 : values.length / bookOf.length;
    List<java.util.Map<Long, Integer>> counts = new ArrayList<java.util.Map<Long, Integer>>();
    for (int c = 0; c < books; c++) {
      counts.add(new java.util.HashMap<Long, Integer>());
    }
    for (int p = 0; p < values.length; p++) {
      java.util.Map<Long, Integer> book = counts.get(bookOf[p / perSlice]);
      Integer n = book.get(values[p]);
      book.put(values[p], n == null ? 1 : n + 1);
    }
    long[] background = new long[books];
    for (int c = 0; c < books; c++) {
      int best = -1;
      for (java.util.Map.Entry<Long, Integer> e : counts.get(c).entrySet()) {
        if (e.getValue() > best
            || (e.getValue() == best && Long.compareUnsigned(e.getKey(), background[c]) < 0)) {
          best = e.getValue();
          background[c] = e.getKey();
        }
      }
    }
    return background;
  }

  /** The elements of {@code raw} (esize bytes each, little-endian) as unsigned integers. */
  private static long[] elements(byte[] raw, int esize) {
    long[] values = new long[raw.length / esize];
    for (int p = 0; p < values.length; p++) {
      values[p] = element(raw, p * esize, esize);
    }
    return values;
  }

  /** {@code values} as esize-byte little-endian bit patterns, back to back. */
  private static byte[] patterns(long[] values, int esize) {
    byte[] out = new byte[values.length * esize];
    for (int i = 0; i < values.length; i++) {
      putElement(out, i * esize, esize, values[i]);
    }
    return out;
  }

  /**
   * The differences of {@code raw}'s elements (esize bytes each, little-endian, unsigned):
   * d_0 = e_0 and d_k = e_k - e_(k-1) mod 2^(8·esize), so that their running sums are the
   * elements (spec 7.9).
   */
  static byte[] differences(byte[] raw, int esize) {
    byte[] out = new byte[raw.length];
    long previous = 0;
    for (int p = 0; p < raw.length; p += esize) {
      long e = element(raw, p, esize);
      putElement(out, p, esize, e - previous);
      previous = e;
    }
    return out;
  }

  /** The running sums of {@code d}'s elements modulo 2^(8·esize): the inverse of differences. */
  static byte[] runningSums(byte[] d, int esize) {
    byte[] out = new byte[d.length];
    long sum = 0;
    for (int p = 0; p < d.length; p += esize) {
      sum += element(d, p, esize);
      putElement(out, p, esize, sum);
    }
    return out;
  }

  /** A DELTA payload (spec 7.9): {@code innerEncoding}, then {@code inner}, its payload. */
  static byte[] delta(int innerEncoding, byte[] inner) {
    return concat(new byte[] {(byte) innerEncoding}, inner);
  }

  // ------------------------------------------------------------------ MASKED (spec 7.12)

  /**
   * A MASKED payload (spec 7.12) with the given fields: {@code fill} (esize bytes), the two masks'
   * bytes, {@code innerEncoding}, then {@code inner}, the kept submatrix's payload.
   */
  static byte[] masked(
      byte[] fill, byte[] rowMask, byte[] columnMask, int innerEncoding, byte[] inner) {
    return concat(fill, rowMask, columnMask, new byte[] {(byte) innerEncoding}, inner);
  }

  /** The bytes of a mask (spec 7.12): bit c of {@code kept} in byte c / 8, low bit first. */
  static byte[] mask(boolean[] kept) {
    byte[] out = new byte[(kept.length + 7) / 8];
    for (int c = 0; c < kept.length; c++) {
      if (kept[c]) {
        out[c >>> 3] |= (byte) (1 << (c & 7));
      }
    }
    return out;
  }

  /**
   * The rows and columns of {@code raw} (esize bytes each, read as {@code channels} rows) that
   * hold any element other than {@code fill}'s bit pattern: {@code {rows, columns}}, as the
   * reference encoder keeps them (spec 13).
   */
  static boolean[][] kept(byte[] raw, int esize, int channels, long fill) {
    int elements = raw.length / esize;
    int columns = elements / channels;
    long pattern = esize == 8 ? fill : fill & ((1L << (8 * esize)) - 1);
    boolean[] rows = new boolean[channels];
    boolean[] cols = new boolean[columns];
    for (int p = 0; p < elements; p++) {
      if (element(raw, p * esize, esize) != pattern) {
        rows[p / columns] = true;
        cols[p % columns] = true;
      }
    }
    return new boolean[][] {rows, cols};
  }

  /** The kept submatrix of {@code raw} (spec 7.12): the elements of the kept rows and columns. */
  static byte[] submatrix(byte[] raw, int esize, boolean[] rows, boolean[] columns) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (int c = 0; c < rows.length; c++) {
      for (int j = 0; j < columns.length; j++) {
        if (rows[c] && columns[j]) {
          out.write(raw, (c * columns.length + j) * esize, esize);
        }
      }
    }
    return out.toByteArray();
  }

  /**
   * The segment of a kept submatrix (spec 7.12): {@code rows.length} rows by {@code
   * columns.length} columns, {@code sub}'s elements at the kept rows and columns in row-major
   * order, {@code fill}'s bit pattern everywhere else.
   */
  static byte[] scatter(byte[] sub, int esize, boolean[] rows, boolean[] columns, long fill) {
    byte[] out = new byte[rows.length * columns.length * esize];
    int k = 0;
    for (int c = 0; c < rows.length; c++) {
      for (int j = 0; j < columns.length; j++) {
        int at = (c * columns.length + j) * esize;
        if (rows[c] && columns[j]) {
          System.arraycopy(sub, k, out, at, esize);
          k += esize;
        } else {
          putElement(out, at, esize, fill);
        }
      }
    }
    return out;
  }

  /** The number of true values of {@code kept}. */
  static int count(boolean[] kept) {
    int n = 0;
    for (boolean k : kept) {
      n += k ? 1 : 0;
    }
    return n;
  }

  /**
   * A payload of {@code encoding} (one of the inner codes 0 ... 6 and 9) for {@code raw} as a
   * segment of {@code channels} channels, as the builder writes each: ZLIB level 9; per-channel
   * codebooks for the clustered encodings, escape_run 3; one background per channel for
   * SPARSE_RAW, escape_run 4; the grouped encodings with channel c in group c mod 2. With {@code
   * compact}, the streams have the header of spec 6.5. Null if a codebook would exceed 256
   * entries.
   */
  static byte[] encode(int encoding, byte[] raw, int esize, int channels, boolean compact) {
    switch (encoding) {
      case Format.Encoding.RAW:
        return raw;
      case Format.Encoding.ZLIB:
        return zlib(raw, 9);
      case Format.Encoding.ZLIB_DICT:
        return zlibDict(raw, 9);
      case Format.Encoding.CLUSTERED_SPARSE:
      case Format.Encoding.CLUSTERED_DENSE:
        return clustered(
            raw, esize, channels, encoding == Format.Encoding.CLUSTERED_SPARSE, 3, compact);
      case Format.Encoding.SPARSE_RAW:
        return sparseRaw(raw, esize, channels, 4, compact);
      case Format.Encoding.GROUPED_SPARSE:
      case Format.Encoding.GROUPED_DENSE:
        int[] map = new int[channels];
        for (int c = 0; c < channels; c++) {
          map[c] = c % 2;
        }
        return grouped(
            raw, esize, map, Math.min(channels, 2), encoding == Format.Encoding.GROUPED_SPARSE, 3,
            compact);
      default:
        throw new IllegalArgumentException("not an inner encoding: " + encoding);
    }
  }

  /**
   * The MASKED payload (spec 7.12) of {@code raw} (esize bytes each, {@code channels} rows) with
   * {@code fill}: the rows and columns that hold another value are kept ({@link #kept}), and the
   * submatrix is coded with {@code inner} ({@link #encode}, with {@code channels} = the kept rows).
   * Null if nothing is kept or a codebook would exceed 256 entries.
   */
  static byte[] masked(
      byte[] raw, int esize, int channels, long fill, int inner, boolean compact) {
    boolean[][] kept = kept(raw, esize, channels, fill);
    int r = count(kept[0]);
    if (r == 0) {
      return null;
    }
    byte[] sub = submatrix(raw, esize, kept[0], kept[1]);
    byte[] payload = encode(inner, sub, esize, r, compact);
    if (payload == null) {
      return null;
    }
    byte[] pattern = new byte[esize];
    putElement(pattern, 0, esize, fill);
    return masked(pattern, mask(kept[0]), mask(kept[1]), inner, payload);
  }

  private static long element(byte[] b, int p, int esize) {
    long v = 0;
    for (int j = 0; j < esize; j++) {
      v |= (b[p + j] & 0xFFL) << (8 * j);
    }
    return v;
  }

  private static void putElement(byte[] b, int p, int esize, long v) {
    for (int j = 0; j < esize; j++) {
      b[p + j] = (byte) (v >>> (8 * j));
    }
  }

  static byte[] bytes(int... values) {
    byte[] b = new byte[values.length];
    for (int i = 0; i < values.length; i++) {
      b[i] = (byte) values[i];
    }
    return b;
  }

  static String hex(byte[] b) {
    return Sidecar.hex(b);
  }

  static byte[] copy(byte[] b) {
    return Arrays.copyOf(b, b.length);
  }
}
