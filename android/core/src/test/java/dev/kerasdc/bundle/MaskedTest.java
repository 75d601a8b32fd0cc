package dev.kerasdc.bundle;

import static dev.kerasdc.bundle.BundleBuilder.concat;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kerasdc.bundle.Format.Dtype;
import dev.kerasdc.bundle.Format.Encoding;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * MASKED (format spec 7.12, since 1.6) restores exactly: every inner encoding (0 … 6 and 9) and
 * dtype, fills that are not zero, one row, masks of several bytes and widths that are not a
 * multiple of 8, PACKED parts with compact stream headers, and segments larger than one output
 * window, through every entry point and Huffman decoder. Its malformed-input rules are in {@link
 * MalformedInputTest}, its fuzzing in {@link FuzzTest}.
 */
final class MaskedTest {

  /** {@code data} of {@code dtype} as one MASKED segment at offset 3 of R, with gap bytes. */
  private static Fixtures.Bundle single(
      String name, byte[] data, int dtype, long channels, byte[] payload) {
    byte[] restored = concat(new byte[] {7, 8, 9}, data, new byte[] {1});
    byte[][] built =
        new BundleBuilder(restored)
            .add(new BundleBuilder.Seg(3, data.length, dtype, channels, Encoding.MASKED, payload))
            .build();
    return new Fixtures.Bundle(name, restored, built);
  }

  /**
   * A hand vector that pins the bit order of the masks: int8, C = 3 rows of M = 4, fill 0x7F,
   * row_mask 0x05 (rows 0 and 2), column_mask 0x06 (columns 1 and 2), inner RAW 01 02 03 04: the
   * rows read 7F 01 02 7F | 7F 7F 7F 7F | 7F 03 04 7F.
   */
  @Test
  void handVector() throws Exception {
    byte[] payload = BundleBuilder.bytes(0x7F, 0x05, 0x06, Encoding.RAW, 1, 2, 3, 4);
    assertArrayEquals(
        payload,
        BundleBuilder.masked(
            new byte[] {0x7F},
            BundleBuilder.mask(new boolean[] {true, false, true}),
            BundleBuilder.mask(new boolean[] {false, true, true, false}),
            Encoding.RAW,
            BundleBuilder.bytes(1, 2, 3, 4)));
    byte[] data =
        BundleBuilder.bytes(0x7F, 1, 2, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 3, 4, 0x7F);
    Fixtures.Bundle bundle = single("hand", data, Dtype.INT8, 3, payload);
    Fixtures.restoresEverywhere(bundle);
    assertEquals(6, Sidecar.parse(bundle.sidecar).getVersionMinor());
    assertEquals("MASKED", Sidecar.parse(bundle.sidecar).getSegments().get(0).getEncodingName());
  }

  /**
   * Every inner encoding, for float32, float16 and int8 (and int64 for the codes without
   * codebooks), with a fill of zero and one that is not (-0.0, or the pattern 0x80...): 7 rows of
   * 13 with dead rows 0 and 5 and dead columns 1, 2 and 12.
   */
  @Test
  void everyInnerEncodingAndDtype() throws Exception {
    Random random = new Random(5);
    int rows = 7;
    int columns = 13;
    for (int dtype : new int[] {Dtype.FLOAT32, Dtype.FLOAT16, Dtype.INT8, Dtype.INT64}) {
      int esize = Dtype.ESIZES[dtype];
      for (long fill : new long[] {0, 1L << (8 * esize - 1)}) {
        byte[] data = deadUnits(random, esize, rows, columns, fill);
        for (int inner : Fixtures.MASKED_INNER_ENCODINGS) {
          byte[] payload = BundleBuilder.masked(data, esize, rows, fill, inner, false);
          assertNotNull(payload);
          boolean[][] kept = BundleBuilder.kept(data, esize, rows, fill);
          assertEquals(5, BundleBuilder.count(kept[0]));
          assertEquals(10, BundleBuilder.count(kept[1]));
          assertEquals(inner, payload[esize + 1 + 2]);
          Fixtures.restoresEverywhere(
              single(
                  Dtype.NAMES[dtype] + " fill " + Long.toHexString(fill) + " inner "
                      + Encoding.NAMES[inner],
                  data, dtype, rows, payload));
        }
      }
    }
  }

