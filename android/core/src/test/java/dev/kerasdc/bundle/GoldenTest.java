package dev.kerasdc.bundle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The golden bundles written by the Python encoder (tests/golden/, located through the system
 * property {@code kerasdc.golden.dir}) restore to their expected bytes through every entry point,
 * and every truncation and random corruption of them is rejected or restores exactly.
 */
final class GoldenTest {
  static final String PROPERTY = "kerasdc.golden.dir";

  /** Random corruptions per golden bundle (two fifths of them behind recomputed CRCs). */
  static final int MUTATIONS_PER_GOLDEN = 400;

  @TempDir File temp;

  static File goldenDir() {
    String dir = System.getProperty(PROPERTY);
    if (dir == null) {
      fail("set -D" + PROPERTY + "=<repo>/tests/golden (tests/test_java.py does)");
    }
    File file = new File(dir);
    assertTrue(file.isDirectory(), PROPERTY + "=" + dir + " is not a directory");
    return file;
  }

  /** Every NAME.dcw with its NAME.skeleton and NAME.restored. */
  static List<Fixtures.Bundle> goldens() throws IOException {
    File dir = goldenDir();
    String[] names = dir.list();
    Arrays.sort(names);
    List<Fixtures.Bundle> bundles = new ArrayList<Fixtures.Bundle>();
    for (String name : names) {
      if (!name.endsWith(".dcw")) {
        continue;
      }
      String stem = name.substring(0, name.length() - 4);
      File skeleton = new File(dir, stem + ".skeleton");
      File restored = new File(dir, stem + ".restored");
      assertTrue(skeleton.isFile(), "missing " + skeleton);
      assertTrue(restored.isFile(), "missing " + restored);
      bundles.add(
          new Fixtures.Bundle(
              stem,
              read(restored),
              new byte[][] {read(skeleton), read(new File(dir, name))}));
    }
    assertFalse(bundles.isEmpty(), "no golden bundles (NAME.dcw) in " + dir);
    return bundles;
  }

  /** The golden bundle NAME. */
  static Fixtures.Bundle golden(String name) throws IOException {
    for (Fixtures.Bundle g : goldens()) {
      if (g.name.equals(name)) {
        return g;
      }
    }
    throw new AssertionError(name + ".dcw is missing");
  }

  static byte[] read(File file) throws IOException {
    return Files.readAllBytes(file.toPath());
  }

  @Test
  void goldensRestoreThroughEveryEntryPoint() throws Exception {
    BundleRestorer restorer = new BundleRestorer();
    for (Fixtures.Bundle g : goldens()) {
      assertArrayEquals(g.restored, restorer.restore(g.skeleton, g.sidecar), g.name);
      ByteBuffer direct = restorer.restoreDirect(g.skeleton, g.sidecar);
      byte[] out = new byte[direct.remaining()];
      direct.get(out);
      assertArrayEquals(g.restored, out, g.name);
      File file = new File(temp, g.name + ".tflite");
      assertTrue(restorer.restoreToFile(g.skeleton, g.sidecar, file));
      assertArrayEquals(g.restored, read(file), g.name);
      assertFalse(restorer.restoreToFile(g.skeleton, g.sidecar, file));
      assertEquals(g.restored.length, Sidecar.parse(g.sidecar).getRestoredSize());
    }
  }

