package dev.kerasdc.android;

import android.content.Context;
import dev.kerasdc.bundle.BundleFormatException;
import dev.kerasdc.bundle.BundleRestorer;
import dev.kerasdc.bundle.Sidecar;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;

/**
 * A keras-dc bundle (skeleton + sidecar) on an Android device, restored to the runnable
 * {@code .tflite} either in memory (for {@code org.tensorflow.lite.Interpreter}) or to an
 * app-private file that is reused on later starts (for LiteRT's {@code CompiledModel}, which
 * takes a path). All decoding is done by the JVM-tested {@link BundleRestorer}; this class only
 * reads the files and picks the cache location. Float and int8 bundles restore alike (the restore
 * is bytes either way); what the model's inputs and outputs take is the interpreter's business
 * ({@link KerasDcInterpreter#runFloat} handles float32 and int8/uint8 tensors).
 *
 * <pre>{@code
 * // assets/model.skeleton.tflite + assets/model.dcw
 * KerasDcModel bundle = KerasDcModel.fromAssets(context, "model");
 * ByteBuffer tflite = bundle.restoreToByteBuffer();                  // Interpreter path
 * File file = bundle.restoreToCachedFile(context);                   // CompiledModel path
 * }</pre>
 */
public final class KerasDcModel {
  /** File name suffixes written by {@code converters.convert}. */
  public static final String SKELETON_SUFFIX = ".skeleton.tflite";

  public static final String SIDECAR_SUFFIX = ".dcw";

  private static final String CACHE_DIRECTORY = "kerasdc";

  private final String name;
  private final byte[] skeleton;
  private final byte[] sidecar;
  private final BundleRestorer restorer;

  private KerasDcModel(String name, byte[] skeleton, byte[] sidecar, BundleRestorer restorer) {
    this.name = name;
    this.skeleton = skeleton;
    this.sidecar = sidecar;
    this.restorer = restorer;
  }

  /**
   * Reads {@code NAME.skeleton.tflite} and {@code NAME.dcw} from the app's assets ({@code name}
   * may include an asset sub-directory, e.g. {@code "models/digits"}).
   */
  public static KerasDcModel fromAssets(Context context, String name) throws IOException {
    return new KerasDcModel(
        baseName(name),
        readFully(context.getAssets().open(name + SKELETON_SUFFIX)),
        readFully(context.getAssets().open(name + SIDECAR_SUFFIX)),
        new BundleRestorer());
  }

  /** Reads a bundle from two files (e.g. downloaded into {@code getFilesDir()}). */
  public static KerasDcModel fromFiles(File skeleton, File sidecar) throws IOException {
    String fileName = sidecar.getName();
    String name =
        fileName.endsWith(SIDECAR_SUFFIX)
            ? fileName.substring(0, fileName.length() - SIDECAR_SUFFIX.length())
            : fileName;
    return new KerasDcModel(
        name,
        readFully(new FileInputStream(skeleton)),
        readFully(new FileInputStream(sidecar)),
        new BundleRestorer());
  }

  /** Wraps bundle bytes obtained elsewhere; {@code name} names the cached file. */
  public static KerasDcModel fromBytes(String name, byte[] skeleton, byte[] sidecar) {
    return new KerasDcModel(baseName(name), skeleton, sidecar, new BundleRestorer());
  }

  /**
   * The same bundle with a cap on the restored size: a bundle restoring to more bytes is
   * rejected before anything is allocated (e.g. pass what the app can spare).
   */
  public KerasDcModel withMaxRestoredSize(long maxRestoredSize) {
    return new KerasDcModel(name, skeleton, sidecar, new BundleRestorer(maxRestoredSize));
  }

  /** The validated sidecar header and segment table (sizes, hashes, per-segment encodings). */
  public Sidecar sidecar() throws BundleFormatException {
    return Sidecar.parse(sidecar);
  }

  /**
   * Restores the model into a new direct ByteBuffer in native byte order, ready for {@code new
   * Interpreter(buffer, options)}. The interpreter does not copy it: keep the buffer referenced,
   * and unmodified, for the interpreter's lifetime. Costs the restored size in native memory.
   */
  public ByteBuffer restoreToByteBuffer() throws BundleFormatException {
    return restorer.restoreDirect(skeleton, sidecar);
  }

  /**
   * Restores the model to {@code noBackupFilesDir/kerasdc/NAME-<hash>.tflite} and returns that
   * file, for APIs that take a path (LiteRT {@code CompiledModel}). If the file already holds the
   * restored model (same SHA-256 as the sidecar says) it is reused without decoding; otherwise it
   * is written atomically, streaming, without holding the model in memory. Files of other
   * versions of the same bundle name are deleted afterwards.
   */
  public File restoreToCachedFile(Context context) throws BundleFormatException, IOException {
    Sidecar parsed = restorer.check(skeleton, sidecar);
    File directory = new File(context.getNoBackupFilesDir(), CACHE_DIRECTORY);
    String prefix = name + "-";
    String hash = hex(parsed.getRestoredSha256()).substring(0, 16);
    File file = new File(directory, prefix + hash + ".tflite");
    restorer.restoreToFile(skeleton, sidecar, file);
    File[] siblings = directory.listFiles();
    if (siblings != null) {
      for (File sibling : siblings) {
        String n = sibling.getName();
        if (n.startsWith(prefix) && n.endsWith(".tflite") && !n.equals(file.getName())) {
          sibling.delete();
        }
      }
    }
    return file;
  }

  /** The bundle name (the file stem of the cached file). */
  public String name() {
    return name;
  }

  private static String baseName(String name) {
    int slash = name.lastIndexOf('/');
    return slash < 0 ? name : name.substring(slash + 1);
  }

  private static byte[] readFully(InputStream in) throws IOException {
    try {
      ByteArrayOutputStream out = new ByteArrayOutputStream(1 << 16);
      byte[] buffer = new byte[1 << 16];
      for (int n; (n = in.read(buffer)) > 0; ) {
        out.write(buffer, 0, n);
      }
      return out.toByteArray();
    } finally {
      in.close();
    }
  }

  private static String hex(byte[] bytes) {
    StringBuilder s = new StringBuilder(bytes.length * 2);
    for (byte b : bytes) {
      s.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
    }
    return s.toString();
  }
}