  /**
   * R's elements of {@code rows} × {@code columns}: {@code fill} in rows 0 and 5 and columns 1, 2
   * and 12 (those that exist), else one of four values per row, or fill (one in four).
   */
  private static byte[] deadUnits(Random random, int esize, int rows, int columns, long fill) {
    byte[] data = new byte[rows * columns * esize];
    for (int c = 0; c < rows; c++) {
      for (int j = 0; j < columns; j++) {
        boolean dead = c == 0 || c == 5 || j == 1 || j == 2 || j == 12;
        long v = dead || random.nextInt(4) == 0 ? fill : 1 + c * 16 + random.nextInt(4);
        for (int k = 0; k < esize; k++) {
          data[(c * columns + j) * esize + k] = (byte) (v >>> (8 * k));
        }
      }
    }
    return data;
  }

  /**
   * Fills are bit patterns: -0.0 and a NaN with a payload are restored as they are, beside +0.0
   * elements of the kept submatrix.
   */
  @Test
  void fillIsABitPattern() throws Exception {
    for (int fillBits : new int[] {0x80000000, 0x7FC00123}) {
      ByteBuffer b = ByteBuffer.allocate(4 * 4 * 5).order(ByteOrder.LITTLE_ENDIAN);
      for (int p = 0; p < 20; p++) {
        int c = p / 5;
        int j = p % 5;
        b.putInt(c == 2 || j == 0 ? fillBits : j == 3 ? 0 : Float.floatToIntBits(c - 1.5f));
      }
      byte[] data = b.array();
      for (int inner : new int[] {Encoding.CLUSTERED_SPARSE, Encoding.RAW}) {
        byte[] payload = BundleBuilder.masked(data, 4, 4, fillBits & 0xFFFFFFFFL, inner, false);
        assertEquals(fillBits, ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN).getInt(0));
        assertEquals(0x0B, payload[4]); // rows 0, 1, 3
        assertEquals(0x1E, payload[5]); // columns 1 to 4
        Fixtures.restoresEverywhere(single("fill " + Integer.toHexString(fillBits), data, Dtype.FLOAT32,
            4, payload));
      }
    }
  }

  /**
   * One channel (C = 1): the row mask is one byte 0x01 and only the column mask leaves elements
   * out; also a single element, and all rows and columns kept (every mask bit set).
   */
  @Test
  void oneRowAndFullMasks() throws Exception {
    float[] v = {0f, 0f, 1.5f, 0f, -2f, -2f, 0f, 0f, 0f, 3f, 0f};
    ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float x : v) {
      b.putFloat(x);
    }
    byte[] data = b.array();
    for (int inner : Fixtures.MASKED_INNER_ENCODINGS) {
      byte[] payload = BundleBuilder.masked(data, 4, 1, 0, inner, false);
      assertEquals(0x01, payload[4]);
      assertArrayEquals(BundleBuilder.bytes(0x34, 0x02), Arrays.copyOfRange(payload, 5, 7));
      Fixtures.restoresEverywhere(single("one row " + Encoding.NAMES[inner], data, Dtype.FLOAT32, 1,
          payload));
    }
    Fixtures.restoresEverywhere(
        single("one element", BundleBuilder.bytes(0x55), Dtype.INT8, 1,
            BundleBuilder.bytes(0, 1, 1, Encoding.RAW, 0x55)));
    // Every row and column kept (no element is fill): 9 rows of 9, two-byte masks 0xFF 0x01.
    byte[] full = new byte[81];
    for (int p = 0; p < full.length; p++) {
      full[p] = (byte) (1 + p % 5);
    }
    byte[] payload = BundleBuilder.masked(full, 1, 9, 0, Encoding.CLUSTERED_DENSE, false);
    assertArrayEquals(
        BundleBuilder.bytes(0, 0xFF, 0x01, 0xFF, 0x01, Encoding.CLUSTERED_DENSE),
        Arrays.copyOf(payload, 6));
    Fixtures.restoresEverywhere(single("full", full, Dtype.INT8, 9, payload));
  }

  /**
   * Per-row codebooks: a CLUSTERED_SPARSE or CLUSTERED_DENSE inner payload with one codebook per
   * kept row has codebook_count r (the inner entry's channels), not C; each row its own values.
   */
  @Test
  void perRowCodebooksCountKeptRows() throws Exception {
    int rows = 12;
    int columns = 21;
    ByteBuffer b = ByteBuffer.allocate(2 * rows * columns).order(ByteOrder.LITTLE_ENDIAN);
    for (int c = 0; c < rows; c++) {
      for (int j = 0; j < columns; j++) {
        boolean dead = c % 3 == 1 || j % 4 == 0;
        b.putShort(dead ? 0 : (short) (0x3C00 + 64 * c + (j % 3)));
      }
    }
    byte[] data = b.array();
    for (int inner : new int[] {Encoding.CLUSTERED_SPARSE, Encoding.CLUSTERED_DENSE}) {
      byte[] payload = BundleBuilder.masked(data, 2, rows, 0, inner, false);
      int innerAt = 2 + 2 + 3 + 1;
      assertEquals(8, LittleEndian.u16(payload, innerAt)); // codebook_count = r = 8 of 12 rows
      Fixtures.restoresEverywhere(single("per-row " + Encoding.NAMES[inner], data, Dtype.FLOAT16, rows,
          payload));
    }
  }

  /**
   * MASKED parts of a PACKED segment, every inner encoding, with compact stream headers (6.5);
   * beside a RAW gap part and a MASKED segment of its own (the stream header of 6).
   */
  @Test
  void maskedPartsOfPackedUseCompactHeaders() throws Exception {
    Random random = new Random(7);
    int rows = 7;
    int columns = 13;
    ByteArrayOutputStream r = new ByteArrayOutputStream();
    r.write(new byte[] {1, 2, 3, 4}, 0, 4);
    List<BundleBuilder.Seg> parts = new ArrayList<BundleBuilder.Seg>();
    for (int inner : Fixtures.MASKED_INNER_ENCODINGS) {
      byte[] data = deadUnits(random, 4, rows, columns, 0x80000000L);
      byte[] payload = BundleBuilder.masked(data, 4, rows, 0x80000000L, inner, true);
      parts.add(
          new BundleBuilder.Seg(r.size(), data.length, Dtype.FLOAT32, rows, Encoding.MASKED,
              payload));
      r.write(data, 0, data.length);
      r.write(new byte[] {5, 6}, 0, 2); // a gap part (RAW)
    }
    int to = r.size() - 2;
    byte[] data = deadUnits(random, 2, rows, columns, 0);
    int plainAt = r.size();
    r.write(data, 0, data.length);
    byte[] restored = r.toByteArray();
    BundleBuilder.Seg plain =
        new BundleBuilder.Seg(plainAt, data.length, Dtype.FLOAT16, rows, Encoding.MASKED,
            BundleBuilder.masked(data, 2, rows, 0, Encoding.CLUSTERED_SPARSE, false));
    byte[][] built =
        new BundleBuilder(restored)
            .add(BundleBuilder.packedSegment(restored, parts, 4, to))
            .add(plain)
            .build();
    Fixtures.Bundle bundle = new Fixtures.Bundle("packed masked", restored, built);
    Fixtures.restoresEverywhere(bundle);
    Sidecar parsed = Sidecar.parse(bundle.sidecar);
    List<String> encodings = new ArrayList<String>();
    for (SegmentEntry part :
        PackedDecoder.parts(new Payload(bundle.sidecar, parsed.getSegments().get(0)))) {
      encodings.add(part.getEncodingName());
    }
    assertEquals(2 * Fixtures.MASKED_INNER_ENCODINGS.length - 1, encodings.size());
    assertEquals("MASKED", encodings.get(0));
    assertEquals("RAW", encodings.get(1));
  }

  /**
   * A float32 segment of 320 rows of 1100 (1.4 MB) with dead rows and columns, float16 and int8
   * ones of other shapes: the kept submatrix and the fill cross many 64 KiB windows of the inner
   * decoder and of the output.
   */
  @Test
  void largeSegmentsCrossOutputWindows() throws Exception {
    Random random = new Random(11);
    int[][] shapes = {{4, 320, 1100}, {2, 700, 333}, {1, 3, 70_001}};
    for (int[] shape : shapes) {
      int esize = shape[0];
      int rows = shape[1];
      int columns = shape[2];
      boolean[] deadRow = new boolean[rows];
      boolean[] deadColumn = new boolean[columns];
      for (int c = 0; c < rows; c++) {
        deadRow[c] = rows > 3 && random.nextInt(4) == 0;
      }
      for (int j = 0; j < columns; j++) {
        deadColumn[j] = random.nextInt(3) == 0 || (j > 100 && j < 300);
      }
      byte[] data = new byte[rows * columns * esize];
      for (int p = 0; p < rows * columns; p++) {
        if (!deadRow[p / columns] && !deadColumn[p % columns] && random.nextInt(5) > 0) {
          data[p * esize] = (byte) (1 + random.nextInt(30));
          data[p * esize + esize - 1] |= (byte) 0x40;
        }
      }
      int dtype = esize == 4 ? Dtype.FLOAT32 : esize == 2 ? Dtype.FLOAT16 : Dtype.INT8;
      for (int inner : new int[] {Encoding.CLUSTERED_SPARSE, Encoding.ZLIB, Encoding.RAW}) {
        byte[] payload = BundleBuilder.masked(data, esize, rows, 0, inner, false);
        Fixtures.Bundle bundle =
            single("large " + esize + " " + Encoding.NAMES[inner], data, dtype, rows, payload);
        assertArrayEquals(
            bundle.restored, new BundleRestorer().restore(bundle.skeleton, bundle.sidecar));
        ByteBuffer direct = new BundleRestorer().restoreDirect(bundle.skeleton, bundle.sidecar);
        assertArrayEquals(bundle.restored, Fixtures.bytes(direct), bundle.name);
      }
    }
  }

  /** Random MASKED bundles (segments, and PACKED parts) restore exactly everywhere. */
  @Test
  void randomMaskedBundlesRoundTrip() throws Exception {
    Random random = new Random(29);
    int[] drawn = new int[Encoding.NAMES.length];
    for (int i = 0; i < 60; i++) {
      Fixtures.Bundle bundle = Fixtures.randomMasked(random, i, i % 3 == 2);
      Fixtures.restoresEverywhere(bundle);
      Sidecar parsed = Sidecar.parse(bundle.sidecar);
      for (SegmentEntry segment : parsed.getSegments()) {
        if (segment.getEncoding() == Encoding.MASKED) {
          long rows = segment.getChannels();
          int at = segment.getPayloadOffset() + segment.getElementSize();
          at += (int) ((rows + 7) / 8 + (segment.elements() / rows + 7) / 8);
          drawn[bundle.sidecar[at]]++;
        }
      }
    }
    for (int inner : Fixtures.MASKED_INNER_ENCODINGS) {
      assertTrue(drawn[inner] >= 3, Encoding.NAMES[inner] + " drawn " + drawn[inner] + " times");
    }
  }

  /** The fixture bundle of every MASKED case restores everywhere. */
  @Test
  void fixtureRestores() throws Exception {
    Fixtures.Bundle bundle = Fixtures.masked();
    Fixtures.restoresEverywhere(bundle);
    assertEquals(6, Sidecar.parse(bundle.sidecar).getVersionMinor());
  }
}
