package dev.kerasdc.bundle;

/**
 * The numbers of the keras-dc bundle format (docs/bundle-format.md), written once for the Java
 * reader and its tests: every byte offset, field size, magic and version, dtype and encoding code
 * and limit.
 *
 * <p>In the nested layout classes ({@link Header}, {@link Entry}, {@link Stream}, {@link
 * Clustered}, {@link SparseRaw}, {@link Delta}, {@link Masked}) a constant named after a spec
 * field is that field's byte offset from the start of its structure; {@code *_SIZE} constants are
 * byte lengths.
 * The fields of a PACKED payload ({@link Packed}) and of a compact stream header are varints
 * ({@link Varint}), read in order: they have no fixed offsets.
 * Values that are not offsets ({@link #MAGIC}, {@link #VERSION_MAJOR}, the codes and limits) live
 * at the top level or in {@link Dtype} and {@link Encoding}.
 */
final class Format {
  private Format() {}

  /** {@code magic} (section 4): ASCII {@code KDCW}. */
  static final byte[] MAGIC = {0x4B, 0x44, 0x43, 0x57};

  /** The {@code version_major} this reader implements (section 4.1). */
  static final int VERSION_MAJOR = 1;

  /**
   * The newest {@code version_minor} this reader knows (section 4.1): 6, which added MASKED. The
   * reader accepts any minor version; it rejects only the codes it does not know (section 10).
   */
  static final int NEWEST_VERSION_MINOR = 6;

  /** The largest {@code restored_size} (section 4): 2^31 - 1 bytes. */
  static final long MAX_RESTORED_SIZE = Integer.MAX_VALUE;

  /** Bytes of a SHA-256 digest (section 2). */
  static final int SHA256_SIZE = 32;

  /** Bytes of a CRC-32 (section 2). */
  static final int CRC32_SIZE = 4;

  /** Unsigned LEB128 integers (section 2, since 1.4: only inside PACKED payloads). */
  static final class Varint {
    private Varint() {}

    /** The longest varint: 9 bytes of 7 bits, values up to 2^63 - 1. */
    static final int MAX_SIZE = 9;

    /** The high bit of a byte: another byte follows. */
    static final int MORE = 0x80;

    /** The 7 value bits of a byte. */
    static final int BITS = 0x7F;
  }

  /** The header (section 4): offsets from the start of the file. */
  static final class Header {
    private Header() {}

    static final int MAGIC = 0;
    static final int VERSION_MAJOR = 4;
    static final int VERSION_MINOR = 6;
    static final int HEADER_SIZE = 8;
    static final int SEGMENT_COUNT = 12;
    static final int ENTRY_SIZE = 16;
    static final int NAMES_SIZE = 20;
    static final int PAYLOAD_SIZE = 24;
    static final int RESTORED_SIZE = 32;
    static final int SKELETON_SIZE = 40;
    static final int RESTORED_SHA256 = 48;
    static final int SKELETON_SHA256 = 80;
    static final int TABLE_CRC32 = 112;
    /** Where a newer minor version may add fields, up to {@code header_size - 4} (4.1). */
    static final int EXTENSION = 116;

    /** Bytes a file needs before check 3 can read {@code header_size}: magic..header_size. */
    static final int PREFIX_SIZE = HEADER_SIZE + 4;

    /** {@code header_size} of version 1.0. */
    static final int V1_SIZE = 120;

    static final int MIN_SIZE = V1_SIZE;
    static final int MAX_SIZE = 65536;

    /** Offset of {@code header_crc32}: always the last four bytes of the header. */
    static int headerCrc32(int headerSize) {
      return headerSize - CRC32_SIZE;
    }
  }

  /** A segment-table entry (section 5): offsets from the start of the entry. */
  static final class Entry {
    private Entry() {}

    static final int OFFSET = 0;
    static final int SIZE = 8;
    static final int PAYLOAD_SIZE = 16;
    static final int PAYLOAD_CRC32 = 24;
    static final int CHANNELS = 28;
    static final int NAME_OFFSET = 32;
    static final int NAME_SIZE = 36;
    static final int DTYPE = 40;
    static final int ENCODING = 41;
    static final int RESERVED = 42;
    static final int RESERVED_SIZE = 6;

    /** {@code entry_size} of version 1.0. */
    static final int V1_SIZE = 48;

    static final int MIN_SIZE = V1_SIZE;
    static final int MAX_SIZE = 65536;
  }

  /** Element types (section 5): codes, names and element sizes ({@code esize}). */
  static final class Dtype {
    private Dtype() {}

