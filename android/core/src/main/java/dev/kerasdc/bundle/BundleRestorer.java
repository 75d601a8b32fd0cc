package dev.kerasdc.bundle;

import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.util.Arrays;

/**
 * Restores the runnable {@code .tflite} file R of a keras-dc bundle from its skeleton and sidecar
 * (format spec section 9), performing every check of section 10.
 *
 * <p>Memory: the restorer allocates R (or writes it to a caller's buffer or a file) plus, per
 * restore, a 64 KiB staging buffer (not for a byte-array target, which is written in place), two
 * 16 KiB symbol buffers, decoding tables of at most 16 KiB each, per DELTA or MASKED segment a
 * window of at most 64 KiB, per PACKED segment the list of its parts (at most one per 5 payload
 * bytes) and, with {@link HuffmanDecoding#INFLATER}, zlib's state; it never allocates on a
 * declared size before checking that size against the bytes present or against {@code
 * maxRestoredSize}. Instances are immutable and thread-safe.
 *
 * <pre>{@code
 * BundleRestorer restorer = new BundleRestorer();
 * ByteBuffer model = restorer.restoreDirect(skeletonBytes, sidecarBytes);
 * Interpreter interpreter = new Interpreter(model, options);
 * }</pre>
 */
public final class BundleRestorer {
  private final long maxRestoredSize;
  private final HuffmanDecoding huffman;

  /** A restorer that accepts any restored size the format allows (2^31 - 1 bytes). */
  public BundleRestorer() {
    this(Format.MAX_RESTORED_SIZE);
  }

  /**
   * A restorer that rejects, before allocating anything, a bundle whose restored file would exceed
   * {@code maxRestoredSize} bytes (e.g. the memory the app can spare).
   */
  public BundleRestorer(long maxRestoredSize) {
    this(maxRestoredSize, HuffmanDecoding.AUTO);
  }

  /**
   * A restorer with a size limit (as {@link #BundleRestorer(long)}) that decodes HuffmanStreams
   * with {@code huffman}. Every choice gives the same result; {@link HuffmanDecoding#AUTO} picks
   * the faster one for the platform where that was measured.
   */
  public BundleRestorer(long maxRestoredSize, HuffmanDecoding huffman) {
    if (maxRestoredSize < 0) {
      throw new IllegalArgumentException(
          "maxRestoredSize must be >= 0, received " + maxRestoredSize);
    }
    if (huffman == null) {
      throw new NullPointerException("huffman is null; use HuffmanDecoding.AUTO");
    }
    this.maxRestoredSize = Math.min(maxRestoredSize, Format.MAX_RESTORED_SIZE);
    this.huffman = huffman;
  }

  /** The largest restored size this restorer accepts. */
  public long getMaxRestoredSize() {
    return maxRestoredSize;
  }

  /**
   * Validates a bundle without decoding it: the sidecar's header and tables (checks 1 to 13), that
   * the skeleton belongs to it (checks 14 and 15) and every payload's CRC-32 (check 16). All of
   * this runs before anything is allocated for the restored file, so a damaged download costs no
   * decoding.
   *
   * @return the parsed sidecar (it refers to {@code sidecar}; do not modify the array meanwhile)
   */
  public Sidecar check(byte[] skeleton, byte[] sidecar) throws BundleFormatException {
    Sidecar parsed = Sidecar.parse(sidecar, maxRestoredSize);
    if (skeleton.length != parsed.getSkeletonSize()) {
      throw new BundleFormatException(
          Format.Header.SKELETON_SIZE,
          "skeleton_size",
          "the skeleton has " + skeleton.length + " bytes; the sidecar expects "
              + parsed.getSkeletonSize() + " (a skeleton of another bundle?)");
    }
    byte[] actual = Output.sha256().digest(skeleton);
    if (!MessageDigest.isEqual(actual, parsed.getSkeletonSha256())) {
      throw new BundleFormatException(
          Format.Header.SKELETON_SHA256,
          "skeleton_sha256",
          "the skeleton's SHA-256 is " + Sidecar.hex(actual) + "; the sidecar expects "
              + Sidecar.hex(parsed.getSkeletonSha256()) + " (a skeleton of another bundle?)");
    }
    for (SegmentEntry segment : parsed.getSegments()) {
      long crc = Sidecar.crc32(sidecar, segment.getPayloadOffset(), segment.getPayloadSize());
      long stored = segment.getPayloadCrc32() & 0xFFFFFFFFL;
      if (crc != stored) {
        throw new BundleFormatException(
            segment.fieldOffset(Format.Entry.PAYLOAD_CRC32),
            segment.field("payload_crc32"),
            Sidecar.crcMismatch(stored, crc));
      }
    }
    return parsed;
  }

  /** Restores R into a new byte array. */
  public byte[] restore(byte[] skeleton, byte[] sidecar) throws BundleFormatException {
    Sidecar parsed = check(skeleton, sidecar);
    byte[] restored = new byte[(int) parsed.getRestoredSize()];
    decode(parsed, skeleton, new Output.ToArray(restored, 0, restored.length, true));
    return restored;
  }

