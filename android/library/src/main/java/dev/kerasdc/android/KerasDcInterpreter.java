package dev.kerasdc.android;

import dev.kerasdc.bundle.BundleFormatException;
import java.io.Closeable;
import java.nio.ByteBuffer;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;

/**
 * An {@link Interpreter} over a restored keras-dc model: on the GPU delegate when LiteRT's
 * {@link CompatibilityList} says this device supports it and the delegate accepts the model,
 * otherwise on the CPU with XNNPACK. Keeps the model buffer referenced for the interpreter's
 * lifetime (the interpreter does not copy it). Close it to free the interpreter and the delegate.
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
