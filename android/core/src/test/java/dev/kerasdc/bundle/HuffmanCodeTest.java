package dev.kerasdc.bundle;

import static dev.kerasdc.bundle.BundleBuilder.bytes;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.kerasdc.bundle.Format.Stream;
import org.junit.jupiter.api.Test;

/** Canonical code assignment and table decoding against codes computed by hand. */
final class HuffmanCodeTest {

  private static int[] decodeAll(HuffmanCode code, byte[] data, long nbits, int count)
      throws BundleFormatException {
    HuffmanDecoder d = code.decoder(data, 0, nbits);
    int[] out = new int[count];
    for (int i = 0; i < count; i++) {
      out[i] = d.next();
    }
    d.finish();
    return out;
  }

  @Test
  void threeSymbolCode() throws Exception {
    // Lengths A=1, B=2, C=3: Kraft 4 + 2 + 1 = 7 = 2^3 - 1.
    // bl_count = {1: 1, 2: 1, 3: 1}; next_code[1] = 0, [2] = 2, [3] = 6.
    // A = 0, B = 10, C = 110; reserved = 111.
    HuffmanCode code = HuffmanCode.fromLengths(new int[] {1, 2, 3});
    assertEquals(3, code.maxLength());
    assertEquals(0b0, code.codeword(0));
    assertEquals(0b10, code.codeword(1));
    assertEquals(0b110, code.codeword(2));
    assertEquals(0b111, code.reservedCodeword());
    // "A B C A" = 0 | 10 | 110 | 0: bits b0..b6 = 0,1,0,1,1,0,0 -> 0b0011010 = 0x1A, nbits 7.
    assertArrayEquals(new int[] {0, 1, 2, 0}, decodeAll(code, bytes(0x1A), 7, 4));
  }

  @Test
  void rfc1951ExampleWithoutItsLastSymbol() throws Exception {
    // RFC 1951 3.2.2 example, A..G = (3, 3, 3, 3, 3, 2, 4) (H dropped): Kraft 10 + 4 + 1 = 15.
    // next_code[2] = 0, [3] = 2, [4] = 14: F = 00, A = 010, B = 011, C = 100, D = 101,
    // E = 110, G = 1110; the reserved codeword 1111 is RFC's H.
    HuffmanCode code = HuffmanCode.fromLengths(new int[] {3, 3, 3, 3, 3, 2, 4});
    int[] expected = {0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110};
    for (int s = 0; s < expected.length; s++) {
      assertEquals(expected[s], code.codeword(s), "symbol " + s);
    }
    assertEquals(0b1111, code.reservedCodeword());
    // "G F A E" = 1110 00 010 110: bits 1,1,1,0,0,0,0,1 | 0,1,1,0 -> 0x87, 0x06; nbits 12.
    assertArrayEquals(new int[] {6, 5, 0, 4}, decodeAll(code, bytes(0x87, 0x06), 12, 4));
  }

  @Test
  void singleSymbolHasCodeZeroAndReservedOne() throws Exception {
    HuffmanCode code = HuffmanCode.fromLengths(new int[] {0, 0, 1});
    assertEquals(0, code.codeword(2));
    assertEquals(1, code.reservedCodeword());
    assertArrayEquals(new int[] {2, 2, 2, 2, 2}, decodeAll(code, bytes(0x00), 5, 5));
    // Bit 2 is a 1: the reserved codeword, reported at byte 0.
    BundleFormatException e =
        assertThrows(
            BundleFormatException.class, () -> decodeAll(code, bytes(0x04), 5, 5));
    assertEquals(0, e.getOffset());
  }

  @Test
  void fifteenBitCode() throws Exception {
    // Symbol s has length s + 1 (s = 0..14): Kraft sum 2^14 + ... + 2^0 = 2^15 - 1.
    // Codeword of length l is l - 1 ones then a zero; the reserved one is fifteen ones.
    int[] lengths = new int[15];
    for (int s = 0; s < 15; s++) {
      lengths[s] = s + 1;
    }
    HuffmanCode code = HuffmanCode.fromLengths(lengths);
    assertEquals(15, code.maxLength());
    assertEquals(0x7FFE, code.codeword(14));
    assertEquals(0x7FFF, code.reservedCodeword());
    // Symbol 14 (fourteen 1s then 0), then symbol 0 (0), then symbol 2 (110): 19 bits.
    // bits: 1 x 14, 0, 0, 1, 1, 0 -> bytes 0xFF, 0x3F, 0x03 (bits 16, 17 set in byte 2).
    assertArrayEquals(
        new int[] {14, 0, 2}, decodeAll(code, bytes(0xFF, 0x3F, 0x03), 19, 3));
    // Fifteen 1s: the reserved codeword.
    assertThrows(
        BundleFormatException.class, () -> decodeAll(code, bytes(0xFF, 0x7F), 15, 1));
  }

