package dev.kerasdc.bundle;

import java.math.BigInteger;
import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.zip.CRC32;

/**
 * The validated header and tables of a sidecar ({@code .dcw}) file.
 *
 * <p>{@link #parse} performs checks 1 to 13 of the format spec's section 10, in that order; the
 * skeleton and payload checks follow in {@link BundleRestorer}. A parsed sidecar keeps a reference
 * to the array it was parsed from: do not modify the array while the sidecar is in use.
 */
public final class Sidecar {
  /** Magic bytes {@code KDCW}. */
  static final byte[] MAGIC = {0x4B, 0x44, 0x43, 0x57};

  /** The major version this reader implements. */
  public static final int VERSION_MAJOR = 1;

  static final int MIN_HEADER_SIZE = 120;
  static final int MAX_HEADER_SIZE = 65536;
  static final int MIN_ENTRY_SIZE = 48;
  static final int MAX_ENTRY_SIZE = 65536;

  /** The largest restored size the format allows: 2^31 - 1 bytes (Java buffers are int-indexed). */
  public static final long MAX_RESTORED_SIZE = Integer.MAX_VALUE;

  private static final Charset UTF_8 = Charset.forName("UTF-8");

  private final byte[] data;
  private final int versionMinor;
  private final int headerSize;
  private final int entrySize;
  private final int namesSize;
  private final int payloadStart;
  private final long restoredSize;
  private final long skeletonSize;
  private final List<Segment> segments;

  private Sidecar(
      byte[] data,
      int versionMinor,
      int headerSize,
      int entrySize,
      int namesSize,
      int payloadStart,
      long restoredSize,
      long skeletonSize,
      List<Segment> segments) {
    this.data = data;
    this.versionMinor = versionMinor;
    this.headerSize = headerSize;
    this.entrySize = entrySize;
    this.namesSize = namesSize;
    this.payloadStart = payloadStart;
    this.restoredSize = restoredSize;
    this.skeletonSize = skeletonSize;
    this.segments = segments;
  }

  /** Parses and validates a sidecar with the format's own limit on the restored size. */
  public static Sidecar parse(byte[] data) throws BundleFormatException {
    return parse(data, MAX_RESTORED_SIZE);
  }

