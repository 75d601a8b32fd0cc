package dev.kerasdc.bundle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kerasdc.bundle.Format.Dtype;
import dev.kerasdc.bundle.Format.Encoding;
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
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

  /**
   * The grouped encodings (spec 7.8): segment 0 GROUPED_SPARSE (float16, 6 channels of 100,
   * G = 3, channel c uses codebook {2, 0, 2, 1, 0, 2}[c]; backgrounds +0.0, -0.0 and 1.0, each
   * codebook its own values; escape_run 3), a RAW gap, segment 1 GROUPED_DENSE (int8, 5 channels
   * of 120, G = 4 with codebook 2 unused, map {1, 0, 1, 3, 0}).
   */
  static Bundle grouped() {
    Random random = new Random(3);
    int[] sparseMap = {2, 0, 2, 1, 0, 2};
    short[] backgrounds = {0, (short) 0x8000, 0x3C00};
    ByteBuffer r = ByteBuffer.allocate(16 + 6 * 100 * 2 + 3 + 5 * 120 + 7);
    r.order(ByteOrder.LITTLE_ENDIAN);
    byte[] head = new byte[16];
    random.nextBytes(head);
    r.put(head);
    int sparseAt = r.position();
    for (int c = 0; c < sparseMap.length; c++) {
      int g = sparseMap[c];
      for (int i = 0; i < 100; i++) {
        boolean background = random.nextInt(10) < 7;
        r.putShort(background ? backgrounds[g] : (short) (0x4000 + g * 64 + random.nextInt(6)));
      }
    }
    r.put(new byte[] {1, 2, 3});
    int denseAt = r.position();
    int[] denseMap = {1, 0, 1, 3, 0};
    for (int c = 0; c < denseMap.length; c++) {
      int g = denseMap[c];
      for (int i = 0; i < 120; i++) {
        r.put((byte) (g * 40 - 60 + random.nextInt(3 + 4 * g)));
      }
    }
    byte[] tail = new byte[7];
    random.nextBytes(tail);
    r.put(tail);
    byte[] restored = r.array();
    byte[][] built =
        new BundleBuilder(restored)
            .add(
                new BundleBuilder.Seg(
                        sparseAt,
                        1200,
                        Dtype.FLOAT16,
                        6,
                        Encoding.GROUPED_SPARSE,
                        BundleBuilder.grouped(slice(restored, sparseAt, 1200), 2, sparseMap, 3,
                            true, 3))
                    .named("grouped/sparse"))
            .add(
                new BundleBuilder.Seg(
                        denseAt,
                        600,
                        Dtype.INT8,
                        5,
                        Encoding.GROUPED_DENSE,
                        BundleBuilder.grouped(slice(restored, denseAt, 600), 1, denseMap, 4,
                            false, 1))
                    .named("grouped/dense"))
            .build();
    return new Bundle("grouped", restored, built);
  }

  /**
   * DELTA segments (spec 7.9), each of another dtype and inner encoding, with gaps between:
   * segment 0 int32 sorted indices that restart at each of 3 rows (inner ZLIB); 1 int16, 2
   * channels of mostly-constant steps (inner CLUSTERED_SPARSE, escape_run 2); 2 uint8 steps of
   * 200 and 100 that wrap past 255 (inner GROUPED_DENSE, 3 channels, 2 codebooks); 3 int64
   * values near 2^64 that wrap (inner RAW); 4 float16 bit patterns (inner CLUSTERED_DENSE).
   */
  static Bundle delta() {
    Random random = new Random(9);
    ByteBuffer r = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
    java.util.List<BundleBuilder.Seg> segments = new java.util.ArrayList<BundleBuilder.Seg>();
    // 0: int32, 3 rows of 40 increasing column indices.
    ByteBuffer d = ByteBuffer.allocate(3 * 40 * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int row = 0; row < 3; row++) {
      int column = 0;
      for (int i = 0; i < 40; i++) {
        column += 1 + random.nextInt(3);
        d.putInt(column);
      }
    }
    segments.add(deltaSegment(r, d.array(), Dtype.INT32, 1, Encoding.ZLIB, "indices"));
    // 1: int16, 2 channels of 150, steps mostly 0, sometimes 1 or 5.
    d = ByteBuffer.allocate(2 * 150 * 2).order(ByteOrder.LITTLE_ENDIAN);
    short v = -7;
    for (int i = 0; i < 300; i++) {
      int k = random.nextInt(10);
      v += k < 7 ? 0 : k < 9 ? 1 : 5;
      d.putShort(v);
    }
    segments.add(deltaSegment(r, d.array(), Dtype.INT16, 2, Encoding.CLUSTERED_SPARSE, "steps"));
    // 2: uint8, 3 channels of 20, steps 200 and 100 (200 + 100 = 44 mod 256).
    byte[] wraps = new byte[60];
    int u = 0;
    for (int i = 0; i < wraps.length; i++) {
      u = (u + (random.nextBoolean() ? 200 : 100)) & 0xFF;
      wraps[i] = (byte) u;
    }
    segments.add(deltaSegment(r, wraps, Dtype.UINT8, 3, Encoding.GROUPED_DENSE, "wraps"));
    // 3: int64 near 2^64: steps of 2^63 + 1 and -3 wrap modulo 2^64.
    d = ByteBuffer.allocate(8 * 12).order(ByteOrder.LITTLE_ENDIAN);
    long w = -5;
    for (int i = 0; i < 12; i++) {
      w += i % 2 == 0 ? Long.MIN_VALUE + 1 : -3;
      d.putLong(w);
    }
    segments.add(deltaSegment(r, d.array(), Dtype.INT64, 1, Encoding.RAW, "wide"));
    // 4: float16, increasing bit patterns from 1.0.
    d = ByteBuffer.allocate(2 * 64).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 64; i++) {
      d.putShort((short) (0x3C00 + 4 * i + (i % 3)));
    }
    segments.add(deltaSegment(r, d.array(), Dtype.FLOAT16, 1, Encoding.CLUSTERED_DENSE, "halves"));
    r.put(new byte[] {9, 8, 7});
    return bundle("delta", java.util.Arrays.copyOf(r.array(), r.position()), segments);
  }

  /**
   * SPARSE_RAW segments (spec 7.6), with gaps between: segment 0 float32, 4 channels of 150, one
   * background per slice (+0.0, -0.0, 1.0, +0.0), 85% background, the rest unclustered random
   * floats, escape_run 5; 1 int8, one slice of 1200, background 0 and 1% kept (runs longer than
   * escape_run 255: escapes); 2 float16, 3 channels all background (no gap symbols, no values);
   * 3 int16, 60 elements, none of them the background 0x7FFF (every element emitted, escape_run
   * 1); 4 DELTA of int32 sorted indices, steps mostly 1 (inner SPARSE_RAW, background 1).
   */
  static Bundle sparseRaw() {
    Random random = new Random(13);
    ByteBuffer r = ByteBuffer.allocate(8192).order(ByteOrder.LITTLE_ENDIAN);
    java.util.List<BundleBuilder.Seg> segments = new java.util.ArrayList<BundleBuilder.Seg>();
    ByteBuffer d = ByteBuffer.allocate(4 * 150 * 4).order(ByteOrder.LITTLE_ENDIAN);
    float[] backgrounds = {0f, -0.0f, 1f, 0f};
    for (int c = 0; c < 4; c++) {
      for (int i = 0; i < 150; i++) {
        d.putFloat(random.nextInt(100) < 85 ? backgrounds[c] : (float) random.nextGaussian());
      }
    }
    segments.add(sparseRawSegment(r, d.array(), Dtype.FLOAT32, 4, 4, 5, "per-slice"));
    byte[] int8 = new byte[1200];
    for (int i = 0; i < int8.length; i++) {
      int8[i] = random.nextInt(100) == 0 ? (byte) (1 + random.nextInt(255)) : 0;
    }
    segments.add(sparseRawSegment(r, int8, Dtype.INT8, 1, 1, 255, "escapes"));
    segments.add(sparseRawSegment(r, new byte[3 * 20 * 2], Dtype.FLOAT16, 3, 3, 4, "empty"));
    d = ByteBuffer.allocate(60 * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 60; i++) {
      d.putShort((short) random.nextInt(1000));
    }
    r.put((byte) 0x5A);
    int at = r.position();
    r.put(d.array());
    segments.add(
        new BundleBuilder.Seg(
                at, 120, Dtype.INT16, 1, Encoding.SPARSE_RAW,
                BundleBuilder.sparseRaw(d.array(), 2, new long[] {0x7FFF}, 1))
            .named("sparse-raw/dense"));
    d = ByteBuffer.allocate(100 * 4).order(ByteOrder.LITTLE_ENDIAN);
    int index = 3;
    for (int i = 0; i < 100; i++) {
      index += random.nextInt(5) == 0 ? 2 + random.nextInt(8) : 1;
      d.putInt(index);
    }
    segments.add(deltaSegment(r, d.array(), Dtype.INT32, 1, Encoding.SPARSE_RAW, "indices"));
    r.put(new byte[] {6, 5, 4});
    return bundle("sparse-raw", java.util.Arrays.copyOf(r.array(), r.position()), segments);
  }

  /**
   * PACKED (spec 7.10): a 24-byte head in the skeleton, then one PACKED segment whose parts are,
   * with the gaps between them: a 20-byte gap of zeros (ZLIB), 16 opaque bytes (RAW), a 3-byte
   * gap (RAW), an int32 table (ZLIB), an empty int8 part, float32 of 2 channels (CLUSTERED_DENSE,
   * one codebook each), float16 of 4 channels (CLUSTERED_SPARSE, escape_run 3), float32 of 2
   * slices (SPARSE_RAW), int8 of 4 channels in 2 groups (GROUPED_SPARSE) and an int32 counter
   * (DELTA over CLUSTERED_DENSE), every stream with the compact header of 6.5; then a float32
   * CLUSTERED_SPARSE segment of its own (the stream header of section 6) and a 5-byte tail.
   */
  static Bundle packed() {
    Random random = new Random(17);
    ByteBuffer r = ByteBuffer.allocate(16384).order(ByteOrder.LITTLE_ENDIAN);
    byte[] head = new byte[24];
    random.nextBytes(head);
    r.put(head);
    int from = r.position();
    r.put(new byte[20]);
    java.util.List<BundleBuilder.Seg> parts = new java.util.ArrayList<BundleBuilder.Seg>();
    byte[] opaque = new byte[16];
    random.nextBytes(opaque);
    parts.add(part(r, opaque, Dtype.BYTES, 1, Encoding.RAW, opaque));
    r.put(new byte[] {1, 2, 3});
    ByteBuffer d = ByteBuffer.allocate(500 * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 500; i++) {
      d.putInt(i / 7);
    }
    parts.add(part(r, d.array(), Dtype.INT32, 1, Encoding.ZLIB, BundleBuilder.zlib(d.array(), 9)));
    parts.add(part(r, new byte[0], Dtype.INT8, 1, Encoding.RAW, new byte[0]));
    d = ByteBuffer.allocate(2 * 100 * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 200; i++) {
      d.putFloat((i < 100 ? 0.5f : -2f) * (1 + random.nextInt(3)));
    }
    parts.add(
        part(r, d.array(), Dtype.FLOAT32, 2, Encoding.CLUSTERED_DENSE,
            BundleBuilder.clustered(d.array(), 4, 2, false, 0, true)));
    d = ByteBuffer.allocate(4 * 150 * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 600; i++) {
      d.putShort(random.nextInt(10) < 8 ? 0 : (short) (0x3C00 + 16 * (i / 150) + random.nextInt(4)));
    }
    parts.add(
        part(r, d.array(), Dtype.FLOAT16, 4, Encoding.CLUSTERED_SPARSE,
            BundleBuilder.clustered(d.array(), 2, 4, true, 3, true)));
    d = ByteBuffer.allocate(2 * 200 * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 400; i++) {
      d.putFloat(random.nextInt(100) < 85 ? (i < 200 ? 0f : -0.0f) : (float) random.nextGaussian());
    }
    parts.add(
        part(r, d.array(), Dtype.FLOAT32, 2, Encoding.SPARSE_RAW,
            BundleBuilder.sparseRaw(d.array(), 4, 2, 5, true)));
    byte[] int8 = new byte[4 * 50];
    for (int i = 0; i < int8.length; i++) {
      int8[i] = random.nextInt(4) == 0 ? (byte) ((i / 50) % 2 * 10 + 1 + random.nextInt(3)) : 0;
    }
    parts.add(
        part(r, int8, Dtype.INT8, 4, Encoding.GROUPED_SPARSE,
            BundleBuilder.grouped(int8, 1, new int[] {0, 1, 0, 1}, 2, true, 4, true)));
    d = ByteBuffer.allocate(200 * 4).order(ByteOrder.LITTLE_ENDIAN);
    int counter = 0;
    for (int i = 0; i < 200; i++) {
      counter += random.nextInt(3);
      d.putInt(counter);
    }
    byte[] steps = BundleBuilder.differences(d.array(), 4);
    parts.add(
        part(r, d.array(), Dtype.INT32, 1, Encoding.DELTA,
            BundleBuilder.delta(
                Encoding.CLUSTERED_DENSE, BundleBuilder.clustered(steps, 4, 1, false, 0, true))));
    int to = r.position();
    r.put((byte) 0x5A);
    d = ByteBuffer.allocate(300 * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 300; i++) {
      d.putFloat(random.nextInt(10) < 9 ? 0f : 0.25f * (1 + random.nextInt(5)));
    }
    BundleBuilder.Seg plain =
        part(r, d.array(), Dtype.FLOAT32, 1, Encoding.CLUSTERED_SPARSE,
            BundleBuilder.clustered(d.array(), 4, 1, true, 7));
    r.put(new byte[] {5, 4, 3, 2, 1});
    byte[] restored = java.util.Arrays.copyOf(r.array(), r.position());
    java.util.List<BundleBuilder.Seg> segments = new java.util.ArrayList<BundleBuilder.Seg>();
    segments.add(BundleBuilder.packedSegment(restored, parts, from, to).named("packed"));
    segments.add(plain.named("plain"));
    return bundle("packed", restored, segments);
  }

  /**
   * MASKED (spec 7.12), with gaps between: segment 0 float32, 6 rows of 10 (columns not a multiple
   * of 8), rows 1 and 4 and columns 0, 3 and 9 all +0.0 (inner CLUSTERED_SPARSE, one codebook per
   * kept row); 1 float16, 5 rows of 12, fill -0.0 (inner CLUSTERED_DENSE); 2 int8, 3 rows of 20
   * (inner SPARSE_RAW); 3 float32, one channel of 40 (a column mask only; inner RAW); 4 int32, 4
   * rows of 9, fill 0x7FFFFFFF (inner ZLIB); 5 float32, 11 rows of 17 (two-byte masks; inner
   * GROUPED_SPARSE); 6 int16, 9 rows of 3 (inner GROUPED_DENSE); 7 bytes, 4 rows of 30 (inner
   * ZLIB_DICT); then one PACKED segment whose parts, with the gaps between them, are MASKED float32
   * (inner CLUSTERED_SPARSE), float16 (inner SPARSE_RAW), int8 (inner CLUSTERED_DENSE) and
   * float32 (inner GROUPED_SPARSE), every stream with the compact header of 6.5; a 3-byte tail.
   */
  static Bundle masked() {
    Random random = new Random(23);
    ByteBuffer r = ByteBuffer.allocate(16384).order(ByteOrder.LITTLE_ENDIAN);
    java.util.List<BundleBuilder.Seg> segments = new java.util.ArrayList<BundleBuilder.Seg>();
    byte[] head = new byte[12];
    random.nextBytes(head);
    r.put(head);
    segments.add(maskedSegment(r, pruned(random, Dtype.FLOAT32, 6, 10, 0, new int[] {1, 4},
        new int[] {0, 3, 9}, 6), Dtype.FLOAT32, 6, 0, Encoding.CLUSTERED_SPARSE, "sparse"));
    segments.add(maskedSegment(r, pruned(random, Dtype.FLOAT16, 5, 12, 0x8000, new int[] {2},
        new int[] {1, 2, 11}, 4), Dtype.FLOAT16, 5, 0x8000, Encoding.CLUSTERED_DENSE, "dense"));
    segments.add(maskedSegment(r, pruned(random, Dtype.INT8, 3, 20, 0, new int[] {0},
        new int[] {5, 6, 7, 8, 9, 10, 19}, 200), Dtype.INT8, 3, 0, Encoding.SPARSE_RAW,
        "sparse-raw"));
    segments.add(maskedSegment(r, pruned(random, Dtype.FLOAT32, 1, 40, 0, new int[0],
        new int[] {0, 1, 2, 7, 8, 30, 39}, 1000), Dtype.FLOAT32, 1, 0, Encoding.RAW, "one-row"));
    segments.add(maskedSegment(r, pruned(random, Dtype.INT32, 4, 9, 0x7FFFFFFF, new int[] {3},
        new int[] {4}, 3), Dtype.INT32, 4, 0x7FFFFFFF, Encoding.ZLIB, "zlib"));
    segments.add(maskedSegment(r, pruned(random, Dtype.FLOAT32, 11, 17, 0,
        new int[] {0, 8, 9, 10}, new int[] {16, 8}, 5), Dtype.FLOAT32, 11, 0,
        Encoding.GROUPED_SPARSE, "grouped-sparse"));
    segments.add(maskedSegment(r, pruned(random, Dtype.INT16, 9, 3, 0, new int[] {1, 2, 3},
        new int[] {1}, 7), Dtype.INT16, 9, 0, Encoding.GROUPED_DENSE, "grouped-dense"));
    segments.add(maskedSegment(r, pruned(random, Dtype.BYTES, 4, 30, 0, new int[] {1},
        new int[] {0, 29}, 20), Dtype.BYTES, 4, 0, Encoding.ZLIB_DICT, "zlib-dict"));
    r.put((byte) 0x5A);
    int from = r.position();
    r.put(new byte[] {1, 2, 3});
    java.util.List<BundleBuilder.Seg> parts = new java.util.ArrayList<BundleBuilder.Seg>();
    parts.add(maskedPart(r, pruned(random, Dtype.FLOAT32, 8, 25, 0, new int[] {0, 7},
        new int[] {3, 4, 5, 24}, 5), Dtype.FLOAT32, 8, 0, Encoding.CLUSTERED_SPARSE));
    parts.add(maskedPart(r, pruned(random, Dtype.FLOAT16, 3, 16, 0x8000, new int[] {1},
        new int[] {15}, 500), Dtype.FLOAT16, 3, 0x8000, Encoding.SPARSE_RAW));
    r.put(new byte[24]);
    parts.add(maskedPart(r, pruned(random, Dtype.INT8, 10, 10, 0, new int[] {9},
        new int[] {0}, 9), Dtype.INT8, 10, 0, Encoding.CLUSTERED_DENSE));
    parts.add(maskedPart(r, pruned(random, Dtype.FLOAT32, 4, 6, 0, new int[] {2},
        new int[] {2}, 4), Dtype.FLOAT32, 4, 0, Encoding.GROUPED_SPARSE));
    int to = r.position();
    r.put(new byte[] {9, 8, 7});
    byte[] restored = java.util.Arrays.copyOf(r.array(), r.position());
    segments.add(BundleBuilder.packedSegment(restored, parts, from, to).named("packed"));
    return bundle("masked", restored, segments);
  }

  /**
   * A pruned weight matrix of {@code rows} by {@code columns} elements of {@code dtype}: {@code
   * fill} in the dead rows and columns and in a third of the others, else one of {@code values}
   * random patterns per row (values 1 ... values for int8, so never the fill 0).
   */
  private static byte[] pruned(
      Random random, int dtype, int rows, int columns, long fill, int[] deadRows,
      int[] deadColumns, int values) {
    int esize = Dtype.ESIZES[dtype];
    boolean[] dead = new boolean[rows * columns];
    for (int c : deadRows) {
      for (int j = 0; j < columns; j++) {
        dead[c * columns + j] = true;
      }
    }
    for (int j : deadColumns) {
      for (int c = 0; c < rows; c++) {
        dead[c * columns + j] = true;
      }
    }
    byte[] data = new byte[rows * columns * esize];
    long mask = esize == 8 ? -1L : (1L << (8 * esize)) - 1;
    for (int p = 0; p < rows * columns; p++) {
      long v = fill;
      if (!dead[p] && random.nextInt(3) > 0) {
        do {
          v = random.nextInt(values) + (esize == 1 ? 1 : (p / columns) * 977);
          if (esize > 2) {
            v = Float.floatToIntBits(0.25f * (float) v - 3f);
          }
        } while ((v & mask) == (fill & mask));
      }
      for (int j = 0; j < esize; j++) {
        data[p * esize + j] = (byte) (v >>> (8 * j));
      }
    }
    return data;
  }

  /** Writes a gap byte and {@code data} to {@code r}; its MASKED segment with {@code inner}. */
  private static BundleBuilder.Seg maskedSegment(
      ByteBuffer r, byte[] data, int dtype, int channels, long fill, int inner, String name) {
    r.put((byte) 0x5A);
    int offset = r.position();
    r.put(data);
    byte[] payload =
        BundleBuilder.masked(data, Dtype.ESIZES[dtype], channels, fill, inner, false);
    return new BundleBuilder.Seg(offset, data.length, dtype, channels, Encoding.MASKED, payload)
        .named("masked/" + name);
  }

  /** Writes {@code data} to {@code r}; its MASKED part with {@code inner}, compact streams. */
  private static BundleBuilder.Seg maskedPart(
      ByteBuffer r, byte[] data, int dtype, int channels, long fill, int inner) {
    byte[] payload = BundleBuilder.masked(data, Dtype.ESIZES[dtype], channels, fill, inner, true);
    return part(r, data, dtype, channels, Encoding.MASKED, payload);
  }

  /** The inner encodings of a MASKED payload (spec 7.12): 0 ... 6 and 9. */
  static final int[] MASKED_INNER_ENCODINGS = {
    Encoding.RAW,
    Encoding.ZLIB,
    Encoding.CLUSTERED_SPARSE,
    Encoding.CLUSTERED_DENSE,
    Encoding.SPARSE_RAW,
    Encoding.GROUPED_SPARSE,
    Encoding.GROUPED_DENSE,
    Encoding.ZLIB_DICT
  };

  /**
   * A random bundle of MASKED segments (spec 7.12), or with {@code packed} of one PACKED segment
   * whose parts they are (compact stream headers): random dtypes, 1 to 12 rows (now and then up to
   * 40) of 0 to 30 columns, random row and column masks with at least one bit set each, a fill of
   * +0.0, -0.0 or a random pattern, and a submatrix of a few random values per row (the fill among
   * them now and then: a kept row or column may hold fill values too) coded with an inner encoding
   * drawn from {@link #MASKED_INNER_ENCODINGS}.
   */
  static Bundle randomMasked(Random random, int index, boolean packed) {
    int segmentCount = 1 + random.nextInt(5);
    java.io.ByteArrayOutputStream r = new java.io.ByteArrayOutputStream();
    java.util.List<BundleBuilder.Seg> segments = new java.util.ArrayList<BundleBuilder.Seg>();
    for (int i = 0; i < segmentCount; i++) {
      byte[] gap = new byte[random.nextInt(3) == 0 ? 0 : random.nextInt(20)];
      random.nextBytes(gap);
      r.write(gap, 0, gap.length);
      int dtype = random.nextInt(Dtype.ESIZES.length);
      int esize = Dtype.ESIZES[dtype];
      int rows = 1 + random.nextInt(random.nextInt(6) == 0 ? 40 : 12);
      int columns = 1 + random.nextInt(30);
      boolean[] keptRows = randomMask(random, rows);
      boolean[] keptColumns = randomMask(random, columns);
      int r0 = BundleBuilder.count(keptRows);
      int m0 = BundleBuilder.count(keptColumns);
      long[] fills = {0, 1L << (8 * esize - 1), random.nextLong()};
      long fill = fills[random.nextInt(fills.length)];
      long[] values = new long[1 + random.nextInt(6)];
      for (int k = 0; k < values.length; k++) {
        values[k] = random.nextInt(5) == 0 ? fill : random.nextLong();
      }
      byte[] sub = new byte[r0 * m0 * esize];
      for (int p = 0; p < r0 * m0; p++) {
        long v = values[(p / m0 + random.nextInt(values.length)) % values.length];
        for (int j = 0; j < esize; j++) {
          sub[p * esize + j] = (byte) (v >>> (8 * j));
        }
      }
      int inner = MASKED_INNER_ENCODINGS[random.nextInt(MASKED_INNER_ENCODINGS.length)];
      byte[] innerPayload = BundleBuilder.encode(inner, sub, esize, r0, packed);
      byte[] pattern = new byte[esize];
      for (int j = 0; j < esize; j++) {
        pattern[j] = (byte) (fill >>> (8 * j));
      }
      byte[] payload =
          BundleBuilder.masked(
              pattern, BundleBuilder.mask(keptRows), BundleBuilder.mask(keptColumns), inner,
              innerPayload);
      byte[] data = BundleBuilder.scatter(sub, esize, keptRows, keptColumns, fill);
      segments.add(
          new BundleBuilder.Seg(r.size(), data.length, dtype, rows, Encoding.MASKED, payload));
      r.write(data, 0, data.length);
    }
    byte[] tail = new byte[random.nextInt(10)];
    random.nextBytes(tail);
    r.write(tail, 0, tail.length);
    byte[] restored = r.toByteArray();
    if (packed) {
      BundleBuilder.Seg last = segments.get(segments.size() - 1);
      segments =
          java.util.Collections.singletonList(
              BundleBuilder.packedSegment(
                  restored, segments, segments.get(0).offset, last.offset + last.size));
    }
    return bundle((packed ? "random-masked-packed-" : "random-masked-") + index, restored,
        segments);
  }

  /** A random mask of {@code bits} bits with at least one set: mostly kept, or mostly not. */
  private static boolean[] randomMask(Random random, int bits) {
    double keep = random.nextBoolean() ? 0.8 : 0.3;
    boolean[] kept = new boolean[bits];
    for (int c = 0; c < bits; c++) {
      kept[c] = random.nextDouble() < keep;
    }
    kept[random.nextInt(bits)] = true;
    return kept;
  }

  /** Writes {@code data} to {@code r}; the segment (or PACKED part) that holds it. */
  private static BundleBuilder.Seg part(
      ByteBuffer r, byte[] data, int dtype, int channels, int encoding, byte[] payload) {
    int offset = r.position();
    r.put(data);
    return new BundleBuilder.Seg(offset, data.length, dtype, channels, encoding, payload);
  }

  /** Writes a gap byte and {@code data} to {@code r}; its SPARSE_RAW segment. */
  private static BundleBuilder.Seg sparseRawSegment(
      ByteBuffer r, byte[] data, int dtype, int channels, int slices, int escapeRun,
      String name) {
    r.put((byte) 0x5A);
    int offset = r.position();
    r.put(data);
    byte[] payload = BundleBuilder.sparseRaw(data, Dtype.ESIZES[dtype], slices, escapeRun);
    return new BundleBuilder.Seg(offset, data.length, dtype, channels, Encoding.SPARSE_RAW, payload)
        .named("sparse-raw/" + name);
  }

  /** Writes a gap byte and {@code data} to {@code r}; its DELTA segment with {@code inner}. */
  private static BundleBuilder.Seg deltaSegment(
      ByteBuffer r, byte[] data, int dtype, int channels, int inner, String name) {
    r.put((byte) 0x5A);
    int offset = r.position();
    r.put(data);
    int esize = Dtype.ESIZES[dtype];
    byte[] d = BundleBuilder.differences(data, esize);
    byte[] payload;
    switch (inner) {
      case Encoding.RAW:
        payload = d;
        break;
      case Encoding.ZLIB:
        payload = BundleBuilder.zlib(d, 9);
        break;
      case Encoding.SPARSE_RAW:
        payload = BundleBuilder.sparseRaw(d, esize, channels, 3);
        break;
      case Encoding.GROUPED_DENSE:
        int[] map = new int[channels];
        for (int c = 0; c < channels; c++) {
          map[c] = c % 2;
        }
        payload = BundleBuilder.grouped(d, esize, map, 2, false, 1);
        break;
      default:
        payload =
            BundleBuilder.clustered(
                d, esize, channels, inner == Encoding.CLUSTERED_SPARSE, 2);
    }
    return new BundleBuilder.Seg(
            offset, data.length, dtype, channels, Encoding.DELTA,
            BundleBuilder.delta(inner, payload))
        .named("delta/" + name);
  }

  /** The encodings {@link #random(Random, int)} draws from: every one the builder writes. */
  static final int[] RANDOM_ENCODINGS = {
    Encoding.RAW,
    Encoding.ZLIB,
    Encoding.CLUSTERED_SPARSE,
    Encoding.CLUSTERED_DENSE,
    Encoding.SPARSE_RAW,
    Encoding.GROUPED_SPARSE,
    Encoding.GROUPED_DENSE,
    Encoding.DELTA
  };

  /** The inner encodings a random DELTA segment draws from (spec 7.9): all but DELTA. */
  static final int[] INNER_ENCODINGS = java.util.Arrays.copyOf(RANDOM_ENCODINGS, 7);

  /**
   * ZLIB_DICT (spec 7.11, since 1.5) beside ZLIB and RAW, for {@link #random(Random, int, int[],
   * boolean)}: segments or PACKED parts of random bytes.
   */
  static final int[] ZLIB_DICT_ENCODINGS = {Encoding.ZLIB_DICT, Encoding.ZLIB, Encoding.RAW};

  /** The grouped encodings (spec 7.8), for {@link #random(Random, int, int[])}. */
  static final int[] GROUPED_ENCODINGS = {Encoding.GROUPED_SPARSE, Encoding.GROUPED_DENSE};

  /** DELTA alone (spec 7.9), for {@link #random(Random, int, int[])}. */
  static final int[] DELTA_ENCODINGS = {Encoding.DELTA};

  /** A random bundle: random gaps, dtypes, channels and encodings. */
  static Bundle random(Random random, int index) {
    return random(random, index, RANDOM_ENCODINGS);
  }

  /** As {@link #random(Random, int, int[])}, segments of their own. */
  static Bundle random(Random random, int index, int[] encodings) {
    return random(random, index, encodings, false);
  }

  /**
   * A random bundle whose segments use encodings drawn from {@code encodings}. Each segment's
   * channels are grouped at random into G codebooks, each with its own values and background
   * (0 or a random pattern), so that channels of different groups differ; G is 1 unless the
   * segment is grouped or SPARSE_RAW (a clustered segment then has one codebook, or one per
   * channel). A SPARSE_RAW segment is mostly background (pruned) with unclustered random values,
   * has one background or one per channel, and now and then a background its slices never hold
   * (every element emitted). A DELTA segment draws its inner encoding from {@link
   * #INNER_ENCODINGS} and its differences as above; its elements are their running sums.
   * With {@code packed} (spec 7.10) the segments' streams have compact headers, and they become
   * the parts of one PACKED segment with the gaps between them, which covers either the span
   * from the first segment to the last or the whole restored file (drawn at random).
   */
  static Bundle random(Random random, int index, int[] encodings, boolean packed) {
    int segmentCount = random.nextInt(6);
    int[] esizes = Dtype.ESIZES;
    java.io.ByteArrayOutputStream r = new java.io.ByteArrayOutputStream();
    java.util.List<BundleBuilder.Seg> segments = new java.util.ArrayList<BundleBuilder.Seg>();
    for (int i = 0; i < segmentCount; i++) {
      byte[] gap = new byte[random.nextInt(3) == 0 ? 0 : random.nextInt(50)];
      random.nextBytes(gap);
      r.write(gap, 0, gap.length);
      int encoding = encodings[random.nextInt(encodings.length)];
      boolean delta = encoding == Encoding.DELTA;
      if (delta) {
        encoding = INNER_ENCODINGS[random.nextInt(INNER_ENCODINGS.length)];
      }
      boolean grouped = Encoding.isGrouped(encoding);
      boolean sparseRaw = encoding == Encoding.SPARSE_RAW;
      int dtype = random.nextInt(esizes.length);
      int esize = esizes[dtype];
      // Many channels, few elements each (for SPARSE_RAW: many backgrounds).
      boolean wide = (grouped || sparseRaw) && random.nextInt(8) == 0;
      int channels = 1 + random.nextInt(wide ? 300 : grouped ? 8 : 4);
      int elements = channels * random.nextInt(wide ? 3 : 200);
      // Channels of a group share a background: SPARSE_RAW's slices differ between groups.
      int groups = grouped || sparseRaw ? 1 + random.nextInt(Math.min(channels, 256)) : 1;
      int[] map = new int[channels];
      for (int c = 0; c < channels; c++) {
        map[c] = random.nextInt(groups);
      }
      long[][] values = new long[groups][];
      long[] background = new long[groups];
      for (int g = 0; g < groups; g++) {
        values[g] = new long[1 + random.nextInt(random.nextBoolean() ? 4 : 40)];
        for (int k = 0; k < values[g].length; k++) {
          values[g][k] = random.nextLong();
        }
        background[g] = random.nextInt(3) == 0 ? random.nextLong() : 0;
      }
      byte[] data = new byte[elements * esize];
      // SPARSE_RAW is for pruned values that are not clustered: mostly background (3 times in
      // 4), the rest any pattern.
      double zeros = random.nextDouble();
      if (sparseRaw && random.nextInt(4) > 0) {
        zeros = 0.7 + 0.3 * zeros;
      }
      for (int p = 0; p < elements; p++) {
        int g = map[p / (elements / channels)];
        long v =
            random.nextDouble() < zeros
                ? background[g]
                : sparseRaw ? random.nextLong() : values[g][random.nextInt(values[g].length)];
        for (int j = 0; j < esize; j++) {
          data[p * esize + j] = (byte) (v >>> (8 * j));
        }
      }
      byte[] coded = data; // what the payload holds: for DELTA, the differences
      if (delta) {
        data = BundleBuilder.runningSums(coded, esize);
      }
      byte[] payload;
      int escapeRun = 1 + random.nextInt(random.nextBoolean() ? 4 : 255);
      boolean sparse =
          encoding == Encoding.CLUSTERED_SPARSE || encoding == Encoding.GROUPED_SPARSE;
      switch (encoding) {
        case Encoding.RAW:
          payload = coded;
          break;
        case Encoding.ZLIB:
          payload = BundleBuilder.zlib(coded, random.nextInt(10));
          break;
        case Encoding.ZLIB_DICT:
          payload = BundleBuilder.zlibDict(coded, random.nextInt(10));
          break;
        case Encoding.GROUPED_SPARSE:
        case Encoding.GROUPED_DENSE:
          payload = BundleBuilder.grouped(coded, esize, map, groups, sparse, escapeRun, packed);
          break;
        case Encoding.SPARSE_RAW:
          int slices = random.nextBoolean() ? 1 : channels;
          if (random.nextInt(6) == 0) { // a background no slice holds: all emitted
            long[] absent = new long[slices];
            java.util.Arrays.fill(absent, absentPattern(coded, esize));
            payload = BundleBuilder.sparseRaw(coded, esize, absent, escapeRun, packed);
          } else {
            payload = BundleBuilder.sparseRaw(coded, esize, slices, escapeRun, packed);
          }
          break;
        default:
          int books = random.nextBoolean() ? 1 : channels;
          payload = BundleBuilder.clustered(coded, esize, books, sparse, escapeRun, packed);
      }
      if (payload == null) {
        encoding = Encoding.RAW;
        payload = coded;
      }
      if (delta) {
        payload = BundleBuilder.delta(encoding, payload);
        encoding = Encoding.DELTA;
      }
      segments.add(
          new BundleBuilder.Seg(r.size(), data.length, dtype, channels, encoding, payload));
      r.write(data, 0, data.length);
    }
    byte[] tail = new byte[random.nextInt(30)];
    random.nextBytes(tail);
    r.write(tail, 0, tail.length);
    byte[] restored = r.toByteArray();
    if (packed && !segments.isEmpty()) {
      boolean whole = random.nextBoolean();
      BundleBuilder.Seg last = segments.get(segments.size() - 1);
      BundleBuilder.Seg span =
          BundleBuilder.packedSegment(
              restored,
              segments,
              whole ? 0 : segments.get(0).offset,
              whole ? restored.length : last.offset + last.size);
      segments = java.util.Collections.singletonList(span);
    }
    return bundle((packed ? "random-packed-" : "random-") + index, restored, segments);
  }

  /** The bundle of {@code segments} over the restored bytes {@code restored}. */
  private static Bundle bundle(
      String name, byte[] restored, java.util.List<BundleBuilder.Seg> segments) {
    BundleBuilder builder = new BundleBuilder(restored);
    for (BundleBuilder.Seg seg : segments) {
      builder.add(seg);
    }
    return new Bundle(name, restored, builder.build());
  }

  /**
   * The smallest esize-byte pattern (as unsigned) that no element of {@code data} has. When all
   * 256 one-byte patterns occur it is 256, whose low byte (0) occurs: the payload stays valid, its
   * background just is not absent.
   */
  static long absentPattern(byte[] data, int esize) {
    java.util.Set<Long> present = new java.util.HashSet<Long>();
    for (int p = 0; p < data.length; p += esize) {
      long v = 0;
      for (int j = 0; j < esize; j++) {
        v |= (data[p + j] & 0xFFL) << (8 * j);
      }
      present.add(v);
    }
    long v = 0;
    while (present.contains(v)) {
      v++;
    }
    return v;
  }

  static byte[] slice(byte[] b, int offset, int length) {
    byte[] out = new byte[length];
    System.arraycopy(b, offset, out, 0, length);
    return out;
  }

  /**
   * {@code bundle} restores to its bytes with every Huffman decoder, into a new array, a direct
   * buffer, a heap and a direct buffer at a position (not zeroed: fill zeros must be written) and
   * a file (a stream).
   */
  static void restoresEverywhere(Bundle bundle) throws Exception {
    for (HuffmanDecoding mode : HuffmanDecoding.values()) {
      BundleRestorer restorer = new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, mode);
      String what = bundle + ", decoder " + mode;
      assertArrayEquals(bundle.restored, restorer.restore(bundle.skeleton, bundle.sidecar), what);
      ByteBuffer direct = restorer.restoreDirect(bundle.skeleton, bundle.sidecar);
      assertArrayEquals(bundle.restored, bytes(direct), what + ", restoreDirect");
      for (boolean isDirect : new boolean[] {false, true}) {
        int size = bundle.restored.length;
        ByteBuffer target =
            isDirect ? ByteBuffer.allocateDirect(size + 9) : ByteBuffer.allocate(size + 9);
        for (int i = 0; i < target.capacity(); i++) {
          target.put(i, (byte) 0xA5);
        }
        target.position(5);
        restorer.restoreInto(bundle.skeleton, bundle.sidecar, target);
        ByteBuffer view = target.duplicate();
        view.position(5);
        view.limit(5 + size);
        assertArrayEquals(bundle.restored, bytes(view), what + ", restoreInto " + isDirect);
      }
      File file = File.createTempFile("restored-", ".tflite");
      try {
        assertTrue(restorer.restoreToFile(bundle.skeleton, bundle.sidecar, file));
        assertArrayEquals(bundle.restored, Files.readAllBytes(file.toPath()), what + ", file");
      } finally {
        assertTrue(file.delete());
      }
    }
  }

  static byte[] bytes(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.duplicate().get(out);
    return out;
  }
}