  @Test
  void codewordPastNbitsIsRejected() throws Exception {
    HuffmanCode code = HuffmanCode.fromLengths(new int[] {1, 2, 3});
    // "A B C A" needs 7 bits; with nbits = 6 the last A runs past the end.
    BundleFormatException e =
        assertThrows(BundleFormatException.class, () -> decodeAll(code, bytes(0x1A), 6, 4));
    assertEquals(0, e.getOffset());
    // Three symbols end at bit 6, not at nbits = 7.
    assertThrows(BundleFormatException.class, () -> decodeAll(code, bytes(0x1A), 7, 3));
  }

  @Test
  void lengthsThatBreakTheKraftRuleAreRejected() {
    // Complete code (no reserved codeword): 2 + 1 + 1 = 4 = 2^2.
    assertThrows(BundleFormatException.class, () -> HuffmanCode.fromLengths(new int[] {1, 2, 2}));
    // Over-subscribed: 1 + 1 + 1 > 1.
    assertThrows(BundleFormatException.class, () -> HuffmanCode.fromLengths(new int[] {1, 1, 1}));
    // Too much unused space: a lone length-2 symbol leaves three of four codewords unused.
    assertThrows(BundleFormatException.class, () -> HuffmanCode.fromLengths(new int[] {2, 0}));
    // No used symbol.
    assertThrows(BundleFormatException.class, () -> HuffmanCode.fromLengths(new int[] {0, 0}));
    assertThrows(BundleFormatException.class, () -> HuffmanCode.fromLengths(new int[0]));
    // Lengths above 15.
    assertThrows(BundleFormatException.class, () -> HuffmanCode.fromLengths(new int[] {16}));
  }

  @Test
  void everyTableEntryButTheReservedOneDecodes() throws Exception {
    int[] lengths = {3, 3, 3, 3, 3, 2, 4};
    HuffmanCode code = HuffmanCode.fromLengths(lengths);
    // Each 4-bit window (stream order) decodes to the symbol whose codeword is its prefix.
    for (int window = 0; window < 16; window++) {
      byte[] data = bytes(window);
      HuffmanDecoder d = code.decoder(data, 0, 4);
      int reversed = Integer.reverse(window) >>> 28; // stream bits as an MSB-first integer
      if (reversed == 0b1111) {
        assertThrows(BundleFormatException.class, d::next);
        continue;
      }
      int s = d.next();
      int len = lengths[s];
      assertEquals(code.codeword(s), reversed >>> (4 - len), "window " + window);
      assertEquals(len, d.position());
    }
  }

  @Test
  void longStreamsOfLongCodewordsRoundTrip() throws Exception {
    // Lengths 1..15 (symbol s has s + 1 bits): windows refill across every byte alignment.
    int[] lengths = new int[15];
    for (int s = 0; s < 15; s++) {
      lengths[s] = s + 1;
    }
    java.util.Random random = new java.util.Random(21);
    int[] symbols = new int[100_000];
    for (int i = 0; i < symbols.length; i++) {
      symbols[i] = random.nextInt(15);
    }
    byte[] s = BundleBuilder.stream(lengths, symbols);
    HuffmanStream parsed = HuffmanStream.parse(s, 0, s.length, "t", 256);
    HuffmanDecoder d = parsed.decoder(s);
    for (int i = 0; i < symbols.length; i++) {
      assertEquals(symbols[i], d.next(), "symbol " + i);
    }
    parsed.finish(d.position());
    // One bit short: the last codeword runs past nbits.
    byte[] shortened = s.clone();
    BundleBuilder.putU64(shortened, Stream.NBITS, parsed.nbits - 1);
    HuffmanStream cut = HuffmanStream.parse(shortened, 0, shortened.length, "t", 256);
    HuffmanDecoder c = cut.decoder(shortened);
    assertThrows(
        BundleFormatException.class,
        () -> {
          for (int i = 0; i < symbols.length; i++) {
            c.next();
          }
        });
  }

  @Test
  void builderStreamsRoundTrip() throws Exception {
    java.util.Random random = new java.util.Random(7);
    for (int trial = 0; trial < 200; trial++) {
      int alphabet = 1 + random.nextInt(256);
      int[] symbols = new int[random.nextInt(500)];
      for (int i = 0; i < symbols.length; i++) {
        symbols[i] = Math.min(alphabet - 1, (int) Math.abs(random.nextGaussian() * alphabet / 4));
      }
      byte[] s = BundleBuilder.stream(symbols);
      HuffmanStream parsed = HuffmanStream.parse(s, 0, s.length, "t", 256);
      assertEquals(symbols.length, parsed.count);
      assertEquals(s.length, parsed.end);
      if (symbols.length == 0) {
        continue;
      }
      HuffmanDecoder d = parsed.decoder(s);
      for (int expected : symbols) {
        assertEquals(expected, d.next());
      }
      d.finish();
    }
  }
}
