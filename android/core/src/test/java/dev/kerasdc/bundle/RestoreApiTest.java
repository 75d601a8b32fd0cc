package dev.kerasdc.bundle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kerasdc.bundle.Format.Dtype;
import dev.kerasdc.bundle.Format.Encoding;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The restorer's entry points, on builder-made bundles. */
final class RestoreApiTest {
  private final Fixtures.Bundle bundle = Fixtures.everyEncoding();
  private final BundleRestorer restorer = new BundleRestorer();

  @TempDir File directory;

  @Test
  void restoreReturnsR() throws Exception {
    assertArrayEquals(bundle.restored, restorer.restore(bundle.skeleton, bundle.sidecar));
  }

  @Test
  void segmentsDescribeTheTable() throws Exception {
    Sidecar parsed = restorer.check(bundle.skeleton, bundle.sidecar);
    assertEquals(4, parsed.getSegments().size());
    SegmentEntry sparse = parsed.getSegments().get(Fixtures.SPARSE_AT);
    assertEquals("sparse \u00e9\u4e2d", sparse.getName());
    assertEquals("CLUSTERED_SPARSE", sparse.getEncodingName());
    assertEquals("float16", sparse.getDtypeName());
    assertEquals(4, sparse.getChannels());
    assertEquals(bundle.restored.length, parsed.getRestoredSize());
    assertArrayEquals(BundleBuilder.sha256(bundle.restored), parsed.getRestoredSha256());
  }

  @Test
  void restoreDirectIsDirectNativeOrderAndWhole() throws Exception {
    ByteBuffer b = restorer.restoreDirect(bundle.skeleton, bundle.sidecar);
    assertTrue(b.isDirect());
    assertEquals(ByteOrder.nativeOrder(), b.order());
    assertEquals(0, b.position());
    assertEquals(bundle.restored.length, b.limit());
    assertEquals(bundle.restored.length, b.capacity());
    byte[] out = new byte[b.remaining()];
    b.duplicate().get(out);
    assertArrayEquals(bundle.restored, out);
  }

  @Test
  void restoreIntoWritesAtThePositionAndAdvancesIt() throws Exception {
    for (boolean direct : new boolean[] {false, true}) {
      int size = bundle.restored.length;
      ByteBuffer target =
          direct ? ByteBuffer.allocateDirect(size + 20) : ByteBuffer.allocate(size + 20);
      for (int i = 0; i < target.capacity(); i++) {
        target.put(i, (byte) 0x5A);
      }
      target.position(7);
      restorer.restoreInto(bundle.skeleton, bundle.sidecar, target);
      assertEquals(7 + size, target.position());
      byte[] out = new byte[size];
      ByteBuffer view = target.duplicate();
      view.position(7);
      view.get(out);
      assertArrayEquals(bundle.restored, out);
      assertEquals(0x5A, target.get(6));
      assertEquals(0x5A, target.get(7 + size));
    }
    ByteBuffer small = ByteBuffer.allocate(bundle.restored.length - 1);
    assertThrows(
        IllegalArgumentException.class,
        () -> restorer.restoreInto(bundle.skeleton, bundle.sidecar, small));
    assertEquals(0, small.position());
  }

  @Test
  void restoreToFileWritesThenReuses() throws Exception {
    File out = new File(new File(directory, "cache/models"), "model.tflite");
    assertTrue(restorer.restoreToFile(bundle.skeleton, bundle.sidecar, out));
    assertArrayEquals(bundle.restored, Files.readAllBytes(out.toPath()));
    // Same hash: reused, not rewritten.
    assertTrue(out.setLastModified(1_000_000_000_000L));
    assertFalse(restorer.restoreToFile(bundle.skeleton, bundle.sidecar, out));
    assertEquals(1_000_000_000_000L, out.lastModified());
    // A damaged file (same size) is rewritten.
    byte[] damaged = bundle.restored.clone();
    damaged[damaged.length / 2] ^= 1;
    write(out, damaged);
    assertTrue(restorer.restoreToFile(bundle.skeleton, bundle.sidecar, out));
    assertArrayEquals(bundle.restored, Files.readAllBytes(out.toPath()));
    assertEquals(1, out.getParentFile().list().length, Arrays.toString(out.getParentFile().list()));
  }