  @Test
  void everyTruncationIsRejected() throws Exception {
    final List<Fixtures.Bundle> goldens = goldens();
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          for (Fixtures.Bundle g : goldens) {
            Fuzz fuzz = new Fuzz(g);
            fuzz.truncations();
            assertEquals(0, fuzz.restored, g.name + ": a truncation restored");
          }
        });
  }

  @Test
  void everySingleBitFlipIsRejected() throws Exception {
    final List<Fixtures.Bundle> goldens = goldens();
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          for (Fixtures.Bundle g : goldens) {
            Fuzz fuzz = new Fuzz(g);
            fuzz.bitFlips();
            assertEquals(0, fuzz.restored, g.name + ": a bit flip restored");
          }
        });
  }

  @Test
  void handVectorFields() throws Exception {
    // tests/golden/hand_vectors.py spells out every byte of hand.dcw.
    Fixtures.Bundle hand = golden("hand");
    Sidecar s = Sidecar.parse(hand.sidecar);
    assertEquals(0, s.getVersionMinor());
    assertEquals(Format.Header.V1_SIZE, s.getHeaderSize());
    assertEquals(Format.Entry.V1_SIZE, s.getEntrySize());
    assertEquals(11, s.getNamesSize());
    assertEquals(91, s.getPayloadSize());
    assertEquals(79, s.getRestoredSize());
    assertEquals(15, s.getSkeletonSize());
    assertEquals(
        "38b1cf2399cb903a9478558c0a3ec0db1e1ea3aff9612d47fecefdeb45609ca4",
        Sidecar.hex(s.getRestoredSha256()));
    SegmentEntry dense = s.getSegments().get(0);
    SegmentEntry sparse = s.getSegments().get(1);
    assertEquals("dense", dense.getName());
    assertEquals(8, dense.getOffset());
    assertEquals(32, dense.getSize());
    assertEquals(33, dense.getPayloadSize());
    assertEquals(0xabbb9800, dense.getPayloadCrc32());
    assertEquals("CLUSTERED_DENSE", dense.getEncodingName());
    assertEquals("sparse", sparse.getName());
    assertEquals(44, sparse.getOffset());
    assertEquals(58, sparse.getPayloadSize());
    assertEquals("CLUSTERED_SPARSE", sparse.getEncodingName());
    assertEquals("float32", sparse.getDtypeName());
  }

  @Test
  void groupedGoldenUsesTheVersion12Encodings() throws Exception {
    // tests/golden/make_golden.py case_grouped: the format 1.2 codes, which the tests above
    // restore and corrupt.
    Fixtures.Bundle grouped = golden("grouped");
    Sidecar s = Sidecar.parse(grouped.sidecar);
    assertEquals(2, s.getVersionMinor());
    List<String> encodings = new ArrayList<String>();
    for (SegmentEntry e : s.getSegments()) {
      encodings.add(e.getEncodingName());
    }
    assertEquals(
        Arrays.asList("GROUPED_SPARSE", "RAW", "GROUPED_DENSE", "GROUPED_SPARSE"), encodings);
  }

  @Test
  void deltaGoldenUsesTheVersion13Encoding() throws Exception {
    // tests/golden/make_golden.py case_delta: DELTA (format 1.3) over ZLIB, ZLIB and
    // CLUSTERED_DENSE, which the tests above restore and corrupt.
    Fixtures.Bundle delta = golden("delta");
    Sidecar s = Sidecar.parse(delta.sidecar);
    assertEquals(3, s.getVersionMinor());
    List<String> encodings = new ArrayList<String>();
    for (SegmentEntry e : s.getSegments()) {
      String name = e.getEncodingName();
      if (e.getEncoding() == Format.Encoding.DELTA) {
        name += "(" + Format.Encoding.NAMES[delta.sidecar[e.getPayloadOffset()]] + ")";
      }
      encodings.add(name);
    }
    assertEquals(
        Arrays.asList("DELTA(ZLIB)", "DELTA(ZLIB)", "DELTA(CLUSTERED_DENSE)", "RAW"), encodings);
  }

  @Test
  void packedGoldenUsesTheVersion14Encoding() throws Exception {
    // tests/golden/make_golden.py case_packed: one PACKED segment (format 1.4) whose parts are
    // gaps and weight buffers, which the tests above restore and corrupt.
    Fixtures.Bundle packed = golden("packed");
    Sidecar s = Sidecar.parse(packed.sidecar);
    assertEquals(4, s.getVersionMinor());
    assertEquals(0, s.getNamesSize());
    assertEquals(1, s.getSegments().size());
    SegmentEntry segment = s.getSegments().get(0);
    assertEquals("PACKED", segment.getEncodingName());
    assertEquals(10, packed.skeleton.length);
    List<String> parts = new ArrayList<String>();
    long offset = segment.getOffset();
    for (SegmentEntry part : PackedDecoder.parts(new Payload(packed.sidecar, segment))) {
      assertTrue(part.isPart());
      assertEquals(offset, part.getOffset());
      offset += part.getSize();
      parts.add(part.getEncodingName());
    }
    assertEquals(segment.getOffset() + segment.getSize(), offset);
    assertEquals(
        Arrays.asList(
            "ZLIB", "CLUSTERED_SPARSE", "RAW", "RAW", "ZLIB", "CLUSTERED_DENSE", "RAW", "DELTA"),
        parts);
  }

  @Test
  void zdictGoldensUseTheVersion15Encoding() throws Exception {
    // tests/golden/make_golden.py case_zdict: a PACKED segment whose head part is ZLIB_DICT
    // (format 1.5); case_zdict_segments: ZLIB_DICT and ZLIB segments of their own.
    Fixtures.Bundle zdict = golden("zdict");
    Sidecar s = Sidecar.parse(zdict.sidecar);
    assertEquals(5, s.getVersionMinor());
    SegmentEntry segment = s.getSegments().get(0);
    List<String> parts = new ArrayList<String>();
    for (SegmentEntry part : PackedDecoder.parts(new Payload(zdict.sidecar, segment))) {
      parts.add(part.getEncodingName());
    }
    assertEquals(Arrays.asList("ZLIB_DICT", "CLUSTERED_SPARSE", "ZLIB", "RAW"), parts);
    assertArrayEquals(zdict.restored, new BundleRestorer().restore(zdict.skeleton, zdict.sidecar));
    Fixtures.Bundle segments = golden("zdict_segments");
    s = Sidecar.parse(segments.sidecar);
    assertEquals(5, s.getVersionMinor());
    List<String> encodings = new ArrayList<String>();
    for (SegmentEntry entry : s.getSegments()) {
      encodings.add(entry.getEncodingName());
    }
    assertEquals(Arrays.asList("ZLIB_DICT", "CLUSTERED_SPARSE", "RAW", "ZLIB"), encodings);
    assertArrayEquals(
        segments.restored, new BundleRestorer().restore(segments.skeleton, segments.sidecar));
  }

  @Test
  void maskedGoldensUseTheVersion16Encoding() throws Exception {
    // tests/golden/make_golden.py case_masked: a PACKED segment whose weight parts are MASKED
    // (format 1.6) over CLUSTERED_SPARSE, CLUSTERED_DENSE (a float16 fill of -0.0) and
    // SPARSE_RAW; case_masked_segments: MASKED segments of their own (section 6 stream headers),
    // an int8 one with a codebook per kept row. The tests above restore and corrupt them.
    Fixtures.Bundle masked = golden("masked");
    Sidecar s = Sidecar.parse(masked.sidecar);
    assertEquals(6, s.getVersionMinor());
    SegmentEntry segment = s.getSegments().get(0);
    assertEquals("PACKED", segment.getEncodingName());
    List<String> parts = new ArrayList<String>();
    for (SegmentEntry part : PackedDecoder.parts(new Payload(masked.sidecar, segment))) {
      parts.add(maskedName(masked.sidecar, part));
    }
    assertEquals(
        Arrays.asList(
            "ZLIB_DICT", "MASKED(CLUSTERED_SPARSE)", "RAW", "MASKED(CLUSTERED_DENSE)",
            "MASKED(SPARSE_RAW)"),
        parts);
    Fixtures.Bundle segments = golden("masked_segments");
    s = Sidecar.parse(segments.sidecar);
    assertEquals(6, s.getVersionMinor());
    List<String> encodings = new ArrayList<String>();
    for (SegmentEntry entry : s.getSegments()) {
      encodings.add(maskedName(segments.sidecar, entry));
    }
    assertEquals(
        Arrays.asList("MASKED(CLUSTERED_DENSE)", "MASKED(CLUSTERED_DENSE)", "CLUSTERED_DENSE"),
        encodings);
    assertEquals(20, s.getSegments().get(0).getChannels());
    assertEquals("int8", s.getSegments().get(0).getDtypeName());
    for (BundleRestorer restorer :
        new BundleRestorer[] {
          new BundleRestorer(),
          new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, HuffmanDecoding.INFLATER)
        }) {
      assertArrayEquals(masked.restored, restorer.restore(masked.skeleton, masked.sidecar));
      assertArrayEquals(
          segments.restored, restorer.restore(segments.skeleton, segments.sidecar));
    }
  }

  /** A segment's or part's encoding name, with a MASKED payload's inner encoding in brackets. */
  private static String maskedName(byte[] sidecar, SegmentEntry entry) {
    String name = entry.getEncodingName();
    if (entry.getEncoding() == Format.Encoding.MASKED) {
      long rows = entry.getChannels();
      long at = entry.getPayloadOffset() + entry.getElementSize()
          + Format.Masked.maskSize(rows) + Format.Masked.maskSize(entry.elements() / rows);
      name += "(" + Format.Encoding.NAMES[sidecar[(int) at]] + ")";
    }
    return name;
  }

  @Test
  void randomCorruptionsAreRejectedOrHarmless() throws Exception {
    final List<Fixtures.Bundle> goldens = goldens();
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          int total = 0;
          for (Fixtures.Bundle g : goldens) {
            Fuzz fuzz = new Fuzz(g);
            fuzz.mutations(g.name.hashCode(), MUTATIONS_PER_GOLDEN);
            assertEquals(MUTATIONS_PER_GOLDEN, fuzz.rejected + fuzz.restored, g.name);
            assertTrue(fuzz.rejected > MUTATIONS_PER_GOLDEN / 2, g.name + ": " + fuzz.rejected);
            total += MUTATIONS_PER_GOLDEN;
          }
          assertTrue(total >= 2000, "only " + total + " mutations");
        });
  }
}
