package dev.kerasdc.bundle;

import static dev.kerasdc.bundle.BundleBuilder.concat;
import static dev.kerasdc.bundle.BundleBuilder.copy;
import static dev.kerasdc.bundle.BundleBuilder.putU32;
import static dev.kerasdc.bundle.BundleBuilder.putU64;
import static dev.kerasdc.bundle.BundleBuilder.reseal;
import static dev.kerasdc.bundle.BundleBuilder.stream;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.kerasdc.bundle.Format.Clustered;
import dev.kerasdc.bundle.Format.Dtype;
import dev.kerasdc.bundle.Format.Encoding;
import dev.kerasdc.bundle.Format.Entry;
import dev.kerasdc.bundle.Format.Header;
import dev.kerasdc.bundle.Format.Stream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.Deflater;
import org.junit.jupiter.api.Test;

/**
 * One test per check of the format spec's section 10 (in its order), each asserting the field
 * and offset the error names; then the encoding rules of sections 6 and 7 on hand-made payloads.
 */
final class MalformedInputTest {
  private static final int HEADER = Header.V1_SIZE;
  private static final int ENTRY = Entry.V1_SIZE;
  /** Offset of header_crc32 in a version 1.0 header. */
  private static final int HEADER_CRC32 = Header.headerCrc32(HEADER);

  private final Fixtures.Bundle bundle = Fixtures.everyEncoding();

  private static int entry(int i) {
    return HEADER + ENTRY * i;
  }

  /** Offset of the coded data in a HuffmanStream of {@code alphabet} symbols. */
  private static int dataAt(int alphabet) {
    return Stream.LENGTHS + Stream.lengthsSize(alphabet);
  }

  private static BundleFormatException rejects(
      String field, long offset, byte[] skeleton, byte[] sidecar) {
    return rejects(field, offset, skeleton, sidecar, new BundleRestorer());
  }

  private static BundleFormatException rejects(
      String field, long offset, byte[] skeleton, byte[] sidecar, BundleRestorer restorer) {
    BundleFormatException e =
        assertThrows(BundleFormatException.class, () -> restorer.restore(skeleton, sidecar));
    assertEquals(field, e.getField(), e.getMessage());
    assertEquals(offset, e.getOffset(), e.getMessage());
    return e;
  }

  private BundleFormatException rejectsSidecar(String field, long offset, byte[] sidecar) {
    return rejects(field, offset, bundle.skeleton, sidecar);
  }

  private byte[] sidecar() {
    return copy(bundle.sidecar);
  }

  @Test
  void fixtureRestores() throws Exception {
    assertArrayEquals(
        bundle.restored, new BundleRestorer().restore(bundle.skeleton, bundle.sidecar));
  }

  // ----------------------------------------------------------------------- checks 1 to 18

  @Test
  void check01Magic() {
    rejectsSidecar("magic", Header.MAGIC, new byte[Header.PREFIX_SIZE - 1]);
    rejectsSidecar("magic", Header.MAGIC, new byte[0]);
    byte[] s = sidecar();
    s[Header.MAGIC + 3] = 'X';
    rejectsSidecar("magic", Header.MAGIC, s);
  }

  @Test
  void check02VersionMajor() {
    byte[] s = sidecar();
    s[Header.VERSION_MAJOR] = 2;
    s[HEADER_CRC32] ^= 1; // also a bad header CRC: the earlier check wins
    rejectsSidecar("version_major", Header.VERSION_MAJOR, s);
  }

  @Test
  void check03HeaderSize() {
    for (long value : new long[] {0, Header.MIN_SIZE - 1, Header.MAX_SIZE + 1, 0xFFFFFFFFL}) {
      byte[] s = sidecar();
      putU32(s, Header.HEADER_SIZE, value);
      rejectsSidecar("header_size", Header.HEADER_SIZE, s);
    }
    byte[] s = sidecar();
    putU32(s, Header.HEADER_SIZE, s.length + 1);
    rejectsSidecar("header_size", Header.HEADER_SIZE, s);
    // A header that is the whole file is not rejected here (later checks fail instead).
    rejectsSidecar("header_size", Header.HEADER_SIZE, copyOf(sidecar(), Header.MIN_SIZE - 1));
  }

  @Test
  void check04HeaderCrc() {
    byte[] s = sidecar();
    s[Header.RESTORED_SHA256 + 12] ^= 0x10;
    rejectsSidecar("header_crc32", HEADER_CRC32, s);
  }

  @Test
  void check05EntrySize() {
    for (long value : new long[] {Entry.MIN_SIZE - 1, Entry.MAX_SIZE + 1, 0}) {
      byte[] s = sidecar();
      putU32(s, Header.ENTRY_SIZE, value);
      reseal(s);
      rejectsSidecar("entry_size", Header.ENTRY_SIZE, s);
    }
  }

  @Test
  void check06RestoredSize() {
    for (long value : new long[] {1L << 31, Long.MAX_VALUE, -1L}) {
      byte[] s = sidecar();
      putU64(s, Header.RESTORED_SIZE, value);
      reseal(s);
      rejectsSidecar("restored_size", Header.RESTORED_SIZE, s);
    }
    // The reader's own, lower limit.
    rejects(
        "restored_size",
        Header.RESTORED_SIZE,
        bundle.skeleton,
        bundle.sidecar,
        new BundleRestorer(bundle.restored.length - 1));
  }

  @Test
  void check07SegmentCount() {
    byte[] s = sidecar();
    putU32(s, Header.SEGMENT_COUNT, 0xFFFFFFFFL);
    reseal(s);
    rejectsSidecar("segment_count", Header.SEGMENT_COUNT, s);
  }

  @Test
  void check08NamesSize() {
    byte[] s = sidecar();
    putU32(s, Header.NAMES_SIZE, 0xFFFFFFFFL);
    reseal(s);
    rejectsSidecar("names_size", Header.NAMES_SIZE, s);
  }

  @Test
  void check09PayloadSize() {
    for (long delta : new long[] {1, -1, Long.MIN_VALUE}) {
      byte[] s = sidecar();
      putU64(s, Header.PAYLOAD_SIZE, LittleEndian.u64(s, Header.PAYLOAD_SIZE) + delta);
      reseal(s);
      rejectsSidecar("payload_size", Header.PAYLOAD_SIZE, s);
    }
  }

  @Test
  void check10TableCrc() {
    byte[] s = sidecar();
    s[entry(1) + Entry.OFFSET + 3] ^= 1; // the header (and its CRC) is unchanged
    rejectsSidecar("table_crc32", Header.TABLE_CRC32, s);
  }

  @Test
  void check11EntryFields() {
    int e = entry(2);
    byte[] s = sidecar();
    s[e + Entry.DTYPE] = (byte) Dtype.ESIZES.length; // the first unknown code
    s[e + Entry.ENCODING] = (byte) (Encoding.NAMES.length + 5);
    reseal(s);
    rejectsSidecar("segment[2].dtype", e + Entry.DTYPE, s);

    s = sidecar();
    s[e + Entry.ENCODING] = (byte) Encoding.NAMES.length;
    reseal(s);
    rejectsSidecar("segment[2].encoding", e + Entry.ENCODING, s);

    s = sidecar();
    s[e + Entry.RESERVED + Entry.RESERVED_SIZE - 1] = 1;
    reseal(s);
    rejectsSidecar("segment[2].reserved", e + Entry.RESERVED, s);

    s = sidecar();
    putU32(s, e + Entry.CHANNELS, 0);
    reseal(s);
    rejectsSidecar("segment[2].channels", e + Entry.CHANNELS, s);

    s = sidecar();
    putU64(s, e + Entry.SIZE, 2404); // not a multiple of 2 channels x 4 bytes
    reseal(s);
    rejectsSidecar("segment[2].size", e + Entry.SIZE, s);

    s = sidecar();
    // Overlaps segment 0.
    putU64(s, entry(1) + Entry.OFFSET, LittleEndian.u64(s, entry(0) + Entry.OFFSET) + 8);
    reseal(s);
    rejectsSidecar("segment[1].offset", entry(1) + Entry.OFFSET, s);

    for (long size : new long[] {1L << 40, -8L}) {
      s = sidecar();
      putU64(s, entry(3) + Entry.SIZE, size);
      reseal(s);
      rejectsSidecar("segment[3].size", entry(3) + Entry.SIZE, s);
    }

    s = sidecar();
    int payloadSize = entry(3) + Entry.PAYLOAD_SIZE;
    putU64(s, payloadSize, LittleEndian.u64(s, payloadSize) + 1);
    reseal(s);
    rejectsSidecar("segment[3].payload_size", payloadSize, s);

    s = sidecar();
    // The name starts at the end of the name table.
    putU32(s, entry(0) + Entry.NAME_OFFSET, LittleEndian.u32(s, Header.NAMES_SIZE));
    reseal(s);
    rejectsSidecar("segment[0].name_offset", entry(0) + Entry.NAME_OFFSET, s);

    s = sidecar();
    putU32(s, entry(0) + Entry.NAME_SIZE, 0xFFFFFFFFL);
    reseal(s);
    rejectsSidecar("segment[0].name_offset", entry(0) + Entry.NAME_OFFSET, s);

    s = sidecar();
    // The name table follows the 4 entries.
    int nameAt = entry(4) + (int) LittleEndian.u32(s, entry(3) + Entry.NAME_OFFSET);
    s[nameAt + 7] = (byte) 0xC3; // "sparse \u00e9": an 0xC3 0xA9 pair becomes 0xC3 0xC3
    s[nameAt + 8] = (byte) 0xC3;
    reseal(s);
    rejectsSidecar("segment[3].name_offset", entry(3) + Entry.NAME_OFFSET, s);
  }

  @Test
  void check12PayloadSum() {
    byte[] s = sidecar();
    int payloadSize = entry(3) + Entry.PAYLOAD_SIZE;
    putU64(s, payloadSize, LittleEndian.u64(s, payloadSize) - 1);
    reseal(s);
    rejectsSidecar("payload_size", Header.PAYLOAD_SIZE, s);
  }

  @Test
  void check13SkeletonSize() {
    byte[] s = sidecar();
    putU64(s, Header.SKELETON_SIZE, LittleEndian.u64(s, Header.SKELETON_SIZE) + 1);
    reseal(s);
    rejectsSidecar("skeleton_size", Header.SKELETON_SIZE, s);
  }

  @Test
  void check14SkeletonLength() {
    byte[] k = bundle.skeleton;
    rejects("skeleton_size", Header.SKELETON_SIZE, copyOf(k, k.length - 1), bundle.sidecar);
    rejects("skeleton_size", Header.SKELETON_SIZE, copyOf(k, k.length + 1), bundle.sidecar);
  }

  @Test
  void check15SkeletonHash() {
    byte[] k = copy(bundle.skeleton);
    k[k.length / 2] ^= 0x40;
    rejects("skeleton_sha256", Header.SKELETON_SHA256, k, bundle.sidecar);
  }

