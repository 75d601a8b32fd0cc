package dev.kerasdc.bundle;

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

  @Test
  void randomBundles() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Random random = new Random(5);
          int cases = 0;
          for (int i = 0; i < 20; i++) {
            Fuzz fuzz = new Fuzz(Fixtures.random(random, i));
            fuzz.mutations(100 + i, 120);
            cases += fuzz.rejected + fuzz.restored;
          }
          assertTrue(cases >= 2000, "cases " + cases);
        });
  }
}
