package dev.kerasdc.tensor;

import java.nio.ByteBuffer;

/**
 * The affine quantization of one int8 or uint8 tensor of a TFLite model: {@code real = scale *
 * (q - zeroPoint)}. Converts float values to the tensor's bytes ({@link #quantize}) and back
 * ({@link #dequantize}), so that an app can feed float data to a model with int8 inputs (a {@code
 * convert(int8=True, int8_io=True)} bundle) and read its int8 outputs as floats.
 *
 * <p>Quantizing follows LiteRT's QUANTIZE kernel: {@code q = round(x / scale) + zeroPoint}, rounded
 * to nearest with halves away from zero, then clamped to the type's range ([-128, 127] for int8, [0,
 * 255] for uint8). Plain Java 8; the Android layer ({@code KerasDcInterpreter}) reads scale and
 * zero point from the interpreter's tensors and calls this class.
 */
public final class Quantization {
  /** The element type of a quantized tensor. */
  public enum Type {
    INT8(-128, 127),
    UINT8(0, 255);

    final int min;
    final int max;

    Type(int min, int max) {
      this.min = min;
      this.max = max;
    }
  }

  private final Type type;
  private final float scale;
  private final int zeroPoint;

  /**
   * @param type INT8 or UINT8
   * @param scale the tensor's scale, finite and greater than 0
   * @param zeroPoint the tensor's zero point, within the type's range
   * @throws IllegalArgumentException when scale or zero point is out of range
   */
  public Quantization(Type type, float scale, int zeroPoint) {
    if (type == null) {
      throw new IllegalArgumentException("type must be INT8 or UINT8, received null");
    }
    if (!(scale > 0) || Float.isInfinite(scale)) {
      throw new IllegalArgumentException(
          "scale must be finite and > 0, received " + scale + " (is the tensor quantized?)");
    }
    if (zeroPoint < type.min || zeroPoint > type.max) {
      throw new IllegalArgumentException(
          "zero point of a "
              + type
              + " tensor must be in ["
              + type.min
              + ", "
              + type.max
              + "], received "
              + zeroPoint);
    }
    this.type = type;
    this.scale = scale;
    this.zeroPoint = zeroPoint;
  }

  public Type type() {
    return type;
  }

  public float scale() {
    return scale;
  }

  public int zeroPoint() {
    return zeroPoint;
  }

  /** The quantized value of {@code x} as an int in the type's range (NaN maps to the zero point). */
  public int quantizeToInt(float x) {
    double scaled = (double) x / scale;
    if (Double.isNaN(scaled)) {
      return zeroPoint;
    }
    double rounded = scaled < 0 ? -Math.floor(-scaled + 0.5) : Math.floor(scaled + 0.5);
    double q = rounded + zeroPoint;
    return (int) Math.max(type.min, Math.min(type.max, q));
  }

  /** The quantized value of {@code x} as the tensor's byte (uint8 values above 127 wrap). */
  public byte quantize(float x) {
    return (byte) quantizeToInt(x);
  }

  /** The real value of one tensor byte. */
  public float dequantize(byte q) {
    int value = type == Type.UINT8 ? (q & 0xFF) : q;
    return scale * (value - zeroPoint);
  }

  /** Quantizes {@code values} into {@code out} at its position, advancing it. */
  public void quantize(float[] values, ByteBuffer out) {
    if (out.remaining() < values.length) {
      throw new IllegalArgumentException(
          "the buffer has " + out.remaining() + " bytes left, " + values.length + " needed");
    }
    for (float v : values) {
      out.put(quantize(v));
    }
  }

  /** Dequantizes {@code out.length} bytes of {@code in} from its position, advancing it. */
  public void dequantize(ByteBuffer in, float[] out) {
    if (in.remaining() < out.length) {
      throw new IllegalArgumentException(
          "the buffer has " + in.remaining() + " bytes left, " + out.length + " needed");
    }
    for (int i = 0; i < out.length; i++) {
      out[i] = dequantize(in.get());
    }
  }

  @Override
  public String toString() {
    return type + "(scale=" + scale + ", zeroPoint=" + zeroPoint + ")";
  }
}
