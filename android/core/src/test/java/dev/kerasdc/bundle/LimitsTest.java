package dev.kerasdc.bundle;

import static dev.kerasdc.bundle.BundleBuilder.concat;
import static dev.kerasdc.bundle.BundleBuilder.putU32;
import static dev.kerasdc.bundle.BundleBuilder.putU64;
import static dev.kerasdc.bundle.BundleBuilder.reseal;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kerasdc.bundle.Format.Clustered;
import dev.kerasdc.bundle.Format.Dtype;
import dev.kerasdc.bundle.Format.Encoding;
import dev.kerasdc.bundle.Format.Entry;
import dev.kerasdc.bundle.Format.Header;
import dev.kerasdc.bundle.Format.Stream;
import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;

/**
 * Absurd declared sizes are rejected before anything is allocated for them: each case checks the
 * error and, on HotSpot, that the rejecting call allocated less than 1 MiB in all.
 */
final class LimitsTest {
  private static final long ONE_MIB = 1 << 20;
  /** Offset of segment 0's entry. */
  private static final int E0 = Header.V1_SIZE;

  private final Fixtures.Bundle bundle = Fixtures.everyEncoding();

  /** Bytes allocated so far by this thread, or -1 where the JVM does not say. */
  private static long allocated() {
    java.lang.management.ThreadMXBean bean = ManagementFactory.getThreadMXBean();
    if (bean instanceof com.sun.management.ThreadMXBean) {
      com.sun.management.ThreadMXBean sun = (com.sun.management.ThreadMXBean) bean;
      if (sun.isThreadAllocatedMemorySupported() && sun.isThreadAllocatedMemoryEnabled()) {
        return sun.getThreadAllocatedBytes(Thread.currentThread().getId());
      }
    }
    return -1;
  }

  private static void rejectsCheaply(
      String field, byte[] skeleton, byte[] sidecar, BundleRestorer restorer) {
    // Once to load classes, then measured.
    assertThrows(BundleFormatException.class, () -> restorer.restore(skeleton, sidecar));
    long before = allocated();
    BundleFormatException e =
        assertThrows(BundleFormatException.class, () -> restorer.restore(skeleton, sidecar));
    long after = allocated();
    assertEquals(field, e.getField(), e.getMessage());
    if (before >= 0) {
      assertTrue(after - before < ONE_MIB, field + ": allocated " + (after - before) + " bytes");
    }
  }

  private void rejectsCheaply(String field, byte[] sidecar) {
    rejectsCheaply(field, bundle.skeleton, sidecar, new BundleRestorer());
  }

  private byte[] edited(int offset, long value, boolean u64) {
    byte[] s = bundle.sidecar.clone();
    if (u64) {
      putU64(s, offset, value);
    } else {
      putU32(s, offset, value);
    }
    reseal(s);
    return s;
  }

  @Test
  void headerCounts() {
    rejectsCheaply("restored_size", edited(Header.RESTORED_SIZE, 1L << 31, true));
    rejectsCheaply("restored_size", edited(Header.RESTORED_SIZE, -1L, true));
    rejectsCheaply("segment_count", edited(Header.SEGMENT_COUNT, 0xFFFFFFFFL, false));
    rejectsCheaply("names_size", edited(Header.NAMES_SIZE, 0xFFFFFFFFL, false));
    rejectsCheaply("payload_size", edited(Header.PAYLOAD_SIZE, -1L, true));
    rejectsCheaply("segment[0].size", edited(E0 + Entry.SIZE, 1L << 40, true));
    rejectsCheaply("segment[0].payload_size", edited(E0 + Entry.PAYLOAD_SIZE, 1L << 40, true));
    rejectsCheaply("segment[0].name_offset", edited(E0 + Entry.NAME_SIZE, 0xFFFFFFFFL, false));
  }

  /** A single CLUSTERED_DENSE float32 segment of {@code elements}, with the given payload. */
  private static byte[][] dense(int elements, byte[] payload) {
    byte[] data = new byte[4 * elements];
    return new BundleBuilder(data)
        .add(
            new BundleBuilder.Seg(
                0, data.length, Dtype.FLOAT32, 1, Encoding.CLUSTERED_DENSE, payload))
        .build();
  }