  /**
   * Parses and validates a sidecar (checks 1 to 13 of the format spec, section 10).
   *
   * @param data the whole sidecar file
   * @param maxRestoredSize this reader's own limit on {@code restored_size} (at most 2^31 - 1)
   * @throws BundleFormatException naming the first field that fails a check
   */
  public static Sidecar parse(byte[] data, long maxRestoredSize) throws BundleFormatException {
    // 1. magic (the file must hold at least magic, versions and header_size).
    if (data.length < 12) {
      throw new BundleFormatException(
          0,
          "magic",
          "file has " + data.length + " bytes, fewer than the 12 of magic..header_size");
    }
    for (int i = 0; i < MAGIC.length; i++) {
      if (data[i] != MAGIC[i]) {
        throw new BundleFormatException(0, "magic", "not a keras-dc sidecar (expected 'KDCW')");
      }
    }
    // 2. version_major.
    int versionMajor = LittleEndian.u16(data, 4);
    if (versionMajor != VERSION_MAJOR) {
      throw new BundleFormatException(
          4,
          "version_major",
          "version " + versionMajor + " is not supported (this reader implements " + VERSION_MAJOR
              + ")");
    }
    int versionMinor = LittleEndian.u16(data, 6);
    // 3. header_size.
    long headerSizeValue = LittleEndian.u32(data, 8);
    if (headerSizeValue < MIN_HEADER_SIZE
        || headerSizeValue > MAX_HEADER_SIZE
        || headerSizeValue > data.length) {
      throw new BundleFormatException(
          8,
          "header_size",
          headerSizeValue + " is outside [" + MIN_HEADER_SIZE + ", min(" + MAX_HEADER_SIZE
              + ", file length " + data.length + ")]");
    }
    int headerSize = (int) headerSizeValue;
    // 4. header_crc32: the last four bytes of the header.
    int headerCrcOffset = headerSize - 4;
    long headerCrc = LittleEndian.u32(data, headerCrcOffset);
    long actualHeaderCrc = crc32(data, 0, headerCrcOffset);
    if (headerCrc != actualHeaderCrc) {
      throw new BundleFormatException(
          headerCrcOffset, "header_crc32", crcMismatch(headerCrc, actualHeaderCrc));
    }
    // 5. entry_size.
    long entrySizeValue = LittleEndian.u32(data, 16);
    if (entrySizeValue < MIN_ENTRY_SIZE || entrySizeValue > MAX_ENTRY_SIZE) {
      throw new BundleFormatException(
          16,
          "entry_size",
          entrySizeValue + " is outside [" + MIN_ENTRY_SIZE + ", " + MAX_ENTRY_SIZE + "]");
    }
    int entrySize = (int) entrySizeValue;
    // 6. restored_size.
    long restoredSize = LittleEndian.u64(data, 32);
    long limit = Math.min(maxRestoredSize, MAX_RESTORED_SIZE);
    if (restoredSize < 0 || restoredSize > limit) {
      throw new BundleFormatException(
          32,
          "restored_size",
          unsigned(restoredSize) + " bytes exceeds the limit of " + limit + " bytes");
    }
    // 7. segment_count against the bytes after the header.
    long segmentCount = LittleEndian.u32(data, 12);
    int afterHeader = data.length - headerSize;
    if (segmentCount > afterHeader / entrySize) {
      throw new BundleFormatException(
          12,
          "segment_count",
          segmentCount + " entries of " + entrySize + " bytes do not fit in the " + afterHeader
              + " bytes after the header");
    }
    int tableEnd = headerSize + (int) segmentCount * entrySize;
    // 8. names_size against the bytes after the segment table.
    long namesSizeValue = LittleEndian.u32(data, 20);
    if (namesSizeValue > data.length - tableEnd) {
      throw new BundleFormatException(
          20,
          "names_size",
          namesSizeValue + " bytes do not fit in the " + (data.length - tableEnd)
              + " bytes after the segment table");
    }
    int namesSize = (int) namesSizeValue;
    int namesStart = tableEnd;
    int payloadStart = namesStart + namesSize;
    // 9. payload_size = the bytes after the name table.
    long payloadSize = LittleEndian.u64(data, 24);
    long payloadPresent = data.length - payloadStart;
    if (payloadSize != payloadPresent) {
      throw new BundleFormatException(
          24,
          "payload_size",
          unsigned(payloadSize) + " differs from the " + payloadPresent
              + " bytes after the name table");
    }
    // 10. table_crc32 over the segment table and the name table.
    long tableCrc = LittleEndian.u32(data, 112);
    long actualTableCrc = crc32(data, headerSize, payloadStart - headerSize);
    if (tableCrc != actualTableCrc) {
      throw new BundleFormatException(112, "table_crc32", crcMismatch(tableCrc, actualTableCrc));
    }
    // 11. every entry.
    List<Segment> segments = new ArrayList<Segment>((int) segmentCount);
    long previousEnd = 0;
    long assigned = 0;
    long sizes = 0;
    for (int i = 0; i < (int) segmentCount; i++) {
      int e = headerSize + i * entrySize;
      Segment segment =
          parseEntry(
              data, i, e, previousEnd, restoredSize, payloadSize - assigned, namesStart, namesSize,
              payloadStart + (int) assigned);
      segments.add(segment);
      previousEnd = segment.getOffset() + segment.getSize();
      assigned += segment.getPayloadSize();
      sizes += segment.getSize();
    }
    // 12. the entries' payloads fill the payload area.
    if (assigned != payloadSize) {
      throw new BundleFormatException(
          24,
          "payload_size",
          payloadSize + " differs from the sum of the segments' payload_size, " + assigned);
    }
    // 13. skeleton_size = restored_size - sum of segment sizes.
    long skeletonSize = LittleEndian.u64(data, 40);
    if (skeletonSize != restoredSize - sizes) {
      throw new BundleFormatException(
          40,
          "skeleton_size",
          unsigned(skeletonSize) + " differs from restored_size - sum(size) = "
              + (restoredSize - sizes));
    }
    return new Sidecar(
        data,
        versionMinor,
        headerSize,
        entrySize,
        namesSize,
        payloadStart,
        restoredSize,
        skeletonSize,
        Collections.unmodifiableList(segments));
  }

