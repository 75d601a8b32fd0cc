package dev.kerasdc.bundle;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Truncations and random corruptions of builder-made bundles (see also {@link GoldenTest}). */
final class FuzzTest {

  @Test
  void everyEncodingBundle() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Fuzz fuzz = new Fuzz(Fixtures.everyEncoding());
          fuzz.truncations();
          fuzz.mutations(11, 2000);
          assertTrue(fuzz.rejected > 2000, "rejected " + fuzz.rejected);
        });
  }

  /** The same with the Inflater decoding every HuffmanStream, however short (spec section 12). */
  @Test
  void everyEncodingBundleThroughTheInflater() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          BundleRestorer restorer =
              new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, HuffmanDecoding.INFLATER);
          Fuzz fuzz = new Fuzz(Fixtures.everyEncoding(), restorer);
          fuzz.truncations();
          fuzz.mutations(13, 2000);
          assertTrue(fuzz.rejected > 2000, "rejected " + fuzz.rejected);
          Fuzz large = new Fuzz(DecoderAgreementTest.longStreams(3), restorer);
          large.mutations(17, 200);
          assertTrue(large.rejected > 100, "rejected " + large.rejected);
        });
  }

  /** The grouped encodings (7.8): every truncation, random corruptions inside the payloads. */
  @Test
  void groupedBundle() {
    fuzzBothDecoders(Fixtures.grouped(), 19, 23);
  }

  /** DELTA (7.9) over five inner encodings: every truncation, random corruptions, both decoders. */
  @Test
  void deltaBundle() {
    fuzzBothDecoders(Fixtures.delta(), 29, 31);
  }

  /**
   * SPARSE_RAW (7.6): per-slice backgrounds, escapes, an all-background and an all-emitted
   * segment, and one inside DELTA; every truncation, random corruptions, both decoders.
   */
  @Test
  void sparseRawBundle() {
    fuzzBothDecoders(Fixtures.sparseRaw(), 37, 41);
  }

  /**
   * PACKED (7.10): one PACKED segment with parts of every other encoding and RAW and ZLIB gaps,
   * then a segment of its own; every truncation, random corruptions (inside the PACKED payload:
   * its part table and parts), both decoders.
   */
  @Test
  void packedBundle() {
    fuzzBothDecoders(Fixtures.packed(), 43, 47);
  }

  /**
   * MASKED (7.12): segments of every inner encoding and several dtypes and fills, and MASKED parts
   * of a PACKED segment; every truncation, random corruptions (inside the payloads: fill, masks,
   * inner_encoding and inner payload), both decoders.
   */
  @Test
  void maskedBundle() {
    fuzzBothDecoders(Fixtures.masked(), 53, 59);
  }

  /**
   * Random bundles of MASKED segments (7.12), and of MASKED parts of one PACKED segment: random
   * masks, fills and inner encodings; each restores intact, and corruptions are rejected or
   * restore exactly.
   */
  @Test
  void randomMaskedBundles() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Random random = new Random(61);
          int cases = 0;
          for (int i = 0; i < 40; i++) {
            Fixtures.Bundle bundle = Fixtures.randomMasked(random, i, i % 2 == 1);
            Fuzz fuzz = new Fuzz(bundle);
            fuzz.intact();
            fuzz.mutations(600 + i, 80);
            cases += fuzz.rejected + fuzz.restored;
          }
          assertTrue(cases >= 3000, "cases " + cases);
        });
  }

  @Test
  void randomBundles() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Random random = new Random(5);
          int cases = 0;
          int[] drawn = new int[Format.Encoding.NAMES.length];
          // 30 bundles of up to 5 segments, so that each of the 8 encodings is drawn often.
          for (int i = 0; i < 30; i++) {
            Fixtures.Bundle bundle = Fixtures.random(random, i);
            count(bundle, drawn);
            Fuzz fuzz = new Fuzz(bundle);
            fuzz.intact();
            fuzz.mutations(100 + i, 80);
            cases += fuzz.rejected + fuzz.restored;
          }
          assertTrue(cases >= 2000, "cases " + cases);
          for (int encoding : Fixtures.RANDOM_ENCODINGS) {
            assertTrue(
                drawn[encoding] >= 3,
                Format.Encoding.NAMES[encoding] + " drawn " + drawn[encoding] + " times");
          }
        });
  }

  /**
   * Random bundles of grouped segments only (7.8): random channel groupings, codebooks,
   * backgrounds; each restores intact, and corruptions inside its payloads are rejected or
   * restore exactly.
   */
  @Test
  void randomGroupedBundles() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Random random = new Random(7);
          int cases = 0;
          int[] drawn = new int[Format.Encoding.NAMES.length];
          for (int i = 0; i < 30; i++) {
            Fixtures.Bundle bundle = Fixtures.random(random, i, Fixtures.GROUPED_ENCODINGS);
            count(bundle, drawn);
            Fuzz fuzz = new Fuzz(bundle);
            fuzz.intact();
            fuzz.mutations(200 + i, 120);
            cases += fuzz.rejected + fuzz.restored;
          }
          assertTrue(cases >= 3000, "cases " + cases);
          for (int encoding : Fixtures.GROUPED_ENCODINGS) {
            assertTrue(
                drawn[encoding] >= 20,
                Format.Encoding.NAMES[encoding] + " drawn " + drawn[encoding] + " times");
          }
        });
  }

  /**
   * Random bundles of DELTA segments only (7.9), each inner encoding drawn: each restores intact,
   * and corruptions inside its payloads are rejected or restore exactly.
   */
  @Test
  void randomDeltaBundles() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Random random = new Random(11);
          int cases = 0;
          int[] inner = new int[Format.Encoding.NAMES.length];
          for (int i = 0; i < 30; i++) {
            Fixtures.Bundle bundle = Fixtures.random(random, i, Fixtures.DELTA_ENCODINGS);
            for (SegmentEntry segment : Sidecar.parse(bundle.sidecar).getSegments()) {
              if (segment.elements() > 0) {
                inner[bundle.sidecar[segment.getPayloadOffset()]]++;
              }
            }
            Fuzz fuzz = new Fuzz(bundle);
            fuzz.intact();
            fuzz.mutations(300 + i, 120);
            cases += fuzz.rejected + fuzz.restored;
          }
          assertTrue(cases >= 3000, "cases " + cases);
          for (int encoding : Fixtures.INNER_ENCODINGS) {
            assertTrue(
                inner[encoding] >= 3,
                "inner " + Format.Encoding.NAMES[encoding] + " drawn " + inner[encoding]
                    + " times");
          }
        });
  }

  /**
   * Random bundles of one PACKED segment (7.10) whose parts are random segments of every other
   * encoding, with compact stream headers, and the gaps between them: each restores intact, and
   * corruptions inside the PACKED payload are rejected or restore exactly.
   */
  @Test
  void randomPackedBundles() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Random random = new Random(13);
          int cases = 0;
          int packed = 0;
          for (int i = 0; i < 30; i++) {
            Fixtures.Bundle bundle =
                Fixtures.random(random, i, Fixtures.RANDOM_ENCODINGS, true);
            Sidecar parsed = Sidecar.parse(bundle.sidecar);
            if (!parsed.getSegments().isEmpty()) {
              assertEquals(Format.Encoding.PACKED, parsed.getSegments().get(0).getEncoding());
              assertEquals(4, parsed.getVersionMinor());
              packed++;
            }
            Fuzz fuzz = new Fuzz(bundle);
            fuzz.intact();
            fuzz.mutations(400 + i, 120);
            cases += fuzz.rejected + fuzz.restored;
          }
          assertTrue(cases >= 3000, "cases " + cases);
          assertTrue(packed >= 20, "packed " + packed);
        });
  }

  /**
   * Random bundles with ZLIB_DICT segments (7.11), and with ZLIB_DICT parts of a PACKED segment:
   * each restores intact, and corruptions are rejected or restore exactly.
   */
  @Test
  void randomZlibDictBundles() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Random random = new Random(19);
          int cases = 0;
          int[] drawn = new int[Format.Encoding.NAMES.length];
          for (int i = 0; i < 40; i++) {
            boolean packed = i % 2 == 1;
            Fixtures.Bundle bundle =
                Fixtures.random(random, i, Fixtures.ZLIB_DICT_ENCODINGS, packed);
            if (!packed) {
              count(bundle, drawn);
            }
            Fuzz fuzz = new Fuzz(bundle);
            fuzz.intact();
            fuzz.mutations(500 + i, 80);
            cases += fuzz.rejected + fuzz.restored;
          }
          assertTrue(cases >= 3000, "cases " + cases);
          int dict = drawn[Format.Encoding.ZLIB_DICT];
          assertTrue(dict >= 5, "ZLIB_DICT drawn " + dict + " times");
        });
  }

  /** Adds the encodings of {@code bundle}'s segments that have elements to {@code drawn}. */
  private static void count(Fixtures.Bundle bundle, int[] drawn) throws BundleFormatException {
    for (SegmentEntry segment : Sidecar.parse(bundle.sidecar).getSegments()) {
      if (segment.elements() > 0) {
        drawn[segment.getEncoding()]++;
      }
    }
  }

  /**
   * `bundle` restores intact, then every truncation and 2000 random corruptions are rejected
   * or restored, with the default and the Inflater Huffman decoder (mutation seeds `seed` and
   * `inflaterSeed`).
   */
  private static void fuzzBothDecoders(Fixtures.Bundle bundle, int seed, int inflaterSeed) {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          for (HuffmanDecoding mode : new HuffmanDecoding[] {null, HuffmanDecoding.INFLATER}) {
            BundleRestorer restorer =
                mode == null
                    ? new BundleRestorer()
                    : new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, mode);
            Fuzz fuzz = new Fuzz(bundle, restorer);
            fuzz.intact();
            fuzz.truncations();
            fuzz.mutations(mode == null ? seed : inflaterSeed, 2000);
            assertTrue(fuzz.rejected > 2000, "rejected " + fuzz.rejected);
          }
        });
  }
}