  @Test
  void check16PayloadCrc() throws Exception {
    Sidecar parsed = Sidecar.parse(bundle.sidecar);
    for (int i = 0; i < 4; i++) {
      byte[] s = sidecar();
      SegmentEntry segment = parsed.getSegments().get(i);
      s[segment.getPayloadOffset() + segment.getPayloadSize() - 1] ^= 1;
      rejectsSidecar("segment[" + i + "].payload_crc32", entry(i) + Entry.PAYLOAD_CRC32, s);
    }
  }

  @Test
  void check18RestoredHash() {
    byte[] s = sidecar();
    s[Header.RESTORED_SHA256 + 2] ^= 1;
    reseal(s);
    rejectsSidecar("restored_sha256", Header.RESTORED_SHA256, s);
  }

  // ------------------------------------------------- check 17: the encodings' own rules

  /** Payload offset of a single-segment bundle with an empty name table. */
  private static final int PAYLOAD = HEADER + ENTRY;

  private static final byte[] FOUR_FLOATS = floats(0.5f, -2f, -2f, 0.5f);

  private static byte[] floats(float... values) {
    ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      b.putFloat(v);
    }
    return b.array();
  }

  /** A bundle of one segment at offset 3 holding {@code data}, with the given payload. */
  private static byte[][] single(
      byte[] data, int dtype, long channels, int encoding, byte[] payload) {
    byte[] restored = concat(new byte[] {7, 8, 9}, data, new byte[] {1});
    return new BundleBuilder(restored)
        .add(new BundleBuilder.Seg(3, data.length, dtype, channels, encoding, payload))
        .build();
  }

  private static void singleRejects(
      String field, long offset, byte[] data, int dtype, long channels, int encoding,
      byte[] payload) {
    byte[][] b = single(data, dtype, channels, encoding, payload);
    rejects(field, offset, b[0], b[1]);
  }

  /** Every proper prefix of {@code payload}, as the payload of {@link #single}, is rejected. */
  private static void truncationsRejected(
      byte[] data, int dtype, long channels, int encoding, byte[] payload) {
    for (int cut = 0; cut < payload.length; cut++) {
      byte[][] b = single(data, dtype, channels, encoding, copyOf(payload, cut));
      assertThrows(BundleFormatException.class, () -> new BundleRestorer().restore(b[0], b[1]));
    }
  }

  private static void singleRestores(
      byte[] data, int dtype, long channels, int encoding, byte[] payload) throws Exception {
    byte[][] b = single(data, dtype, channels, encoding, payload);
    byte[] expected = concat(new byte[] {7, 8, 9}, data, new byte[] {1});
    assertArrayEquals(expected, new BundleRestorer().restore(b[0], b[1]));
  }

  @Test
  void rawPayloadMustHoldSizeBytes() throws Exception {
    singleRestores(FOUR_FLOATS, Dtype.FLOAT32, 1, Encoding.RAW, FOUR_FLOATS);
    singleRejects(
        "segment[0].payload_size", entry(0) + Entry.PAYLOAD_SIZE, FOUR_FLOATS, Dtype.FLOAT32, 1,
        Encoding.RAW,
        copyOf(FOUR_FLOATS, 15));
    // Same length, other bytes: only the hash of R can tell.
    byte[] other = copy(FOUR_FLOATS);
    other[0] ^= 1;
    singleRejects("restored_sha256", Header.RESTORED_SHA256, FOUR_FLOATS, Dtype.FLOAT32, 1,
        Encoding.RAW, other);
  }

  @Test
  void zlibMustInflateToExactlySize() throws Exception {
    byte[] data = new byte[1000];
    for (int i = 0; i < data.length; i++) {
      data[i] = (byte) (i % 7);
    }
    byte[] good = BundleBuilder.zlib(data, 9);
    singleRestores(data, Dtype.BYTES, 1, Encoding.ZLIB, good);
    String f = "segment[0].payload";
    // Truncated (the Adler-32 is missing), at every length.
    for (int cut = 0; cut < good.length; cut++) {
      byte[][] b = single(data, Dtype.BYTES, 1, Encoding.ZLIB, copyOf(good, cut));
      BundleFormatException e =
          assertThrows(
              BundleFormatException.class, () -> new BundleRestorer().restore(b[0], b[1]));
      assertEquals(f, e.getField(), e.getMessage());
    }
    // A byte after the end of the stream.
    singleRejects(f, PAYLOAD + good.length, data, Dtype.BYTES, 1, Encoding.ZLIB,
        concat(good, new byte[1]));
    // Inflates to one byte more, and one byte less, than size.
    byte[] longer = BundleBuilder.zlib(concat(data, new byte[1]), 9);
    byte[][] b = single(data, Dtype.BYTES, 1, Encoding.ZLIB, longer);
    assertEquals(f, assertThrows(BundleFormatException.class,
        () -> new BundleRestorer().restore(b[0], b[1])).getField());
    byte[] shorter = BundleBuilder.zlib(copyOf(data, 999), 9);
    byte[][] c = single(data, Dtype.BYTES, 1, Encoding.ZLIB, shorter);
    assertEquals(f, assertThrows(BundleFormatException.class,
        () -> new BundleRestorer().restore(c[0], c[1])).getField());
    // A corrupt Adler-32.
    byte[] badSum = copy(good);
    badSum[badSum.length - 1] ^= 1;
    byte[][] d = single(data, Dtype.BYTES, 1, Encoding.ZLIB, badSum);
    assertEquals(f, assertThrows(BundleFormatException.class,
        () -> new BundleRestorer().restore(d[0], d[1])).getField());
    // A preset dictionary.
    Deflater deflater = new Deflater(9);
    deflater.setDictionary(new byte[] {0, 1, 2, 3});
    deflater.setInput(data);
    deflater.finish();
    byte[] buffer = new byte[2000];
    byte[] withDictionary = copyOf(buffer, deflater.deflate(buffer));
    deflater.end();
    singleRejects(f, PAYLOAD + 6, data, Dtype.BYTES, 1, Encoding.ZLIB, withDictionary);
    // An empty segment needs an empty zlib stream.
    singleRestores(new byte[0], Dtype.BYTES, 1, Encoding.ZLIB, BundleBuilder.zlib(new byte[0], 9));
  }

  /** Codebook [0.5, -2] and indices 0 1 1 0: symbol 0 gets 1 bit, symbol 1 gets 2 bits. */
  private static final byte[] DENSE_BOOK =
      BundleBuilder.codebooks(new int[] {2}, floats(0.5f, -2f));

  private static final int[] DENSE_SYMBOLS = {0, 1, 1, 0};

  @Test
  void denseRules() throws Exception {
    byte[] indices = stream(DENSE_SYMBOLS);
    singleRestores(FOUR_FLOATS, Dtype.FLOAT32, 1, Encoding.CLUSTERED_DENSE,
        concat(DENSE_BOOK, indices));
    String f = "segment[0].";
    int at = PAYLOAD + DENSE_BOOK.length; // the indices stream
    // codebook_count must be 1 or channels.
    byte[] p = concat(DENSE_BOOK, indices);
    p[Clustered.CODEBOOK_COUNT] = 2;
    singleRejects(f + "codebook_count", PAYLOAD + Clustered.CODEBOOK_COUNT, FOUR_FLOATS,
        Dtype.FLOAT32, 1, Encoding.CLUSTERED_DENSE, p);
    p[Clustered.CODEBOOK_COUNT] = 0;
    singleRejects(f + "codebook_count", PAYLOAD + Clustered.CODEBOOK_COUNT, FOUR_FLOATS,
        Dtype.FLOAT32, 1, Encoding.CLUSTERED_DENSE, p);
    // entry_count at most 256 ...
    p = concat(DENSE_BOOK, indices);
    p[Clustered.ENTRY_COUNTS] = 1;
    p[Clustered.ENTRY_COUNTS + 1] = 1; // 257
    singleRejects(f + "entry_count", PAYLOAD + Clustered.ENTRY_COUNTS, FOUR_FLOATS, Dtype.FLOAT32,
        1, Encoding.CLUSTERED_DENSE, p);
    // ... and its entries present.
    p = concat(DENSE_BOOK, indices);
    p[Clustered.ENTRY_COUNTS] = (byte) 200;
    int entriesAt = Clustered.ENTRY_COUNTS + Clustered.COUNT_SIZE; // after one entry_count
    singleRejects(f + "entries", PAYLOAD + entriesAt, FOUR_FLOATS, Dtype.FLOAT32, 1,
        Encoding.CLUSTERED_DENSE, p);
    // count must equal the number of elements.
    singleRejects(f + "indices.count", at, FOUR_FLOATS, Dtype.FLOAT32, 1, Encoding.CLUSTERED_DENSE,
        concat(DENSE_BOOK, stream(new int[] {0, 1, 1})));
    // An index beyond the codebook.
    singleRejects(f + "indices.data", at + dataAt(3), FOUR_FLOATS, Dtype.FLOAT32, 1,
        Encoding.CLUSTERED_DENSE,
        concat(DENSE_BOOK, stream(new int[] {0, 1, 2, 0})));
    // Bytes after the last stream.
    singleRejects(f + "payload_size", at + indices.length, FOUR_FLOATS, Dtype.FLOAT32, 1,
        Encoding.CLUSTERED_DENSE, concat(DENSE_BOOK, indices, new byte[1]));
    // A truncated payload, at every length.
    byte[] whole = concat(DENSE_BOOK, indices);
    truncationsRejected(FOUR_FLOATS, Dtype.FLOAT32, 1, Encoding.CLUSTERED_DENSE, whole);
  }

  @Test
  void huffmanStreamRules() throws Exception {
    String f = "segment[0].indices.";
    int at = PAYLOAD + DENSE_BOOK.length;
    // count 4, nbits 6, alphabet 2, lengths 0x21 (symbol 0: 1 bit, code 0; symbol 1: 2 bits,
    // code 10), data: 0 | 10 | 10 | 0 -> bits 0,1,0,1,0,0 -> 0x0A.
    byte[] good = stream(DENSE_SYMBOLS);
    assertArrayEquals(
        BundleBuilder.bytes(4, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x21, 0x0A),
        good);
    // alphabet above 256.
    byte[] s = copy(good);
    s[Stream.ALPHABET] = 1;
    s[Stream.ALPHABET + 1] = 1;
    denseRejects(f + "alphabet", at + Stream.ALPHABET, s);
    // Odd alphabet with a non-zero unused nibble: alphabet 1, lengths byte 0x21.
    s = copy(good);
    s[Stream.ALPHABET] = 1;
    denseRejects(f + "lengths", at + Stream.LENGTHS, s);
    // Lengths that break the Kraft rule: (1, 1) is a complete code.
    s = copy(good);
    s[Stream.LENGTHS] = 0x11;
    denseRejects(f + "lengths", at + Stream.LENGTHS, s);
    // nbits below count, and above 15 x count.
    s = copy(good);
    s[Stream.NBITS] = 3;
    denseRejects(f + "nbits", at + Stream.NBITS, s);
    s = copy(good);
    s[Stream.NBITS] = 61;
    denseRejects(f + "nbits", at + Stream.NBITS, s);
    // nbits far beyond the bytes present (no allocation, no overflow).
    s = copy(good);
    putU64(s, Stream.NBITS, Long.MAX_VALUE);
    putU64(s, Stream.COUNT, Long.MAX_VALUE / Stream.MAX_CODE_LENGTH + 1);
    denseRejects(f + "data", at + dataAt(2), s);
    // count above 2^63 - 1.
    s = copy(good);
    putU64(s, Stream.COUNT, -1L);
    denseRejects(f + "count", at + Stream.COUNT, s);
    // An empty stream must have nbits = 0 and alphabet = 0.
    s = copy(good);
    putU64(s, Stream.COUNT, 0);
    denseRejects(f + "nbits", at + Stream.NBITS, s);
    // Padding bits after nbits must be zero.
    s = copy(good);
    s[dataAt(2)] |= (byte) 0x80;
    denseRejects(f + "data", at + dataAt(2), s);
    // The reserved codeword (11): indices 0 1 then 11.
    // The reserved codeword 11 as the third symbol: 0 | 10 | 11 | 0 -> bits 0,1,0,1,1,0 = 0x1A.
    s = copy(good);
    s[dataAt(2)] = 0x1A;
    denseRejects(f + "data", at + dataAt(2), s);
    // With nbits 7 the four symbols end at bit 6, not at nbits.
    s = copy(good);
    s[Stream.NBITS] = 7;
    denseRejects(f + "nbits", at + Stream.NBITS, s);
  }

  private static void denseRejects(String field, long offset, byte[] indices) {
    singleRejects(field, offset, FOUR_FLOATS, Dtype.FLOAT32, 1, Encoding.CLUSTERED_DENSE,
        concat(DENSE_BOOK, indices));
  }

  @Test
  void sparseRules() throws Exception {
    // 10 float32 elements, background +0.0, emitted at 2 (0.5) and 9 (-2); escape_run 3.
    float[] v = new float[10];
    v[2] = 0.5f;
    v[9] = -2f;
    byte[] data = floats(v);
    // Gaps: run 2 -> symbol 3; run 6 -> escape (3 elements), escape, symbol 1.
    int[] gaps = {3, 0, 0, 1};
    int[] idx = {0, 1};
    byte[] zero = new byte[4];
    byte[] good = concat(DENSE_BOOK, zero, new byte[] {3}, stream(gaps), stream(idx));
    singleRestores(data, Dtype.FLOAT32, 1, Encoding.CLUSTERED_SPARSE, good);
    String f = "segment[0].";
    int backgroundAt = PAYLOAD + DENSE_BOOK.length;
    int escapeAt = backgroundAt + 4;
    int gapsAt = escapeAt + Clustered.ESCAPE_RUN_SIZE;
    int indicesAt = gapsAt + stream(gaps).length;
    // The background truncated.
    singleRejects(f + "background", backgroundAt, data, Dtype.FLOAT32, 1, Encoding.CLUSTERED_SPARSE,
        concat(DENSE_BOOK, new byte[3]));
    // escape_run 0.
    byte[] p = concat(DENSE_BOOK, zero, new byte[] {0}, stream(gaps), stream(idx));
    singleRejects(f + "escape_run", escapeAt, data, Dtype.FLOAT32, 1, Encoding.CLUSTERED_SPARSE, p);
    // Gap alphabet above escape_run + 1, checked at the stream header.
    p = concat(DENSE_BOOK, zero, new byte[] {2}, stream(gaps), stream(idx));
    singleRejects(f + "gaps.alphabet", gapsAt + Stream.ALPHABET, data, Dtype.FLOAT32, 1,
        Encoding.CLUSTERED_SPARSE, p);
    // An emitted position beyond the segment: a run of 9 before the last element.
    int[] far = {3, 0, 0, 0, 1};
    singleRejects(f + "gaps.data", gapsAt + dataAt(4) + 1, data, Dtype.FLOAT32, 1,
        Encoding.CLUSTERED_SPARSE,
        concat(DENSE_BOOK, zero, new byte[] {3}, stream(far), stream(idx)));
    // The last gap symbol must not be an escape.
    int[] trailing = {3, 0, 0, 1, 0};
    singleRejects(f + "gaps.data", gapsAt + dataAt(4) + 1, data, Dtype.FLOAT32, 1,
        Encoding.CLUSTERED_SPARSE,
        concat(DENSE_BOOK, zero, new byte[] {3}, stream(trailing), stream(idx)));
    // More indices than emitted positions, and fewer.
    singleRejects(f + "indices.count", indicesAt, data, Dtype.FLOAT32, 1, Encoding.CLUSTERED_SPARSE,
        concat(DENSE_BOOK, zero, new byte[] {3}, stream(gaps), stream(new int[] {0, 1, 1})));
    singleRejects(f + "indices.count", indicesAt, data, Dtype.FLOAT32, 1, Encoding.CLUSTERED_SPARSE,
        concat(DENSE_BOOK, zero, new byte[] {3}, stream(gaps), stream(new int[] {0})));
    // No gaps but indices.
    singleRejects(f + "indices.count", gapsAt + Stream.FIXED_SIZE, data, Dtype.FLOAT32, 1,
        Encoding.CLUSTERED_SPARSE,
        concat(DENSE_BOOK, zero, new byte[] {3}, stream(new int[0]), stream(idx)));
    // An all-background segment: both streams empty.
    singleRestores(new byte[40], Dtype.FLOAT32, 1, Encoding.CLUSTERED_SPARSE,
        concat(DENSE_BOOK, zero, new byte[] {3}, stream(new int[0]), stream(new int[0])));
    // A non-zero background: -0.0 everywhere but the emitted elements.
    float[] w = new float[10];
    java.util.Arrays.fill(w, -0.0f);
    w[2] = 0.5f;
    w[9] = -2f;
    singleRestores(floats(w), Dtype.FLOAT32, 1, Encoding.CLUSTERED_SPARSE,
        concat(DENSE_BOOK, floats(-0.0f), new byte[] {3}, stream(gaps), stream(idx)));
  }

  @Test
  void sparseRawRules() throws Exception {
    // Section 7.6: 10 float32 elements, background +0.0, emitted at 2 (0.5) and 9 (-2);
    // escape_run 3, the gaps of sparseRules, then the two values as they are.
    float[] v = new float[10];
    v[2] = 0.5f;
    v[9] = -2f;
    byte[] data = floats(v);
    int[] gaps = {3, 0, 0, 1};
    byte[] one = {1, 0}; // slice_count 1
    byte[] zero = new byte[4];
    byte[] values = floats(0.5f, -2f);
    byte[] good = concat(one, zero, new byte[] {3}, stream(gaps), values);
    singleRestores(data, Dtype.FLOAT32, 1, Encoding.SPARSE_RAW, good);
    String f = "segment[0].";
    int backgroundAt = PAYLOAD + Format.SparseRaw.BACKGROUND;
    int escapeAt = backgroundAt + 4;
    int gapsAt = escapeAt + Clustered.ESCAPE_RUN_SIZE;
    int valuesAt = gapsAt + stream(gaps).length;
    // slice_count must be 1 or channels (1 here).
    singleRejects(f + "slice_count", PAYLOAD + Format.SparseRaw.SLICE_COUNT, data, Dtype.FLOAT32,
        1, Encoding.SPARSE_RAW, concat(new byte[] {2, 0}, zero, new byte[] {3}, stream(gaps),
            values));
    // The background truncated; escape_run 0; gap alphabet above escape_run + 1.
    singleRejects(f + "background", backgroundAt, data, Dtype.FLOAT32, 1, Encoding.SPARSE_RAW,
        concat(one, new byte[3]));
    singleRejects(f + "escape_run", escapeAt, data, Dtype.FLOAT32, 1, Encoding.SPARSE_RAW,
        concat(one, zero, new byte[] {0}, stream(gaps), values));
    singleRejects(f + "gaps.alphabet", gapsAt + Stream.ALPHABET, data, Dtype.FLOAT32, 1,
        Encoding.SPARSE_RAW, concat(one, zero, new byte[] {2}, stream(gaps), values));
    // Values must be exactly present: a partial element, one missing, one extra.
    singleRejects(f + "values", valuesAt, data, Dtype.FLOAT32, 1, Encoding.SPARSE_RAW,
        copyOf(good, good.length - 1));
    singleRejects(f + "values", valuesAt, data, Dtype.FLOAT32, 1, Encoding.SPARSE_RAW,
        copyOf(good, good.length - 4));
    singleRejects(f + "values", valuesAt, data, Dtype.FLOAT32, 1, Encoding.SPARSE_RAW,
        concat(good, floats(1f)));
    // More values than elements, checked before decoding.
    singleRejects(f + "values", valuesAt, data, Dtype.FLOAT32, 1, Encoding.SPARSE_RAW,
        concat(good, new byte[4 * 9]));
    // No gaps but values.
    singleRejects(f + "values", gapsAt + Stream.FIXED_SIZE, data, Dtype.FLOAT32, 1,
        Encoding.SPARSE_RAW, concat(one, zero, new byte[] {3}, stream(new int[0]), values));
    // An emitted position beyond the segment; the last gap symbol an escape.
    singleRejects(f + "gaps.data", gapsAt + dataAt(4) + 1, data, Dtype.FLOAT32, 1,
        Encoding.SPARSE_RAW,
        concat(one, zero, new byte[] {3}, stream(new int[] {3, 0, 0, 0, 1}), values));
    singleRejects(f + "gaps.data", gapsAt + dataAt(4) + 1, data, Dtype.FLOAT32, 1,
        Encoding.SPARSE_RAW,
        concat(one, zero, new byte[] {3}, stream(new int[] {3, 0, 0, 1, 0}), values));
    // All background: no gaps, no values; and int8 with a non-zero background.
    singleRestores(new byte[40], Dtype.FLOAT32, 1, Encoding.SPARSE_RAW,
        concat(one, zero, new byte[] {3}, stream(new int[0])));
    singleRestores(new byte[] {5, 5, -3, 5, 5, 5, 9}, Dtype.INT8, 1, Encoding.SPARSE_RAW,
        concat(one, new byte[] {5}, new byte[] {4}, stream(new int[] {3, 4}), new byte[] {-3, 9}));
  }

  @Test
  void sparseRawBackgroundPerChannel() throws Exception {
    // 3 channels of 5 float32 elements; backgrounds +0.0, -0.0 and 1.0 (runs cross channels).
    float[] v = {0, 0, 3, 0, 0, -0.0f, -0.0f, -0.0f, -0.0f, 4, 1, 1, 1, 1, 1};
    byte[] data = floats(v);
    byte[] head = concat(new byte[] {3, 0}, floats(0f, -0.0f, 1f), new byte[] {4});
    singleRestores(data, Dtype.FLOAT32, 3, Encoding.SPARSE_RAW,
        concat(head, stream(new int[] {3, 0, 3}), floats(3f, 4f)));
    // Three slices need three backgrounds: two are too few.
    singleRejects("segment[0].background", PAYLOAD + Format.SparseRaw.BACKGROUND, data,
        Dtype.FLOAT32, 3, Encoding.SPARSE_RAW, concat(new byte[] {3, 0}, floats(0f, -0.0f)));
  }

  @Test
  void backgroundPerChannel() throws Exception {
    // 3 channels of 5 float32 elements; backgrounds +0.0, -0.0 and 1.0 (runs cross channels).
    float[] v = {0, 0, 3, 0, 0, -0.0f, -0.0f, -0.0f, -0.0f, 4, 1, 1, 1, 1, 1};
    byte[] data = floats(v);
    byte[] books =
        BundleBuilder.codebooks(new int[] {1, 1, 0}, floats(3f, 4f));
    byte[] backgrounds = floats(0f, -0.0f, 1f);
    // Emitted: 2 (channel 0) and 9 (channel 1); runs 2 and 6; escape_run 4.
    int[] gaps = {3, 0, 3};
    byte[] payload =
        concat(books, backgrounds, new byte[] {4}, stream(gaps), stream(new int[] {0, 0}));
    singleRestores(data, Dtype.FLOAT32, 3, Encoding.CLUSTERED_SPARSE, payload);
    // The builder's encoder picks the same backgrounds.
    singleRestores(data, Dtype.FLOAT32, 3, Encoding.CLUSTERED_SPARSE,
        BundleBuilder.clustered(data, 4, 3, true, 4));
    // Three codebooks need three backgrounds: two are too few.
    singleRejects("segment[0].background", PAYLOAD + books.length, data, Dtype.FLOAT32, 3,
        Encoding.CLUSTERED_SPARSE, concat(books, floats(0f, -0.0f)));
  }

  @Test
  void perChannelCodebooks() throws Exception {
    // 2 channels of 3 int32 elements; channel 0's book has 1 entry, channel 1's has 2.
    ByteBuffer b = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(5).putInt(5).putInt(5).putInt(6).putInt(-1).putInt(6);
    byte[] data = b.array();
    ByteBuffer e = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
    e.putInt(5).putInt(6).putInt(-1);
    byte[] books = BundleBuilder.codebooks(new int[] {1, 2}, e.array());
    singleRestores(data, Dtype.INT32, 2, Encoding.CLUSTERED_DENSE,
        concat(books, stream(new int[] {0, 0, 0, 0, 1, 0})));
    // Symbol 1 is valid in channel 1, not in channel 0.
    singleRejects("segment[0].indices.data", PAYLOAD + books.length + dataAt(2), data, Dtype.INT32,
        2,
        Encoding.CLUSTERED_DENSE, concat(books, stream(new int[] {0, 1, 0, 0, 1, 0})));
    // codebook_count must be 1 or channels (here 2): 3 is neither.
    byte[] p = concat(books, stream(new int[] {0, 0, 0, 0, 1, 0}));
    p[Clustered.CODEBOOK_COUNT] = 3;
    singleRejects("segment[0].codebook_count", PAYLOAD + Clustered.CODEBOOK_COUNT, data,
        Dtype.INT32, 2, Encoding.CLUSTERED_DENSE, p);
  }

  // ------------------------------------------------- grouped codebooks (7.8, since 1.2)

  /**
   * GROUPED_DENSE, int8, 4 channels of 2 elements: codebook 0 = [5, -3], codebook 1 = [7];
   * channels 0 and 2 use codebook 0, channels 1 and 3 codebook 1.
   */
  private static final byte[] GROUPED_DATA = BundleBuilder.bytes(5, -3, 7, 7, -3, -3, 7, 7);

  private static final byte[] GROUPED_BOOKS =
      BundleBuilder.codebooks(new int[] {2, 1}, BundleBuilder.bytes(5, -3, 7));

  private static final int[] GROUPED_MAP = {0, 1, 0, 1};
  private static final int[] GROUPED_INDICES = {0, 1, 0, 0, 1, 1, 0, 0};

  private static void groupedDenseRejects(String field, long offset, byte[] payload) {
    singleRejects(field, offset, GROUPED_DATA, Dtype.INT8, 4, Encoding.GROUPED_DENSE, payload);
  }

  @Test
  void groupedDenseRules() throws Exception {
    byte[] map = stream(GROUPED_MAP);
    byte[] indices = stream(GROUPED_INDICES);
    byte[] good = concat(GROUPED_BOOKS, map, indices);
    singleRestores(GROUPED_DATA, Dtype.INT8, 4, Encoding.GROUPED_DENSE, good);
    String f = "segment[0].";
    int mapAt = PAYLOAD + GROUPED_BOOKS.length;
    int indicesAt = mapAt + map.length;
    // codebook_count G must be in 1..min(channels, 256): 0 and 5 (> 4 channels) are not.
    byte[] p = copy(good);
    p[Clustered.CODEBOOK_COUNT] = 0;
    groupedDenseRejects(f + "codebook_count", PAYLOAD + Clustered.CODEBOOK_COUNT, p);
    p[Clustered.CODEBOOK_COUNT] = 5;
    groupedDenseRejects(f + "codebook_count", PAYLOAD + Clustered.CODEBOOK_COUNT, p);
    // G = channels is allowed: one codebook per channel, mapped in order.
    singleRestores(GROUPED_DATA, Dtype.INT8, 4, Encoding.GROUPED_DENSE,
        concat(BundleBuilder.codebooks(new int[] {2, 1, 1, 1}, BundleBuilder.bytes(5, -3, 7, -3, 7)),
            stream(new int[] {0, 1, 2, 3}), stream(new int[] {0, 1, 0, 0, 0, 0, 0, 0})));
    // entry_count at most 256, and the entries present (as in 7.3).
    p = copy(good);
    p[Clustered.ENTRY_COUNTS + Clustered.COUNT_SIZE + 1] = 1; // codebook 1: 257 entries
    groupedDenseRejects(
        f + "entry_count", PAYLOAD + Clustered.ENTRY_COUNTS + Clustered.COUNT_SIZE, p);
    p = copy(good);
    p[Clustered.ENTRY_COUNTS] = (byte) 200;
    groupedDenseRejects(
        f + "entries", PAYLOAD + Clustered.ENTRY_COUNTS + 2 * Clustered.COUNT_SIZE, p);
    // The map's count must equal channels: 3 and 5 symbols for 4 channels.
    groupedDenseRejects(f + "codebook_map.count", mapAt + Stream.COUNT,
        concat(GROUPED_BOOKS, stream(new int[] {0, 1, 0}), indices));
    groupedDenseRejects(f + "codebook_map.count", mapAt + Stream.COUNT,
        concat(GROUPED_BOOKS, stream(new int[] {0, 1, 0, 1, 1}), indices));
    // Its alphabet at most G = 2: a third symbol would name a codebook that does not exist.
    groupedDenseRejects(f + "codebook_map.alphabet", mapAt + Stream.ALPHABET,
        concat(GROUPED_BOOKS, stream(new int[] {0, 1, 2, 1}), indices));
    // The map's symbols decoded by the rules of 6.4: codes 0 and 10, 0 | 11 is the reserved
    // codeword (bits 0,1,1 -> 0x06 instead of 0 | 10 | 0 | 10 = 0x12).
    p = copy(good);
    assertEquals(0x12, p[GROUPED_BOOKS.length + dataAt(2)]);
    p[GROUPED_BOOKS.length + dataAt(2)] = 0x06;
    groupedDenseRejects(f + "codebook_map.data", mapAt + dataAt(2), p);
    // An index beyond its channel's codebook: 1 is an entry of codebook 0 (channels 0 and 2),
    // not of codebook 1 (channel 1, element 2).
    groupedDenseRejects(f + "indices.data", indicesAt + dataAt(2),
        concat(GROUPED_BOOKS, map, stream(new int[] {0, 1, 1, 0, 1, 1, 0, 0})));
    // The indices' count is elements; nothing follows them.
    groupedDenseRejects(f + "indices.count", indicesAt,
        concat(GROUPED_BOOKS, map, stream(new int[] {0, 1, 0, 0, 1, 1, 0})));
    groupedDenseRejects(f + "payload_size", indicesAt + indices.length,
        concat(good, new byte[1]));
    // A truncated payload, at every length.
    truncationsRejected(GROUPED_DATA, Dtype.INT8, 4, Encoding.GROUPED_DENSE, good);
  }

  @Test
  void groupedCodebookCountIsAtMost256() throws Exception {
    // 300 int8 channels of one element, element c = c % 256: 256 codebooks of one entry
    // (codebook g holds g), channel c uses codebook c % 256.
    int channels = 300;
    byte[] data = new byte[channels];
    int[] map = new int[channels];
    for (int c = 0; c < channels; c++) {
      data[c] = (byte) c;
      map[c] = c % 256;
    }
    int[] counts = new int[256];
    byte[] entries = new byte[256];
    for (int g = 0; g < 256; g++) {
      counts[g] = 1;
      entries[g] = (byte) g;
    }
    byte[] good =
        concat(BundleBuilder.codebooks(counts, entries), stream(map), stream(new int[channels]));
    singleRestores(data, Dtype.INT8, channels, Encoding.GROUPED_DENSE, good);
    byte[] p = copy(good);
    p[Clustered.CODEBOOK_COUNT] = 1;
    p[Clustered.CODEBOOK_COUNT + 1] = 1; // 257 <= channels, but > 256
    singleRejects("segment[0].codebook_count", PAYLOAD + Clustered.CODEBOOK_COUNT, data,
        Dtype.INT8, channels, Encoding.GROUPED_DENSE, p);
  }

  @Test
  void groupedSparseRules() throws Exception {
    // int8, 3 channels of 4 elements. Codebook 0 = [9], background 0; codebook 1 = [4, -4],
    // background -1. Channel 1 uses codebook 0, channels 0 and 2 codebook 1.
    byte[] data = BundleBuilder.bytes(-1, 4, -1, -1, 0, 0, 9, 0, -1, -1, -1, -4);
    byte[] books = BundleBuilder.codebooks(new int[] {1, 2}, BundleBuilder.bytes(9, 4, -4));
    byte[] map = stream(new int[] {1, 0, 1});
    byte[] backgrounds = BundleBuilder.bytes(0, -1);
    // Emitted 1, 6, 11 (runs 1, 4, 4), escape_run 3: 2 | 0 2 | 0 2.
    byte[] gaps = stream(new int[] {2, 0, 2, 0, 2});
    int[] idx = {0, 0, 1};
    byte[] good = concat(books, map, backgrounds, new byte[] {3}, gaps, stream(idx));
    singleRestores(data, Dtype.INT8, 3, Encoding.GROUPED_SPARSE, good);
    String f = "segment[0].";
    int mapAt = PAYLOAD + books.length;
    int backgroundAt = mapAt + map.length;
    int gapsAt = backgroundAt + backgrounds.length + Clustered.ESCAPE_RUN_SIZE;
    int indicesAt = gapsAt + gaps.length;
    // G = 4 > 3 channels.
    byte[] p = copy(good);
    p[Clustered.CODEBOOK_COUNT] = 4;
    singleRejects(f + "codebook_count", PAYLOAD + Clustered.CODEBOOK_COUNT, data, Dtype.INT8, 3,
        Encoding.GROUPED_SPARSE, p);
    // The map: count = channels, alphabet <= G.
    singleRejects(f + "codebook_map.count", mapAt + Stream.COUNT, data, Dtype.INT8, 3,
        Encoding.GROUPED_SPARSE, concat(books, stream(new int[] {1, 0})));
    singleRejects(f + "codebook_map.alphabet", mapAt + Stream.ALPHABET, data, Dtype.INT8, 3,
        Encoding.GROUPED_SPARSE, concat(books, stream(new int[] {1, 0, 2})));
    // G backgrounds, one per codebook: one is too few.
    singleRejects(f + "background", backgroundAt, data, Dtype.INT8, 3, Encoding.GROUPED_SPARSE,
        concat(books, map, new byte[1]));
    // An index beyond its channel's codebook: element 6 (channel 1, codebook 0) gets index 1.
    singleRejects(f + "indices.data", indicesAt + dataAt(2), data, Dtype.INT8, 3,
        Encoding.GROUPED_SPARSE,
        concat(books, map, backgrounds, new byte[] {3}, gaps, stream(new int[] {0, 1, 1})));
    // No gaps: every element its codebook's background (channel 1: 0, channels 0 and 2: -1).
    singleRestores(BundleBuilder.bytes(-1, -1, -1, -1, 0, 0, 0, 0, -1, -1, -1, -1), Dtype.INT8, 3,
        Encoding.GROUPED_SPARSE,
        concat(books, map, backgrounds, new byte[] {3}, stream(new int[0]), stream(new int[0])));
    // A truncated payload, at every length.
    truncationsRejected(data, Dtype.INT8, 3, Encoding.GROUPED_SPARSE, good);
  }

  // ------------------------------------------------- DELTA (7.9, since 1.3)

  /** Offset of a DELTA payload's inner payload in a single-segment bundle. */
  private static final int INNER = PAYLOAD + Format.Delta.INNER;

  /**
   * A DELTA segment whose inner payload decodes to FOUR_FLOATS' bit patterns as differences: the
   * segment holds their running sums modulo 2^32.
   */
  private static final byte[] DELTA_FLOATS = BundleBuilder.runningSums(FOUR_FLOATS, 4);

  private static void deltaRejects(String field, long offset, byte[] payload) {
    singleRejects(field, offset, DELTA_FLOATS, Dtype.FLOAT32, 1, Encoding.DELTA, payload);
  }

  @Test
  void deltaRules() throws Exception {
    String f = "segment[0].";
    byte[] dense = concat(DENSE_BOOK, stream(DENSE_SYMBOLS));
    byte[] good = BundleBuilder.delta(Encoding.CLUSTERED_DENSE, dense);
    singleRestores(DELTA_FLOATS, Dtype.FLOAT32, 1, Encoding.DELTA, good);
    singleRestores(DELTA_FLOATS, Dtype.FLOAT32, 1, Encoding.DELTA,
        BundleBuilder.delta(Encoding.RAW, FOUR_FLOATS));
    // inner_encoding must be a known code other than DELTA (7): 7 and 200 are not.
    byte[] p = copy(good);
    p[Format.Delta.INNER_ENCODING] = (byte) Encoding.DELTA;
    deltaRejects(f + "inner_encoding", PAYLOAD + Format.Delta.INNER_ENCODING, p);
    p[Format.Delta.INNER_ENCODING] = (byte) 200;
    deltaRejects(f + "inner_encoding", PAYLOAD + Format.Delta.INNER_ENCODING, p);
    // payload_size >= 1: an empty payload has no inner_encoding.
    deltaRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE, new byte[0]);
    // An empty segment still needs its inner_encoding, and an inner payload of its encoding.
    singleRestores(new byte[0], Dtype.INT32, 1, Encoding.DELTA,
        BundleBuilder.delta(Encoding.RAW, new byte[0]));
    singleRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE, new byte[0], Dtype.INT32, 1,
        Encoding.DELTA, new byte[0]);
    // Inner RAW: payload_size - 1 must be size (16), not 15 or 17.
    deltaRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE,
        BundleBuilder.delta(Encoding.RAW, copyOf(FOUR_FLOATS, 15)));
    deltaRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE,
        BundleBuilder.delta(Encoding.RAW, concat(FOUR_FLOATS, new byte[1])));
    // Inner ZLIB: a corrupt Adler-32, and a byte after the stream (one byte later than in 7.2).
    byte[] zlib = BundleBuilder.zlib(FOUR_FLOATS, 9);
    singleRestores(DELTA_FLOATS, Dtype.FLOAT32, 1, Encoding.DELTA,
        BundleBuilder.delta(Encoding.ZLIB, zlib));
    byte[] badSum = copy(zlib);
    badSum[badSum.length - 1] ^= 1;
    BundleFormatException e =
        assertThrows(BundleFormatException.class, () -> {
          byte[][] b = single(DELTA_FLOATS, Dtype.FLOAT32, 1, Encoding.DELTA,
              BundleBuilder.delta(Encoding.ZLIB, badSum));
          new BundleRestorer().restore(b[0], b[1]);
        });
    assertEquals(f + "payload", e.getField(), e.getMessage());
    deltaRejects(f + "payload", INNER + zlib.length,
        BundleBuilder.delta(Encoding.ZLIB, concat(zlib, new byte[1])));
    // A corrupt inner stream: the indices' data 0 | 10 | 10 | 0 (0x0A) becomes 0 | 11, the
    // reserved codeword; its fields are named as the inner encoding's, one byte later.
    int indicesAt = INNER + DENSE_BOOK.length;
    p = copy(good);
    assertEquals(0x0A, p[Format.Delta.INNER + DENSE_BOOK.length + dataAt(2)]);
    p[Format.Delta.INNER + DENSE_BOOK.length + dataAt(2)] = 0x06;
    deltaRejects(f + "indices.data", indicesAt + dataAt(2), p);
    for (HuffmanDecoding mode : HuffmanDecoding.values()) {
      byte[][] b = single(DELTA_FLOATS, Dtype.FLOAT32, 1, Encoding.DELTA, p);
      rejects(f + "indices.data", indicesAt + dataAt(2), b[0], b[1],
          new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, mode));
    }
    deltaRejects(f + "indices.count", indicesAt,
        BundleBuilder.delta(Encoding.CLUSTERED_DENSE,
            concat(DENSE_BOOK, stream(new int[] {0, 1, 1}))));
    deltaRejects(f + "payload_size", indicesAt + stream(DENSE_SYMBOLS).length,
        concat(good, new byte[1]));
    // A truncated payload, at every length.
    truncationsRejected(DELTA_FLOATS, Dtype.FLOAT32, 1, Encoding.DELTA, good);
  }

  /**
   * Running sums wrap modulo 2^(8·esize): differences -56, 100, -45, 1 (for uint8: 200, 100, 211,
   * 1) give the elements -56, 44, -1, 0, i.e. 200, 44, 255, 0 for uint8 and their esize-byte
   * two's complements for int16, int32 and int64.
   */
  @Test
  void deltaRunningSumsWrap() throws Exception {
    long[] differences = {-56, 100, -45, 1};
    long[] elements = {-56, 44, -1, 0};
    int[] dtypes = {Dtype.UINT8, Dtype.INT16, Dtype.INT32, Dtype.INT64};
    for (int dtype : dtypes) {
      int esize = Dtype.ESIZES[dtype];
      byte[] d = littleEndian(differences, esize);
      byte[] expected = littleEndian(elements, esize);
      singleRestores(expected, dtype, 1, Encoding.DELTA, BundleBuilder.delta(Encoding.RAW, d));
      singleRestores(expected, dtype, 2, Encoding.DELTA,
          BundleBuilder.delta(Encoding.ZLIB, BundleBuilder.zlib(d, 9)));
    }
    assertArrayEquals(BundleBuilder.bytes(200, 44, 255, 0), littleEndian(elements, 1));
  }

  /**
   * The running sum carries over from one 64 KiB output window to the next: 3 * 2^16 + 8 bytes
   * of differences 3 restore to 3 (k + 1) mod 2^(8·esize), into an array and a ByteBuffer.
   */
  @Test
  void deltaSumsCarryAcrossOutputWindows() throws Exception {
    for (int dtype : new int[] {Dtype.UINT8, Dtype.INT16, Dtype.INT32, Dtype.INT64}) {
      int esize = Dtype.ESIZES[dtype];
      int n = (3 * Output.CHUNK + 8) / esize;
      long[] differences = new long[n];
      long[] elements = new long[n];
      for (int k = 0; k < n; k++) {
        differences[k] = 3;
        elements[k] = 3L * (k + 1);
      }
      byte[] d = littleEndian(differences, esize);
      byte[] expected = littleEndian(elements, esize);
      byte[][] b = single(expected, dtype, 1, Encoding.DELTA,
          BundleBuilder.delta(Encoding.ZLIB, BundleBuilder.zlib(d, 9)));
      byte[] restored = concat(new byte[] {7, 8, 9}, expected, new byte[] {1});
      assertArrayEquals(restored, new BundleRestorer().restore(b[0], b[1]), "esize " + esize);
      ByteBuffer direct = new BundleRestorer().restoreDirect(b[0], b[1]);
      byte[] out = new byte[direct.remaining()];
      direct.get(out);
      assertArrayEquals(restored, out, "esize " + esize + ", restoreDirect");
    }
  }

  /** {@code values} as little-endian integers of {@code esize} bytes (their low bytes). */
  private static byte[] littleEndian(long[] values, int esize) {
    byte[] out = new byte[values.length * esize];
    for (int i = 0; i < values.length; i++) {
      for (int j = 0; j < esize; j++) {
        out[i * esize + j] = (byte) (values[i] >>> (8 * j));
      }
    }
    return out;
  }

  // ------------------------------------------------------- PACKED (7.10) and streams (6.5)

  /** R of the PACKED tests: FOUR_FLOATS (part 0) and two opaque bytes (part 1). */
  private static final byte[] PACKED_DATA = concat(FOUR_FLOATS, new byte[] {0x11, 0x22});

  /** The dense part's payload: DENSE_BOOK and the compact index stream 04 06 02 21 0A. */
  private static final byte[] DENSE_PART = concat(DENSE_BOOK, stream(DENSE_SYMBOLS, true));

  /** Offset of the first part descriptor: after part_count (one byte). */
  private static final int PART0 = PAYLOAD + 1;

  /** Offsets in a descriptor of one-byte fields: size, dtype, encoding, channels, payload_size. */
  private static final int SIZE = 0;
  private static final int DTYPE = 1;
  private static final int ENCODING = 2;
  private static final int CHANNELS = 3;
  private static final int PAYLOAD_SIZE = 4;

  /** Offset of part 0's payload: after part_count and two five-byte descriptors. */
  private static final int PART0_PAYLOAD = PAYLOAD + 1 + 2 * Format.Packed.MIN_PART_SIZE;

  /** A PACKED payload of a dense part 0 and a RAW part 1 of {@code rawSize} bytes. */
  private static byte[] packed(byte[] densePart, int rawSize, byte[] rawPart) {
    return BundleBuilder.packed(
        java.util.Arrays.asList(
            new BundleBuilder.Seg(0, 16, Dtype.FLOAT32, 1, Encoding.CLUSTERED_DENSE, densePart),
            new BundleBuilder.Seg(16, rawSize, Dtype.BYTES, 1, Encoding.RAW, rawPart)));
  }

  private static final byte[] PACKED_GOOD = packed(DENSE_PART, 2, new byte[] {0x11, 0x22});

  private static void packedRejects(String field, long offset, byte[] payload) {
    singleRejects(field, offset, PACKED_DATA, Dtype.BYTES, 1, Encoding.PACKED, payload);
  }

  /** PACKED_GOOD with {@code bytes} in place of its bytes [at, at + length). */
  private static byte[] splice(int at, int length, int... bytes) {
    byte[] p = PACKED_GOOD;
    return concat(
        java.util.Arrays.copyOf(p, at),
        BundleBuilder.bytes(bytes),
        java.util.Arrays.copyOfRange(p, at + length, p.length));
  }

  @Test
  void packedTableRules() throws Exception {
    String f = "segment[0].";
    int d0 = PART0 - PAYLOAD;
    int d1 = d0 + Format.Packed.MIN_PART_SIZE;
    singleRestores(PACKED_DATA, Dtype.BYTES, 1, Encoding.PACKED, PACKED_GOOD);
    // The same bytes as HAND_PACKED of tests/test_format_v14.py, spelled out from spec 7.10.
    assertArrayEquals(
        BundleBuilder.bytes(
            0x02, // part_count
            0x10, 0x01, 0x03, 0x01, 0x11, // size 16, float32, CLUSTERED_DENSE, 1 channel, 17 B
            0x02, 0x00, 0x00, 0x01, 0x02, // size 2, bytes, RAW, 1 channel, 2 B
            0x01, 0x00, 0x02, 0x00, // one codebook of 2 entries
            0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x00, 0xC0, // 0.5, -2.0
            0x04, 0x06, 0x02, 0x21, 0x0A, // compact indices: count 4, nbits 6, alphabet 2, ...
            0x11, 0x22), // part 1
        PACKED_GOOD);
    // The entry: dtype bytes and one channel.
    singleRejects(f + "dtype", entry(0) + Entry.DTYPE, PACKED_DATA, Dtype.INT8, 1,
        Encoding.PACKED, PACKED_GOOD);
    singleRejects(f + "channels", entry(0) + Entry.CHANNELS, PACKED_DATA, Dtype.BYTES, 2,
        Encoding.PACKED, PACKED_GOOD);
    // part_count: 0; more 5-byte descriptors than fit; not minimal; 10 bytes; empty payload.
    packedRejects(f + "part_count", PAYLOAD, splice(0, 1, 0));
    packedRejects(f + "part_count", PAYLOAD, splice(0, 1, 200, 1));
    packedRejects(f + "part_count", PAYLOAD, splice(0, 1, 0x82, 0));
    packedRejects(f + "part_count", PAYLOAD,
        splice(0, 1, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0));
    packedRejects(f + "part_count", PAYLOAD, new byte[0]);
    // size: beyond the segment; a varint that runs past the payload is named where it starts.
    packedRejects(f + "part[0].size", PART0 + SIZE, splice(d0 + SIZE, 1, 19));
    packedRejects(f + "part[1].size", PART0 + 5 + SIZE, splice(d1 + SIZE, 1, 3));
    packedRejects(f + "part[0].size", PART0 + SIZE, splice(d0 + SIZE, 1, 0x90, 0x00));
    // dtype, encoding: unknown codes; PACKED inside PACKED.
    packedRejects(f + "part[0].dtype", PART0 + DTYPE, splice(d0 + DTYPE, 1, 8));
    packedRejects(f + "part[0].encoding", PART0 + ENCODING,
        splice(d0 + ENCODING, 1, Encoding.PACKED));
    packedRejects(f + "part[0].encoding", PART0 + ENCODING, splice(d0 + ENCODING, 1, 77));
    // channels: 0, 2^32, and 3 (16 bytes are not a multiple of 3 x 4: reported at size).
    packedRejects(f + "part[0].channels", PART0 + CHANNELS, splice(d0 + CHANNELS, 1, 0));
    packedRejects(f + "part[0].channels", PART0 + CHANNELS,
        splice(d0 + CHANNELS, 1, 0x80, 0x80, 0x80, 0x80, 0x10));
    packedRejects(f + "part[0].size", PART0 + SIZE, splice(d0 + CHANNELS, 1, 3));
    // payload_size: more than the payload has left after the descriptor.
    packedRejects(f + "part[0].payload_size", PART0 + PAYLOAD_SIZE,
        splice(d0 + PAYLOAD_SIZE, 1, 100));
    // The parts cover 17 of the 18 bytes; a byte after the last payload.
    packedRejects(f + "size", entry(0) + Entry.SIZE, packed(DENSE_PART, 1, new byte[] {0x11}));
    packedRejects(f + "payload_size", PAYLOAD + PACKED_GOOD.length,
        concat(PACKED_GOOD, new byte[1]));
    // A RAW part's payload_size must be its size: named at the descriptor's payload_size.
    packedRejects(f + "part[1].payload_size", PART0 + 5 + PAYLOAD_SIZE,
        packed(DENSE_PART, 2, new byte[] {0x11}));
    // A DELTA part's inner_encoding cannot be PACKED (nor DELTA).
    for (int code : new int[] {Encoding.PACKED, Encoding.DELTA}) {
      byte[] delta = BundleBuilder.delta(code, DENSE_PART);
      byte[] p =
          BundleBuilder.packed(
              java.util.Arrays.asList(
                  new BundleBuilder.Seg(0, 16, Dtype.FLOAT32, 1, Encoding.DELTA, delta),
                  new BundleBuilder.Seg(16, 2, Dtype.BYTES, 1, Encoding.RAW,
                      new byte[] {0x11, 0x22})));
      packedRejects(f + "part[0].inner_encoding", PART0_PAYLOAD, p);
    }
    // Every truncation is rejected.
    truncationsRejected(PACKED_DATA, Dtype.BYTES, 1, Encoding.PACKED, PACKED_GOOD);
  }

  @Test
  void compactStreamRules() throws Exception {
    String f = "segment[0].part[0].indices.";
    int at = DENSE_BOOK.length; // the index stream in part 0's payload
    int s = PART0_PAYLOAD + at;
    assertArrayEquals(BundleBuilder.bytes(4, 6, 2, 0x21, 0x0A), stream(DENSE_SYMBOLS, true));
    // count: not minimal; one too few for the elements (reported where the stream starts).
    compactRejects(f + "count", s, 0, 1, 0x84, 0x00);
    compactRejects(f + "count", s, 0, 1, 3);
    // nbits: not minimal; above 15 x count; 5 bits cannot end the 4 symbols.
    compactRejects(f + "nbits", s + 1, 1, 1, 0x86, 0x00);
    compactRejects(f + "nbits", s + 1, 1, 1, 61);
    compactRejects(f + "nbits", s + 1, 1, 1, 7);
    // alphabet: above 256 (a two-byte varint); a lengths nibble that breaks the Kraft rule.
    compactRejects(f + "alphabet", s + 2, 2, 1, 0x81, 0x02);
    compactRejects(f + "lengths", s + 3, 3, 1, 0x11);
    // The reserved codeword 11 as the third symbol: 0 | 10 | 11 | 0 = 0x1A.
    compactRejects(f + "data", s + 4, 4, 1, 0x1A);
    for (HuffmanDecoding mode : HuffmanDecoding.values()) {
      byte[] part = concat(DENSE_BOOK, BundleBuilder.bytes(4, 6, 2, 0x21, 0x1A));
      byte[][] b =
          single(PACKED_DATA, Dtype.BYTES, 1, Encoding.PACKED,
              packed(part, 2, new byte[] {0x11, 0x22}));
      rejects(f + "data", s + 4, b[0], b[1], new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, mode));
    }
    // The 18-byte header of section 6 is not read inside a part: its count (8 bytes, 04 00 ...)
    // reads as count 4, nbits 0, alphabet 0: no code for the 4 symbols.
    byte[] plain = concat(DENSE_BOOK, stream(DENSE_SYMBOLS));
    packedRejects(f + "lengths", s + 3, packed(plain, 2, new byte[] {0x11, 0x22}));
  }

  /**
   * The dense part with {@code bytes} in place of its index stream's bytes [at, at + length),
   * rejected with {@code field} at {@code offset}.
   */
  private static void compactRejects(String field, long offset, int at, int length, int... bytes) {
    byte[] good = stream(DENSE_SYMBOLS, true);
    byte[] edited =
        concat(
            java.util.Arrays.copyOf(good, at),
            BundleBuilder.bytes(bytes),
            java.util.Arrays.copyOfRange(good, at + length, good.length));
    packedRejects(field, offset, packed(concat(DENSE_BOOK, edited), 2, new byte[] {0x11, 0x22}));
  }

  @Test
  void newerMinorVersionIsRead() throws Exception {
    byte[] restored = concat(new byte[] {1, 2, 3}, FOUR_FLOATS, new byte[] {4});
    byte[][] b =
        new BundleBuilder(restored)
            .minor(7, Header.V1_SIZE + 16, Entry.V1_SIZE + 16)
            .add(new BundleBuilder.Seg(3, 16, Dtype.FLOAT32, 1, Encoding.CLUSTERED_DENSE,
                concat(DENSE_BOOK, stream(DENSE_SYMBOLS))).named("w"))
            .build();
    Sidecar parsed = Sidecar.parse(b[1]);
    assertEquals(7, parsed.getVersionMinor());
    assertEquals(Header.V1_SIZE + 16, parsed.getHeaderSize());
    assertEquals(Entry.V1_SIZE + 16, parsed.getEntrySize());
    assertEquals("w", parsed.getSegments().get(0).getName());
    assertArrayEquals(restored, new BundleRestorer().restore(b[0], b[1]));
  }

  static byte[] copyOf(byte[] b, int length) {
    return java.util.Arrays.copyOf(b, length);
  }

  // ------------------------------------------------------- ZLIB_DICT (7.11)

  /** R of the ZLIB_DICT tests: the dictionary's last 600 bytes, a few of them changed. */
  private static final byte[] DICT_DATA = dictLike();

  private static byte[] dictLike() {
    byte[] d = SkeletonDictionary.bytes();
    byte[] data = java.util.Arrays.copyOfRange(d, d.length - 600, d.length);
    for (int i = 0; i < data.length; i += 29) {
      data[i] ^= 0x55;
    }
    return data;
  }

  private static void zlibDictRejects(String field, long offset, byte[] payload) {
    singleRejects(field, offset, DICT_DATA, Dtype.BYTES, 1, Encoding.ZLIB_DICT, payload);
  }

  @Test
  void zlibDictMustNameTheDictionaryAndInflateToExactlySize() throws Exception {
    byte[] good = BundleBuilder.zlibDict(DICT_DATA, 9);
    singleRestores(DICT_DATA, Dtype.BYTES, 1, Encoding.ZLIB_DICT, good);
    assertEquals(true, good.length < BundleBuilder.zlib(DICT_DATA, 9).length);
    String f = "segment[0].payload";
    int flg = PAYLOAD + Format.ZlibDict.FLG;
    int dictId = PAYLOAD + Format.ZlibDict.DICTID;
    // FDICT not set: a plain zlib stream; FDICT cleared with FCHECK recomputed; no header at all.
    zlibDictRejects(f, flg, BundleBuilder.zlib(DICT_DATA, 9));
    byte[] cleared = copy(good);
    int flags = cleared[1] & 0xC0;
    cleared[1] = (byte) (flags | (31 - ((cleared[0] & 0xFF) * 256 + flags) % 31));
    zlibDictRejects(f, flg, cleared);
    zlibDictRejects(f, PAYLOAD, new byte[0]);
    zlibDictRejects(f, PAYLOAD + 1, copyOf(good, 1));
    // DICTID: too short, every single bit flipped, another dictionary's.
    zlibDictRejects(f, dictId, copyOf(good, 5));
    for (int bit = 0; bit < 32; bit++) {
      byte[] flipped = copy(good);
      flipped[Format.ZlibDict.DICTID + bit / 8] ^= (byte) (1 << (bit % 8));
      zlibDictRejects(f, dictId, flipped);
    }
    Deflater deflater = new Deflater(9);
    deflater.setDictionary(copyOf(SkeletonDictionary.bytes(), 4095));
    deflater.setInput(DICT_DATA);
    deflater.finish();
    byte[] buffer = new byte[2000];
    byte[] otherDictionary = copyOf(buffer, deflater.deflate(buffer));
    deflater.end();
    zlibDictRejects(f, dictId, otherDictionary);
    // Truncated at every length; a corrupt Adler-32 trailer; a byte after the stream.
    for (int cut = 0; cut < good.length; cut++) {
      byte[][] b = single(DICT_DATA, Dtype.BYTES, 1, Encoding.ZLIB_DICT, copyOf(good, cut));
      BundleFormatException e =
          assertThrows(
              BundleFormatException.class, () -> new BundleRestorer().restore(b[0], b[1]));
      assertEquals(f, e.getField(), e.getMessage());
    }
    byte[] badSum = copy(good);
    badSum[badSum.length - 1] ^= 1;
    byte[][] d = single(DICT_DATA, Dtype.BYTES, 1, Encoding.ZLIB_DICT, badSum);
    assertEquals(f, assertThrows(BundleFormatException.class,
        () -> new BundleRestorer().restore(d[0], d[1])).getField());
    zlibDictRejects(f, PAYLOAD + good.length, concat(good, new byte[1]));
    // Inflates to one byte more, and one byte less, than size.
    for (byte[] other : new byte[][] {concat(DICT_DATA, new byte[1]), copyOf(DICT_DATA, 599)}) {
      byte[][] b = single(DICT_DATA, Dtype.BYTES, 1, Encoding.ZLIB_DICT,
          BundleBuilder.zlibDict(other, 9));
      assertEquals(f, assertThrows(BundleFormatException.class,
          () -> new BundleRestorer().restore(b[0], b[1])).getField());
    }
    // A ZLIB payload has no dictionary: the same stream coded ZLIB is rejected.
    singleRejects(f, PAYLOAD + 6, DICT_DATA, Dtype.BYTES, 1, Encoding.ZLIB, good);
    // An empty segment: an empty stream with the dictionary.
    singleRestores(new byte[0], Dtype.BYTES, 1, Encoding.ZLIB_DICT,
        BundleBuilder.zlibDict(new byte[0], 9));
  }

  @Test
  void zlibDictInsidePackedAndDelta() throws Exception {
    // A PACKED part (7.10) and a DELTA payload's inner payload (7.9) may be ZLIB_DICT.
    byte[] part = BundleBuilder.zlibDict(DICT_DATA, 9);
    java.util.List<BundleBuilder.Seg> parts =
        java.util.Arrays.asList(
            new BundleBuilder.Seg(0, 600, Dtype.BYTES, 1, Encoding.ZLIB_DICT, part),
            new BundleBuilder.Seg(600, 16, Dtype.FLOAT32, 1, Encoding.RAW, FOUR_FLOATS));
    byte[] data = concat(DICT_DATA, FOUR_FLOATS);
    singleRestores(data, Dtype.BYTES, 1, Encoding.PACKED, BundleBuilder.packed(parts));
    byte[] flipped = copy(part);
    flipped[Format.ZlibDict.DICTID] ^= 1;
    java.util.List<BundleBuilder.Seg> bad =
        java.util.Arrays.asList(
            new BundleBuilder.Seg(0, 600, Dtype.BYTES, 1, Encoding.ZLIB_DICT, flipped),
            parts.get(1));
    // part_count, then two descriptors (size 600 takes two bytes; payload_size one or two).
    int part0 = PAYLOAD + 1 + (2 + 1 + 1 + 1 + (part.length < 128 ? 1 : 2));
    part0 += Format.Packed.MIN_PART_SIZE;
    singleRejects("segment[0].part[0].payload", part0 + Format.ZlibDict.DICTID, data,
        Dtype.BYTES, 1, Encoding.PACKED, BundleBuilder.packed(bad));
    byte[] sums = BundleBuilder.runningSums(DICT_DATA, 4);
    singleRestores(sums, Dtype.INT32, 1, Encoding.DELTA,
        BundleBuilder.delta(Encoding.ZLIB_DICT, BundleBuilder.zlibDict(DICT_DATA, 9)));
    byte[][] b =
        single(sums, Dtype.INT32, 1, Encoding.DELTA,
            BundleBuilder.delta(Encoding.ZLIB_DICT, BundleBuilder.zlib(DICT_DATA, 9)));
    rejects("segment[0].payload", PAYLOAD + 1 + Format.ZlibDict.FLG, b[0], b[1]);
  }

  // ------------------------------------------------------- MASKED (7.12, since 1.6)

  /** R of the MASKED tests: float32, C = 3 rows of M = 10 columns, all +0.0 but the submatrix. */
  private static final int MASKED_ROWS = 3;

  private static final int MASKED_COLUMNS = 10;

  /** Rows 0 and 2 and columns 1 and 9 are kept: r = 2, m = 2. */
  private static final boolean[] KEPT_ROWS = {true, false, true};

  private static final boolean[] KEPT_COLUMNS = {
    false, true, false, false, false, false, false, false, false, true
  };

  /** The segment: FOUR_FLOATS (0.5, -2, -2, 0.5) at (0, 1), (0, 9), (2, 1), (2, 9). */
  private static final byte[] MASKED_DATA =
      BundleBuilder.scatter(FOUR_FLOATS, 4, KEPT_ROWS, KEPT_COLUMNS, 0);

  /** Offsets in a MASKED payload of float32 with 3 rows and 10 columns. */
  private static final int ROW_MASK = 4;

  private static final int COLUMN_MASK = ROW_MASK + 1;
  private static final int MASKED_INNER_ENCODING = COLUMN_MASK + 2;
  private static final int MASKED_INNER = MASKED_INNER_ENCODING + 1;

  /** The MASKED payload of MASKED_DATA: fill +0.0, masks 05 | 02 02, then {@code inner}. */
  private static byte[] masked(int innerEncoding, byte[] inner) {
    return BundleBuilder.masked(
        new byte[4], BundleBuilder.bytes(0x05), BundleBuilder.bytes(0x02, 0x02), innerEncoding,
        inner);
  }

  /** The MASKED payload with a CLUSTERED_DENSE submatrix: DENSE_BOOK, indices 0 1 1 0. */
  private static final byte[] MASKED_GOOD =
      masked(Encoding.CLUSTERED_DENSE, concat(DENSE_BOOK, stream(DENSE_SYMBOLS)));

  private static void maskedRejects(String field, long offset, byte[] payload) {
    singleRejects(
        field, offset, MASKED_DATA, Dtype.FLOAT32, MASKED_ROWS, Encoding.MASKED, payload);
  }

  private static void maskedRestores(byte[] payload) throws Exception {
    singleRestores(MASKED_DATA, Dtype.FLOAT32, MASKED_ROWS, Encoding.MASKED, payload);
  }

  /** MASKED_GOOD with {@code bytes} in place of its bytes [at, at + length). */
  private static byte[] maskedSplice(int at, int length, int... bytes) {
    byte[] p = MASKED_GOOD;
    return concat(
        java.util.Arrays.copyOf(p, at),
        BundleBuilder.bytes(bytes),
        java.util.Arrays.copyOfRange(p, at + length, p.length));
  }

  @Test
  void maskedRules() throws Exception {
    String f = "segment[0].";
    assertArrayEquals(
        BundleBuilder.bytes(0, 0, 0, 0, 0x05, 0x02, 0x02, Encoding.CLUSTERED_DENSE),
        copyOf(MASKED_GOOD, MASKED_INNER));
    assertEquals(120, MASKED_DATA.length);
    maskedRestores(MASKED_GOOD);
    maskedRestores(masked(Encoding.RAW, FOUR_FLOATS));
    // payload_size: fill, both masks and inner_encoding (8 bytes) must be present; reported at the
    // entry's payload_size, before any field is looked at (here the masks would be zero too).
    for (int cut = 0; cut < MASKED_INNER; cut++) {
      maskedRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE, copyOf(MASKED_GOOD, cut));
      maskedRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE, new byte[cut]);
    }
    // row_mask: a padding bit (bit 7, and bit 3 alone) set; no bit set. Reported at its byte,
    // before a bad column_mask.
    maskedRejects(f + "row_mask", PAYLOAD + ROW_MASK, maskedSplice(ROW_MASK, 1, 0x85));
    maskedRejects(f + "row_mask", PAYLOAD + ROW_MASK, maskedSplice(ROW_MASK, 1, 0x08));
    maskedRejects(f + "row_mask", PAYLOAD + ROW_MASK, maskedSplice(ROW_MASK, 1, 0x00));
    maskedRejects(f + "row_mask", PAYLOAD + ROW_MASK, maskedSplice(ROW_MASK, 3, 0, 0, 0));
    // column_mask: a padding bit of its second byte (column 10, or 15) set; no bit set. Reported
    // at its first byte, before a bad inner_encoding.
    maskedRejects(f + "column_mask", PAYLOAD + COLUMN_MASK,
        maskedSplice(COLUMN_MASK, 2, 0x02, 0x06));
    maskedRejects(f + "column_mask", PAYLOAD + COLUMN_MASK,
        maskedSplice(COLUMN_MASK, 2, 0x02, 0x82));
    maskedRejects(f + "column_mask", PAYLOAD + COLUMN_MASK,
        maskedSplice(COLUMN_MASK, 2, 0x00, 0x00));
    maskedRejects(f + "column_mask", PAYLOAD + COLUMN_MASK,
        maskedSplice(COLUMN_MASK, 3, 0x00, 0x00, Encoding.DELTA));
    // inner_encoding: 0 ... 6 or 9, never DELTA (7), PACKED (8), MASKED (10) or an unknown code.
    for (int code : new int[] {Encoding.DELTA, Encoding.PACKED, Encoding.MASKED, 11, 200, 255}) {
      maskedRejects(f + "inner_encoding", PAYLOAD + MASKED_INNER_ENCODING,
          maskedSplice(MASKED_INNER_ENCODING, 1, code));
    }
    // Inner RAW: its length must be r x m x esize = 16 (not 15, 17, or the segment's 120).
    maskedRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE,
        masked(Encoding.RAW, copyOf(FOUR_FLOATS, 15)));
    maskedRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE,
        masked(Encoding.RAW, concat(FOUR_FLOATS, new byte[1])));
    maskedRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE,
        masked(Encoding.RAW, MASKED_DATA));
    maskedRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE,
        masked(Encoding.RAW, new byte[0]));
    // A corrupt inner stream: its fields are named as the inner encoding's, MASKED_INNER bytes on.
    int indicesAt = PAYLOAD + MASKED_INNER + DENSE_BOOK.length;
    byte[] p = copy(MASKED_GOOD);
    assertEquals(0x0A, p[MASKED_INNER + DENSE_BOOK.length + dataAt(2)]);
    p[MASKED_INNER + DENSE_BOOK.length + dataAt(2)] = 0x06; // 0 | 11: the reserved codeword
    for (HuffmanDecoding mode : HuffmanDecoding.values()) {
      byte[][] b = single(MASKED_DATA, Dtype.FLOAT32, MASKED_ROWS, Encoding.MASKED, p);
      rejects(f + "indices.data", indicesAt + dataAt(2), b[0], b[1],
          new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, mode));
    }
    // The inner entry has r x m elements: 3 indices are too few, 30 (the segment's) too many.
    maskedRejects(f + "indices.count", indicesAt,
        masked(Encoding.CLUSTERED_DENSE, concat(DENSE_BOOK, stream(new int[] {0, 1, 1}))));
    maskedRejects(f + "indices.count", indicesAt,
        masked(Encoding.CLUSTERED_DENSE, concat(DENSE_BOOK, stream(new int[30]))));
    maskedRejects(f + "payload_size", indicesAt + stream(DENSE_SYMBOLS).length,
        concat(MASKED_GOOD, new byte[1]));
    // ... and r = 2 channels: one codebook per kept row is 2 codebooks, not C = 3.
    byte[] perRow = BundleBuilder.clustered(FOUR_FLOATS, 4, 2, false, 0);
    maskedRestores(masked(Encoding.CLUSTERED_DENSE, perRow));
    byte[] perSegmentRow = BundleBuilder.clustered(
        concat(FOUR_FLOATS, copyOf(FOUR_FLOATS, 8)), 4, 3, false, 0);
    maskedRejects(f + "codebook_count", PAYLOAD + MASKED_INNER + Clustered.CODEBOOK_COUNT,
        masked(Encoding.CLUSTERED_DENSE, perSegmentRow));
    maskedRestores(masked(Encoding.SPARSE_RAW, BundleBuilder.sparseRaw(FOUR_FLOATS, 4, 2, 3)));
    byte[] threeSlices = BundleBuilder.sparseRaw(FOUR_FLOATS, 4, 2, 3);
    threeSlices[0] = 3;
    maskedRejects(f + "slice_count", PAYLOAD + MASKED_INNER,
        masked(Encoding.SPARSE_RAW, threeSlices));
    byte[] grouped = BundleBuilder.grouped(FOUR_FLOATS, 4, new int[] {1, 0}, 2, false, 1);
    maskedRestores(masked(Encoding.GROUPED_DENSE, grouped));
    byte[] groupedMap3 = BundleBuilder.grouped(
        concat(FOUR_FLOATS, copyOf(FOUR_FLOATS, 8)), 4, new int[] {1, 0, 1}, 2, false, 1);
    int mapAt = PAYLOAD + MASKED_INNER + BundleBuilder.codebooks(
        new int[] {2, 2}, new byte[16]).length;
    maskedRejects(f + "codebook_map.count", mapAt, masked(Encoding.GROUPED_DENSE, groupedMap3));
    // Inner ZLIB: inflates to r x m x esize bytes, not to the segment's size.
    maskedRestores(masked(Encoding.ZLIB, BundleBuilder.zlib(FOUR_FLOATS, 9)));
    maskedRestores(masked(Encoding.ZLIB_DICT, BundleBuilder.zlibDict(FOUR_FLOATS, 9)));
    byte[][] b = single(MASKED_DATA, Dtype.FLOAT32, MASKED_ROWS, Encoding.MASKED,
        masked(Encoding.ZLIB, BundleBuilder.zlib(MASKED_DATA, 9)));
    assertEquals(f + "payload", assertThrows(BundleFormatException.class,
        () -> new BundleRestorer().restore(b[0], b[1])).getField());
    // A truncated payload, at every length.
    truncationsRejected(MASKED_DATA, Dtype.FLOAT32, MASKED_ROWS, Encoding.MASKED, MASKED_GOOD);
  }

  @Test
  void maskedEdgeCases() throws Exception {
    String f = "segment[0].";
    // An empty segment has M = 0 columns: its column_mask has no byte and no bit set, reported
    // where it would start (after fill and a one-byte row_mask).
    singleRejects(f + "column_mask", PAYLOAD + 4 + 1, new byte[0], Dtype.FLOAT32, 2,
        Encoding.MASKED, BundleBuilder.bytes(0, 0, 0, 0, 0x03, Encoding.RAW));
    singleRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE, new byte[0], Dtype.FLOAT32,
        2, Encoding.MASKED, BundleBuilder.bytes(0, 0, 0, 0, 0x03));
    // 2^32 - 1 channels of an empty segment: a row_mask of 2^29 bytes is not present (nothing
    // is allocated for it).
    singleRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE, new byte[0], Dtype.INT8,
        0xFFFFFFFFL, Encoding.MASKED, BundleBuilder.bytes(0, 0xFF, 0xFF, Encoding.RAW));
    // One channel: the row mask is the byte 01; 03 sets a padding bit.
    byte[] row = floats(0f, 1f, 0f, 0f, 0f, 0f, 0f, 0f, 2f);
    byte[] good = BundleBuilder.bytes(0, 0, 0, 0, 0x01, 0x02, 0x01, Encoding.RAW);
    singleRestores(row, Dtype.FLOAT32, 1, Encoding.MASKED, concat(good, floats(1f, 2f)));
    good[4] = 0x03;
    singleRejects(f + "row_mask", PAYLOAD + 4, row, Dtype.FLOAT32, 1, Encoding.MASKED,
        concat(good, floats(1f, 2f)));
    // The inner payload is checked as an entry of the kept submatrix's size: a RAW payload of
    // the segment's kept elements but with columns of a wider mask is rejected.
    good[4] = 0x01;
    good[5] = 0x03;
    singleRejects(f + "payload_size", entry(0) + Entry.PAYLOAD_SIZE, row, Dtype.FLOAT32, 1,
        Encoding.MASKED, concat(good, floats(1f, 2f)));
    // A DELTA payload's inner_encoding cannot be MASKED (7.9).
    deltaRejects(f + "inner_encoding", PAYLOAD + Format.Delta.INNER_ENCODING,
        BundleBuilder.delta(Encoding.MASKED, MASKED_GOOD));
  }

  /** R of the PACKED MASKED tests: MASKED_DATA (part 0) and two opaque bytes (part 1). */
  private static final byte[] PACKED_MASKED_DATA = concat(MASKED_DATA, new byte[] {0x11, 0x22});

  /** A PACKED payload of a MASKED part 0 (float32, 3 channels) and a RAW part 1 of two bytes. */
  private static byte[] packedMasked(byte[] maskedPart) {
    return BundleBuilder.packed(
        java.util.Arrays.asList(
            new BundleBuilder.Seg(0, 120, Dtype.FLOAT32, MASKED_ROWS, Encoding.MASKED, maskedPart),
            new BundleBuilder.Seg(120, 2, Dtype.BYTES, 1, Encoding.RAW, new byte[] {0x11, 0x22})));
  }

  private static void packedMaskedRejects(String field, long offset, byte[] maskedPart) {
    singleRejects(field, offset, PACKED_MASKED_DATA, Dtype.BYTES, 1, Encoding.PACKED,
        packedMasked(maskedPart));
  }

  @Test
  void maskedPartRules() throws Exception {
    // A MASKED part (7.10): the same rules, fields named segment[0].part[0].<field>, and the
    // inner payload's streams with the compact header of 6.5.
    String f = "segment[0].part[0].";
    byte[] good = masked(Encoding.CLUSTERED_DENSE, DENSE_PART);
    byte[] p = packedMasked(good);
    assertArrayEquals(BundleBuilder.bytes(0x02, 120, 1, Encoding.MASKED, 3, good.length),
        copyOf(p, 6));
    singleRestores(PACKED_MASKED_DATA, Dtype.BYTES, 1, Encoding.PACKED, p);
    int at = PART0_PAYLOAD;
    packedMaskedRejects(f + "payload_size", PART0 + PAYLOAD_SIZE, copyOf(good, MASKED_INNER - 1));
    byte[] bad = copy(good);
    bad[ROW_MASK] = 0x0D;
    packedMaskedRejects(f + "row_mask", at + ROW_MASK, bad);
    bad = copy(good);
    bad[COLUMN_MASK + 1] = 0;
    bad[COLUMN_MASK] = 0;
    packedMaskedRejects(f + "column_mask", at + COLUMN_MASK, bad);
    bad = copy(good);
    bad[MASKED_INNER_ENCODING] = (byte) Encoding.MASKED;
    packedMaskedRejects(f + "inner_encoding", at + MASKED_INNER_ENCODING, bad);
    // Inner RAW of the wrong length: reported at the descriptor's payload_size.
    packedMaskedRejects(f + "payload_size", PART0 + PAYLOAD_SIZE,
        masked(Encoding.RAW, copyOf(FOUR_FLOATS, 12)));
    singleRestores(PACKED_MASKED_DATA, Dtype.BYTES, 1, Encoding.PACKED,
        packedMasked(masked(Encoding.RAW, FOUR_FLOATS)));
    // The compact index stream 04 06 02 21 0A with the reserved codeword (0x1A).
    int s = at + MASKED_INNER + DENSE_BOOK.length;
    bad = copy(good);
    assertEquals(0x0A, bad[bad.length - 1]);
    bad[bad.length - 1] = 0x1A;
    packedMaskedRejects(f + "indices.data", s + 4, bad);
    // The 18-byte header of section 6 is not read inside a part (as in compactStreamRules).
    packedMaskedRejects(f + "indices.lengths", s + 3,
        masked(Encoding.CLUSTERED_DENSE, concat(DENSE_BOOK, stream(DENSE_SYMBOLS))));
    // Every truncation of the PACKED payload is rejected.
    truncationsRejected(PACKED_MASKED_DATA, Dtype.BYTES, 1, Encoding.PACKED, p);
  }
}
