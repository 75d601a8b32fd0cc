package dev.kerasdc.bundle;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * Command line: {@code java -cp keras-dc-core.jar dev.kerasdc.bundle.RestoreMain SKELETON SIDECAR
 * OUT.tflite}. Restores a bundle to a file (reusing OUT when it already holds the restored file).
 * Exit status 0 on success, 1 for a malformed bundle, 2 for usage or I/O errors.
 */
public final class RestoreMain {
  private RestoreMain() {}

  public static void main(String[] args) {
    System.exit(run(args));
  }

  static int run(String[] args) {
    if (args.length != 3) {
      System.err.println("usage: RestoreMain SKELETON SIDECAR OUT.tflite");
      return 2;
    }
    try {
      byte[] skeleton = readFile(new File(args[0]));
      byte[] sidecar = readFile(new File(args[1]));
      long start = System.nanoTime();
      File out = new File(args[2]);
      boolean written = new BundleRestorer().restoreToFile(skeleton, sidecar, out);
      double ms = (System.nanoTime() - start) / 1e6;
      Sidecar parsed = Sidecar.parse(sidecar);
      System.out.printf(
          "%s %s: %d bytes, %d segments, sha256 %s, %.1f ms%n",
          written ? "restored" : "reused",
          out,
          parsed.getRestoredSize(),
          parsed.getSegments().size(),
          Sidecar.hex(parsed.getRestoredSha256()),
          ms);
      return 0;
    } catch (BundleFormatException e) {
      System.err.println("malformed bundle: " + e.getMessage());
      return 1;
    } catch (IOException e) {
      System.err.println("I/O error: " + e);
      return 2;
    }
  }

  /** Reads a whole file (up to 2^31 - 9 bytes). */
  static byte[] readFile(File file) throws IOException {
    long length = file.length();
    if (length > Integer.MAX_VALUE - 8) {
      throw new IOException(file + " is too large: " + length + " bytes");
    }
    InputStream in = new FileInputStream(file);
    try {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream((int) Math.max(length, 32));
      byte[] buffer = new byte[1 << 16];
      for (int n; (n = in.read(buffer)) > 0; ) {
        bytes.write(buffer, 0, n);
      }
      return bytes.toByteArray();
    } finally {
      in.close();
    }
  }
}