  @Test
  void payloadCounts() {
    byte[] book = BundleBuilder.codebooks(new int[] {1}, new byte[4]);
    byte[] indices = BundleBuilder.stream(new int[] {0, 0, 0, 0});
    // Stream count and nbits near 2^63.
    byte[] s = indices.clone();
    putU64(s, Stream.COUNT, Long.MAX_VALUE / Stream.MAX_CODE_LENGTH + 1);
    putU64(s, Stream.NBITS, Long.MAX_VALUE);
    byte[][] b = dense(4, concat(book, s));
    rejectsCheaply("segment[0].indices.data", b[0], b[1], new BundleRestorer());
    // alphabet 65535.
    s = indices.clone();
    s[Stream.ALPHABET] = (byte) 0xFF;
    s[Stream.ALPHABET + 1] = (byte) 0xFF;
    b = dense(4, concat(book, s));
    rejectsCheaply("segment[0].indices.alphabet", b[0], b[1], new BundleRestorer());
    // entry_count 65535.
    byte[] p = concat(book, indices);
    p[Clustered.ENTRY_COUNTS] = (byte) 0xFF;
    p[Clustered.ENTRY_COUNTS + 1] = (byte) 0xFF;
    b = dense(4, p);
    rejectsCheaply("segment[0].entry_count", b[0], b[1], new BundleRestorer());
    // 65535 codebooks declared for 65535 channels, their counts absent.
    p = concat(book, indices);
    p[Clustered.CODEBOOK_COUNT] = (byte) 0xFF;
    p[Clustered.CODEBOOK_COUNT + 1] = (byte) 0xFF;
    byte[] data = new byte[4 * 65535];
    b =
        new BundleBuilder(data)
            .add(
                new BundleBuilder.Seg(
                    0, data.length, Dtype.FLOAT32, 65535, Encoding.CLUSTERED_DENSE, p))
            .build();
    rejectsCheaply("segment[0].entry_count", b[0], b[1], new BundleRestorer());
  }

  @Test
  void maskedCounts() {
    // MASKED (7.12): an empty segment of 2^32 - 1 channels declares a row_mask of 2^29 bytes, and
    // 65535 rows of one float32 one of 8192 bytes; neither is present.
    byte[] payload = BundleBuilder.bytes(0, 0xFF, 0xFF, Encoding.RAW);
    byte[][] b =
        new BundleBuilder(new byte[3])
            .add(new BundleBuilder.Seg(1, 0, Dtype.INT8, 0xFFFFFFFFL, Encoding.MASKED, payload))
            .build();
    rejectsCheaply("segment[0].payload_size", b[0], b[1], new BundleRestorer());
    byte[] data = new byte[4 * 65535];
    b =
        new BundleBuilder(data)
            .add(new BundleBuilder.Seg(0, data.length, Dtype.FLOAT32, 65535, Encoding.MASKED,
                concat(new byte[4], new byte[] {(byte) 0xFF, 1, Encoding.RAW})))
            .build();
    rejectsCheaply("segment[0].payload_size", b[0], b[1], new BundleRestorer());
  }

  @Test
  void hugeRestoredFileIsNotAllocatedBeforeTheLimitAndSkeletonChecks() {
    // A valid all-zero sparse segment of 8 bytes, then declared as 1 GiB.
    byte[] empty = BundleBuilder.stream(new int[0]);
    byte[] payload = concat(BundleBuilder.codebooks(new int[] {0}, new byte[0]), new byte[4],
        new byte[] {1}, empty, empty);
    byte[] head = {1, 2, 3};
    byte[][] b =
        new BundleBuilder(concat(head, new byte[8]))
            .add(new BundleBuilder.Seg(3, 8, Dtype.FLOAT32, 1, Encoding.CLUSTERED_SPARSE, payload))
            .build();
    byte[] sidecar = b[1];
    long huge = 1L << 30;
    putU64(sidecar, Header.RESTORED_SIZE, huge + 3);
    putU64(sidecar, E0 + Entry.SIZE, huge);
    reseal(sidecar);
    // The reader's limit: rejected at restored_size.
    rejectsCheaply("restored_size", b[0], sidecar, new BundleRestorer(16 << 20));
    // No limit, but a skeleton of another bundle: rejected before R is allocated.
    byte[] otherSkeleton = {1, 2, 4};
    rejectsCheaply("skeleton_sha256", otherSkeleton, sidecar, new BundleRestorer());
  }
}
