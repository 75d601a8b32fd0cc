package dev.kerasdc.bundle;

import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Decodes a ZLIB payload (format spec 7.2): one zlib stream that inflates to exactly the segment's
 * size, with nothing after it; and a ZLIB_DICT payload (7.11): the same with the preset dictionary,
 * which its header must name (FDICT set, {@code DICTID} its Adler-32).
 */
final class ZlibDecoder {
  private ZlibDecoder() {}

  /**
   * Inflates {@code payload} into {@code out} with an output limit of the segment's size; with a
   * {@code dictionary} (ZLIB_DICT), after checking that the stream's header names it.
   */
  static void decode(Payload payload, Inflater inflater, Output out, byte[] dictionary)
      throws BundleFormatException {
    int start = payload.start;
    String field = payload.field("payload");
    long size = payload.entry.getSize();
    if (dictionary != null) {
      checkDictionaryHeader(payload, field);
    }
    inflater.setInput(payload.b, start, payload.end - start);
    long remaining = size;
    int stalls = 0;
    while (remaining > 0) {
      if (out.pos == out.limit) {
        out.flush();
      }
      int want = (int) Math.min(out.limit - out.pos, remaining);
      int n = inflate(inflater, out.buf, out.pos, want, start, field, dictionary);
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
      int n = inflate(inflater, probe, 0, 1, start, field, dictionary);
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

  /**
   * FDICT is set in the FLG byte, and {@code DICTID} is the Adler-32 of the dictionary (7.11), so
   * that the stream asks for exactly this dictionary.
   */
  private static void checkDictionaryHeader(Payload payload, String field)
      throws BundleFormatException {
    int flg = payload.start + Format.ZlibDict.FLG;
    if (flg >= payload.end || (payload.b[flg] & Format.ZlibDict.FDICT) == 0) {
      throw new BundleFormatException(
          Math.min(flg, payload.end), field, "a ZLIB_DICT stream must set FDICT in its header");
    }
    int dictId = payload.start + Format.ZlibDict.DICTID;
    if (payload.end - dictId < Format.ZlibDict.DICTID_SIZE
        || readDictId(payload.b, dictId) != Format.ZlibDict.ADLER32) {
      throw new BundleFormatException(
          dictId,
          field,
          "DICTID must be the Adler-32 of the preset dictionary, "
              + Long.toHexString(Format.ZlibDict.ADLER32));
    }
  }

  /** The big-endian u32 {@code DICTID} (RFC 1950) at {@code at}. */
  private static long readDictId(byte[] b, int at) {
    long value = 0;
    for (int i = 0; i < Format.ZlibDict.DICTID_SIZE; i++) {
      value = value << 8 | (b[at + i] & 0xFF);
    }
    return value;
  }

  /**
   * One {@link Inflater#inflate} call; when the stream asks for the preset dictionary (its
   * header, checked before, names {@code dictionary}), sets it and inflates on. Without a
   * dictionary such a stream produces nothing, which the callers report.
   */
  private static int inflate(
      Inflater inflater,
      byte[] target,
      int offset,
      int length,
      int start,
      String field,
      byte[] dictionary)
      throws BundleFormatException {
    try {
      int n = inflater.inflate(target, offset, length);
      if (n == 0 && dictionary != null && inflater.needsDictionary()) {
        if ((inflater.getAdler() & 0xFFFFFFFFL) != Format.ZlibDict.ADLER32) {
          throw new BundleFormatException(
              start + Format.ZlibDict.DICTID, field, "DICTID does not name the dictionary");
        }
        inflater.setDictionary(dictionary);
        n = inflater.inflate(target, offset, length);
      }
      return n;
    } catch (DataFormatException e) {
      throw new BundleFormatException(
          start + inflater.getBytesRead(), field, "zlib error: " + e.getMessage());
    }
  }
}
