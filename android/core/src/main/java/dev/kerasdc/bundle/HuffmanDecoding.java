package dev.kerasdc.bundle;

/**
 * Which decoder a {@link BundleRestorer} uses for the format's HuffmanStreams. All three give the
 * same bytes and reject the same bundles with the same {@link BundleFormatException}; they differ
 * in speed only.
 */
public enum HuffmanDecoding {
  /**
   * {@link #TABLE} on the JVM, where it is the faster (benchmarks/java_restore.py); on Android,
   * {@link #INFLATER} for streams of 1024 symbols or more and {@link #TABLE} for shorter ones.
   */
  AUTO,

  /**
   * A Java table decoder that reads up to three symbols per lookup ({@code BlockDecoder}). Needs
   * nothing but Java.
   */
  TABLE,

  /**
   * The platform's native zlib ({@link java.util.zip.Inflater}), fed a synthesised DEFLATE
   * dynamic-block header (format spec section 12); a fault it meets is located and reported by the
   * table decoder.
   */
  INFLATER
}
