package dev.kerasdc.android;

import dev.kerasdc.bundle.BundleFormatException;
import dev.kerasdc.tensor.Quantization;
import java.io.Closeable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;

/**
 * An {@link Interpreter} over a restored keras-dc model: on the GPU delegate when LiteRT's
 * {@link CompatibilityList} says this device supports it and the delegate accepts the model,
 * otherwise on the CPU with XNNPACK. Keeps the model buffer referenced for the interpreter's
 * lifetime (the interpreter does not copy it). Close it to free the interpreter and the delegate.
 *
 * <p>Inputs and outputs are not assumed float: an int8 bundle ({@code convert(int8=True)}) has
 * float32 inputs and outputs, but one converted with {@code int8_io=True} has int8 ones. {@link
 * #runFloat} takes and returns floats for either, quantizing int8/uint8 inputs and dequantizing
 * int8/uint8 outputs with each tensor's scale and zero point ({@link Quantization}, JVM-tested in
 * the core); {@link #inputQuantization} / {@link #outputQuantization} give those parameters to
 * callers that fill the interpreter's buffers themselves.
 */
public final class KerasDcInterpreter implements Closeable {
  private final ByteBuffer model;
  private final Interpreter interpreter;
  private final GpuDelegate gpuDelegate;

  private KerasDcInterpreter(ByteBuffer model, Interpreter interpreter, GpuDelegate gpuDelegate) {
    this.model = model;
    this.interpreter = interpreter;
    this.gpuDelegate = gpuDelegate;
  }

  /** Restores {@code bundle} into a direct buffer and creates the interpreter. */
  public static KerasDcInterpreter create(KerasDcModel bundle, int cpuThreads)
      throws BundleFormatException {
    return create(bundle.restoreToByteBuffer(), cpuThreads);
  }

  /**
   * Creates the interpreter over a restored model (a direct, native-order buffer).
   *
   * @param cpuThreads threads for the CPU (XNNPACK) fallback
   */
  public static KerasDcInterpreter create(ByteBuffer model, int cpuThreads) {
    CompatibilityList compatibility = new CompatibilityList();
    try {
      if (compatibility.isDelegateSupportedOnThisDevice()) {
        GpuDelegate delegate = new GpuDelegate(compatibility.getBestOptionsForThisDevice());
        try {
          Interpreter.Options options = new Interpreter.Options().addDelegate(delegate);
          return new KerasDcInterpreter(model, new Interpreter(model, options), delegate);
        } catch (RuntimeException e) {
          // The delegate rejected the model (e.g. an op it does not implement): use the CPU.
          delegate.close();
        }
      }
    } finally {
      compatibility.close();
    }
    Interpreter.Options options =
        new Interpreter.Options().setNumThreads(cpuThreads).setUseXNNPACK(true);
    return new KerasDcInterpreter(model, new Interpreter(model, options), null);
  }

  /** The interpreter; valid until {@link #close}. */
  public Interpreter interpreter() {
    return interpreter;
  }

  /** Whether the GPU delegate runs the model. */
  public boolean usesGpu() {
    return gpuDelegate != null;
  }

  /**
   * The quantization of input {@code index}: its type, scale and zero point when it is an int8 or
   * uint8 tensor, else null (a float32 input: pass floats as they are).
   */
  public Quantization inputQuantization(int index) {
    return quantizationOf(interpreter.getInputTensor(index));
  }

  /** The quantization of output {@code index}, or null when it is not int8/uint8. */
  public Quantization outputQuantization(int index) {
    return quantizationOf(interpreter.getOutputTensor(index));
  }

  /**
   * Runs the model once on float inputs and returns its outputs as floats, whatever the tensors'
   * types: float32 tensors are copied, int8/uint8 inputs quantized and int8/uint8 outputs
   * dequantized with the tensor's scale and zero point.
   *
   * @param inputs one array per model input, in input order, each of the tensor's element count
   *     (the batch included), row-major
   * @return one array per model output, in output order
   * @throws IllegalArgumentException when the number or sizes of the inputs do not fit the model,
   *     or a tensor is neither float32, int8 nor uint8
   */
  public float[][] runFloat(float[]... inputs) {
    int inputCount = interpreter.getInputTensorCount();
    if (inputs.length != inputCount) {
      throw new IllegalArgumentException(
          "the model has " + inputCount + " input(s), received " + inputs.length);
    }
    Object[] feeds = new Object[inputCount];
    for (int i = 0; i < inputCount; i++) {
      Tensor tensor = interpreter.getInputTensor(i);
      if (inputs[i].length != tensor.numElements()) {
        throw new IllegalArgumentException(
            "input " + i + " has " + tensor.numElements() + " elements, received "
                + inputs[i].length);
      }
      ByteBuffer buffer = newBuffer(tensor);
      Quantization quantization = quantizationOf(tensor);
      if (quantization != null) {
        quantization.quantize(inputs[i], buffer);
      } else {
        requireFloat(tensor, "input " + i);
        buffer.asFloatBuffer().put(inputs[i]);
      }
      buffer.rewind();
      feeds[i] = buffer;
    }
    int outputCount = interpreter.getOutputTensorCount();
    Map<Integer, Object> outputs = new HashMap<>();
    for (int j = 0; j < outputCount; j++) {
      Tensor tensor = interpreter.getOutputTensor(j);
      if (quantizationOf(tensor) == null) {
        requireFloat(tensor, "output " + j);
      }
      outputs.put(j, newBuffer(tensor));
    }
    interpreter.runForMultipleInputsOutputs(feeds, outputs);
    float[][] results = new float[outputCount][];
    for (int j = 0; j < outputCount; j++) {
      Tensor tensor = interpreter.getOutputTensor(j);
      ByteBuffer buffer = (ByteBuffer) outputs.get(j);
      buffer.rewind();
      results[j] = new float[tensor.numElements()];
      Quantization quantization = quantizationOf(tensor);
      if (quantization != null) {
        quantization.dequantize(buffer, results[j]);
      } else {
        buffer.asFloatBuffer().get(results[j]);
      }
    }
    return results;
  }

  private static Quantization quantizationOf(Tensor tensor) {
    DataType type = tensor.dataType();
    if (type != DataType.INT8 && type != DataType.UINT8) {
      return null;
    }
    Tensor.QuantizationParams params = tensor.quantizationParams();
    return new Quantization(
        type == DataType.INT8 ? Quantization.Type.INT8 : Quantization.Type.UINT8,
        params.getScale(),
        params.getZeroPoint());
  }

  private static void requireFloat(Tensor tensor, String what) {
    if (tensor.dataType() != DataType.FLOAT32) {
      throw new IllegalArgumentException(
          what + " has type " + tensor.dataType() + "; runFloat takes float32, int8 and uint8 "
              + "tensors only (fill the interpreter's buffers yourself for other types)");
    }
  }

  private static ByteBuffer newBuffer(Tensor tensor) {
    return ByteBuffer.allocateDirect(tensor.numBytes()).order(ByteOrder.nativeOrder());
  }

  /** The restored model buffer the interpreter runs on. */
  public ByteBuffer model() {
    return model;
  }

  @Override
  public void close() {
    interpreter.close();
    if (gpuDelegate != null) {
      gpuDelegate.close();
    }
  }
}
