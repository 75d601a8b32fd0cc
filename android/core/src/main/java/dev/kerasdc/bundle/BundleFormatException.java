package dev.kerasdc.bundle;

/**
 * A skeleton or sidecar that breaks a rule of the keras-dc bundle format (docs/bundle-format.md).
 *
 * <p>It is the only exception a restorer throws for malformed input. It names the field that
 * failed a check (as in the format spec, e.g. {@code segment[3].indices.nbits}) and the byte
 * sidecar offset of that field, or of the byte where decoding failed. A skeleton that does not
 * match its sidecar is reported at the sidecar field it fails ({@code skeleton_size} or
 * {@code skeleton_sha256}).
 */
public final class BundleFormatException extends Exception {
  private static final long serialVersionUID = 1L;

  private final long offset;
  private final String field;

  /**
   * Creates the exception.
   *
   * @param offset byte offset of the offending field, or of the byte where decoding failed
   * @param field name of the field as in the format spec, e.g. {@code segment[0].gaps}
   * @param detail what was found and what was expected
   */
  public BundleFormatException(long offset, String field, String detail) {
    super(field + " at offset " + offset + ": " + detail);
    this.offset = offset;
    this.field = field;
  }

  /** Byte offset of the offending field, or of the byte where decoding failed. */
  public long getOffset() {
    return offset;
  }

  /** Name of the offending field, as in the format spec (e.g. {@code segment[3].payload_crc32}). */
  public String getField() {
    return field;
  }
}
