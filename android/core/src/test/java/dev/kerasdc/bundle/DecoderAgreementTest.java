package dev.kerasdc.bundle;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.kerasdc.bundle.Format.Dtype;
import dev.kerasdc.bundle.Format.Encoding;
import dev.kerasdc.bundle.Format.Stream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.zip.Inflater;
import org.junit.jupiter.api.Test;

/**
 * The HuffmanStream decoders agree: the reference one-symbol table decoder ({@link
 * HuffmanDecoder#next}), the block decoder ({@link BlockDecoder}, every table width) and {@link
 * SymbolReader} with and without the Inflater (spec section 12) return the same symbols for valid
 * streams, and the same exception (offset, field and message) for corrupt ones; and bundles
 * restore to the same bytes, or fail the same way, whichever decoder the restorer uses.
 */
final class DecoderAgreementTest {

  // ----------------------------------------------------------------------------- the prefix

  /**
   * The DEFLATE prefix of spec section 12, as {@code converters.huffman._deflate_prefix} writes it
   * (hex), for the lengths (1, 2, 3) and (3, 3, 3, 3, 3, 2, 4).
   *
   * <p>Head, 13 bytes: {@code 02 08 20} hold the three empty fixed blocks (bits 1, 11 and 21:
   * BTYPE = 01 of each); {@code 40 01} BFINAL = 1 at bit 30 and BTYPE = 10 (bit 32); {@code 78}
   * HLIT = 0, HDIST = 0, HCLEN = 15 (bits 43 to 46); {@code 00} the lengths 0, 0, 0 of the
   * code-length symbols 16, 17, 18 (bits 47 to 55); {@code 24 49 92 24 49 92} sixteen 4s (100 in 3
   * bits, least significant first). Then one nibble per literal/length code: the code length v
   * sent as its 4-bit codeword v, most significant bit first, i.e. bit-reversed in the nibble: 1,
   * 2, 3 become 8, 4, C, so (1, 2, 3) starts {@code 48 0c}; end-of-block (symbol 256, the last
   * byte's low nibble) gets L.
   */
  @Test
  void deflatePrefixIsThePythonReadersPrefix() throws Exception {
    String head = "02082040017800244992244992";
    String zeros = repeat("00", 126);
    assertPrefix(new int[] {1, 2, 3}, new int[] {0, 1, 2}, head + "480c" + zeros + "0c");
    assertPrefix(
        new int[] {3, 3, 3, 3, 3, 2, 4},
        new int[] {0, 6, 5},
        head + "cccc4c02" + repeat("00", 124) + "02");
  }

  private static void assertPrefix(int[] lengths, int[] symbols, String expected)
      throws BundleFormatException {
    byte[] s = BundleBuilder.stream(lengths, symbols);
    HuffmanStream stream = HuffmanStream.parse(s, 0, s.length, "t", 256);
    byte[] prefix = SymbolReader.deflatePrefix(stream.code());
    assertEquals(142, prefix.length);
    assertEquals(expected, BundleBuilder.hex(prefix));
  }