    static final int BYTES = 0;
    static final int FLOAT32 = 1;
    static final int FLOAT16 = 2;
    static final int INT8 = 3;
    static final int UINT8 = 4;
    static final int INT16 = 5;
    static final int INT32 = 6;
    static final int INT64 = 7;

    /** Names by code. */
    static final String[] NAMES = {
      "bytes", "float32", "float16", "int8", "uint8", "int16", "int32", "int64"
    };

    /** Element sizes in bytes by code. */
    static final int[] ESIZES = {1, 4, 2, 1, 1, 2, 4, 8};

    /** Whether {@code code} is a dtype this reader knows. */
    static boolean isKnown(int code) {
      return code >= 0 && code < ESIZES.length;
    }
  }

  /** Payload encodings (section 7): codes and names. */
  static final class Encoding {
    private Encoding() {}

    static final int RAW = 0;
    static final int ZLIB = 1;
    static final int CLUSTERED_SPARSE = 2;
    static final int CLUSTERED_DENSE = 3;
    /** Since version 1.1 (section 7.6). */
    static final int SPARSE_RAW = 4;
    /** Since version 1.2 (section 7.8). */
    static final int GROUPED_SPARSE = 5;
    /** Since version 1.2 (section 7.8). */
    static final int GROUPED_DENSE = 6;
    /** Since version 1.3 (section 7.9): never the {@code inner_encoding} of a DELTA payload. */
    static final int DELTA = 7;
    /** Since version 1.4 (section 7.10): never the encoding of a part, nor an inner encoding. */
    static final int PACKED = 8;
    /** Since version 1.5 (section 7.11): zlib with the preset dictionary {@link ZlibDict}. */
    static final int ZLIB_DICT = 9;
    /**
     * Since version 1.6 (section 7.12): a kept submatrix of rows and columns, the rest one fill
     * value; a segment's or a part's encoding, never an inner encoding.
     */
    static final int MASKED = 10;

    /** Names by code. */
    static final String[] NAMES = {
      "RAW", "ZLIB", "CLUSTERED_SPARSE", "CLUSTERED_DENSE", "SPARSE_RAW", "GROUPED_SPARSE",
      "GROUPED_DENSE", "DELTA", "PACKED", "ZLIB_DICT", "MASKED"
    };

    /** Whether {@code code} is an encoding this reader knows. */
    static boolean isKnown(int code) {
      return code >= 0 && code < NAMES.length;
    }

    /** Whether {@code code} may be the encoding of a PACKED segment's part (section 7.10). */
    static boolean isPart(int code) {
      return isKnown(code) && code != PACKED;
    }

    /**
     * Whether {@code code} may be the {@code inner_encoding} of a DELTA payload (section 7.9) or
     * of a MASKED payload (7.12): 0 ... 6 or 9, neither DELTA, PACKED nor MASKED.
     */
    static boolean isInner(int code) {
      return isPart(code) && code != DELTA && code != MASKED;
    }

    /** Whether {@code code}'s payload has a codebook map (section 7.8). */
    static boolean isGrouped(int code) {
      return code == GROUPED_SPARSE || code == GROUPED_DENSE;
    }
  }

  /** A HuffmanStream (section 6): offsets from the start of the structure, and its limits. */
  static final class Stream {
    private Stream() {}

    static final int COUNT = 0;
    static final int NBITS = 8;
    static final int ALPHABET = 16;
    /** The code lengths, two per byte (low nibble first), then the coded bits. */
    static final int LENGTHS = 18;

    /** Bytes before the code lengths: count, nbits, alphabet. */
    static final int FIXED_SIZE = LENGTHS;

    /** The largest {@code alphabet} of any stream (an index stream's, section 7). */
    static final int MAX_ALPHABET = 256;

    /** The longest code length (section 6.1). */
    static final int MAX_CODE_LENGTH = 15;

    /** Bytes of code lengths for {@code alphabet} symbols: one nibble each. */
    static int lengthsSize(int alphabet) {
      return (alphabet + 1) / 2;
    }
  }

  /**
   * The fields of a clustered payload (section 7): its codebooks (7.3), offsets from the start of
   * the payload, then for CLUSTERED_SPARSE (7.4) the background values and {@code escape_run}. A
   * grouped payload (7.8) starts the same way, with a codebook map after the entries.
   */
  static final class Clustered {
    private Clustered() {}

    static final int CODEBOOK_COUNT = 0;
    /** The u16 {@code entry_count} of each codebook, then the entries. */
    static final int ENTRY_COUNTS = 2;