  /**
   * Restores R into a new direct ByteBuffer in {@link ByteOrder#nativeOrder()}, position 0, limit
   * = capacity = R's size: what {@code org.tensorflow.lite.Interpreter(ByteBuffer, Options)} takes.
   * The buffer lives outside the Java heap; keep it referenced and unmodified while an interpreter
   * uses it.
   */
  public ByteBuffer restoreDirect(byte[] skeleton, byte[] sidecar) throws BundleFormatException {
    Sidecar parsed = check(skeleton, sidecar);
    ByteBuffer restored =
        ByteBuffer.allocateDirect((int) parsed.getRestoredSize()).order(ByteOrder.nativeOrder());
    decode(parsed, skeleton, new Output.ToBuffer(restored, true));
    return restored;
  }

  /**
   * Restores R into {@code target} from its position on, like a relative bulk put: on success the
   * position has advanced by R's size. On a format error the target's content from its position
   * on is unspecified, and its position is unchanged.
   *
   * @throws IllegalArgumentException if fewer than R's size bytes remain in {@code target}
   */
  public void restoreInto(byte[] skeleton, byte[] sidecar, ByteBuffer target)
      throws BundleFormatException {
    Sidecar parsed = check(skeleton, sidecar);
    if (target.remaining() < parsed.getRestoredSize()) {
      throw new IllegalArgumentException(
          "the target buffer has " + target.remaining() + " bytes remaining; the bundle restores "
              + parsed.getRestoredSize());
    }
    int size = (int) parsed.getRestoredSize();
    if (target.hasArray() && !target.isReadOnly()) { // write the backing array in place
      int start = target.arrayOffset() + target.position();
      decode(parsed, skeleton, new Output.ToArray(target.array(), start, size, false));
    } else {
      decode(parsed, skeleton, new Output.ToBuffer(target, false));
    }
    target.position(target.position() + (int) parsed.getRestoredSize());
  }

  /**
   * Restores R into {@code file}, unless the file already holds R (same size and SHA-256 as the
   * sidecar's {@code restored_sha256}), in which case it is reused without decoding. A new file is
   * written atomically: to a temporary file in the same directory, synced, then renamed over
   * {@code file}; on any failure the temporary file is removed and {@code file} is left as it was.
   * R is streamed to the file; it is never held in memory whole.
   *
   * @return {@code true} if the file was written, {@code false} if the existing file was reused
   */
  public boolean restoreToFile(byte[] skeleton, byte[] sidecar, File file)
      throws BundleFormatException, IOException {
    Sidecar parsed = check(skeleton, sidecar);
    if (holds(file, parsed.getRestoredSize(), parsed.getRestoredSha256())) {
      return false;
    }
    File directory = file.getAbsoluteFile().getParentFile();
    if (directory != null && !directory.isDirectory() && !directory.mkdirs()) {
      throw new IOException("cannot create directory " + directory);
    }
    File temp = File.createTempFile(".kdc-" + file.getName() + "-", ".tmp", directory);
    boolean done = false;
    try {
      FileOutputStream stream = new FileOutputStream(temp);
      try {
        decode(parsed, skeleton, new Output.ToStream(stream));
        stream.getFD().sync();
      } catch (Output.WriteFailure e) {
        throw e.ioException();
      } finally {
        stream.close();
      }
      if (!temp.renameTo(file)) {
        // Platforms where rename does not replace (not POSIX/Android): replace non-atomically.
        if (!(file.delete() && temp.renameTo(file))) {
          throw new IOException("cannot rename " + temp + " to " + file);
        }
      }
      done = true;
    } finally {
      if (!done) {
        temp.delete();
      }
    }
    return true;
  }

  /** Whether {@code file} exists with {@code size} bytes whose SHA-256 is {@code sha256}. */
  public static boolean holds(File file, long size, byte[] sha256) throws IOException {
    if (!file.isFile() || file.length() != size) {
      return false;
    }
    MessageDigest digest = Output.sha256();
    byte[] buffer = new byte[1 << 16];
    InputStream in = new FileInputStream(file);
    try {
      for (int n; (n = in.read(buffer)) > 0; ) {
        digest.update(buffer, 0, n);
      }
    } finally {
      in.close();
    }
    return MessageDigest.isEqual(digest.digest(), sha256);
  }

  /**
   * Section 9 steps 4 and 5 (checks 17 and 18) on a bundle that passed {@link #check}: gaps and
   * segments in order, then the hash of the result.
   */
  private void decode(Sidecar parsed, byte[] skeleton, Output out)
      throws BundleFormatException {
    byte[] data = parsed.data();
    int s = 0;
    long r = 0;
    SegmentDecoder decoder = new SegmentDecoder(huffman);
    try {
      for (SegmentEntry segment : parsed.getSegments()) {
        int gap = (int) (segment.getOffset() - r);
        out.put(skeleton, s, gap);
        s += gap;
        long before = out.written();
        decoder.decode(data, segment, out);
        if (out.written() - before != segment.getSize()) {
          throw new IllegalStateException(
              segment.field() + " decoded to " + (out.written() - before) + " bytes, not "
                  + segment.getSize());
        }
        r = segment.getOffset() + segment.getSize();
      }
    } finally {
      decoder.end();
    }
    out.put(skeleton, s, skeleton.length - s);
    out.flush();
    byte[] actual = out.digest();
    byte[] expected = parsed.getRestoredSha256();
    if (!Arrays.equals(actual, expected)) {
      throw new BundleFormatException(
          Format.Header.RESTORED_SHA256,
          "restored_sha256",
          "the restored file's SHA-256 is " + Sidecar.hex(actual) + "; the sidecar expects "
              + Sidecar.hex(expected));
    }
  }
}
