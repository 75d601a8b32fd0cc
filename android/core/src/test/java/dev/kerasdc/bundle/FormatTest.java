package dev.kerasdc.bundle;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.kerasdc.bundle.Format.Clustered;
import dev.kerasdc.bundle.Format.Entry;
import dev.kerasdc.bundle.Format.Header;
import dev.kerasdc.bundle.Format.Stream;
import org.junit.jupiter.api.Test;

/**
 * The layouts of {@link Format} are gap-free: each field starts where the one before it ends, with
 * the field sizes of the spec's tables (sections 4, 5, 6, 7.3), and the last ends at the
 * structure's size. A mistyped offset breaks the chain.
 */
final class FormatTest {

  /** Walks {@code {offset, size}} pairs; returns where the last field ends. */
  private static int chain(String what, int... fields) {
    int end = fields[0];
    for (int i = 0; i < fields.length; i += 2) {
      assertEquals(end, fields[i], what + ": field " + (i / 2) + " starts where the last ends");
      end = fields[i] + fields[i + 1];
    }
    return end;
  }

  @Test
  void headerFieldsFillVersion1Header() {
    int end =
        chain(
            "header",
            Header.MAGIC, Format.MAGIC.length,
            Header.VERSION_MAJOR, 2,
            Header.VERSION_MINOR, 2,
            Header.HEADER_SIZE, 4,
            Header.SEGMENT_COUNT, 4,
            Header.ENTRY_SIZE, 4,
            Header.NAMES_SIZE, 4,
            Header.PAYLOAD_SIZE, 8,
            Header.RESTORED_SIZE, 8,
            Header.SKELETON_SIZE, 8,
            Header.RESTORED_SHA256, Format.SHA256_SIZE,
            Header.SKELETON_SHA256, Format.SHA256_SIZE,
            Header.TABLE_CRC32, Format.CRC32_SIZE,
            Header.headerCrc32(Header.V1_SIZE), Format.CRC32_SIZE);
    assertEquals(Header.V1_SIZE, end);
    assertEquals(Header.EXTENSION, Header.headerCrc32(Header.V1_SIZE));
    assertEquals(Header.HEADER_SIZE + 4, Header.PREFIX_SIZE);
  }

  @Test
  void entryFieldsFillVersion1Entry() {
    int end =
        chain(
            "entry",
            Entry.OFFSET, 8,
            Entry.SIZE, 8,
            Entry.PAYLOAD_SIZE, 8,
            Entry.PAYLOAD_CRC32, Format.CRC32_SIZE,
            Entry.CHANNELS, 4,
            Entry.NAME_OFFSET, 4,
            Entry.NAME_SIZE, 4,
            Entry.DTYPE, 1,
            Entry.ENCODING, 1,
            Entry.RESERVED, Entry.RESERVED_SIZE);
    assertEquals(Entry.V1_SIZE, end);
  }

  @Test
  void streamAndCodebookFieldsAreContiguous() {
    assertEquals(
        Stream.FIXED_SIZE,
        chain("stream", Stream.COUNT, 8, Stream.NBITS, 8, Stream.ALPHABET, 2, Stream.LENGTHS, 0));
    assertEquals(
        Clustered.ENTRY_COUNTS,
        chain("codebooks", Clustered.CODEBOOK_COUNT, Clustered.COUNT_SIZE));
    assertEquals(Format.Dtype.NAMES.length, Format.Dtype.ESIZES.length);
  }

  @Test
  void encodingCodesAreTheSpecTable() {
    // Section 7: MASKED (10, since 1.6) is the newest code; ZLIB_DICT (9) is allowed wherever
    // ZLIB is; PACKED (8) is neither a part's encoding nor an inner encoding; DELTA (7) and MASKED
    // are a part's encodings but not inner ones: the inner codes of DELTA (7.9) and MASKED (7.12)
    // are 0 ... 6 and 9.
    assertEquals("PACKED", Format.Encoding.NAMES[Format.Encoding.PACKED]);
    assertEquals("ZLIB_DICT", Format.Encoding.NAMES[Format.Encoding.ZLIB_DICT]);
    assertEquals("MASKED", Format.Encoding.NAMES[Format.Encoding.MASKED]);
    assertEquals(10, Format.Encoding.MASKED);
    assertEquals(Format.Encoding.MASKED + 1, Format.Encoding.NAMES.length);
    assertEquals(6, Format.NEWEST_VERSION_MINOR);
    for (int code = 0; code < Format.Encoding.NAMES.length; code++) {
      assertEquals(code != Format.Encoding.PACKED, Format.Encoding.isPart(code));
      assertEquals(
          code < Format.Encoding.DELTA || code == Format.Encoding.ZLIB_DICT,
          Format.Encoding.isInner(code));
    }
    assertEquals(0, Format.Masked.FILL);
    assertEquals(1, Format.Masked.INNER_ENCODING_SIZE);
    assertEquals(0, Format.Masked.maskSize(0));
    assertEquals(1, Format.Masked.maskSize(1));
    assertEquals(1, Format.Masked.maskSize(8));
    assertEquals(2, Format.Masked.maskSize(9));
    assertEquals(1L << 29, Format.Masked.maskSize(0xFFFFFFFFL));
    assertEquals(false, Format.Encoding.isKnown(Format.Encoding.NAMES.length));
    assertEquals(5, Format.Packed.MIN_PART_SIZE);
    assertEquals(9, Format.Varint.MAX_SIZE);
  }

  @Test
  void skeletonDictionaryIsTheSpecOne() throws Exception {
    // 7.11: the class-path resource is the dictionary of the spec (size, SHA-256, Adler-32), the
    // same bytes as the Python package's converters/skeleton.zdict; other bytes are refused.
    byte[] d = SkeletonDictionary.bytes();
    assertEquals(Format.ZlibDict.SIZE, d.length);
    java.util.zip.Adler32 adler = new java.util.zip.Adler32();
    adler.update(d, 0, d.length);
    assertEquals(Format.ZlibDict.ADLER32, adler.getValue());
    java.io.File python =
        new java.io.File(GoldenTest.goldenDir(), "../../converters/skeleton.zdict");
    org.junit.jupiter.api.Assertions.assertArrayEquals(
        java.nio.file.Files.readAllBytes(python.toPath()), d);
    byte[] other = java.util.Arrays.copyOf(d, d.length);
    other[0] ^= 1;
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalStateException.class, () -> SkeletonDictionary.checked(other));
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalStateException.class,
        () -> SkeletonDictionary.checked(java.util.Arrays.copyOf(d, d.length - 1)));
    assertEquals(0x20, Format.ZlibDict.FDICT);
    assertEquals(Format.ZlibDict.DICTID, Format.ZlibDict.FLG + 1);
  }
}