    /** Bytes of {@code codebook_count}, and of each {@code entry_count}. */
    static final int COUNT_SIZE = 2;

    /** The most entries a codebook may hold. */
    static final int MAX_ENTRIES = 256;

    /** The most codebooks of a grouped payload (7.8): the codebook map's largest alphabet. */
    static final int MAX_GROUPS = 256;

    /** Bytes of {@code escape_run} (a u8). */
    static final int ESCAPE_RUN_SIZE = 1;

    static final int MIN_ESCAPE_RUN = 1;
    static final int MAX_ESCAPE_RUN = 255;

    /** The gap symbol that stands for {@code escape_run} background elements. */
    static final int ESCAPE = 0;
  }

  /**
   * The fields of a SPARSE_RAW payload (section 7.6, since version 1.1), offsets from the start of
   * the payload: the slice count, then the background values; {@code escape_run}, the gap stream
   * and the values follow as in {@link Clustered}.
   */
  static final class SparseRaw {
    private SparseRaw() {}

    static final int SLICE_COUNT = 0;
    /** The background values, {@code slice_count} elements. */
    static final int BACKGROUND = 2;

    /** Bytes of {@code slice_count} (a u16). */
    static final int SLICE_COUNT_SIZE = BACKGROUND - SLICE_COUNT;
  }

  /**
   * A PACKED payload (section 7.10, since version 1.4): the varint {@code part_count}, then per
   * part a descriptor of varint {@code size}, u8 {@code dtype}, u8 {@code encoding}, varint
   * {@code channels} and varint {@code payload_size}, then the parts' payloads.
   */
  static final class Packed {
    private Packed() {}

    /** Bytes of the shortest part descriptor: five one-byte fields. */
    static final int MIN_PART_SIZE = 5;

    /** The largest {@code channels} of a part: that of an entry (a u32). */
    static final long MAX_CHANNELS = 0xFFFFFFFFL;
  }

  /**
   * ZLIB_DICT's preset dictionary (section 7.11, since version 1.5): the class-path resource
   * {@code dev/kerasdc/bundle/skeleton.zdict}, named by its size and SHA-256; and the fields of
   * the zlib header that name it, offsets from the start of the payload.
   */
  static final class ZlibDict {
    private ZlibDict() {}

    /** The resource, relative to this package. */
    static final String RESOURCE = "skeleton.zdict";

    /** Bytes of the dictionary. */
    static final int SIZE = 4096;

    /** SHA-256 of the dictionary, in hex. */
    static final String SHA256 =
        "23678f2540e6f68278c8a65fd98bfc4713cd83e2cf1cbd4d349cdaa46ce20d72";

    /** Adler-32 of the dictionary: the stream's {@code DICTID}. */
    static final long ADLER32 = 0xD618FEAEL;

    /** The zlib header's FLG byte, and its bit FDICT. */
    static final int FLG = 1;

    static final int FDICT = 0x20;

    /** The 4-byte {@code DICTID}, big-endian (RFC 1950), after CMF and FLG. */
    static final int DICTID = 2;

    static final int DICTID_SIZE = 4;
  }

  /**
   * The fields of a DELTA payload (section 7.9, since version 1.3), offsets from the start of the
   * payload: the u8 {@code inner_encoding}, then the inner payload.
   */
  static final class Delta {
    private Delta() {}

    static final int INNER_ENCODING = 0;
    /** The inner payload, {@code payload_size - 1} bytes of encoding {@code inner_encoding}. */
    static final int INNER = 1;

    /** Bytes of {@code inner_encoding} (a u8). */
    static final int INNER_ENCODING_SIZE = INNER - INNER_ENCODING;
  }

  /**
   * The fields of a MASKED payload (section 7.12, since version 1.6), in the order they are
   * stored: {@code fill} (esize bytes) at offset 0, then {@code row_mask} (ceil(C/8) bytes),
   * {@code column_mask} (ceil(M/8) bytes) and the u8 {@code inner_encoding}, whose offsets depend
   * on esize, C and M, then the inner payload.
   */
  static final class Masked {
    private Masked() {}

    static final int FILL = 0;

    /** Bytes of {@code inner_encoding} (a u8). */
    static final int INNER_ENCODING_SIZE = 1;

    /** Bits per byte of a mask: bit c in byte c / 8, at bit c mod 8 from the least significant. */
    static final int BITS_PER_BYTE = 8;

    /** Bytes of a mask of {@code bits} bits: ceil(bits / 8). */
    static long maskSize(long bits) {
      return (bits + BITS_PER_BYTE - 1) / BITS_PER_BYTE;
    }
  }
}
