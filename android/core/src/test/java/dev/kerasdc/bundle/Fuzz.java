package dev.kerasdc.bundle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.Random;

/**
 * Corrupts valid bundles and checks that every corruption is either rejected with a
 * {@link BundleFormatException} or restores to exactly the original bytes, within a time bound.
 */
final class Fuzz {
  /** Per-case bound: generous for a loaded 2-core machine; a real problem (a hang) is far above. */
  static final long MAX_CASE_NANOS = 2_000_000_000L;

  private final BundleRestorer restorer;
  private final Fixtures.Bundle bundle;
  int rejected;
  int restored;

  Fuzz(Fixtures.Bundle bundle) {
    this(bundle, new BundleRestorer());
  }

  Fuzz(Fixtures.Bundle bundle, BundleRestorer restorer) {
    this.bundle = bundle;
    this.restorer = restorer;
  }

  /** The bundle as built restores to exactly its bytes: here a rejection fails too. */
  void intact() {
    try {
      byte[] out = restorer.restore(bundle.skeleton, bundle.sidecar);
      assertArrayEquals(bundle.restored, out, bundle + ": restored other bytes");
    } catch (BundleFormatException e) {
      throw new AssertionError(bundle + ": a valid bundle was rejected: " + e.getMessage(), e);
    }
  }

  /** Restores one corrupted pair; fails on any other exception, wrong bytes or a slow case. */
  void check(byte[] skeleton, byte[] sidecar, String what) {
    long start = System.nanoTime();
    try {
      byte[] out = restorer.restore(skeleton, sidecar);
      assertArrayEquals(bundle.restored, out, bundle + ": " + what + " restored other bytes");
      restored++;
    } catch (BundleFormatException e) {
      assertTrue(e.getOffset() >= 0, what + ": negative offset in " + e.getMessage());
      rejected++;
    } catch (RuntimeException | Error e) {
      throw new AssertionError(bundle + ": " + what + " threw " + e, e);
    }
    long nanos = System.nanoTime() - start;
    if (nanos > MAX_CASE_NANOS) {
      fail(bundle + ": " + what + " took " + nanos / 1e6 + " ms");
    }
  }

  /** Every proper prefix of the sidecar, and of the skeleton. */
  void truncations() {
    for (int n = 0; n < bundle.sidecar.length; n++) {
      check(bundle.skeleton, Arrays.copyOf(bundle.sidecar, n), "sidecar[:" + n + "]");
    }
    for (int n = 0; n < bundle.skeleton.length; n++) {
      check(Arrays.copyOf(bundle.skeleton, n), bundle.sidecar, "skeleton[:" + n + "]");
    }
  }

  /** Every single bit flip of the sidecar, and of the skeleton. */
  void bitFlips() {
    byte[] sidecar = bundle.sidecar.clone();
    for (int i = 0; i < 8 * sidecar.length; i++) {
      sidecar[i >>> 3] ^= (byte) (1 << (i & 7));
      check(bundle.skeleton, sidecar, "sidecar bit " + i);
      sidecar[i >>> 3] ^= (byte) (1 << (i & 7));
    }
    byte[] skeleton = bundle.skeleton.clone();
    for (int i = 0; i < 8 * skeleton.length; i++) {
      skeleton[i >>> 3] ^= (byte) (1 << (i & 7));
      check(skeleton, bundle.sidecar, "skeleton bit " + i);
      skeleton[i >>> 3] ^= (byte) (1 << (i & 7));
    }
  }

  /**
   * {@code count} random corruptions: bit flips and byte overwrites anywhere (caught by the CRCs
   * and hashes), and the same inside one payload with the CRCs recomputed afterwards, so that the
   * segment decoders themselves must cope.
   */
  void mutations(long seed, int count) throws BundleFormatException {
    Random random = new Random(seed);
    Sidecar parsed = Sidecar.parse(bundle.sidecar);
    java.util.List<Integer> withPayload = new java.util.ArrayList<Integer>();
    for (SegmentEntry segment : parsed.getSegments()) {
      if (segment.getPayloadSize() > 0) {
        withPayload.add(segment.getIndex());
      }
    }
    for (int i = 0; i < count; i++) {
      byte[] sidecar = bundle.sidecar.clone();
      byte[] skeleton = bundle.skeleton;
      int kind = random.nextInt(withPayload.isEmpty() ? 3 : 5);
      if (kind == 2 && skeleton.length == 0) {
        kind = 0;
      }
      String what;
      if (kind == 0) {
        int flips = 1 + random.nextInt(3);
        for (int k = 0; k < flips; k++) {
          sidecar[random.nextInt(sidecar.length)] ^= (byte) (1 << random.nextInt(8));
        }
        what = "mutation " + i + ": " + flips + " bit flips";
      } else if (kind == 1) {
        sidecar[random.nextInt(sidecar.length)] = (byte) random.nextInt(256);
        what = "mutation " + i + ": byte overwrite";
      } else if (kind == 2) {
        skeleton = skeleton.clone();
        skeleton[random.nextInt(skeleton.length)] ^= (byte) (1 << random.nextInt(8));
        what = "mutation " + i + ": skeleton bit flip";
      } else {
        int s = withPayload.get(random.nextInt(withPayload.size()));
        SegmentEntry segment = parsed.getSegments().get(s);
        int edits = 1 + random.nextInt(kind == 3 ? 2 : 4);
        for (int k = 0; k < edits; k++) {
          int at = segment.getPayloadOffset() + random.nextInt(segment.getPayloadSize());
          if (kind == 3) {
            sidecar[at] ^= (byte) (1 << random.nextInt(8));
          } else {
            sidecar[at] = (byte) random.nextInt(256);
          }
        }
        BundleBuilder.resealPayload(sidecar, parsed, s);
        what = "mutation " + i + ": " + edits + " resealed edits in segment " + s;
      }
      check(skeleton, sidecar, what);
    }
  }
}
