package dev.kerasdc.bundle;

import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Decodes a ZLIB payload (format spec 7.2): one zlib stream that inflates to exactly the segment's
 * size, with nothing after it.
 */
final class ZlibDecoder {
  private ZlibDecoder() {}

  /** Inflates {@code payload} into {@code out} with an output limit of the segment's size. */
  static void decode(Payload payload, Inflater inflater, Output out)
      throws BundleFormatException {
    int start = payload.start;
    String field = payload.field("payload");
    long size = payload.entry.getSize();
    inflater.setInput(payload.b, start, payload.end - start);
    long remaining = size;
    int stalls = 0;
    while (remaining > 0) {
      if (out.pos == out.limit) {
        out.flush();
      }
      int want = (int) Math.min(out.limit - out.pos, remaining);
      int n = inflate(inflater, out.buf, out.pos, want, start, field);
      out.pos += n;
      remaining -= n;
      if (n > 0) {
        stalls = 0;
        continue;
      }
      long at = start + inflater.getBytesRead();
      long produced = size - remaining;
      if (inflater.finished()) {
        throw new BundleFormatException(
            at, field, "zlib stream ends after " + produced + " bytes; size is " + size);
      }
      if (inflater.needsDictionary()) {
        throw new BundleFormatException(at, field, "zlib stream needs a preset dictionary");
      }
      if (inflater.needsInput() || ++stalls > 4) {
        throw new BundleFormatException(
            at, field, "zlib stream is truncated after " + produced + " of " + size + " bytes");
      }
    }
    // Exactly size bytes are out: the stream must end here, with nothing after it.
    byte[] probe = new byte[1];
    for (int i = 0; !inflater.finished(); i++) {
      int n = inflate(inflater, probe, 0, 1, start, field);
      long at = start + inflater.getBytesRead();
      if (n > 0) {
        throw new BundleFormatException(
            at, field, "zlib stream inflates to more than size = " + size + " bytes");
      }
      boolean stuck = inflater.needsInput() || inflater.needsDictionary() || i > 4;
      if (!inflater.finished() && stuck) {
        throw new BundleFormatException(
            at, field, "zlib stream does not end after size = " + size + " bytes");
      }
    }
    if (inflater.getRemaining() != 0) {
      throw new BundleFormatException(
          start + inflater.getBytesRead(),
          field,
          inflater.getRemaining() + " bytes follow the end of the zlib stream");
    }
  }

  private static int inflate(
      Inflater inflater, byte[] target, int offset, int length, int start, String field)
      throws BundleFormatException {
    try {
      return inflater.inflate(target, offset, length);
    } catch (DataFormatException e) {
      throw new BundleFormatException(
          start + inflater.getBytesRead(), field, "zlib error: " + e.getMessage());
    }
  }
}