  private static String repeat(String s, int n) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < n; i++) {
      b.append(s);
    }
    return b.toString();
  }

  // ----------------------------------------------------------------------------- streams

  /** What decoding a stream gave: its symbols and bits, or the error. */
  private static String outcome(byte[] symbols, long position) {
    return "ok " + position + " " + Arrays.hashCode(symbols);
  }

  private static String outcome(BundleFormatException e) {
    return "error at " + e.getOffset() + " in " + e.getField() + ": " + e.getMessage();
  }

  /** The reference: {@link HuffmanDecoder#next} per symbol, then the stream's own finish. */
  private static String reference(byte[] b, HuffmanStream stream) {
    byte[] symbols = new byte[(int) stream.count];
    try {
      HuffmanDecoder d = stream.decoder(b);
      for (int i = 0; i < symbols.length; i++) {
        symbols[i] = (byte) d.next();
      }
      stream.finish(d.position());
      return outcome(symbols, d.position());
    } catch (BundleFormatException e) {
      return outcome(e);
    }
  }

  private static String blocks(byte[] b, HuffmanStream stream, int packBits, Random sizes) {
    byte[] symbols = new byte[(int) stream.count];
    try {
      SymbolDecoder d = stream.blockDecoder(b, packBits);
      for (int done = 0; done < symbols.length; ) {
        int n = Math.min(symbols.length - done, 1 + sizes.nextInt(5000));
        byte[] block = new byte[n];
        d.decode(block, 0, n);
        System.arraycopy(block, 0, symbols, done, n);
        done += n;
      }
      stream.finish(d.position());
      return outcome(symbols, d.position());
    } catch (BundleFormatException e) {
      return outcome(e);
    }
  }

  /** Through {@link SymbolReader}: with {@code inflater}, or the table decoder if null. */
  private static String reader(byte[] b, HuffmanStream stream, Inflater inflater, Random sizes) {
    byte[] symbols = new byte[(int) stream.count];
    try {
      SymbolReader r = new SymbolReader(b, stream, inflater);
      byte[] block = new byte[Workspace.BLOCK];
      for (int done = 0; done < symbols.length; ) {
        int n = Math.min(symbols.length - done, 1 + sizes.nextInt(Workspace.BLOCK));
        r.read(block, n);
        System.arraycopy(block, 0, symbols, done, n);
        done += n;
      }
      r.finish();
      return outcome(symbols, r.position());
    } catch (BundleFormatException e) {
      return outcome(e);
    }
  }

  /** Every decoder's outcome on the stream at {@code b[0]}; all must be equal. */
  private static String agree(byte[] b, HuffmanStream stream, Inflater inflater, Random random) {
    String expected = reference(b, stream);
    for (int packBits = 8; packBits <= 12; packBits++) {
      assertEquals(expected, blocks(b, stream, packBits, random), "block decoder B" + packBits);
    }
    assertEquals(expected, reader(b, stream, null, random), "SymbolReader, table");
    assertEquals(expected, reader(b, stream, inflater, random), "SymbolReader, Inflater");
    return expected;
  }

  /**
   * Random code lengths with the format's Kraft sum 1 - 2^-L: a random complete binary tree
   * (leaves split at random; {@code skewed} splits the deepest leaf more often, reaching L = 15),
   * one deepest leaf left unused (the reserved codeword), the others given to random symbols.
   */
  static int[] randomLengths(Random random, int alphabet, boolean skewed) {
    int leaves = 2 + random.nextInt(alphabet); // symbols used + the reserved leaf
    List<Integer> depths = new ArrayList<Integer>();
    depths.add(1);
    depths.add(1);
    while (depths.size() < leaves) {
      int pick = random.nextInt(depths.size());
      if (skewed && random.nextInt(3) > 0) {
        for (int i = 0; i < depths.size(); i++) {
          if (depths.get(i) > depths.get(pick)) {
            pick = i;
          }
        }
      }
      int d = depths.get(pick);
      if (d >= HuffmanCode.MAX_LENGTH) {
        boolean any = false;
        for (int x : depths) {
          any |= x < HuffmanCode.MAX_LENGTH;
        }
        if (!any) {
          break;
        }
        continue;
      }
      depths.set(pick, d + 1);
      depths.add(d + 1);
    }
    int deepest = 0;
    for (int i = 0; i < depths.size(); i++) {
      if (depths.get(i) > depths.get(deepest)) {
        deepest = i;
      }
    }
    depths.remove(deepest);
    Integer[] symbols = new Integer[alphabet];
    for (int s = 0; s < alphabet; s++) {
      symbols[s] = s;
    }
    java.util.Collections.shuffle(Arrays.asList(symbols), random);
    int[] lengths = new int[alphabet];
    for (int i = 0; i < depths.size(); i++) {
      lengths[symbols[i]] = depths.get(i);
    }
    return lengths;
  }

  /** {@code count} symbols drawn with probability 2^-length (as a Huffman code expects). */
  static int[] randomSymbols(Random random, int[] lengths, int count) {
    List<Integer> pool = new ArrayList<Integer>();
    for (int s = 0; s < lengths.length; s++) {
      if (lengths[s] > 0) {
        for (int k = 0; k < Math.max(1, 1 << Math.max(0, 12 - lengths[s])); k++) {
          pool.add(s);
        }
      }
    }
    int[] symbols = new int[count];
    for (int i = 0; i < count; i++) {
      symbols[i] = pool.get(random.nextInt(pool.size()));
    }
    return symbols;
  }

  @Test
  void randomStreamsDecodeAlike() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Random random = new Random(31);
          Inflater inflater = new Inflater(true);
          try {
            for (int trial = 0; trial < 300; trial++) {
              int alphabet = 1 + random.nextInt(random.nextBoolean() ? 256 : 20);
              int[] lengths = randomLengths(random, alphabet, trial % 3 == 0);
              int count =
                  trial % 50 == 0 ? 100_000 + random.nextInt(100_000) : 1 + random.nextInt(3000);
              byte[] s = BundleBuilder.stream(lengths, randomSymbols(random, lengths, count));
              HuffmanStream stream = HuffmanStream.parse(s, 0, s.length, "t", 256);
              String result = agree(s, stream, inflater, random);
              assertTrue(result.startsWith("ok"), "trial " + trial + ": " + result);
            }
          } finally {
            inflater.end();
          }
        });
  }

  @Test
  void corruptStreamsFailAlike() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          Random random = new Random(37);
          Inflater inflater = new Inflater(true);
          int errors = 0;
          int cases = 0;
          try {
            for (int trial = 0; trial < 600; trial++) {
              int alphabet = 1 + random.nextInt(random.nextBoolean() ? 256 : 12);
              int[] lengths = randomLengths(random, alphabet, trial % 2 == 0);
              int count = 1 + random.nextInt(trial % 10 == 0 ? 40_000 : 600);
              int[] symbols = randomSymbols(random, lengths, count);
              byte[] s = corrupt(random, lengths, symbols);
              HuffmanStream stream;
              try {
                stream = HuffmanStream.parse(s, 0, s.length, "t", 256);
              } catch (BundleFormatException e) {
                continue; // rejected before decoding, the same way for every decoder
              }
              if (stream.count == 0) {
                continue;
              }
              cases++;
              if (agree(s, stream, inflater, random).startsWith("error")) {
                errors++;
              }
            }
          } finally {
            inflater.end();
          }
          assertTrue(cases > 400 && errors > 200, cases + " cases, " + errors + " errors");
        });
  }

  /**
   * The Inflater stops at the reserved codeword (it is end-of-block to zlib), and decodes a
   * codeword that runs past nbits from the zero padding; in both cases the reader hands the block
   * to the table decoder, which reports the fault exactly as the reference does.
   */
  @Test
  void inflaterHandsFaultsToTheTableDecoder() throws Exception {
    Random random = new Random(47);
    int[] lengths = randomLengths(random, 40, false);
    int[] symbols = randomSymbols(random, lengths, 100_000);
    HuffmanCode code = HuffmanCode.fromLengths(lengths);
    // The reserved codeword as symbol 70000.
    BitWriter w = new BitWriter();
    for (int i = 0; i < symbols.length; i++) {
      if (i == 70_000) {
        w.put(code.reservedCodeword(), code.maxLength());
      } else {
        w.put(code.codeword(symbols[i]), lengths[symbols[i]]);
      }
    }
    assertFallsBack(w.stream(lengths, symbols.length), 65_536, "reserved codeword at bit");
    // The last codeword cut short: nbits - 1, with the padding bit cleared. To the Inflater the
    // stream still holds all symbols (the padding reads as a zero); their bits exceed nbits.
    int last = 0;
    while (lengths[last] == 0 || (code.codeword(last) & 1) != 0) {
      last++; // a symbol whose codeword ends with a 0 bit
    }
    symbols[symbols.length - 1] = last;
    byte[] s = BundleBuilder.stream(lengths, symbols);
    HuffmanStream whole = HuffmanStream.parse(s, 0, s.length, "t", 256);
    long nbits = whole.nbits - 1;
    BundleBuilder.putU64(s, Stream.NBITS, nbits);
    if (nbits % 8 == 0) {
      s = Arrays.copyOf(s, s.length - 1); // the cleared bit was the last byte's only one
    }
    assertFallsBack(s, 98_304, "extends past nbits");
  }

  /**
   * Reads in blocks of 16384 with the Inflater: fine up to {@code clean} symbols, then the next
   * block (or the final check) fails.
   */
  private static void assertFallsBack(byte[] s, int clean, String message) throws Exception {
    HuffmanStream stream = HuffmanStream.parse(s, 0, s.length, "t", 256);
    Inflater inflater = new Inflater(true);
    try {
      SymbolReader r = new SymbolReader(s, stream, inflater);
      byte[] block = new byte[Workspace.BLOCK];
      for (int done = 0; done < clean; done += block.length) {
        r.read(block, block.length);
        assertTrue(r.usesInflater(), "the Inflater decodes the clean blocks");
      }
      int n = (int) Math.min(block.length, stream.count - r.read());
      BundleFormatException e =
          org.junit.jupiter.api.Assertions.assertThrows(
              BundleFormatException.class,
              () -> {
                r.read(block, n);
                r.finish();
              });
      assertTrue(!r.usesInflater(), "the table decoder took over");
      assertTrue(e.getMessage().contains(message), e.getMessage());
      assertEquals(reference(s, stream), outcome(e));
    } finally {
      inflater.end();
    }
  }

  /**
   * A stream of {@code symbols} with one fault: a flipped data bit, the reserved codeword in the
   * middle, a count one off, or nbits cut (its padding kept zero).
   */
  private static byte[] corrupt(Random random, int[] lengths, int[] symbols)
      throws BundleFormatException {
    int kind = random.nextInt(4);
    if (kind == 1) { // the reserved codeword as symbol k (encoded by hand: all ones, L bits)
      HuffmanCode code = HuffmanCode.fromLengths(lengths);
      int at = random.nextInt(symbols.length);
      BitWriter w = new BitWriter();
      for (int i = 0; i < symbols.length; i++) {
        if (i == at) {
          w.put(code.reservedCodeword(), code.maxLength());
        } else {
          w.put(code.codeword(symbols[i]), lengths[symbols[i]]);
        }
      }
      return w.stream(lengths, symbols.length);
    }
    byte[] s = BundleBuilder.stream(lengths, symbols);
    int data = Stream.LENGTHS + Stream.lengthsSize(lengths.length);
    long nbits = LittleEndian.u64(s, Stream.NBITS);
    if (kind == 0) {
      long bit = (long) (random.nextDouble() * nbits);
      s[data + (int) (bit >>> 3)] ^= (byte) (1 << (bit & 7));
    } else if (kind == 2) {
      BundleBuilder.putU64(s, Stream.COUNT, symbols.length + (random.nextBoolean() ? 1 : -1));
    } else {
      long cut = Math.max(1, nbits - 1 - random.nextInt(20));
      BundleBuilder.putU64(s, Stream.NBITS, cut);
      int bytes = (int) ((cut + 7) >>> 3);
      if (cut % 8 != 0) {
        s[data + bytes - 1] &= (byte) ((1 << (cut % 8)) - 1);
      }
      s = Arrays.copyOf(s, data + bytes);
    }
    return s;
  }

  /** Codewords, most significant bit first, into LSB-first bytes (spec 6.3). */
  private static final class BitWriter {
    private final java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
    private long nbits;
    private int current;

    void put(int codeword, int length) {
      for (int k = length - 1; k >= 0; k--) {
        current |= ((codeword >>> k) & 1) << (nbits & 7);
        nbits++;
        if ((nbits & 7) == 0) {
          bytes.write(current);
          current = 0;
        }
      }
    }

    byte[] stream(int[] lengths, long count) {
      if ((nbits & 7) != 0) {
        bytes.write(current);
      }
      return BundleBuilder.streamBytes(lengths, count, nbits, bytes.toByteArray());
    }
  }

  // ----------------------------------------------------------------------------- bundles

  private static final HuffmanDecoding[] MODES = {
    HuffmanDecoding.AUTO, HuffmanDecoding.TABLE, HuffmanDecoding.INFLATER
  };

  /**
   * A bundle with long streams (so that {@link HuffmanDecoding#AUTO} takes the Inflater on
   * Android and the block decoder its widest tables): sparse float32 with per-channel codebooks,
   * dense float32, dense int8, sparse float16 with a -0.0 background, dense int64, and SPARSE_RAW
   * float32 (unclustered values) with a -0.0 background per channel.
   */
  static Fixtures.Bundle longStreams(long seed) {
    Random random = new Random(seed);
    ByteBuffer r = ByteBuffer.allocate(2_000_000).order(ByteOrder.LITTLE_ENDIAN);
    List<BundleBuilder.Seg> segments = new ArrayList<BundleBuilder.Seg>();
    byte[] head = new byte[33];
    random.nextBytes(head);
    r.put(head);
    // Sparse float32: 4 channels of 40000, 10% kept, 24 values per channel.
    segments.add(segment(r, random, 4, 160_000, 4, 0.9, 24, 0, Encoding.CLUSTERED_SPARSE, 4, 60));
    // Dense float32: 80000 elements, 16 values.
    segments.add(segment(r, random, 4, 80_000, 1, 0.0, 16, 0, Encoding.CLUSTERED_DENSE, 1, 0));
    // Dense int8: 5000 elements, 200 values.
    segments.add(segment(r, random, 1, 5000, 1, 0.0, 200, 0, Encoding.CLUSTERED_DENSE, 1, 0));
    // Sparse float16 with background -0.0 (0x8000): 30000 elements, 5% kept.
    segments.add(
        segment(r, random, 2, 30_000, 1, 0.95, 8, 0x8000L, Encoding.CLUSTERED_SPARSE, 1, 200));
    // Dense int64: 3 channels of 1000, 5 values each.
    segments.add(segment(r, random, 8, 3000, 3, 0.0, 5, 0, Encoding.CLUSTERED_DENSE, 3, 0));
    // SPARSE_RAW float32 with background -0.0: 2 channels of 30000, 30% kept (more gap symbols
    // than one block of the symbol reader), 4096 values each.
    segments.add(
        segment(r, random, 4, 60_000, 2, 0.7, 4096, 0x80000000L, Encoding.SPARSE_RAW, 2, 4));
    byte[] tail = new byte[7];
    random.nextBytes(tail);
    r.put(tail);
    byte[] restored = Arrays.copyOf(r.array(), r.position());
    BundleBuilder builder = new BundleBuilder(restored);
    for (BundleBuilder.Seg s : segments) {
      builder.add(s);
    }
    return new Fixtures.Bundle("long-streams-" + seed, restored, builder.build());
  }

  private static BundleBuilder.Seg segment(
      ByteBuffer r, Random random, int esize, int elements, int channels, double background,
      int distinct, long backgroundValue, int encoding, int books, int escapeRun) {
    int dtype =
        esize == 1 ? Dtype.INT8 : esize == 2 ? Dtype.FLOAT16 : esize == 4 ? Dtype.FLOAT32
            : Dtype.INT64;
    r.put((byte) 1); // a gap byte before each segment
    int offset = r.position();
    int perChannel = elements / channels;
    long[][] values = new long[channels][distinct];
    for (long[] v : values) {
      for (int k = 0; k < distinct; k++) {
        v[k] = random.nextLong();
      }
    }
    byte[] raw = new byte[elements * esize];
    for (int p = 0; p < elements; p++) {
      int c = p / perChannel;
      // Skewed use of the values, so that code lengths differ.
      int k = Math.min(distinct - 1, (int) (-Math.log(1 - random.nextDouble()) * distinct / 4));
      long v = random.nextDouble() < background ? backgroundValue : values[c][k];
      for (int j = 0; j < esize; j++) {
        raw[p * esize + j] = (byte) (v >>> (8 * j));
      }
    }
    r.put(raw);
    byte[] payload =
        encoding == Encoding.SPARSE_RAW
            ? BundleBuilder.sparseRaw(raw, esize, books, escapeRun)
            : BundleBuilder.clustered(raw, esize, books, encoding == Encoding.CLUSTERED_SPARSE,
                escapeRun);
    return new BundleBuilder.Seg(offset, raw.length, dtype, channels, encoding, payload);
  }

  private static List<Fixtures.Bundle> bundles() throws Exception {
    List<Fixtures.Bundle> bundles = new ArrayList<Fixtures.Bundle>(GoldenTest.goldens());
    bundles.add(Fixtures.everyEncoding());
    bundles.add(Fixtures.delta());
    bundles.add(Fixtures.sparseRaw());
    bundles.add(Fixtures.masked());
    bundles.add(longStreams(1));
    Random random = new Random(41);
    for (int i = 0; i < 10; i++) {
      bundles.add(Fixtures.random(random, i));
    }
    return bundles;
  }

  @Test
  void bundlesRestoreAlikeWithEveryDecoderAndEntryPoint() throws Exception {
    for (Fixtures.Bundle bundle : bundles()) {
      Fixtures.restoresEverywhere(bundle);
    }
  }

  /**
   * Random edits inside payloads, behind recomputed CRCs (so the segment decoders see them): every
   * decoder restores the same bytes or throws the same exception, and never anything else.
   */
  @Test
  void payloadMutationsFailAlikeWithEveryDecoder() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(240),
        () -> {
          List<Fixtures.Bundle> bundles = new ArrayList<Fixtures.Bundle>(GoldenTest.goldens());
          bundles.add(Fixtures.everyEncoding());
          bundles.add(Fixtures.delta());
          bundles.add(Fixtures.sparseRaw());
          bundles.add(Fixtures.masked());
          bundles.add(longStreams(2));
          BundleRestorer[] restorers = new BundleRestorer[MODES.length];
          for (int m = 0; m < MODES.length; m++) {
            restorers[m] = new BundleRestorer(Sidecar.MAX_RESTORED_SIZE, MODES[m]);
          }
          Random random = new Random(43);
          int rejected = 0;
          int cases = 0;
          for (Fixtures.Bundle bundle : bundles) {
            Sidecar parsed = Sidecar.parse(bundle.sidecar);
            List<SegmentEntry> clustered = new ArrayList<SegmentEntry>();
            for (SegmentEntry segment : parsed.getSegments()) {
              if (segment.getEncoding() >= Encoding.CLUSTERED_SPARSE) {
                clustered.add(segment);
              }
            }
            if (clustered.isEmpty()) {
              continue;
            }
            int mutations = bundle.restored.length > 100_000 ? 200 : 60;
            for (int i = 0; i < mutations; i++) {
              SegmentEntry segment = clustered.get(random.nextInt(clustered.size()));
              byte[] sidecar = bundle.sidecar.clone();
              int edits = 1 + random.nextInt(3);
              for (int k = 0; k < edits; k++) {
                // Mostly in the coded data near the end (the streams), sometimes anywhere.
                int size = segment.getPayloadSize();
                int at =
                    random.nextBoolean()
                        ? size - 1 - random.nextInt(Math.min(size, 4000))
                        : random.nextInt(size);
                sidecar[segment.getPayloadOffset() + at] ^= (byte) (1 << random.nextInt(8));
              }
              BundleBuilder.resealPayload(sidecar, parsed, segment.getIndex());
              String expected = null;
              for (int m = 0; m < MODES.length; m++) {
                String got = run(restorers[m], bundle, sidecar);
                if (expected == null) {
                  expected = got;
                } else {
                  assertEquals(expected, got, bundle + " mutation " + i + ", decoder " + MODES[m]);
                }
              }
              cases++;
              if (expected.startsWith("error")) {
                rejected++;
              }
            }
          }
          assertTrue(cases >= 500 && rejected > cases / 2, rejected + " of " + cases);
        });
  }

  private static String run(BundleRestorer restorer, Fixtures.Bundle bundle, byte[] sidecar) {
    try {
      byte[] out = restorer.restore(bundle.skeleton, sidecar);
      assertArrayEquals(bundle.restored, out, bundle + ": a mutation restored other bytes");
      return "ok";
    } catch (BundleFormatException e) {
      return outcome(e);
    }
  }
}
