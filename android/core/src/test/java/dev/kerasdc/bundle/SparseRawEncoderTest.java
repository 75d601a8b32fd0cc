package dev.kerasdc.bundle;

import static dev.kerasdc.bundle.BundleBuilder.bytes;
import static dev.kerasdc.bundle.BundleBuilder.concat;
import static dev.kerasdc.bundle.BundleBuilder.hex;
import static dev.kerasdc.bundle.BundleBuilder.stream;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.kerasdc.bundle.Format.Dtype;
import dev.kerasdc.bundle.Format.Encoding;
import dev.kerasdc.bundle.Format.Header;
import dev.kerasdc.bundle.Format.Stream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link BundleBuilder#sparseRaw}, the test encoder of SPARSE_RAW (spec 7.6), which the random
 * and fuzzed bundles use: it writes the bytes that {@link MalformedInputTest} builds by hand, and
 * its segments restore byte for byte through {@link BundleRestorer} with every Huffman decoder.
 */
final class SparseRawEncoderTest {

  /** The hand-built payloads of MalformedInputTest.sparseRaw*, from the encoder. */
  @Test
  void writesTheSpecLayout() {
    // 10 float32, background +0.0, 0.5 at 2 and -2 at 9; escape_run 3: runs 2 and 6 give the
    // gaps 3, then 0, 0 (two escapes of 3), 1.
    float[] v = new float[10];
    v[2] = 0.5f;
    v[9] = -2f;
    assertEquals(
        hex(concat(bytes(1, 0), new byte[4], bytes(3), stream(new int[] {3, 0, 0, 1}),
            floats(0.5f, -2f))),
        hex(BundleBuilder.sparseRaw(floats(v), 4, 1, 3)));
    // 3 slices with the backgrounds +0.0, -0.0 and 1.0; the run of 6 crosses a slice boundary.
    float[] w = {0, 0, 3, 0, 0, -0.0f, -0.0f, -0.0f, -0.0f, 4, 1, 1, 1, 1, 1};
    assertEquals(
        hex(concat(bytes(3, 0), floats(0f, -0.0f, 1f), bytes(4), stream(new int[] {3, 0, 3}),
            floats(3f, 4f))),
        hex(BundleBuilder.sparseRaw(floats(w), 4, 3, 4)));
  }

  /**
   * Random float32 and int8 segments of 1 and 3 channels, one background or one per channel, from
   * all background to none (every element emitted), with escape runs 1, 3 and 255.
   */
  @Test
  void randomSegmentsRestoreExactly() throws Exception {
    Random random = new Random(53);
    double[] shares = {1.0, 0.99, 0.8, 0.3, 0.0}; // of background elements; 0: none at all
    for (int dtype : new int[] {Dtype.FLOAT32, Dtype.INT8}) {
      for (int channels : new int[] {1, 3}) {
        for (double share : shares) {
          for (int escapeRun : new int[] {1, 3, 255}) {
            roundTrip(random, dtype, channels, share, escapeRun);
          }
        }
      }
    }
  }

  private static void roundTrip(
      Random random, int dtype, int channels, double share, int escapeRun) throws Exception {
    int esize = Dtype.ESIZES[dtype];
    int slices = random.nextBoolean() ? 1 : channels;
    int perChannel = 1 + random.nextInt(random.nextBoolean() ? 40 : 700);
    long[] background = new long[slices];
    for (int s = 0; s < slices; s++) {
      background[s] = pattern(random, esize, true);
    }
    byte[] raw = new byte[channels * perChannel * esize];
    for (int p = 0; p < channels * perChannel; p++) {
      long b = background[p / perChannel * slices / channels];
      long v = random.nextDouble() < share ? b : pattern(random, esize, false);
      while (share == 0 && v == b) {
        v = pattern(random, esize, false);
      }
      for (int j = 0; j < esize; j++) {
        raw[p * esize + j] = (byte) (v >>> (8 * j));
      }
    }
    // With no background element the most frequent value would be one; name the absent one.
    byte[] payload =
        share == 0
            ? BundleBuilder.sparseRaw(raw, esize, background, escapeRun)
            : BundleBuilder.sparseRaw(raw, esize, slices, escapeRun);
    String what =
        Dtype.NAMES[dtype] + ", " + channels + " channels of " + perChannel + ", " + slices
            + " slices, background share " + share + ", escape_run " + escapeRun;
    int head = Format.SparseRaw.BACKGROUND + slices * esize + 1;
    if (share == 1.0) { // no gap symbols, no values
      assertEquals(head + Stream.FIXED_SIZE, payload.length, what);
    } else if (share == 0) { // every element emitted, in order
      assertArrayEquals(raw, Arrays.copyOfRange(payload, payload.length - raw.length,
          payload.length), what);
    }
    byte[] gap = new byte[random.nextInt(10)];
    random.nextBytes(gap);
    byte[] restored = concat(gap, raw, bytes(7, 7));
    byte[][] built =
        new BundleBuilder(restored)
            .add(new BundleBuilder.Seg(
                gap.length, raw.length, dtype, channels, Encoding.SPARSE_RAW, payload))
            .build();
    assertEquals(1, LittleEndian.u16(built[1], Header.VERSION_MINOR), what);
    for (HuffmanDecoding mode : HuffmanDecoding.values()) {
      BundleRestorer restorer = new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, mode);
      assertArrayEquals(restored, restorer.restore(built[0], built[1]), what + ", " + mode);
    }
  }

  /**
   * A random esize-byte pattern: for float32 a background is +0.0, -0.0, 1.0 or random bits, an
   * emitted value a small random float (an unclustered weight); for int8 a background is 0 or
   * random, a value random.
   */
  private static long pattern(Random random, int esize, boolean background) {
    if (esize == 1) {
      return background && random.nextBoolean() ? 0 : random.nextInt(256);
    }
    if (!background) {
      return Float.floatToRawIntBits((float) (0.1 * random.nextGaussian())) & 0xFFFFFFFFL;
    }
    long[] common = {0, 0x80000000L, Float.floatToRawIntBits(1f)};
    int k = random.nextInt(common.length + 1);
    return k < common.length ? common[k] : random.nextInt() & 0xFFFFFFFFL;
  }

  private static byte[] floats(float... values) {
    ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      b.putFloat(v);
    }
    return b.array();
  }
}