  private static Segment parseEntry(
      byte[] data,
      int i,
      int e,
      long previousEnd,
      long restoredSize,
      long unassignedPayload,
      int namesStart,
      int namesSize,
      int payloadOffset)
      throws BundleFormatException {
    String prefix = "segment[" + i + "]";
    int dtype = LittleEndian.u8(data, e + 40);
    if (dtype >= Segment.ESIZES.length) {
      throw new BundleFormatException(e + 40, prefix + ".dtype", "unknown dtype code " + dtype);
    }
    int encoding = LittleEndian.u8(data, e + 41);
    if (encoding >= Segment.ENCODING_NAMES.length) {
      throw new BundleFormatException(
          e + 41, prefix + ".encoding", "unknown encoding code " + encoding);
    }
    for (int r = 42; r < 48; r++) {
      if (data[e + r] != 0) {
        throw new BundleFormatException(
            e + 42, prefix + ".reserved", "reserved byte " + (r - 42) + " is not zero");
      }
    }
    long channels = LittleEndian.u32(data, e + 28);
    if (channels < 1) {
      throw new BundleFormatException(e + 28, prefix + ".channels", "channels is 0");
    }
    long size = LittleEndian.u64(data, e + 8);
    long esize = Segment.ESIZES[dtype];
    if (size < 0 || size % (channels * esize) != 0) {
      throw new BundleFormatException(
          e + 8,
          prefix + ".size",
          unsigned(size) + " is not a multiple of channels x esize = " + channels
              + " x " + esize);
    }
    long offset = LittleEndian.u64(data, e);
    if (offset < previousEnd) {
      throw new BundleFormatException(
          e,
          prefix + ".offset",
          unsigned(offset) + " overlaps the previous segment, which ends at "
              + previousEnd);
    }
    if (size > restoredSize || offset > restoredSize - size) {
      throw new BundleFormatException(
          e + 8,
          prefix + ".size",
          "offset + size = " + offset + " + " + size + " exceeds restored_size " + restoredSize);
    }
    long payloadSize = LittleEndian.u64(data, e + 16);
    if (payloadSize < 0 || payloadSize > unassignedPayload) {
      throw new BundleFormatException(
          e + 16,
          prefix + ".payload_size",
          unsigned(payloadSize) + " exceeds the " + unassignedPayload
              + " payload bytes not yet assigned");
    }
    long nameOffset = LittleEndian.u32(data, e + 32);
    long nameSize = LittleEndian.u32(data, e + 36);
    // Both name checks report name_offset, as the Python reader does.
    if (nameOffset > namesSize || nameSize > namesSize - nameOffset) {
      throw new BundleFormatException(
          e + 32,
          prefix + ".name_offset",
          "name [" + nameOffset + ", " + (nameOffset + nameSize) + ") lies outside the "
              + namesSize + "-byte name table");
    }
    int nameStart = namesStart + (int) nameOffset;
    int bad = Utf8.firstInvalid(data, nameStart, (int) nameSize);
    if (bad >= 0) {
      throw new BundleFormatException(
          e + 32,
          prefix + ".name_offset",
          "name is not valid UTF-8 (byte " + (bad - nameStart) + " of the name)");
    }
    String name = new String(data, nameStart, (int) nameSize, UTF_8);
    int crc = (int) LittleEndian.u32(data, e + 24);
    return new Segment(
        i, e, offset, size, payloadOffset, (int) payloadSize, crc, channels, dtype, encoding, name);
  }

  static long crc32(byte[] data, int offset, int length) {
    CRC32 crc = new CRC32();
    crc.update(data, offset, length);
    return crc.getValue();
  }

  static String crcMismatch(long stored, long actual) {
    return String.format("stored CRC-32 0x%08x, computed 0x%08x", stored, actual);
  }

  /** The minor version of the file (any is accepted). */
  public int getVersionMinor() {
    return versionMinor;
  }

  /** Bytes in the header. */
  public int getHeaderSize() {
    return headerSize;
  }

  /** Bytes per segment-table entry. */
  public int getEntrySize() {
    return entrySize;
  }

  /** Bytes in the name table. */
  public int getNamesSize() {
    return namesSize;
  }

  /** Sidecar offset of the payload area. */
  public int getPayloadStart() {
    return payloadStart;
  }

  /** Bytes in the payload area. */
  public long getPayloadSize() {
    return data.length - payloadStart;
  }

  /** Bytes of the restored file R. */
  public long getRestoredSize() {
    return restoredSize;
  }

  /** Bytes of the skeleton S. */
  public long getSkeletonSize() {
    return skeletonSize;
  }

  /** SHA-256 of the restored file (a copy). */
  public byte[] getRestoredSha256() {
    return Arrays.copyOfRange(data, 48, 80);
  }

  /** SHA-256 of the skeleton (a copy). */
  public byte[] getSkeletonSha256() {
    return Arrays.copyOfRange(data, 80, 112);
  }

  /** The segments in table order. */
  public List<Segment> getSegments() {
    return segments;
  }

  /** The sidecar bytes this was parsed from (not a copy). */
  byte[] data() {
    return data;
  }

  /** Decimal text of a u64 read into a long (values above 2^63 - 1 come back negative). */
  static String unsigned(long value) {
    return value >= 0
        ? Long.toString(value)
        : new BigInteger(Long.toHexString(value), 16).toString();
  }

  /** Lower-case hex of bytes, for messages and the CLI. */
  static String hex(byte[] bytes) {
    StringBuilder s = new StringBuilder(bytes.length * 2);
    for (byte b : bytes) {
      s.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
    }
    return s.toString();
  }
}
