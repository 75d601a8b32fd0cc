package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Entry;
import dev.kerasdc.bundle.Format.Header;
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
  /** The major version this reader implements. */
  public static final int VERSION_MAJOR = Format.VERSION_MAJOR;

  /** The largest restored size the format allows: 2^31 - 1 bytes (Java buffers are int-indexed). */
  public static final long MAX_RESTORED_SIZE = Format.MAX_RESTORED_SIZE;

  private static final Charset UTF_8 = Charset.forName("UTF-8");

  private final byte[] data;
  private final int versionMinor;
  private final int headerSize;
  private final int entrySize;
  private final int namesSize;
  private final int payloadStart;
  private final long restoredSize;
  private final long skeletonSize;
  private final List<SegmentEntry> segments;

  private Sidecar(
      byte[] data,
      int versionMinor,
      int headerSize,
      int entrySize,
      int namesSize,
      int payloadStart,
      long restoredSize,
      long skeletonSize,
      List<SegmentEntry> segments) {
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
    if (data.length < Header.PREFIX_SIZE) {
      throw new BundleFormatException(
          Header.MAGIC,
          "magic",
          "file has " + data.length + " bytes, fewer than the " + Header.PREFIX_SIZE
              + " of magic..header_size");
    }
    for (int i = 0; i < Format.MAGIC.length; i++) {
      if (data[Header.MAGIC + i] != Format.MAGIC[i]) {
        throw new BundleFormatException(
            Header.MAGIC, "magic", "not a keras-dc sidecar (expected 'KDCW')");
      }
    }
    // 2. version_major.
    int versionMajor = LittleEndian.u16(data, Header.VERSION_MAJOR);
    if (versionMajor != Format.VERSION_MAJOR) {
      throw new BundleFormatException(
          Header.VERSION_MAJOR,
          "version_major",
          "version " + versionMajor + " is not supported (this reader implements "
              + Format.VERSION_MAJOR + ")");
    }
    int versionMinor = LittleEndian.u16(data, Header.VERSION_MINOR);
    // 3. header_size.
    long headerSizeValue = LittleEndian.u32(data, Header.HEADER_SIZE);
    if (headerSizeValue < Header.MIN_SIZE
        || headerSizeValue > Header.MAX_SIZE
        || headerSizeValue > data.length) {
      throw new BundleFormatException(
          Header.HEADER_SIZE,
          "header_size",
          headerSizeValue + " is outside [" + Header.MIN_SIZE + ", min(" + Header.MAX_SIZE
              + ", file length " + data.length + ")]");
    }
    int headerSize = (int) headerSizeValue;
    // 4. header_crc32: the last four bytes of the header.
    int headerCrcOffset = Header.headerCrc32(headerSize);
    long headerCrc = LittleEndian.u32(data, headerCrcOffset);
    long actualHeaderCrc = crc32(data, 0, headerCrcOffset);
    if (headerCrc != actualHeaderCrc) {
      throw new BundleFormatException(
          headerCrcOffset, "header_crc32", crcMismatch(headerCrc, actualHeaderCrc));
    }
    // 5. entry_size.
    long entrySizeValue = LittleEndian.u32(data, Header.ENTRY_SIZE);
    if (entrySizeValue < Entry.MIN_SIZE || entrySizeValue > Entry.MAX_SIZE) {
      throw new BundleFormatException(
          Header.ENTRY_SIZE,
          "entry_size",
          entrySizeValue + " is outside [" + Entry.MIN_SIZE + ", " + Entry.MAX_SIZE + "]");
    }
    int entrySize = (int) entrySizeValue;
    // 6. restored_size.
    long restoredSize = LittleEndian.u64(data, Header.RESTORED_SIZE);
    long limit = Math.min(maxRestoredSize, Format.MAX_RESTORED_SIZE);
    if (restoredSize < 0 || restoredSize > limit) {
      throw new BundleFormatException(
          Header.RESTORED_SIZE,
          "restored_size",
          unsigned(restoredSize) + " bytes exceeds the limit of " + limit + " bytes");
    }
    // 7. segment_count against the bytes after the header.
    long segmentCount = LittleEndian.u32(data, Header.SEGMENT_COUNT);
    int afterHeader = data.length - headerSize;
    if (segmentCount > afterHeader / entrySize) {
      throw new BundleFormatException(
          Header.SEGMENT_COUNT,
          "segment_count",
          segmentCount + " entries of " + entrySize + " bytes do not fit in the " + afterHeader
              + " bytes after the header");
    }
    int tableEnd = headerSize + (int) segmentCount * entrySize;
    // 8. names_size against the bytes after the segment table.
    long namesSizeValue = LittleEndian.u32(data, Header.NAMES_SIZE);
    if (namesSizeValue > data.length - tableEnd) {
      throw new BundleFormatException(
          Header.NAMES_SIZE,
          "names_size",
          namesSizeValue + " bytes do not fit in the " + (data.length - tableEnd)
              + " bytes after the segment table");
    }
    int namesSize = (int) namesSizeValue;
    int payloadStart = tableEnd + namesSize;
    // 9. payload_size = the bytes after the name table.
    long payloadSize = LittleEndian.u64(data, Header.PAYLOAD_SIZE);
    long payloadPresent = data.length - payloadStart;
    if (payloadSize != payloadPresent) {
      throw new BundleFormatException(
          Header.PAYLOAD_SIZE,
          "payload_size",
          unsigned(payloadSize) + " differs from the " + payloadPresent
              + " bytes after the name table");
    }
    // 10. table_crc32 over the segment table and the name table.
    long tableCrc = LittleEndian.u32(data, Header.TABLE_CRC32);
    long actualTableCrc = crc32(data, headerSize, payloadStart - headerSize);
    if (tableCrc != actualTableCrc) {
      throw new BundleFormatException(
          Header.TABLE_CRC32, "table_crc32", crcMismatch(tableCrc, actualTableCrc));
    }
    // 11. every entry.
    Table table = new Table(data, restoredSize, tableEnd, namesSize, payloadSize);
    List<SegmentEntry> segments = new ArrayList<SegmentEntry>((int) segmentCount);
    for (int i = 0; i < (int) segmentCount; i++) {
      segments.add(table.entry(i, headerSize + i * entrySize));
    }
    // 12. the entries' payloads fill the payload area.
    if (table.assigned != payloadSize) {
      throw new BundleFormatException(
          Header.PAYLOAD_SIZE,
          "payload_size",
          payloadSize + " differs from the sum of the segments' payload_size, " + table.assigned);
    }
    // 13. skeleton_size = restored_size - sum of segment sizes.
    long skeletonSize = LittleEndian.u64(data, Header.SKELETON_SIZE);
    if (skeletonSize != restoredSize - table.sizes) {
      throw new BundleFormatException(
          Header.SKELETON_SIZE,
          "skeleton_size",
          unsigned(skeletonSize) + " differs from restored_size - sum(size) = "
              + (restoredSize - table.sizes));
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

  /**
   * Check 11 (section 10) entry by entry, in table order: what the header fixed, and what the
   * entries read so far have used of the restored file and the payload area.
   */
  private static final class Table {
    private final byte[] data;
    private final long restoredSize;
    private final int namesStart;
    private final int namesSize;
    private final long payloadSize;
    private final int payloadStart;
    /** End of the previous segment in R. */
    private long previousEnd;
    /** Payload bytes assigned to the entries read so far. */
    long assigned;
    /** Sum of the entries' sizes so far. */
    long sizes;

    Table(byte[] data, long restoredSize, int namesStart, int namesSize, long payloadSize) {
      this.data = data;
      this.restoredSize = restoredSize;
      this.namesStart = namesStart;
      this.namesSize = namesSize;
      this.payloadSize = payloadSize;
      this.payloadStart = namesStart + namesSize;
    }

    /** Validates entry {@code i} at file offset {@code e}. */
    SegmentEntry entry(int i, int e) throws BundleFormatException {
      String prefix = "segment[" + i + "]";
      int dtype = LittleEndian.u8(data, e + Entry.DTYPE);
      if (!Format.Dtype.isKnown(dtype)) {
        throw new BundleFormatException(
            e + Entry.DTYPE, prefix + ".dtype", "unknown dtype code " + dtype);
      }
      int encoding = LittleEndian.u8(data, e + Entry.ENCODING);
      if (!Format.Encoding.isKnown(encoding)) {
        throw new BundleFormatException(
            e + Entry.ENCODING, prefix + ".encoding", "unknown encoding code " + encoding);
      }
      for (int r = 0; r < Entry.RESERVED_SIZE; r++) {
        if (data[e + Entry.RESERVED + r] != 0) {
          throw new BundleFormatException(
              e + Entry.RESERVED, prefix + ".reserved", "reserved byte " + r + " is not zero");
        }
      }
      long channels = LittleEndian.u32(data, e + Entry.CHANNELS);
      if (channels < 1) {
        throw new BundleFormatException(e + Entry.CHANNELS, prefix + ".channels", "channels is 0");
      }
      long size = LittleEndian.u64(data, e + Entry.SIZE);
      long esize = Format.Dtype.ESIZES[dtype];
      if (size < 0 || size % (channels * esize) != 0) {
        throw new BundleFormatException(
            e + Entry.SIZE,
            prefix + ".size",
            unsigned(size) + " is not a multiple of channels x esize = " + channels
                + " x " + esize);
      }
      long offset = LittleEndian.u64(data, e + Entry.OFFSET);
      if (offset < previousEnd) {
        throw new BundleFormatException(
            e + Entry.OFFSET,
            prefix + ".offset",
            unsigned(offset) + " overlaps the previous segment, which ends at "
                + previousEnd);
      }
      if (size > restoredSize || offset > restoredSize - size) {
        throw new BundleFormatException(
            e + Entry.SIZE,
            prefix + ".size",
            "offset + size = " + offset + " + " + size + " exceeds restored_size "
                + restoredSize);
      }
      long entryPayload = LittleEndian.u64(data, e + Entry.PAYLOAD_SIZE);
      long unassigned = payloadSize - assigned;
      if (entryPayload < 0 || entryPayload > unassigned) {
        throw new BundleFormatException(
            e + Entry.PAYLOAD_SIZE,
            prefix + ".payload_size",
            unsigned(entryPayload) + " exceeds the " + unassigned
                + " payload bytes not yet assigned");
      }
      long nameOffset = LittleEndian.u32(data, e + Entry.NAME_OFFSET);
      long nameSize = LittleEndian.u32(data, e + Entry.NAME_SIZE);
      // Both name checks report name_offset (section 10, check 11 names the name as a whole).
      if (nameOffset > namesSize || nameSize > namesSize - nameOffset) {
        throw new BundleFormatException(
            e + Entry.NAME_OFFSET,
            prefix + ".name_offset",
            "name [" + nameOffset + ", " + (nameOffset + nameSize) + ") lies outside the "
                + namesSize + "-byte name table");
      }
      int nameStart = namesStart + (int) nameOffset;
      int bad = Utf8.firstInvalid(data, nameStart, (int) nameSize);
      if (bad >= 0) {
        throw new BundleFormatException(
            e + Entry.NAME_OFFSET,
            prefix + ".name_offset",
            "name is not valid UTF-8 (byte " + (bad - nameStart) + " of the name)");
      }
      String name = new String(data, nameStart, (int) nameSize, UTF_8);
      int crc = (int) LittleEndian.u32(data, e + Entry.PAYLOAD_CRC32);
      SegmentEntry entry =
          new SegmentEntry(
              i, e, offset, size, payloadStart + (int) assigned, (int) entryPayload, crc,
              channels, dtype, encoding, name, -1, e + Entry.PAYLOAD_SIZE);
      previousEnd = offset + size;
      assigned += entryPayload;
      sizes += size;
      return entry;
    }
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
    return Arrays.copyOfRange(
        data, Header.RESTORED_SHA256, Header.RESTORED_SHA256 + Format.SHA256_SIZE);
  }

  /** SHA-256 of the skeleton (a copy). */
  public byte[] getSkeletonSha256() {
    return Arrays.copyOfRange(
        data, Header.SKELETON_SHA256, Header.SKELETON_SHA256 + Format.SHA256_SIZE);
  }

  /** The segments in table order. */
  public List<SegmentEntry> getSegments() {
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
