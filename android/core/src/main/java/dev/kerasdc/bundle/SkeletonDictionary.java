package dev.kerasdc.bundle;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * ZLIB_DICT's preset dictionary (format spec 7.11): the class-path resource {@code
 * dev/kerasdc/bundle/skeleton.zdict}, read once and checked against the size and SHA-256 that the
 * spec names ({@link Format.ZlibDict}), so that a reader never decodes with other bytes. A missing
 * or different resource is an installation error ({@link IllegalStateException}), not a property
 * of the bundle.
 */
final class SkeletonDictionary {
  private SkeletonDictionary() {}

  /** The checked dictionary, read on first use (a race reads the same bytes twice). */
  private static volatile byte[] dictionary;

  /** The dictionary's bytes; callers must not modify them. */
  static byte[] bytes() {
    byte[] d = dictionary;
    if (d == null) {
      d = checked(read());
      dictionary = d;
    }
    return d;
  }

  private static byte[] read() {
    InputStream in = SkeletonDictionary.class.getResourceAsStream(Format.ZlibDict.RESOURCE);
    if (in == null) {
      throw new IllegalStateException(
          "the ZLIB_DICT dictionary (resource dev/kerasdc/bundle/"
              + Format.ZlibDict.RESOURCE
              + ") is not on the class path");
    }
    try {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream(Format.ZlibDict.SIZE);
      byte[] buffer = new byte[Format.ZlibDict.SIZE];
      for (int n; (n = in.read(buffer)) >= 0 && bytes.size() <= Format.ZlibDict.SIZE; ) {
        bytes.write(buffer, 0, n);
      }
      return bytes.toByteArray();
    } catch (IOException e) {
      throw new IllegalStateException("the ZLIB_DICT dictionary cannot be read: " + e, e);
    } finally {
      try {
        in.close();
      } catch (IOException ignored) {
        // read already, or failed above
      }
    }
  }

  /** {@code data} if it is the dictionary of the spec (its size and SHA-256), else an error. */
  static byte[] checked(byte[] data) {
    if (data.length != Format.ZlibDict.SIZE || !Format.ZlibDict.SHA256.equals(sha256Hex(data))) {
      throw new IllegalStateException(
          "the ZLIB_DICT dictionary resource is not the one of the format spec (7.11: "
              + Format.ZlibDict.SIZE
              + " bytes, SHA-256 "
              + Format.ZlibDict.SHA256
              + ")");
    }
    return data;
  }

  private static String sha256Hex(byte[] data) {
    StringBuilder hex = new StringBuilder();
    for (byte b : Output.sha256().digest(data)) {
      hex.append(String.format("%02x", b & 0xFF));
    }
    return hex.toString();
  }
}
