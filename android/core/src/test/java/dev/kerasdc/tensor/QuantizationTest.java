package dev.kerasdc.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.kerasdc.tensor.Quantization.Type;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/** Quantize / dequantize against values worked out by hand from q = round(x / scale) + zp. */
final class QuantizationTest {

  @Test
  void roundsToNearestWithHalvesAwayFromZero() {
    Quantization q = new Quantization(Type.INT8, 0.5f, 0);
    assertEquals(2, q.quantizeToInt(1.2f)); // 2.4 -> 2
    assertEquals(3, q.quantizeToInt(1.3f)); // 2.6 -> 3
    assertEquals(3, q.quantizeToInt(1.25f)); // 2.5 -> 3
    assertEquals(-3, q.quantizeToInt(-1.25f)); // -2.5 -> -3, not -2
    assertEquals(-2, q.quantizeToInt(-1.2f)); // -2.4 -> -2
    assertEquals(0, q.quantizeToInt(-0.2f)); // -0.4 -> 0
  }

  @Test
  void clampsToTheInt8Range() {
    Quantization q = new Quantization(Type.INT8, 0.1f, 0);
    assertEquals(127, q.quantizeToInt(12.7f));
    assertEquals(127, q.quantizeToInt(1000f));
    assertEquals(-128, q.quantizeToInt(-12.8f));
    assertEquals(-128, q.quantizeToInt(-1000f));
    assertEquals(-128, q.quantizeToInt(Float.NEGATIVE_INFINITY));
    assertEquals((byte) -128, q.quantize(-50f));
  }

  @Test
  void addsTheZeroPointBeforeClamping() {
    Quantization q = new Quantization(Type.INT8, 0.25f, -10);
    assertEquals(-10, q.quantizeToInt(0f)); // 0.0 is exactly the zero point
    assertEquals(-6, q.quantizeToInt(1f)); // 4 - 10
    assertEquals(127, q.quantizeToInt(34.25f)); // 137 - 10 = 127
    assertEquals(127, q.quantizeToInt(34.5f)); // 138 - 10 = 128 -> 127
    assertEquals(-128, q.quantizeToInt(-29.5f)); // -118 - 10
    assertEquals(-128, q.quantizeToInt(-30f)); // -120 - 10 = -130 -> -128
    assertEquals(1f, q.dequantize((byte) -6), 0f);
    assertEquals(0f, q.dequantize((byte) -10), 0f);
    assertEquals(-29.5f, q.dequantize((byte) -128), 0f);
  }

  @Test
  void uint8UsesTheUnsignedRange() {
    Quantization q = new Quantization(Type.UINT8, 1f, 128);
    assertEquals(255, q.quantizeToInt(127f));
    assertEquals(255, q.quantizeToInt(500f));
    assertEquals(0, q.quantizeToInt(-128f));
    assertEquals(0, q.quantizeToInt(-500f));
    assertEquals((byte) 0xFF, q.quantize(127f));
    assertEquals(127f, q.dequantize((byte) 0xFF), 0f); // 255 - 128, not -1 - 128
  }

  @Test
  void nanBecomesTheZeroPoint() {
    assertEquals(5, new Quantization(Type.INT8, 1f, 5).quantizeToInt(Float.NaN));
  }

  @Test
  void roundTripsArraysThroughABuffer() {
    Quantization q = new Quantization(Type.INT8, 0.5f, 3);
    ByteBuffer buffer = ByteBuffer.allocate(4);
    q.quantize(new float[] {0f, 1f, -1.5f, 100f}, buffer);
    assertArrayEquals(new byte[] {3, 5, 0, 127}, buffer.array());
    buffer.flip();
    float[] back = new float[4];
    q.dequantize(buffer, back);
    assertArrayEquals(new float[] {0f, 1f, -1.5f, 62f}, back, 0f);
    assertThrows(IllegalArgumentException.class, () -> q.quantize(new float[5], buffer));
  }

  @Test
  void rejectsParametersThatAreNoQuantization() {
    assertThrows(IllegalArgumentException.class, () -> new Quantization(Type.INT8, 0f, 0));
    assertThrows(IllegalArgumentException.class, () -> new Quantization(Type.INT8, -1f, 0));
    assertThrows(IllegalArgumentException.class, () -> new Quantization(Type.INT8, Float.NaN, 0));
    assertThrows(
        IllegalArgumentException.class,
        () -> new Quantization(Type.INT8, Float.POSITIVE_INFINITY, 0));
    assertThrows(IllegalArgumentException.class, () -> new Quantization(Type.INT8, 1f, 128));
    assertThrows(IllegalArgumentException.class, () -> new Quantization(Type.UINT8, 1f, -1));
    assertThrows(IllegalArgumentException.class, () -> new Quantization(null, 1f, 0));
  }
}
