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

  /** Parses the HuffmanStream field {@code name} (section 6) and moves past it. */
  HuffmanStream stream(String name, int maxAlphabet) throws BundleFormatException {
    HuffmanStream stream = HuffmanStream.parse(b, p, end, field(name), maxAlphabet);
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
