package dev.kerasdc.bundle;

import dev.kerasdc.bundle.Format.Encoding;
import dev.kerasdc.bundle.Format.Packed;
import java.util.ArrayList;
import java.util.List;

/**
 * Decodes a PACKED payload (format spec 7.10, since version 1.4): a varint {@code part_count},
 * one descriptor per part (varint {@code size}, u8 {@code dtype}, u8 {@code encoding}, varint
 * {@code channels}, varint {@code payload_size}), then the parts' payloads. Each part is a segment
 * of its own ({@link SegmentEntry#part}), decoded in order by the {@link SegmentDecoder}, its
 * HuffmanStreams with the compact header of 6.5.
 */
final class PackedDecoder {
  private PackedDecoder() {}

  /** Decodes every part of {@code payload} into {@code out}, in order. */
  static void decode(Payload payload, SegmentDecoder decoder, Output out)
      throws BundleFormatException {
    for (SegmentEntry part : parts(payload)) {
      decoder.decodePart(new Payload(payload.b, part), out);
    }
  }

  /**
   * Reads and checks the part table of {@code payload} (section 10, in the order the fields are
   * stored); the parts' payloads are checked when they are decoded.
   */
  static List<SegmentEntry> parts(Payload payload) throws BundleFormatException {
    SegmentEntry entry = payload.entry;
    if (entry.getDtype() != Format.Dtype.BYTES) {
      throw new BundleFormatException(
          entry.fieldOffset(Format.Entry.DTYPE),
          entry.field("dtype"),
          "a PACKED segment has dtype bytes (0), not " + entry.getDtypeName());
    }
    if (entry.getChannels() != 1) {
      throw new BundleFormatException(
          entry.fieldOffset(Format.Entry.CHANNELS),
          entry.field("channels"),
          "a PACKED segment has 1 channel, not " + entry.getChannels());
    }
    int countAt = payload.p;
    long count = payload.varint("part_count");
    long left = payload.end - payload.p;
    if (count < 1 || count > left / Packed.MIN_PART_SIZE) {
      throw new BundleFormatException(
          countAt,
          payload.field("part_count"),
          count + " parts of at least " + Packed.MIN_PART_SIZE + " bytes each do not fit in the "
              + left + " bytes left (at least 1 part)");
    }
    List<SegmentEntry> parts = new ArrayList<SegmentEntry>((int) count);
    long covered = 0;
    long assigned = 0;
    for (int k = 0; k < (int) count; k++) {
      String prefix = "part[" + k + "].";
      int sizeAt = payload.p;
      long size = payload.varint(prefix + "size");
      if (size > entry.getSize() - covered) {
        throw new BundleFormatException(
            sizeAt,
            payload.field(prefix + "size"),
            size + " exceeds the " + (entry.getSize() - covered)
                + " bytes of the segment left to parts");
      }
      int dtypeAt = payload.p;
      int dtype = payload.u8(prefix + "dtype");
      if (!Format.Dtype.isKnown(dtype)) {
        throw new BundleFormatException(
            dtypeAt, payload.field(prefix + "dtype"), "unknown dtype code " + dtype);
      }
      int encodingAt = payload.p;
      int encoding = payload.u8(prefix + "encoding");
      if (!Encoding.isPart(encoding)) {
        throw new BundleFormatException(
            encodingAt,
            payload.field(prefix + "encoding"),
            encoding + " is not the code of an encoding other than PACKED");
      }
      int channelsAt = payload.p;
      long channels = payload.varint(prefix + "channels");
      if (channels < 1 || channels > Packed.MAX_CHANNELS) {
        throw new BundleFormatException(
            channelsAt,
            payload.field(prefix + "channels"),
            channels + " is not in 1 ... " + Packed.MAX_CHANNELS);
      }
      long esize = Format.Dtype.ESIZES[dtype];
      if (size % (channels * esize) != 0) {
        throw new BundleFormatException(
            sizeAt,
            payload.field(prefix + "size"),
            size + " is not a multiple of channels x esize = " + channels + " x " + esize);
      }
      int payloadSizeAt = payload.p;
      long payloadSize = payload.varint(prefix + "payload_size");
      long unassigned = payload.end - payload.p - assigned;
      if (payloadSize > unassigned) {
        throw new BundleFormatException(
            payloadSizeAt,
            payload.field(prefix + "payload_size"),
            payloadSize + " exceeds the " + unassigned + " payload bytes not yet assigned");
      }
      // The payload offset is relative until the end of the table is known.
      parts.add(
          entry.part(
              k, entry.getOffset() + covered, size, dtype, channels, encoding, (int) assigned,
              (int) payloadSize, payloadSizeAt));
      covered += size;
      assigned += payloadSize;
    }
    if (covered != entry.getSize()) {
      throw new BundleFormatException(
          entry.fieldOffset(Format.Entry.SIZE),
          entry.field("size"),
          "the parts cover " + covered + " of the segment's " + entry.getSize() + " bytes");
    }
    int tableEnd = payload.p;
    if (tableEnd + assigned != payload.end) {
      throw new BundleFormatException(
          tableEnd + assigned,
          entry.field("payload_size"),
          (payload.end - tableEnd - assigned) + " bytes after the last part's payload");
    }
    for (int k = 0; k < parts.size(); k++) {
      SegmentEntry part = parts.get(k);
      parts.set(
          k,
          part.withPayload(
              part.getEncoding(), tableEnd + part.getPayloadOffset(), part.getPayloadSize()));
    }
    return parts;
  }
}
