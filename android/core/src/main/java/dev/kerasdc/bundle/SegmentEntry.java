package dev.kerasdc.bundle;

/**
 * One validated segment-table entry of a sidecar (format spec section 5): a byte range of the
 * restored file and where its encoded bytes lie in the sidecar. Instances come from {@link
 * Sidecar#parse}.
 */
public final class SegmentEntry {
  private final int index;
  private final int entryOffset;
  private final long offset;
  private final long size;
  private final int payloadOffset;
  private final int payloadSize;
  private final int payloadCrc32;
  private final long channels;
  private final int dtype;
  private final int encoding;
  private final String name;
  /** k of a part of a PACKED segment (section 7.10); -1 for a segment. */
  private final int part;
  /** Sidecar offset of the field that holds {@code payload_size}: the entry's, or the part's. */
  private final int payloadSizeAt;

  /**
   * An entry; {@code part} is k for a part of a PACKED segment (section 7.10), -1 for a
   * segment-table entry, and {@code payloadSizeAt} the sidecar offset of its {@code payload_size}
   * field (the entry's, or the part descriptor's).
   */
  SegmentEntry(
      int index,
      int entryOffset,
      long offset,
      long size,
      int payloadOffset,
      int payloadSize,
      int payloadCrc32,
      long channels,
      int dtype,
      int encoding,
      String name,
      int part,
      int payloadSizeAt) {
    this.index = index;
    this.entryOffset = entryOffset;
    this.offset = offset;
    this.size = size;
    this.payloadOffset = payloadOffset;
    this.payloadSize = payloadSize;
    this.payloadCrc32 = payloadCrc32;
    this.channels = channels;
    this.dtype = dtype;
    this.encoding = encoding;
    this.name = name;
    this.part = part;
    this.payloadSizeAt = payloadSizeAt;
  }

  /** Position in the segment table. */
  public int getIndex() {
    return index;
  }

  /** Byte offset of the segment in the restored file. */
  public long getOffset() {
    return offset;
  }

  /** Byte length of the segment in the restored file. */
  public long getSize() {
    return size;
  }

  /** Sidecar file offset of the segment's payload. */
  public int getPayloadOffset() {
    return payloadOffset;
  }

  /** Bytes of the segment's payload. */
  public int getPayloadSize() {
    return payloadSize;
  }

  /** The stored CRC-32 of the payload (as an unsigned 32-bit pattern). */
  public int getPayloadCrc32() {
    return payloadCrc32;
  }

  /** Number of equal contiguous channel slices (at least 1). */
  public long getChannels() {
    return channels;
  }

  /** Element type code (section 5). */
  public int getDtype() {
    return dtype;
  }

  /** Element type name, e.g. {@code float32}. */
  public String getDtypeName() {
    return Format.Dtype.NAMES[dtype];
  }

  /** Element size in bytes. */
  public int getElementSize() {
    return Format.Dtype.ESIZES[dtype];
  }

  /** Payload encoding code (section 7). */
  public int getEncoding() {
    return encoding;
  }

  /** Payload encoding name, e.g. {@code CLUSTERED_SPARSE}. */
  public String getEncodingName() {
    return Format.Encoding.NAMES[encoding];
  }

  /** The segment's name (for reports only; may be empty; empty for a part). */
  public String getName() {
    return name;
  }

  /** Whether this is a part of a PACKED segment (section 7.10), not a segment-table entry. */
  public boolean isPart() {
    return part >= 0;
  }

  /** Sidecar file offset of this segment's table entry. */
  int entryOffset() {
    return entryOffset;
  }

  /** Sidecar file offset of one of this entry's fields, e.g. {@link Format.Entry#PAYLOAD_SIZE}. */
  int fieldOffset(int field) {
    return entryOffset + field;
  }

  /** Sidecar file offset of {@code payload_size}: the entry's field, or the part descriptor's. */
  int payloadSizeOffset() {
    return payloadSizeAt;
  }

  /** Elements of the segment: {@code size / esize}. */
  long elements() {
    return size / getElementSize();
  }

  /**
   * This entry with another encoding and payload range, the same index, fields and names: the
   * entry of a DELTA payload's inner payload (section 7.9), whose errors name this segment.
   */
  SegmentEntry withPayload(int encoding, int payloadOffset, int payloadSize) {
    return new SegmentEntry(
        index, entryOffset, offset, size, payloadOffset, payloadSize, payloadCrc32, channels,
        dtype, encoding, name, part, payloadSizeAt);
  }

  /**
   * The entry of a MASKED payload's kept submatrix (section 7.12): this entry's offset, dtype,
   * index and names (its errors name this segment or part, and inside a PACKED part its streams
   * have the compact header of 6.5), with {@code size} = r · m · esize, {@code channels} = r (one
   * slice per kept row), and the inner encoding and payload range.
   */
  SegmentEntry submatrix(
      int encoding, long size, long channels, int payloadOffset, int payloadSize) {
    return new SegmentEntry(
        index, entryOffset, offset, size, payloadOffset, payloadSize, payloadCrc32, channels,
        dtype, encoding, name, part, payloadSizeAt);
  }

  /**
   * Part {@code k} of this PACKED segment (section 7.10), read as a segment of its own: its
   * errors are named {@code segment[i].part[k].<field>}, and its {@code payload_size} is the
   * descriptor's varint at {@code payloadSizeAt}.
   */
  SegmentEntry part(
      int k,
      long offset,
      long size,
      int dtype,
      long channels,
      int encoding,
      int payloadOffset,
      int payloadSize,
      int payloadSizeAt) {
    return new SegmentEntry(
        index, entryOffset, offset, size, payloadOffset, payloadSize, payloadCrc32, channels,
        dtype, encoding, "", k, payloadSizeAt);
  }

  /** Field name prefix for errors, e.g. {@code segment[3]} or {@code segment[3].part[2]}. */
  String field() {
    return part >= 0 ? "segment[" + index + "].part[" + part + "]" : "segment[" + index + "]";
  }

  /** The name of one of this segment's fields for errors, e.g. {@code segment[3].payload_size}. */
  String field(String name) {
    return field() + "." + name;
  }

  @Override
  public String toString() {
    return field()
        + " '"
        + name
        + "' "
        + getDtypeName()
        + " "
        + getEncodingName()
        + " offset="
        + offset
        + " size="
        + size
        + " payload="
        + payloadSize
        + " channels="
        + channels;
  }
}
