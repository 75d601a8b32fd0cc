package dev.kerasdc.bundle;


import dev.kerasdc.bundle.Format.Dtype;
import dev.kerasdc.bundle.Format.Encoding;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;

/** Bundles built with {@link BundleBuilder}: one of every encoding, and random ones. */
final class Fixtures {
  private Fixtures() {}

  /** R, skeleton, sidecar. */
  static final class Bundle {
    final byte[] restored;
    final byte[] skeleton;
    final byte[] sidecar;
    final String name;

    Bundle(String name, byte[] restored, byte[][] built) {
      this.name = name;
      this.restored = restored;
      this.skeleton = built[0];
      this.sidecar = built[1];
    }

    @Override
    public String toString() {
      return name;
    }
  }

  static final int RAW_AT = 0;
  static final int ZLIB_AT = 1;
  static final int DENSE_AT = 2;
  static final int SPARSE_AT = 3;

  /**
   * Segment 0 RAW (16 bytes), 1 ZLIB (int32), 2 CLUSTERED_DENSE (float32, 2 channels, one
   * codebook each), 3 CLUSTERED_SPARSE (float16, 4 channels, escape_run 3), with gaps between.
   */
  static Bundle everyEncoding() {
    return everyEncoding(new BundleBuilder.Seg[1][]);
  }

  static Bundle everyEncoding(BundleBuilder.Seg[][] segmentsOut) {
    Random random = new Random(1);
    ByteBuffer r = ByteBuffer.allocate(4096 + 16 + 4000 + 2 * 4 * 300 + 4 * 2 * 200 + 64);
    r.order(ByteOrder.LITTLE_ENDIAN);
    byte[] head = new byte[40];
    random.nextBytes(head);
    r.put(head);
    int rawAt = r.position();
    byte[] raw = new byte[16];
    random.nextBytes(raw);
    r.put(raw);
    r.put(new byte[] {1, 2, 3});
    int zlibAt = r.position();
    for (int i = 0; i < 1000; i++) {
      r.putInt(i / 10);
    }
    int denseAt = r.position();
    float[][] books = {{0.5f, -1.25f, 3f}, {-0.0f, 7.5f, 1e-3f, Float.intBitsToFloat(0x7FC00123)}};
    for (int c = 0; c < 2; c++) {
      for (int i = 0; i < 300; i++) {
        r.putFloat(books[c][random.nextInt(books[c].length)]);
      }
    }
    r.put((byte) 9);
    int sparseAt = r.position();
    for (int c = 0; c < 4; c++) {
      for (int i = 0; i < 200; i++) {
        short v = random.nextInt(10) < 8 ? 0 : (short) (0x3C00 + c * 16 + random.nextInt(5));
        r.putShort(v);
      }
    }
    r.put(new byte[] {4, 5, 6, 7, 8});
    byte[] restored = new byte[r.position()];
    System.arraycopy(r.array(), 0, restored, 0, restored.length);

    byte[] zlibRaw = slice(restored, zlibAt, 4000);
    byte[] denseRaw = slice(restored, denseAt, 2400);
    byte[] sparseRaw = slice(restored, sparseAt, 1600);
    BundleBuilder.Seg[] segments = {
      new BundleBuilder.Seg(rawAt, 16, Dtype.BYTES, 1, Encoding.RAW, raw).named("raw"),
      new BundleBuilder.Seg(
              zlibAt, 4000, Dtype.INT32, 1, Encoding.ZLIB, BundleBuilder.zlib(zlibRaw, 9))
          .named("zlib"),
      new BundleBuilder.Seg(
              denseAt,
              2400,
              Dtype.FLOAT32,
              2,
              Encoding.CLUSTERED_DENSE,
              BundleBuilder.clustered(denseRaw, 4, 2, false, 0))
          .named("dense/kernel"),
      new BundleBuilder.Seg(
              sparseAt,
              1600,
              Dtype.FLOAT16,
              4,
              Encoding.CLUSTERED_SPARSE,
              BundleBuilder.clustered(sparseRaw, 2, 4, true, 3))
          .named("sparse \u00e9\u4e2d"),
    };
    segmentsOut[0] = segments;
    BundleBuilder builder = new BundleBuilder(restored);
    for (BundleBuilder.Seg s : segments) {
      builder.add(s);
    }
    return new Bundle("every-encoding", restored, builder.build());
  }

  /** A random bundle: random gaps, dtypes, channels and encodings. */
  static Bundle random(Random random, int index) {
    int segmentCount = random.nextInt(6);
    int[] esizes = Dtype.ESIZES;
    java.io.ByteArrayOutputStream r = new java.io.ByteArrayOutputStream();
    java.util.List<BundleBuilder.Seg> segments = new java.util.ArrayList<BundleBuilder.Seg>();
    for (int i = 0; i < segmentCount; i++) {
      byte[] gap = new byte[random.nextInt(3) == 0 ? 0 : random.nextInt(50)];
      random.nextBytes(gap);
      r.write(gap, 0, gap.length);
      int dtype = random.nextInt(esizes.length);
      int esize = esizes[dtype];
      int channels = 1 + random.nextInt(4);
      int elements = channels * random.nextInt(200);
      byte[] data = new byte[elements * esize];
      int distinct = 1 + random.nextInt(random.nextBoolean() ? 4 : 40);
      long[] values = new long[distinct];
      for (int k = 0; k < distinct; k++) {
        values[k] = random.nextLong();
      }
      double zeros = random.nextDouble();
      for (int p = 0; p < elements; p++) {
        long v = random.nextDouble() < zeros ? 0 : values[random.nextInt(distinct)];
        for (int j = 0; j < esize; j++) {
          data[p * esize + j] = (byte) (v >>> (8 * j));
        }
      }
      int encoding = random.nextInt(4);
      byte[] payload;
      int books = random.nextBoolean() ? 1 : channels;
      switch (encoding) {
        case Encoding.RAW:
          payload = data;
          break;
        case Encoding.ZLIB:
          payload = BundleBuilder.zlib(data, random.nextInt(10));
          break;
        default:
          payload =
              BundleBuilder.clustered(
                  data, esize, books, encoding == Encoding.CLUSTERED_SPARSE,
                  1 + random.nextInt(random.nextBoolean() ? 4 : 255));
          if (payload == null) {
            encoding = Encoding.RAW;
            payload = data;
          }
      }
      segments.add(
          new BundleBuilder.Seg(r.size(), data.length, dtype, channels, encoding, payload));
      r.write(data, 0, data.length);
    }
    byte[] tail = new byte[random.nextInt(30)];
    random.nextBytes(tail);
    r.write(tail, 0, tail.length);
    byte[] restored = r.toByteArray();
    BundleBuilder builder = new BundleBuilder(restored);
    for (BundleBuilder.Seg s : segments) {
      builder.add(s);
    }
    return new Bundle("random-" + index, restored, builder.build());
  }

  static byte[] slice(byte[] b, int offset, int length) {
    byte[] out = new byte[length];
    System.arraycopy(b, offset, out, 0, length);
    return out;
  }
}
