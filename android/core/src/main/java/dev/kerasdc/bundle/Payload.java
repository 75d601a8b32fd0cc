package dev.kerasdc.bundle;

/**
 * One segment's payload (format spec section 7) as its decoder reads it: the entry it belongs to
 * and a read position that moves over its fields in the order they are stored, each checked
 * against the bytes left in the payload before it is read (section 10).
 */
final class Payload {
  /** The sidecar bytes. */
  final byte[] b;
  final SegmentEntry entry;
  /** Sidecar offset of the first byte of the payload. */
  final int start;
  /** Sidecar offset just after the payload. */
  final int end;
  /** Sidecar offset of the next field to read. */
  int p;

  Payload(byte[] b, SegmentEntry entry) {
    this.b = b;
    this.entry = entry;
    this.start = entry.getPayloadOffset();
    this.end = start + entry.getPayloadSize();
    this.p = start;
  }

  /** The spec's name of a field of this segment, e.g. {@code segment[3].escape_run}. */
  String field(String name) {
    return entry.field(name);
  }

  /** Checks that {@code bytes} bytes are left for the field {@code name}. */
  void require(int bytes, String name) throws BundleFormatException {
    if (bytes > end - p) {
      throw new BundleFormatException(
          p, field(name),
          "truncated: needs " + bytes + " bytes, " + (end - p) + " left in the payload");
    }
  }

  /** Reads the u8 field {@code name}. */
  int u8(String name) throws BundleFormatException {
    require(1, name);
    return LittleEndian.u8(b, p++);
  }

  /** Reads the u16 field {@code name}. */
  int u16(String name) throws BundleFormatException {
    require(2, name);
    int v = LittleEndian.u16(b, p);
    p += 2;
    return v;
  }

  /**
   * Reads the varint field {@code name} (section 2): at most 9 bytes, minimal (no final 0x00
   * byte after the first), within the payload; any violation is reported at its first byte.
   */
  long varint(String name) throws BundleFormatException {
    int at = p;
    long value = 0;
    for (int shift = 0; ; shift += 7) {
      if (p == end) {
        throw new BundleFormatException(
            at, field(name), "truncated: the varint runs past the end of the payload");
      }
      int v = b[p++] & 0xFF;
      value |= (long) (v & Format.Varint.BITS) << shift;
      if ((v & Format.Varint.MORE) == 0) {
        if (v == 0 && p - at > 1) {
          throw new BundleFormatException(
              at, field(name), "the varint is not minimal (its last byte is 0x00)");
        }
        return value;
      }
      if (p - at == Format.Varint.MAX_SIZE) {
        throw new BundleFormatException(
            at, field(name), "a varint is at most " + Format.Varint.MAX_SIZE + " bytes long");
      }
    }
  }

  /**
   * Parses the HuffmanStream field {@code name} (section 6; in a part of a PACKED segment with
   * the compact header of 6.5) and moves past it.
   */
  HuffmanStream stream(String name, int maxAlphabet) throws BundleFormatException {
    HuffmanStream stream =
        entry.isPart()
            ? HuffmanStream.parseCompact(this, name, maxAlphabet)
            : HuffmanStream.parse(b, p, end, field(name), maxAlphabet);
    p = stream.end;
    return stream;
  }

  /** Checks that the payload ends here (section 7.7), reporting the first extra byte. */
  void requireEnd() throws BundleFormatException {
    if (p != end) {
      throw new BundleFormatException(
          p,
          field("payload_size"),
          (end - p) + " bytes follow the last stream of the payload");
    }
  }
}