  @Test
  void restoreToFileLeavesNothingBehindOnAFormatError() throws Exception {
    File out = new File(directory, "model.tflite");
    write(out, new byte[] {1, 2, 3});
    // A payload that passes every CRC but decodes to other bytes: found only at the end.
    byte[] sidecar = bundle.sidecar.clone();
    Sidecar parsed = Sidecar.parse(sidecar);
    SegmentEntry raw = parsed.getSegments().get(Fixtures.RAW_AT);
    sidecar[raw.getPayloadOffset()] ^= 1;
    BundleBuilder.resealPayload(sidecar, parsed, Fixtures.RAW_AT);
    BundleFormatException e =
        assertThrows(
            BundleFormatException.class,
            () -> restorer.restoreToFile(bundle.skeleton, sidecar, out));
    assertEquals("restored_sha256", e.getField());
    assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(out.toPath()));
    assertEquals(1, directory.list().length, Arrays.toString(directory.list()));
  }

  @Test
  void restoreMainRestoresAndReuses() throws Exception {
    File skeleton = new File(directory, "m.skeleton");
    File sidecar = new File(directory, "m.dcw");
    File out = new File(directory, "m.tflite");
    write(skeleton, bundle.skeleton);
    write(sidecar, bundle.sidecar);
    String[] args = {skeleton.getPath(), sidecar.getPath(), out.getPath()};
    assertEquals(0, RestoreMain.run(args));
    assertArrayEquals(bundle.restored, Files.readAllBytes(out.toPath()));
    assertEquals(0, RestoreMain.run(args));
    write(sidecar, Arrays.copyOf(bundle.sidecar, 100));
    assertEquals(1, RestoreMain.run(args));
    assertEquals(2, RestoreMain.run(new String[] {"x"}));
  }

  @Test
  void randomBundlesRoundTrip() throws Exception {
    Random random = new Random(3);
    for (int i = 0; i < 300; i++) {
      Fixtures.Bundle b = Fixtures.random(random, i);
      assertArrayEquals(b.restored, restorer.restore(b.skeleton, b.sidecar), b.name);
      ByteBuffer direct = restorer.restoreDirect(b.skeleton, b.sidecar);
      byte[] out = new byte[direct.remaining()];
      direct.get(out);
      assertArrayEquals(b.restored, out, b.name);
    }
  }

  @Test
  void largeSegmentsCrossTheStagingBuffer() throws Exception {
    // 300 000 float32 elements (1.2 MB) in each clustered encoding: many 64 KiB flushes.
    Random random = new Random(9);
    int n = 300_000;
    ByteBuffer b = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < n; i++) {
      b.putFloat(random.nextInt(10) < 7 ? 0f : (float) random.nextInt(30));
    }
    byte[] data = b.array();
    for (int encoding : new int[] {Encoding.CLUSTERED_SPARSE, Encoding.CLUSTERED_DENSE}) {
      byte[] payload =
          BundleBuilder.clustered(data, 4, 1, encoding == Encoding.CLUSTERED_SPARSE, 17);
      byte[][] built =
          new BundleBuilder(data)
              .add(new BundleBuilder.Seg(0, data.length, Dtype.FLOAT32, 1, encoding, payload))
              .build();
      assertArrayEquals(data, restorer.restore(built[0], built[1]));
    }
  }

  @Test
  void adjacentSegmentsOfOtherElementSizesShareTheStagingBuffer() throws Exception {
    // A ZLIB segment of 65535 bytes leaves the staging buffer one byte short of full; the next
    // segment (float32, no gap in between) must not write an element across its end.
    byte[] first = new byte[65535];
    for (int i = 0; i < first.length; i++) {
      first[i] = (byte) (i % 3);
    }
    ByteBuffer second = ByteBuffer.allocate(4 * 5000).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 5000; i++) {
      second.putFloat(i % 4 == 0 ? 0f : 1.5f);
    }
    byte[] restored = BundleBuilder.concat(first, second.array());
    for (int encoding : new int[] {Encoding.CLUSTERED_DENSE, Encoding.CLUSTERED_SPARSE}) {
      byte[][] built =
          new BundleBuilder(restored)
              .add(new BundleBuilder.Seg(0, first.length, Dtype.BYTES, 1, Encoding.ZLIB,
                  BundleBuilder.zlib(first, 1)))
              .add(new BundleBuilder.Seg(
                  first.length, second.capacity(), Dtype.FLOAT32, 1, encoding,
                  BundleBuilder.clustered(second.array(), 4, 1,
                      encoding == Encoding.CLUSTERED_SPARSE, 7)))
              .build();
      assertArrayEquals(restored, restorer.restore(built[0], built[1]));
    }
  }

  @Test
  void limitIsValidated() {
    assertThrows(IllegalArgumentException.class, () -> new BundleRestorer(-1));
    assertEquals(Integer.MAX_VALUE, new BundleRestorer(Long.MAX_VALUE).getMaxRestoredSize());
  }

  static void write(File file, byte[] bytes) throws IOException {
    FileOutputStream out = new FileOutputStream(file);
    try {
      out.write(bytes);
    } finally {
      out.close();
    }
  }
}
